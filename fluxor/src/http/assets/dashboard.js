// The Fluxor dashboard: reads the runtime's event stream and draws what it says.
// No libraries: plain DOM and one canvas. `window.__fluxor` keeps what the page saw (for
// tests and for a curious console).
"use strict";
(function () {
  const page = (window.__fluxor = {
    errors: [], snapshots: 0, lifecycle: 0, skipped: 0, disconnects: 0,
    connected: false, actions: false, last: null,
  });
  window.addEventListener("error", (e) => page.errors.push("error: " + (e.message || e)));
  window.addEventListener("unhandledrejection", (e) =>
    page.errors.push("unhandled rejection: " + String(e.reason)));

  const HISTORY = 180; // chart points, one per snapshot
  const FLASH_MS = 4000; // how long a crashed instance stays highlighted
  const history = [];
  const flashes = new Map(); // instance key -> time until which it is highlighted
  const events = [];
  let prev = null; // { t, totals, reactors } of the previous snapshot
  let crashes = 0;

  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const num = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : esc(n));
  const rate = (n) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1));
  const nz = (n) => (n > 0 ? '<td class="nz">' + num(n) + "</td>" : "<td>" + num(n) + "</td>");
  const instKey = (deployment, index) => deployment + "/" + index;
  const row = (cells) => "<tr>" + cells.map((c) => "<td>" + c + "</td>").join("") + "</tr>";
  const head = (names) => "<tr>" + names.map((n) => "<th>" + n + "</th>").join("") + "</tr>";

  function totals(s) {
    let handled = 0, refused = 0;
    for (const r of s.reactors) handled += r.handled;
    for (const d of s.deployments) for (const i of d.instances) refused += i.rejected;
    refused += s.workers.rejected;
    if (s.extras.http) refused += s.extras.http.shed || 0;
    return { handled, refused };
  }

  function onSnapshot(msg) {
    const s = msg.snapshot;
    const now = performance.now();
    const sums = totals(s);
    let perReactor = s.reactors.map(() => ({ rate: 0, busy: 0 }));
    if (prev) {
      const dt = Math.max((now - prev.t) / 1000, 0.001);
      history.push({
        handled: Math.max(sums.handled - prev.totals.handled, 0) / dt,
        refused: Math.max(sums.refused - prev.totals.refused, 0) / dt,
      });
      while (history.length > HISTORY) history.shift();
      perReactor = s.reactors.map((r, i) => {
        const p = prev.reactors[i] || r;
        return {
          rate: Math.max(r.handled - p.handled, 0) / dt,
          busy: Math.min(Math.max((r.busy_ms - p.busy_ms) / (dt * 10), 0), 100),
        };
      });
    }
    prev = { t: now, totals: sums, reactors: s.reactors };
    page.snapshots += 1;
    page.skipped = msg.skipped;
    page.last = s;
    drawSummary(s, perReactor);
    drawDeployments(s);
    drawReactors(s, perReactor);
    drawWorkers(s.workers);
    drawExtras(s.extras);
    drawBus(s.bus);
    drawChart();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  function drawSummary(s, perReactor) {
    let instances = 0, restarts = 0;
    for (const d of s.deployments) { instances += d.instances.length; restarts += d.restarts; }
    const blocked = s.reactors.reduce((a, r) => a + r.blocked_episodes, 0);
    const last = history[history.length - 1] || { handled: 0, refused: 0 };
    const cards = [
      ["deployments", num(s.deployments.length), false],
      ["instances", num(instances), false],
      ["messages/s", rate(last.handled), false],
      ["refused/s", rate(last.refused), last.refused > 0],
      ["crashes seen", num(crashes), crashes > 0],
      ["restarts", num(restarts), restarts > 0],
      ["blocked episodes", num(blocked), blocked > 0],
      ["skipped updates", num(page.skipped), page.skipped > 0],
    ];
    void perReactor;
    $("summary").innerHTML = cards.map(([label, value, bad]) =>
      '<div class="card' + (bad ? " bad" : "") + '"><b>' + value + "</b><span>" + label +
      "</span></div>").join("");
  }

  function mailbox(len, cap) {
    const fill = cap > 0 ? Math.min(len / cap, 1) : 0;
    const level = fill >= 0.9 ? "bad" : fill >= 0.5 ? "warn" : "";
    return '<span class="bar"><i class="' + level + '" style="width:' +
      (fill * 100).toFixed(1) + '%"></i></span>' + num(len) + "/" + num(cap);
  }

  function drawDeployments(s) {
    const cols = ["component / instance", "state", "restarts", "reactor", "mailbox", "handled",
      "failed", "panicked", "rejected", "abandoned", "undelivered", "interrupted", ""];
    const now = performance.now();
    let html = head(cols);
    for (const d of s.deployments) {
      const action = page.actions
        ? '<button data-undeploy="' + esc(d.id) + '">undeploy</button>' : "";
      const keys = d.config_keys.length ? " config: " + esc(d.config_keys.join(", ")) : "";
      html += '<tr class="dep" data-deployment="' + esc(d.id) + '"><td class="l">' +
        esc(d.component) + (d.worker ? " (worker)" : "") +
        ' <span class="muted" title="' + esc(d.id) + '">' + esc(String(d.id).slice(-8)) +
        keys + '</span></td><td class="state-' + esc(d.state) + '">' + esc(d.state) +
        '</td><td class="restarts">' + num(d.restarts) + '</td><td colspan="9"></td><td>' +
        action + "</td></tr>";
      for (const i of d.instances) {
        const key = instKey(d.id, i.index);
        const flash = (flashes.get(key) || 0) > now ? " flash" : "";
        html += '<tr class="inst' + flash + '" data-component="' + esc(d.component) +
          '" data-index="' + i.index + '"><td>#' + i.index + '</td><td class="state state-' +
          esc(i.state) + '">' + esc(i.state) + '</td><td class="restarts">' + num(i.restarts) +
          "</td><td>" + i.reactor + '</td><td class="l">' +
          mailbox(i.mailbox_len, i.mailbox_capacity) + "</td><td>" + num(i.handled) +
          "</td>" + nz(i.failed) + nz(i.panicked) + nz(i.rejected) + nz(i.abandoned) +
          nz(i.undelivered) + nz(i.interrupted) + "<td></td></tr>";
      }
    }
    if (!s.deployments.length) html += row(["no deployments"]);
    $("deployments").innerHTML = html;
  }

  function drawReactors(s, perReactor) {
    let html = head(["reactor", "instances", "messages/s", "busy %", "handled", "blocked"]);
    s.reactors.forEach((r, i) => {
      const p = perReactor[i];
      html += "<tr><td>" + r.index + "</td><td>" + num(r.components) + "</td><td>" +
        rate(p.rate) + '</td><td class="l">' + mailbox(Math.round(p.busy), 100)
          .replace(/[\d,]+\/100$/, p.busy.toFixed(0) + "%") + "</td><td>" + num(r.handled) +
        "</td>" + nz(r.blocked_episodes) + "</tr>";
    });
    $("reactors").innerHTML = html;
  }

  function drawWorkers(w) {
    $("workers").innerHTML = head(["threads", "busy", "queued", "completed", "refused",
      "cancelled", "panicked"]) + "<tr><td>" + num(w.threads) + "</td><td>" + num(w.busy) +
      '</td><td class="l">' + mailbox(w.queued, w.capacity) + "</td><td>" +
      num(w.completed) + "</td>" + nz(w.rejected) + nz(w.cancelled) + nz(w.panicked) + "</tr>";
  }

  function drawBus(bus) {
    let html = head(["topic or pattern", "kind", "consumers"]);
    for (const t of bus.topics) html += row([esc(t.topic), "topic", num(t.consumers)]);
    for (const t of bus.patterns) html += row([esc(t.topic), "pattern", num(t.consumers)]);
    $("bus").innerHTML = html;
  }

  // Any JSON as nested tables: objects as key/value rows, arrays of objects as rows.
  function value(v) {
    if (v === null || v === undefined) return '<span class="muted">none</span>';
    if (Array.isArray(v)) {
      if (!v.length) return '<span class="muted">none</span>';
      if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
        const cols = [...new Set(v.flatMap(Object.keys))];
        return "<table>" + head(cols.map(esc)) +
          v.map((x) => row(cols.map((c) => value(x[c])))).join("") + "</table>";
      }
      return v.map(value).join(", ");
    }
    if (typeof v === "object") {
      return "<table>" + Object.keys(v).map((k) =>
        '<tr><td class="l">' + esc(k) + '</td><td class="l">' + value(v[k]) + "</td></tr>")
        .join("") + "</table>";
    }
    return num(v);
  }

  function drawExtras(extras) {
    const http = extras.http;
    $("http").innerHTML = http
      ? head(["in flight", "requests", "shed", "dashboard pages"]) + "<tr><td>" +
        mailbox(http.in_flight, http.max_in_flight) + "</td><td>" + num(http.requests) +
        "</td>" + nz(http.shed) + "<td>" + num(http.dashboard_clients) + "</td></tr>"
      : row(['<span class="muted">not deployed</span>']);
    $("cluster-panel").hidden = !extras.cluster;
    if (extras.cluster) $("cluster").innerHTML = value(extras.cluster);
    const rest = Object.keys(extras).filter((k) => k !== "http" && k !== "cluster");
    $("extras-panel").hidden = !rest.length;
    if (rest.length) {
      const obj = {};
      for (const k of rest) obj[k] = extras[k];
      $("extras").innerHTML = value(obj);
    }
  }

  function drawChart() {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight || 160;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    if (!g) return;
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 56, right = 48, top = 8, bottom = 20;
    const w = width - left - right, h = height - top - bottom;
    const ceil = (m) => {
      if (m <= 1) return 1;
      const p = Math.pow(10, Math.floor(Math.log10(m)));
      return [1, 2, 5, 10].map((k) => k * p).find((c) => c >= m);
    };
    const maxH = ceil(Math.max(...history.map((p) => p.handled), 0));
    const maxR = ceil(Math.max(...history.map((p) => p.refused), 0));
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    for (let k = 0; k <= 4; k++) {
      const y = top + h - (h * k) / 4;
      g.strokeStyle = "#2a313b";
      g.beginPath(); g.moveTo(left, y); g.lineTo(left + w, y); g.stroke();
      g.fillStyle = "#5aa9e6"; g.textAlign = "right";
      g.fillText(rate((maxH * k) / 4), left - 6, y + 4);
      g.fillStyle = "#ef5b5b"; g.textAlign = "left";
      g.fillText(rate((maxR * k) / 4), left + w + 6, y + 4);
    }
    g.fillStyle = "#8a94a3"; g.textAlign = "center";
    ["-3m", "-2m", "-1m", "now"].forEach((label, k) =>
      g.fillText(label, left + (w * k) / 3, height - 4));
    const line = (pick, max, color) => {
      if (history.length < 2) return;
      g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
      history.forEach((p, k) => {
        const x = left + w - ((history.length - 1 - k) * w) / (HISTORY - 1);
        const y = top + h - (pick(p) / max) * h;
        if (k === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    };
    line((p) => p.handled, maxH, "#5aa9e6");
    line((p) => p.refused, maxR, "#ef5b5b");
  }

  function onLifecycle(e) {
    page.lifecycle += 1;
    const kind = String(e.kind).toLowerCase();
    if (kind === "crashed") {
      crashes += 1;
      flashes.set(instKey(e.deployment, e.instance), performance.now() + FLASH_MS);
    }
    events.unshift({ at: new Date(), kind, e });
    if (events.length > 100) events.pop();
    $("events").innerHTML = events.map(({ at, kind, e }) =>
      '<li class="' + esc(kind) + '">' + esc(at.toLocaleTimeString()) + " " + esc(kind) +
      " " + esc(e.component) + "#" + esc(e.instance) + " (restarts " + num(e.restarts) + ")" +
      (e.reason ? ": " + esc(e.reason) : "") + "</li>").join("");
    // Show the crash at once, without waiting for the next snapshot.
    if (page.last && kind === "crashed") {
      const s = page.last;
      for (const d of s.deployments) {
        if (d.id !== e.deployment) continue;
        const i = d.instances.find((x) => x.index === e.instance);
        if (i) i.state = "Restarting";
      }
      drawDeployments(s);
      drawSummary(s, []);
    }
  }

  document.addEventListener("click", (ev) => {
    const id = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-undeploy");
    if (!id || !window.confirm("Undeploy " + id + "?")) return;
    fetch("deployments/" + encodeURIComponent(id) + "/undeploy", {
      method: "POST", headers: { "x-fluxor-action": "undeploy" },
    }).then((r) => {
      if (!r.ok) page.errors.push("undeploy answered " + r.status);
    }, (err) => page.errors.push("undeploy failed: " + err));
  });

  const parse = (ev, then) => {
    try { then(JSON.parse(ev.data)); } catch (err) {
      page.errors.push("bad " + ev.type + " event: " + err);
    }
  };
  const source = new EventSource("events");
  source.addEventListener("hello", (ev) => parse(ev, (h) => { page.actions = !!h.actions; }));
  source.addEventListener("snapshot", (ev) => parse(ev, onSnapshot));
  source.addEventListener("lifecycle", (ev) => parse(ev, onLifecycle));
  source.addEventListener("skipped", (ev) => parse(ev, (n) => { page.skipped += n; }));
  source.onopen = () => {
    page.connected = true;
    $("status").textContent = "live";
    $("status").className = "status on";
  };
  source.onerror = () => {
    page.connected = false;
    page.disconnects += 1;
    $("status").textContent = "reconnecting";
    $("status").className = "status off";
  };
  window.addEventListener("resize", drawChart);
})();
