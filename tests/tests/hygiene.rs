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
