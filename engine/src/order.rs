//! A front's ordering rules, as a state machine the runtime drives (`src/front.rs`).
//!
//! ZooKeeper answers a connection's requests in the order it sent them. A write (or sync) is
//! answered when it commits; a read sent after it waits for that answer and is then answered
//! from a tree version that holds the write, and no later one: the next *flush point* the
//! pipeline publishes after that write (it keeps one for exactly this, told by
//! [`Queue::push_write`]'s answer). A read with nothing in flight before it is answered at once
//! from the front's current version. A ready reply (a MARSHALLINGERROR for a body that did not
//! decode, an auth answer) keeps its place among the reads.
//!
//! Per connection a [`Queue`] holds what is in flight, in order; per front a [`Flushes`] holds
//! the connections whose head reads wait for the next flush point. The runtime keeps the
//! trees, the sockets and the answers themselves: `W` is what it keeps for a write (when it
//! was received), `R` a read or ready reply waiting its turn.

use std::collections::VecDeque;

enum Slot<W, R> {
    Write { xid: i32, data: W },
    Read(R),
}

/// One connection's requests in flight, in the order they arrived.
pub struct Queue<W, R> {
    slots: VecDeque<Slot<W, R>>,
}

impl<W, R> Default for Queue<W, R> {
    fn default() -> Self {
        Queue {
            slots: VecDeque::new(),
        }
    }
}

impl<W, R> Queue<W, R> {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// A write or sync went to the pipeline. True when reads already wait behind an earlier
    /// write: the pipeline must then keep the version right before this one for them.
    pub fn push_write(&mut self, xid: i32, data: W) -> bool {
        let reads_waiting = self.slots.iter().any(|s| matches!(s, Slot::Read(_)));
        self.slots.push_back(Slot::Write { xid, data });
        reads_waiting
    }

    /// A read (or a ready reply). `Some` hands it back to be answered now, from the current
    /// version: nothing of this connection is in flight before it. `None`: it waits its turn.
    pub fn push_read(&mut self, read: R) -> Option<R> {
        if self.slots.is_empty() {
            Some(read)
        } else {
            self.slots.push_back(Slot::Read(read));
            None
        }
    }

    /// The pipeline answered the write at the head; its data comes back. Replies come in the
    /// order the writes were sent (the pipeline's promise), so anything else is a bug: panics.
    pub fn write_answered(&mut self, xid: i32) -> W {
        match self.slots.pop_front() {
            Some(Slot::Write { xid: head, data }) => {
                assert_eq!(head, xid, "replies come in request order");
                data
            }
            Some(Slot::Read(_)) => panic!("reply for xid {xid} while reads head the queue"),
            None => panic!("reply for xid {xid} with no write in flight"),
        }
    }

    /// Whether reads head the queue: they wait for the next flush point.
    pub fn reads_first(&self) -> bool {
        matches!(self.slots.front(), Some(Slot::Read(_)))
    }

    /// The next read at the head, if no write is in flight before it (at a flush point the
    /// runtime answers these until `None`).
    pub fn pop_ready(&mut self) -> Option<R> {
        if !self.reads_first() {
            return None;
        }
        match self.slots.pop_front() {
            Some(Slot::Read(r)) => Some(r),
            _ => unreachable!("checked by reads_first"),
        }
    }
}

/// The connections of one front whose head reads wait for the next flush point.
pub struct Flushes<C> {
    waiting: Vec<C>,
}

impl<C> Default for Flushes<C> {
    fn default() -> Self {
        Flushes {
            waiting: Vec::new(),
        }
    }
}

impl<C: Copy + PartialEq> Flushes<C> {
    /// After a write of `conn` was answered: its reads now at the head wait for the flush point
    /// that follows (the version with that write in it).
    pub fn after_answer<W, R>(&mut self, conn: C, queue: &Queue<W, R>) {
        if queue.reads_first() {
            self.waiting.push(conn);
        }
    }

    /// Whether `conn`'s reads wait for a flush point: a reply to `conn` now would overtake them.
    pub fn is_waiting(&self, conn: C) -> bool {
        self.waiting.contains(&conn)
    }

    /// A flush point: the connections whose head reads are to be answered now, from it, in the
    /// order their writes were answered. Hand the list back with [`Flushes::reuse`].
    pub fn take(&mut self) -> Vec<C> {
        std::mem::take(&mut self.waiting)
    }

    /// Gives back the list [`Flushes::take`] returned, emptied, to keep its allocation.
    pub fn reuse(&mut self, mut list: Vec<C>) {
        debug_assert!(
            self.waiting.is_empty(),
            "nothing is deferred while a flush runs"
        );
        list.clear();
        self.waiting = list;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Q = Queue<&'static str, &'static str>;

    #[test]
    fn a_read_with_nothing_in_flight_is_answered_at_once() {
        let mut q = Q::default();
        assert_eq!(q.push_read("get"), Some("get"));
        assert!(q.is_empty());
    }

    #[test]
    fn reads_behind_a_write_wait_for_its_answer_and_then_for_the_flush_point() {
        let mut q = Q::default();
        let mut f = Flushes::default();
        assert!(!q.push_write(1, "w1"), "no reads waiting yet");
        assert_eq!(q.push_read("r2"), None);
        assert_eq!(q.push_read("r3"), None);
        assert!(
            q.push_write(4, "w4"),
            "reads wait behind w1: keep their version"
        );
        assert_eq!(q.push_read("r5"), None);
        assert_eq!(q.pop_ready(), None, "w1 is in flight");

        assert_eq!(q.write_answered(1), "w1");
        f.after_answer(7, &q);
        assert!(f.is_waiting(7));
        let conns = f.take();
        assert_eq!(conns, vec![7]);
        assert_eq!(q.pop_ready(), Some("r2"));
        assert_eq!(q.pop_ready(), Some("r3"));
        assert_eq!(q.pop_ready(), None, "w4 is in flight before r5");
        f.reuse(conns);
        assert!(!f.is_waiting(7));

        assert_eq!(q.write_answered(4), "w4");
        f.after_answer(7, &q);
        assert_eq!(f.take(), vec![7]);
        assert_eq!(q.pop_ready(), Some("r5"));
        assert!(q.is_empty());
    }

    #[test]
    fn an_answer_with_writes_still_ahead_of_the_reads_defers_nothing() {
        let mut q = Q::default();
        let mut f = Flushes::default();
        q.push_write(1, "w1");
        q.push_write(2, "w2");
        assert_eq!(q.push_read("r3"), None);
        q.write_answered(1);
        f.after_answer(7, &q);
        assert!(!f.is_waiting(7), "w2 is still ahead of r3");
        assert!(f.take().is_empty());
    }

    #[test]
    #[should_panic(expected = "replies come in request order")]
    fn a_reply_out_of_order_is_a_bug() {
        let mut q = Q::default();
        q.push_write(1, "w1");
        q.push_write(2, "w2");
        q.write_answered(2);
    }

    #[test]
    #[should_panic(expected = "while reads head the queue")]
    fn a_reply_that_would_overtake_reads_is_a_bug() {
        let mut q = Q::default();
        q.push_write(1, "w1");
        q.push_read("r2");
        q.push_write(3, "w3");
        q.write_answered(1);
        q.write_answered(3);
    }
}
