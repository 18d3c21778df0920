//! A loom-aware stand-in for `std::sync::OnceLock`: `std`'s cell, published through a loom
//! atomic so that loom sees the hand-over (a release store after the value is set, an acquire
//! load before it is read) and may switch threads around it.

use ::loom::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub(crate) struct OnceLock<T> {
    value: std::sync::OnceLock<T>,
    published: AtomicBool,
}

impl<T> Default for OnceLock<T> {
    fn default() -> Self {
        OnceLock {
            value: std::sync::OnceLock::new(),
            published: AtomicBool::new(false),
        }
    }
}

impl<T> OnceLock<T> {
    pub(crate) fn get(&self) -> Option<&T> {
        if self.published.load(Ordering::Acquire) {
            self.value.get()
        } else {
            None
        }
    }

    /// The value, made by `f` if there is none yet; published, as `set` does. `f` must make no
    /// loom operation: it runs inside `std`'s cell, which loom cannot switch out of.
    pub(crate) fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        if let Some(value) = self.get() {
            return value;
        }
        let value = self.value.get_or_init(f);
        self.published.store(true, Ordering::Release);
        value
    }

    pub(crate) fn set(&self, value: T) -> Result<(), T> {
        self.value.set(value)?;
        self.published.store(true, Ordering::Release);
        Ok(())
    }
}
