//! The local transport: the embedded default, which moves typed envelopes into the mailboxes
//! of this process's component instances, without serialization.
//!
//! Its topic registry (`registry.rs`) is an immutable snapshot swapped on every change, so
//! that looking up consumers takes no lock. Each exact topic keeps a round-robin cursor;
//! topics served only by pattern subscribers share one.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

use super::registry::{Entry, Registry, Resolved, Route, Routes};
use super::transport::{Copies, Delivery, How, Parcel, Published, SendFuture, Transport};
use crate::address::validate_topic;
use crate::error::BusError;
use crate::ids::DeploymentId;
use crate::mailbox::{Mailbox, PushError};
use crate::message::{Envelope, Message};

impl From<Result<(), PushError>> for Delivery {
    fn from(r: Result<(), PushError>) -> Self {
        match r {
            Ok(()) => Delivery::Delivered,
            Err(PushError::Full) => Delivery::Full,
            Err(PushError::Closed) => Delivery::Closed,
        }
    }
}

pub(crate) type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Delivery> + Send + 'a>>;

/// A type-erased consumer: one handler binding of one component instance.
///
/// The `slot` passed to the delivery methods is an `&mut Option<Envelope<M>>`; on success the
/// envelope is taken out of it, otherwise it stays there for the sender to hand back.
pub(crate) trait Consumer: Send + Sync + 'static {
    fn message_type(&self) -> &'static str;
    /// The mailbox it delivers to (see `Mailbox::id`).
    fn mailbox(&self) -> usize;
    /// Counts one message this consumer refused because its mailbox was full (a delivery
    /// attempt that found it full counts nothing by itself: the sender may find room
    /// elsewhere).
    fn count_refusal(&self);
    fn try_deliver(&self, slot: &mut dyn Any) -> Delivery;
    fn deliver_until<'a>(
        &'a self,
        slot: &'a mut (dyn Any + Send),
        deadline: Option<Instant>,
    ) -> DeliverFuture<'a>;
}

/// A binding from envelopes of `M` into a mailbox of `T` (a component's message enum).
pub(crate) struct MailboxConsumer<T, M: Message> {
    pub(crate) mailbox: Mailbox<T>,
    pub(crate) wrap: fn(Envelope<M>) -> T,
    pub(crate) _msg: PhantomData<fn(M)>,
}

impl<T: Send + 'static, M: Message> Consumer for MailboxConsumer<T, M> {
    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }

    fn mailbox(&self) -> usize {
        self.mailbox.id()
    }

    fn count_refusal(&self) {
        self.mailbox.count_refusal();
    }

    fn try_deliver(&self, slot: &mut dyn Any) -> Delivery {
        let Some(slot) = slot.downcast_mut::<Option<Envelope<M>>>() else {
            return Delivery::TypeMismatch;
        };
        let wrap = self.wrap;
        self.mailbox
            .try_push_uncounted(|| {
                wrap(
                    slot.take()
                        .expect("a delivery slot is filled until delivered"),
                )
            })
            .into()
    }

    fn deliver_until<'a>(
        &'a self,
        slot: &'a mut (dyn Any + Send),
        deadline: Option<Instant>,
    ) -> DeliverFuture<'a> {
        Box::pin(async move {
            let Some(slot) = (slot as &mut dyn Any).downcast_mut::<Option<Envelope<M>>>() else {
                return Delivery::TypeMismatch;
            };
            let wrap = self.wrap;
            self.mailbox
                .push_waiting(deadline, || {
                    wrap(
                        slot.take()
                            .expect("a delivery slot is filled until delivered"),
                    )
                })
                .await
                .into()
        })
    }
}

/// The local transport: the registry of this process's consumers, and the cursor of topics
/// served only by pattern subscribers.
pub(crate) struct LocalTransport {
    pub(super) registry: Registry,
    /// Round-robin cursor for topics served only by pattern subscribers.
    pattern_cursor: AtomicUsize,
}

impl LocalTransport {
    pub(crate) fn new() -> Self {
        LocalTransport {
            registry: Registry::new(),
            pattern_cursor: AtomicUsize::new(0),
        }
    }

    /// The current subscriptions.
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Routes>> {
        self.registry.load()
    }

    /// Adds consumers, all at once.
    /// Adds consumers; `true` if the set of remote patterns changed.
    pub(crate) fn register(&self, entries: Vec<Entry>) -> bool {
        self.registry.add(entries)
    }

    /// Removes the consumers of `deployment` (of its instance `instance` only, when given);
    /// returns how many were removed, and whether the set of remote patterns changed.
    pub(crate) fn unregister(
        &self,
        deployment: DeploymentId,
        instance: Option<usize>,
    ) -> (usize, bool) {
        self.registry.remove(deployment, instance)
    }

    /// Removes every consumer (the bus closes).
    pub(crate) fn clear(&self) {
        self.registry.clear();
    }

    /// The consumers of `topic`. A topic found among the exact routes is valid by
    /// construction; any other is checked, so a malformed topic is reported as such rather
    /// than as `NoHandlers`. The runtime's own topics are valid by construction too.
    fn lookup<'a>(&self, snap: &'a Routes, topic: &str) -> Result<Resolved<'a>, BusError> {
        let resolved = snap.resolve(topic);
        if !matches!(resolved, Resolved::Route(_)) && !topic.starts_with(super::RESERVED) {
            validate_topic(topic).map_err(|e| BusError::InvalidTopic {
                topic: topic.to_owned(),
                reason: e.kind().to_string(),
            })?;
        }
        Ok(resolved)
    }

    /// Delivers the parcel to one of the `resolved` consumers that `eligible` admits.
    pub(crate) fn send_among(
        &self,
        topic: &str,
        resolved: &Resolved<'_>,
        parcel: &mut dyn Parcel,
        how: How,
        eligible: impl Fn(&Entry) -> bool,
    ) -> Result<(), BusError> {
        let n = resolved.len();
        if n == 0 {
            return Err(no_handlers(topic));
        }
        parcel.set_topic(topic_arc(resolved.route(), topic));
        let start = self
            .cursor(resolved.route())
            .fetch_add(1, Ordering::Relaxed);
        let mut failures = Failures::default();
        let requester = how.requester;
        let mut tried = 0;
        let mut first_full: Option<&Entry> = None;
        for i in 0..n {
            let entry = resolved.get((start + i) % n);
            if !eligible(entry) || requester.is_some_and(|r| r.mailbox == entry.consumer.mailbox())
            {
                continue;
            }
            tried += 1;
            match entry.consumer.try_deliver(parcel.slot()) {
                Delivery::Delivered => return Ok(()),
                Delivery::Full => {
                    first_full.get_or_insert(entry);
                    failures.note(Delivery::Full, entry.consumer.message_type());
                }
                other => failures.note(other, entry.consumer.message_type()),
            }
        }
        if let (true, Some(entry)) = (how.count_refusal, first_full) {
            entry.consumer.count_refusal();
        }
        match requester {
            Some(r) if tried == 0 => Err(BusError::AskCycle {
                topic: topic.to_owned(),
                component: r.component,
            }),
            None if tried == 0 => Err(no_handlers(topic)),
            _ => Err(failures.error(topic, parcel.message_type())),
        }
    }

    fn cursor<'a>(&'a self, route: Option<&'a Route>) -> &'a AtomicUsize {
        route.map_or(&self.pattern_cursor, |r| &r.cursor)
    }
}

fn topic_arc(route: Option<&Route>, topic: &str) -> Arc<str> {
    route.map_or_else(|| Arc::from(topic), |r| r.topic.clone())
}

pub(super) fn no_handlers(topic: &str) -> BusError {
    BusError::NoHandlers {
        topic: topic.to_owned(),
    }
}

impl Transport for LocalTransport {
    fn send(&self, topic: &str, parcel: &mut dyn Parcel, how: How) -> Result<(), BusError> {
        let snap = self.registry.load();
        let resolved = self.lookup(&snap, topic)?;
        self.send_among(topic, &resolved, parcel, how, |_| true)
    }
    fn send_until<'a>(
        &'a self,
        topic: &'a str,
        parcel: &'a mut dyn Parcel,
        deadline: Option<Instant>,
    ) -> SendFuture<'a> {
        // The snapshot guard is not held across the wait: take the consumer out of it.
        let consumer = {
            let snap = self.registry.load();
            let resolved = snap.resolve(topic);
            let n = resolved.len();
            (n > 0).then(|| {
                let i = self
                    .cursor(resolved.route())
                    .fetch_add(1, Ordering::Relaxed)
                    % n;
                resolved.get(i).consumer.clone()
            })
        };
        Box::pin(async move {
            let Some(consumer) = consumer else {
                return Err(no_handlers(topic));
            };
            let message_type = parcel.message_type();
            match consumer.deliver_until(parcel.slot(), deadline).await {
                Delivery::Delivered => Ok(()),
                other => {
                    Err(Failures::of(other, consumer.message_type()).error(topic, message_type))
                }
            }
        })
    }

    fn publish(&self, topic: &str, copies: &mut dyn Copies) -> Result<Published, BusError> {
        let snap = self.registry.load();
        let resolved = self.lookup(&snap, topic)?;
        let n = resolved.len();
        let mut published = Published::default();
        if n == 0 {
            return Ok(published);
        }
        let topic_arc = topic_arc(resolved.route(), topic);
        for i in 0..n {
            let entry = resolved.get(i);
            let delivery = copies.offer(&topic_arc, i + 1 == n, &mut |slot| {
                entry.consumer.try_deliver(slot)
            });
            published.note(delivery, entry, topic, copies.message_type());
        }
        Ok(published)
    }

    fn consumer_count(&self, topic: &str) -> usize {
        self.registry.load().resolve(topic).len()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The worst thing that happened across the delivery attempts of one envelope, reported in
/// this order: full, closed, type mismatch.
#[derive(Default)]
struct Failures {
    full: bool,
    closed: bool,
    mismatch: Option<&'static str>,
}

impl Failures {
    /// The failure of a single attempt.
    fn of(d: Delivery, consumer_type: &'static str) -> Self {
        let mut failures = Failures::default();
        failures.note(d, consumer_type);
        failures
    }

    fn note(&mut self, d: Delivery, consumer_type: &'static str) {
        match d {
            Delivery::Delivered => {}
            Delivery::Full => self.full = true,
            Delivery::Closed => self.closed = true,
            Delivery::TypeMismatch => self.mismatch = Some(consumer_type),
        }
    }

    fn error(&self, topic: &str, message_type: &'static str) -> BusError {
        if self.full {
            BusError::MailboxFull {
                topic: topic.to_owned(),
            }
        } else if self.closed {
            BusError::Closed
        } else {
            BusError::TypeMismatch {
                topic: topic.to_owned(),
                expected: self.mismatch.unwrap_or("?"),
                found: message_type,
            }
        }
    }
}

impl Published {
    /// Records what happened to one consumer's copy of a publication.
    pub(super) fn note(
        &mut self,
        delivery: Delivery,
        entry: &Entry,
        topic: &str,
        message_type: &'static str,
    ) {
        match delivery {
            Delivery::Delivered => self.delivered += 1,
            other => {
                if other == Delivery::Full {
                    // Each consumer gets a copy of its own: a refused copy is a refused
                    // message.
                    entry.consumer.count_refusal();
                }
                self.failures.push(
                    Failures::of(other, entry.consumer.message_type()).error(topic, message_type),
                );
            }
        }
    }
}
