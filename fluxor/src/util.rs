//! Small pieces used across layers: catching a future's panics, naming a panic, a future
//! that is one of two, a short list that keeps one item inline, and a clock reading that
//! fits in an atomic.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;

pin_project_lite::pin_project! {
    /// Polls a future, turning a panic during any poll into an `Err` with the panic payload.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

/// Catches the panics of `fut`'s polls (see [`CatchUnwind`]).
pub(crate) fn catch_unwind<F: Future>(fut: F) -> CatchUnwind<F> {
    CatchUnwind { inner: fut }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked with a non-string payload".to_owned()
    }
}

pin_project_lite::pin_project! {
    /// One of two futures. `#[component]` nests these to hand a message to its handler's
    /// future without boxing it: the dispatch future is as large as the largest handler's.
    #[project = EitherProj]
    #[allow(missing_docs)] // the fields are named `future`: nothing more to say
    #[derive(Debug)]
    pub enum Either<L, R> {
        /// The first future.
        Left {
            #[pin]
            future: L,
        },
        /// The second future.
        Right {
            #[pin]
            future: R,
        },
    }
}

impl<L: std::future::Future, R: std::future::Future<Output = L::Output>> std::future::Future
    for Either<L, R>
{
    type Output = L::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<L::Output> {
        match self.project() {
            EitherProj::Left { future } => future.poll(cx),
            EitherProj::Right { future } => future.poll(cx),
        }
    }
}

/// Values by name, in the order they were first added; adding a name again replaces its value.
/// What the runtime keeps of the snapshot sections and readiness checks a program adds.
pub(crate) struct Named<T>(std::sync::Mutex<Vec<(String, T)>>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(std::sync::Mutex::new(Vec::new()))
    }
}

impl<T> Named<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, T)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `value` under `name`, replacing a value of the same name in its place.
    pub(crate) fn insert(&self, name: String, value: T) {
        let mut all = self.lock();
        match all.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => all.push((name, value)),
        }
    }

    /// Removes the value named `name`; `false` if there was none.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let mut all = self.lock();
        let before = all.len();
        all.retain(|(n, _)| n != name);
        all.len() != before
    }

    /// Keeps only the values `keep` says yes to.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&T) -> bool) {
        self.lock().retain(|(_, v)| keep(v));
    }

    /// `f` of each name and value, in order (the lock is held meanwhile: keep `f` quick).
    pub(crate) fn map<R>(&self, mut f: impl FnMut(&str, &T) -> R) -> Vec<R> {
        self.lock().iter().map(|(n, v)| f(n, v)).collect()
    }
}

/// A short list that keeps one item inline and boxes more: most deployments have a single
/// instance, and their per-instance lists then cost no allocation of their own.
#[derive(Debug)]
pub(crate) enum Few<T> {
    One([T; 1]),
    Many(Box<[T]>),
}

impl<T> std::ops::Deref for Few<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Few::One(one) => one,
            Few::Many(many) => many,
        }
    }
}

impl<T> From<Vec<T>> for Few<T> {
    fn from(items: Vec<T>) -> Self {
        match <[T; 1]>::try_from(items) {
            Ok(one) => Few::One(one),
            Err(items) => Few::Many(items.into_boxed_slice()),
        }
    }
}

impl<T> FromIterator<T> for Few<T> {
    /// One item is kept inline without a detour through a `Vec`.
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut items = items.into_iter();
        let Some(first) = items.next() else {
            return Few::Many(Box::default());
        };
        let Some(second) = items.next() else {
            return Few::One([first]);
        };
        let mut all = Vec::with_capacity(2 + items.size_hint().0);
        all.push(first);
        all.push(second);
        all.extend(items);
        Few::Many(all.into_boxed_slice())
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = FewIter<T>;

    fn into_iter(self) -> FewIter<T> {
        match self {
            Few::One(one) => FewIter::One(one.into_iter()),
            Few::Many(many) => FewIter::Many(many.into_vec().into_iter()),
        }
    }
}

/// The items of a [`Few`], by value.
pub(crate) enum FewIter<T> {
    One(std::array::IntoIter<T, 1>),
    Many(std::vec::IntoIter<T>),
}

impl<T> Iterator for FewIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            FewIter::One(one) => one.next(),
            FewIter::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            FewIter::One(one) => one.size_hint(),
            FewIter::Many(many) => many.size_hint(),
        }
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The real-time origin of [`monotonic_nanos`].
static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Nanoseconds of the monotonic clock since the process first read it here, plus one (so
/// never zero): a time that fits in an atomic and means the same on every thread.
pub(crate) fn monotonic_nanos() -> std::num::NonZeroU64 {
    monotonic_nanos_at(std::time::Instant::now())
}

/// [`monotonic_nanos`] of `at`.
pub(crate) fn monotonic_nanos_at(at: std::time::Instant) -> std::num::NonZeroU64 {
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    let nanos =
        u64::try_from(at.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX - 1);
    std::num::NonZeroU64::MIN.saturating_add(nanos)
}

#[cfg(test)]
mod few_tests {
    use super::Few;

    #[test]
    fn a_few_keeps_its_items_in_order_and_one_inline() {
        assert!(matches!(Few::from(vec![7]), Few::One([7])));
        for n in [0usize, 2, 5] {
            let few: Few<usize> = (0..n).collect();
            assert!(matches!(few, Few::Many(_)));
            assert_eq!(&*few, (0..n).collect::<Vec<_>>().as_slice());
        }
        let few: Few<u32> = Few::from(vec![3]);
        assert_eq!(few.iter().copied().collect::<Vec<_>>(), [3]);
        assert!(matches!(
            std::iter::once(4).collect::<Few<_>>(),
            Few::One([4])
        ));
        for n in [0usize, 1, 2, 5] {
            let few: Few<String> = (0..n).map(|i| i.to_string()).collect();
            let back: Vec<String> = few.into_iter().collect();
            assert_eq!(back, (0..n).map(|i| i.to_string()).collect::<Vec<_>>());
        }
    }
}
