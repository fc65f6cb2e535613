//! The standalone node: the [`Pipeline`] (sessions, prep, apply) plus the rules that decide what
//! is durable and when the fronts may see it, as a state machine. It does no IO: the runtime
//! feeds it requests, log and snapshot completions and ticks, and carries out the [`Output`]s.
//!
//! The rules (they lived in the runtime's round loop before):
//! - **Durability gate.** Prep applies a write to the newest tree at once, so later writes are
//!   checked against it, but nothing leaves the node before its txn is durable: every committed
//!   entry, connect reply and sync answer is held with the zxid of the latest txn before it (its
//!   *gate*) and published only once the log reports that zxid synced.
//! - **Group commit.** One log write (one fdatasync) at a time. While it is in flight, the txns of
//!   the rounds that follow gather; when it completes they go down together as the next write.
//!   Past `pending_txns_max` waiting txns the node stops accepting requests
//!   ([`Node::accepting`]) until the write completes.
//! - **Flush points.** Each log write ends with an [`Entry::Flush`] carrying the tree after its
//!   txns: the one version fronts move to. A version is O(1) to take, but every later change then
//!   copies the map paths it touches, so one is taken per log write, not per commit. The one
//!   exception is `version_before`: a connection that writes (or syncs) again before the next
//!   flush point with reads queued behind its earlier write gets the version just before, so
//!   those reads see the earlier write and not this one.
//! - **Snapshots.** After about `snap_count` logged txns (more than half of it plus a roll below
//!   half, as ZooKeeper's `SyncRequestProcessor`; the roll comes from a seed the runtime gives),
//!   the node asks for a snapshot of its newest version; one at a time.
//!
//! Invariants ([`Node::check_invariants`]): synced <= the pipeline's last zxid; gates of held
//! entries never decrease; with no log write in flight, no txn waits for one unless the round is
//! still open.

use crate::pipeline::{Committed, ConnectOutcome, Origin, Pipeline};
use crate::proto::{ConnectRequest, Id, Request};
use crate::snap::SnapSession;
use crate::tree::DataTree;
use crate::txn::Txn;
use crate::watch::ConnId;
use std::collections::{HashSet, VecDeque};

/// One entry of the committed stream the fronts apply in order. Nearly every entry is a commit,
/// so the variants are not boxed to even out their sizes.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Entry {
    Commit(Committed),
    /// A sync, answered once everything before it is applied. `version_before` as in
    /// [`Committed`].
    SyncDone {
        origin: Origin,
        path: String,
        zxid: i64,
        version_before: Option<DataTree>,
    },
    /// The answer to `conn`'s connect request, in the stream so that its front has applied
    /// everything before it (the session's creation included) by the time the client can send a
    /// request on the new session.
    ConnectReply {
        conn: ConnId,
        outcome: ConnectOutcome,
    },
    /// A session was resumed on `conn`: any other connection of it must close.
    Resumed {
        session_id: i64,
        conn: ConnId,
    },
    /// A flush point (one per log write): the tree after the entries before it. Fronts move to
    /// it and answer the reads that waited behind those writes and syncs.
    Flush(DataTree),
    /// An ensemble's leader made another server this session's owner (it was resumed there):
    /// a connection of it on the leader is closed at its next request, read or ping included,
    /// unanswered, as ZooKeeper's leader closes it (SESSIONMOVED).
    MovedAway {
        session_id: i64,
    },
}

/// What the node is asked to do.
#[derive(Debug)]
pub enum Input {
    Connect {
        conn: ConnId,
        req: ConnectRequest,
    },
    /// `reads_waiting`: the connection has reads queued behind an earlier write or sync.
    Write {
        origin: Origin,
        session_id: i64,
        req: Request,
        auth: Vec<Id>,
        reads_waiting: bool,
    },
    Sync {
        origin: Origin,
        session_id: i64,
        path: String,
        reads_waiting: bool,
    },
    /// Sessions that showed activity (reads, pings) on a front.
    Touch {
        sessions: Vec<i64>,
    },
    /// The `snap` four-letter word; `token` names the asker in the answer.
    SnapshotAsked {
        token: u64,
    },
}

/// What the runtime must do.
#[derive(Debug)]
pub enum Output {
    /// Write these txns to the log as one write with one fdatasync, then report
    /// [`Node::log_synced`] with the last zxid.
    AppendLog(Vec<Txn>),
    /// Entries whose txns are durable, for every front, in order, with the tree version at the
    /// last flush point among them (or the one published before).
    Publish {
        entries: Vec<Entry>,
        version: DataTree,
    },
    /// Write a snapshot of this version and these sessions (both at the version's zxid), then
    /// report [`Node::snapshot_written`]. `token` is set when the `snap` word asked for it.
    WriteSnapshot {
        tree: DataTree,
        sessions: Vec<SnapSession>,
        token: Option<u64>,
    },
    /// A snapshot was due by count but the previous one is still being written: skipped, as in
    /// ZooKeeper (the runtime logs it).
    SnapshotSkipped,
    /// The `snap` word asked while a snapshot is being written.
    SnapshotBusy { token: u64 },
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `snapCount`.
    pub snap_count: u64,
    /// Most txns waiting for the log while a write is in flight (see [`Node::accepting`]).
    pub pending_txns_max: usize,
}

/// When to snapshot: counts logged txns against a threshold rolled from a seed.
#[derive(Debug)]
pub(crate) struct SnapTrigger {
    snap_count: u64,
    pub(crate) txns_since: u64,
    pub(crate) threshold: u64,
    /// splitmix64 state: the runtime's seed, then each roll.
    rng: u64,
    /// A snapshot is being written.
    pub(crate) busy: bool,
}

impl SnapTrigger {
    pub(crate) fn new(snap_count: u64, seed: u64) -> SnapTrigger {
        let mut t = SnapTrigger {
            snap_count,
            txns_since: 0,
            threshold: 0,
            rng: seed,
            busy: false,
        };
        t.roll();
        t
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// ZooKeeper's rule: more than snapCount/2 plus a roll below snapCount/2.
    pub(crate) fn roll(&mut self) {
        let half = self.snap_count / 2;
        self.threshold = half + self.next_random() % half.max(1);
        self.txns_since = 0;
    }
}

/// The standalone node.
pub struct Node {
    pipeline: Pipeline,
    cfg: NodeConfig,
    /// The newest zxid the log has made durable.
    synced_zxid: i64,
    /// The tree at the last published flush point.
    durable_version: DataTree,
    /// Entries waiting for their gate to be durable, in order.
    held: VecDeque<(i64, Entry)>,
    /// Txns waiting for the next log write.
    pending_txns: Vec<Txn>,
    log_busy: bool,
    /// Since the last flush point: something the fronts must flush for, and who wrote or synced.
    unflushed: bool,
    span_conns: HashSet<ConnId>,
    snap: SnapTrigger,
}

impl Node {
    /// A node over a pipeline restored from disk (everything in it is durable). `seed` rolls the
    /// snapshot thresholds.
    pub fn new(pipeline: Pipeline, cfg: NodeConfig, seed: u64) -> Node {
        let snap = SnapTrigger::new(cfg.snap_count, seed);
        Node {
            synced_zxid: pipeline.last_zxid(),
            durable_version: pipeline.version(),
            pipeline,
            cfg,
            held: VecDeque::new(),
            pending_txns: Vec::new(),
            log_busy: false,
            unflushed: false,
            span_conns: HashSet::new(),
            snap,
        }
    }

    /// What to do before serving: publish the recovered version, so fronts can serve reads, and
    /// after a replayed log tail longer than half of snapCount, snapshot it (ZooKeeper snapshots
    /// on every start), so the next restart does not replay it again.
    pub fn start(&mut self, replayed_txns: usize) -> Vec<Output> {
        let mut out = vec![Output::Publish {
            entries: Vec::new(),
            version: self.durable_version.clone(),
        }];
        if replayed_txns as u64 > self.cfg.snap_count / 2 {
            out.push(self.snapshot(None));
        }
        out
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Wall time minus the inputs' `now_ms`: see [`Pipeline::set_wall_offset`].
    pub fn set_wall_offset(&mut self, ms: i64) {
        self.pipeline.set_wall_offset(ms);
    }

    /// False while `pending_txns_max` txns wait for a log write: the runtime stops taking
    /// requests (its fronts then stop reading their connections) until the write completes.
    pub fn accepting(&self) -> bool {
        self.pending_txns.len() < self.cfg.pending_txns_max
    }

    /// Handles one request. What it decides waits in the node until [`Node::end_round`].
    pub fn handle(&mut self, input: Input, now_ms: i64) -> Vec<Output> {
        match input {
            Input::Connect { conn, req } => {
                let (outcome, committed) = self.pipeline.connect(&req, now_ms);
                if let Some(c) = committed {
                    self.hold(Entry::Commit(c));
                }
                if let ConnectOutcome::Accepted { session_id, .. } = outcome {
                    if req.session_id != 0 {
                        self.hold(Entry::Resumed { session_id, conn });
                    }
                }
                self.hold(Entry::ConnectReply { conn, outcome });
            }
            Input::Write {
                origin,
                session_id,
                req,
                auth,
                reads_waiting,
            } => {
                let before = self.version_before(origin.conn, reads_waiting);
                let mut c = self.pipeline.write(origin, session_id, &req, &auth, now_ms);
                c.version_before = before;
                self.hold(Entry::Commit(c));
            }
            Input::Sync {
                origin,
                session_id,
                path,
                reads_waiting,
            } => {
                let version_before = self.version_before(origin.conn, reads_waiting);
                self.pipeline.touch(&[session_id], now_ms);
                let zxid = self.pipeline.last_zxid();
                self.hold(Entry::SyncDone {
                    origin,
                    path,
                    zxid,
                    version_before,
                });
            }
            Input::Touch { sessions } => self.pipeline.touch(&sessions, now_ms),
            Input::SnapshotAsked { token } => {
                return vec![if self.snap.busy {
                    Output::SnapshotBusy { token }
                } else {
                    self.snapshot(Some(token))
                }];
            }
        }
        Vec::new()
    }

    /// Time passes: session expiry, containers and TTL nodes (their txns are held like writes).
    pub fn tick(&mut self, now_ms: i64) {
        for c in self.pipeline.tick(now_ms) {
            self.hold(Entry::Commit(c));
        }
    }

    /// The log has made every txn up to `zxid` durable; the write in flight is done.
    pub fn log_synced(&mut self, zxid: i64) {
        assert!(
            zxid <= self.pipeline.last_zxid(),
            "log synced {zxid:#x}, past the last zxid {:#x}",
            self.pipeline.last_zxid()
        );
        self.synced_zxid = self.synced_zxid.max(zxid);
        self.log_busy = false;
    }

    /// The snapshot asked for last is written (or failed; the log still holds everything).
    pub fn snapshot_written(&mut self) {
        self.snap.busy = false;
    }

    /// Ends a round of inputs: with the log idle, the waiting txns become the next log write and
    /// the tree after them a flush point; then everything whose gate is durable is published.
    pub fn end_round(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if self.unflushed && !self.log_busy {
            let zxid = self.pipeline.last_zxid();
            self.held
                .push_back((zxid, Entry::Flush(self.pipeline.version())));
            self.unflushed = false;
            self.span_conns.clear();
            if !self.pending_txns.is_empty() {
                let txns = std::mem::take(&mut self.pending_txns);
                let n = txns.len() as u64;
                out.push(Output::AppendLog(txns));
                self.log_busy = true;
                self.snap.txns_since += n;
                if self.snap.txns_since > self.snap.threshold {
                    out.push(if self.snap.busy {
                        Output::SnapshotSkipped
                    } else {
                        self.snapshot(None)
                    });
                    self.snap.roll();
                }
            }
        }
        let mut release = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|(gate, _)| *gate <= self.synced_zxid)
        {
            release.push(self.held.pop_front().expect("checked").1);
        }
        if !release.is_empty() {
            // The version at the last released flush point; with none released, the one
            // published before. Never the pipeline's newest: that one holds txns the log has not
            // synced. Each log write ends with a flush point, so a released commit always comes
            // with it.
            let last_commit = release.iter().rposition(|e| matches!(e, Entry::Commit(_)));
            let last_flush = release.iter().rposition(|e| matches!(e, Entry::Flush(_)));
            assert!(
                last_commit <= last_flush,
                "a released commit without its flush point"
            );
            if let Some(Entry::Flush(v)) = last_flush.map(|i| &release[i]) {
                self.durable_version = v.clone();
            }
            out.push(Output::Publish {
                entries: release,
                version: self.durable_version.clone(),
            });
        }
        out
    }

    /// Holds an entry until its txn (a commit), or the latest txn so far (anything else), is
    /// durable.
    fn hold(&mut self, entry: Entry) {
        let gate = match &entry {
            Entry::Commit(c) => {
                self.pending_txns.push(c.txn.clone());
                self.unflushed = true;
                c.txn.zxid
            }
            Entry::SyncDone { .. } => {
                self.unflushed = true;
                self.pipeline.last_zxid()
            }
            _ => self.pipeline.last_zxid(),
        };
        self.held.push_back((gate, entry));
    }

    /// The version just before this write or sync, if its connection already wrote since the
    /// last flush point and has reads waiting behind that: those reads must not see this one.
    fn version_before(&mut self, conn: ConnId, reads_waiting: bool) -> Option<DataTree> {
        let repeat = !self.span_conns.insert(conn);
        (repeat && reads_waiting).then(|| self.pipeline.version())
    }

    fn snapshot(&mut self, token: Option<u64>) -> Output {
        assert!(!self.snap.busy, "one snapshot at a time");
        self.snap.busy = true;
        Output::WriteSnapshot {
            tree: self.pipeline.version(),
            sessions: self.pipeline.sessions().snap_sessions(),
            token,
        }
    }

    pub fn check_invariants(&self) {
        self.pipeline.check_invariants();
        assert!(self.synced_zxid <= self.pipeline.last_zxid());
        assert!(self.durable_version.last_zxid() <= self.synced_zxid);
        let gates: Vec<i64> = self.held.iter().map(|(g, _)| *g).collect();
        assert!(gates.windows(2).all(|w| w[0] <= w[1]), "gates out of order");
        assert!(
            self.pending_txns
                .windows(2)
                .all(|w| w[0].zxid + 1 == w[1].zxid),
            "pending txns out of order"
        );
        if let Some(first) = self.pending_txns.first() {
            assert!(first.zxid > self.synced_zxid, "a synced txn still pending");
        }
    }
}

#[cfg(test)]
mod tests;
