//! A loom-aware stand-in for `crossbeam_queue::ArrayQueue`, for one consumer: a bounded FIFO
//! queue behind a loom mutex, whose length is published with release and read with acquire
//! ordering before the consumer takes the lock. So a pop may miss a push that is not yet
//! visible to it, as with a lock-free queue, and the wake-up protocol's own fences must make up
//! for it: the stand-in gives no more ordering than a release/acquire queue would.

use std::collections::VecDeque;

use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::sync::Mutex;

#[derive(Debug)]
pub(crate) struct ArrayQueue<T> {
    items: Mutex<VecDeque<T>>,
    len: AtomicUsize,
    capacity: usize,
}

impl<T> ArrayQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        ArrayQueue {
            items: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Queues `value`, or hands it back when the queue is full.
    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut items = self.items.lock().unwrap();
        if items.len() >= self.capacity {
            return Err(value);
        }
        items.push_back(value);
        drop(items);
        self.len.fetch_add(1, Ordering::Release);
        Ok(())
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
