//! The runtime's snapshot as Prometheus text.

/// Renders a snapshot as Prometheus text. Each value appears once, under one name; totals that
/// can be summed from the per-instance series are not repeated.
pub(super) fn prometheus(s: &crate::inspect::Snapshot) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, series: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in series {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let reactor = |f: fn(&crate::inspect::ReactorInfo) -> f64| -> Vec<(String, f64)> {
        s.reactors
            .iter()
            .map(|r| (format!("{{reactor=\"{}\"}}", r.index), f(r)))
            .collect()
    };
    family(
        "fluxor_reactor_handled_total",
        "counter",
        "Handler invocations per reactor.",
        reactor(|r| r.handled as f64),
    );
    family(
        "fluxor_reactor_busy_seconds_total",
        "counter",
        "Time in handlers per reactor (sampled).",
        reactor(|r| r.busy_ms as f64 / 1000.0),
    );
    family(
        "fluxor_reactor_blocked_total",
        "counter",
        "Blocked-reactor episodes per reactor.",
        reactor(|r| r.blocked_episodes as f64),
    );
    type Pick = fn(&crate::inspect::InstanceInfo) -> f64;
    let per_instance: [(&str, &str, &str, Pick); 9] = [
        (
            "fluxor_messages_handled_total",
            "counter",
            "Messages handled.",
            |i| i.handled as f64,
        ),
        (
            "fluxor_messages_failed_total",
            "counter",
            "Handlers that returned an error.",
            |i| i.failed as f64,
        ),
        (
            "fluxor_messages_panicked_total",
            "counter",
            "Handlers that panicked.",
            |i| i.panicked as f64,
        ),
        (
            "fluxor_requests_abandoned_total",
            "counter",
            "Requests skipped because their requester had gone.",
            |i| i.abandoned as f64,
        ),
        (
            "fluxor_messages_undelivered_total",
            "counter",
            "Accepted messages dropped unhandled at a stop.",
            |i| i.undelivered as f64,
        ),
        (
            "fluxor_messages_interrupted_total",
            "counter",
            "Handlers cut short at a stop deadline.",
            |i| i.interrupted as f64,
        ),
        (
            "fluxor_mailbox_rejected_total",
            "counter",
            "Messages refused by a full mailbox.",
            |i| i.rejected as f64,
        ),
        (
            "fluxor_mailbox_length",
            "gauge",
            "Messages waiting in the mailbox.",
            |i| i.mailbox_len as f64,
        ),
        (
            "fluxor_instance_restarts_total",
            "counter",
            "Restarts of the instance.",
            |i| i.restarts as f64,
        ),
    ];
    for (name, kind, help, pick) in per_instance {
        let series = s
            .deployments
            .iter()
            .flat_map(|d| {
                d.instances.iter().map(move |i| {
                    (
                        format!(
                            "{{component=\"{}\",deployment=\"{}\",instance=\"{}\"}}",
                            d.component, d.id, i.index
                        ),
                        pick(i),
                    )
                })
            })
            .collect();
        family(name, kind, help, series);
    }
    let w = &s.workers;
    for (name, kind, help, v) in [
        (
            "fluxor_workers_busy",
            "gauge",
            "Blocking tasks running.",
            w.busy as f64,
        ),
        (
            "fluxor_workers_queued",
            "gauge",
            "Blocking tasks waiting.",
            w.queued as f64,
        ),
        (
            "fluxor_workers_completed_total",
            "counter",
            "Blocking tasks completed.",
            w.completed as f64,
        ),
        (
            "fluxor_workers_rejected_total",
            "counter",
            "Blocking tasks refused by a full queue.",
            w.rejected as f64,
        ),
    ] {
        family(name, kind, help, vec![(String::new(), v)]);
    }
    if let Some(http) = s.extras.get("http") {
        for (key, name, kind, help) in [
            (
                "in_flight",
                "fluxor_http_in_flight",
                "gauge",
                "HTTP requests being handled.",
            ),
            (
                "requests",
                "fluxor_http_requests_total",
                "counter",
                "HTTP requests admitted.",
            ),
            (
                "shed",
                "fluxor_http_shed_total",
                "counter",
                "HTTP requests shed with 503.",
            ),
        ] {
            let v = http
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            family(name, kind, help, vec![(String::new(), v as f64)]);
        }
    }
    if let Some(cluster) = s.extras.get("cluster") {
        let number = |key: &str| match cluster.get(key) {
            Some(serde_json::Value::Bool(b)) => f64::from(u8::from(*b)),
            Some(v) => v.as_f64().unwrap_or(0.0),
            None => 0.0,
        };
        for (key, name, kind, help) in [
            (
                "connected",
                "fluxor_cluster_connected",
                "gauge",
                "1 while connected to the NATS server.",
            ),
            (
                "subscriptions",
                "fluxor_cluster_subscriptions",
                "gauge",
                "Topics and patterns served to other nodes.",
            ),
            (
                "messages_in",
                "fluxor_cluster_messages_in_total",
                "counter",
                "Messages received from other nodes.",
            ),
            (
                "messages_out",
                "fluxor_cluster_messages_out_total",
                "counter",
                "Messages handed to the connection.",
            ),
            (
                "decode_errors",
                "fluxor_cluster_decode_errors_total",
                "counter",
                "Incoming messages refused as undecodable.",
            ),
            (
                "dropped",
                "fluxor_cluster_dropped_total",
                "counter",
                "Publications from other nodes that never arrived (numbering gaps).",
            ),
            (
                "slow_consumer_events",
                "fluxor_cluster_slow_consumer_events_total",
                "counter",
                "Messages the client reported dropping at a full subscription buffer.",
            ),
            (
                "refused",
                "fluxor_cluster_refused_total",
                "counter",
                "Outgoing messages refused (queue full, in-flight limit, disconnected).",
            ),
            (
                "reconnects",
                "fluxor_cluster_reconnects_total",
                "counter",
                "Times the connection came back.",
            ),
        ] {
            family(name, kind, help, vec![(String::new(), number(key))]);
        }
    }
    out
}
