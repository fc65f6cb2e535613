//! An ensemble member with its data: a [`Peer`] (election and ZAB) plus the znode tree, the
//! session table and this server's clients' requests, as one state machine. It does no IO: the
//! runtime (or the simulator) feeds it client requests ([`Input`], as the standalone
//! [`crate::node::Node`] takes them), peer messages, log completions and the time, and carries
//! out its [`Output`]s in order.
//!
//! What it adds to the peer:
//! - **Prep on the leader, apply everywhere.** The established leader preps each write (its own
//!   clients' and those learners forward) against its *newest* tree, which has every proposed
//!   txn applied, and proposes it. Every member applies committed txns ([`peer::Output::Apply`])
//!   to its *committed* tree, which is what its clients read and what [`Output::Publish`] hands
//!   the fronts, with a flush point after each round ([`Member::flush`]). A deposed leader drops
//!   its newest tree.
//! - **Clients are answered by the server they are connected to**, from its committed tree: a
//!   write once its txn applies here (matched by session id and cxid), a sync once the leader
//!   says everything it had proposed is here ([`peer::Output::SyncDone`]), a new session once its
//!   createSession txn applies here.
//! - **Sessions are global.** Any member creates a session: it picks the id (its own server id
//!   in the top byte, so ids never collide) and sends a createSession write to the leader. Every
//!   member applies createSession and closeSession txns to its table. Only the leader expires
//!   sessions: its clients' activity touches its table directly, a learner's goes to it with the
//!   learner's next ping answer. A newly established leader gives every session a fresh full
//!   timeout, so a failover expires no live session. A session being closed (its closeSession
//!   prepped, not yet applied) gets SESSIONEXPIRED for any later write, as in ZooKeeper.
//! - **A session belongs to one server at a time** (ZooKeeper's owner rule). A client that
//!   reconnects with its session to a learner is answered only once the leader says the session
//!   is live (REVALIDATE, [`Msg::Revalidate`]), which also makes that learner the owner; on the
//!   leader, a reconnect makes the leader the owner. createSession sets it too, and a new leader
//!   (which knows no owners) takes a session's first writer. The leader gives any other
//!   server's write of the session an error txn of SESSIONMOVED (closeSession excepted), and
//!   that server's front closes the connection it came from without an answer.
//! - **A server that is not serving answers nobody**: it refuses connects, and when it stops
//!   serving it forgets its clients' outstanding requests; the runtime closes their connections
//!   on [`Output::Role`]. A leader told `leaderServes=no` ([`Member::set_leader_serves`])
//!   refuses connects too (it comes to lead from electing, when it had none).
//! - **Snapshots** of the committed tree, while serving, after about `snap_count` applied txns
//!   (the standalone node's rule, `node.rs`), or when the `snap` word asks; one at a time. Only
//!   committed txns are in them, so a later TRUNC never goes below one (it removes uncommitted
//!   txns only).
//! - **Truncation needs the disk.** On [`Output::Truncate`] the runtime drops the log's tail,
//!   rebuilds the tree and sessions from its disk and hands them back with
//!   [`Member::truncated`], before feeding anything else; the peer's outputs after the
//!   truncation wait for that.
//!
//! Invariants ([`Member::check_invariants`]): the committed tree is at the peer's `applied`; the
//! newest tree exists only on an established leader and is at or past the committed one; every
//! ephemeral owner in the committed tree is in the session table.

use crate::node::{Entry, Input, SnapTrigger};
use crate::pipeline::{collectable, Committed, ConnectOutcome, Origin, PipelineConfig};
use crate::prep::{self, PrepContext};
use crate::proto::{ConnectRequest, ErrorCode, Request};
use crate::session::{Passwords, SessionTable};
use crate::snap::SnapSession;
use crate::tree::DataTree;
use crate::txn::{Txn, TxnOp};
use crate::watch::ConnId;
use crate::zab::peer::{self, Forward, Image, Msg, Peer, PeerConfig, Persisted, Role};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What the runtime must do, in order.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Output {
    /// The peer's network, timer and disk work, carried out as [`peer::Output`] says: `Vote`,
    /// `Send`, `Close`, `WakeAt`, `SaveAcceptedEpoch`, `SaveCurrentEpoch`, `Append`.
    Io(peer::Output),
    /// Drop every logged txn after this zxid (durably), rebuild the tree and the sessions from
    /// the disk at it, and call [`Member::truncated`] before feeding in anything else.
    Truncate(i64),
    /// Make this state durable (a snapshot at `zxid`, the log emptied past it) before carrying
    /// out anything that follows. The member already serves from it.
    Install {
        zxid: i64,
        tree: DataTree,
        sessions: Vec<SnapSession>,
    },
    /// Write a snapshot of this committed tree and these sessions, then report
    /// [`Member::snapshot_written`]; `token` is set when the `snap` word asked.
    WriteSnapshot {
        tree: DataTree,
        sessions: Vec<SnapSession>,
        token: Option<u64>,
    },
    /// The `snap` word asked while a snapshot is being written, or while not serving.
    SnapshotBusy { token: u64 },
    /// Committed entries for every front, in order, ending with a flush point; `version` is the
    /// tree after them.
    Publish {
        entries: Vec<Entry>,
        version: DataTree,
    },
    /// The role changed. When it does not serve, the runtime closes every client connection (a
    /// ZooKeeper server shuts its client side down when it leaves its role).
    Role(Role),
}

/// A client's write waiting for its txn to apply here.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    origin: Origin,
    reads_waiting: bool,
}

pub struct Member {
    cfg: PipelineConfig,
    peer: Peer,
    /// The committed tree, at `peer.applied()`.
    tree: DataTree,
    sessions: SessionTable,
    /// The established leader's tree with every proposed txn applied.
    newest: Option<DataTree>,
    /// Sessions whose closeSession the leader has prepped and not yet applied.
    closing: BTreeSet<i64>,
    /// Sessions whose createSession the leader has prepped and not yet applied. The leader
    /// counts them live, as ZooKeeper's leader tracks a session from its prep: a follower may
    /// have committed the create already (`Msg::LeaderSynced`) and its client may be back, on
    /// another server, before the leader hears the ACK that commits it here.
    opening: BTreeSet<i64>,
    /// This server's clients' writes, by (session id, cxid).
    waiting: BTreeMap<(i64, i32), Waiting>,
    /// New sessions of this server's clients, waiting for their createSession to apply.
    connects: BTreeMap<i64, ConnId>,
    /// (On a learner) reconnects waiting for the leader's revalidation: session id to the
    /// connection and the timeout it negotiated. A second reconnect of one session replaces
    /// the first, whose client is never answered (as in ZooKeeper; its connect times out).
    revalidating: BTreeMap<i64, (ConnId, i32)>,
    /// (On an established leader) each session's owner, as ZooKeeper's session tracker keeps
    /// it: the server its client is connected to. createSession and a reconnect (the leader's
    /// own, or a learner's revalidation) set it; a new leader starts with none, and a
    /// session's first write sets it. A write from any other server gets SESSIONMOVED (its
    /// server closes that connection).
    owners: BTreeMap<i64, i64>,
    /// This server's clients' syncs, in the order asked.
    syncs: VecDeque<(Origin, String)>,
    /// The peer's outputs after a truncation, until [`Member::truncated`].
    stalled: Option<VecDeque<peer::Output>>,
    next_container_check_ms: i64,
    /// Wall time minus the inputs' `now` (see `Pipeline::set_wall_offset`): znode stamps and
    /// TTL checks are wall time; sessions and the peer's timers run on `now`, which never jumps.
    wall_offset_ms: i64,
    /// Keys session passwords; the same on every member.
    secret: Passwords,
    snap: SnapTrigger,
    /// After a Java leader's fuzzy snapshot: txns through this zxid may already show in the
    /// tree (see `Image::fuzzy_through`).
    fuzzy_through: i64,
    /// The tree the fronts were last given.
    visible: DataTree,
    /// Entries for the fronts not handed over yet ([`Member::flush`]), and whether this server
    /// served when they were made.
    unpublished: Option<Vec<Entry>>,
    unpublished_serving: bool,
    /// ZooKeeper's `leaderServes`: false makes an established leader refuse clients.
    leader_serves: bool,
}

impl Member {
    /// A member over what its disk holds: `tree` and `sessions` have every txn of the log
    /// (`disk.last_zxid`). `secret` keys session passwords and must be the same on every
    /// member. `snaps` is `snapCount` and the seed its thresholds are rolled from.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        cfg: PipelineConfig,
        peer_cfg: PeerConfig,
        disk: Persisted,
        tree: DataTree,
        sessions: &[SnapSession],
        secret: Passwords,
        snaps: (u64, u64),
        now: i64,
    ) -> (Member, Vec<Output>) {
        assert_eq!(tree.last_zxid(), disk.last_zxid, "the tree holds the log");
        assert_eq!(
            cfg.session.server_id, peer_cfg.my_id,
            "session ids carry my id"
        );
        let (peer, out) = Peer::start(peer_cfg, disk, now);
        let mut m = Member {
            sessions: SessionTable::new(cfg.session.clone(), now, secret),
            next_container_check_ms: now + cfg.container_check_ms,
            wall_offset_ms: 0,
            cfg,
            peer,
            visible: tree.clone(),
            unpublished: None,
            unpublished_serving: false,
            leader_serves: true,
            tree,
            newest: None,
            closing: BTreeSet::new(),
            opening: BTreeSet::new(),
            waiting: BTreeMap::new(),
            connects: BTreeMap::new(),
            revalidating: BTreeMap::new(),
            owners: BTreeMap::new(),
            syncs: VecDeque::new(),
            stalled: None,
            secret,
            snap: SnapTrigger::new(snaps.0, snaps.1),
            fuzzy_through: 0,
        };
        m.load_sessions(sessions, now);
        let out = m.carry(out, now);
        (m, out)
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The committed tree (what this server's clients read).
    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    fn load_sessions(&mut self, sessions: &[SnapSession], now: i64) {
        self.sessions = SessionTable::new(self.cfg.session.clone(), now, self.secret);
        for s in sessions {
            self.sessions.ensure_next_above(s.id);
            self.sessions.add(s.id, s.timeout_ms, now);
        }
    }

    /// Wall time minus the inputs' `now`; the runtime sets it each round (0 in the simulator).
    pub fn set_wall_offset(&mut self, ms: i64) {
        self.wall_offset_ms = ms;
    }

    /// `leaderServes`: with false, this member refuses clients while it leads (they find
    /// another member), as a ZooKeeper leader configured so does.
    pub fn set_leader_serves(&mut self, serves: bool) {
        self.leader_serves = serves;
    }

    /// Whether this member takes clients now: it serves, and it is not a leader told not to.
    fn takes_clients(&self) -> bool {
        self.peer.serving() && (self.leader_serves || self.newest.is_none())
    }

    /// A truncation is being carried out: nothing may be fed in until [`Member::truncated`].
    pub fn stalled(&self) -> bool {
        self.stalled.is_some()
    }

    fn assert_not_stalled(&self) {
        assert!(
            self.stalled.is_none(),
            "fed an input before the truncation was carried out"
        );
    }

    // ----- inputs from the peer's side -----

    pub fn vote_received(
        &mut self,
        from: i64,
        note: &crate::quorum::Notification,
        now: i64,
    ) -> Vec<Output> {
        self.assert_not_stalled();
        let out = self.peer.vote_received(from, note, now);
        self.carry(out, now)
    }

    pub fn message(&mut self, from: i64, conn: u64, msg: Msg, now: i64) -> Vec<Output> {
        self.assert_not_stalled();
        let out = self.peer.message(from, conn, msg, now);
        self.carry(out, now)
    }

    /// What the log gave for a learner's sync (`peer::Output::ReadLog`).
    pub fn log_read(
        &mut self,
        to: i64,
        conn: u64,
        range: Option<crate::zab::peer::LogSpan>,
        now: i64,
    ) -> Vec<Output> {
        self.assert_not_stalled();
        let out = self.peer.log_read(to, conn, range, now);
        self.carry(out, now)
    }

    pub fn closed(&mut self, from: i64, conn: u64, now: i64) -> Vec<Output> {
        self.assert_not_stalled();
        let out = self.peer.closed(from, conn, now);
        self.carry(out, now)
    }

    pub fn log_synced(&mut self, zxid: i64, now: i64) -> Vec<Output> {
        self.assert_not_stalled();
        let out = self.peer.log_synced(zxid, now);
        self.carry(out, now)
    }

    /// The truncation asked for is done: `tree` and `sessions` are what the disk holds at it.
    pub fn truncated(&mut self, tree: DataTree, sessions: &[SnapSession], now: i64) -> Vec<Output> {
        let rest = self.stalled.take().expect("a truncation was asked for");
        assert_eq!(
            tree.last_zxid(),
            self.peer.applied(),
            "rebuilt at the point"
        );
        self.tree = tree;
        self.load_sessions(sessions, now);
        self.carry(rest.into(), now)
    }

    /// Time passes: the peer's timers, and on an established leader session expiry and the
    /// collection of empty containers and expired TTL nodes.
    pub fn tick(&mut self, now: i64) -> Vec<Output> {
        self.assert_not_stalled();
        let out = self.peer.tick(now);
        let mut done = self.carry(out, now);
        if self.newest.is_none() {
            return done;
        }
        let expired: Vec<i64> = self
            .sessions
            .expired(now)
            .into_iter()
            .filter(|id| !self.closing.contains(id))
            .collect();
        let me = self.my_id();
        for id in expired {
            self.lead(id, 0, &Request::CloseSession, &[], me, now, &mut done);
        }
        if now >= self.next_container_check_ms {
            self.next_container_check_ms = now + self.cfg.container_check_ms;
            let newest = self.newest.as_ref().expect("leading");
            let wall = now + self.wall_offset_ms;
            let ops: Vec<TxnOp> = collectable(newest, &self.cfg, wall)
                .iter()
                .filter_map(|p| prep::prep_delete_container(newest, p))
                .collect();
            for op in ops {
                self.propose(0, 0, op, now, &mut done);
            }
        }
        done
    }

    // ----- inputs from this server's clients -----

    pub fn input(&mut self, input: Input, now: i64) -> Vec<Output> {
        self.assert_not_stalled();
        let mut out = Vec::new();
        match input {
            Input::Connect { conn, req } => self.connect(conn, &req, now, &mut out),
            Input::Write {
                origin,
                session_id,
                req,
                auth,
                reads_waiting,
            } => {
                if !self.peer.serving() {
                    // Its connection is closed with the role change.
                    return out;
                }
                self.waiting.insert(
                    (session_id, origin.xid),
                    Waiting {
                        origin,
                        reads_waiting,
                    },
                );
                self.write(session_id, origin.xid, req, auth, now, &mut out);
            }
            Input::Sync {
                origin,
                session_id,
                path,
                ..
            } => {
                let req = Forward {
                    session_id,
                    cxid: origin.xid,
                    req: Request::Sync { path: path.clone() },
                    auth: Vec::new(),
                };
                if let Some(o) = self.peer.sync(req) {
                    self.syncs.push_back((origin, path));
                    self.touch_one(session_id, now);
                    out = self.carry(o, now);
                }
            }
            Input::Touch { sessions } => {
                for id in sessions {
                    self.touch_one(id, now);
                }
            }
            Input::SnapshotAsked { token } => {
                self.flush_into(&mut out);
                out.push(if self.snap.busy || !self.peer.serving() {
                    Output::SnapshotBusy { token }
                } else {
                    self.snapshot(Some(token))
                });
            }
        }
        out
    }

    fn touch_one(&mut self, id: i64, now: i64) {
        if self.newest.is_some() {
            self.sessions.touch(id, now);
        } else if let Some(s) = self.sessions.get(id) {
            let timeout = s.timeout_ms;
            self.peer.touch([(id, timeout)]);
        }
    }

    fn my_id(&self) -> i64 {
        self.cfg.session.server_id
    }

    /// A reconnect's outcome once its session is known to be live (`valid`) or not.
    fn resumed(&mut self, id: i64, timeout_ms: i32, valid: bool, now: i64) -> ConnectOutcome {
        if !valid {
            return ConnectOutcome::Invalid;
        }
        if self.sessions.get(id).is_some() {
            self.sessions.set_timeout(id, timeout_ms, now);
        }
        if self.newest.is_some() {
            self.sessions.touch(id, now);
        } else {
            self.peer.touch([(id, timeout_ms)]);
        }
        ConnectOutcome::Accepted {
            session_id: id,
            timeout_ms,
            passwd: self.sessions.password(id),
        }
    }

    /// The answer to a connect; a resumed session's other connections here close.
    fn answer_connect(
        &mut self,
        conn: ConnId,
        session_id: i64,
        outcome: ConnectOutcome,
        out: &mut Vec<Output>,
    ) {
        let resumed = matches!(outcome, ConnectOutcome::Accepted { .. });
        let mut entries = vec![Entry::ConnectReply { conn, outcome }];
        if resumed && session_id != 0 {
            entries.push(Entry::Resumed { session_id, conn });
        }
        self.publish(entries, out);
    }

    /// (On the leader) whether a session is live: tracked, or its createSession prepped, and
    /// its closeSession not prepped.
    fn leader_knows(&self, id: i64) -> bool {
        (self.sessions.get(id).is_some() || self.opening.contains(&id))
            && !self.closing.contains(&id)
    }

    fn connect(&mut self, conn: ConnId, req: &ConnectRequest, now: i64, out: &mut Vec<Output>) {
        let applied = self.peer.applied();
        let outcome = if !self.takes_clients() {
            Some(ConnectOutcome::NotServing)
        } else if req.last_zxid_seen > applied {
            Some(ConnectOutcome::Refused {
                client_zxid: req.last_zxid_seen,
                our_zxid: applied,
            })
        } else if req.session_id != 0 {
            let id = req.session_id;
            let timeout_ms = self.sessions.negotiate(req.timeout_ms);
            if req.passwd[..] != self.sessions.password(id)[..] {
                Some(ConnectOutcome::Invalid)
            } else if self.newest.is_some() {
                // The leader knows: live if tracked and not closing; this server owns it now.
                let valid = self.leader_knows(id);
                if valid {
                    self.owners.insert(id, self.my_id());
                }
                Some(self.resumed(id, timeout_ms, valid, now))
            } else {
                // A learner asks the leader, which makes this server the owner (ZooKeeper's
                // REVALIDATE): the session may be one this server has not applied yet, and a
                // connection of it elsewhere must get SESSIONMOVED from now on.
                match self.peer.revalidate(id, timeout_ms) {
                    Some(o) => {
                        self.revalidating.insert(id, (conn, timeout_ms));
                        let more = self.carry(o, now);
                        out.extend(more);
                        None
                    }
                    None => Some(ConnectOutcome::NotServing),
                }
            }
        } else {
            None
        };
        if let Some(outcome) = outcome {
            self.answer_connect(conn, req.session_id, outcome, out);
            return;
        }
        if req.session_id != 0 {
            return; // waiting for the leader
        }
        let session_id = self.sessions.next_id();
        let timeout_ms = self.sessions.negotiate(req.timeout_ms);
        self.connects.insert(session_id, conn);
        let req = Request::CreateSession { timeout_ms };
        self.write(session_id, 0, req, Vec::new(), now, out);
    }

    /// A write of this server's client: prepped here on the leader, forwarded by a learner.
    fn write(
        &mut self,
        session_id: i64,
        cxid: i32,
        req: Request,
        auth: Vec<crate::proto::Id>,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        if self.newest.is_some() {
            let me = self.my_id();
            self.lead(session_id, cxid, &req, &auth, me, now, out);
            return;
        }
        self.touch_one(session_id, now);
        let fwd = Forward {
            session_id,
            cxid,
            req,
            auth,
        };
        if let Some(o) = self.peer.forward(fwd) {
            let more = self.carry(o, now);
            out.extend(more);
        }
    }

    /// The leader preps a write of a client of server `from` against its newest tree and
    /// proposes it.
    #[allow(clippy::too_many_arguments)]
    fn lead(
        &mut self,
        session_id: i64,
        cxid: i32,
        req: &Request,
        auth: &[crate::proto::Id],
        from: i64,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let Some(zxid) = self.peer.next_zxid() else {
            return;
        };
        let newest = self.newest.as_ref().expect("leading");
        let known = match req {
            Request::CreateSession { .. } => true,
            _ => {
                !self.closing.contains(&session_id)
                    && (self.sessions.touch(session_id, now) || self.opening.contains(&session_id))
            }
        };
        // ZooKeeper checks the owner of every write but closeSession (which expiry queues
        // without being the owner); a session with no owner yet takes the writer's server.
        let moved = known
            && !matches!(req, Request::CloseSession)
            && match self.owners.get(&session_id) {
                Some(owner) => *owner != from,
                None => {
                    self.owners.insert(session_id, from);
                    false
                }
            };
        let op = if moved {
            TxnOp::Error(ErrorCode::SessionMoved)
        } else if known {
            let ctx = PrepContext {
                session_id,
                auth,
                zxid,
                time_ms: now + self.wall_offset_ms,
            };
            prep::prep(newest, req, &ctx, &self.cfg.prep)
        } else {
            TxnOp::Error(ErrorCode::SessionExpired)
        };
        match op {
            TxnOp::CloseSession => {
                self.closing.insert(session_id);
            }
            TxnOp::CreateSession { .. } => {
                self.opening.insert(session_id);
            }
            _ => {}
        }
        self.propose(session_id, cxid, op, now, out);
    }

    fn propose(&mut self, session_id: i64, cxid: i32, op: TxnOp, now: i64, out: &mut Vec<Output>) {
        let zxid = self.peer.next_zxid().expect("leading");
        let txn = Txn {
            zxid,
            time_ms: now + self.wall_offset_ms,
            session_id,
            cxid,
            op,
        };
        self.newest
            .as_mut()
            .expect("leading")
            .apply(&txn, &mut Vec::new());
        let o = self.peer.propose(txn, now);
        let more = self.carry(o, now);
        out.extend(more);
    }

    // ----- carrying out the peer's outputs -----

    /// Handles the peer's outputs that concern the data and passes the rest on, in order.
    fn carry(&mut self, outs: Vec<peer::Output>, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let mut outs: VecDeque<peer::Output> = outs.into();
        while let Some(o) = outs.pop_front() {
            match o {
                peer::Output::Apply(txns) => self.apply(txns, now, &mut out),
                peer::Output::Forwarded { from, fwd } => {
                    if self.newest.is_some() {
                        let (id, cxid) = (fwd.session_id, fwd.cxid);
                        self.lead(id, cxid, &fwd.req, &fwd.auth, from, now, &mut out);
                    }
                }
                peer::Output::Revalidate {
                    from,
                    conn,
                    session_id,
                    timeout_ms,
                } => {
                    let valid = self.newest.is_some() && self.leader_knows(session_id);
                    if valid {
                        self.sessions.set_timeout(session_id, timeout_ms, now);
                        self.sessions.touch(session_id, now);
                        self.owners.insert(session_id, from);
                        if from != self.my_id() {
                            // A connection of it here answers nothing more.
                            self.publish(vec![Entry::MovedAway { session_id }], &mut out);
                        }
                    }
                    let msg = Msg::Revalidated { session_id, valid };
                    out.push(Output::Io(peer::Output::Send {
                        to: from,
                        conn,
                        msg,
                    }));
                }
                peer::Output::Revalidated { session_id, valid } => {
                    if let Some((conn, timeout_ms)) = self.revalidating.remove(&session_id) {
                        let outcome = self.resumed(session_id, timeout_ms, valid, now);
                        self.answer_connect(conn, session_id, outcome, &mut out);
                    }
                }
                peer::Output::Touched(touches) => {
                    for (id, _) in touches {
                        self.sessions.touch(id, now);
                    }
                }
                peer::Output::SyncDone => {
                    let (origin, path) = self.syncs.pop_front().expect("a sync was asked");
                    let e = Entry::SyncDone {
                        origin,
                        path,
                        zxid: self.tree.last_zxid(),
                        version_before: None,
                    };
                    self.publish(vec![e], &mut out);
                }
                peer::Output::SendSnap { to, conn, zxid } => {
                    self.flush_into(&mut out);
                    assert_eq!(
                        self.tree.last_zxid(),
                        zxid,
                        "a snapshot of the committed tree"
                    );
                    let image = Image {
                        tree: self.tree.clone(),
                        sessions: self.sessions.snap_sessions(),
                        fuzzy_through: 0,
                    };
                    out.push(Output::Io(peer::Output::Send {
                        to,
                        conn,
                        msg: Msg::Snap { zxid, image },
                    }));
                }
                peer::Output::Install { zxid, mut image } => {
                    assert_eq!(image.tree.last_zxid(), zxid);
                    self.flush_into(&mut out);
                    if zxid == 0 {
                        // The empty tree a diff from zxid 0 starts from: this server's own
                        // configuration node stays.
                        if let Some(cfg) = self.tree.get(crate::tree::CONFIG) {
                            let (text, mtime) = (cfg.data.clone(), cfg.mtime);
                            image.tree.set_config(text.unwrap_or_default(), mtime);
                        }
                    }
                    self.tree = image.tree;
                    self.fuzzy_through = image.fuzzy_through;
                    self.load_sessions(&image.sessions, now);
                    out.push(Output::Install {
                        zxid,
                        tree: self.tree.clone(),
                        sessions: image.sessions,
                    });
                }
                peer::Output::Truncate(zxid) => {
                    self.flush_into(&mut out);
                    out.push(Output::Truncate(zxid));
                    self.stalled = Some(outs);
                    return out;
                }
                peer::Output::Role(role) => {
                    // What the fronts were to get in the old role goes first.
                    self.flush_into(&mut out);
                    self.role(role, now);
                    out.push(Output::Role(role));
                    if self.peer.serving() {
                        // The fronts move to the tree this server now serves.
                        self.publish(Vec::new(), &mut out);
                    }
                }
                io => out.push(Output::Io(io)),
            }
        }
        // What a snapshot of the tree would take, roughly (its paths and data, and a node's
        // fixed fields), for the peer's choice between a long DIFF and SNAP.
        let tree = &self.tree;
        let bytes = tree.approximate_data_size() + 64 * tree.node_count() as u64;
        self.peer.set_tree_bytes(bytes);
        out
    }

    fn role(&mut self, role: Role, now: i64) {
        if let Role::Leading {
            established: true, ..
        } = role
        {
            self.newest = Some(self.tree.clone());
            self.closing.clear();
            self.opening.clear();
            self.owners.clear();
            // Nobody told this leader who was alive: a fresh full timeout for everyone.
            let ids: Vec<i64> = self.sessions.iter().map(|s| s.id).collect();
            for id in ids {
                self.sessions.touch(id, now);
            }
            self.next_container_check_ms = now + self.cfg.container_check_ms;
        } else {
            self.newest = None;
            self.closing.clear();
            self.opening.clear();
            self.owners.clear();
        }
        if !self.peer.serving() {
            self.waiting.clear();
            self.connects.clear();
            self.revalidating.clear();
            self.syncs.clear();
        }
    }

    /// The snapshot asked for last is written (or failed: the log still has everything).
    pub fn snapshot_written(&mut self) {
        self.snap.busy = false;
    }

    fn snapshot(&mut self, token: Option<u64>) -> Output {
        assert!(!self.snap.busy, "one snapshot at a time");
        self.snap.busy = true;
        Output::WriteSnapshot {
            tree: self.tree.clone(),
            sessions: self.sessions.snap_sessions(),
            token,
        }
    }

    /// Applies committed txns to the committed tree and answers this server's clients; past
    /// the snapshot threshold, while serving, a snapshot follows.
    fn apply(&mut self, txns: Vec<Txn>, now: i64, out: &mut Vec<Output>) {
        let n = txns.len() as u64;
        let serving = self.peer.serving();
        // What was collected in the other state goes first, flushed at the tree as it is now.
        self.flush_if_serving_changed(out);
        let mut entries = Vec::with_capacity(txns.len() + 1);
        for txn in txns {
            let waiting = self.waiting.remove(&(txn.session_id, txn.cxid));
            let version_before = waiting
                .filter(|w| w.reads_waiting)
                .map(|_| self.tree.clone());
            let mut triggers = Vec::new();
            let fitted = (txn.zxid <= self.fuzzy_through)
                .then(|| crate::javafiles::fit(&mut self.tree, &txn))
                .flatten();
            let outcome = self
                .tree
                .apply(fitted.as_ref().unwrap_or(&txn), &mut triggers);
            if !serving {
                // A server leaving its role applies its log's uncommitted rest, and a syncing
                // one what the leader sends: no client may see those, not even as a watch.
                triggers.clear();
            }
            let mut connect = None;
            match &txn.op {
                TxnOp::CreateSession { timeout_ms } => {
                    self.sessions.ensure_next_above(txn.session_id);
                    self.sessions.add(txn.session_id, *timeout_ms, now);
                    self.opening.remove(&txn.session_id);
                    if let Some(conn) = self.connects.remove(&txn.session_id) {
                        connect = Some(Entry::ConnectReply {
                            conn,
                            outcome: ConnectOutcome::Accepted {
                                session_id: txn.session_id,
                                timeout_ms: *timeout_ms,
                                passwd: self.sessions.password(txn.session_id),
                            },
                        });
                    }
                }
                TxnOp::CloseSession => {
                    self.sessions.remove(txn.session_id);
                    self.closing.remove(&txn.session_id);
                    self.owners.remove(&txn.session_id);
                }
                _ => {}
            }
            entries.push(Entry::Commit(Committed {
                txn,
                outcome,
                triggers,
                origin: waiting.map(|w| w.origin),
                version_before,
            }));
            entries.extend(connect);
        }
        self.publish(entries, out);
        if serving {
            self.snap.txns_since += n;
            if self.snap.txns_since > self.snap.threshold {
                if !self.snap.busy {
                    self.flush_into(out);
                    out.push(self.snapshot(None));
                }
                self.snap.roll();
            }
        }
    }

    /// Entries for the fronts, handed over by the next [`Member::flush`] (or before the next
    /// role change, truncation, install, snapshot or SNAP, which hand over what came before).
    /// Entries collected while serving and entries made while not (which must not move the
    /// fronts to this tree) never share a flush point: a change between them hands over the
    /// first ones at once, at the tree as it was then (`apply` checks before it applies). The
    /// peer already puts a role change before the uncommitted rest of the log a member
    /// applies on leaving its role, and a role change hands over what came before it; this
    /// holds whatever the order.
    fn publish(&mut self, entries: Vec<Entry>, out: &mut Vec<Output>) {
        self.flush_if_serving_changed(out);
        match &mut self.unpublished {
            Some(pending) => pending.extend(entries),
            None => {
                self.unpublished = Some(entries);
                self.unpublished_serving = self.peer.serving();
            }
        }
    }

    /// Hands over what was collected when this server served and now does not, or the other
    /// way round.
    fn flush_if_serving_changed(&mut self, out: &mut Vec<Output>) {
        if self.unpublished.is_some() && self.unpublished_serving != self.peer.serving() {
            self.flush_into(out);
        }
    }

    /// Hands the fronts the entries made since the last flush, as one [`Output::Publish`] that
    /// ends with a flush point, or nothing if there are none. The runtime calls it once per
    /// round of inputs, the simulator at moments of its choosing; until then the fronts do not
    /// see them. A round's applies thus make one new tree version, not one each: every version
    /// the fronts hold costs the next apply a copy of the tree's path to what it changes.
    /// The flush point is at the committed tree while serving; while not, at the tree the
    /// fronts were last given (the one here may hold uncommitted txns, or be mid-sync).
    pub fn flush(&mut self) -> Option<Output> {
        let mut entries = self.unpublished.take()?;
        if self.unpublished_serving {
            self.visible = self.tree.clone();
        }
        entries.push(Entry::Flush(self.visible.clone()));
        Some(Output::Publish {
            entries,
            version: self.visible.clone(),
        })
    }

    fn flush_into(&mut self, out: &mut Vec<Output>) {
        out.extend(self.flush());
    }

    pub fn check_invariants(&self) {
        self.peer.check_invariants();
        assert_eq!(self.tree.last_zxid(), self.peer.applied(), "committed tree");
        if let Some(n) = &self.newest {
            assert!(n.last_zxid() >= self.tree.last_zxid(), "newest ahead");
        }
        self.sessions.check_invariants();
        for (owner, _) in self.tree.ephemeral_counts() {
            assert!(
                self.sessions.get(owner).is_some(),
                "closed session {owner:#x} owns ephemerals"
            );
        }
    }
}

#[cfg(test)]
mod tests;
