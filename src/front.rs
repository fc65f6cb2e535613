//! A front core: owns client connections, answers reads from its own tree version, keeps its
//! own watch table, and applies the committed stream in order (DESIGN.md sections 4 and 5).
//!
//! Ordering rules, as ZooKeeper's (the queue and flush-point rules are the engine's state machine
//! `ringkeeper_engine::order`, tested there; this core carries them out):
//! - A connection's requests are answered in order: a read that arrives while the same
//!   connection has a write (or sync) in flight waits in that connection's `pending` queue and is
//!   answered after the write's reply, from a version that includes the write.
//! - For each committed txn this core first fires its watches, then replies to its own write.
//!   Reads queued behind that write are answered at the next flush point of the stream (see
//!   `apply_batches`), after the watches of everything in that version have fired. So a queued
//!   read sees its session's earlier writes and none of its later ones, and a watch event always
//!   precedes any later response on its connection.
//! - A read whose answer takes a walk (getAllChildrenNumber below the root) reserves its place in
//!   the connection's output and is counted a slice at a time by a task of its own, so no client
//!   can stall the core; everything the connection is sent meanwhile waits behind that place.
//!
//! Socket IO and the per-connection limits live in `conn.rs`; this core adds the server-wide
//! budget for unsent bytes (`enforce_budget`).

use crate::clock::wall_ms;
use crate::conn::{self, OutLimits, Outbox, Ticket, READ_CHUNK};
use crate::fourlw;
use crate::shared::{Batch, ConnInfo, Control, Entry, Input, PipeMsg, Shared};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use ringkeeper_engine::order;
use ringkeeper_engine::pipeline::{ConnectOutcome, Origin};
use ringkeeper_engine::proto::{
    encode_notification, encode_reply, opcode as op, perms, ConnectRequest, ConnectResponse,
    ErrorCode, Id, Reader, ReplyHeader, Request, Response,
};
use ringkeeper_engine::read::{self, ReadContext};
use ringkeeper_engine::reply::write_reply;
use ringkeeper_engine::tree::{acl, DataTree, DescendantWalk};
use ringkeeper_engine::txn::TxnOp;
use ringkeeper_engine::watch::{ConnId, Fired, WatchTable};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request waiting behind its connection's in-flight write (the writes themselves are kept
/// in the queue as the time they arrived).
enum Queued {
    /// A read-like request to answer once every write before it has been answered.
    Read {
        xid: i32,
        opcode: i32,
        req: Request,
        started: Instant,
    },
    /// A ready reply (e.g. MARSHALLINGERROR for a body that did not decode) keeping its place.
    Canned {
        xid: i32,
        opcode: i32,
        frame: Vec<u8>,
        started: Instant,
    },
}

#[derive(Default, Clone, Copy)]
struct ConnStats {
    received: u64,
    sent: u64,
    last_op: &'static str,
    last_cxid: i32,
    last_zxid: i64,
    last_response_ms: i64,
    last_latency_ms: u64,
    min_latency_ms: u64,
    total_latency_ms: u64,
    count: u64,
    max_latency_ms: u64,
}

struct Conn {
    peer: SocketAddr,
    session_id: i64,
    timeout_ms: i32,
    established_ms: i64,
    auth: Vec<Id>,
    outbox: Rc<Outbox>,
    /// What is in flight, in order (the engine's ordering rules, `ringkeeper_engine::order`).
    pending: order::Queue<Instant, Queued>,
    stats: ConnStats,
    /// The leader made another server this session's owner: the next request closes this
    /// connection unanswered.
    moved: bool,
}

/// What an abort for the server-wide budget says.
const OVER_BUDGET: &str = "the server's unsent output passed ringkeeper.serverOutputBudgetBytes and this connection held the most of it";
/// Most sessions' identities (addauth) one connection may hold: every write carries them, and
/// ACL checks and `auth` ACL expansion take time in proportion to them.
const AUTH_IDS_MAX: usize = 32;
/// Longest a front core runs before it polls its sockets again (its executors' preemption
/// timer): a connection yields after each request once this has passed, so a client pipelining
/// costly requests cannot keep the others waiting longer than about one request.
pub const SLICE: Duration = Duration::from_millis(5);
/// When a front says it is still waiting for its first tree version.
const FIRST_VERSION_WARN: Duration = Duration::from_secs(5);
/// Bytes read at a time before the handshake is done (a connect request is 45 bytes).
const HANDSHAKE_CHUNK: usize = 1024;
/// Nodes a getAllChildrenNumber walk counts between chances for other connections to run.
const WALK_SLICE_NODES: usize = 2048;

impl Conn {
    /// Queues a frame. A client that leaves too much unread loses the connection, and what was
    /// queued for it.
    fn send(&mut self, frame: Vec<u8>) {
        if self.outbox.push(frame).is_ok() {
            self.stats.sent += 1;
        }
    }

    /// Flushes what is queued, then closes the socket.
    fn close(&mut self) {
        self.outbox.close();
    }

    fn closing(&self) -> bool {
        !self.outbox.is_open()
    }

    fn record(&mut self, opcode: i32, xid: i32, zxid: i64, started: Instant, shared: &Shared) {
        let ms = started.elapsed().as_millis() as u64;
        let s = &mut self.stats;
        s.last_op = op::short_name(opcode);
        s.last_cxid = xid;
        s.last_zxid = zxid;
        s.last_response_ms = wall_ms();
        s.last_latency_ms = ms;
        s.min_latency_ms = if s.count == 0 {
            ms
        } else {
            s.min_latency_ms.min(ms)
        };
        s.max_latency_ms = s.max_latency_ms.max(ms);
        s.total_latency_ms += ms;
        s.count += 1;
        shared.stats.record_latency(ms);
        crate::hist::record_request(opcode, started.elapsed().as_micros() as u64);
        shared.stats.packets_sent.fetch_add(1, Relaxed);
    }

    fn info(&self) -> ConnInfo {
        let s = &self.stats;
        ConnInfo {
            peer: self.peer.to_string(),
            queued: self.pending.len(),
            received: s.received,
            sent: s.sent,
            session_id: self.session_id,
            last_op: if s.last_op.is_empty() {
                "NA"
            } else {
                s.last_op
            },
            established_ms: self.established_ms,
            timeout_ms: self.timeout_ms,
            last_cxid: s.last_cxid,
            last_zxid: if s.count == 0 { -1 } else { s.last_zxid },
            last_response_ms: s.last_response_ms,
            last_latency_ms: s.last_latency_ms,
            min_latency_ms: s.min_latency_ms,
            avg_latency_ms: s.total_latency_ms.checked_div(s.count).unwrap_or(0),
            max_latency_ms: s.max_latency_ms,
        }
    }
}

struct FrontState {
    id: usize,
    tree: DataTree,
    watches: WatchTable,
    conns: HashMap<ConnId, Conn>,
    by_session: HashMap<i64, ConnId>,
    touched: HashSet<i64>,
    next_conn: u64,
    fired: Vec<Fired>,
    /// Connections whose reads wait for the next flush point of the committed stream.
    flushes: order::Flushes<ConnId>,
    /// Unsent bytes over all this core's connections, and this core's share of the server-wide
    /// budget for them.
    unsent: Rc<Cell<usize>>,
    budget_bytes: usize,
    /// getAllChildrenNumber walks to run (see `run_walks`).
    walks: flume::Sender<Walk>,
    /// Connections whose task has sent a connect request and not registered the connection.
    connects: HashMap<ConnId, Connect>,
}

/// A connect between its request and its connection's registration.
enum Connect {
    /// The task waits for the answer.
    Waiting(flume::Sender<ConnectOutcome>),
    /// Accepted, and not registered yet. Later batches can be applied in between; a close or a
    /// resumption elsewhere of the session then marks it `closed`.
    Answered { session_id: i64, closed: bool },
}

impl Connect {
    /// Marks an answered connect of `session_id` closed.
    fn close_session(&mut self, session: i64) {
        if let Connect::Answered { session_id, closed } = self {
            if *session_id == session {
                *closed = true;
            }
        }
    }
}

/// A getAllChildrenNumber being counted in slices, over the tree version the read saw.
struct Walk {
    conn: ConnId,
    /// The connection's output: the reply is owed even if the connection closes meanwhile (its
    /// close waits for it), not if it is aborted.
    outbox: Rc<Outbox>,
    ticket: Ticket,
    xid: i32,
    opcode: i32,
    started: Instant,
    version: DataTree,
    walk: DescendantWalk,
}

/// Connection ids carry their front core in the top 16 bits.
fn front_of(conn: ConnId) -> usize {
    (conn >> 48) as usize
}

pub async fn run(
    id: usize,
    shared: Arc<Shared>,
    batches: flume::Receiver<Batch>,
    controls: flume::Receiver<Control>,
    listener: std::net::TcpListener,
) {
    let Some(first) = first_version(id, &batches).await else {
        return;
    };
    let (walks, walks_rx) = flume::unbounded();
    let state = Rc::new(RefCell::new(FrontState {
        id,
        tree: first.version,
        watches: WatchTable::new(),
        conns: HashMap::new(),
        by_session: HashMap::new(),
        touched: HashSet::new(),
        next_conn: 1,
        fired: Vec::new(),
        flushes: order::Flushes::default(),
        unsent: Rc::new(Cell::new(0)),
        budget_bytes: conn::front_budget_bytes(&shared.cfg, shared.controls.len()),
        walks,
        connects: HashMap::new(),
    }));
    glommio::spawn_local(apply_batches(state.clone(), shared.clone(), batches)).detach();
    glommio::spawn_local(run_walks(state.clone(), shared.clone(), walks_rx)).detach();
    glommio::spawn_local(answer_controls(state.clone(), controls)).detach();
    glommio::spawn_local(flush_touches(state.clone(), shared.clone())).detach();
    let addr = shared.cfg.client_addr();
    let listener = crate::net::into_glommio(listener);
    tracing::info!(front = id, %addr, "serving clients");
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve_conn(state.clone(), shared.clone(), stream)).detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The first batch the owner of the data publishes (the tree recovery rebuilt), which this
/// front serves nobody before; None if the owner is gone. Past `FIRST_VERSION_WARN` it says it
/// is still waiting (once, in CI, a front slept through this batch's wake-up; see
/// `server::keep_awake`).
async fn first_version(id: usize, batches: &flume::Receiver<Batch>) -> Option<Batch> {
    let next = async { Some(batches.recv_async().await) };
    let late = async {
        glommio::timer::sleep(FIRST_VERSION_WARN).await;
        None
    };
    if let Some(got) = futures_lite::future::or(next, late).await {
        return got.ok();
    }
    tracing::warn!(
        front = id,
        queued = batches.len(),
        "no tree version from the core that owns the data yet; clients wait"
    );
    batches.recv_async().await.ok()
}

/// Applies the committed stream to this core: watches, replies, version, waiting reads.
///
/// Reads a connection queued behind a write wait for the next flush point: an `Entry::Flush`
/// (one per log write), the end of the batch, or a later write or sync of the same connection
/// before the next `Flush`, which then carries the version just before it. They are answered
/// from that version, after the watch triggers of everything in it have fired, and before any
/// later reply on their connection. So a read sees its session's earlier writes and none of its
/// later ones, and a watch it sets fires only for changes it did not see.
async fn apply_batches(
    state: Rc<RefCell<FrontState>>,
    shared: Arc<Shared>,
    batches: flume::Receiver<Batch>,
) {
    while let Ok(batch) = batches.recv_async().await {
        let mut guard = state.borrow_mut();
        let st = &mut *guard;
        for entry in batch.entries.iter() {
            match entry {
                Entry::Commit(c) => {
                    if let Some(v) = &c.version_before {
                        flush(st, &shared, v);
                    }
                    st.fired.clear();
                    for t in &c.triggers {
                        st.watches.trigger(t, &mut st.fired);
                    }
                    for f in st.fired.drain(..) {
                        if let Some(conn) = st.conns.get_mut(&f.conn) {
                            if acl::check(&f.acl, perms::READ, &conn.auth).is_ok() {
                                let mut frame = Vec::with_capacity(32 + f.path.len());
                                encode_notification(&mut frame, c.txn.zxid, f.event_type, &f.path);
                                conn.send(frame);
                            }
                        }
                    }
                    let moved = matches!(c.txn.op, TxnOp::Error(ErrorCode::SessionMoved));
                    if let Some(origin) = c.origin.filter(|o| front_of(o.conn) == st.id && moved) {
                        // The session moved to another server (an ensemble's leader said so):
                        // ZooKeeper closes this connection without an answer (ZOOKEEPER-710), so
                        // the client reconnects and learns where its session is. The write leaves
                        // the queue all the same: replies to what the connection sent after it
                        // (a sync, say) still come, and find their own write at the head.
                        if let Some(conn) = st.conns.get_mut(&origin.conn) {
                            conn.pending.write_answered(origin.xid);
                            shared.stats.outstanding.fetch_sub(1, Relaxed);
                            conn.close();
                            defer_reads(st, origin.conn);
                        }
                    } else if let Some(origin) = c.origin.filter(|o| front_of(o.conn) == st.id) {
                        let (err, body) = write_reply(origin.opcode, &c.outcome);
                        if reply_to_write(st, &shared, origin, c.txn.zxid, err, &body) {
                            defer_reads(st, origin.conn);
                        }
                    }
                    if matches!(c.txn.op, TxnOp::CloseSession) {
                        // An expired (or closed) session loses its connection, also one whose
                        // task has its connect answer but has not registered it yet.
                        if let Some(conn_id) = st.by_session.remove(&c.txn.session_id) {
                            if let Some(conn) = st.conns.get_mut(&conn_id) {
                                conn.close();
                            }
                        }
                        for pending in st.connects.values_mut() {
                            pending.close_session(c.txn.session_id);
                        }
                    }
                }
                Entry::SyncDone {
                    origin,
                    path,
                    zxid,
                    version_before,
                } => {
                    if let Some(v) = version_before {
                        flush(st, &shared, v);
                    }
                    if front_of(origin.conn) == st.id
                        && reply_to_write(
                            st,
                            &shared,
                            *origin,
                            *zxid,
                            ErrorCode::Ok,
                            &Response::Sync { path: path.clone() },
                        )
                    {
                        defer_reads(st, origin.conn);
                    }
                }
                Entry::ConnectReply { conn, outcome } => {
                    // The connection task runs after this batch, flush included, is applied.
                    if let Some(Connect::Waiting(reply)) = st.connects.remove(conn) {
                        if let ConnectOutcome::Accepted { session_id, .. } = outcome {
                            let answered = Connect::Answered {
                                session_id: *session_id,
                                closed: false,
                            };
                            st.connects.insert(*conn, answered);
                        }
                        let _ = reply.try_send(outcome.clone());
                    }
                }
                Entry::Resumed { session_id, conn } => {
                    // ZooKeeper closes a session's other connections when it is resumed.
                    for (id, other) in st.conns.iter_mut() {
                        if other.session_id == *session_id && id != conn {
                            other.close();
                        }
                    }
                    for (id, pending) in st.connects.iter_mut() {
                        if id != conn {
                            pending.close_session(*session_id);
                        }
                    }
                }
                Entry::Flush(v) => flush(st, &shared, v),
                Entry::MovedAway { session_id } => {
                    if let Some(conn) = st
                        .by_session
                        .get(session_id)
                        .and_then(|id| st.conns.get_mut(id))
                    {
                        conn.moved = true;
                    }
                }
            }
        }
        flush(st, &shared, &batch.version);
        enforce_budget(st);
    }
}

/// Closes connections, biggest queue first, while this core holds more unsent bytes than its
/// share of `ringkeeper.serverOutputBudgetBytes`.
fn enforce_budget(st: &mut FrontState) {
    while st.unsent.get() > st.budget_bytes {
        let queues = st.conns.iter().map(|(id, c)| (*id, c.outbox.unsent()));
        let Some(victim) = conn::budget_victim(queues) else {
            return;
        };
        st.conns[&victim].outbox.abort(Some(OVER_BUDGET));
    }
}

/// Runs each getAllChildrenNumber walk in a task of its own.
async fn run_walks(
    state: Rc<RefCell<FrontState>>,
    shared: Arc<Shared>,
    walks: flume::Receiver<Walk>,
) {
    while let Ok(w) = walks.recv_async().await {
        glommio::spawn_local(walk(state.clone(), shared.clone(), w)).detach();
    }
}

/// Counts a slice of nodes at a time, letting the core serve its other work between slices,
/// then puts the reply in the place the read reserved.
async fn walk(state: Rc<RefCell<FrontState>>, shared: Arc<Shared>, mut w: Walk) {
    let count = loop {
        if let Some(n) = w.walk.step(&w.version, WALK_SLICE_NODES) {
            break n;
        }
        // A timer, not a yield: it lets the executor poll its sockets before the next slice.
        glommio::timer::sleep(Duration::from_micros(1)).await;
        if w.outbox.is_aborted() {
            return;
        }
    };
    let zxid = w.version.last_zxid();
    let mut frame = Vec::with_capacity(24);
    encode_reply(
        &mut frame,
        ReplyHeader {
            xid: w.xid,
            zxid,
            err: ErrorCode::Ok,
        },
        &Response::Int(count),
    );
    let filled = w.outbox.fill(w.ticket, frame).is_ok();
    let mut guard = state.borrow_mut();
    let st = &mut *guard;
    if let Some(conn) = st.conns.get_mut(&w.conn).filter(|_| filled) {
        conn.stats.sent += 1;
        conn.record(w.opcode, w.xid, zxid, w.started, &shared);
    }
    enforce_budget(st);
}

/// Marks a connection whose queue now starts with reads: they wait for the next flush point.
fn defer_reads(st: &mut FrontState, conn_id: ConnId) {
    if let Some(c) = st.conns.get(&conn_id) {
        st.flushes.after_answer(conn_id, &c.pending);
    }
}

/// Moves this core to `version` and answers the reads that waited for it.
fn flush(st: &mut FrontState, shared: &Shared, version: &DataTree) {
    st.tree = version.clone();
    let waiting = st.flushes.take();
    for &conn in &waiting {
        drain_pending(st, shared, conn);
    }
    st.flushes.reuse(waiting);
}

/// Sends a write's reply to its connection; true if the connection is still there.
fn reply_to_write(
    st: &mut FrontState,
    shared: &Shared,
    origin: Origin,
    zxid: i64,
    err: ErrorCode,
    body: &Response,
) -> bool {
    debug_assert!(
        !st.flushes.is_waiting(origin.conn),
        "a reply would overtake reads waiting on connection {:#x}",
        origin.conn
    );
    let Some(conn) = st.conns.get_mut(&origin.conn) else {
        return false;
    };
    let started = conn.pending.write_answered(origin.xid);
    shared.stats.outstanding.fetch_sub(1, Relaxed);
    let mut frame = Vec::with_capacity(64);
    encode_reply(
        &mut frame,
        ReplyHeader {
            xid: origin.xid,
            zxid,
            err,
        },
        body,
    );
    conn.send(frame);
    conn.record(origin.opcode, origin.xid, zxid, started, shared);
    if origin.opcode == op::CLOSE_SESSION {
        conn.close();
    }
    true
}

/// Answers the reads queued at the head of a connection, up to its next in-flight write.
fn drain_pending(st: &mut FrontState, shared: &Shared, conn_id: ConnId) {
    loop {
        let Some(conn) = st.conns.get_mut(&conn_id) else {
            return;
        };
        let Some(queued) = conn.pending.pop_ready() else {
            return;
        };
        shared.stats.outstanding.fetch_sub(1, Relaxed);
        match queued {
            Queued::Read {
                xid,
                opcode,
                req,
                started,
            } => answer_read(st, shared, conn_id, xid, opcode, &req, started),
            Queued::Canned {
                xid,
                opcode,
                frame,
                started,
            } => {
                let zxid = st.tree.last_zxid();
                conn.send(frame);
                conn.record(opcode, xid, zxid, started, shared);
            }
        }
    }
}

/// Answers a read-like request now, from this core's version.
fn answer_read(
    st: &mut FrontState,
    shared: &Shared,
    conn_id: ConnId,
    xid: i32,
    opcode: i32,
    req: &Request,
    started: Instant,
) {
    let FrontState {
        tree,
        watches,
        conns,
        walks,
        ..
    } = st;
    let Some(conn) = conns.get_mut(&conn_id) else {
        return;
    };
    let zxid = tree.last_zxid();
    let mut frame = Vec::with_capacity(128);
    match req {
        Request::Auth { scheme, auth, .. } => {
            let ok = add_auth(conn, shared, scheme, auth);
            let err = if ok {
                ErrorCode::Ok
            } else {
                ErrorCode::AuthFailed
            };
            encode_reply(
                &mut frame,
                ReplyHeader { xid, zxid: 0, err },
                &Response::Empty,
            );
            conn.send(frame);
            conn.record(opcode, xid, 0, started, shared);
            if !ok {
                shared.stats.auth_failed.fetch_add(1, Relaxed);
                conn.close();
            }
            return;
        }
        Request::SetWatches(sw) => {
            for (event_type, path) in read::set_watches(tree, watches, sw, conn_id) {
                let mut ev = Vec::new();
                encode_notification(&mut ev, -1, event_type, &path);
                conn.send(ev);
            }
            encode_reply(
                &mut frame,
                ReplyHeader {
                    xid,
                    zxid,
                    err: ErrorCode::Ok,
                },
                &Response::Empty,
            );
        }
        Request::GetAllChildrenNumber { path } => {
            let ctx = read_context(conn_id, conn, shared);
            match read::all_children_number(tree, path, &ctx) {
                Err(err) => {
                    encode_reply(&mut frame, ReplyHeader { xid, zxid, err }, &Response::Empty)
                }
                Ok(mut walk) => match walk.step(tree, WALK_SLICE_NODES) {
                    // The root, and small subtrees, are answered at once.
                    Some(n) => encode_reply(
                        &mut frame,
                        ReplyHeader {
                            xid,
                            zxid,
                            err: ErrorCode::Ok,
                        },
                        &Response::Int(n),
                    ),
                    None => {
                        let ticket = conn.outbox.reserve();
                        let _ = walks.try_send(Walk {
                            conn: conn_id,
                            outbox: conn.outbox.clone(),
                            ticket,
                            xid,
                            opcode,
                            started,
                            version: tree.clone(),
                            walk,
                        });
                        return;
                    }
                },
            }
        }
        Request::Unknown(_) | Request::Check { .. } => {
            encode_reply(
                &mut frame,
                ReplyHeader {
                    xid,
                    zxid: -1,
                    err: ErrorCode::Unimplemented,
                },
                &Response::Empty,
            );
            conn.send(frame);
            conn.record(opcode, xid, -1, started, shared);
            tracing::info!(peer = %conn.peer, opcode, "unimplemented opcode; closing the connection as ZooKeeper does");
            conn.close();
            return;
        }
        _ => {
            let ctx = read_context(conn_id, conn, shared);
            match read::read(tree, watches, req, &ctx) {
                Ok(body) => encode_reply(
                    &mut frame,
                    ReplyHeader {
                        xid,
                        zxid,
                        err: ErrorCode::Ok,
                    },
                    &body,
                ),
                Err(err) => {
                    encode_reply(&mut frame, ReplyHeader { xid, zxid, err }, &Response::Empty)
                }
            }
        }
    }
    conn.send(frame);
    conn.record(opcode, xid, zxid, started, shared);
}

fn read_context<'c>(conn_id: ConnId, conn: &'c Conn, shared: &Shared) -> ReadContext<'c> {
    ReadContext {
        conn: conn_id,
        session_id: conn.session_id,
        auth: &conn.auth,
        jute_max_buffer: shared.cfg.jute_max_buffer,
    }
}

/// addauth: digest adds `digest:user:hash` (and `super` when it matches superDigest); ip adds
/// nothing new. Any other scheme fails, and so does an identity past [`AUTH_IDS_MAX`].
fn add_auth(conn: &mut Conn, shared: &Shared, scheme: &str, auth: &[u8]) -> bool {
    match scheme {
        "digest" => {
            let Ok(text) = std::str::from_utf8(auth) else {
                return false;
            };
            let id = acl::digest_id(text);
            let is_super = shared.cfg.super_digest.as_deref() == Some(id.as_str());
            let id = Id::new("digest", &id);
            if conn.auth.contains(&id) {
                return true;
            }
            if conn.auth.len() + 1 + usize::from(is_super) > AUTH_IDS_MAX {
                tracing::warn!(peer = %conn.peer, max = AUTH_IDS_MAX, "too many identities on one connection; refusing addauth");
                return false;
            }
            if is_super {
                conn.auth.push(Id::new("super", ""));
            }
            conn.auth.push(id);
            true
        }
        "ip" => true,
        _ => false,
    }
}

/// Sends touched sessions to the pipeline a few times per tick, so reads keep sessions alive.
async fn flush_touches(state: Rc<RefCell<FrontState>>, shared: Arc<Shared>) {
    let every = Duration::from_millis((shared.cfg.tick_ms as u64 / 4).clamp(5, 500));
    loop {
        glommio::timer::sleep(every).await;
        let sessions: Vec<i64> = state.borrow_mut().touched.drain().collect();
        if !sessions.is_empty()
            && shared
                .to_pipeline
                .send_async(PipeMsg::Node(Input::Touch { sessions }))
                .await
                .is_err()
        {
            return;
        }
    }
}

async fn answer_controls(state: Rc<RefCell<FrontState>>, controls: flume::Receiver<Control>) {
    while let Ok(c) = controls.recv_async().await {
        let mut st = state.borrow_mut();
        match c {
            Control::Conns(reply) => {
                let _ = reply.try_send(st.conns.values().map(Conn::info).collect());
            }
            Control::Watches(reply) => {
                let pairs = st
                    .watches
                    .data_pairs()
                    .into_iter()
                    .filter_map(|(p, c)| {
                        st.conns
                            .get(&c)
                            .map(|conn| (p.to_string(), conn.session_id))
                    })
                    .collect();
                let _ = reply.try_send(pairs);
            }
            Control::Latencies(reply) => {
                let _ = reply.try_send(crate::hist::front_latencies());
            }
            Control::UnsentBytes(reply) => {
                let _ = reply.try_send(st.unsent.get());
            }
            Control::ResetConnStats(reply) => {
                for conn in st.conns.values_mut() {
                    conn.stats = ConnStats::default();
                }
                let _ = reply.try_send(());
            }
            Control::CloseClients => {
                for conn in st.conns.values_mut() {
                    conn.close();
                }
                st.connects.retain(|_, c| !matches!(c, Connect::Waiting(_)));
            }
        }
    }
}

/// What a new connection opens with.
enum Hello {
    Word(String),
    Connect(ConnectRequest),
}

/// Reads a connection's first four bytes, and the rest of its connect request unless they are
/// a four-letter word. None (logged) when it sends something else, or goes away.
async fn read_hello<R: futures_lite::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    shared: &Shared,
    peer: &SocketAddr,
) -> Option<Hello> {
    // Nothing interrupts a handshake but its deadline: this sender stays alive, silent.
    let (_never, never_rx) = flume::bounded::<()>(1);
    if !conn::fill(rd, buf, chunk, 4, &never_rx, None).await {
        return None;
    }
    let word = std::str::from_utf8(&buf[..4]).unwrap_or("");
    if fourlw::is_word(word) {
        return Some(Hello::Word(word.to_string()));
    }
    let max = shared.cfg.connect_request_bytes_max;
    let frame = conn::read_frame(rd, buf, chunk, max, &never_rx, None, peer).await?;
    match ConnectRequest::decode(&frame) {
        Ok(req) => Some(Hello::Connect(req)),
        Err(e) => {
            tracing::info!(%peer, error = %e, "malformed connect request; closing");
            None
        }
    }
}

/// Answers a four-letter word; the answer must be taken within the connect timeout.
async fn answer_word<W: futures_lite::AsyncWrite + Unpin>(
    mut wr: W,
    word: &str,
    shared: &Shared,
    peer: &SocketAddr,
) {
    let text = fourlw::answer(word, shared).await;
    let limit = Duration::from_millis(shared.cfg.connect_timeout_ms);
    let sent = conn::within(limit, async {
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.flush().await;
        let _ = wr.close().await;
    })
    .await;
    if sent.is_none() {
        conn::count_limit_close(&shared.stats);
        tracing::info!(%peer, word, "four-letter word answer not taken within nio.sessionlessCnxnTimeout; closing");
    }
}

async fn serve_conn(state: Rc<RefCell<FrontState>>, shared: Arc<Shared>, stream: TcpStream) {
    let Ok(peer) = stream.peer_addr() else { return };
    let Some(_slot) = conn::take_ip_slot(&shared.ip_counts, peer.ip()) else {
        shared.stats.connections_rejected.fetch_add(1, Relaxed);
        tracing::warn!(%peer, max = shared.cfg.max_client_cnxns, "too many connections from this address (maxClientCnxns); closing");
        return;
    };
    let _ = stream.set_nodelay(true);
    let fd = conn::SocketFd(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let (mut rd, mut wr) = futures_lite::io::split(stream);
    let mut buf: Vec<u8> = Vec::new();
    // One read buffer per connection, reused for every read (not allocated and zeroed per read);
    // small until the handshake is done, so connections that never finish it cost little.
    let mut chunk = vec![0u8; HANDSHAKE_CHUNK];

    // The whole handshake, not just its first bytes, has the connect timeout.
    let limit = Duration::from_millis(shared.cfg.connect_timeout_ms);
    let hello = conn::within(
        limit,
        read_hello(&mut rd, &mut buf, &mut chunk, &shared, &peer),
    )
    .await;
    let req = match hello {
        None => {
            conn::count_limit_close(&shared.stats);
            tracing::info!(%peer, timeout_ms = shared.cfg.connect_timeout_ms,
                "no complete connect request within nio.sessionlessCnxnTimeout; closing");
            return;
        }
        Some(None) => return,
        Some(Some(Hello::Word(word))) => return answer_word(wr, &word, &shared, &peer).await,
        Some(Some(Hello::Connect(req))) => req,
    };
    let (reply_tx, reply_rx) = flume::bounded(1);
    let conn_id = {
        let mut st = state.borrow_mut();
        let id = ((st.id as u64) << 48) | st.next_conn;
        st.next_conn += 1;
        st.connects.insert(id, Connect::Waiting(reply_tx));
        id
    };
    if shared
        .to_pipeline
        .send_async(PipeMsg::Node(Input::Connect {
            conn: conn_id,
            req: req.clone(),
        }))
        .await
        .is_err()
    {
        return;
    }
    let Ok(outcome) = reply_rx.recv_async().await else {
        return;
    };
    let closed_meanwhile = matches!(
        state.borrow_mut().connects.remove(&conn_id),
        Some(Connect::Answered { closed: true, .. })
    );
    let (session_id, timeout_ms, passwd) = match outcome {
        ConnectOutcome::Refused {
            client_zxid,
            our_zxid,
        } => {
            tracing::info!(%peer, client_zxid = format_args!("0x{client_zxid:x}"), our_zxid = format_args!("0x{our_zxid:x}"),
                "refusing session request: the client has seen a newer zxid");
            return;
        }
        ConnectOutcome::NotServing => {
            tracing::info!(%peer, "refusing session request: this server is not serving (no quorum, or it leads with leaderServes=no)");
            return;
        }
        ConnectOutcome::Invalid => {
            let mut out = Vec::new();
            write_connect_response(&mut out, 0, 0, [0; 16], req.read_only.map(|_| false));
            conn::within(limit, async {
                let _ = wr.write_all(&out).await;
                let _ = wr.close().await;
            })
            .await;
            tracing::info!(%peer, session = format_args!("0x{:x}", req.session_id), "invalid or expired session; closing");
            return;
        }
        ConnectOutcome::Accepted {
            session_id,
            timeout_ms,
            passwd,
        } => (session_id, timeout_ms, passwd),
    };
    let mut hello = Vec::new();
    write_connect_response(
        &mut hello,
        timeout_ms,
        session_id,
        passwd,
        req.read_only.map(|_| false),
    );
    let limits = OutLimits::new(&shared.cfg, timeout_ms);
    let front_unsent = state.borrow().unsent.clone();
    let (outbox, writer_rx, reader_rx) = Outbox::new(limits, front_unsent);
    let _ = outbox.push(hello);
    let writer = glommio::spawn_local(conn::write_loop(wr, outbox.clone(), writer_rx));
    {
        let mut st = state.borrow_mut();
        st.conns.insert(
            conn_id,
            Conn {
                peer,
                session_id,
                timeout_ms,
                established_ms: wall_ms(),
                auth: vec![Id::new("ip", &peer.ip().to_string())],
                outbox: outbox.clone(),
                pending: order::Queue::default(),
                moved: false,
                stats: ConnStats::default(),
            },
        );
        st.by_session.insert(session_id, conn_id);
    }
    if closed_meanwhile {
        // The session was closed, or resumed elsewhere, after this connect was answered.
        outbox.close();
    }
    shared.stats.alive_connections.fetch_add(1, Relaxed);
    tracing::debug!(%peer, session = format_args!("0x{session_id:x}"), timeout_ms, "session established");

    chunk.resize(READ_CHUNK, 0);
    let max = shared.cfg.jute_max_buffer;
    // Backpressure: the next request is read only once the client has taken its replies.
    while conn::wait_for_output_room(&outbox, &reader_rx).await {
        let read = conn::read_frame(
            &mut rd,
            &mut buf,
            &mut chunk,
            max,
            &reader_rx,
            Some(&outbox),
            &peer,
        );
        let Some(frame) = read.await else {
            // The client closed its end, or sent a bad frame: as ZooKeeper does, drop what it
            // was still owed. (With the output closing or aborted, the server ended it.)
            if outbox.is_open() {
                outbox.abort(None);
            }
            break;
        };
        if !on_request(&state, &shared, conn_id, session_id, &frame).await {
            break;
        }
        // Requests already in `buf` need no await: without this, one connection's pipelined
        // requests would run back to back while every other connection waits.
        glommio::yield_if_needed().await;
    }

    // Teardown: forget the connection and its watches; the session lives until it times out.
    {
        let mut st = state.borrow_mut();
        if let Some(mut conn) = st.conns.remove(&conn_id) {
            let queued = conn.pending.len() as i64;
            shared.stats.outstanding.fetch_sub(queued, Relaxed);
            conn.close();
        }
        if st.by_session.get(&session_id) == Some(&conn_id) {
            st.by_session.remove(&session_id);
        }
        st.watches.drop_conn(conn_id);
        shared
            .stats
            .watch_count
            .store(st.watches.count() as i64, Relaxed);
    }
    shared.stats.alive_connections.fetch_sub(1, Relaxed);
    writer.await;
    if let Some(reason) = outbox.abort_reason() {
        // `rd` still holds the stream, so the descriptor is open.
        conn::reset_on_close(&fd);
        conn::count_limit_close(&shared.stats);
        tracing::warn!(%peer, session = format_args!("0x{session_id:x}"), "closed the connection: {reason}");
    }
}

fn write_connect_response(
    out: &mut Vec<u8>,
    timeout_ms: i32,
    session_id: i64,
    passwd: [u8; 16],
    read_only: Option<bool>,
) {
    let mut body = Vec::new();
    ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id,
        passwd: bytes::Bytes::copy_from_slice(&passwd),
        read_only,
    }
    .encode(&mut body);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
}

/// Handles one request frame. False when the connection must close.
async fn on_request(
    state: &Rc<RefCell<FrontState>>,
    shared: &Arc<Shared>,
    conn_id: ConnId,
    session_id: i64,
    frame: &[u8],
) -> bool {
    let started = Instant::now();
    shared.stats.packets_received.fetch_add(1, Relaxed);
    let mut r = Reader::new(frame);
    let (Ok(xid), Ok(opcode)) = (r.int("xid"), r.int("type")) else {
        tracing::warn!(conn = conn_id, "request shorter than its header; closing");
        return false;
    };
    let body = &frame[r.position()..];
    let decoded = Request::decode(opcode, body);
    let msg = {
        let mut guard = state.borrow_mut();
        let st = &mut *guard;
        st.touched.insert(session_id);
        let Some(conn) = st.conns.get_mut(&conn_id) else {
            return false;
        };
        if conn.closing() {
            return false;
        }
        if conn.moved {
            // As ZooKeeper's leader does for any request of a session another server owns.
            tracing::info!(peer = %conn.peer, session = format_args!("{session_id:#x}"), "session moved to another server; closing its old connection");
            conn.close();
            return false;
        }
        conn.stats.received += 1;
        let req = match decoded {
            Ok(req) => req,
            Err(e) => {
                tracing::info!(peer = %conn.peer, opcode, error = %e, "malformed request body; answering MARSHALLINGERROR");
                let zxid = st.tree.last_zxid();
                let mut out = Vec::new();
                encode_reply(
                    &mut out,
                    ReplyHeader {
                        xid,
                        zxid,
                        err: ErrorCode::MarshallingError,
                    },
                    &Response::Empty,
                );
                // Ordered behind in-flight writes like any read.
                queue_or_answer(st, shared, conn_id, xid, opcode, Err(out), started);
                return true;
            }
        };
        let origin = Origin {
            conn: conn_id,
            xid,
            opcode,
        };
        match req {
            Request::Check { .. } | Request::Unknown(_) => {
                queue_or_answer(st, shared, conn_id, xid, opcode, Ok(req), started);
                None
            }
            // ZooKeeper adds an identity when the auth packet arrives, so writes sent after it use
            // it even while earlier requests are in flight. The reply keeps its place in order. A
            // failed auth is answered in order too, and then closes the connection.
            Request::Auth {
                ref scheme,
                ref auth,
                ..
            } if add_auth(conn, shared, scheme, auth) => {
                let mut frame = Vec::new();
                encode_reply(
                    &mut frame,
                    ReplyHeader {
                        xid,
                        zxid: 0,
                        err: ErrorCode::Ok,
                    },
                    &Response::Empty,
                );
                queue_or_answer(st, shared, conn_id, xid, opcode, Err(frame), started);
                None
            }
            Request::Sync { path } => {
                let reads_waiting = push_write(conn, shared, xid, started);
                Some(PipeMsg::Node(Input::Sync {
                    origin,
                    session_id,
                    path,
                    reads_waiting,
                }))
            }
            req if req.is_write() => {
                let reads_waiting = push_write(conn, shared, xid, started);
                let auth = conn.auth.clone();
                Some(PipeMsg::Node(Input::Write {
                    origin,
                    session_id,
                    req,
                    auth,
                    reads_waiting,
                }))
            }
            req => {
                queue_or_answer(st, shared, conn_id, xid, opcode, Ok(req), started);
                None
            }
        }
    };
    if let Some(msg) = msg {
        if shared.to_pipeline.send_async(msg).await.is_err() {
            return false;
        }
        // Bound what one connection may have in flight.
        wait_for_room(state, shared, conn_id).await;
    }
    let mut st = state.borrow_mut();
    enforce_budget(&mut st);
    st.conns.get(&conn_id).is_some_and(|c| !c.closing())
}

/// Queues a write or sync; returns whether reads are waiting behind an earlier one (the pipeline
/// then keeps the tree version those reads need).
fn push_write(conn: &mut Conn, shared: &Shared, xid: i32, started: Instant) -> bool {
    let reads_waiting = conn.pending.push_write(xid, started);
    shared.stats.outstanding.fetch_add(1, Relaxed);
    reads_waiting
}

/// Waits while this connection, or the server as a whole, has `globalOutstandingLimit` requests
/// in flight: the connection stops reading its socket meanwhile, as ZooKeeper throttles.
async fn wait_for_room(state: &Rc<RefCell<FrontState>>, shared: &Shared, conn_id: ConnId) {
    let limit = shared.cfg.global_outstanding_limit;
    loop {
        let global_full = shared.stats.outstanding.load(Relaxed) >= limit as i64;
        let full = state
            .borrow()
            .conns
            .get(&conn_id)
            .is_some_and(|c| (global_full || c.pending.len() >= limit) && !c.closing());
        if !full {
            return;
        }
        glommio::timer::sleep(Duration::from_micros(200)).await;
    }
}

/// Answers a read-like request now, or queues it behind the connection's in-flight writes.
/// `Err(frame)` is a ready reply (for a request whose body did not decode).
fn queue_or_answer(
    st: &mut FrontState,
    shared: &Shared,
    conn_id: ConnId,
    xid: i32,
    opcode: i32,
    req: Result<Request, Vec<u8>>,
    started: Instant,
) {
    let Some(conn) = st.conns.get_mut(&conn_id) else {
        return;
    };
    let queued = match req {
        Ok(req) => Queued::Read {
            xid,
            opcode,
            req,
            started,
        },
        Err(frame) => Queued::Canned {
            xid,
            opcode,
            frame,
            started,
        },
    };
    let Some(now) = conn.pending.push_read(queued) else {
        shared.stats.outstanding.fetch_add(1, Relaxed);
        return;
    };
    match now {
        Queued::Read { req, .. } => answer_read(st, shared, conn_id, xid, opcode, &req, started),
        Queued::Canned { frame, .. } => {
            conn.send(frame);
            conn.record(opcode, xid, st.tree.last_zxid(), started, shared);
        }
    }
    shared
        .stats
        .watch_count
        .store(st.watches.count() as i64, Relaxed);
}
