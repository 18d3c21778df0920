//! The consumer list of one topic: copy-on-write in chunks, and the chunks in groups, so that
//! adding or removing one consumer of a topic that has many copies one chunk, one group's chunk
//! pointers and the groups' pointers, not the whole list (a broadcast topic every session
//! listens on stays cheap to join and leave).

use std::sync::Arc;

use super::registry::{Entry, Owner};

/// Entries per chunk: a change copies the chunk it touches (and drops the copy it replaced,
/// once no reader holds that snapshot), so chunks are small; an entry is ~70 bytes and three
/// reference counts.
const CHUNK: usize = 16;
/// Chunks per group: a change copies one group's chunk pointers.
const CHUNKS: usize = 64;
/// Entries per group.
const GROUP: usize = CHUNK * CHUNKS;

type Chunk = Arc<Vec<Entry>>;
type Group = Arc<Vec<Chunk>>;

/// A topic's consumers, in chunks of [`CHUNK`] entries and groups of [`CHUNKS`] chunks: every
/// chunk and every group is full but the last, so the `i`-th consumer is found by division.
/// Cloning copies one pointer.
#[derive(Clone, Default)]
pub(crate) struct Consumers {
    groups: Arc<[Group]>,
    len: usize,
}

impl Consumers {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th consumer.
    ///
    /// # Panics
    /// When `i >= len()`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &Entry {
        &self.groups[i / GROUP][i % GROUP / CHUNK][i % CHUNK]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .flat_map(|c| c.iter())
    }

    /// A copy with `new` added at the end; only the last group and chunk are copied.
    pub(crate) fn with(&self, new: Vec<Entry>) -> Consumers {
        let mut groups: Vec<Group> = self.groups.to_vec();
        let mut len = self.len;
        for entry in new {
            if len % GROUP == 0 {
                groups.push(Arc::default());
            }
            if let Some(group) = groups.last_mut() {
                let group = Arc::make_mut(group);
                if len % CHUNK == 0 {
                    group.push(Arc::new(Vec::with_capacity(CHUNK)));
                }
                if let Some(chunk) = group.last_mut() {
                    Arc::make_mut(chunk).push(entry);
                    len += 1;
                }
            }
        }
        Consumers {
            groups: groups.into(),
            len,
        }
    }

    /// A copy without the entries at positions `at`, and the moves made: each removed
    /// entry's place is taken by the list's last entry, so only the chunks touched (and their
    /// groups) are copied (the order of the others changes, which round-robin does not mind).
    /// A move is the moved entry's owner, its old place and its new one, in the order they
    /// happened (an entry may move twice).
    pub(crate) fn without_at(&self, mut at: Vec<usize>) -> (Consumers, Vec<(Owner, usize, usize)>) {
        at.sort_unstable_by(|a, b| b.cmp(a));
        at.dedup();
        let mut groups: Vec<Group> = self.groups.to_vec();
        let mut len = self.len;
        let mut moves = Vec::new();
        // From the back, so that a place still to be emptied is never the one filled.
        for i in at.into_iter().filter(|&i| i < self.len) {
            let Some(last) = pop_last(&mut groups) else {
                break;
            };
            len -= 1;
            if i < len {
                moves.push((last.owner, len, i));
                let group = Arc::make_mut(&mut groups[i / GROUP]);
                Arc::make_mut(&mut group[i % GROUP / CHUNK])[i % CHUNK] = last;
            }
        }
        (
            Consumers {
                groups: groups.into(),
                len,
            },
            moves,
        )
    }
}

/// Takes the list's last entry out, dropping the chunk and group it leaves empty.
fn pop_last(groups: &mut Vec<Group>) -> Option<Entry> {
    let group = Arc::make_mut(groups.last_mut()?);
    let chunk = Arc::make_mut(group.last_mut()?);
    let last = chunk.pop();
    if chunk.is_empty() {
        group.pop();
        if group.is_empty() {
            groups.pop();
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use super::*;
    use crate::bus::MailboxConsumer;
    use crate::ids::{DeploymentId, IdGen};
    use crate::mailbox::Mailbox;
    use crate::message::{Envelope, Message};

    struct Ping;
    impl Message for Ping {
        type Reply = ();
    }

    fn entry(deployment: DeploymentId, instance: usize) -> Entry {
        // The list never delivers here: the receiving side may go at once.
        let (mailbox, _rx) = Mailbox::<Envelope<Ping>>::bounded(1);
        Entry {
            owner: Owner {
                deployment,
                instance,
            },
            pattern: Arc::from("t"),
            consumer: Arc::new(MailboxConsumer {
                mailbox,
                wrap: |e| e,
                _msg: PhantomData,
            }),
            remote: None,
        }
    }

    fn owners(c: &Consumers) -> Vec<usize> {
        let mut v: Vec<usize> = c.iter().map(|e| e.owner.instance).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn adding_and_removing_keeps_every_other_consumer_and_copies_little() {
        let d = DeploymentId(IdGen::new().next());
        let mut list = Consumers::default();
        for i in 0..200 {
            list = list.with(vec![entry(d, i)]);
        }
        assert_eq!(list.len(), 200);
        let order: Vec<usize> = (0..200).map(|i| list.get(i).owner.instance).collect();
        assert_eq!(order, (0..200).collect::<Vec<_>>());

        // One from the first chunk goes: the last entry takes its place; the chunks in
        // between are the same allocations as before.
        let (after, moves) = list.without_at(vec![5]);
        assert_eq!(moves.len(), 1);
        assert_eq!((moves[0].0.instance, moves[0].1, moves[0].2), (199, 199, 5));
        assert_eq!(after.len(), 199);
        assert_eq!(
            owners(&after),
            (0..200).filter(|&i| i != 5).collect::<Vec<_>>()
        );
        assert_eq!(after.get(5).owner.instance, 199);
        assert!(Arc::ptr_eq(&list.groups[0][1], &after.groups[0][1]));
        assert!(Arc::ptr_eq(&list.groups[0][2], &after.groups[0][2]));
        // The original is untouched (readers of an older snapshot).
        assert_eq!(list.len(), 200);
        assert_eq!(list.get(5).owner.instance, 5);

        // Many at once, from every chunk and from the end (positions out of order, one
        // twice, one past the end); then all.
        let mut at: Vec<usize> = (0..after.len())
            .filter(|&i| {
                let o = after.get(i).owner.instance;
                o % 3 == 0 || o > 190
            })
            .collect();
        at.reverse();
        at.push(at[0]);
        at.push(10_000);
        let (after, moves) = after.without_at(at);
        let kept: Vec<usize> = (0..200)
            .filter(|&i| i != 5 && i % 3 != 0 && i <= 190)
            .collect();
        assert_eq!(owners(&after), kept);
        assert_eq!(after.len(), kept.len());
        // Every move lands its entry where the list now has it, unless it moved again.
        for (n, (owner, _, to)) in moves.iter().enumerate() {
            if !moves[n + 1..].iter().any(|(_, from, _)| from == to) {
                assert_eq!(after.get(*to).owner.instance, owner.instance);
            }
        }
        let (empty, _) = after.without_at((0..after.len()).collect());
        assert!(empty.is_empty());
        assert_eq!(empty.iter().count(), 0);
    }

    #[test]
    fn a_list_of_many_groups_copies_only_what_a_change_touches() {
        let d = DeploymentId(IdGen::new().next());
        let n = 2 * GROUP + 100;
        let list = Consumers::default().with((0..n).map(|i| entry(d, i)).collect());
        assert_eq!(list.len(), n);
        assert_eq!(list.groups.len(), 3);
        assert_eq!(list.get(GROUP + 7).owner.instance, GROUP + 7);
        assert_eq!(list.iter().count(), n);

        // One more: only the last group and chunk are new.
        let longer = list.with(vec![entry(d, n)]);
        assert_eq!(longer.get(n).owner.instance, n);
        assert!(Arc::ptr_eq(&list.groups[0], &longer.groups[0]));
        assert!(Arc::ptr_eq(&list.groups[1], &longer.groups[1]));

        // One from the middle group goes: the last entry takes its place; the first group is
        // shared, and so are the middle group's other chunks.
        let at = GROUP + 3 * CHUNK + 1;
        let (after, moves) = longer.without_at(vec![at]);
        assert_eq!(moves.len(), 1);
        assert_eq!((moves[0].1, moves[0].2), (n, at));
        assert_eq!(after.get(at).owner.instance, n);
        assert!(Arc::ptr_eq(&longer.groups[0], &after.groups[0]));
        assert!(Arc::ptr_eq(&longer.groups[1][0], &after.groups[1][0]));
        assert_eq!(
            owners(&after),
            (0..=n).filter(|&i| i != at).collect::<Vec<_>>()
        );

        // Everything past the first group goes: the emptied groups go with it.
        let (short, _) = after.without_at((GROUP..after.len()).collect());
        assert_eq!(short.len(), GROUP);
        assert_eq!(short.groups.len(), 1);
        assert_eq!(owners(&short), (0..GROUP).collect::<Vec<_>>());
        let (empty, _) = short.without_at((0..GROUP).collect());
        assert!(empty.is_empty() && empty.groups.is_empty());
    }
}
