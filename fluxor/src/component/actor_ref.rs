//! [`ActorRef`]: a handle to one instance, for direct messages without a topic lookup.

use std::fmt;
use std::future::Future;

use super::{Component, Handles};
use crate::bus::{Asking, EventBus};
use crate::error::{BusError, SendError};
use crate::mailbox::{Mailbox, PushError};
use crate::message::{Envelope, Message, Meta, ReplyTo};

/// A handle to one component instance, to send it messages directly (not through a topic).
///
/// Cheap to clone, `Send + Sync`. Get your own with [`Context::myself`](crate::Context::myself).
pub struct ActorRef<C: Component> {
    pub(crate) mailbox: Mailbox<C::Msg>,
    pub(crate) bus: EventBus,
}

impl<C: Component> Clone for ActorRef<C> {
    fn clone(&self) -> Self {
        ActorRef {
            mailbox: self.mailbox.clone(),
            bus: self.bus.clone(),
        }
    }
}

impl<C: Component> fmt::Debug for ActorRef<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorRef")
            .field("component", &C::name())
            .field("queued", &self.mailbox.len())
            .finish()
    }
}

impl<C: Component> ActorRef<C> {
    /// Puts `msg` in the instance's mailbox without waiting.
    ///
    /// # Errors
    /// `MailboxFull` or `Closed` (the instance stopped), with the message handed back.
    pub fn send<M: Message>(&self, msg: M) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        self.send_meta(msg, self.bus.root_meta_later())
    }

    /// Like [`send`](Self::send), but waits up to `timeout` for room in a full mailbox.
    ///
    /// # Errors
    /// `MailboxFull` (no room in time) or `Closed`, with the message handed back.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes drops the message undelivered.
    pub async fn send_timeout<M: Message>(
        &self,
        msg: M,
        timeout: std::time::Duration,
    ) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        self.send_waiting(msg, Some(timeout)).await
    }

    /// Like [`send`](Self::send), but waits for room in a full mailbox as long as it takes
    /// (tokio's `Sender::send(..).await`).
    ///
    /// # Errors
    /// `Closed` (the instance stopped), with the message handed back.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes drops the message undelivered.
    pub async fn send_wait<M: Message>(&self, msg: M) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        self.send_waiting(msg, None).await
    }

    async fn send_waiting<M: Message>(
        &self,
        msg: M,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        let mut slot = Some(msg);
        let meta = self.bus.root_meta_later();
        // A closure of two pointers (without trace context): the envelope and its ids are made
        // where they are stored, not copied through the push.
        let make = || C::wrap(Envelope::new(slot.take().expect("filled"), None, meta()));
        // The attempt at once comes first, in place: no waiting future is made (nor a clock
        // read) when there is room.
        let pushed = match self.mailbox.push_now(make) {
            Ok(()) => Ok(()),
            Err((PushError::Full, make)) => {
                let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
                self.mailbox.push_waiting(deadline, make).await
            }
            Err((e, _)) => Err(e),
        };
        match pushed {
            Ok(()) => Ok(()),
            Err(e) => Err(SendError {
                error: direct_error::<C>(e),
                message: slot.expect("a refused message is not consumed"),
            }),
        }
    }

    /// Sends `msg` and awaits the reply, up to the runtime's default request timeout. Nothing
    /// is sent until the returned future is first polled.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub fn request<M: Message>(
        &self,
        msg: M,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, C, M>
    where
        C: Handles<M>,
    {
        self.request_meta(msg, || self.bus.root_meta(), None)
    }

    /// Messages waiting in the instance's mailbox.
    pub fn queued(&self) -> usize {
        self.mailbox.len()
    }

    /// Sends `msg` with the metadata `meta` makes: called where the envelope is stored, so
    /// neither is copied through the push (see `send_waiting`).
    pub(crate) fn send_meta<M: Message>(
        &self,
        msg: M,
        meta: impl FnOnce() -> Meta,
    ) -> Result<(), SendError<M>>
    where
        C: Handles<M>,
    {
        let mut slot = Some(msg);
        match self
            .mailbox
            .try_push(|| C::wrap(Envelope::new(slot.take().expect("filled"), None, meta())))
        {
            Ok(()) => Ok(()),
            Err(e) => Err(SendError {
                error: direct_error::<C>(e),
                message: slot.expect("a refused message is not consumed"),
            }),
        }
    }

    /// A request to this instance, sent when first polled (see `Asking`) with the metadata
    /// `meta` makes then, inside the caller's span (and where the envelope is stored, see
    /// `bus::meta_later`).
    pub(crate) fn request_meta<M: Message, F: FnOnce() -> Meta>(
        &self,
        msg: M,
        meta: F,
        timeout: Option<std::time::Duration>,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, C, M, F>
    where
        C: Handles<M>,
    {
        let send = move |_: &str| {
            let meta = crate::bus::meta_later(meta);
            let (reply, rx) = ReplyTo::channel();
            self.mailbox
                .try_push(|| C::wrap(Envelope::new(msg, Some(reply), meta())))
                .map_err(direct_error::<C>)?;
            Ok(rx)
        };
        Asking::new(C::name(), send, self.bus.reply_within(timeout))
    }
}

fn direct_error<C: Component>(e: PushError) -> BusError {
    match e {
        PushError::Full => BusError::MailboxFull {
            topic: C::name().to_owned(),
        },
        PushError::Closed => BusError::Closed,
    }
}
