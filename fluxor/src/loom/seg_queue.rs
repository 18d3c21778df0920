//! A loom-aware stand-in for `crossbeam_queue::SegQueue`, for one consumer: a FIFO queue
//! behind a loom mutex, whose length is published with release and read with acquire
//! ordering before the consumer takes the lock. So a pop may miss a push that is not yet
//! visible to it, as with a lock-free queue, and the wake-up protocol's own fences must make up
//! for it: the stand-in gives no more ordering than a release/acquire queue would.

use std::collections::VecDeque;

use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::sync::Mutex;

#[derive(Debug)]
pub(crate) struct SegQueue<T> {
    items: Mutex<VecDeque<T>>,
    len: AtomicUsize,
}

impl<T> Default for SegQueue<T> {
    fn default() -> Self {
        SegQueue {
            items: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
        }
    }
}

impl<T> SegQueue<T> {
    pub(crate) fn push(&self, value: T) {
        self.items.lock().unwrap().push_back(value);
        self.len.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let value = self.items.lock().unwrap().pop_front()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(value)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.lock().unwrap().is_empty()
    }
}
