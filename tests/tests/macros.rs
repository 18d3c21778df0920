//! Components written with `#[component]`, `#[handler]` and `#[derive(Message)]`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluxor::prelude::*;
use fluxor::{BoxError, DeployError};

#[derive(Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Message, Clone)]
struct Reset;

#[derive(Message)]
#[message(reply = u64)]
struct Get;

#[component]
#[derive(Default)]
struct Counter {
    total: u64,
}

#[component]
impl Counter {
    #[handler("counter.add")]
    async fn add(&mut self, Add(n): Add) -> u64 {
        self.total += n;
        self.total
    }

    #[handler("counter.reset")]
    fn reset(&mut self, _: Reset, ctx: &mut Context<Self>) {
        assert!(ctx.request_id().is_some());
        self.total = 0;
    }

    #[handler("counter.get")]
    fn get(&mut self, _: Get) -> u64 {
        self.total
    }
}

async fn runtime() -> Fluxor {
    Fluxor::builder().reactors(2).build().unwrap()
}

#[tokio::test]
async fn the_counter_from_the_docs_works() {
    let rt = runtime().await;
    rt.deploy(Counter::default, DeployOptions::new())
        .await
        .unwrap();
    let total = rt.bus().request(Counter::ADD, Add(2)).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(rt.bus().request(Counter::ADD, Add(3)).await.unwrap(), 5);
    rt.bus().request(Counter::RESET, Reset).await.unwrap();
    assert_eq!(rt.bus().request(Counter::GET, Get).await.unwrap(), 0);
    assert_eq!(Counter::ADD.topic(), "counter.add");
    assert_eq!(<Counter as Component>::name(), "Counter");
    // Publish works for Clone messages.
    assert_eq!(rt.bus().publish(Counter::RESET, Reset), Ok(1));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

// ----- Results, hooks, config, direct messages, wildcards -----

#[derive(Debug, Message)]
#[message(reply = String)]
struct Greet(String);

#[derive(Debug, Message)]
struct Tick;

#[derive(Debug, Message)]
#[message(reply = u64)]
struct Ticks;

#[derive(Debug, Clone, Message)]
struct Audit(String);

#[derive(serde::Deserialize)]
struct GreeterConfig {
    greeting: String,
    #[serde(default)]
    refuse_start: bool,
}

#[component(config = GreeterConfig, name = "greeter")]
struct Greeter {
    ticks: u64,
    audits: Arc<AtomicU64>,
    stops: Arc<AtomicU64>,
}

/// Any `Display` error works as a handler error.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("names must not be empty")
    }
}

#[component]
impl Greeter {
    #[on_start]
    async fn begin(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if ctx.config().refuse_start {
            return Err("refusing to start".into());
        }
        // Messages to self go through the component's own address.
        ctx.myself().send(Tick).map_err(|e| e.error)?;
        Ok(())
    }

    #[on_stop]
    fn end(&mut self, _ctx: &mut Context<Self>) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }

    #[handler("greeter.greet")]
    fn greet(&mut self, Greet(name): Greet, ctx: &mut Context<Self>) -> Result<String, Refused> {
        if name.is_empty() {
            return Err(Refused);
        }
        Ok(format!("{}, {name}!", ctx.config().greeting))
    }

    #[handler]
    fn tick(&mut self, _: Tick) {
        self.ticks += 1;
    }

    #[handler]
    fn ticks(&mut self, _: Ticks) -> u64 {
        self.ticks
    }

    #[handler("audit.>")]
    async fn audit(&mut self, Audit(_what): Audit, ctx: &mut Context<Self>) {
        assert!(ctx.topic().unwrap().starts_with("audit."));
        self.audits.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn results_hooks_config_direct_messages_and_patterns() {
    let rt = runtime().await;
    let audits = Arc::new(AtomicU64::new(0));
    let stops = Arc::new(AtomicU64::new(0));
    let factory = {
        let (audits, stops) = (audits.clone(), stops.clone());
        move || Greeter {
            ticks: 0,
            audits: audits.clone(),
            stops: stops.clone(),
        }
    };
    let id = rt
        .deploy(
            factory.clone(),
            DeployOptions::new().config(serde_json::json!({ "greeting": "Hello" })),
        )
        .await
        .unwrap();
    assert_eq!(
        rt.bus()
            .request(Greeter::GREET, Greet("Ada".into()))
            .await
            .unwrap(),
        "Hello, Ada!"
    );
    assert_eq!(
        rt.bus().request(Greeter::GREET, Greet(String::new())).await,
        Err(BusError::RecipientFailed {
            topic: "greeter.greet".into(),
            reason: "names must not be empty".into()
        })
    );
    assert_eq!(
        rt.bus().publish("audit.orders.created", Audit("x".into())),
        Ok(1)
    );
    assert_eq!(rt.bus().publish("audit.users", Audit("y".into())), Ok(1));
    // A wildcard handler's constant is a pattern, not an address: it cannot be sent to, but
    // it matches topics and gives typed addresses for the concrete ones it matches.
    let audit: fluxor::Pattern<Audit> = Greeter::AUDIT;
    assert_eq!(audit.pattern(), "audit.>");
    assert!(audit.matches("audit.users"));
    assert!(!audit.matches("audit") && !audit.matches("audit.*"));
    assert!(audit.address("billing.paid").is_none());
    let users = audit.address("audit.users").unwrap();
    assert_eq!(rt.bus().publish(&users, Audit("z".into())), Ok(1));
    assert_eq!(rt.deployments()[0].component, "greeter");
    rt.undeploy(id).await.unwrap();
    assert_eq!(audits.load(Ordering::SeqCst), 3);
    assert_eq!(stops.load(Ordering::SeqCst), 1);

    // A start hook's error fails the deploy; a missing config field is a config error.
    let err = rt
        .deploy(
            factory.clone(),
            DeployOptions::new()
                .config(serde_json::json!({ "greeting": "Hi", "refuse_start": true })),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing to start"), "{err}");
    let err = rt.deploy(factory, DeployOptions::new()).await.unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::Config {
                component: "greeter",
                ..
            }
        ),
        "{err}"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

// A component that counts its own ticks, checked through a direct request.
#[component]
#[derive(Default)]
struct SelfTicker {
    ticks: u64,
}

#[derive(Message)]
#[message(reply = u64)]
struct HowMany;

#[component]
impl SelfTicker {
    #[handler]
    fn tick(&mut self, _: Tick) {
        self.ticks += 1;
    }

    #[handler("ticker.count")]
    async fn count(&mut self, _: HowMany, ctx: &mut Context<Self>) -> Result<u64, BusError> {
        // Ask ourselves through the direct address: it queues behind this handler, so send
        // (fire and forget) rather than request.
        ctx.send_to(ctx.myself(), Tick).map_err(|e| e.error)?;
        Ok(self.ticks)
    }
}

#[tokio::test]
async fn direct_messages_through_the_actor_ref() {
    let rt = runtime().await;
    rt.deploy(SelfTicker::default, DeployOptions::new())
        .await
        .unwrap();
    assert_eq!(
        rt.bus().request(SelfTicker::COUNT, HowMany).await.unwrap(),
        0
    );
    assert_eq!(
        rt.bus().request(SelfTicker::COUNT, HowMany).await.unwrap(),
        1
    );
    assert_eq!(
        rt.bus().request(SelfTicker::COUNT, HowMany).await.unwrap(),
        2
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

// ----- Generic components and messages -----

#[derive(Message)]
#[message(reply = Option<V>)]
struct Lookup<V: Send + 'static> {
    key: String,
    _v: std::marker::PhantomData<fn() -> V>,
}

#[derive(Message)]
#[message(reply = usize)]
struct Store<V: Send + 'static>(String, V);

#[component]
struct Cache<V: Clone + Send + 'static> {
    map: std::collections::HashMap<String, V>,
}

#[component]
impl<V: Clone + Send + 'static> Cache<V> {
    #[handler("cache.store")]
    fn store(&mut self, Store(k, v): Store<V>) -> usize {
        self.map.insert(k, v);
        self.map.len()
    }

    #[handler("cache.lookup")]
    fn lookup(&mut self, msg: Lookup<V>) -> Option<V> {
        self.map.get(&msg.key).cloned()
    }
}

#[tokio::test]
async fn generic_components_and_messages() {
    let rt = runtime().await;
    rt.deploy(
        || Cache::<u32> {
            map: Default::default(),
        },
        DeployOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        rt.bus()
            .request(Cache::<u32>::STORE, Store("a".into(), 7))
            .await
            .unwrap(),
        1
    );
    let lookup = |key: &str| Lookup::<u32> {
        key: key.into(),
        _v: std::marker::PhantomData,
    };
    assert_eq!(
        rt.bus()
            .request(Cache::<u32>::LOOKUP, lookup("a"))
            .await
            .unwrap(),
        Some(7)
    );
    assert_eq!(
        rt.bus()
            .request(Cache::<u32>::LOOKUP, lookup("b"))
            .await
            .unwrap(),
        None
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

// ----- Non-Send state is fine: components never leave their reactor. -----

#[component]
#[derive(Default)]
struct Local {
    seen: std::rc::Rc<std::cell::RefCell<Vec<u64>>>,
}

#[component]
impl Local {
    #[handler("local.add")]
    async fn add(&mut self, Add(n): Add) -> u64 {
        self.seen.borrow_mut().push(n);
        tokio::task::yield_now().await;
        self.seen.borrow().iter().sum()
    }
}

#[tokio::test]
async fn components_may_hold_rc_and_refcell() {
    let rt = runtime().await;
    rt.deploy(Local::default, DeployOptions::new())
        .await
        .unwrap();
    rt.bus().request(Local::ADD, Add(1)).await.unwrap();
    assert_eq!(rt.bus().request(Local::ADD, Add(2)).await.unwrap(), 3);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

// ----- Declared supervision -----

#[derive(Message)]
#[message(reply = u64)]
struct Boom;

#[component(supervise = fluxor::Supervision::resume())]
#[derive(Default)]
struct Stubborn {
    count: u64,
}

#[component]
impl Stubborn {
    #[handler("stubborn.add")]
    fn add(&mut self, Add(n): Add) -> u64 {
        self.count += n;
        self.count
    }

    #[handler("stubborn.boom")]
    fn boom(&mut self, _: Boom) -> u64 {
        panic!("boom")
    }
}

#[tokio::test]
async fn supervision_is_declared_on_the_struct() {
    assert_eq!(
        <Stubborn as Component>::supervision(),
        fluxor::Supervision::Resume
    );
    let rt = runtime().await;
    rt.deploy(Stubborn::default, DeployOptions::new())
        .await
        .unwrap();
    assert_eq!(rt.bus().request(Stubborn::ADD, Add(2)).await.unwrap(), 2);
    assert!(rt.bus().request(Stubborn::BOOM, Boom).await.is_err());
    // Resumed: the state survived the panic.
    assert_eq!(rt.bus().request(Stubborn::ADD, Add(3)).await.unwrap(), 5);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
