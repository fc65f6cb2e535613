//! An ensemble member's sockets: the election port and the quorum port, on ZooKeeper's wire
//! formats (`engine/src/quorum/FORMAT.md`). Everything here runs as tasks on the member core's
//! executor and reports to the core through one bounded channel of [`NetEvent`]s; the core
//! sends through [`Net`].
//!
//! **Election port** (ZooKeeper's `QuorumCnxManager`). One connection per pair of servers,
//! kept by the server with the larger id: it dials, sends its opening (protocol version, its
//! id, its election address), and the link carries notifications both ways, each as a 4-byte
//! length and the notification. A connection from a smaller id is closed at once, as ZooKeeper
//! closes it (the larger side dials instead). Votes for a server with no link wait in a small
//! queue; past it they are dropped (election sends them again).
//!
//! **Quorum port.** Every member listens; a learner dials the leader it elected. Packets are
//! jute `QuorumPacket` records back to back. The first packet on an accepted connection must be
//! FOLLOWERINFO or OBSERVERINFO, which names the learner. After SNAP, a Ringkeeper leader sends
//! its snapshot in Ringkeeper's own format (`engine/src/snap/FORMAT.md`), preceded by its
//! length in 8 bytes (Java ZooKeeper sends its own serialization there, which is not read yet).
//! Each connection has an id: the learner's choice on its side, a count on the leader's.
//!
//! Limits: a notification is at most 512 KiB (ZooKeeper's `PACKETMAXSIZE`), a quorum packet
//! `quorum_packet_bytes_max`; a peer sending more loses the connection. Each quorum
//! connection's output queue holds `QUORUM_QUEUE_MAX` messages; a learner that falls that far
//! behind is disconnected (it syncs again when it reconnects).

use crate::config::ensemble::{Ensemble, ServerLine};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use ringkeeper_engine::quorum::{
    packet, packet_len, ElectionOpening, Notification, QuorumPacket, ELECTION_PROTOCOL_V1,
};
use ringkeeper_engine::snap;
use ringkeeper_engine::zab::peer::{Image, Msg};
use ringkeeper_engine::zab::wire::{self, Sender};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// ZooKeeper's `QuorumCnxManager.PACKETMAXSIZE`.
const NOTIFICATION_BYTES_MAX: usize = 512 * 1024;
/// Votes queued for a server with no link.
const VOTE_QUEUE_MAX: usize = 8;
/// Messages queued on one quorum connection.
const QUORUM_QUEUE_MAX: usize = 65_536;
/// How often a server re-dials a smaller-id server it has no link with.
const REDIAL_MS: u64 = 200;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest snapshot a learner accepts in SNAP.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 36;
/// Bytes gathered for one write on a quorum connection before it is sent.
const WRITE_BATCH_BYTES: usize = 1 << 20;
/// Ids of connections this server accepted on its quorum port (a learner's own ids are below).
const ACCEPTED_CONN: u64 = 1 << 62;

/// Appends `msg` as it goes on a quorum connection: its packet, and after SNAP the snapshot
/// (8-byte length, then Ringkeeper's snapshot format).
fn encode_into(msg: &Msg, sender: &Sender, out: &mut Vec<u8>) -> Result<(), ()> {
    match wire::encode(msg, sender) {
        Ok(p) => p.encode(out),
        Err(e) => {
            tracing::error!(?e, "a quorum message with no wire form; closing");
            return Err(());
        }
    }
    if let Msg::Snap { image, .. } = msg {
        let s = snap::encode_to_vec(&image.tree, &image.sessions);
        out.extend_from_slice(&(s.len() as u64).to_be_bytes());
        out.extend_from_slice(&s);
    }
    Ok(())
}

/// What the sockets report to the member core.
pub enum NetEvent {
    Vote { from: i64, note: Notification },
    Msg { from: i64, conn: u64, msg: Msg },
    Closed { from: i64, conn: u64 },
}

/// A queue of encoded notifications for one server's link (both ends, so a new link can take
/// over the queue).
type VoteQueue = (flume::Sender<Vec<u8>>, flume::Receiver<Vec<u8>>);

struct QuorumConn {
    to: i64,
    tx: flume::Sender<Msg>,
}

struct State {
    my_id: i64,
    servers: HashMap<i64, ServerLine>,
    sender: Sender,
    events: flume::Sender<NetEvent>,
    /// Votes waiting for each other server's link.
    votes: HashMap<i64, VoteQueue>,
    /// Each live election link's generation, by server; a newer link retires an older one.
    link_gen: HashMap<i64, u64>,
    conns: HashMap<u64, QuorumConn>,
    next_accepted: u64,
    quorum_packet_bytes_max: usize,
}

/// The member core's handle on its sockets.
#[derive(Clone)]
pub struct Net {
    st: Rc<RefCell<State>>,
}

fn addr_of(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Binds a port as the client port is bound (SO_REUSEADDR, a few seconds of retries while a
/// server that was just killed still holds it).
fn listen(host: &str, port: u16, what: &str) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "{what} {}: the host does not resolve",
                addr_of(host, port)
            ))
        })?;
    crate::net::bind_client_port(addr, crate::net::BIND_RETRY_MAX)
        .map(crate::net::into_glommio)
        .map_err(|e| std::io::Error::other(format!("{what} {addr}: {e}")))
}

impl Net {
    /// Binds the election and quorum ports and starts the link tasks. Fails when a port cannot
    /// be bound.
    pub fn start(
        ensemble: &Ensemble,
        sender: Sender,
        events: flume::Sender<NetEvent>,
        quorum_packet_bytes_max: usize,
    ) -> std::io::Result<Net> {
        let me = ensemble.me().clone();
        let election = listen(&me.host, me.election_port, "election port")?;
        let quorum = listen(&me.host, me.quorum_port, "quorum port")?;
        let mut votes = HashMap::new();
        for s in &ensemble.servers {
            if s.id != ensemble.my_id {
                votes.insert(s.id, flume::bounded(VOTE_QUEUE_MAX));
            }
        }
        let net = Net {
            st: Rc::new(RefCell::new(State {
                my_id: ensemble.my_id,
                servers: ensemble.servers.iter().map(|s| (s.id, s.clone())).collect(),
                sender,
                events,
                votes,
                link_gen: HashMap::new(),
                conns: HashMap::new(),
                next_accepted: 0,
                quorum_packet_bytes_max,
            })),
        };
        glommio::spawn_local(net.clone().accept_election(election)).detach();
        glommio::spawn_local(net.clone().accept_quorum(quorum)).detach();
        for s in &ensemble.servers {
            if s.id < ensemble.my_id {
                glommio::spawn_local(net.clone().dial_election(s.id)).detach();
            }
        }
        Ok(net)
    }

    // ----- election port -----

    /// Queues a vote for `to` (dropped if its queue is full: election resends).
    pub fn vote(&self, to: i64, note: &Notification) {
        let st = self.st.borrow();
        if let Some((tx, _)) = st.votes.get(&to) {
            let _ = tx.try_send(note.encode());
        }
    }

    fn opening(&self) -> Vec<u8> {
        let st = self.st.borrow();
        let me = &st.servers[&st.my_id];
        let mut out = Vec::new();
        ElectionOpening::Current {
            protocol_version: ELECTION_PROTOCOL_V1,
            sid: st.my_id,
            addresses: addr_of(&me.host, me.election_port),
        }
        .encode(&mut out);
        out
    }

    /// Keeps a link to a smaller-id server up: dial, serve, and dial again when it breaks.
    async fn dial_election(self, to: i64) {
        let addr = {
            let st = self.st.borrow();
            let s = &st.servers[&to];
            addr_of(&s.host, s.election_port)
        };
        loop {
            let stream =
                crate::conn::within(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str())).await;
            if let Some(Ok(mut stream)) = stream {
                let _ = stream.set_nodelay(true);
                if stream.write_all(&self.opening()).await.is_ok() {
                    self.serve_link(to, stream).await;
                }
            }
            glommio::timer::sleep(Duration::from_millis(REDIAL_MS)).await;
        }
    }

    async fn accept_election(self, listener: TcpListener) {
        loop {
            let Ok(stream) = listener.accept().await else {
                // Out of descriptors, say: wait rather than spin.
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            glommio::spawn_local(self.clone().election_opened(stream)).detach();
        }
    }

    /// An accepted election connection: its opening says who dialed.
    async fn election_opened(self, mut stream: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 256];
        let opening = loop {
            match ElectionOpening::decode(&buf, 4096) {
                Ok(Some((o, used))) => {
                    buf.drain(..used);
                    break o;
                }
                Ok(None) => {}
                Err(_) => return,
            }
            let read = crate::conn::within(CONNECT_TIMEOUT, stream.read(&mut chunk)).await;
            match read {
                Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let sid = match opening {
            ElectionOpening::Old { sid } | ElectionOpening::Current { sid, .. } => sid,
        };
        let my_id = self.st.borrow().my_id;
        if sid <= my_id || !self.st.borrow().servers.contains_key(&sid) {
            // ZooKeeper's rule: only the larger id keeps a connection (it dials us back).
            return;
        }
        if !buf.is_empty() {
            // Notifications sent right behind the opening.
            self.read_votes(sid, &mut buf);
        }
        self.serve_link(sid, stream).await;
    }

    /// Carries votes both ways on a link until it breaks or a newer link to `peer` replaces it.
    async fn serve_link(&self, peer: i64, stream: TcpStream) {
        let generation = {
            let mut st = self.st.borrow_mut();
            let g = st.link_gen.entry(peer).or_insert(0);
            *g += 1;
            *g
        };
        let current = |net: &Net| net.st.borrow().link_gen.get(&peer) == Some(&generation);
        let queue = self.st.borrow().votes[&peer].1.clone();
        let (mut rd, mut wr) = futures_lite::io::split(stream);
        let writer = async {
            while let Ok(bytes) = queue.recv_async().await {
                if !current(self) {
                    return;
                }
                let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
                frame.extend_from_slice(&bytes);
                if wr.write_all(&frame).await.is_err() {
                    return;
                }
            }
        };
        let reader = async {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
                if !current(self) || !self.read_votes(peer, &mut buf) {
                    return;
                }
            }
        };
        futures_lite::future::or(writer, reader).await;
        let _ = wr.close().await;
    }

    /// Takes whole notifications off `buf` and reports them; false on a bad frame.
    fn read_votes(&self, from: i64, buf: &mut Vec<u8>) -> bool {
        loop {
            let Some(head) = buf.get(..4) else {
                return true;
            };
            let len = i32::from_be_bytes(head.try_into().expect("4 bytes"));
            if len <= 0 || len as usize > NOTIFICATION_BYTES_MAX {
                return false;
            }
            let end = 4 + len as usize;
            if buf.len() < end {
                return true;
            }
            let note = Notification::decode(&buf[4..end]);
            buf.drain(..end);
            match note {
                Ok(note) => {
                    let events = self.st.borrow().events.clone();
                    if events.try_send(NetEvent::Vote { from, note }).is_err() {
                        // The core is behind: a vote is resent, so dropping it is safe.
                    }
                }
                Err(_) => return false,
            }
        }
    }

    // ----- quorum port -----

    /// Sends `msg` on quorum connection `conn` with `to`, opening it (as a learner) if new.
    pub fn send(&self, to: i64, conn: u64, msg: Msg) {
        let mut st = self.st.borrow_mut();
        if let Some(c) = st.conns.get(&conn) {
            if c.tx.try_send(msg).is_err() {
                tracing::warn!(server = to, "quorum connection's queue is full; closing it");
                st.conns.remove(&conn);
                // Its task ends without a word (the connection is no longer listed): say it.
                drop(st);
                let report = self.report(NetEvent::Closed { from: to, conn });
                glommio::spawn_local(report).detach();
            }
            return;
        }
        if conn >= ACCEPTED_CONN || !matches!(msg, Msg::LearnerInfo { .. }) {
            return; // a connection that is gone; only a learner's opening opens one
        }
        let (tx, rx) = flume::bounded(QUORUM_QUEUE_MAX);
        let _ = tx.try_send(msg);
        st.conns.insert(conn, QuorumConn { to, tx });
        drop(st);
        glommio::spawn_local(self.clone().dial_quorum(to, conn, rx)).detach();
    }

    /// Closes quorum connection `conn` (its queue drains first).
    pub fn close(&self, conn: u64) {
        self.st.borrow_mut().conns.remove(&conn);
    }

    fn report(&self, ev: NetEvent) -> impl std::future::Future<Output = ()> {
        let events = self.st.borrow().events.clone();
        async move {
            let _ = events.send_async(ev).await;
        }
    }

    async fn dial_quorum(self, to: i64, conn: u64, rx: flume::Receiver<Msg>) {
        let addr = {
            let st = self.st.borrow();
            let s = &st.servers[&to];
            addr_of(&s.host, s.quorum_port)
        };
        let stream = crate::conn::within(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str())).await;
        let Some(Ok(stream)) = stream else {
            self.st.borrow_mut().conns.remove(&conn);
            self.report(NetEvent::Closed { from: to, conn }).await;
            return;
        };
        let _ = stream.set_nodelay(true);
        self.serve_quorum(Some(to), conn, stream, rx).await;
    }

    async fn accept_quorum(self, listener: TcpListener) {
        loop {
            let Ok(stream) = listener.accept().await else {
                // Out of descriptors, say: wait rather than spin.
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conn = {
                let mut st = self.st.borrow_mut();
                st.next_accepted += 1;
                ACCEPTED_CONN | st.next_accepted
            };
            let (tx, rx) = flume::bounded(QUORUM_QUEUE_MAX);
            // Whom it is from is known at its first packet.
            self.st
                .borrow_mut()
                .conns
                .insert(conn, QuorumConn { to: -1, tx });
            glommio::spawn_local(self.clone().serve_quorum(None, conn, stream, rx)).detach();
        }
    }

    /// Carries one quorum connection until either side ends it.
    async fn serve_quorum(
        self,
        peer: Option<i64>,
        conn: u64,
        stream: TcpStream,
        rx: flume::Receiver<Msg>,
    ) {
        let from = Rc::new(std::cell::Cell::new(peer));
        let (mut rd, mut wr) = futures_lite::io::split(stream);
        let sender = self.st.borrow().sender.clone();
        let writer = async {
            let mut out = Vec::new();
            while let Ok(first) = rx.recv_async().await {
                // Everything queued goes out in one write (the ZAB pipeline's proposals, acks
                // and commits come in bursts).
                let mut msg = Some(first);
                while let Some(m) = msg.take().or_else(|| {
                    if out.len() < WRITE_BATCH_BYTES {
                        rx.try_recv().ok()
                    } else {
                        None
                    }
                }) {
                    if encode_into(&m, &sender, &mut out).is_err() {
                        return;
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
        };
        let max = self.st.borrow().quorum_packet_bytes_max;
        let reader = async {
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            // A snapshot being read after SNAP: its zxid and length.
            let mut pending_snap: Option<(i64, Option<u64>)> = None;
            loop {
                // Take every whole item off the buffer.
                loop {
                    if let Some((zxid, len)) = pending_snap {
                        let len = match len {
                            Some(l) => l,
                            None => {
                                let Some(h) = buf.get(..8) else { break };
                                let l = u64::from_be_bytes(h.try_into().expect("8 bytes"));
                                if l > SNAPSHOT_BYTES_MAX {
                                    return;
                                }
                                buf.drain(..8);
                                pending_snap = Some((zxid, Some(l)));
                                l
                            }
                        };
                        if (buf.len() as u64) < len {
                            break;
                        }
                        let bytes =
                            bytes::Bytes::from(buf.drain(..len as usize).collect::<Vec<u8>>());
                        pending_snap = None;
                        let loaded = match snap::load(&bytes) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(error = %e, "the leader's snapshot does not load; closing");
                                return;
                            }
                        };
                        let image = Image {
                            tree: loaded.tree,
                            sessions: loaded.sessions,
                        };
                        let Some(f) = from.get() else { return };
                        self.report(NetEvent::Msg {
                            from: f,
                            conn,
                            msg: Msg::Snap { zxid, image },
                        })
                        .await;
                        continue;
                    }
                    let n = match packet_len(&buf, max) {
                        Ok(Some(n)) => n,
                        Ok(None) => break,
                        Err(_) => return,
                    };
                    let Ok(p) = QuorumPacket::decode(&buf[..n]) else {
                        return;
                    };
                    buf.drain(..n);
                    if p.kind == packet::SNAP {
                        if peer.is_none() {
                            return; // only a leader this server dialed sends a snapshot
                        }
                        pending_snap = Some((p.zxid, None));
                        continue;
                    }
                    let decoded = match wire::decode(&p) {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(
                                ?e,
                                kind = p.kind,
                                "bad quorum packet; closing the connection"
                            );
                            return;
                        }
                    };
                    if let Some(id) = decoded.learner_id {
                        if from.get().is_none() {
                            from.set(Some(id));
                            if let Some(c) = self.st.borrow_mut().conns.get_mut(&conn) {
                                c.to = id;
                            }
                        }
                    }
                    let Some(f) = from.get() else {
                        return; // an accepted connection must open with LearnerInfo
                    };
                    self.report(NetEvent::Msg {
                        from: f,
                        conn,
                        msg: decoded.msg,
                    })
                    .await;
                }
                match rd.read(&mut chunk).await {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
        };
        futures_lite::future::or(writer, reader).await;
        let _ = wr.close().await;
        let removed = self.st.borrow_mut().conns.remove(&conn).is_some();
        if let (true, Some(f)) = (removed, from.get()) {
            self.report(NetEvent::Closed { from: f, conn }).await;
        }
    }
}
