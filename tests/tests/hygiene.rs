//! Generated code names only absolute paths: it compiles in a module that shadows the
//! prelude and does not import anything from fluxor.

#![allow(dead_code, non_camel_case_types)]

mod shadowed {
    struct Result;
    struct Option;
    struct Box;
    struct Vec;
    struct String;
    trait Send {}
    trait Sync {}
    trait Sized {}
    mod std {}
    mod core {}
    mod fluxor {}

    #[derive(::fluxor::Message)]
    #[message(reply = u64)]
    pub(crate) struct Ping(pub(crate) u64);

    #[derive(::fluxor::Message)]
    pub(crate) struct Poke;

    #[::fluxor::component]
    #[derive(Default)]
    pub(crate) struct Hygienic {
        count: u64,
    }

    #[::fluxor::component]
    impl Hygienic {
        #[::fluxor::on_start]
        fn begin(&mut self, _ctx: &mut ::fluxor::Context<Self>) {}

        #[::fluxor::handler("hygiene.ping")]
        async fn ping(&mut self, Ping(n): Ping) -> u64 {
            self.count += n;
            self.count
        }

        #[::fluxor::handler]
        fn poke(
            &mut self,
            _: Poke,
            _ctx: &mut ::fluxor::Context<Self>,
        ) -> ::core::result::Result<(), &'static str> {
            ::core::result::Result::Ok(())
        }
    }
}

#[tokio::test]
async fn generated_code_ignores_shadowed_names() {
    let rt = ::fluxor::Fluxor::builder().reactors(1).build().unwrap();
    rt.deploy(shadowed::Hygienic::default, ::fluxor::DeployOptions::new())
        .await
        .unwrap();
    let n = rt
        .bus()
        .request(shadowed::Hygienic::PING, shadowed::Ping(4))
        .await
        .unwrap();
    assert_eq!(n, 4);
    rt.shutdown(std::time::Duration::from_secs(1))
        .await
        .unwrap();
}

/// `crate = path` points the generated code at fluxor under another name.
mod renamed {
    use fluxor as flx;

    #[derive(flx::Message)]
    #[message(reply = u64, crate = flx)]
    pub(crate) struct Double(pub(crate) u64);

    #[flx::component(crate = flx)]
    #[derive(Default)]
    pub(crate) struct Doubler;

    #[flx::component(crate = flx)]
    impl Doubler {
        #[flx::handler("renamed.double")]
        fn double(&mut self, Double(n): Double) -> u64 {
            n * 2
        }
    }
}

#[tokio::test]
async fn crate_override_renames_the_runtime_path() {
    let rt = ::fluxor::Fluxor::builder().reactors(1).build().unwrap();
    rt.deploy(renamed::Doubler::default, ::fluxor::DeployOptions::new())
        .await
        .unwrap();
    let n = rt
        .bus()
        .request(renamed::Doubler::DOUBLE, renamed::Double(21))
        .await
        .unwrap();
    assert_eq!(n, 42);
    rt.shutdown(std::time::Duration::from_secs(1))
        .await
        .unwrap();
}

/// A stand-in for fluxor at another path: fluxor's items, except that `Message` (in
/// `fake_message`), `__private::Declared` and `testing::__run` are its own. Code generated
/// with `::fluxor` paths in spite of `crate = ...` would implement or call fluxor's items
/// instead of these, and the tests below would not compile or would fail.
mod fake {
    pub(crate) use ::fluxor::*;

    pub(crate) mod __private {
        // What generated code may name besides `Declared`; not every component needs each.
        #[allow(unused_imports)]
        pub(crate) use ::fluxor::__private::{worker_mode, Either, IntoStartResult};

        /// Like fluxor's, but another trait: the struct half must implement this one and the
        /// impl half must read this one.
        pub(crate) trait Declared {
            type Config: ::serde::de::DeserializeOwned + Send + Sync + 'static;
            const NAME: &'static str;
            fn worker_mode() -> Option<::fluxor::WorkerMode<Self>>;
            fn supervision() -> ::fluxor::Supervision;
            const AFTER: &'static [&'static str] = &[];
        }
    }

    pub(crate) mod testing {
        pub(crate) use ::fluxor::testing::{TestOptions, TestResult, TestRuntime};

        pub(crate) static RAN_HERE: ::std::sync::atomic::AtomicBool =
            ::std::sync::atomic::AtomicBool::new(false);

        /// Records that the test came through here, then runs it as fluxor would.
        pub(crate) fn __run<F, Fut>(options: TestOptions, body: F)
        where
            F: FnOnce(TestRuntime) -> Fut,
            Fut: ::std::future::Future,
            Fut::Output: TestResult,
        {
            RAN_HERE.store(true, ::std::sync::atomic::Ordering::SeqCst);
            ::fluxor::testing::__run(options, body);
        }
    }
}

/// A `Message` trait that is not fluxor's, for `#[message(crate = fake_message)]`.
mod fake_message {
    pub(crate) trait Message {
        type Reply;
    }
}

mod through_fake {
    #[derive(::fluxor::Message)]
    #[message(reply = u8, crate = crate::fake_message)]
    pub(crate) struct Probe;

    #[::fluxor::component(crate = crate::fake, name = "faked")]
    #[derive(Default)]
    pub(crate) struct Faked;

    #[::fluxor::component(crate = crate::fake)]
    impl Faked {
        #[::fluxor::handler("fake.triple")]
        fn triple(&mut self, super::renamed::Double(n): super::renamed::Double) -> u64 {
            n * 3
        }
    }
}

#[test]
fn message_derive_follows_the_crate_path() {
    fn implements_the_fake<M: fake_message::Message<Reply = u8>>() {}
    implements_the_fake::<through_fake::Probe>();
}

#[tokio::test]
async fn both_component_halves_follow_the_crate_path() {
    use ::fluxor::Component;
    // The struct half implemented the stand-in's `Declared`, and the impl half read it (a
    // half that used fluxor's would find no impl, or leave this one unused and unread).
    fn declared_through_fake<C: fake::__private::Declared>() {}
    declared_through_fake::<through_fake::Faked>();
    assert_eq!(through_fake::Faked::name(), "faked");
    let rt = ::fluxor::Fluxor::builder().reactors(1).build().unwrap();
    rt.deploy(through_fake::Faked::default, ::fluxor::DeployOptions::new())
        .await
        .unwrap();
    let n = rt
        .bus()
        .request(through_fake::Faked::TRIPLE, renamed::Double(5))
        .await
        .unwrap();
    assert_eq!(n, 15);
    rt.shutdown(std::time::Duration::from_secs(1))
        .await
        .unwrap();
}

#[::fluxor::test(crate = crate::fake)]
async fn test_attribute_follows_the_crate_path() {
    assert!(fake::testing::RAN_HERE.load(std::sync::atomic::Ordering::SeqCst));
}
