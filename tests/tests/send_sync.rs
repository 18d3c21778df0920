//! Every public handle can be shared across threads, and the runtime's futures can be spawned
//! on a multi-threaded tokio runtime.

use fluxor::{
    ActorRef, Address, BusError, DeployError, DeployOptions, DeploymentId, EventBus, Fluxor,
    Headers, PublishError, RequestOptions, SendError, ShutdownError, StopError, UndeployError,
};
use fluxor_tests::{Add, Probe};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn handles_and_errors_are_send_and_sync() {
    send_sync::<Fluxor>();
    send_sync::<EventBus>();
    send_sync::<ActorRef<Probe>>();
    send_sync::<Address<Add>>();
    send_sync::<DeploymentId>();
    send_sync::<DeployOptions>();
    send_sync::<RequestOptions>();
    send_sync::<Headers>();
    send_sync::<BusError>();
    send_sync::<SendError<Add>>();
    send_sync::<PublishError>();
    send_sync::<DeployError>();
    send_sync::<UndeployError>();
    send_sync::<StopError>();
    send_sync::<ShutdownError>();
}

#[test]
fn runtime_futures_are_send() {
    let rt = Fluxor::builder().reactors(1).build().unwrap();
    let bus = rt.bus().clone();
    send(&bus.request("t.add", Add(1)));
    send(&bus.request_with("t.add", Add(1), RequestOptions::new()));
    send(&bus.send_timeout("t.add", Add(1), std::time::Duration::from_millis(1)));
    send(&bus.send_wait("t.add", Add(1)));
    send(&rt.deploy(Probe::default, DeployOptions::new()));
    send(&rt.shutdown(std::time::Duration::from_secs(1)));
    send(&rt.run());
}
