//! A seeded, deterministic simulator of whole ensembles running real [`Member`]s (the real
//! [`Peer`], prep, [`DataTree`]s and session tables), with a simulated clock, network, disks and
//! clients.
//!
//! - **Network.** Election messages may be dropped, duplicated, delayed and reordered. Quorum
//!   connections are in order and reliable until they break (as TCP is): a break either
//!   resets them (both ends hear of it) or, across a partition, swallows everything after it
//!   (neither end hears; their timeouts must notice). Partitions split the servers in two or
//!   cut single directions, and heal.
//! - **Disks.** Appends become durable after a delay, in order. A crash loses what was not
//!   durable, or keeps a torn prefix of it; a failed fdatasync crashes the server. The epoch
//!   files and snapshots are written durably at once. A leader's log is read back for a DIFF
//!   (surveyed, then streamed); either read fails one time in ten.
//! - **Clients.** Each first creates a session (through whichever server it reaches, which
//!   sends createSession to the leader), then sends one request at a time (create, setData,
//!   delete on a few keys, with and without versions; reads, plain or after a sync) to a random
//!   server, and gives up after a timeout or when that server stops serving: a write then has an
//!   unknown outcome. Sessions outlive the run: expiry is not simulated.
//!
//! Checked after every step: at most one leader per epoch; a txn committed (by a leader's
//! quorum, or in an established leader's history) is the same txn at that zxid everywhere;
//! replicas at the same zxid have the same tree digest; every write a client saw answered is in
//! the history of every leader established later. At the end: the servers, healed, elect a
//! leader and converge, and each key's history of writes is linearizable (Wing and Gong's
//! search, with unknown outcomes free to take effect or not).
//!
//! `ZAB_SEEDS=n` runs seeds 0..n (CI runs a small number), `ZAB_SEEDS=a..b` seeds a..b,
//! `ZAB_SEED=s` one seed, and
//! `ZAB_TRACE=1` prints each event of it.

use super::*;
use crate::node::{Entry, Input};
use crate::pipeline::{ConnectOutcome, Origin, PipelineConfig};
use crate::prep::PrepConfig;
use crate::proto::{opcode, ConnectRequest, ErrorCode, Request};
use crate::session::{Passwords, SessionConfig};
use crate::snap::SnapSession;
use crate::tree::DataTree;
use crate::txn::TxnOp;
use crate::zab::member::{Member, Output as MemberOut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

const KEYS: usize = 3;
const CLIENT_TIMEOUT_MS: i64 = 3_000;
/// Connection ids of connect requests: this plus the client's index (an op's is its index).
const CONNECT_CONN: u64 = 1 << 40;

/// The sessions after `txns` applied over `base`.
fn replay_sessions<'a>(
    base: &[SnapSession],
    txns: impl Iterator<Item = &'a Txn>,
) -> Vec<SnapSession> {
    let mut table: BTreeMap<i64, i32> = base.iter().map(|s| (s.id, s.timeout_ms)).collect();
    for t in txns {
        match t.op {
            TxnOp::CreateSession { timeout_ms } => {
                table.insert(t.session_id, timeout_ms);
            }
            TxnOp::CloseSession => {
                table.remove(&t.session_id);
            }
            _ => {}
        }
    }
    table
        .into_iter()
        .map(|(id, timeout_ms)| SnapSession { id, timeout_ms })
        .collect()
}

fn txn_hash(t: &Txn) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in format!("{t:?}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A snapshot on a simulated disk: its zxid, tree, the txns in it (zxid to hash, for the
/// checks), and its sessions.
struct Snapshot {
    zxid: i64,
    tree: DataTree,
    txns: BTreeMap<i64, u64>,
    sessions: Vec<SnapSession>,
}

#[derive(Default)]
struct Disk {
    accepted: i64,
    current: i64,
    /// The last snapshot.
    snap: Option<Snapshot>,
    log: Vec<Txn>,
    synced_len: usize,
    /// Writes in flight: the log's length after each, and its last zxid.
    writes: VecDeque<(usize, i64)>,
}

impl Disk {
    /// The tree and sessions from the snapshot and the log through `through`.
    fn rebuild(&self, through: i64) -> (DataTree, BTreeMap<i64, u64>, Vec<SnapSession>) {
        let (mut tree, mut map, base) = match &self.snap {
            Some(s) => (s.tree.clone(), s.txns.clone(), s.sessions.clone()),
            None => (DataTree::new(), BTreeMap::new(), Vec::new()),
        };
        let base_zxid = self.snap.as_ref().map_or(0, |s| s.zxid);
        let txns: Vec<&Txn> = self
            .log
            .iter()
            .filter(|t| t.zxid > base_zxid && t.zxid <= through)
            .collect();
        for t in &txns {
            tree.apply(t, &mut Vec::new());
            map.insert(t.zxid, txn_hash(t));
        }
        let sessions = replay_sessions(&base, txns.into_iter());
        (tree, map, sessions)
    }

    /// The newest zxid that is durable (in the synced part of the log, or the snapshot).
    fn synced_zxid(&self) -> i64 {
        match self.synced_len {
            0 => self.snap.as_ref().map_or(0, |s| s.zxid),
            n => self.log[n - 1].zxid,
        }
    }

    fn last_zxid(&self) -> i64 {
        self.log
            .last()
            .map(|t| t.zxid)
            .or(self.snap.as_ref().map(|s| s.zxid))
            .unwrap_or(0)
    }

    fn persisted(&self, window: usize) -> Persisted {
        let start = self.log.len().saturating_sub(window);
        // The txn before the first one handed over: the log's own, or the snapshot the log
        // was started after (an installed one), or none.
        let recent_base = match start {
            0 => match &self.snap {
                Some(s) if self.log.first().is_none_or(|f| f.zxid > s.zxid) => s.zxid,
                _ => 0,
            },
            n => self.log[n - 1].zxid,
        };
        Persisted {
            accepted_epoch: self.accepted,
            current_epoch: self.current,
            last_zxid: self.last_zxid(),
            recent: self.log[start..].to_vec(),
            recent_base,
            snapshot_zxid: self.snap.as_ref().map_or(0, |s| s.zxid),
        }
    }

    fn truncate(&mut self, zxid: i64) {
        assert!(
            self.snap.as_ref().is_none_or(|s| s.zxid <= zxid),
            "truncation below the snapshot"
        );
        self.log.retain(|t| t.zxid <= zxid);
        let len = self.log.len();
        self.synced_len = self.synced_len.min(len);
        for w in &mut self.writes {
            w.0 = w.0.min(len);
        }
    }

    /// Loses what was not durable; a torn write may leave a prefix of it (a failed fdatasync
    /// leaves nothing to trust).
    fn crash(&mut self, rng: &mut SmallRng, may_tear: bool) {
        let unsynced = self.log.len() - self.synced_len;
        let keep = if may_tear && unsynced > 0 && rng.gen_bool(0.3) {
            self.synced_len + rng.gen_range(0..=unsynced)
        } else {
            self.synced_len
        };
        self.log.truncate(keep);
        self.synced_len = keep;
        self.writes.clear();
    }
}

struct Server {
    member: Option<Member>,
    generation: u64,
    disk: Disk,
    /// The txns the member's tree holds, zxid to hash.
    applied: BTreeMap<i64, u64>,
    /// Ops (writes, synced reads) this server was given and has not answered.
    pending: BTreeSet<usize>,
    disk_free_at: i64,
    /// The tree version its fronts serve reads from: the last `Publish`'s (none before its
    /// first one since it started).
    visible: Option<DataTree>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Create,
    Set(i32),
    Delete(i32),
    /// getData's version (or NoNode), after a `sync` when `synced`.
    Read {
        synced: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok(i32),
    Err(ErrorCode),
}

#[derive(Debug, Clone)]
struct Op {
    key: usize,
    kind: OpKind,
    invoke: i64,
    /// When and how it completed; `None` if its outcome is unknown.
    done: Option<(i64, Res)>,
    /// The client gave up on it.
    abandoned: bool,
    /// A read: the zxid of the tree it was served from, and that server's epoch.
    served: Option<(i64, i64)>,
}

struct Client {
    /// 0 until a session is created.
    session: i64,
    /// A connect is in flight (its attempt number is `attempts`).
    connecting: bool,
    attempts: u64,
    cxid: i32,
    /// The op in flight, if any.
    current: Option<usize>,
    versions: [i32; KEYS],
    /// The newest zxid it has seen (ZooKeeper's `lastZxidSeen`).
    last_seen: i64,
    /// The server its session is connected to: requests go there; to move, the client
    /// reconnects elsewhere with its session id and password.
    home: Option<i64>,
    passwd: [u8; 16],
}

#[derive(Debug)]
enum Event {
    Vote {
        from: i64,
        to: i64,
        note: Notification,
    },
    Msg {
        from: i64,
        to: i64,
        conn: u64,
        msg: Box<Msg>,
    },
    Closed {
        from: i64,
        to: i64,
        conn: u64,
    },
    Wake {
        id: i64,
        generation: u64,
    },
    DiskDone {
        id: i64,
        generation: u64,
    },
    /// A log read for a learner's sync is done (`Output::ReadLog`).
    LogRead {
        id: i64,
        generation: u64,
        to: i64,
        conn: u64,
        range: Option<LogSpan>,
    },
    Issue {
        client: usize,
    },
    Arrive {
        op: usize,
        server: i64,
    },
    GiveUp {
        op: usize,
    },
    Connect {
        client: usize,
        server: i64,
    },
    GiveUpConnect {
        client: usize,
        attempt: u64,
    },
    Crash {
        id: i64,
        fsync_failed: bool,
    },
    Restart {
        id: i64,
    },
    Partition,
    Heal,
}

struct ConnState {
    /// The two servers it joins.
    ends: (i64, i64),
    /// Swallows everything from now on.
    broken: bool,
    /// The last delivery time in each direction (towards the lower id, towards the higher).
    last_at: [i64; 2],
}

pub(super) struct Sim {
    seed: u64,
    rng: SmallRng,
    now: i64,
    seq: u64,
    queue: BTreeMap<(i64, u64), Event>,
    cfg: PeerConfig,
    member_cfg: PipelineConfig,
    /// Members snapshot after about this many applied txns.
    snap_count: u64,
    servers: BTreeMap<i64, Server>,
    conns: BTreeMap<u64, ConnState>,
    blocked: BTreeSet<(i64, i64)>,
    clients: Vec<Client>,
    ops: Vec<Op>,
    /// Snapshots sent, by zxid: the txns in them.
    snap_maps: BTreeMap<i64, BTreeMap<i64, u64>>,
    // Faults, per run.
    vote_drop: f64,
    conn_reset: f64,
    /// Disk latency: the usual range, and how often a write takes `slow_ms` instead.
    disk_ms: (i64, i64),
    slow_rate: f64,
    slow_ms: (i64, i64),
    faults: bool,
    issue_until: i64,
    // What the checkers keep.
    leader_of_epoch: BTreeMap<i64, i64>,
    committed: BTreeMap<i64, u64>,
    digests: BTreeMap<i64, u64>,
    acked: BTreeMap<i64, u64>,
    /// Every txn any server logged, by zxid (one leader per epoch makes them agree).
    txns: BTreeMap<i64, Txn>,
    /// Writes answered: when, and their zxid.
    answered_writes: Vec<(i64, i64)>,
    pub(super) stats: Stats,
    trace: bool,
    /// A checker failed (and said so, with the seed).
    failed: std::cell::Cell<bool>,
}

/// A panic anywhere else (an engine assertion) names the seed too.
impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.failed.get() {
            eprintln!(
                "seed {} at {} ms: panicked (message above)\nreplay: ZAB_SEED={} ZAB_TRACE=1 cargo test -p ringkeeper-engine zab_sim -- --nocapture",
                self.seed, self.now, self.seed
            );
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct Stats {
    pub established: u64,
    pub committed: usize,
    pub answered: u64,
    pub unknown: u64,
    pub crashes: u64,
    pub snaps: u64,
    pub truncs: u64,
    pub reads: u64,
    pub synced_reads: u64,
    pub sessions: u64,
    /// Snapshots members wrote on their own (not SNAP installs).
    pub member_snaps: u64,
    /// Sessions resumed on another server, and writes refused because their session had moved.
    pub moves: u64,
    pub moved: u64,
    /// Syncs that found what they need in the leader's log, and DIFFs that streamed it.
    pub log_reads: u64,
    pub log_streams: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.established += o.established;
        self.committed += o.committed;
        self.answered += o.answered;
        self.unknown += o.unknown;
        self.crashes += o.crashes;
        self.snaps += o.snaps;
        self.truncs += o.truncs;
        self.reads += o.reads;
        self.synced_reads += o.synced_reads;
        self.sessions += o.sessions;
        self.member_snaps += o.member_snaps;
        self.moves += o.moves;
        self.moved += o.moved;
        self.log_reads += o.log_reads;
        self.log_streams += o.log_streams;
    }
}

impl Sim {
    pub(super) fn new(seed: u64, voters: usize, observers: usize) -> Sim {
        // The ensemble's shape is mixed in, so the 3- and 5-voter runs of one seed differ.
        let mut rng =
            SmallRng::seed_from_u64(seed ^ ((voters as u64) << 40) ^ ((observers as u64) << 48));
        let voter_ids: Vec<i64> = (1..=voters as i64).collect();
        let observer_ids: Vec<i64> = (10..10 + observers as i64).collect();
        let cfg = PeerConfig {
            my_id: 0,
            voters: voter_ids.clone(),
            observers: observer_ids.clone(),
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
            // Small, so that SNAP happens.
            diff_window: rng.gen_range(5..40),
            diff_window_bytes: rng.gen_range(500..5000),
            // Small too, in half the runs; in the others a learner behind the window is
            // mostly DIFFed from the log.
            diff_always: if rng.gen_bool(0.5) {
                rng.gen_range(0..10)
            } else {
                rng.gen_range(40..200)
            },
            // ZooKeeper's default mostly; now and then DIFFs from the log are off.
            snapshot_size_factor: if rng.gen_bool(0.8) { 0.33 } else { -1.0 },
            finalize_wait_ms: 200,
            max_notification_interval_ms: 1_000,
            config: Bytes::new(),
            leader_connect_retry_ms: 100,
            first_conn: 0,
        };
        let mut servers = BTreeMap::new();
        for id in voter_ids.iter().chain(&observer_ids) {
            servers.insert(
                *id,
                Server {
                    member: None,
                    generation: 0,
                    disk: Disk::default(),
                    applied: BTreeMap::new(),
                    pending: BTreeSet::new(),
                    disk_free_at: 0,
                    visible: None,
                },
            );
        }
        let clients = (0..3)
            .map(|_| Client {
                home: None,
                passwd: [0; 16],
                session: 0,
                connecting: false,
                attempts: 0,
                cxid: 0,
                current: None,
                versions: [0; KEYS],
                last_seen: 0,
            })
            .collect();
        let faults = rng.gen_bool(0.85);
        let vote_drop = if rng.gen_bool(0.5) {
            0.0
        } else {
            rng.gen_range(0.0..0.3)
        };
        let conn_reset = if rng.gen_bool(0.5) {
            0.0
        } else {
            rng.gen_range(0.0..0.002)
        };
        let snap_count = rng.gen_range(20..400);
        let (disk_ms, slow_rate) = match rng.gen_range(0..3) {
            0 => ((1, 6), 0.0),
            1 => ((5, 60), 0.0),
            _ => ((1, 6), 0.05),
        };
        Sim {
            seed,
            disk_ms,
            slow_rate,
            slow_ms: (50, 400),
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            cfg,
            snap_count,
            member_cfg: PipelineConfig {
                prep: PrepConfig {
                    extended_types: false,
                },
                session: SessionConfig {
                    tick_ms: 100,
                    min_timeout_ms: 200,
                    // Longer than any run: expiry is not simulated.
                    max_timeout_ms: 600_000,
                    server_id: 0,
                },
                container_check_ms: 1_000,
                container_never_used_ms: 0,
            },
            servers,
            conns: BTreeMap::new(),
            blocked: BTreeSet::new(),
            clients,
            ops: Vec::new(),
            snap_maps: BTreeMap::new(),
            vote_drop,
            conn_reset,
            faults,
            issue_until: 0,
            leader_of_epoch: BTreeMap::new(),
            committed: BTreeMap::new(),
            digests: BTreeMap::new(),
            acked: BTreeMap::new(),
            txns: BTreeMap::new(),
            answered_writes: Vec::new(),
            stats: Stats::default(),
            trace: std::env::var("ZAB_TRACE").is_ok(),
            failed: std::cell::Cell::new(false),
        }
    }

    fn push(&mut self, at: i64, ev: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn fail(&self, what: String) -> ! {
        self.failed.set(true);
        panic!(
            "seed {} at {} ms: {what}\nreplay: ZAB_SEED={} ZAB_TRACE=1 cargo test -p ringkeeper-engine zab_sim -- --nocapture",
            self.seed, self.now, self.seed
        );
    }

    // ----- servers -----

    fn start(&mut self, id: i64) {
        let now = self.now;
        let mut cfg = self.cfg.clone();
        cfg.my_id = id;
        cfg.first_conn = (self.servers[&id].generation + 1) << 20;
        let window = cfg.diff_window;
        let mut member_cfg = self.member_cfg.clone();
        member_cfg.session.server_id = id;
        let s = self.servers.get_mut(&id).expect("server");
        let persisted = s.disk.persisted(window);
        let (tree, applied, sessions) = s.disk.rebuild(i64::MAX);
        s.applied = applied;
        s.generation += 1;
        let snaps = (self.snap_count, self.rng.gen());
        let (member, out) = Member::start(
            member_cfg,
            cfg,
            persisted,
            tree,
            &sessions,
            Passwords::ZooKeeper,
            snaps,
            now,
        );
        s.member = Some(member);
        s.visible = None;
        self.check_tree(id);
        self.run(id, out);
    }

    fn crash(&mut self, id: i64, fsync_failed: bool) {
        let s = self.servers.get_mut(&id).expect("server");
        if s.member.is_none() {
            return;
        }
        s.member = None;
        s.visible = None;
        s.generation += 1;
        s.disk.crash(&mut self.rng, !fsync_failed);
        let pending = std::mem::take(&mut s.pending);
        self.stats.crashes += 1;
        for op in pending {
            self.abandon(op);
        }
        // Its connections die: the other ends hear of it (a process's sockets are closed) or,
        // half the time, not (a machine that stopped).
        let reset = self.rng.gen_bool(0.5);
        let ids: Vec<(u64, i64)> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.broken)
            .filter_map(|(conn, c)| {
                let (a, b) = c.ends;
                if a == id || b == id {
                    Some((*conn, if a == id { b } else { a }))
                } else {
                    None
                }
            })
            .collect();
        for (conn, other) in ids {
            self.conns.get_mut(&conn).expect("conn").broken = true;
            if reset {
                let at = self.now + self.rng.gen_range(1..20);
                self.push(
                    at,
                    Event::Closed {
                        from: id,
                        to: other,
                        conn,
                    },
                );
            }
        }
    }

    fn member(&mut self, id: i64) -> Option<&mut Member> {
        self.servers.get_mut(&id).and_then(|s| s.member.as_mut())
    }

    /// Carries out what member `id` asked, then, at random, ends the runtime's round there
    /// (the runtime hands the fronts a round's entries at its end, and a round takes in as many
    /// inputs as are ready, so here it is one event or several).
    fn run(&mut self, id: i64, out: Vec<MemberOut>) {
        self.carry_out(id, out);
        if self.rng.gen_bool(0.5) {
            self.end_round(id);
        }
    }

    fn end_round(&mut self, id: i64) {
        if let Some(p) = self.member(id).and_then(Member::flush) {
            self.carry_out(id, vec![p]);
        }
    }

    fn carry_out(&mut self, id: i64, out: Vec<MemberOut>) {
        for o in out {
            if self.servers[&id].member.is_none() {
                return;
            }
            match o {
                MemberOut::Io(io) => self.io(id, io),
                MemberOut::Truncate(zxid) => {
                    self.stats.truncs += 1;
                    let now = self.now;
                    let s = self.servers.get_mut(&id).expect("server");
                    s.disk.truncate(zxid);
                    let (tree, applied, sessions) = s.disk.rebuild(zxid);
                    s.applied = applied;
                    let m = s.member.as_mut().expect("running");
                    let more = m.truncated(tree, &sessions, now);
                    self.check_tree(id);
                    self.carry_out(id, more);
                }
                MemberOut::Install {
                    zxid,
                    tree,
                    sessions,
                } => {
                    let map = self.snap_maps[&zxid].clone();
                    let s = self.servers.get_mut(&id).expect("server");
                    s.disk.snap = Some(Snapshot {
                        zxid,
                        tree,
                        txns: map.clone(),
                        sessions,
                    });
                    s.disk.log.clear();
                    s.disk.synced_len = 0;
                    for w in &mut s.disk.writes {
                        w.0 = 0;
                    }
                    s.applied = map;
                    self.check_tree(id);
                }
                MemberOut::Publish { entries, version } => {
                    // What waits for this flush point is answered from its version.
                    self.servers.get_mut(&id).expect("server").visible = Some(version);
                    self.publish(id, entries)
                }
                MemberOut::Role(role) => self.role(id, role),
                MemberOut::WriteSnapshot { tree, sessions, .. } => {
                    // As the runtime's snapshot thread: it becomes the disk's snapshot once the
                    // log holds every txn in it durably; otherwise it is lost (as a snapshot
                    // that failed). A later TRUNC below it fails the run (`Disk::truncate`).
                    let zxid = tree.last_zxid();
                    let s = self.servers.get_mut(&id).expect("server");
                    let newer = s.disk.snap.as_ref().is_none_or(|x| x.zxid < zxid);
                    if s.disk.synced_zxid() >= zxid && newer {
                        s.disk.snap = Some(Snapshot {
                            zxid,
                            tree,
                            txns: s.applied.clone(),
                            sessions,
                        });
                        self.stats.member_snaps += 1;
                    }
                    let s = self.servers.get_mut(&id).expect("server");
                    s.member.as_mut().expect("running").snapshot_written();
                }
                MemberOut::SnapshotBusy { .. } => {}
            }
        }
    }

    /// The peer's network, timer and disk work.
    fn io(&mut self, id: i64, o: Output) {
        match o {
            Output::Vote { to, note } => self.send_vote(id, to, note),
            Output::Send {
                to,
                conn,
                msg: Msg::FromLog { after, through },
            } => {
                // The runtime reads these from the log as the connection drains; now and then
                // the log no longer gives them all (a segment purged meanwhile, say), and the
                // connection closes.
                let mut stream = LogStream::new(after, through);
                let mut msgs = Vec::new();
                for t in &self.servers[&id].disk.log {
                    if stream.done() {
                        break;
                    }
                    match stream.step(t.zxid) {
                        LogStep::Skip => {}
                        LogStep::Send => {
                            msgs.push(Msg::Proposal(t.clone()));
                            msgs.push(Msg::Commit { zxid: t.zxid });
                        }
                        LogStep::Broken => break,
                    }
                }
                if stream.done() && !self.rng.gen_bool(0.1) {
                    self.stats.log_streams += 1;
                    for m in msgs {
                        self.send(id, to, conn, m);
                    }
                } else {
                    // What was read before the failure goes out, then the connection closes
                    // and both ends hear of it.
                    let cut = self.rng.gen_range(0..=msgs.len());
                    for m in msgs.into_iter().take(cut) {
                        self.send(id, to, conn, m);
                    }
                    self.close(id, to, conn);
                    let at = self.now + self.rng.gen_range(1..10);
                    self.push(
                        at,
                        Event::Closed {
                            from: to,
                            to: id,
                            conn,
                        },
                    );
                }
            }
            Output::Send { to, conn, msg } => {
                if let Msg::Snap { zxid, image } = &msg {
                    assert_eq!(image.tree.last_zxid(), *zxid, "snapshot at its zxid");
                    let applied = self.servers[&id].applied.clone();
                    self.snap_maps.insert(*zxid, applied);
                    self.stats.snaps += 1;
                }
                self.send(id, to, conn, msg)
            }
            Output::Close { to, conn } => self.close(id, to, conn),
            Output::LearnerSynced { .. } => {}
            Output::WakeAt(at) => {
                let generation = self.servers[&id].generation;
                self.push(at.max(self.now), Event::Wake { id, generation });
            }
            Output::SaveAcceptedEpoch(e) => {
                let d = &mut self.servers.get_mut(&id).expect("server").disk;
                assert!(e >= d.accepted, "accepted epoch goes back");
                d.accepted = e;
            }
            Output::SaveCurrentEpoch(e) => {
                let d = &mut self.servers.get_mut(&id).expect("server").disk;
                assert!(e >= d.current && e <= d.accepted, "current epoch");
                d.current = e;
            }
            Output::Append(txns) => {
                let now = self.now;
                let (lo, hi) = if self.rng.gen_bool(self.slow_rate) {
                    self.slow_ms
                } else {
                    self.disk_ms
                };
                let delay = self.rng.gen_range(lo..hi);
                let s = self.servers.get_mut(&id).expect("server");
                let last = txns.last().expect("txns").zxid;
                for t in &txns {
                    self.txns.entry(t.zxid).or_insert_with(|| t.clone());
                }
                s.disk.log.extend(txns);
                s.disk.writes.push_back((s.disk.log.len(), last));
                s.disk_free_at = s.disk_free_at.max(now) + delay;
                let (at, generation) = (s.disk_free_at, s.generation);
                self.push(at, Event::DiskDone { id, generation });
            }
            Output::ReadLog {
                to,
                conn,
                after,
                through,
                limits,
            } => {
                // Read from what this server's log holds; now and then the read fails (a
                // segment purged meanwhile, say), and the learner gets SNAP.
                let s = &self.servers[&id];
                let range = if self.rng.gen_bool(0.1) {
                    None
                } else {
                    log_range(s.disk.log.iter().cloned(), after, through, limits)
                };
                if range.is_some() {
                    self.stats.log_reads += 1;
                }
                let generation = s.generation;
                let at = self.now + self.rng.gen_range(self.disk_ms.0..self.disk_ms.1);
                self.push(
                    at,
                    Event::LogRead {
                        id,
                        generation,
                        to,
                        conn,
                        range,
                    },
                );
            }
            other => panic!("the member carries out {other:?} itself"),
        }
    }

    /// Committed entries at `id`: record what its tree holds, check it against what was
    /// committed, and answer the clients.
    fn publish(&mut self, id: i64, entries: Vec<Entry>) {
        let leader = matches!(
            self.servers[&id].member.as_ref().map(|m| m.peer().role()),
            Some(Role::Leading {
                established: true,
                ..
            })
        );
        for e in entries {
            match e {
                Entry::Commit(c) => {
                    let t = c.txn;
                    let h = txn_hash(&t);
                    let s = self.servers.get_mut(&id).expect("server");
                    s.applied.insert(t.zxid, h);
                    if leader {
                        self.stats.committed += 1;
                        if let Some(old) = self.committed.insert(t.zxid, h) {
                            if old != h {
                                self.fail(format!(
                                    "leader {id} committed a second txn at {:#x}",
                                    t.zxid
                                ));
                            }
                        }
                    } else if self.committed.get(&t.zxid).is_some_and(|c| *c != h) {
                        self.fail(format!(
                            "{id} applied a txn at {:#x} other than the committed one",
                            t.zxid
                        ));
                    }
                    if let Some(origin) = c.origin {
                        let op = origin.conn as usize;
                        self.servers
                            .get_mut(&id)
                            .expect("server")
                            .pending
                            .remove(&op);
                        let res = match &t.op {
                            TxnOp::Error(code) => Res::Err(*code),
                            TxnOp::SetData { version, .. } => Res::Ok(*version),
                            _ => Res::Ok(0),
                        };
                        self.answer(op, res, t.zxid, h);
                    }
                }
                Entry::SyncDone { origin, .. } => {
                    let op = origin.conn as usize;
                    self.servers
                        .get_mut(&id)
                        .expect("server")
                        .pending
                        .remove(&op);
                    self.serve_read(op, id);
                }
                Entry::ConnectReply { conn, outcome } => {
                    let c = (conn - CONNECT_CONN) as usize;
                    let client = &mut self.clients[c];
                    match outcome {
                        ConnectOutcome::Accepted {
                            session_id, passwd, ..
                        } => {
                            if client.session == 0 {
                                client.session = session_id;
                                client.passwd = passwd;
                                self.stats.sessions += 1;
                            } else if client.session == session_id {
                                self.stats.moves += 1;
                            }
                            client.home = Some(id);
                        }
                        ConnectOutcome::Invalid if client.session != 0 => {
                            let s = client.session;
                            self.fail(format!("{id} refused live session {s:#x} on reconnect"));
                        }
                        _ => {}
                    }
                    if client.connecting {
                        client.connecting = false;
                        let at = self.now + self.rng.gen_range(1..100);
                        self.push(at, Event::Issue { client: c });
                    }
                }
                Entry::Resumed { .. } | Entry::Flush(_) | Entry::MovedAway { .. } => {}
            }
        }
        self.check_tree(id);
    }

    /// Records the digest of `id`'s tree at its zxid; another replica's at the same zxid must
    /// match.
    fn check_tree(&mut self, id: i64) {
        // Mid-truncation the peer is at the truncation point and the tree is not yet.
        let Some(m) = self.servers[&id].member.as_ref().filter(|m| !m.stalled()) else {
            return;
        };
        let z = m.tree().last_zxid();
        if m.peer().applied() != z {
            self.fail(format!(
                "{id}: tree at {z:#x}, peer applied {:#x}",
                m.peer().applied()
            ));
        }
        let d = m.tree().digest();
        if let Some(old) = self.digests.insert(z, d) {
            if old != d {
                self.fail(format!(
                    "{id}: tree digest at {z:#x} differs from another replica's"
                ));
            }
        }
    }

    fn role(&mut self, id: i64, role: Role) {
        if self.trace {
            eprintln!("{} {id} {role:?}", self.now);
        }
        if let Role::Leading {
            epoch: Some(e),
            established,
        } = role
        {
            if let Some(other) = self.leader_of_epoch.insert(e, id) {
                if other != id {
                    self.fail(format!("two leaders in epoch {e}: {other} and {id}"));
                }
            }
            if established {
                self.stats.established += 1;
                let applied = self.servers[&id].applied.clone();
                for (z, h) in &applied {
                    if let Some(old) = self.committed.insert(*z, *h) {
                        if old != *h {
                            self.fail(format!(
                                "leader {id} of epoch {e} has another txn at {z:#x}"
                            ));
                        }
                    }
                }
                for (z, h) in &self.acked {
                    if applied.get(z) != Some(h) {
                        self.fail(format!(
                            "leader {id} of epoch {e} lacks acknowledged write {z:#x}"
                        ));
                    }
                }
            }
        }
        let serving = self.servers[&id]
            .member
            .as_ref()
            .is_some_and(|m| m.peer().serving());
        if !serving {
            // The member forgot them; their connections close.
            let pending = std::mem::take(&mut self.servers.get_mut(&id).expect("server").pending);
            for op in pending {
                self.abandon(op);
            }
        }
    }

    // ----- network -----

    fn send_vote(&mut self, from: i64, to: i64, note: Notification) {
        if self.blocked.contains(&(from, to)) || self.rng.gen_bool(self.vote_drop) {
            return;
        }
        let copies = if self.rng.gen_bool(0.05) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.gen_range(1..30);
            self.push(
                at,
                Event::Vote {
                    from,
                    to,
                    note: note.clone(),
                },
            );
        }
    }

    fn send(&mut self, from: i64, to: i64, conn: u64, msg: Msg) {
        let now = self.now;
        let c = self.conns.entry(conn).or_insert(ConnState {
            ends: (from, to),
            broken: false,
            last_at: [0; 2],
        });
        if c.broken {
            return;
        }
        if self.blocked.contains(&(from, to)) {
            // A partition: the connection swallows this and all that follows.
            c.broken = true;
            return;
        }
        if self.rng.gen_bool(self.conn_reset) {
            c.broken = true;
            for (a, b) in [(from, to), (to, from)] {
                let at = now + self.rng.gen_range(1..20);
                self.push(
                    at,
                    Event::Closed {
                        from: a,
                        to: b,
                        conn,
                    },
                );
            }
            return;
        }
        let dir = usize::from(to > from);
        let at = (now + self.rng.gen_range(1..15)).max(c.last_at[dir]);
        c.last_at[dir] = at;
        self.push(
            at,
            Event::Msg {
                from,
                to,
                conn,
                msg: Box::new(msg),
            },
        );
    }

    fn close(&mut self, from: i64, to: i64, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.broken {
            return;
        }
        c.broken = true;
        let at = self.now + self.rng.gen_range(1..10);
        self.push(at, Event::Closed { from, to, conn });
    }

    // ----- clients -----

    fn issue(&mut self, client: usize) {
        let now = self.now;
        let c = &self.clients[client];
        if now >= self.issue_until || c.current.is_some() || c.connecting {
            return;
        }
        let ids: Vec<i64> = self.servers.keys().copied().collect();
        let server = match c.home {
            Some(home) if self.rng.gen_bool(0.8) => home,
            _ => ids[self.rng.gen_range(0..ids.len())],
        };
        if c.session == 0 || c.home != Some(server) {
            // A new session, or a move: the client connects there first.
            let c = &mut self.clients[client];
            c.connecting = true;
            c.attempts += 1;
            let attempt = c.attempts;
            let at = now + self.rng.gen_range(1..5);
            self.push(at, Event::Connect { client, server });
            self.push(
                now + CLIENT_TIMEOUT_MS,
                Event::GiveUpConnect { client, attempt },
            );
            return;
        }
        let key = self.rng.gen_range(0..KEYS);
        let version = match self.rng.gen_range(0..3) {
            0 => -1,
            1 => self.clients[client].versions[key],
            _ => self.rng.gen_range(0..4),
        };
        let kind = match self.rng.gen_range(0..6) {
            0 => OpKind::Create,
            1 => OpKind::Delete(version),
            2 | 3 => OpKind::Set(version),
            n => OpKind::Read { synced: n == 5 },
        };
        let op = self.ops.len();
        self.ops.push(Op {
            key,
            kind,
            invoke: now,
            done: None,
            abandoned: false,
            served: None,
        });
        self.clients[client].current = Some(op);
        let at = now + self.rng.gen_range(1..5);
        self.push(at, Event::Arrive { op, server });
        self.push(now + CLIENT_TIMEOUT_MS, Event::GiveUp { op });
    }

    /// A client's request for a new session reaches `server`.
    fn connect(&mut self, client: usize, server: i64) {
        let now = self.now;
        if !self.clients[client].connecting {
            return;
        }
        let c = &self.clients[client];
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: c.last_seen,
            timeout_ms: 600_000,
            session_id: c.session,
            passwd: Bytes::copy_from_slice(&c.passwd),
            read_only: None,
        };
        let conn = CONNECT_CONN + client as u64;
        let Some(m) = self.member(server) else {
            // Nobody listens: the client tries again.
            self.clients[client].connecting = false;
            self.push(now + 50, Event::Issue { client });
            return;
        };
        let out = m.input(Input::Connect { conn, req }, now);
        self.run(server, out);
    }

    fn client_of(&self, op: usize) -> usize {
        self.clients
            .iter()
            .position(|c| c.current == Some(op))
            .expect("client")
    }

    fn arrive(&mut self, op: usize, server: i64) {
        if self.ops[op].abandoned {
            return;
        }
        let c = self.client_of(op);
        let s = &self.servers[&server];
        let Some(peer) = s.member.as_ref().map(Member::peer).filter(|p| p.serving()) else {
            // Not serving: refused, with no effect. Not part of the history.
            self.ops[op].done = Some((self.now, Res::Err(ErrorCode::ConnectionLoss)));
            self.clients[c].home = None;
            self.finish(c);
            return;
        };
        if peer.applied() < self.clients[c].last_seen {
            // The client has seen newer state than this server has: ZooKeeper refuses the
            // connection. No effect; not part of the history.
            self.ops[op].done = Some((self.now, Res::Err(ErrorCode::ConnectionLoss)));
            self.clients[c].home = None;
            self.finish(c);
            return;
        }
        let behind = s
            .visible
            .as_ref()
            .is_none_or(|v| v.last_zxid() < self.clients[c].last_seen);
        if matches!(self.ops[op].kind, OpKind::Read { synced: false }) && behind {
            // The fronts' version is behind what the client has seen (the member has not
            // handed over its round yet): a real client would not be connected here (its
            // connection closed when the member stopped serving, and a reconnect waits for
            // the member's answer, which comes with a newer version). As refused.
            self.ops[op].done = Some((self.now, Res::Err(ErrorCode::ConnectionLoss)));
            self.clients[c].home = None;
            self.finish(c);
            return;
        }
        let session_id = self.clients[c].session;
        self.clients[c].cxid += 1;
        let cxid = self.clients[c].cxid;
        let o = &self.ops[op];
        let path = format!("/k{}", o.key);
        let data = Some(Bytes::from(format!("{op}")));
        let req = match o.kind {
            OpKind::Read { synced: false } => {
                self.serve_read(op, server);
                return;
            }
            OpKind::Read { synced: true } => {
                let origin = Origin {
                    conn: op as u64,
                    xid: cxid,
                    opcode: opcode::SYNC,
                };
                let input = Input::Sync {
                    origin,
                    session_id,
                    path,
                    reads_waiting: false,
                };
                self.submit(server, op, input);
                return;
            }
            OpKind::Create => Request::Create(crate::proto::CreateRequest {
                path,
                data,
                acl: crate::proto::Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
                opcode: opcode::CREATE,
            }),
            OpKind::Set(version) => Request::SetData {
                path,
                data,
                version,
            },
            OpKind::Delete(version) => Request::Delete { path, version },
        };
        let origin = Origin {
            conn: op as u64,
            xid: cxid,
            opcode: req.opcode(),
        };
        let input = Input::Write {
            origin,
            session_id,
            req,
            auth: Vec::new(),
            reads_waiting: false,
        };
        self.submit(server, op, input);
    }

    /// Hands a client's write or sync to a serving `server`, which answers it later.
    fn submit(&mut self, server: i64, op: usize, input: Input) {
        let now = self.now;
        let s = self.servers.get_mut(&server).expect("server");
        s.pending.insert(op);
        let out = s.member.as_mut().expect("serving").input(input, now);
        self.run(server, out);
    }

    /// Answers a read from `server`'s tree as it is now.
    fn serve_read(&mut self, op: usize, server: i64) {
        if self.ops[op].abandoned || self.ops[op].done.is_some() {
            return;
        }
        let s = &self.servers[&server];
        let m = s.member.as_ref().expect("serving");
        // As the fronts do: from the version they were last given, which may trail the
        // member's committed tree by the rest of a round.
        let tree = s.visible.as_ref().expect("a serving member has published");
        let z = tree.last_zxid();
        let epoch = m.peer().current_epoch();
        let res = match tree.get(&format!("/k{}", self.ops[op].key)) {
            Some(n) => Res::Ok(n.version),
            None => Res::Err(ErrorCode::NoNode),
        };
        self.ops[op].done = Some((self.now, res));
        self.ops[op].served = Some((z, epoch));
        self.stats.reads += 1;
        if matches!(self.ops[op].kind, OpKind::Read { synced: true }) {
            self.stats.synced_reads += 1;
        }
        let c = self.client_of(op);
        self.clients[c].last_seen = self.clients[c].last_seen.max(z);
        self.finish(c);
    }

    fn answer(&mut self, op: usize, res: Res, zxid: i64, hash: u64) {
        if self.ops[op].abandoned || self.ops[op].done.is_some() {
            return;
        }
        if let Res::Err(ErrorCode::SessionMoved) = res {
            // The server closes the connection unanswered (the session moved on since this
            // write left it): no effect, and the client reconnects somewhere.
            self.ops[op].done = Some((self.now, Res::Err(ErrorCode::ConnectionLoss)));
            self.stats.moved += 1;
            let c = self.client_of(op);
            self.clients[c].home = None;
            self.finish(c);
            return;
        }
        self.ops[op].done = Some((self.now, res));
        self.acked.insert(zxid, hash);
        self.answered_writes.push((self.now, zxid));
        self.stats.answered += 1;
        if let (OpKind::Set(_), Res::Ok(v)) = (self.ops[op].kind, res) {
            let key = self.ops[op].key;
            let c = self.client_of(op);
            self.clients[c].versions[key] = v;
        }
        let c = self.client_of(op);
        self.clients[c].last_seen = self.clients[c].last_seen.max(zxid);
        self.finish(c);
    }

    fn abandon(&mut self, op: usize) {
        if self.ops[op].abandoned || self.ops[op].done.is_some() {
            return;
        }
        self.ops[op].abandoned = true;
        self.stats.unknown += 1;
        let c = self.client_of(op);
        self.finish(c);
    }

    fn finish(&mut self, c: usize) {
        self.clients[c].current = None;
        let at = self.now + self.rng.gen_range(1..100);
        self.push(at, Event::Issue { client: c });
    }

    // ----- faults -----

    fn plan_faults(&mut self, until: i64) {
        let ids: Vec<i64> = self.servers.keys().copied().collect();
        let mut t = 500;
        while t < until {
            t += self.rng.gen_range(300..3_000);
            match self.rng.gen_range(0..12) {
                10 | 11 => {
                    // Power loss: a majority, or everyone, at once.
                    let n = if self.rng.gen_bool(0.5) {
                        ids.len()
                    } else {
                        self.cfg.voters.len() / 2 + 1
                    };
                    let mut down = ids.clone();
                    while down.len() > n {
                        down.remove(self.rng.gen_range(0..down.len()));
                    }
                    for id in down {
                        self.push(
                            t,
                            Event::Crash {
                                id,
                                fsync_failed: false,
                            },
                        );
                        let back = t + self.rng.gen_range(100..3_000);
                        self.push(back, Event::Restart { id });
                    }
                }
                0..=3 => {
                    let id = ids[self.rng.gen_range(0..ids.len())];
                    let fsync_failed = self.rng.gen_bool(0.2);
                    self.push(t, Event::Crash { id, fsync_failed });
                    let back = t + self.rng.gen_range(100..4_000);
                    self.push(back, Event::Restart { id });
                }
                4..=6 => {
                    self.push(t, Event::Partition);
                    let heal = t + self.rng.gen_range(200..4_000);
                    self.push(heal, Event::Heal);
                }
                _ => {}
            }
        }
    }

    fn partition(&mut self) {
        let ids: Vec<i64> = self.servers.keys().copied().collect();
        if self.rng.gen_bool(0.6) {
            // Two sides, cut both ways.
            let side: BTreeSet<i64> = ids
                .iter()
                .copied()
                .filter(|_| self.rng.gen_bool(0.5))
                .collect();
            for a in &ids {
                for b in &ids {
                    if side.contains(a) != side.contains(b) {
                        self.blocked.insert((*a, *b));
                    }
                }
            }
        } else {
            // Some single directions.
            for _ in 0..self.rng.gen_range(1..4) {
                let a = ids[self.rng.gen_range(0..ids.len())];
                let b = ids[self.rng.gen_range(0..ids.len())];
                if a != b {
                    self.blocked.insert((a, b));
                }
            }
        }
    }

    // ----- the loop -----

    fn step(&mut self) -> bool {
        let Some(((at, _), ev)) = self.queue.pop_first() else {
            return false;
        };
        self.now = at;
        let now = at;
        if self.trace && !matches!(ev, Event::Wake { .. } | Event::DiskDone { .. }) {
            eprintln!("{now} {ev:?}");
        }
        match ev {
            Event::Vote { from, to, note } => {
                if let Some(m) = self.member(to) {
                    let out = m.vote_received(from, &note, now);
                    self.run(to, out);
                }
            }
            Event::Msg {
                from,
                to,
                conn,
                msg,
            } => {
                if self.conns.get(&conn).is_some_and(|c| c.broken) {
                    return true;
                }
                if let Some(m) = self.member(to) {
                    let out = m.message(from, conn, *msg, now);
                    self.run(to, out);
                }
            }
            Event::Closed { from, to, conn } => {
                if let Some(m) = self.member(to) {
                    let out = m.closed(from, conn, now);
                    self.run(to, out);
                }
            }
            Event::Wake { id, generation } => {
                let s = self.servers.get_mut(&id).expect("server");
                if s.generation == generation {
                    if let Some(m) = s.member.as_mut() {
                        let out = m.tick(now);
                        self.run(id, out);
                        self.end_round(id);
                    }
                }
            }
            Event::LogRead {
                id,
                generation,
                to,
                conn,
                range,
            } => {
                let s = self.servers.get_mut(&id).expect("server");
                if s.generation != generation {
                    return true;
                }
                if let Some(m) = s.member.as_mut() {
                    let out = m.log_read(to, conn, range, now);
                    self.run(id, out);
                }
            }
            Event::DiskDone { id, generation } => {
                let s = self.servers.get_mut(&id).expect("server");
                if s.generation != generation {
                    return true;
                }
                let (len, last) = s.disk.writes.pop_front().expect("write");
                s.disk.synced_len = s.disk.synced_len.max(len.min(s.disk.log.len()));
                if let Some(m) = s.member.as_mut() {
                    let out = m.log_synced(last, now);
                    self.run(id, out);
                }
            }
            Event::Connect { client, server } => self.connect(client, server),
            Event::GiveUpConnect { client, attempt } => {
                let c = &mut self.clients[client];
                if c.connecting && c.attempts == attempt {
                    c.connecting = false;
                    self.push(now + 1, Event::Issue { client });
                }
            }
            Event::Issue { client } => self.issue(client),
            Event::Arrive { op, server } => self.arrive(op, server),
            Event::GiveUp { op } => {
                if self.ops[op].done.is_none() && !self.ops[op].abandoned {
                    // Forget it wherever it waits; a late answer is dropped because the op
                    // is abandoned.
                    for s in self.servers.values_mut() {
                        s.pending.remove(&op);
                    }
                    self.abandon(op);
                }
            }
            Event::Crash { id, fsync_failed } => self.crash(id, fsync_failed),
            Event::Restart { id } => {
                if self.servers[&id].member.is_none() {
                    self.start(id);
                }
            }
            Event::Partition => self.partition(),
            Event::Heal => self.blocked.clear(),
        }
        for s in self.servers.values() {
            if let Some(m) = &s.member {
                m.check_invariants();
            }
        }
        true
    }

    fn run_until(&mut self, end: i64) {
        while self
            .queue
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= end)
        {
            self.step();
        }
        self.now = end;
    }

    /// One whole run: start everyone, faults and client load for `fault_ms`, then heal, restart
    /// everyone, and let it settle. Returns what happened.
    pub(super) fn simulate(&mut self, fault_ms: i64) -> Stats {
        let ids: Vec<i64> = self.servers.keys().copied().collect();
        for id in &ids {
            let at = self.rng.gen_range(0..300);
            self.push(at, Event::Restart { id: *id });
        }
        if self.faults {
            self.plan_faults(fault_ms);
        }
        self.issue_until = fault_ms + 4_000;
        for c in 0..self.clients.len() {
            let at = self.rng.gen_range(200..800);
            self.push(at, Event::Issue { client: c });
        }
        self.run_until(fault_ms);
        // Heal: no more faults, everyone back.
        self.queue
            .retain(|_, ev| !matches!(ev, Event::Crash { .. } | Event::Partition));
        self.blocked.clear();
        self.conn_reset = 0.0;
        self.vote_drop = 0.0;
        for id in &ids {
            if self.servers[id].member.is_none() {
                self.start(*id);
            }
        }
        self.run_until(fault_ms + 12_000);
        self.check_converged();
        self.check_linearizable();
        self.check_reads();
        self.stats.clone()
    }

    /// After healing: one established leader, everyone serving it with the same tree.
    fn check_converged(&self) {
        let mut leaders = Vec::new();
        let mut zxids = BTreeSet::new();
        for (id, s) in &self.servers {
            let m = s.member.as_ref().expect("restarted");
            let p = m.peer();
            if !p.serving() {
                self.fail(format!("{id} is not serving after healing: {:?}", p.role()));
            }
            if let Role::Leading { .. } = p.role() {
                leaders.push(*id);
            }
            zxids.insert((m.tree().last_zxid(), m.tree().digest()));
        }
        if leaders.len() != 1 {
            self.fail(format!("leaders after healing: {leaders:?}"));
        }
        if zxids.len() != 1 {
            self.fail(format!("replicas differ after healing: {zxids:x?}"));
        }
    }

    /// Reads: each matches the committed history at the zxid it was served from (which must
    /// be in that history); a read after a sync sees every write answered before the sync
    /// began, of the answering server's epoch or earlier. (A leader deposed without knowing it
    /// may answer a sync without the writes of a later epoch: ZooKeeper's sync has that caveat.)
    fn check_reads(&self) {
        let s = self.servers.values().next().expect("a server");
        let mut tree = DataTree::new();
        let mut timeline: Vec<(i64, [Option<i32>; KEYS])> = vec![(0, [None; KEYS])];
        for z in s.applied.keys() {
            let t = self
                .txns
                .get(z)
                .expect("every committed txn was applied somewhere");
            tree.apply(t, &mut Vec::new());
            let versions = std::array::from_fn(|k| tree.get(&format!("/k{k}")).map(|n| n.version));
            timeline.push((*z, versions));
        }
        for (i, o) in self.ops.iter().enumerate() {
            let (Some((z, epoch)), Some((_, res))) = (o.served, o.done) else {
                continue;
            };
            let at = timeline.partition_point(|(tz, _)| *tz <= z);
            if timeline[at - 1].0 != z {
                self.fail(format!(
                    "read {i} served at {z:#x}, not in the committed history"
                ));
            }
            let want = match timeline[at - 1].1[o.key] {
                Some(v) => Res::Ok(v),
                None => Res::Err(ErrorCode::NoNode),
            };
            if res != want {
                self.fail(format!(
                    "read {i} of /k{} at {z:#x} gave {res:?}, history has {want:?}",
                    o.key
                ));
            }
            if o.kind == (OpKind::Read { synced: true }) {
                for (t, w) in &self.answered_writes {
                    if *t < o.invoke && epoch_of(*w) <= epoch && *w > z {
                        self.fail(format!(
                            "synced read {i} at {z:#x} misses write {w:#x} answered at {t} before it began"
                        ));
                    }
                }
            }
        }
    }

    fn check_linearizable(&self) {
        for key in 0..KEYS {
            let ops: Vec<&Op> = self
                .ops
                .iter()
                .filter(|o| o.key == key)
                .filter(|o| !matches!(o.kind, OpKind::Read { .. }))
                .filter(|o| !matches!(o.done, Some((_, Res::Err(ErrorCode::ConnectionLoss)))))
                .collect();
            if let Err(why) = linearizable(&ops) {
                self.fail(format!("key /k{key} not linearizable: {why}"));
            }
        }
    }
}

/// A key's state in the model: its version, if it exists.
type Model = Option<i32>;

fn step_model(m: Model, kind: OpKind) -> (Model, Res) {
    match (kind, m) {
        (OpKind::Create, Some(_)) => (m, Res::Err(ErrorCode::NodeExists)),
        (OpKind::Create, None) => (Some(0), Res::Ok(0)),
        (OpKind::Set(_) | OpKind::Delete(_), None) => (m, Res::Err(ErrorCode::NoNode)),
        (OpKind::Set(v), Some(cur)) if v != -1 && v != cur => (m, Res::Err(ErrorCode::BadVersion)),
        (OpKind::Set(_), Some(cur)) => (Some(cur + 1), Res::Ok(cur + 1)),
        (OpKind::Delete(v), Some(cur)) if v != -1 && v != cur => {
            (m, Res::Err(ErrorCode::BadVersion))
        }
        (OpKind::Delete(_), Some(_)) => (None, Res::Ok(0)),
        (OpKind::Read { .. }, _) => unreachable!("reads are checked apart"),
    }
}

/// Wing and Gong's search for a linearization: repeatedly pick an op that no other pending op
/// finished before (in real time), whose result the model agrees with; ops with unknown
/// outcomes may take effect at any point after they began, or never. Memoized on (ops done,
/// model state).
fn linearizable(ops: &[&Op]) -> Result<(), String> {
    let n = ops.len();
    let end = |o: &Op| o.done.map_or(i64::MAX, |(t, _)| t);
    let mut seen: HashSet<(Vec<u64>, Model)> = HashSet::new();
    let words = n.div_ceil(64).max(1);
    fn rec(
        ops: &[&Op],
        end: &dyn Fn(&Op) -> i64,
        done: &mut Vec<u64>,
        model: Model,
        seen: &mut HashSet<(Vec<u64>, Model)>,
    ) -> bool {
        // Every op with a known outcome linearized: the rest may never have happened.
        let open_known = ops
            .iter()
            .enumerate()
            .any(|(i, o)| o.done.is_some() && done[i / 64] & (1 << (i % 64)) == 0);
        if !open_known {
            return true;
        }
        if !seen.insert((done.clone(), model)) {
            return false;
        }
        // An op can go next only if it began before every open op's end.
        let horizon = ops
            .iter()
            .enumerate()
            .filter(|(i, _)| done[i / 64] & (1 << (i % 64)) == 0)
            .map(|(_, o)| end(o))
            .min()
            .unwrap_or(i64::MAX);
        for (i, o) in ops.iter().enumerate() {
            if done[i / 64] & (1 << (i % 64)) != 0 || o.invoke > horizon {
                continue;
            }
            let (next, res) = step_model(model, o.kind);
            if o.done.is_some_and(|(_, r)| r != res) {
                continue;
            }
            done[i / 64] |= 1 << (i % 64);
            if rec(ops, end, done, next, seen) {
                return true;
            }
            done[i / 64] &= !(1 << (i % 64));
        }
        false
    }
    let mut done = vec![0u64; words];
    if rec(ops, &end, &mut done, None, &mut seen) {
        Ok(())
    } else {
        let summary: Vec<String> = ops
            .iter()
            .map(|o| format!("{:?}@{}..{:?}", o.kind, o.invoke, o.done))
            .collect();
        Err(summary.join(", "))
    }
}
