//! The pipeline: sessions, prep and apply for a standalone server, as a state machine.
//!
//! Inputs are method calls carrying `now_ms`; outputs are [`Committed`] entries in zxid order
//! that the runtime publishes, with the tree version after them, to every front core. The
//! pipeline never does IO: the runtime owns the clock, the sockets and (later) the log.
//!
//! Invariants: `tree.last_zxid() == last_zxid`; every live session is in the table and no closed
//! session owns an ephemeral.

use crate::prep::{self, PrepConfig, PrepContext};
use crate::proto::{ConnectRequest, ErrorCode, Id, Request};
use crate::session::{Passwords, SessionConfig, SessionTable};
use crate::tree::{DataTree, Outcome, Trigger};
use crate::txn::{NodeKind, Txn, TxnOp};
use crate::watch::ConnId;

/// Who asked for a write, so its front core can reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub conn: ConnId,
    pub xid: i32,
    pub opcode: i32,
}

/// A committed (applied) txn and what it caused.
#[derive(Debug, Clone)]
pub struct Committed {
    pub txn: Txn,
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
    pub origin: Option<Origin>,
    /// The tree just before this txn, set by the runtime only when the writing connection has
    /// reads waiting behind an earlier write since the last flush point: they are answered from it, so
    /// they see that write and not this one. Taking a version is O(1), but every later change
    /// then copies the paths it touches, so versions are taken only where a reader needs one.
    pub version_before: Option<DataTree>,
}

/// The answer to a connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Session created or resumed.
    Accepted {
        session_id: i64,
        timeout_ms: i32,
        passwd: [u8; 16],
    },
    /// Unknown or expired session, or wrong password: reply with zeros, then close.
    Invalid,
    /// The client has seen a zxid newer than ours: close without a reply.
    Refused { client_zxid: i64, our_zxid: i64 },
    /// An ensemble member without a leader serves nobody: close without a reply.
    NotServing,
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub prep: PrepConfig,
    pub session: SessionConfig,
    /// `znode.container.checkIntervalMs`.
    pub container_check_ms: i64,
    /// `znode.container.maxNeverUsedIntervalMs`: 0 keeps never-used containers forever.
    pub container_never_used_ms: i64,
}

pub struct Pipeline {
    cfg: PipelineConfig,
    tree: DataTree,
    sessions: SessionTable,
    last_zxid: i64,
    next_container_check_ms: i64,
    /// Wall time minus the `now_ms` the inputs carry (see [`Pipeline::set_wall_offset`]).
    wall_offset_ms: i64,
}

impl Pipeline {
    pub fn new(cfg: PipelineConfig, now_ms: i64, secret: u64) -> Pipeline {
        let sessions = SessionTable::new(cfg.session.clone(), now_ms, Passwords::Keyed(secret));
        let next_container_check_ms = now_ms + cfg.container_check_ms;
        Pipeline {
            cfg,
            tree: DataTree::new(),
            sessions,
            last_zxid: 0,
            next_container_check_ms,
            wall_offset_ms: 0,
        }
    }

    /// The inputs' `now_ms` is a clock that never jumps (session deadlines and timers run on
    /// it, as ZooKeeper's run on its elapsed-time clock); znode stamps (ctime, mtime, a txn's
    /// time) and the TTL and container checks against them are wall time, `now_ms` plus this
    /// offset, as in ZooKeeper. The runtime sets it each round; 0 makes the two one clock.
    pub fn set_wall_offset(&mut self, ms: i64) {
        self.wall_offset_ms = ms;
    }

    /// The newest tree version (O(1) to take).
    pub fn version(&self) -> DataTree {
        self.tree.clone()
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    fn next_txn(&mut self, session_id: i64, cxid: i32, now_ms: i64) -> Txn {
        Txn {
            zxid: self.last_zxid + 1,
            time_ms: now_ms + self.wall_offset_ms,
            session_id,
            cxid,
            op: TxnOp::Error(ErrorCode::Ok),
        }
    }

    fn commit(&mut self, txn: Txn, origin: Option<Origin>, now_ms: i64) -> Committed {
        let (outcome, triggers) = self.apply(&txn, now_ms);
        Committed {
            txn,
            outcome,
            triggers,
            origin,
            version_before: None,
        }
    }

    /// Applies a txn to the tree and the session table.
    fn apply(&mut self, txn: &Txn, now_ms: i64) -> (Outcome, Vec<Trigger>) {
        let mut triggers = Vec::new();
        let outcome = self.tree.apply(txn, &mut triggers);
        match &txn.op {
            TxnOp::CreateSession { timeout_ms } => {
                self.sessions.add(txn.session_id, *timeout_ms, now_ms)
            }
            TxnOp::CloseSession => {
                self.sessions.remove(txn.session_id);
            }
            _ => {}
        }
        self.last_zxid = txn.zxid;
        (outcome, triggers)
    }

    /// Starts from a loaded snapshot (before any replay). Its sessions get a fresh deadline
    /// (`now_ms` + their timeout), as replayed ones do.
    pub fn restore(&mut self, snapshot: crate::snap::Loaded, now_ms: i64) {
        assert_eq!(self.last_zxid, 0, "restore into a fresh pipeline only");
        assert_eq!(snapshot.tree.last_zxid(), snapshot.last_zxid);
        self.tree = snapshot.tree;
        self.last_zxid = snapshot.last_zxid;
        for s in snapshot.sessions {
            self.sessions.ensure_next_above(s.id);
            self.sessions.add(s.id, s.timeout_ms, now_ms);
        }
    }

    /// Re-applies a txn read back from the log at startup. Sessions it creates get a fresh
    /// deadline (`now_ms` + their timeout), so they survive a restart within their timeout.
    pub fn replay(&mut self, txn: Txn, now_ms: i64) {
        assert!(
            txn.zxid > self.last_zxid,
            "replay out of order: {:#x} after {:#x}",
            txn.zxid,
            self.last_zxid
        );
        if let TxnOp::CreateSession { .. } = txn.op {
            self.sessions.ensure_next_above(txn.session_id);
        }
        // No version is taken per txn: nothing reads them during a replay, and holding none
        // lets the tree be changed in place instead of copied path by path.
        self.apply(&txn, now_ms);
    }

    /// [`Pipeline::replay`] over a tree that may already reflect the txn, in part or whole (one
    /// from a fuzzy snapshot): only what the tree does not reflect yet is applied, as ZooKeeper
    /// replays its log (`javafiles::fit`). Over an exact tree every txn applies as it is.
    pub fn replay_fitting(&mut self, txn: Txn, now_ms: i64) {
        let txn = crate::javafiles::fit(&mut self.tree, &txn).unwrap_or(txn);
        self.replay(txn, now_ms);
    }

    /// A connect request: creates a session, resumes one, or refuses.
    pub fn connect(
        &mut self,
        req: &ConnectRequest,
        now_ms: i64,
    ) -> (ConnectOutcome, Option<Committed>) {
        if req.last_zxid_seen > self.last_zxid {
            return (
                ConnectOutcome::Refused {
                    client_zxid: req.last_zxid_seen,
                    our_zxid: self.last_zxid,
                },
                None,
            );
        }
        let timeout_ms = self.sessions.negotiate(req.timeout_ms);
        if req.session_id != 0 {
            let known = self.sessions.get(req.session_id).is_some();
            if !known || req.passwd[..] != self.sessions.password(req.session_id)[..] {
                return (ConnectOutcome::Invalid, None);
            }
            self.sessions
                .set_timeout(req.session_id, timeout_ms, now_ms);
            let passwd = self.sessions.password(req.session_id);
            return (
                ConnectOutcome::Accepted {
                    session_id: req.session_id,
                    timeout_ms,
                    passwd,
                },
                None,
            );
        }
        let session_id = self.sessions.next_id();
        let mut txn = self.next_txn(session_id, 0, now_ms);
        txn.op = TxnOp::CreateSession { timeout_ms };
        let committed = self.commit(txn, None, now_ms);
        let passwd = self.sessions.password(session_id);
        (
            ConnectOutcome::Accepted {
                session_id,
                timeout_ms,
                passwd,
            },
            Some(committed),
        )
    }

    /// A write (or closeSession) from a connected session.
    pub fn write(
        &mut self,
        origin: Origin,
        session_id: i64,
        req: &Request,
        auth: &[Id],
        now_ms: i64,
    ) -> Committed {
        debug_assert!(req.is_write());
        let mut txn = self.next_txn(session_id, origin.xid, now_ms);
        txn.op = if self.sessions.touch(session_id, now_ms) {
            let ctx = PrepContext {
                session_id,
                auth,
                zxid: txn.zxid,
                time_ms: txn.time_ms,
            };
            let (op, applied) = prep::prep_applying(&self.tree, req, &ctx, &self.cfg.prep);
            if let Some(applied) = applied {
                txn.op = op;
                return self.commit_applied(txn, applied, origin);
            }
            op
        } else {
            TxnOp::Error(ErrorCode::SessionExpired)
        };
        self.commit(txn, Some(origin), now_ms)
    }

    /// Commits a multi whose ops prep already applied to a scratch copy: that copy becomes the
    /// tree, so a large multi is applied once, not twice. Debug builds apply it again the usual
    /// way and check that both agree.
    fn commit_applied(
        &mut self,
        txn: Txn,
        mut applied: prep::Applied,
        origin: Origin,
    ) -> Committed {
        assert!(matches!(txn.op, TxnOp::Multi(_)));
        applied.tree.applied_through(txn.zxid);
        let outcome = Outcome::Multi(applied.outcomes);
        if cfg!(debug_assertions) {
            let mut again = self.tree.clone();
            let mut triggers = Vec::new();
            assert_eq!(again.apply(&txn, &mut triggers), outcome);
            assert_eq!(triggers, applied.triggers);
            assert_eq!(again.node_count(), applied.tree.node_count());
        }
        self.tree = applied.tree;
        self.last_zxid = txn.zxid;
        Committed {
            txn,
            outcome,
            triggers: applied.triggers,
            origin: Some(origin),
            version_before: None,
        }
    }

    /// Sessions that showed activity on a front core since its last report.
    pub fn touch(&mut self, sessions: &[i64], now_ms: i64) {
        for id in sessions {
            self.sessions.touch(*id, now_ms);
        }
    }

    /// Time passes: expire sessions, then (every check interval) delete empty containers and
    /// expired TTL nodes. Returns the txns this committed.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Committed> {
        let mut out = Vec::new();
        for id in self.sessions.expired(now_ms) {
            let mut txn = self.next_txn(id, 0, now_ms);
            txn.op = TxnOp::CloseSession;
            out.push(self.commit(txn, None, now_ms));
        }
        if now_ms >= self.next_container_check_ms {
            self.next_container_check_ms = now_ms + self.cfg.container_check_ms;
            let wall = now_ms + self.wall_offset_ms;
            for path in collectable(&self.tree, &self.cfg, wall) {
                if let Some(op) = prep::prep_delete_container(&self.tree, &path) {
                    let mut txn = self.next_txn(0, 0, now_ms);
                    txn.op = op;
                    out.push(self.commit(txn, None, now_ms));
                }
            }
        }
        out
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.tree.last_zxid(), self.last_zxid);
        self.tree.check_invariants();
        self.sessions.check_invariants();
        for (owner, _) in self.tree.ephemeral_counts() {
            assert!(
                self.sessions.get(owner).is_some(),
                "closed session {owner:#x} owns ephemerals"
            );
        }
    }
}

/// Containers that had children and have none left (or were never used, past
/// `container_never_used_ms`); TTL nodes past their TTL with no children. ZooKeeper's
/// `ContainerManager` collects them every check interval.
pub fn collectable(tree: &DataTree, cfg: &PipelineConfig, now_ms: i64) -> Vec<String> {
    let mut paths = Vec::new();
    for p in tree.containers() {
        let n = tree.get(p).expect("indexed container exists");
        let never_used_expired =
            cfg.container_never_used_ms > 0 && now_ms - n.mtime > cfg.container_never_used_ms;
        if n.children.is_empty() && (n.cversion > 0 || never_used_expired) {
            paths.push(p.to_string());
        }
    }
    if cfg.prep.extended_types {
        for p in tree.ttl_nodes() {
            let n = tree.get(p).expect("indexed ttl node exists");
            if let NodeKind::Ttl(ttl) = NodeKind::of_owner(n.ephemeral_owner, true) {
                if n.children.is_empty() && now_ms - n.mtime > ttl {
                    paths.push(p.to_string());
                }
            }
        }
    }
    paths
}

/// A small configuration for the engine's tests: 100 ms ticks, timeouts of 200 ms to 2 s, TTL
/// nodes allowed, containers checked every 100 ms.
#[cfg(test)]
pub(crate) fn test_config() -> PipelineConfig {
    PipelineConfig {
        prep: PrepConfig {
            extended_types: true,
        },
        session: SessionConfig {
            tick_ms: 100,
            min_timeout_ms: 200,
            max_timeout_ms: 2000,
            server_id: 1,
        },
        container_check_ms: 100,
        container_never_used_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{opcode as op, Acl, CreateRequest};
    use bytes::Bytes;

    fn pipeline() -> Pipeline {
        Pipeline::new(test_config(), 10_000, 99)
    }

    fn connect(p: &mut Pipeline, session_id: i64, passwd: [u8; 16], now: i64) -> ConnectOutcome {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 200,
            session_id,
            passwd: Bytes::copy_from_slice(&passwd),
            read_only: None,
        };
        p.connect(&req, now).0
    }

    fn create(path: &str, flags: i32, opcode: i32) -> Request {
        Request::Create(CreateRequest {
            opcode,
            path: path.into(),
            data: Some(Bytes::new()),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        })
    }

    fn origin(xid: i32) -> Origin {
        Origin {
            conn: 1,
            xid,
            opcode: op::CREATE,
        }
    }

    #[test]
    fn connect_creates_resumes_and_refuses() {
        let mut p = pipeline();
        let ConnectOutcome::Accepted {
            session_id,
            timeout_ms,
            passwd,
        } = connect(&mut p, 0, [0; 16], 10_000)
        else {
            panic!()
        };
        assert_eq!(timeout_ms, 200);
        assert_eq!(p.last_zxid(), 1, "createSession takes a zxid");
        assert!(matches!(
            connect(&mut p, session_id, passwd, 10_050),
            ConnectOutcome::Accepted { .. }
        ));
        assert_eq!(
            connect(&mut p, session_id, [9; 16], 10_050),
            ConnectOutcome::Invalid
        );
        assert_eq!(
            connect(&mut p, 12345, [0; 16], 10_050),
            ConnectOutcome::Invalid
        );
        let ahead = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 99,
            timeout_ms: 200,
            session_id: 0,
            passwd: Bytes::new(),
            read_only: None,
        };
        assert!(matches!(
            p.connect(&ahead, 10_050).0,
            ConnectOutcome::Refused {
                client_zxid: 99,
                our_zxid: 1
            }
        ));
        p.check_invariants();
    }

    #[test]
    fn expiry_closes_the_session_and_deletes_its_ephemerals() {
        let mut p = pipeline();
        let ConnectOutcome::Accepted { session_id, .. } = connect(&mut p, 0, [0; 16], 10_000)
        else {
            panic!()
        };
        let c = p.write(
            origin(1),
            session_id,
            &create("/e", 1, op::CREATE),
            &[],
            10_010,
        );
        assert!(matches!(c.outcome, Outcome::Created { .. }));
        assert!(
            p.tick(10_250).is_empty(),
            "not yet: deadline rounds up to 10_300"
        );
        let closed = p.tick(10_300);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].txn.op, TxnOp::CloseSession);
        let deleted: Vec<_> = closed[0]
            .triggers
            .iter()
            .map(|t| (t.kind, t.path.to_string()))
            .collect();
        assert_eq!(
            deleted[0],
            (crate::tree::TriggerKind::Deleted, "/e".to_string())
        );
        assert!(p.version().get("/e").is_none());
        let late = p.write(
            origin(2),
            session_id,
            &create("/f", 0, op::CREATE),
            &[],
            10_400,
        );
        assert_eq!(late.outcome, Outcome::Error(ErrorCode::SessionExpired));
        p.check_invariants();
    }

    #[test]
    fn containers_are_reaped_only_after_having_had_children() {
        let mut p = pipeline();
        let ConnectOutcome::Accepted { session_id, .. } = connect(&mut p, 0, [0; 16], 10_000)
        else {
            panic!()
        };
        p.write(
            origin(1),
            session_id,
            &create("/c", 4, op::CREATE_CONTAINER),
            &[],
            10_000,
        );
        p.touch(&[session_id], 10_150);
        p.tick(10_150);
        assert!(
            p.version().get("/c").is_some(),
            "a never-used container stays"
        );
        p.write(
            origin(2),
            session_id,
            &create("/c/x", 0, op::CREATE),
            &[],
            10_160,
        );
        p.write(
            origin(3),
            session_id,
            &Request::Delete {
                path: "/c/x".into(),
                version: -1,
            },
            &[],
            10_170,
        );
        p.touch(&[session_id], 10_260);
        let reaped = p.tick(10_260);
        assert!(
            reaped
                .iter()
                .any(|c| c.txn.op == TxnOp::Delete { path: "/c".into() }),
            "{reaped:?}"
        );
        assert!(p.version().get("/c").is_none());
        p.check_invariants();
    }

    #[test]
    fn sessions_run_on_now_and_stamps_on_wall_time() {
        let mut p = pipeline();
        let ConnectOutcome::Accepted { session_id, .. } = connect(&mut p, 0, [0; 16], 10_000)
        else {
            panic!()
        };
        // The wall clock steps two hours ahead; `now` goes on as before.
        let step = 2 * 3600 * 1000;
        p.set_wall_offset(step);
        let c = p.write(
            origin(1),
            session_id,
            &create("/n", 0, op::CREATE),
            &[],
            10_050,
        );
        assert_eq!(c.txn.time_ms, 10_050 + step);
        let n = p.version().get("/n").expect("created").clone();
        assert_eq!((n.ctime, n.mtime), (10_050 + step, 10_050 + step));
        assert!(
            p.tick(10_150).is_empty(),
            "a 200 ms session touched 100 ms ago is alive"
        );
        // A TTL is wall time, as in ZooKeeper: a node whose mtime is before the step is older
        // than its TTL at once.
        p.set_wall_offset(0);
        let mut ttl = create("/t", 0, op::CREATE_TTL);
        if let Request::Create(c) = &mut ttl {
            c.flags = 5; // persistent with TTL
            c.ttl = 1_000;
        }
        p.write(origin(2), session_id, &ttl, &[], 10_160);
        p.touch(&[session_id], 10_260);
        p.set_wall_offset(step);
        let reaped = p.tick(10_260);
        assert!(
            reaped
                .iter()
                .any(|c| c.txn.op == TxnOp::Delete { path: "/t".into() }),
            "{reaped:?}"
        );
        // The session expires on `now` alone, step or no step.
        p.set_wall_offset(-step);
        assert!(p.tick(10_300).is_empty());
        let expired = p.tick(10_600);
        assert!(
            expired.iter().any(|c| c.txn.op == TxnOp::CloseSession),
            "{expired:?}"
        );
        p.check_invariants();
    }

    #[test]
    fn a_snapshot_plus_the_txns_after_it_rebuilds_the_same_state() {
        use crate::snap;
        let mut p = pipeline();
        let ConnectOutcome::Accepted { session_id, .. } = connect(&mut p, 0, [0; 16], 10_000)
        else {
            panic!()
        };
        let reqs = [
            create("/a", 0, op::CREATE),
            create("/a/e", 1, op::CREATE),
            create("/a/s-", 2, op::CREATE2),
            create("/a/s-", 2, op::CREATE2),
            create("/b", 0, op::CREATE),
        ];
        for (i, req) in reqs[..3].iter().enumerate() {
            p.write(origin(i as i32), session_id, req, &[], 10_000 + i as i64);
        }
        let sessions = p.sessions().snap_sessions();
        let file = bytes::Bytes::from(snap::encode_to_vec(&p.version(), &sessions));
        let mut after = Vec::new();
        for (i, req) in reqs[3..].iter().enumerate() {
            after.push(
                p.write(origin(i as i32), session_id, req, &[], 10_010 + i as i64)
                    .txn,
            );
        }
        let mut q = pipeline();
        q.restore(snap::load(&file).unwrap(), 20_000);
        for t in after {
            q.replay(t, 20_000);
        }
        q.check_invariants();
        assert_eq!(q.last_zxid(), p.last_zxid());
        for (path, node) in p.version().nodes() {
            let other = q.version().get(path).map(|n| n.stat());
            assert_eq!(other, Some(node.stat()), "{path}");
        }
        assert_eq!(q.version().node_count(), p.version().node_count());
        assert_eq!(
            q.version().ephemerals_of(session_id),
            vec!["/a/e".to_string()]
        );
        assert!(q.sessions().get(session_id).is_some());
        let ConnectOutcome::Accepted {
            session_id: fresh, ..
        } = connect(&mut q, 0, [0; 16], 20_000)
        else {
            panic!()
        };
        assert!(
            fresh > session_id,
            "new session ids stay above restored ones"
        );
    }

    #[test]
    fn replaying_the_committed_txns_rebuilds_the_same_state() {
        let mut p = pipeline();
        let ConnectOutcome::Accepted { session_id, .. } = connect(&mut p, 0, [0; 16], 10_000)
        else {
            panic!()
        };
        let mut txns = Vec::new();
        for (i, req) in [
            create("/r", 0, op::CREATE),
            create("/r/e", 1, op::CREATE),
            create("/r/s-", 2, op::CREATE2),
            create("/r", 0, op::CREATE),
        ]
        .iter()
        .enumerate()
        {
            txns.push(
                p.write(origin(i as i32), session_id, req, &[], 10_000 + i as i64)
                    .txn,
            );
        }
        let mut q = pipeline();
        let first = Txn {
            zxid: 1,
            time_ms: 10_000,
            session_id,
            cxid: 0,
            op: TxnOp::CreateSession { timeout_ms: 200 },
        };
        q.replay(first, 20_000);
        for t in txns {
            q.replay(t, 20_000);
        }
        q.check_invariants();
        assert_eq!(q.last_zxid(), p.last_zxid());
        assert_eq!(
            q.version().ephemerals_of(session_id),
            vec!["/r/e".to_string()]
        );
        for path in ["/r", "/r/e", "/r/s-0000000001"] {
            assert_eq!(
                q.version().get(path).map(|n| n.stat()),
                p.version().get(path).map(|n| n.stat()),
                "{path}"
            );
        }
        assert!(
            q.sessions().get(session_id).is_some(),
            "the session survives the restart"
        );
        let ConnectOutcome::Accepted {
            session_id: fresh, ..
        } = connect(&mut q, 0, [0; 16], 20_000)
        else {
            panic!()
        };
        assert!(
            fresh > session_id,
            "new session ids stay above replayed ones"
        );
    }

    #[test]
    fn published_versions_are_immutable() {
        let mut p = pipeline();
        let ConnectOutcome::Accepted { session_id, .. } = connect(&mut p, 0, [0; 16], 10_000)
        else {
            panic!()
        };
        let before = p.version();
        p.write(
            origin(1),
            session_id,
            &create("/v", 0, op::CREATE),
            &[],
            10_000,
        );
        assert!(
            before.get("/v").is_none(),
            "an old version does not see later writes"
        );
        assert!(p.version().get("/v").is_some());
    }
}
