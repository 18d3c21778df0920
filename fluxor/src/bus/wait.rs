//! Sends that wait for room in a full mailbox, with a deadline or without.

use std::time::Duration;

use tokio::time::Instant;

use super::event_bus::EventBus;
use super::{How, Transport};
use crate::address::Destination;
use crate::error::{BusError, SendError};
use crate::message::{Envelope, Message, Meta};

impl EventBus {
    /// Like [`send`](Self::send), but when the chosen consumer's mailbox is full, waits up to
    /// `timeout` for room instead of failing at once.
    ///
    /// # Errors
    /// As [`send`](Self::send); `MailboxFull` means no room appeared in time.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes drops the message undelivered.
    pub async fn send_timeout<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendError<M>> {
        self.send_wait_meta(to.topic(), msg, self.root_meta(), Some(timeout))
            .await
    }

    /// Like [`send`](Self::send), but when the chosen consumer's mailbox is full, waits for
    /// room as long as it takes, as tokio's `Sender::send(..).await` does: the way for a
    /// producer to go no faster than its consumer. [`send_timeout`](Self::send_timeout) bounds
    /// the wait.
    ///
    /// # Errors
    /// As [`send`](Self::send) except `MailboxFull`; `Closed` when the consumer stops while
    /// the sender waits.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes drops the message undelivered.
    pub async fn send_wait<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<(), SendError<M>> {
        self.send_wait_meta(to.topic(), msg, self.root_meta(), None)
            .await
    }

    pub(crate) async fn send_wait_meta<M: Message>(
        &self,
        topic: &str,
        msg: M,
        meta: Meta,
        timeout: Option<Duration>,
    ) -> Result<(), SendError<M>> {
        let env = Envelope::new(msg, None, meta);
        // The first attempt does not count a refusal: the wait decides.
        let how = How {
            count_refusal: false,
            ..How::default()
        };
        let mut slot = match self.deliver(topic, env, how) {
            Ok(()) => return Ok(()),
            Err((BusError::MailboxFull { .. }, env)) => Some(env),
            Err((error, env)) => {
                return Err(SendError {
                    error,
                    message: env.msg,
                })
            }
        };
        // Every consumer was full: wait for room at the next one in round-robin order.
        let deadline = timeout.map(|t| Instant::now() + t);
        match self
            .inner
            .local
            .send_until(topic, &mut slot, deadline)
            .await
        {
            Ok(()) => Ok(()),
            Err(error) => {
                let env = slot
                    .take()
                    .expect("an undelivered envelope stays in its slot");
                Err(SendError {
                    error,
                    message: env.msg,
                })
            }
        }
    }
}
