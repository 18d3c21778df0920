//! [`Asking`]: a request as one small future, sent when first polled and then waiting for its
//! reply.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use crate::address::Destination;
use crate::error::BusError;
use crate::message::{Elapsed, Reply, Within};

/// What a request is addressed to, as its timeout error names it.
pub(crate) trait Named {
    fn name(&self) -> &str;
}

/// A topic, as [`Destination`] gives it.
pub(crate) struct ByTopic<D, M>(pub(crate) D, pub(crate) PhantomData<fn() -> M>);

impl<D: Destination<M>, M> Named for ByTopic<D, M> {
    fn name(&self) -> &str {
        self.0.topic()
    }
}

/// A component's name (a direct request to one of its instances).
impl Named for &'static str {
    fn name(&self) -> &str {
        self
    }
}

/// A request: `send` delivers its envelope at the first poll (nothing is sent before) and
/// hands back the reply's receiving half, which is then awaited up to `after`.
///
/// One future in two stages, so a handler awaiting a request holds the larger of the
/// message to send and the wait, not both: nested `async fn`s keep every argument for the
/// whole wait (a request of an 8-byte message took 344 bytes of its caller's future, 144 now).
pub(crate) struct Asking<N, S, R> {
    to: N,
    stage: Stage<S, R>,
    after: Duration,
}

enum Stage<S, R> {
    Unsent(S),
    Waiting(Within<R>),
    Done,
}

impl<N, S, R> Asking<N, S, R> {
    pub(crate) fn new(to: N, send: S, after: Duration) -> Self {
        Asking {
            to,
            stage: Stage::Unsent(send),
            after,
        }
    }
}

// No field is ever pinned: `send` is moved out to be called, and the wait is `Unpin`.
impl<N, S, R> Unpin for Asking<N, S, R> {}

impl<N, S, R> Future for Asking<N, S, R>
where
    N: Named,
    S: FnOnce(&str) -> Result<Reply<R>, BusError>,
    R: 'static,
{
    type Output = Result<R, BusError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Stage::Unsent(_) = this.stage {
            let Stage::Unsent(send) = std::mem::replace(&mut this.stage, Stage::Done) else {
                unreachable!("the stage was just matched")
            };
            match send(this.to.name()) {
                Ok(reply) => this.stage = Stage::Waiting(reply.within(this.after)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let Stage::Waiting(wait) = &mut this.stage else {
            panic!("a request polled after it completed")
        };
        let outcome = ready!(Pin::new(wait).poll(cx));
        this.stage = Stage::Done;
        Poll::Ready(match outcome {
            Ok(Some(reply)) => reply,
            Ok(None) => Err(BusError::Closed),
            Err(Elapsed) => Err(BusError::Timeout {
                topic: this.to.name().to_owned(),
                after: this.after,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::EventBus;
    use crate::message::Message;

    struct Ping;
    impl Message for Ping {
        type Reply = u64;
    }

    #[test]
    fn a_request_holds_its_message_or_its_wait_not_both() {
        let bus = EventBus::new(Duration::from_secs(1));
        let request = bus.request("t.ping", Ping);
        // 136 bytes in the test build (144 for an 8-byte message in release, where the
        // nested `async fn`s this replaced made 344). A failure after a compiler or
        // dependency upgrade means the future grew, not that requests are wrong.
        let size = std::mem::size_of_val(&request);
        println!("a request from the bus: {size} bytes");
        assert!(size <= 160, "a request's future grew to {size} bytes");
    }
}
