//! Identifiers: deployment ids and the generator of envelope ids.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use uuid::Uuid;

/// Identifies one deployment. Returned by [`Fluxor::deploy`](crate::Fluxor::deploy).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DeploymentId(pub(crate) Uuid);

impl DeploymentId {
    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeploymentId({})", self.0)
    }
}

/// Makes envelope ids: a random per-runtime prefix and a counter, so an id costs no call to
/// the random number generator. Each thread takes the counter in blocks of [`ID_BLOCK`], so
/// threads making ids at once (two reactors sending) do not contend on one shared atomic;
/// ids stay unique, though not ordered across threads.
#[derive(Debug)]
pub(crate) struct IdGen {
    /// Tells this generator's blocks from another's in a thread's cache.
    key: u64,
    prefix: u64,
    counter: AtomicU64,
}

/// Ids a thread takes from a generator at once.
const ID_BLOCK: u64 = 1024;

/// Keys of the generators made in this process (a tag for the per-thread caches only).
static GENERATOR_KEYS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's current block: (generator key, next id, end of the block).
    static ID_CACHE: std::cell::Cell<(u64, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

impl IdGen {
    pub(crate) fn new() -> Self {
        let (prefix, _) = Uuid::new_v4().as_u64_pair();
        IdGen {
            key: GENERATOR_KEYS.fetch_add(1, Ordering::Relaxed),
            prefix,
            counter: AtomicU64::new(1),
        }
    }

    #[inline]
    pub(crate) fn next(&self) -> Uuid {
        let n = ID_CACHE.with(|cache| {
            let (key, next, end) = cache.get();
            if key == self.key && next < end {
                cache.set((key, next + 1, end));
                next
            } else {
                let start = self.counter.fetch_add(ID_BLOCK, Ordering::Relaxed);
                cache.set((self.key, start + 1, start + ID_BLOCK));
                start
            }
        });
        self.id(n)
    }

    /// An id taken from the shared counter alone, not from a thread's block: ids made one
    /// after another are consecutive numbers, whichever threads make them and whatever other
    /// ids those threads make in between (a thread's cache holds one generator's block, so
    /// mixing two generators on one thread starts a new block at each switch). For ids made
    /// at a modest rate that are looked up by number (deployments), at the price of one shared
    /// atomic step each.
    pub(crate) fn next_in_sequence(&self) -> Uuid {
        self.id(self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// The id numbered `n`.
    #[inline]
    fn id(&self, n: u64) -> Uuid {
        // The version (8, custom: the high nibble of byte 6) and the RFC 4122 variant (the top
        // bits 10 of byte 8), set on the two halves: whole-word stores, where setting bytes of
        // the finished id would make the next 16-byte read of it wait for them.
        let high = (self.prefix & !0xF000) | 0x8000;
        let low = (n & !(0xC0 << 56)) | (0x80 << 56);
        Uuid::from_u64_pair(high, low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_custom_version_and_the_rfc_4122_variant() {
        let ids = IdGen::new();
        for _ in 0..3 {
            let id = ids.next();
            let built = uuid::Builder::from_bytes(id.into_bytes())
                .with_variant(uuid::Variant::RFC4122)
                .with_version(uuid::Version::Custom)
                .into_uuid();
            assert_eq!(id, built, "setting them again changes nothing");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn ids_are_unique_and_share_a_prefix() {
        let ids = IdGen::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.as_u64_pair().0 & !0xF000, b.as_u64_pair().0 & !0xF000);
        assert_eq!(a.get_version(), Some(uuid::Version::Custom));
    }

    #[test]
    fn ids_stay_unique_across_threads_and_generators() {
        let one = std::sync::Arc::new(IdGen::new());
        let two = IdGen::new();
        let mut all: Vec<Uuid> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let one = one.clone();
                    s.spawn(move || (0..3 * ID_BLOCK).map(|_| one.next()).collect::<Vec<_>>())
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("the thread finished"))
                .collect()
        });
        // Interleaving two generators on one thread refills the thread's block each time;
        // ids in sequence come from the same counter as the blocks.
        for _ in 0..10 {
            all.push(one.next());
            all.push(two.next());
            all.push(one.next_in_sequence());
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "no id repeats");
    }

    #[test]
    fn ids_in_sequence_are_consecutive_whatever_else_the_thread_makes() {
        let (deployments, envelopes) = (IdGen::new(), IdGen::new());
        let low = |id: Uuid| id.as_u64_pair().1 & !(0xC0 << 56);
        let mut last = low(deployments.next_in_sequence());
        for _ in 0..100 {
            let _ = envelopes.next();
            let id = deployments.next_in_sequence();
            assert_eq!(id.get_version(), Some(uuid::Version::Custom));
            assert_eq!(low(id), last + 1);
            last += 1;
        }
        let elsewhere = std::thread::scope(|s| {
            s.spawn(|| low(deployments.next_in_sequence()))
                .join()
                .expect("the thread finished")
        });
        assert_eq!(
            elsewhere,
            last + 1,
            "the next number, from another thread too"
        );
    }
}
