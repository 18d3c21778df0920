//! A deployment's topic bindings, filled by [`Component::bindings`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::Component;
use crate::address::validate_pattern;
use crate::bus::{Consumer, Entry, Inbound, MailboxConsumer, Owner, TypedInbound};
use crate::mailbox::Mailbox;
use crate::message::{Envelope, Message, RemoteMessage};

/// The topic bindings of a deployment, filled by [`Component::bindings`] once per deployment,
/// with the deployment's config at hand (so topics may depend on it).
pub struct Bindings<'a, C: Component> {
    pub(crate) entries: Vec<Binding<C>>,
    pub(crate) errors: Vec<String>,
    config: &'a C::Config,
}

type MakeConsumer<C> =
    Box<dyn Fn(&Mailbox<<C as Component>::Msg>) -> Arc<dyn Consumer> + Send + Sync>;

pub(crate) struct Binding<C: Component> {
    pub(crate) pattern: Arc<str>,
    pub(crate) make: MakeConsumer<C>,
    /// The decoder of messages from other nodes, for a remote-enabled binding.
    pub(crate) remote: Option<Arc<dyn Inbound>>,
}

impl<C: Component> fmt::Debug for Bindings<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|b| &b.pattern))
            .finish()
    }
}

impl<'a, C: Component> Bindings<'a, C> {
    pub(crate) fn collect(config: &'a C::Config) -> Self {
        let mut b = Bindings {
            entries: Vec::new(),
            errors: Vec::new(),
            config,
        };
        C::bindings(&mut b);
        b
    }

    /// The deployment's config.
    pub fn config(&self) -> &'a C::Config {
        self.config
    }

    /// Routes envelopes of `M` published or sent to `pattern` into the variant built by `wrap`.
    /// `pattern` is a topic (`orders.create`) or a NATS-style pattern (`orders.*`, `orders.>`).
    /// An invalid pattern fails the deployment with [`DeployError::InvalidTopic`](crate::error::DeployError::InvalidTopic).
    pub fn bind<M: Message>(
        &mut self,
        pattern: &str,
        wrap: fn(Envelope<M>) -> C::Msg,
    ) -> &mut Self {
        self.add(pattern, wrap, None)
    }

    /// Like [`bind`](Self::bind), and the binding also receives messages that other nodes of a
    /// cluster send, request or publish to `pattern` (`#[handler("topic", remote)]`). Without a
    /// cluster it is a plain binding.
    pub fn bind_remote<M: RemoteMessage>(
        &mut self,
        pattern: &str,
        wrap: fn(Envelope<M>) -> C::Msg,
    ) -> &mut Self {
        self.add(pattern, wrap, Some(Arc::new(TypedInbound::<M>::new())))
    }

    fn add<M: Message>(
        &mut self,
        pattern: &str,
        wrap: fn(Envelope<M>) -> C::Msg,
        remote: Option<Arc<dyn Inbound>>,
    ) -> &mut Self {
        match validate_pattern(pattern) {
            Ok(()) => self.entries.push(Binding {
                remote,
                pattern: Arc::from(pattern),
                make: Box::new(move |mailbox| {
                    Arc::new(MailboxConsumer {
                        mailbox: mailbox.clone(),
                        wrap,
                        _msg: PhantomData,
                    })
                }),
            }),
            Err(e) => self.errors.push(format!("`{}`: {}", e.topic(), e.kind())),
        }
        self
    }
}

impl<C: Component> Binding<C> {
    /// The registry entry of this binding for one instance.
    pub(crate) fn entry(&self, owner: Owner, mailbox: &Mailbox<C::Msg>) -> Entry {
        Entry {
            owner,
            pattern: self.pattern.clone(),
            consumer: (self.make)(mailbox),
            remote: self.remote.clone(),
        }
    }
}
