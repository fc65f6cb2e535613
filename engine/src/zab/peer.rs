//! One member of an ensemble as a state machine: leader election ([`Election`]), then ZAB's
//! discovery, sync and broadcast, as a leader or as a learner (follower or observer). It does no
//! IO and reads no clock: the runtime (or the simulator) feeds it messages, log completions and
//! the time, and carries out the [`Output`]s in order.
//!
//! It works on txns and zxids only. Whoever owns it keeps the znode tree: it preps client writes
//! against its newest tree and hands the txns to [`Peer::propose`] (on the leader), applies the
//! txns of [`Output::Apply`], and rebuilds or replaces the tree on [`Output::Truncate`] and
//! [`Output::Install`]. Invariant the owner keeps: its tree is at [`Peer::applied`].
//!
//! The protocol, as ZooKeeper 3.5+ runs it (`Leader`, `LearnerHandler`, `Learner`):
//! - **Discovery.** A learner opens a connection to the leader it elected and sends its accepted
//!   epoch (FOLLOWERINFO, OBSERVERINFO). Once a quorum of voters (the leader included) has, the
//!   leader takes one more than the highest accepted epoch it heard as the new epoch, records it
//!   as accepted, and sends it (LEADERINFO). A learner accepts a newer epoch (and records it), or
//!   acknowledges one it had already accepted, or gives up on a leader whose epoch is older than
//!   one it accepted. Its answer (ACKEPOCH) carries its current epoch and last zxid; a leader
//!   that hears of a voter more recent than itself gives up. On a quorum of answers the leader
//!   makes the new epoch current.
//! - **Sync.** Each learner is brought to the leader's history: DIFF (the txns it lacks, each a
//!   PROPOSAL and a COMMIT), TRUNC (it has txns past the end of the leader's log: it drops
//!   them), or SNAP (too far behind, or its extra txns are in an older epoch than what follows
//!   in the leader's log: a whole snapshot). Then NEWLEADER. The learner makes everything durable,
//!   only then records the new epoch as current, and acknowledges. A quorum of acknowledgements
//!   (the leader's own log durable included) establishes the leader; every acknowledged learner
//!   gets UPTODATE and starts serving.
//! - **Broadcast.** The leader gives each write the next zxid, sends it (PROPOSAL) to the synced
//!   followers while writing it to its own log, and counts acknowledgements: its own log
//!   completion and each follower's ACK (sent once the follower's log has the txn). A txn is
//!   committed once a quorum of voters has it durable and every txn before it is committed; then
//!   COMMIT goes to followers and INFORM (with the txn) to observers.
//!   Beyond ZooKeeper, between Ringkeeper servers: a follower that asked for it is told how far
//!   the leader's log is durable ([`Msg::LeaderSynced`]) whenever that passes the commit point.
//!   Where the follower and the leader make a quorum, what both have durable is committed (a
//!   quorum has it, the rule above), so the follower applies it at once; the COMMIT that
//!   follows finds it applied. Such a follower, syncing again while ahead of the commit point
//!   in the leader's own epoch, is diffed from its last zxid rather than truncated to the
//!   commit point as ZooKeeper does (its log is a prefix of the leader's, and it may have
//!   applied, even snapshotted, what a TRUNC would take back).
//! - **Liveness.** The leader pings its learners every half tick; a learner that hears nothing
//!   for `sync_limit` ticks (`init_limit` while syncing) gives up on the leader, and a leader that
//!   has not heard from a quorum for `sync_limit` ticks steps down. Each gives up by electing
//!   again.
//! - **Leaving a role.** Like ZooKeeper's `fastForwardDataBase`, a server that stops leading or
//!   following applies everything in its log (its tree then matches its log, which is what it
//!   votes with); the next sync truncates whatever the new leader does not have.
//!
//! The connections are reliable and in order until they close, as TCP is; a peer never relies on
//! a message arriving, only on the order of those that do. Each learner connection has an id the
//! learner picks; messages on a connection the receiver does not know are dropped (or, for a
//! learner's opening, answered by closing it).
//!
//! Invariants ([`Peer::check_invariants`]): history holds consecutive zxids of this server's log,
//! `applied <= last_logged`, `synced <= last_logged`; a leader's `committed` is `applied`.

use crate::proto::{Id, Request};
use crate::quorum::{state, Notification};
use crate::txn::Txn;
use crate::zab::election::{answer_looking, Election, ElectionConfig, Output as ElectionOut, Vote};
use crate::zab::{epoch_of, make_zxid};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub my_id: i64,
    /// The voting members, sorted.
    pub voters: Vec<i64>,
    /// The observers, sorted.
    pub observers: Vec<i64>,
    /// `tickTime`.
    pub tick_ms: i64,
    /// `initLimit`, in ticks: how long discovery and sync may take.
    pub init_limit: i64,
    /// `syncLimit`, in ticks: how long a leader and a learner may go unheard.
    pub sync_limit: i64,
    /// How many recent txns a member keeps for DIFF, at most, and how many bytes of them
    /// (ZooKeeper keeps `commitLogCount` in memory); for a learner further behind, the leader's
    /// log is read (`Output::ReadLog`).
    pub diff_window: usize,
    pub diff_window_bytes: u64,
    /// A diff of at most this many txns is sent whatever its size (ZooKeeper's
    /// `commitLogCount`, 500); a longer one only while its txns come to at most
    /// `snapshot_size_factor` of the tree (ZooKeeper's, 0.33), else SNAP is cheaper. A
    /// negative factor turns the longer ones off, and with them DIFFs from the log, as
    /// ZooKeeper's does.
    pub diff_always: usize,
    pub snapshot_size_factor: f64,
    /// Election: `finalizeWait` and `maxNotificationInterval`.
    pub finalize_wait_ms: i64,
    pub max_notification_interval_ms: i64,
    /// The configuration text sent with votes.
    pub config: Bytes,
    /// How long a learner waits before dialing a leader that refused it again (ZooKeeper's
    /// `leaderConnectDelayDuringRetryMs`, 100): the leader may not have finished its own
    /// election yet.
    pub leader_connect_retry_ms: i64,
    /// Where this run's count of opened connections starts, so that a restarted server's
    /// connection ids differ from its earlier run's (the runtime passes, say, the boot time).
    pub first_conn: u64,
}

impl PeerConfig {
    fn is_voter(&self, id: i64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn has_quorum(&self, ids: impl Iterator<Item = i64>) -> bool {
        ids.filter(|id| self.is_voter(*id)).count() >= self.quorum()
    }
}

/// What a server has on disk when it starts.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// The `acceptedEpoch` file.
    pub accepted_epoch: i64,
    /// The `currentEpoch` file.
    pub current_epoch: i64,
    /// The zxid of the last txn in the log (or of the snapshot, if the log is empty past it).
    pub last_zxid: i64,
    /// The newest txns of the log, oldest first, ending at `last_zxid` (up to `diff_window` of
    /// them; fewer is fine, more are dropped).
    pub recent: Vec<Txn>,
    /// The zxid of the txn the log holds right before `recent`'s first (the snapshot's when
    /// `recent` starts right after it; 0 when it is the log's first). Unknown, the first's
    /// zxid less one will do: it only makes a learner at an older epoch's last txn get SNAP.
    pub recent_base: i64,
    /// The zxid of the newest snapshot on disk (0: none).
    pub snapshot_zxid: i64,
}

/// A client write a learner hands to the leader (REQUEST).
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub session_id: i64,
    pub cxid: i32,
    pub req: Request,
    pub auth: Vec<Id>,
}

/// A whole-state image sent with SNAP. The owner builds it from its tree at the zxid of
/// [`Output::SendSnap`] and installs it on [`Output::Install`].
#[derive(Debug, Clone)]
pub struct Image {
    pub tree: crate::tree::DataTree,
    /// The sessions at the same zxid.
    pub sessions: Vec<crate::snap::SnapSession>,
    /// 0 for an exact image of the tree at its zxid. A Java leader's is fuzzy (serialized
    /// while txns went on): txns after its zxid, through this one, may already show in it,
    /// and are applied over it as ZooKeeper applies them (`javafiles::fit`).
    pub fuzzy_through: i64,
}

/// Messages on the quorum port (ZooKeeper's packet types; `quorum::packet` has their numbers).
#[derive(Debug, Clone)]
pub enum Msg {
    /// FOLLOWERINFO or OBSERVERINFO: the zxid field is `make_zxid(accepted_epoch, 0)`.
    /// `leader_synced`: the learner takes [`Msg::LeaderSynced`] (a Ringkeeper server; Java's
    /// never does).
    LearnerInfo {
        accepted_epoch: i64,
        observer: bool,
        leader_synced: bool,
    },
    LeaderInfo {
        new_epoch: i64,
    },
    /// `current_epoch` is -1 when the new epoch was not new to the learner.
    AckEpoch {
        current_epoch: i64,
        last_zxid: i64,
    },
    Diff {
        zxid: i64,
    },
    Trunc {
        zxid: i64,
    },
    Snap {
        zxid: i64,
        image: Image,
    },
    Proposal(Txn),
    Commit {
        zxid: i64,
    },
    /// (Leader to learner, in a sync; no packet of its own) every txn the leader's log holds
    /// after `after` through `through`, each as a PROPOSAL and a COMMIT, read from the log as
    /// the connection drains (see [`LogSpan`]). If the log no longer gives them all, the
    /// connection closes and the learner syncs again.
    FromLog {
        after: i64,
        through: i64,
    },
    Inform(Txn),
    NewLeader {
        zxid: i64,
    },
    Ack {
        zxid: i64,
    },
    UpToDate,
    /// The leader's ping is empty; a learner's answer carries the sessions its clients touched
    /// since its last answer, with their timeouts.
    Ping {
        touches: Vec<(i64, i32)>,
    },
    Request(Forward),
    /// A learner's client asked for `sync` (a REQUEST of type sync on ZooKeeper's wire; its
    /// request is `Request::Sync`).
    SyncRequest(Forward),
    /// The leader's answer to the oldest sync request a learner has outstanding.
    Sync,
    /// A learner's client reconnected with this session (ZooKeeper's REVALIDATE): is it live?
    /// The leader makes the learner the session's owner if so.
    Revalidate {
        session_id: i64,
        timeout_ms: i32,
    },
    /// The leader's answer to [`Msg::Revalidate`].
    Revalidated {
        session_id: i64,
        valid: bool,
    },
    /// (Ringkeeper's own, leader to a follower that takes it) the leader's log is durable
    /// through `zxid`. Where the leader and that follower make a quorum (three voters), the
    /// follower commits whatever both have durable without waiting for the COMMIT, which saves
    /// the ACK's and the COMMIT's trips for its own clients' writes.
    LeaderSynced {
        zxid: i64,
    },
}

/// What a learner's FOLLOWERINFO or OBSERVERINFO says ([`Msg::LearnerInfo`]).
#[derive(Debug, Clone, Copy)]
struct Hello {
    accepted_epoch: i64,
    observer: bool,
    leader_synced: bool,
}

/// What `mntr` shows of a leader (ZooKeeper's `zk_learners`, `zk_synced_followers`,
/// `zk_synced_observers`, `zk_pending_syncs`): learners connected, voting followers and
/// observers in step (UPTODATE sent), and learners' syncs not yet answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderStats {
    pub learners: u64,
    pub synced_followers: u64,
    pub synced_observers: u64,
    pub pending_syncs: u64,
}

/// What this server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    /// Leading `epoch` (once a quorum acknowledged it, and it is current); `established` once a
    /// quorum acknowledged NEWLEADER.
    Leading {
        epoch: Option<i64>,
        established: bool,
    },
    /// Following (or observing) `leader`; `serving` once UPTODATE came.
    Following {
        leader: i64,
        observer: bool,
        serving: bool,
    },
}

/// What the runtime must do, in order.
#[derive(Debug, Clone)]
pub enum Output {
    /// An election notification, on the election port.
    Vote {
        to: i64,
        note: Notification,
    },
    /// A message on quorum connection `conn` with `to`.
    Send {
        to: i64,
        conn: u64,
        msg: Msg,
    },
    /// Close quorum connection `conn` with `to`.
    Close {
        to: i64,
        conn: u64,
    },
    /// Survey the log, for learner `to` behind the DIFF window: the txns after `after` through
    /// `through` (see [`log_range`]); hand the [`LogSpan`] to [`Peer::log_read`] (None if the
    /// log cannot give them, or they are too many).
    ReadLog {
        to: i64,
        conn: u64,
        after: i64,
        through: i64,
        limits: LogLimits,
    },
    /// Send `Msg::Snap` with an [`Image`] of the tree at `zxid` (the owner's tree is at it now).
    SendSnap {
        to: i64,
        conn: u64,
        zxid: i64,
    },
    /// Call [`Peer::tick`] at this time.
    WakeAt(i64),
    /// Write the `acceptedEpoch` (or `currentEpoch`) file durably before anything that follows.
    SaveAcceptedEpoch(i64),
    SaveCurrentEpoch(i64),
    /// Append these txns to the log; report [`Peer::log_synced`] with the last zxid once they
    /// are durable. Writes complete in order.
    Append(Vec<Txn>),
    /// Drop every logged txn after this zxid (durably), and rebuild the tree from the disk at it.
    Truncate(i64),
    /// Replace the tree with this image, and make it durable (a snapshot, the log emptied past
    /// it) before anything that follows.
    Install {
        zxid: i64,
        image: Image,
    },
    /// Apply these txns to the tree, in order. While serving they are committed, and their
    /// clients may be answered; after `Role(Looking)` (a server leaving its role applies what its
    /// log holds) or while syncing, they answer nobody.
    Apply(Vec<Txn>),
    /// A learner's forwarded client write (on the leader): prep it and [`Peer::propose`] it.
    Forwarded {
        from: i64,
        fwd: Forward,
    },
    /// (On the leader) learner `from` asks whether a session its client reconnected with is
    /// live; answer with [`Msg::Revalidated`] on `conn`.
    Revalidate {
        from: i64,
        conn: u64,
        session_id: i64,
        timeout_ms: i32,
    },
    /// (On a learner) the leader's answer to [`Peer::revalidate`].
    Revalidated {
        session_id: i64,
        valid: bool,
    },
    /// (On the leader) learner `learner` is in step (UPTODATE sent): synced by `how`, with
    /// `txns` txns (DIFF/TRUNC), `ms` after its LearnerInfo came.
    LearnerSynced {
        learner: i64,
        how: SyncKind,
        txns: u64,
        ms: i64,
    },
    /// The role changed (for logs, for serving clients or not).
    Role(Role),
    /// (On the leader) a learner's clients touched these sessions (id, timeout).
    Touched(Vec<(i64, i32)>),
    /// The oldest outstanding [`Peer::sync`] is done: the tree has every txn the leader had
    /// proposed when the sync reached it. Syncs finish in the order they were asked; a role
    /// change drops those outstanding (their clients are disconnected).
    SyncDone,
}

/// A learner as the leader sees it (ZooKeeper's `LearnerHandler`).
#[derive(Debug)]
struct Handler {
    conn: u64,
    observer: bool,
    /// It takes [`Msg::LeaderSynced`], and it and this leader make a quorum.
    leader_synced: bool,
    /// The last [`Msg::LeaderSynced`] sent to it.
    told_synced: i64,
    /// Its last zxid, from ACKEPOCH.
    last_zxid: Option<i64>,
    /// Sync was sent: it gets proposals and commits from now on.
    forwarding: bool,
    newleader_acked: bool,
    up_to_date: bool,
    /// The highest proposal it has acknowledged.
    acked: i64,
    last_heard: i64,
    /// When its FOLLOWERINFO/OBSERVERINFO came, and how it was synced (for the log).
    since: i64,
    synced_by: Option<(SyncKind, u64)>,
    /// NEWLEADER held back until the proposals sent in its sync are committed (through this
    /// zxid) or until the deadline (see [`Peer::release_newleaders`]).
    newleader_due: Option<(i64, i64)>,
    /// What its sync can take from the log, surveyed so far, while `reading_log`.
    log: Option<LogSpan>,
    reading_log: bool,
    /// The log could not give what it lacks: SNAP.
    log_failed: bool,
}

/// What a leader's log holds for a learner behind its DIFF window, as read (surveyed) before
/// the sync is decided: `base` is the newest logged zxid at or below the learner's last zxid,
/// then `txns` txns (`bytes` of them by [`txn_cost`]) follow it without a gap, from `first`
/// through `end`. The txns themselves are read again as the learner's connection drains
/// ([`Msg::FromLog`]), so a DIFF from the log is not bounded by memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSpan {
    pub base: i64,
    pub first: Option<i64>,
    pub end: i64,
    pub txns: u64,
    pub bytes: u64,
}

impl LogSpan {
    /// This span, then `next` (read from where this one ended); None if `next` does not start
    /// there.
    fn then(self, next: LogSpan) -> Option<LogSpan> {
        (next.base == self.end).then_some(LogSpan {
            base: self.base,
            first: self.first.or(next.first),
            end: next.end,
            txns: self.txns + next.txns,
            bytes: self.bytes + next.bytes,
        })
    }
}

/// How much of a leader's log a DIFF may carry: past `count_free` txns, only while they come
/// to at most `bytes_max` (ZooKeeper's `commitLogCount`, and `snapshotSizeFactor` of the
/// tree): beyond that SNAP is cheaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub count_free: usize,
    pub bytes_max: u64,
}

/// What [`Output::ReadLog`] asks for, from `log` (every txn a log holds, in zxid order): the
/// newest zxid at or below `after`, and the txns after it through `through`. None when the log
/// does not reach back to `after` or up to `through`, skips a zxid, or holds more than
/// `limits` allow.
pub fn log_range(
    log: impl IntoIterator<Item = Txn>,
    after: i64,
    through: i64,
    limits: LogLimits,
) -> Option<LogSpan> {
    let mut base = None;
    let mut span: Option<LogSpan> = None;
    for t in log {
        if t.zxid <= after {
            base = Some(t.zxid);
            continue;
        }
        if t.zxid > through {
            break;
        }
        let s = span.get_or_insert(LogSpan {
            base: base?,
            first: Some(t.zxid),
            end: base?,
            txns: 0,
            bytes: 0,
        });
        if !crate::wal::follows(s.end, t.zxid) {
            return None;
        }
        s.end = t.zxid;
        s.txns += 1;
        s.bytes += txn_cost(&t);
        if s.txns > limits.count_free as u64 && s.bytes > limits.bytes_max {
            return None;
        }
        if s.end == through {
            break; // read no further
        }
    }
    let span = span.unwrap_or(LogSpan {
        base: base?,
        first: None,
        end: base?,
        txns: 0,
        bytes: 0,
    });
    (span.end == through).then_some(span)
}

/// Takes the txns of a [`Msg::FromLog`] off a log read in zxid order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStream {
    after: i64,
    prev: i64,
    through: i64,
}

/// What to do with the next txn a log gives for a [`LogStream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStep {
    /// Before the span: read on.
    Skip,
    /// The next txn of the span: send it.
    Send,
    /// A gap (or a txn past a finished span): the log no longer holds the span as surveyed.
    Broken,
}

impl LogStream {
    pub fn new(after: i64, through: i64) -> LogStream {
        LogStream {
            after,
            prev: after,
            through,
        }
    }

    pub fn step(&mut self, zxid: i64) -> LogStep {
        if self.prev == self.after && zxid <= self.after {
            return LogStep::Skip;
        }
        if self.done() || !crate::wal::follows(self.prev, zxid) {
            return LogStep::Broken;
        }
        self.prev = zxid;
        LogStep::Send
    }

    /// Every txn of the span was sent.
    pub fn done(&self) -> bool {
        self.prev == self.through
    }
}

/// How a learner was brought to the leader's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Diff,
    Trunc,
    Snap,
}

impl SyncKind {
    pub fn name(self) -> &'static str {
        match self {
            SyncKind::Diff => "DIFF",
            SyncKind::Trunc => "TRUNC",
            SyncKind::Snap => "SNAP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LeaderPhase {
    /// Waiting for a quorum of learners' accepted epochs.
    Discovery,
    /// Waiting for a quorum of ACKEPOCH.
    EpochAck,
    /// Waiting for a quorum of NEWLEADER acknowledgements.
    NewLeaderAck,
    Broadcast,
}

#[derive(Debug)]
struct Leader {
    phase: LeaderPhase,
    epoch: i64,
    /// Discovery and sync must be done by then.
    deadline: i64,
    handlers: BTreeMap<i64, Handler>,
    /// Voters whose accepted epochs were heard (this server included).
    connecting: BTreeSet<i64>,
    epoch_acks: BTreeSet<i64>,
    newleader_acks: BTreeSet<i64>,
    next_ping: i64,
    /// Syncs waiting for the commit of the last txn proposed when they came: that zxid, and
    /// the learner (with its connection) that asked, or `None` for this server's own.
    syncs: VecDeque<(i64, Option<(i64, u64)>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LearnerPhase {
    /// LearnerInfo sent; waiting for LEADERINFO (or the connection to be refused).
    Info,
    /// ACKEPOCH sent; syncing until UPTODATE.
    Syncing,
    Serving,
}

#[derive(Debug)]
struct Learner {
    leader: i64,
    observer: bool,
    conn: u64,
    phase: LearnerPhase,
    new_epoch: i64,
    /// NEWLEADER came with this zxid and is not acknowledged yet.
    newleader: Option<i64>,
    newleader_acked: bool,
    /// The highest proposal acknowledged.
    acked: i64,
    /// The leader's log is durable through this ([`Msg::LeaderSynced`]).
    leader_synced: i64,
    last_heard: i64,
    /// Until then, a refused connection is tried again.
    give_up_at: i64,
    /// Open a new connection at this time (after one was refused).
    retry_at: Option<i64>,
}

#[derive(Debug)]
enum State {
    Looking(Election),
    Leading(Leader),
    Following(Learner),
}

#[derive(Debug)]
pub struct Peer {
    cfg: PeerConfig,
    accepted_epoch: i64,
    current_epoch: i64,
    last_election_epoch: i64,
    /// The vote this server settled on, to answer LOOKING servers with.
    settled: Option<(i32, Vote, i64)>,
    /// The newest txns of the log, oldest first: zxids after `history_base`, consecutive in
    /// this server's log, up to `last_logged`.
    history: VecDeque<Txn>,
    history_base: i64,
    /// The sum of [`txn_cost`] over `history`.
    history_bytes: u64,
    /// About what a snapshot of the tree would take (its owner says, [`Peer::set_tree_bytes`]).
    tree_bytes: u64,
    last_logged: i64,
    synced: i64,
    /// The last txn the owner's tree has (a leader's commit point).
    applied: i64,
    /// Txns committed, following, on [`Msg::LeaderSynced`] before their COMMIT came.
    committed_on_leader_synced: u64,
    /// Connections opened by this server (as a learner), counted.
    conns_opened: u64,
    /// Sessions touched on this learner (id to timeout), for its next ping answer.
    touches: BTreeMap<i64, i32>,
    /// The zxid of the newest snapshot on disk, below which no truncation can go: the log
    /// before it may be gone. Snapshots of the committed tree never hold a txn a TRUNC removes,
    /// but a leader's SNAP image may (a leader that never established sends its uncommitted
    /// txns too, and the next leader may lack them).
    floor: i64,
    /// A TRUNC below `floor` came: this learner's disk cannot reach the leader's history by
    /// truncating, so it reports zxid 0 in its next ACKEPOCH, which only a SNAP (or a DIFF from
    /// the empty tree) can answer, and keeps what it has until then.
    force_snap: bool,
    /// Learners that dialed while this server was still electing (by id: connection, accepted
    /// epoch, observer). A learner that decided a moment sooner is held rather than refused, so
    /// it does not wait out a redial; on deciding, this server takes them as leader or closes
    /// them.
    early: BTreeMap<i64, (u64, Hello)>,
    state: State,
}

impl Peer {
    /// Starts a server from what is on its disk (its tree holds everything its log does): it
    /// begins with an election.
    pub fn start(cfg: PeerConfig, disk: Persisted, now: i64) -> (Peer, Vec<Output>) {
        assert!(cfg.voters.windows(2).all(|w| w[0] < w[1]), "voters sorted");
        let mut history: VecDeque<Txn> = disk.recent.into();
        let mut history_bytes: u64 = history.iter().map(txn_cost).sum();
        let mut history_base = history.front().map_or(disk.last_zxid, |_| disk.recent_base);
        while history.len() > cfg.diff_window || history_bytes > cfg.diff_window_bytes {
            let t = history.pop_front().expect("not empty");
            history_bytes -= txn_cost(&t);
            history_base = t.zxid;
        }
        if let Some(last) = history.back() {
            assert_eq!(
                last.zxid, disk.last_zxid,
                "recent txns end at the last zxid"
            );
        }
        if let Some(first) = history.front() {
            if !crate::wal::follows(history_base, first.zxid) {
                history_base = first.zxid - 1; // a base that cannot be: the safe stand-in
            }
        }
        let (election, eo) = Election::start(
            election_config(&cfg),
            disk.last_zxid,
            disk.current_epoch,
            0,
            now,
        );
        let mut p = Peer {
            accepted_epoch: disk.accepted_epoch,
            current_epoch: disk.current_epoch,
            last_election_epoch: 0,
            settled: None,
            history,
            history_base,
            history_bytes,
            tree_bytes: 0,
            last_logged: disk.last_zxid,
            synced: disk.last_zxid,
            applied: disk.last_zxid,
            committed_on_leader_synced: 0,
            conns_opened: cfg.first_conn,
            touches: BTreeMap::new(),
            floor: disk.snapshot_zxid,
            force_snap: false,
            early: BTreeMap::new(),
            state: State::Looking(election),
            cfg,
        };
        let mut out = vec![Output::Role(Role::Looking)];
        p.election_outputs(eo, now, &mut out);
        (p, out)
    }

    pub fn role(&self) -> Role {
        match &self.state {
            State::Looking(_) => Role::Looking,
            State::Leading(l) => Role::Leading {
                epoch: (l.phase >= LeaderPhase::NewLeaderAck).then_some(l.epoch),
                established: l.phase == LeaderPhase::Broadcast,
            },
            State::Following(l) => Role::Following {
                leader: l.leader,
                observer: l.observer,
                serving: l.phase == LearnerPhase::Serving,
            },
        }
    }

    /// A leader's figures for `mntr` (None unless leading).
    pub fn leader_stats(&self) -> Option<LeaderStats> {
        let State::Leading(l) = &self.state else {
            return None;
        };
        let synced = |observer: bool| {
            l.handlers
                .values()
                .filter(|h| h.up_to_date && h.observer == observer)
                .count() as u64
        };
        Some(LeaderStats {
            learners: l.handlers.len() as u64,
            synced_followers: synced(false),
            synced_observers: synced(true),
            pending_syncs: l.syncs.len() as u64,
        })
    }

    /// Serving clients: an established leader or an up-to-date learner.
    pub fn serving(&self) -> bool {
        matches!(
            self.role(),
            Role::Leading {
                established: true,
                ..
            } | Role::Following { serving: true, .. }
        )
    }

    /// Txns this server committed as a follower on [`Msg::LeaderSynced`], ahead of the COMMIT.
    pub fn committed_on_leader_synced(&self) -> u64 {
        self.committed_on_leader_synced
    }

    pub fn applied(&self) -> i64 {
        self.applied
    }

    pub fn last_logged(&self) -> i64 {
        self.last_logged
    }

    pub fn current_epoch(&self) -> i64 {
        self.current_epoch
    }

    pub fn accepted_epoch(&self) -> i64 {
        self.accepted_epoch
    }

    /// The zxid the next proposal must have (an established leader only).
    pub fn next_zxid(&self) -> Option<i64> {
        match &self.state {
            State::Leading(l) if l.phase == LeaderPhase::Broadcast => {
                Some(if epoch_of(self.last_logged) == l.epoch {
                    self.last_logged + 1
                } else {
                    make_zxid(l.epoch, 1)
                })
            }
            _ => None,
        }
    }

    // ----- inputs -----

    /// An election notification from `from`.
    pub fn vote_received(&mut self, from: i64, note: &Notification, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        match &mut self.state {
            State::Looking(e) => {
                let eo = e.receive(from, note, now);
                self.election_outputs(eo, now, &mut out);
            }
            _ => {
                if note.state == state::LOOKING {
                    if let Some((st, vote, epoch)) = self.settled {
                        let a = answer_looking(st, vote, epoch, &self.cfg.config);
                        out.push(Output::Vote { to: from, note: a });
                    }
                }
            }
        }
        out
    }

    /// A message on quorum connection `conn` from `from`.
    pub fn message(&mut self, from: i64, conn: u64, msg: Msg, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if let Msg::LearnerInfo {
            accepted_epoch,
            observer,
            leader_synced,
        } = msg
        {
            let hello = Hello {
                accepted_epoch,
                observer,
                leader_synced,
            };
            match self.state {
                State::Leading(_) => self.learner_info(from, conn, hello, now, &mut out),
                State::Looking(_) => {
                    if let Some((old, _)) = self.early.insert(from, (conn, hello)) {
                        out.push(Output::Close {
                            to: from,
                            conn: old,
                        });
                    }
                }
                State::Following(_) => out.push(Output::Close { to: from, conn }),
            }
            return out;
        }
        match &self.state {
            State::Leading(l) if l.handlers.get(&from).is_some_and(|h| h.conn == conn) => {
                self.leader_message(from, msg, now, &mut out)
            }
            State::Following(l) if l.leader == from && l.conn == conn => {
                self.learner_message(msg, now, &mut out)
            }
            _ => {}
        }
        self.after(now, &mut out);
        out
    }

    /// Quorum connection `conn` with `from` closed.
    pub fn closed(&mut self, from: i64, conn: u64, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.early.get(&from).is_some_and(|e| e.0 == conn) {
            self.early.remove(&from);
        }
        match &mut self.state {
            State::Leading(l) if l.handlers.get(&from).is_some_and(|h| h.conn == conn) => {
                l.handlers.remove(&from);
            }
            State::Following(l) if l.leader == from && l.conn == conn => {
                if l.phase == LearnerPhase::Info && now < l.give_up_at {
                    // Refused (the leader is not leading yet): try again shortly.
                    let at = now + self.cfg.leader_connect_retry_ms;
                    l.retry_at = Some(at);
                    out.push(Output::WakeAt(at));
                } else {
                    self.look(now, &mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// The log write ending at `zxid` is durable.
    pub fn log_synced(&mut self, zxid: i64, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        // Writes complete in order and a truncation only removes txns of older epochs than
        // those logged after it, so the highest reported zxid is a sound bound.
        self.synced = self.synced.max(zxid.min(self.last_logged));
        self.after(now, &mut out);
        out
    }

    /// Time passes.
    pub fn tick(&mut self, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        self.release_newleaders(now, &mut out);
        match &mut self.state {
            State::Looking(e) => {
                let eo = e.tick(now);
                self.election_outputs(eo, now, &mut out);
            }
            State::Leading(l) => {
                if l.phase < LeaderPhase::Broadcast {
                    if now >= l.deadline {
                        self.look(now, &mut out);
                        return out;
                    }
                } else {
                    // Step down without a quorum heard from within the sync limit.
                    let limit = self.cfg.sync_limit * self.cfg.tick_ms;
                    let heard = std::iter::once(self.cfg.my_id).chain(
                        l.handlers
                            .iter()
                            .filter(|(_, h)| h.forwarding && now - h.last_heard <= limit)
                            .map(|(id, _)| *id),
                    );
                    if !self.cfg.has_quorum(heard) {
                        self.look(now, &mut out);
                        return out;
                    }
                }
                if now >= l.next_ping {
                    l.next_ping = now + self.cfg.tick_ms / 2;
                    // Only learners whose sync has begun: ZooKeeper's learner takes anything
                    // but DIFF, TRUNC or SNAP after its ACKEPOCH (and anything but LEADERINFO
                    // after its FOLLOWERINFO) as a protocol error and exits, and its leader
                    // pings no learner before the sync.
                    for (id, h) in l.handlers.iter().filter(|(_, h)| h.forwarding) {
                        out.push(Output::Send {
                            to: *id,
                            conn: h.conn,
                            msg: Msg::Ping {
                                touches: Vec::new(),
                            },
                        });
                    }
                }
                out.push(Output::WakeAt(l.next_ping));
            }
            State::Following(l) => {
                let limit = if l.phase == LearnerPhase::Serving {
                    self.cfg.sync_limit
                } else {
                    self.cfg.init_limit
                } * self.cfg.tick_ms;
                if l.retry_at.is_some_and(|at| now >= at) {
                    if now >= l.give_up_at {
                        self.look(now, &mut out);
                        return out;
                    }
                    l.retry_at = None;
                    self.conns_opened += 1;
                    l.conn = conn_id(self.cfg.my_id, self.conns_opened);
                    l.last_heard = now;
                    out.push(Output::Send {
                        to: l.leader,
                        conn: l.conn,
                        msg: Msg::LearnerInfo {
                            accepted_epoch: self.accepted_epoch,
                            observer: l.observer,
                            leader_synced: true,
                        },
                    });
                } else if l.retry_at.is_none() && now - l.last_heard > limit {
                    self.look(now, &mut out);
                    return out;
                }
                out.push(Output::WakeAt(now + self.cfg.tick_ms / 2));
            }
        }
        out
    }

    /// Proposes a txn (an established leader only; its zxid is [`Peer::next_zxid`]).
    pub fn propose(&mut self, txn: Txn, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        assert_eq!(Some(txn.zxid), self.next_zxid(), "propose in order");
        let State::Leading(l) = &self.state else {
            unreachable!()
        };
        for (id, h) in &l.handlers {
            if h.forwarding && !h.observer {
                out.push(Output::Send {
                    to: *id,
                    conn: h.conn,
                    msg: Msg::Proposal(txn.clone()),
                });
            }
        }
        self.log(txn, &mut out);
        self.after(now, &mut out);
        out
    }

    /// A client's `sync` on this server (serving only; else `None`): [`Output::SyncDone`] comes
    /// once this server has what the leader had proposed when the sync reached it. A learner
    /// sends `req` (the client's session, cxid and `Request::Sync`) to the leader.
    pub fn sync(&mut self, req: Forward) -> Option<Vec<Output>> {
        let last = self.last_logged;
        let applied = self.applied;
        match &mut self.state {
            State::Following(l) if l.phase == LearnerPhase::Serving => Some(vec![Output::Send {
                to: l.leader,
                conn: l.conn,
                msg: Msg::SyncRequest(req),
            }]),
            State::Leading(l) if l.phase == LeaderPhase::Broadcast => {
                if applied >= last {
                    Some(vec![Output::SyncDone])
                } else {
                    l.syncs.push_back((last, None));
                    Some(Vec::new())
                }
            }
            _ => None,
        }
    }

    /// Sessions (id, timeout) this learner's clients touched: they go to the leader with the
    /// next ping answer. Ignored unless following.
    pub fn touch(&mut self, sessions: impl IntoIterator<Item = (i64, i32)>) {
        if matches!(self.state, State::Following(_)) {
            self.touches.extend(sessions);
        }
    }

    /// Asks the leader whether a session a client reconnected with here is live (a serving
    /// learner only; else `None`); the answer comes as [`Output::Revalidated`].
    pub fn revalidate(&mut self, session_id: i64, timeout_ms: i32) -> Option<Vec<Output>> {
        match &self.state {
            State::Following(l) if l.phase == LearnerPhase::Serving => Some(vec![Output::Send {
                to: l.leader,
                conn: l.conn,
                msg: Msg::Revalidate {
                    session_id,
                    timeout_ms,
                },
            }]),
            _ => None,
        }
    }

    /// Sends a client write to the leader (a serving learner only; else `None`).
    pub fn forward(&mut self, fwd: Forward) -> Option<Vec<Output>> {
        match &self.state {
            State::Following(l) if l.phase == LearnerPhase::Serving => Some(vec![Output::Send {
                to: l.leader,
                conn: l.conn,
                msg: Msg::Request(fwd),
            }]),
            _ => None,
        }
    }

    // ----- election -----

    fn election_outputs(&mut self, eo: Vec<ElectionOut>, now: i64, out: &mut Vec<Output>) {
        for o in eo {
            match o {
                ElectionOut::Send { to, note } => out.push(Output::Vote { to, note }),
                ElectionOut::WakeAt(at) => out.push(Output::WakeAt(at)),
                ElectionOut::Decided {
                    state: st,
                    vote,
                    election_epoch,
                } => {
                    self.last_election_epoch = election_epoch;
                    self.settled = Some((st, vote, election_epoch));
                    let early = std::mem::take(&mut self.early);
                    if st == state::LEADING {
                        self.lead(now, out);
                        for (from, (conn, hello)) in early {
                            if matches!(self.state, State::Leading(_)) {
                                self.learner_info(from, conn, hello, now, out);
                            } else {
                                // Stepped down for an earlier one (see `learner_info`).
                                out.push(Output::Close { to: from, conn });
                            }
                        }
                    } else {
                        for (from, (conn, _)) in early {
                            out.push(Output::Close { to: from, conn });
                        }
                        self.follow(vote.leader, st == state::OBSERVING, now, out);
                    }
                    return;
                }
            }
        }
    }

    /// Gives up the current role (closing its connections), applies what the log holds past
    /// the tree, and elects.
    fn look(&mut self, now: i64, out: &mut Vec<Output>) {
        match &self.state {
            State::Leading(l) => {
                for (id, h) in &l.handlers {
                    out.push(Output::Close {
                        to: *id,
                        conn: h.conn,
                    });
                }
            }
            State::Following(l) => out.push(Output::Close {
                to: l.leader,
                conn: l.conn,
            }),
            State::Looking(_) => return,
        }
        // The role change goes first: the txns applied below were never committed by a
        // quorum, and no client may be answered from them.
        out.push(Output::Role(Role::Looking));
        self.fast_forward(out);
        self.settled = None;
        self.touches.clear();
        let (e, eo) = Election::start(
            election_config(&self.cfg),
            self.last_logged,
            self.current_epoch,
            self.last_election_epoch,
            now,
        );
        self.state = State::Looking(e);
        self.election_outputs(eo, now, out);
    }

    /// Applies the logged txns past `applied`.
    fn fast_forward(&mut self, out: &mut Vec<Output>) {
        let txns: Vec<Txn> = self
            .history
            .iter()
            .filter(|t| t.zxid > self.applied)
            .cloned()
            .collect();
        if !txns.is_empty() {
            self.applied = self.last_logged;
            out.push(Output::Apply(txns));
        }
    }

    // ----- leader -----

    fn lead(&mut self, now: i64, out: &mut Vec<Output>) {
        debug_assert_eq!(self.applied, self.last_logged);
        let mut connecting = BTreeSet::new();
        connecting.insert(self.cfg.my_id);
        self.state = State::Leading(Leader {
            phase: LeaderPhase::Discovery,
            epoch: self.accepted_epoch + 1,
            deadline: now + self.cfg.init_limit * self.cfg.tick_ms,
            handlers: BTreeMap::new(),
            connecting,
            epoch_acks: BTreeSet::new(),
            newleader_acks: BTreeSet::new(),
            next_ping: now + self.cfg.tick_ms / 2,
            syncs: VecDeque::new(),
        });
        out.push(Output::Role(self.role()));
        out.push(Output::WakeAt(now + self.cfg.tick_ms / 2));
        self.after(now, out);
    }

    fn learner_info(
        &mut self,
        from: i64,
        conn: u64,
        hello: Hello,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let Hello {
            accepted_epoch,
            observer,
            leader_synced,
        } = hello;
        let State::Leading(l) = &mut self.state else {
            unreachable!()
        };
        if l.phase != LeaderPhase::Discovery
            && accepted_epoch > l.epoch
            && !observer
            && self.cfg.is_voter(from)
        {
            // A learner refuses a LEADERINFO below its accepted epoch (as ZooKeeper's does), and
            // a leader past discovery cannot raise its epoch: this learner, whose accepted epoch
            // a discovery that never finished raised, could not join while this leader lasts
            // (ZooKeeper leaves it out). So the leader steps down; the next discovery counts
            // the learner's epoch if it connects in time, and takes a higher epoch than this
            // one in any case, so this happens at most a few times per such learner. Only a
            // voter can do this (an observer's epoch counts in no discovery; it waits).
            out.push(Output::Close { to: from, conn });
            self.look(now, out);
            return;
        }
        if let Some(old) = l.handlers.remove(&from) {
            out.push(Output::Close {
                to: from,
                conn: old.conn,
            });
        }
        let observer = observer || !self.cfg.is_voter(from);
        let pair = [self.cfg.my_id, from];
        let leader_synced = leader_synced && !observer && self.cfg.has_quorum(pair.into_iter());
        l.handlers.insert(
            from,
            Handler {
                conn,
                observer,
                leader_synced,
                told_synced: 0,
                last_zxid: None,
                forwarding: false,
                newleader_acked: false,
                up_to_date: false,
                acked: 0,
                last_heard: now,
                since: now,
                synced_by: None,
                newleader_due: None,
                log: None,
                reading_log: false,
                log_failed: false,
            },
        );
        if l.phase == LeaderPhase::Discovery {
            if accepted_epoch >= l.epoch {
                l.epoch = accepted_epoch + 1;
            }
            if !observer {
                l.connecting.insert(from);
            }
        } else {
            out.push(Output::Send {
                to: from,
                conn,
                msg: Msg::LeaderInfo { new_epoch: l.epoch },
            });
        }
        self.after(now, out);
    }

    fn leader_message(&mut self, from: i64, msg: Msg, now: i64, out: &mut Vec<Output>) {
        let my_summary = (self.current_epoch, self.last_logged);
        let State::Leading(l) = &mut self.state else {
            unreachable!()
        };
        let h = l.handlers.get_mut(&from).expect("handler");
        h.last_heard = now;
        match msg {
            Msg::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                if h.last_zxid.is_some() || l.phase == LeaderPhase::Discovery {
                    return;
                }
                h.last_zxid = Some(last_zxid);
                // Checked only until the epoch is acknowledged, as ZooKeeper's `waitForEpochAck`
                // does; a learner joining later with txns this leader lacks is truncated.
                if current_epoch != -1 && !h.observer && l.phase == LeaderPhase::EpochAck {
                    if (current_epoch, last_zxid) > my_summary {
                        // A voter is more recent than this leader: it must not lead.
                        self.look(now, out);
                        return;
                    }
                    l.epoch_acks.insert(from);
                }
                if l.phase >= LeaderPhase::NewLeaderAck {
                    self.sync_learner(from, now, out);
                }
            }
            Msg::Ack { zxid } => {
                if zxid & 0xffff_ffff == 0 {
                    if zxid == make_zxid(l.epoch, 0) && h.forwarding && !h.newleader_acked {
                        h.newleader_acked = true;
                        if !h.observer {
                            l.newleader_acks.insert(from);
                        }
                        if l.phase == LeaderPhase::Broadcast {
                            h.up_to_date = true;
                            out.push(Output::Send {
                                to: from,
                                conn: h.conn,
                                msg: Msg::UpToDate,
                            });
                            out.extend(learner_synced(from, h, now));
                        }
                    }
                } else if h.forwarding && !h.observer {
                    h.acked = h.acked.max(zxid);
                    self.try_commit(out);
                }
            }
            Msg::Request(fwd) => {
                if l.phase == LeaderPhase::Broadcast {
                    out.push(Output::Forwarded { from, fwd });
                }
            }
            Msg::Revalidate {
                session_id,
                timeout_ms,
            } => {
                if l.phase == LeaderPhase::Broadcast {
                    out.push(Output::Revalidate {
                        from,
                        conn: h.conn,
                        session_id,
                        timeout_ms,
                    });
                }
            }
            Msg::SyncRequest(_) => {
                if l.phase == LeaderPhase::Broadcast {
                    if self.applied >= self.last_logged {
                        out.push(Output::Send {
                            to: from,
                            conn: h.conn,
                            msg: Msg::Sync,
                        });
                    } else {
                        l.syncs.push_back((self.last_logged, Some((from, h.conn))));
                    }
                }
            }
            Msg::Ping { touches } => {
                if !touches.is_empty() {
                    out.push(Output::Touched(touches));
                }
            }
            _ => {
                // Anything else from a learner is a protocol error: drop that learner.
                let conn = h.conn;
                l.handlers.remove(&from);
                out.push(Output::Close { to: from, conn });
            }
        }
    }

    /// Sends learner `id` what it needs to reach this leader's history (ZooKeeper's
    /// `syncFollower` and `startForwarding`), then NEWLEADER.
    fn sync_learner(&mut self, id: i64, now: i64, out: &mut Vec<Output>) {
        let committed = self.applied;
        let State::Leading(l) = &mut self.state else {
            unreachable!()
        };
        let h = l.handlers.get_mut(&id).expect("handler");
        let peer_last = h.last_zxid.expect("acked epoch");
        let conn = h.conn;
        // The committed txns this leader can send as a diff.
        let window = self.history.iter().take_while(|t| t.zxid <= committed);
        let max_log = window.clone().last().map_or(committed, |t| t.zxid);
        let behind_window = peer_last < self.history_base;
        // How many bytes of txns a DIFF past `diff_always` txns may carry: ZooKeeper's
        // `snapshotSizeFactor` of the tree; none when negative (or not a number), since then
        // ZooKeeper sends no more than its `commitLogCount` in memory; no limit at 0, which
        // ZooKeeper's log reader takes as unlimited.
        let factor = self.cfg.snapshot_size_factor;
        let log_diffs = factor >= 0.0;
        let diff_bytes_max = if !log_diffs {
            0
        } else if factor == 0.0 {
            u64::MAX
        } else {
            (self.tree_bytes as f64 * factor) as u64
        };
        if behind_window && peer_last > 0 && !h.log_failed && log_diffs {
            // Before the window: ZooKeeper reads its log back (`txnLogSyncEnabled`), as does
            // this leader, off the member core; the sync goes on in `log_read`. What was read
            // must reach the window's start, or the rest is read (the window moved meanwhile).
            let read_end = h.log.as_ref().map(|s| s.end);
            if read_end != Some(self.history_base) {
                h.reading_log = true;
                let (count_free, bytes_max) = match &h.log {
                    // What was surveyed already counts against the limits.
                    Some(s) => (
                        self.cfg.diff_always.saturating_sub(s.txns as usize),
                        diff_bytes_max.saturating_sub(s.bytes),
                    ),
                    None => (self.cfg.diff_always, diff_bytes_max),
                };
                out.push(Output::ReadLog {
                    to: id,
                    conn,
                    after: read_end.unwrap_or(peer_last),
                    through: self.history_base,
                    limits: LogLimits {
                        count_free,
                        bytes_max,
                    },
                });
                return;
            }
        }
        let from_log = h.log.take().filter(|_| behind_window && !h.log_failed);
        // A learner that takes LeaderSynced, ahead of the commit point in this leader's own
        // epoch: its log is a prefix of this leader's (no one else proposes in this epoch),
        // and it may have committed part of what is past the commit point already. It is
        // diffed from where it is; ZooKeeper's TRUNC to the commit point would take back what
        // it applied (and what a snapshot of its tree may hold).
        let prefix = h.leader_synced
            && peer_last > max_log
            && epoch_of(peer_last) == l.epoch
            && history_after(&self.history, peer_last)
                .checked_sub(1)
                .is_some_and(|i| self.history[i].zxid == peer_last);
        let mut packets = Vec::new();
        // Txns sent (DIFF/TRUNC) and their bytes, those to come from the log included.
        let (mut txns, mut bytes) = (0u64, 0u64);
        if peer_last == committed || prefix {
            packets.push(Msg::Diff { zxid: peer_last });
        } else if peer_last > max_log {
            packets.push(Msg::Trunc { zxid: max_log });
        } else if peer_last >= self.history_base || from_log.is_some() {
            // Walk the log (what the log holds before the window, then the window): DIFF where
            // the learner's last zxid is in it, TRUNC where it is not but the next txn is in
            // the same epoch; across an epoch boundary, SNAP.
            let mut prev = self.history_base;
            let mut op_sent = false;
            if let Some(span) = from_log {
                // Its base is the newest logged zxid at or below the learner's; the txn after
                // the base is past the learner's.
                if span.base == peer_last {
                    packets.push(Msg::Diff { zxid: committed });
                } else if span.first.map(epoch_of) == Some(epoch_of(peer_last)) {
                    packets.push(Msg::Trunc { zxid: span.base });
                } else {
                    packets.clear();
                }
                if !packets.is_empty() {
                    op_sent = true;
                    if span.txns > 0 {
                        packets.push(Msg::FromLog {
                            after: span.base,
                            through: span.end,
                        });
                    }
                    (txns, bytes) = (span.txns, span.bytes);
                }
            } else if peer_last == self.history_base {
                packets.push(Msg::Diff { zxid: committed });
                op_sent = true;
            }
            let stop = from_log.is_some() && !op_sent;
            for t in window.filter(|_| !stop) {
                if t.zxid < peer_last {
                    prev = t.zxid;
                    continue;
                }
                if !op_sent {
                    if t.zxid == peer_last {
                        packets.push(Msg::Diff { zxid: committed });
                        op_sent = true;
                        continue;
                    }
                    if epoch_of(t.zxid) != epoch_of(peer_last) {
                        break;
                    }
                    packets.push(Msg::Trunc { zxid: prev });
                    op_sent = true;
                }
                txns += 1;
                bytes += txn_cost(t);
                packets.push(Msg::Proposal(t.clone()));
                packets.push(Msg::Commit { zxid: t.zxid });
            }
            if !op_sent {
                packets.clear();
            }
        }
        if peer_last == 0 && committed > 0 {
            // A learner with nothing, or one that gave up its log (`force_snap`), gets SNAP, as
            // from ZooKeeper: a DIFF from 0 would have it discard its disk before the data came,
            // and a leader dying meanwhile would leave it with a prefix under a newer epoch.
            packets.clear();
        }
        let send = |out: &mut Vec<Output>, msg| out.push(Output::Send { to: id, conn, msg });
        if txns as usize > self.cfg.diff_always && bytes > diff_bytes_max {
            packets.clear(); // the tree is smaller than what changed: SNAP
        }
        let txns = if packets.is_empty() { 0 } else { txns };
        h.synced_by = Some(match packets.first() {
            Some(Msg::Trunc { .. }) => (SyncKind::Trunc, txns),
            Some(_) => (SyncKind::Diff, txns),
            None => (SyncKind::Snap, 0),
        });
        if packets.is_empty() {
            out.push(Output::SendSnap {
                to: id,
                conn,
                zxid: committed,
            });
        }
        for m in packets {
            send(out, m);
        }
        // Outstanding proposals (ZooKeeper's `startForwarding`), for followers.
        let mut outstanding = None;
        if !h.observer {
            let has = if prefix { peer_last } else { committed };
            for t in self.history.iter().filter(|t| t.zxid > has) {
                send(out, Msg::Proposal(t.clone()));
                outstanding = Some(t.zxid);
            }
        }
        h.forwarding = true;
        match outstanding {
            // An established leader holds NEWLEADER back until those proposals are committed
            // (their COMMITs go first), for at most half a tick. ZooKeeper 3.8.0's learner
            // fails on a COMMIT that comes between NEWLEADER and UPTODATE (ZOOKEEPER-4394: it
            // has moved its pending proposals to the log at NEWLEADER) and syncs again. The
            // bound is for a learner the quorum needs: nothing commits before it acknowledges.
            Some(through) if l.phase == LeaderPhase::Broadcast => {
                h.newleader_due = Some((through, now + self.cfg.tick_ms / 2));
            }
            _ => send(
                out,
                Msg::NewLeader {
                    zxid: make_zxid(l.epoch, 0),
                },
            ),
        }
    }

    /// What the log gave for learner `to`'s sync ([`Output::ReadLog`]): the sync goes on with it
    /// (reading again what the window moved past meanwhile), or with SNAP if the log could not
    /// give it. Ignored unless that learner's connection is still waiting for it.
    pub fn log_read(
        &mut self,
        to: i64,
        conn: u64,
        range: Option<LogSpan>,
        now: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let State::Leading(l) = &mut self.state else {
            return out;
        };
        let Some(h) = l.handlers.get_mut(&to) else {
            return out;
        };
        if h.conn != conn || !h.reading_log {
            return out;
        }
        h.reading_log = false;
        match (range, h.log.take()) {
            (None, _) => h.log_failed = true,
            (Some(r), None) => h.log = Some(r),
            (Some(r), Some(before)) => match before.then(r) {
                Some(both) => h.log = Some(both),
                None => h.log_failed = true,
            },
        }
        self.sync_learner(to, now, &mut out);
        out
    }

    /// Sends each held-back NEWLEADER whose proposals are now committed, or whose deadline has
    /// come (`now`; `i64::MIN` checks commits only).
    fn release_newleaders(&mut self, now: i64, out: &mut Vec<Output>) {
        let applied = self.applied;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        let zxid = make_zxid(l.epoch, 0);
        for (id, h) in l.handlers.iter_mut() {
            if let Some((through, due)) = h.newleader_due {
                if applied >= through || now >= due {
                    h.newleader_due = None;
                    out.push(Output::Send {
                        to: *id,
                        conn: h.conn,
                        msg: Msg::NewLeader { zxid },
                    });
                }
            }
        }
    }

    /// Commits, in zxid order, every outstanding txn a quorum of voters has durable.
    fn try_commit(&mut self, out: &mut Vec<Output>) {
        let State::Leading(l) = &self.state else {
            return;
        };
        if l.phase != LeaderPhase::Broadcast {
            return;
        }
        let mut txns = Vec::new();
        let start = history_after(&self.history, self.applied);
        for t in self.history.range(start..) {
            let z = t.zxid;
            let durable = std::iter::once(self.cfg.my_id)
                .filter(|_| self.synced >= z)
                .chain(
                    l.handlers
                        .iter()
                        .filter(|(_, h)| h.forwarding && !h.observer && h.acked >= z)
                        .map(|(id, _)| *id),
                );
            if !self.cfg.has_quorum(durable) {
                break;
            }
            txns.push(t.clone());
        }
        if let Some(last) = txns.last() {
            self.applied = last.zxid;
            for t in &txns {
                for (id, h) in l.handlers.iter().filter(|(_, h)| h.forwarding) {
                    let msg = if h.observer {
                        Msg::Inform(t.clone())
                    } else {
                        Msg::Commit { zxid: t.zxid }
                    };
                    out.push(Output::Send {
                        to: *id,
                        conn: h.conn,
                        msg,
                    });
                }
            }
            out.push(Output::Apply(txns));
        }
        // NEWLEADERs held for these commits, after their COMMITs.
        self.release_newleaders(i64::MIN, out);
        // Syncs whose txns are now all committed (after the COMMITs, on the same connections).
        let State::Leading(l) = &mut self.state else {
            return;
        };
        while l.syncs.front().is_some_and(|(z, _)| *z <= self.applied) {
            match l.syncs.pop_front().expect("front").1 {
                None => out.push(Output::SyncDone),
                Some((to, conn)) => {
                    if l.handlers.get(&to).is_some_and(|h| h.conn == conn) {
                        out.push(Output::Send {
                            to,
                            conn,
                            msg: Msg::Sync,
                        });
                    }
                }
            }
        }
    }

    /// Moves a leader through its phases once their conditions hold.
    fn leader_progress(&mut self, now: i64, out: &mut Vec<Output>) {
        let synced_all = self.synced >= self.last_logged;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if l.phase == LeaderPhase::Discovery && self.cfg.has_quorum(l.connecting.iter().copied()) {
            l.phase = LeaderPhase::EpochAck;
            self.accepted_epoch = l.epoch;
            out.push(Output::SaveAcceptedEpoch(l.epoch));
            l.epoch_acks.insert(self.cfg.my_id);
            for (id, h) in &l.handlers {
                out.push(Output::Send {
                    to: *id,
                    conn: h.conn,
                    msg: Msg::LeaderInfo { new_epoch: l.epoch },
                });
            }
        }
        if l.phase == LeaderPhase::EpochAck
            && synced_all
            && self.cfg.has_quorum(l.epoch_acks.iter().copied())
        {
            l.phase = LeaderPhase::NewLeaderAck;
            self.current_epoch = l.epoch;
            out.push(Output::SaveCurrentEpoch(l.epoch));
            out.push(Output::Role(Role::Leading {
                epoch: Some(l.epoch),
                established: false,
            }));
            l.newleader_acks.insert(self.cfg.my_id);
            let ready: Vec<i64> = l
                .handlers
                .iter()
                .filter(|(_, h)| h.last_zxid.is_some())
                .map(|(id, _)| *id)
                .collect();
            for id in ready {
                self.sync_learner(id, now, out);
            }
        }
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if l.phase == LeaderPhase::NewLeaderAck
            && synced_all
            && self.cfg.has_quorum(l.newleader_acks.iter().copied())
        {
            l.phase = LeaderPhase::Broadcast;
            let epoch = l.epoch;
            for (id, h) in l.handlers.iter_mut() {
                if h.newleader_acked {
                    h.up_to_date = true;
                    out.push(Output::Send {
                        to: *id,
                        conn: h.conn,
                        msg: Msg::UpToDate,
                    });
                    out.extend(learner_synced(*id, h, now));
                }
                // Heard from at the start of broadcast: the sync limit runs from here.
                h.last_heard = h.last_heard.max(now);
            }
            self.update_election_vote(epoch);
            out.push(Output::Role(self.role()));
        }
        self.try_commit(out);
        self.tell_synced(out);
    }

    /// Tells each follower that takes [`Msg::LeaderSynced`] how far this leader's log is
    /// durable, when that is past the commit point (the COMMITs say the rest).
    fn tell_synced(&mut self, out: &mut Vec<Output>) {
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if l.phase != LeaderPhase::Broadcast || self.synced <= self.applied {
            return;
        }
        for (id, h) in l.handlers.iter_mut() {
            if h.leader_synced && h.up_to_date && h.told_synced < self.synced {
                h.told_synced = self.synced;
                out.push(Output::Send {
                    to: *id,
                    conn: h.conn,
                    msg: Msg::LeaderSynced { zxid: self.synced },
                });
            }
        }
    }

    // ----- learner -----

    fn follow(&mut self, leader: i64, observer: bool, now: i64, out: &mut Vec<Output>) {
        debug_assert_eq!(self.applied, self.last_logged);
        self.conns_opened += 1;
        let conn = conn_id(self.cfg.my_id, self.conns_opened);
        self.state = State::Following(Learner {
            leader,
            observer,
            conn,
            phase: LearnerPhase::Info,
            new_epoch: 0,
            newleader: None,
            newleader_acked: false,
            acked: 0,
            leader_synced: 0,
            last_heard: now,
            give_up_at: now + self.cfg.init_limit * self.cfg.tick_ms,
            retry_at: None,
        });
        out.push(Output::Role(self.role()));
        out.push(Output::Send {
            to: leader,
            conn,
            msg: Msg::LearnerInfo {
                accepted_epoch: self.accepted_epoch,
                observer,
                leader_synced: true,
            },
        });
        out.push(Output::WakeAt(now + self.cfg.tick_ms / 2));
    }

    fn learner_message(&mut self, msg: Msg, now: i64, out: &mut Vec<Output>) {
        let State::Following(l) = &mut self.state else {
            unreachable!()
        };
        l.last_heard = now;
        let (to, conn) = (l.leader, l.conn);
        match msg {
            Msg::LeaderInfo { new_epoch } if l.phase == LearnerPhase::Info => {
                let current_epoch = if new_epoch > self.accepted_epoch {
                    self.accepted_epoch = new_epoch;
                    out.push(Output::SaveAcceptedEpoch(new_epoch));
                    self.current_epoch
                } else if new_epoch == self.accepted_epoch {
                    -1
                } else {
                    // A leader of an older epoch than one this server accepted.
                    self.look(now, out);
                    return;
                };
                l.new_epoch = new_epoch;
                l.phase = LearnerPhase::Syncing;
                out.push(Output::Send {
                    to,
                    conn,
                    msg: Msg::AckEpoch {
                        current_epoch,
                        last_zxid: if self.force_snap { 0 } else { self.last_logged },
                    },
                });
            }
            Msg::Diff { .. } if l.phase == LearnerPhase::Syncing => {
                if self.force_snap {
                    // A diff from zxid 0: this server starts from the empty tree (made durable
                    // as a snapshot at 0, as a SNAP would be) and logs what follows.
                    self.force_snap = false;
                    self.history.clear();
                    self.history_bytes = 0;
                    self.history_base = 0;
                    self.last_logged = 0;
                    self.synced = 0;
                    self.applied = 0;
                    self.floor = 0;
                    out.push(Output::Install {
                        zxid: 0,
                        image: Image {
                            tree: crate::tree::DataTree::new(),
                            sessions: Vec::new(),
                            fuzzy_through: 0,
                        },
                    });
                }
            }
            Msg::Trunc { zxid } if l.phase == LearnerPhase::Syncing && zxid < self.floor => {
                // Below the newest snapshot: ask for a whole image instead (see `force_snap`).
                self.force_snap = true;
                self.look(now, out);
            }
            Msg::Trunc { zxid } if l.phase == LearnerPhase::Syncing => {
                while self.history.back().is_some_and(|t| t.zxid > zxid) {
                    let t = self.history.pop_back().expect("back");
                    self.history_bytes -= txn_cost(&t);
                }
                // The disk keeps more of the log than memory does.
                self.history_base = self.history_base.min(zxid);
                self.last_logged = zxid;
                self.synced = self.synced.min(zxid);
                self.applied = zxid;
                out.push(Output::Truncate(zxid));
            }
            Msg::Snap { zxid, image } if l.phase == LearnerPhase::Syncing => {
                self.force_snap = false;
                self.floor = zxid;
                self.history.clear();
                self.history_bytes = 0;
                self.history_base = zxid;
                self.last_logged = zxid;
                self.synced = zxid;
                self.applied = zxid;
                out.push(Output::Install { zxid, image });
            }
            Msg::Proposal(txn) if l.phase != LearnerPhase::Info => {
                if txn.zxid > self.last_logged {
                    self.log(txn, out);
                }
            }
            Msg::Commit { zxid } if l.phase != LearnerPhase::Info => {
                if !self.commit_through(zxid, out) {
                    self.look(now, out);
                }
            }
            Msg::Inform(txn) if l.phase != LearnerPhase::Info && l.observer => {
                let z = txn.zxid;
                if z > self.last_logged {
                    self.log(txn, out);
                }
                if !self.commit_through(z, out) {
                    self.look(now, out);
                }
            }
            Msg::Revalidated { session_id, valid } if l.phase == LearnerPhase::Serving => {
                out.push(Output::Revalidated { session_id, valid });
            }
            Msg::NewLeader { zxid } if l.phase == LearnerPhase::Syncing => {
                if epoch_of(zxid) != l.new_epoch {
                    self.look(now, out);
                    return;
                }
                l.newleader = Some(zxid);
            }
            Msg::UpToDate if l.phase == LearnerPhase::Syncing && l.newleader_acked => {
                l.phase = LearnerPhase::Serving;
                // ZooKeeper's `updateElectionVote` (see the method), on fields disjoint from `l`.
                if let Some((_, vote, _)) = &mut self.settled {
                    vote.peer_epoch = l.new_epoch;
                }
                out.push(Output::Send {
                    to,
                    conn,
                    msg: Msg::Ack {
                        zxid: make_zxid(l.new_epoch, 0),
                    },
                });
                out.push(Output::Role(self.role()));
            }
            Msg::Ping { .. } if l.phase == LearnerPhase::Syncing && !l.newleader_acked => {
                // Not answered before NEWLEADER is acknowledged: ZooKeeper's leader takes any
                // packet there but that ACK as a protocol error and drops the learner (its
                // learners answer no PING while they sync).
            }
            Msg::Ping { .. } => out.push(Output::Send {
                to,
                conn,
                msg: Msg::Ping {
                    touches: std::mem::take(&mut self.touches).into_iter().collect(),
                },
            }),
            Msg::Sync if l.phase == LearnerPhase::Serving => out.push(Output::SyncDone),
            Msg::LeaderSynced { zxid } => {
                // Sent only after UPTODATE, on this connection; an observer has no use for it.
                if l.phase == LearnerPhase::Serving && !l.observer {
                    l.leader_synced = l.leader_synced.max(zxid);
                }
            }
            _ => {
                // Out of place: a protocol error; elect again.
                self.look(now, out);
            }
        }
    }

    /// Applies the logged txns through `zxid`; false if the log does not have it.
    fn commit_through(&mut self, zxid: i64, out: &mut Vec<Output>) -> bool {
        if zxid <= self.applied {
            return true;
        }
        let end = history_after(&self.history, zxid);
        if end == 0 || self.history[end - 1].zxid != zxid {
            return false;
        }
        let start = history_after(&self.history, self.applied);
        let txns: Vec<Txn> = self.history.range(start..end).cloned().collect();
        self.applied = zxid;
        out.push(Output::Apply(txns));
        true
    }

    /// A learner acknowledges what it can: NEWLEADER once its log is durable (recording the new
    /// epoch first), then each durable proposal of the new epoch.
    fn learner_progress(&mut self, out: &mut Vec<Output>) {
        let State::Following(l) = &mut self.state else {
            return;
        };
        if let Some(z) = l.newleader {
            if self.synced >= self.last_logged {
                l.newleader = None;
                l.newleader_acked = true;
                if self.current_epoch < l.new_epoch {
                    self.current_epoch = l.new_epoch;
                    out.push(Output::SaveCurrentEpoch(l.new_epoch));
                }
                out.push(Output::Send {
                    to: l.leader,
                    conn: l.conn,
                    msg: Msg::Ack { zxid: z },
                });
            }
        }
        if l.newleader_acked && !l.observer {
            let start = history_after(&self.history, l.acked);
            for t in self.history.range(start..) {
                let z = t.zxid;
                if z > self.synced {
                    break;
                }
                l.acked = z;
                if epoch_of(z) == l.new_epoch {
                    out.push(Output::Send {
                        to: l.leader,
                        conn: l.conn,
                        msg: Msg::Ack { zxid: z },
                    });
                }
            }
        }
        // What the leader and this follower both have durable is committed where the two of
        // them make a quorum: a quorum has it, as when the leader counts this ACK.
        let (leader, leader_synced) = (l.leader, l.leader_synced);
        let pair = [self.cfg.my_id, leader];
        if leader_synced > self.applied && self.cfg.has_quorum(pair.into_iter()) {
            let end = history_after(&self.history, leader_synced.min(self.synced));
            if let Some(z) = end.checked_sub(1).map(|i| self.history[i].zxid) {
                if z > self.applied {
                    let from = history_after(&self.history, self.applied);
                    self.committed_on_leader_synced += (end - from) as u64;
                    self.commit_through(z, out);
                }
            }
        }
    }

    // ----- shared -----

    /// ZooKeeper's `updateElectionVote` (ZOOKEEPER-1732): once serving in an epoch, answer
    /// LOOKING servers with it as the leader's epoch. Servers that joined at different times
    /// would otherwise answer with different epochs, and a server starting later could never
    /// count a quorum of them agreeing.
    fn update_election_vote(&mut self, epoch: i64) {
        if let Some((_, vote, _)) = &mut self.settled {
            vote.peer_epoch = epoch;
        }
    }

    /// About how many bytes a snapshot of the owner's tree takes, for choosing between a long
    /// DIFF and SNAP.
    pub fn set_tree_bytes(&mut self, bytes: u64) {
        self.tree_bytes = bytes;
    }

    /// Logs a txn: into the history (trimmed to the window) and to the disk.
    fn log(&mut self, txn: Txn, out: &mut Vec<Output>) {
        assert!(txn.zxid > self.last_logged, "log in order");
        self.last_logged = txn.zxid;
        self.history_bytes += txn_cost(&txn);
        self.history.push_back(txn.clone());
        while (self.history.len() > self.cfg.diff_window
            || self.history_bytes > self.cfg.diff_window_bytes)
            && self.history.front().is_some_and(|t| t.zxid <= self.applied)
        {
            let t = self.history.pop_front().expect("front");
            self.history_bytes -= txn_cost(&t);
            self.history_base = t.zxid;
        }
        out.push(Output::Append(vec![txn]));
    }

    /// Re-checks what may have become possible after an input.
    fn after(&mut self, now: i64, out: &mut Vec<Output>) {
        match self.state {
            State::Leading(_) => self.leader_progress(now, out),
            State::Following(_) => self.learner_progress(out),
            State::Looking(_) => {}
        }
    }

    pub fn check_invariants(&self) {
        assert!(self.history_base <= self.applied && self.applied <= self.last_logged);
        assert!(self.synced <= self.last_logged);
        let mut prev = self.history_base;
        for t in &self.history {
            assert!(t.zxid > prev, "history in order");
            prev = t.zxid;
        }
        assert_eq!(
            prev, self.last_logged,
            "history ends at the last logged zxid"
        );
        assert_eq!(
            self.history_bytes,
            self.history.iter().map(txn_cost).sum::<u64>(),
            "the history's size is kept"
        );
        if let State::Leading(l) = &self.state {
            assert!(l.epoch > self.current_epoch || l.phase >= LeaderPhase::NewLeaderAck);
            if l.phase >= LeaderPhase::NewLeaderAck {
                assert_eq!(self.current_epoch, l.epoch);
            }
        }
        assert!(self.current_epoch <= self.accepted_epoch);
        assert!(
            self.early.is_empty() || matches!(self.state, State::Looking(_)),
            "learners are held only while electing"
        );
    }
}

/// The index of the first txn in `history` (in zxid order) after `zxid`. What the callers look
/// for is near the end (the txns not yet committed or acknowledged), while the history keeps
/// the whole DIFF window, so this gallops back from the end and bisects only the last step:
/// a few reads of the hot end instead of a search across the window.
fn history_after(history: &VecDeque<Txn>, zxid: i64) -> usize {
    let n = history.len();
    // The txns at `hi..` are after `zxid`; those before `lo` are not.
    let mut hi = n;
    let mut step = 1;
    let mut lo = loop {
        if hi == 0 {
            return 0;
        }
        let at = n.saturating_sub(step);
        if history[at].zxid <= zxid {
            break at + 1;
        }
        hi = at;
        step *= 2;
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if history[mid].zxid <= zxid {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// About what a txn takes in a DIFF (its header, paths and data), for the window's bound and the
/// DIFF-or-SNAP choice.
pub fn txn_cost(t: &Txn) -> u64 {
    fn op(o: &crate::txn::TxnOp) -> u64 {
        use crate::txn::TxnOp::*;
        let data = |d: &crate::proto::Data| d.as_ref().map_or(0, |d| d.len()) as u64;
        match o {
            Create {
                path, data: d, acl, ..
            } => 16 + path.len() as u64 + data(d) + 24 * acl.len() as u64,
            SetData { path, data: d, .. } => 8 + path.len() as u64 + data(d),
            SetAcl { path, acl, .. } => 8 + path.len() as u64 + 24 * acl.len() as u64,
            Delete { path } | Check { path, .. } => 4 + path.len() as u64,
            Multi(ops) => ops.iter().map(|o| 8 + op(o)).sum(),
            CreateSession { .. } | CloseSession | Error(_) => 4,
        }
    }
    32 + op(&t.op)
}

/// The log line's facts for a learner just told UPTODATE.
fn learner_synced(id: i64, h: &Handler, now: i64) -> Option<Output> {
    let (how, txns) = h.synced_by?;
    Some(Output::LearnerSynced {
        learner: id,
        how,
        txns,
        ms: now - h.since,
    })
}

fn election_config(cfg: &PeerConfig) -> ElectionConfig {
    ElectionConfig {
        my_id: cfg.my_id,
        voters: cfg.voters.clone(),
        finalize_wait_ms: cfg.finalize_wait_ms,
        max_notification_interval_ms: cfg.max_notification_interval_ms,
        config: cfg.config.clone(),
    }
}

/// A learner's connection id: its server id and a count, so ids never repeat.
fn conn_id(my_id: i64, n: u64) -> u64 {
    ((my_id as u64) << 48) | (n & 0xffff_ffff_ffff)
}

#[cfg(test)]
pub(crate) mod tests;
