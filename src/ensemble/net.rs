//! An ensemble member's sockets: the election port and the quorum port, on ZooKeeper's wire
//! formats (`engine/src/quorum/FORMAT.md`). Everything here runs as tasks on the member core's
//! executor and reports to the core through one bounded channel of [`NetEvent`]s; the core
//! sends through [`Net`].
//!
//! **Election port** (ZooKeeper's `QuorumCnxManager`). One connection per pair of servers,
//! kept by the server with the larger id: it dials, sends its opening (protocol version, its
//! id, its election address), and the link carries notifications both ways, each as a 4-byte
//! length and the notification. A connection from a smaller id is closed at once, as ZooKeeper
//! closes it (the larger side dials instead). A server with votes for a larger id and no link
//! knocks (`knock_election`) so that a Java server dials back. Votes for a server with no link
//! wait in a small queue; past it the oldest are dropped (election sends its vote again).
//!
//! **Quorum port.** Every member listens; a learner dials the leader it elected. Packets are
//! jute `QuorumPacket` records back to back. The first packet on an accepted connection must be
//! FOLLOWERINFO or OBSERVERINFO, which names the learner. After SNAP the leader streams its
//! snapshot. To a Java learner that is ZooKeeper's form (`javafiles::write_for_snap`); between
//! Ringkeeper servers, which say so with `wire::OWN_SNAP_MARK` in LearnerInfo and LEADERINFO,
//! it is Ringkeeper's own format (`engine/src/snap/FORMAT.md`): the file after its header as
//! frames (a 4-byte big-endian length, then that many bytes), a zero length, then the 64-byte
//! header (known only once the walk is done). A thread of its own walks the tree version the
//! SNAP was taken from (an O(1) clone of the persistent tree) and hands the pieces over a short
//! queue, so the member core only copies them to the socket and the leader's write path never
//! waits for the walk. The learner takes whole records as they arrive and builds the tree on a
//! thread; a Java leader's snapshot comes as a fuzzy image (`Image::fuzzy_through`). The txns
//! of a DIFF that the leader's log holds (`Msg::FromLog`) are streamed the same way: a thread
//! reads them from the log again and encodes them as PROPOSAL and COMMIT packets, a few pieces
//! ahead of the socket (`read_log_on_thread`); what was queued after them waits.
//! Each connection has an id: the learner's choice on its side, a count on the leader's.
//!
//! Limits: a notification is at most 512 KiB (ZooKeeper's `PACKETMAXSIZE`), a quorum packet
//! `quorum_packet_bytes_max`; a peer sending more loses the connection. Each quorum
//! connection's output queue holds at most `ringkeeper.learnerQueueBytes` (256 MiB unless set;
//! ZooKeeper's queue per learner has no bound), counted by [`queued_cost`]; a learner that
//! falls that far behind is disconnected (it syncs again when it reconnects). The DIFF window
//! is sized to fit well within it (`core.rs`).

use crate::config::ensemble::{Ensemble, ServerLine};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use ringkeeper_engine::javafiles;
use ringkeeper_engine::quorum::{
    packet, packet_len, ElectionOpening, Notification, QuorumPacket, ELECTION_PROTOCOL_V1,
};
use ringkeeper_engine::snap::{self, SnapSession};
use ringkeeper_engine::zab::peer::{Image, Msg};
use ringkeeper_engine::zab::wire::{self, Sender};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// ZooKeeper's `QuorumCnxManager.PACKETMAXSIZE`.
const NOTIFICATION_BYTES_MAX: usize = 512 * 1024;
/// Votes queued for a server with no link (the newest: see [`queue_vote`]).
const VOTE_QUEUE_MAX: usize = 8;
/// How often a server re-dials a smaller-id server it has no link with.
const REDIAL_MS: u64 = 200;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest snapshot a learner accepts in SNAP.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 36;
/// Largest frame of a snapshot in SNAP (a chunk is `snap::CHUNK_NODES_MAX` nodes; the meta
/// frame holds every session and ACL).
const SNAPSHOT_FRAME_MAX: usize = 1 << 30;
/// Frames of a snapshot encoded ahead of the socket.
const SNAPSHOT_FRAMES_AHEAD: usize = 4;
/// Pieces of a DIFF read from the log ahead of the socket (each about `WRITE_BATCH_BYTES`).
const LOG_PIECES_AHEAD: usize = 4;
/// Bytes gathered for one write on a quorum connection before it is sent.
const WRITE_BATCH_BYTES: usize = 1 << 20;
/// Ids of connections this server accepted on its quorum port (a learner's own ids are below).
const ACCEPTED_CONN: u64 = 1 << 62;

/// Appends `msg`'s packet as it goes on a quorum connection (a SNAP's snapshot follows it
/// through [`encode_on_thread`]).
fn encode_into(msg: &Msg, sender: &Sender, out: &mut Vec<u8>) -> Result<(), ()> {
    match wire::encode(msg, sender) {
        Ok(p) => {
            p.encode(out);
            Ok(())
        }
        Err(e) => {
            tracing::error!(?e, "a quorum message with no wire form; closing");
            Err(())
        }
    }
}

/// What follows a packet on a quorum connection, from a thread of its own.
enum Streamed {
    /// SNAP's snapshot.
    Snap { zxid: i64, image: Image },
    /// A DIFF's txns read from the log (`Msg::FromLog`).
    Log { after: i64, through: i64 },
}

/// A piece of what is streamed to a learner.
enum Piece {
    /// Bytes to send as they are.
    Bytes(Vec<u8>),
    /// The walk is done: everything was handed over.
    End,
}

/// Walks `image` on a thread of its own, in Ringkeeper's format (`own`) or ZooKeeper's; the
/// pieces come out of the returned queue, which holds a few of them ahead of the socket.
fn encode_on_thread(image: Image, own: bool) -> flume::Receiver<Piece> {
    // Ringkeeper's frames go as two pieces each (the length, then the bytes).
    let (tx, rx) = flume::bounded(2 * SNAPSHOT_FRAMES_AHEAD);
    let spawned = std::thread::Builder::new()
        .name("rk-snap-send".into())
        .spawn(move || {
            let send = |b: Vec<u8>| tx.send(Piece::Bytes(b)).is_ok();
            let whole = if own {
                let mut enc = snap::Encoder::new(&image.tree);
                let mut sent = true;
                while let Some(chunk) = enc.next_chunk() {
                    sent = send((chunk.len() as u32).to_be_bytes().to_vec()) && send(chunk);
                    if !sent {
                        break;
                    }
                }
                sent && {
                    let (meta, header) = enc.finish(&image.sessions);
                    send((meta.len() as u32).to_be_bytes().to_vec())
                        && send(meta)
                        && send(0u32.to_be_bytes().to_vec())
                        && send(header.to_vec())
                }
            } else {
                let sessions: Vec<(i64, i32)> = image
                    .sessions
                    .iter()
                    .map(|s| (s.id, s.timeout_ms))
                    .collect();
                javafiles::write_for_snap(&image.tree, &sessions, send)
            };
            if whole {
                let _ = tx.send(Piece::End);
            }
        });
    if let Err(e) = spawned {
        // The receiver sees the queue closed without its end: the connection closes and the
        // learner syncs again.
        tracing::error!(error = %e, "cannot start a thread to send a snapshot");
    }
    rx
}

/// Reads the txns of a DIFF from the log in `dir` (after `after` through `through`) on a
/// thread of its own, each as a PROPOSAL and a COMMIT packet, in pieces of about
/// `WRITE_BATCH_BYTES`; they come out of the returned queue, a few ahead of the socket. If the
/// log no longer holds them all (purged since the sync was decided, say), the queue closes
/// without its end.
fn read_log_on_thread(
    dir: std::path::PathBuf,
    after: i64,
    through: i64,
    sender: Sender,
) -> flume::Receiver<Piece> {
    let (tx, rx) = flume::bounded(LOG_PIECES_AHEAD);
    let spawned = std::thread::Builder::new()
        .name("rk-log-send".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let mut gone = false;
            let streamed = crate::log::stream_range(&dir, after, through, |t| {
                let zxid = t.zxid;
                let encoded = encode_into(&Msg::Proposal(t), &sender, &mut buf)
                    .and_then(|()| encode_into(&Msg::Commit { zxid }, &sender, &mut buf));
                if encoded.is_err() {
                    return false; // said where it failed
                }
                if buf.len() >= WRITE_BATCH_BYTES {
                    gone = tx.send(Piece::Bytes(std::mem::take(&mut buf))).is_err();
                }
                !gone
            });
            match streamed {
                Ok(_) => {
                    if buf.is_empty() || tx.send(Piece::Bytes(buf)).is_ok() {
                        let _ = tx.send(Piece::End);
                    }
                }
                // The connection closed meanwhile; its task says so.
                Err(_) if gone => {}
                Err(e) => tracing::warn!(error = %e, "cannot read a DIFF's txns from the log"),
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a thread to read the log for a DIFF");
    }
    rx
}

/// How long a learner waits before closing a connection whose snapshot it could not load.
const SNAP_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Copies `pieces` to the connection until their end; the bytes sent, or None when the
/// connection failed (or the thread making them did not finish).
async fn send_pieces(
    wr: &mut (impl futures_lite::AsyncWrite + Unpin),
    pieces: flume::Receiver<Piece>,
) -> Option<u64> {
    let mut sent = 0u64;
    while let Ok(piece) = pieces.recv_async().await {
        match piece {
            Piece::Bytes(b) => {
                wr.write_all(&b).await.ok()?;
                sent += b.len() as u64;
            }
            Piece::End => return Some(sent),
        }
    }
    None
}

/// A snapshot in Ringkeeper's format being received after SNAP.
struct OwnSnapIn {
    /// The file so far, its header's room first.
    file: Vec<u8>,
    /// The frames are done; the header comes next.
    header_next: bool,
}

impl OwnSnapIn {
    fn new() -> OwnSnapIn {
        OwnSnapIn {
            file: vec![0u8; snap::HEADER_BYTES],
            header_next: false,
        }
    }

    /// Takes whole frames (and at last the header) off `avail`: the bytes taken, and whether
    /// the file is whole. A frame past the limits is an error.
    fn take(&mut self, avail: &[u8]) -> Result<(usize, bool), String> {
        let mut pos = 0;
        loop {
            let rest = &avail[pos..];
            if self.header_next {
                let Some(h) = rest.get(..snap::HEADER_BYTES) else {
                    return Ok((pos, false));
                };
                self.file[..snap::HEADER_BYTES].copy_from_slice(h);
                return Ok((pos + snap::HEADER_BYTES, true));
            }
            let Some(h) = rest.get(..4) else {
                return Ok((pos, false));
            };
            let n = u32::from_be_bytes(h.try_into().expect("4 bytes")) as usize;
            if n == 0 {
                pos += 4;
                self.header_next = true;
                continue;
            }
            if n > SNAPSHOT_FRAME_MAX || (self.file.len() + n) as u64 > SNAPSHOT_BYTES_MAX {
                return Err(format!(
                    "a frame of {n} bytes after {} bytes: past the limit",
                    self.file.len()
                ));
            }
            let Some(body) = rest.get(4..4 + n) else {
                return Ok((pos, false));
            };
            self.file.extend_from_slice(body);
            pos += 4 + n;
        }
    }
}

/// What is being received after SNAP: Ringkeeper's format from a Ringkeeper leader, or the
/// snapshot body and signature a Java leader sends (`javafiles::BodyReader`).
enum Reading {
    Own(OwnSnapIn),
    Java(javafiles::BodyReader),
}

/// A snapshot being received after SNAP.
struct SnapIn {
    zxid: i64,
    reading: Reading,
    /// Bytes taken so far.
    bytes: u64,
}

impl SnapIn {
    fn new(zxid: i64, own: bool) -> SnapIn {
        SnapIn {
            zxid,
            reading: if own {
                Reading::Own(OwnSnapIn::new())
            } else {
                Reading::Java(javafiles::BodyReader::new(0, true))
            },
            bytes: 0,
        }
    }

    /// Takes what it can off `avail`: the bytes taken, and whether the snapshot is whole. A
    /// snapshot or a record past the limits, or a malformed one, is an error.
    fn take(&mut self, avail: &[u8]) -> Result<(usize, bool), String> {
        let (used, whole) = match &mut self.reading {
            Reading::Own(o) => o.take(avail)?,
            Reading::Java(j) => {
                let (used, whole) = j.take(avail).map_err(|e| e.to_string())?;
                if !whole && avail.len() - used > SNAPSHOT_FRAME_MAX {
                    return Err(format!(
                        "a record of more than {SNAPSHOT_FRAME_MAX} bytes after {} bytes",
                        self.bytes + used as u64
                    ));
                }
                (used, whole)
            }
        };
        self.bytes += used as u64;
        if self.bytes > SNAPSHOT_BYTES_MAX {
            return Err(format!("{} bytes: past the limit", self.bytes));
        }
        Ok((used, whole))
    }

    /// The image received: in ZooKeeper's format a fuzzy one (Java serializes its tree while
    /// txns go on), which txns through the largest zxid its nodes carry may already be in.
    fn load(self) -> Result<Image, String> {
        match self.reading {
            Reading::Own(o) => {
                let loaded = snap::load(&bytes::Bytes::from(o.file)).map_err(|e| e.to_string())?;
                Ok(Image {
                    tree: loaded.tree,
                    sessions: loaded.sessions,
                    fuzzy_through: 0,
                })
            }
            Reading::Java(j) => {
                let s = j.finish(self.zxid).map_err(|e| e.to_string())?;
                let sessions = s
                    .sessions
                    .iter()
                    .map(|&(id, timeout_ms)| SnapSession { id, timeout_ms })
                    .collect();
                Ok(Image {
                    tree: s.tree,
                    sessions,
                    fuzzy_through: s.stamped_zxid,
                })
            }
        }
    }
}

/// Loads a received snapshot on a thread of its own (the member core keeps running).
async fn load_on_thread(snap_in: SnapIn) -> Result<Image, String> {
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("rk-snap-load".into())
        .spawn(move || {
            let _ = tx.send(snap_in.load());
        })
        .map_err(|e| format!("cannot start a thread to load it: {e}"))?;
    rx.recv_async()
        .await
        .unwrap_or_else(|_| Err("the loading thread died".into()))
}

/// What the sockets report to the member core (and, on the same channel, a log read for a
/// learner's sync, done on a thread of its own).
pub enum NetEvent {
    Vote {
        from: i64,
        note: Notification,
    },
    Msg {
        from: i64,
        conn: u64,
        msg: Msg,
    },
    Closed {
        from: i64,
        conn: u64,
    },
    LogRead {
        to: i64,
        conn: u64,
        range: Option<ringkeeper_engine::zab::peer::LogSpan>,
    },
}

/// A queue of encoded notifications for one server's link (both ends, so a new link can take
/// over the queue).
type VoteQueue = (flume::Sender<Vec<u8>>, flume::Receiver<Vec<u8>>);

/// Queues `vote`, dropping the oldest one waiting when the queue is full. Each notification
/// carries the sender's whole current vote and state, so the newest are the ones that matter:
/// a server that comes back after a long time away must hear what this one thinks now, not
/// what it thought when the queue filled (ZooKeeper's send queues keep only the newest).
fn queue_vote((tx, rx): &VoteQueue, mut vote: Vec<u8>) {
    loop {
        match tx.try_send(vote) {
            Ok(()) => return,
            Err(flume::TrySendError::Full(v)) => {
                let _ = rx.try_recv();
                vote = v;
            }
            Err(flume::TrySendError::Disconnected(_)) => return,
        }
    }
}

struct QuorumConn {
    to: i64,
    tx: flume::Sender<Msg>,
    /// The [`queued_cost`] of what is in `tx`, shared with the connection's writer.
    queued: Rc<std::cell::Cell<u64>>,
    /// Dropped with this entry (never sent on): tells the connection's task it was closed, so
    /// it ends after [`CLOSE_GRACE`] even if the peer stopped reading.
    _closed: flume::Sender<()>,
}

/// How long a closed quorum connection may take to write out what was queued before it.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a queued message holds, about: its slot in the queue, plus a txn's size for PROPOSAL
/// and INFORM (what a lagging learner's queue fills with). Forwarded requests are bounded by the
/// clients' outstanding limit, and a SNAP's image is a shared tree version.
pub fn queued_cost(msg: &Msg) -> u64 {
    let slot = std::mem::size_of::<Msg>() as u64;
    match msg {
        Msg::Proposal(t) | Msg::Inform(t) => slot + ringkeeper_engine::zab::peer::txn_cost(t),
        _ => slot,
    }
}

/// A quorum connection's entry (for senders) and the side its task keeps.
fn quorum_link(to: i64) -> (QuorumConn, Link) {
    let (tx, rx) = flume::unbounded();
    let (closed, on_close) = flume::bounded(1);
    let queued = Rc::new(std::cell::Cell::new(0));
    let entry = QuorumConn {
        to,
        tx,
        queued: queued.clone(),
        _closed: closed,
    };
    (
        entry,
        Link {
            rx,
            queued,
            on_close,
        },
    )
}

/// The connection task's side of a [`QuorumConn`].
struct Link {
    rx: flume::Receiver<Msg>,
    queued: Rc<std::cell::Cell<u64>>,
    on_close: flume::Receiver<()>,
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
    /// Servers with an election link up now, and its generation.
    linked: HashMap<i64, u64>,
    conns: HashMap<u64, QuorumConn>,
    next_accepted: u64,
    quorum_packet_bytes_max: usize,
    queue_bytes_max: u64,
    /// This server's log segments, which a DIFF from the log is read from.
    log_dir: std::path::PathBuf,
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
async fn listen(host: &str, port: u16, all_ips: bool, what: &str) -> std::io::Result<TcpListener> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
    if all_ips {
        // `quorumListenOnAllIPs`, as ZooKeeper binds it: the wildcard address, without asking
        // what the server's own name resolves to (in a container it may not resolve yet).
        let ip = if host.trim_matches(['[', ']']).parse::<Ipv6Addr>().is_ok() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let addr = SocketAddr::new(ip, port);
        return crate::net::bind_retrying(addr, crate::net::BIND_RETRY_MAX)
            .await
            .map(crate::net::into_glommio)
            .map_err(|e| std::io::Error::other(format!("{what} {addr}: {e}")));
    }
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
    crate::net::bind_retrying(addr, crate::net::BIND_RETRY_MAX)
        .await
        .map(crate::net::into_glommio)
        .map_err(|e| std::io::Error::other(format!("{what} {addr}: {e}")))
}

impl Net {
    /// Binds the election and quorum ports and starts the link tasks. Fails when a port cannot
    /// be bound.
    pub async fn start(
        ensemble: &Ensemble,
        sender: Sender,
        events: flume::Sender<NetEvent>,
        quorum_packet_bytes_max: usize,
        log_dir: std::path::PathBuf,
    ) -> std::io::Result<Net> {
        let me = ensemble.me().clone();
        let all = ensemble.listen_on_all_ips;
        let election = listen(&me.host, me.election_port, all, "election port").await?;
        let quorum = listen(&me.host, me.quorum_port, all, "quorum port").await?;
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
                linked: HashMap::new(),
                conns: HashMap::new(),
                next_accepted: 0,
                quorum_packet_bytes_max,
                queue_bytes_max: ensemble.learner_queue_bytes,
                log_dir,
            })),
        };
        glommio::spawn_local(net.clone().accept_election(election)).detach();
        glommio::spawn_local(net.clone().accept_quorum(quorum)).detach();
        for s in &ensemble.servers {
            if s.id < ensemble.my_id {
                glommio::spawn_local(net.clone().dial_election(s.id)).detach();
            } else if s.id > ensemble.my_id {
                glommio::spawn_local(net.clone().knock_election(s.id)).detach();
            }
        }
        Ok(net)
    }

    // ----- election port -----

    /// Queues a vote for `to`.
    pub fn vote(&self, to: i64, note: &Notification) {
        let st = self.st.borrow();
        if let Some(queue) = st.votes.get(&to) {
            queue_vote(queue, note.encode());
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

    fn election_addr(&self, to: i64) -> String {
        let st = self.st.borrow();
        let s = &st.servers[&to];
        addr_of(&s.host, s.election_port)
    }

    /// Keeps a link to a smaller-id server up: dial, serve, and dial again when it breaks.
    async fn dial_election(self, to: i64) {
        let addr = self.election_addr(to);
        loop {
            let stream =
                crate::conn::within(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str())).await;
            if let Some(Ok(mut stream)) = stream {
                let _ = stream.set_nodelay(true);
                if stream.write_all(&self.opening()).await.is_ok() {
                    self.serve_link(to, stream, Vec::new()).await;
                }
            }
            glommio::timer::sleep(Duration::from_millis(REDIAL_MS)).await;
        }
    }

    /// Asks a larger-id server to dial: while votes wait for it and no link is up, connects and
    /// sends the opening, which a ZooKeeper server answers by closing that connection and
    /// dialing back (`QuorumCnxManager.handleConnection`). A Java server that leads or follows
    /// sends nothing of its own accord, so a smaller-id server that restarts would otherwise
    /// never hear from it. (A Ringkeeper server dials smaller ids anyway.)
    async fn knock_election(self, to: i64) {
        let addr = self.election_addr(to);
        loop {
            glommio::timer::sleep(Duration::from_millis(REDIAL_MS)).await;
            let waiting = {
                let st = self.st.borrow();
                !st.linked.contains_key(&to) && !st.votes[&to].1.is_empty()
            };
            if !waiting {
                continue;
            }
            let stream =
                crate::conn::within(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str())).await;
            if let Some(Ok(mut stream)) = stream {
                let _ = stream.write_all(&self.opening()).await;
                // It closes this connection; so does this side, at once.
                let _ = stream.close().await;
            }
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
        // Notifications sent right behind the opening: the whole ones are taken now, and what
        // is left of a partial one starts the link's buffer (dropping it would misalign every
        // frame after it, and the link would break).
        if !self.read_votes(sid, &mut buf) {
            return;
        }
        self.serve_link(sid, stream, buf).await;
    }

    /// Carries votes both ways on a link until it breaks or a newer link to `peer` replaces it.
    /// `buf` holds bytes already read from it (the start of a notification).
    async fn serve_link(&self, peer: i64, stream: TcpStream, buf: Vec<u8>) {
        let generation = {
            let mut st = self.st.borrow_mut();
            let g = st.link_gen.entry(peer).or_insert(0);
            *g += 1;
            *g
        };
        self.st.borrow_mut().linked.insert(peer, generation);
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
            let mut buf = buf;
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
        {
            let mut st = self.st.borrow_mut();
            if st.linked.get(&peer) == Some(&generation) {
                st.linked.remove(&peer);
            }
        }
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
            let cost = queued_cost(&msg);
            let room = c.queued.get() + cost <= st.queue_bytes_max;
            if room && c.tx.send(msg).is_ok() {
                c.queued.set(c.queued.get() + cost);
            } else {
                tracing::warn!(
                    server = to,
                    messages = c.tx.len(),
                    bytes = c.queued.get(),
                    "quorum connection's queue is full; closing it"
                );
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
        let (entry, link) = quorum_link(to);
        entry.queued.set(queued_cost(&msg));
        let _ = entry.tx.send(msg);
        st.conns.insert(conn, entry);
        drop(st);
        glommio::spawn_local(self.clone().dial_quorum(to, conn, link)).detach();
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

    async fn dial_quorum(self, to: i64, conn: u64, link: Link) {
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
        self.serve_quorum(Some(to), conn, stream, link).await;
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
            // Whom it is from is known at its first packet.
            let (entry, link) = quorum_link(-1);
            self.st.borrow_mut().conns.insert(conn, entry);
            glommio::spawn_local(self.clone().serve_quorum(None, conn, stream, link)).detach();
        }
    }

    /// Carries one quorum connection until either side ends it.
    async fn serve_quorum(self, peer: Option<i64>, conn: u64, stream: TcpStream, link: Link) {
        let Link {
            rx,
            queued,
            on_close,
        } = link;
        let from = Rc::new(std::cell::Cell::new(peer));
        // The other end is a Ringkeeper server (its LearnerInfo or LEADERINFO said so): SNAP
        // carries Ringkeeper's snapshot format.
        let own_snap = Rc::new(std::cell::Cell::new(false));
        let (mut rd, mut wr) = futures_lite::io::split(stream);
        let sender = self.st.borrow().sender.clone();
        let writer = async {
            let mut out = Vec::new();
            while let Ok(first) = rx.recv_async().await {
                // Everything queued goes out in one write (the ZAB pipeline's proposals, acks
                // and commits come in bursts), up to a SNAP, whose snapshot follows at once, or
                // a DIFF's txns from the log, which are read as they go; what was queued after
                // either waits for it.
                let mut msg = Some(first);
                let mut stream = None;
                while let Some(m) = msg.take().or_else(|| {
                    if out.len() < WRITE_BATCH_BYTES && stream.is_none() {
                        rx.try_recv().ok()
                    } else {
                        None
                    }
                }) {
                    queued.set(queued.get().saturating_sub(queued_cost(&m)));
                    if let Msg::FromLog { after, through } = m {
                        stream = Some(Streamed::Log { after, through });
                        continue;
                    }
                    if encode_into(&m, &sender, &mut out).is_err() {
                        return;
                    }
                    if let Msg::Snap { zxid, image } = m {
                        stream = Some(Streamed::Snap { zxid, image });
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                let started = std::time::Instant::now();
                match stream {
                    None => {}
                    Some(Streamed::Snap { zxid, image }) => {
                        let nodes = image.tree.node_count();
                        let own = own_snap.get();
                        let pieces = encode_on_thread(image, own);
                        let Some(bytes) = send_pieces(&mut wr, pieces).await else {
                            tracing::warn!(learner = ?from.get(), "sending a snapshot failed; closing");
                            return;
                        };
                        tracing::info!(
                            learner = ?from.get(),
                            zxid = format_args!("{zxid:#x}"),
                            nodes,
                            bytes,
                            format = if own { "ringkeeper" } else { "zookeeper" },
                            ms = started.elapsed().as_millis() as u64,
                            "sent the snapshot for SNAP"
                        );
                    }
                    Some(Streamed::Log { after, through }) => {
                        let dir = self.st.borrow().log_dir.clone();
                        let pieces = read_log_on_thread(dir, after, through, sender.clone());
                        let Some(bytes) = send_pieces(&mut wr, pieces).await else {
                            tracing::warn!(learner = ?from.get(), "sending a DIFF's txns from the log failed; closing (the learner syncs again)");
                            return;
                        };
                        tracing::info!(
                            learner = ?from.get(),
                            after = format_args!("{after:#x}"),
                            through = format_args!("{through:#x}"),
                            bytes,
                            ms = started.elapsed().as_millis() as u64,
                            "sent a DIFF's txns from the log"
                        );
                    }
                }
            }
        };
        let max = self.st.borrow().quorum_packet_bytes_max;
        let reader = async {
            // Bytes read and not yet taken; whole items are taken from `pos` on, and the taken
            // ones dropped once per read.
            let mut buf: Vec<u8> = Vec::new();
            let mut pos = 0usize;
            let mut chunk = vec![0u8; 64 * 1024];
            let mut snap_in: Option<SnapIn> = None;
            loop {
                // Take every whole item off the buffer.
                loop {
                    let avail = &buf[pos..];
                    if let Some(s) = snap_in.as_mut() {
                        let (used, whole) = match s.take(avail) {
                            Ok(t) => t,
                            Err(e) => {
                                tracing::error!(error = %e, "the leader's snapshot is too big; closing");
                                return;
                            }
                        };
                        pos += used;
                        if !whole {
                            break;
                        }
                        let s = snap_in.take().expect("a snapshot being read");
                        let (zxid, received) = (s.zxid, s.bytes);
                        let started = std::time::Instant::now();
                        let image = match load_on_thread(s).await {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(error = %e, "the leader's snapshot does not load; closing in a second");
                                // The same leader would send the same snapshot at once: without
                                // a pause that is a loop a thousand times a second.
                                glommio::timer::sleep(SNAP_RETRY_PAUSE).await;
                                return;
                            }
                        };
                        tracing::info!(
                            zxid = format_args!("{zxid:#x}"),
                            bytes = received,
                            format = if own_snap.get() {
                                "ringkeeper"
                            } else {
                                "zookeeper"
                            },
                            load_ms = started.elapsed().as_millis() as u64,
                            "received the leader's snapshot"
                        );
                        let Some(f) = from.get() else { return };
                        self.report(NetEvent::Msg {
                            from: f,
                            conn,
                            msg: Msg::Snap { zxid, image },
                        })
                        .await;
                        continue;
                    }
                    let n = match packet_len(avail, max) {
                        Ok(Some(n)) => n,
                        Ok(None) => break,
                        Err(_) => return,
                    };
                    let Ok(p) = QuorumPacket::decode(&avail[..n]) else {
                        return;
                    };
                    pos += n;
                    if p.kind == packet::SNAP {
                        if peer.is_none() {
                            return; // only a leader this server dialed sends a snapshot
                        }
                        snap_in = Some(SnapIn::new(p.zxid, own_snap.get()));
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
                    if decoded.own_snap {
                        own_snap.set(true);
                    }
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
                buf.drain(..pos);
                pos = 0;
                match rd.read(&mut chunk).await {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
        };
        let closed = async {
            // Closed by its owner (`Net::close`, or its queue overflowed): what was queued gets
            // a short while to go out, then the connection ends even if the peer stopped
            // reading (a stuck writer would hold the queue, and a SNAP's tree version, forever).
            let _ = on_close.recv_async().await;
            glommio::timer::sleep(CLOSE_GRACE).await;
        };
        futures_lite::future::or(futures_lite::future::or(writer, reader), closed).await;
        let _ = crate::conn::within(CLOSE_GRACE, wr.close()).await;
        let removed = self.st.borrow_mut().conns.remove(&conn).is_some();
        if let (true, Some(f)) = (removed, from.get()) {
            self.report(NetEvent::Closed { from: f, conn }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkeeper_engine::snap::SnapSession;
    use ringkeeper_engine::tree::DataTree;

    /// A tree of `n` nodes (under a few parents) over several snapshot chunks, and sessions.
    fn image(n: usize) -> Image {
        use ringkeeper_engine::proto::opcode as op;
        use ringkeeper_engine::proto::Acl;
        use ringkeeper_engine::txn::{Txn, TxnOp};
        let acl = std::sync::Arc::new(Acl::open_unsafe());
        let mut tree = DataTree::new();
        let mut zxid = 0;
        let mut create = |tree: &mut DataTree, path: String, data: String| {
            zxid += 1;
            let parent = path
                .rsplit_once('/')
                .map(|(p, _)| if p.is_empty() { "/" } else { p })
                .unwrap();
            let parent_cversion = tree.get(parent).expect("parent").cversion + 1;
            let txn = Txn {
                zxid,
                time_ms: 1_000 + zxid,
                session_id: 7,
                cxid: zxid as i32,
                op: TxnOp::Create {
                    path,
                    data: Some(bytes::Bytes::from(data)),
                    acl: acl.clone(),
                    ephemeral_owner: 0,
                    parent_cversion,
                    opcode: op::CREATE,
                },
            };
            tree.apply(&txn, &mut Vec::new());
        };
        for p in 0..7 {
            create(&mut tree, format!("/p{p}"), String::new());
        }
        for i in 0..n {
            create(&mut tree, format!("/p{}/n{i}", i % 7), format!("d{i}"));
        }
        let sessions = vec![SnapSession {
            id: 7,
            timeout_ms: 4000,
        }];
        Image {
            tree,
            sessions,
            fuzzy_through: 0,
        }
    }

    /// What SNAP streams, in either format, cut at arbitrary points as a socket cuts it, comes
    /// back whole: the same tree (node for node) and sessions.
    #[test]
    fn a_streamed_snapshot_arrives_whole_through_any_cuts() {
        let img = image(3 * snap::CHUNK_NODES_MAX + 100);
        for own in [true, false] {
            let wire = streamed(&img, own);
            let loaded = receive(&wire, img.tree.last_zxid(), own)
                .load()
                .expect("loads");
            assert_eq!(loaded.tree.digest(), img.tree.digest(), "own format: {own}");
            assert_eq!(loaded.tree.node_count(), img.tree.node_count());
            assert_eq!(loaded.sessions, img.sessions);
            // Java's snapshot is fuzzy: txns through the newest zxid a node carries may be in it.
            let newest = if own { 0 } else { img.tree.last_zxid() };
            assert_eq!(loaded.fuzzy_through, newest);
        }
    }

    fn streamed(img: &Image, own: bool) -> Vec<u8> {
        let mut wire = Vec::new();
        let sent = futures_lite::future::block_on(send_pieces(
            &mut wire,
            encode_on_thread(img.clone(), own),
        ))
        .expect("streamed");
        assert_eq!(sent, wire.len() as u64);
        wire
    }

    /// Feeds `wire` to a receiver in random cuts until it says the snapshot is whole.
    fn receive(wire: &[u8], zxid: i64, own: bool) -> SnapIn {
        let mut rng = 17u64;
        let mut inn = SnapIn::new(zxid, own);
        let (mut buf, mut pos, mut fed) = (Vec::new(), 0usize, 0usize);
        let mut whole = false;
        while !whole {
            assert!(fed < wire.len(), "ran out of bytes before the header");
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let cut = ((rng >> 33) as usize % 70_000 + 1).min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..fed + cut]);
            fed += cut;
            let (used, w) = inn.take(&buf[pos..]).unwrap();
            pos += used;
            whole = w;
        }
        assert_eq!(pos, wire.len(), "every byte taken, none left over");
        inn
    }

    #[test]
    fn a_full_vote_queue_keeps_the_newest_votes() {
        let queue: VoteQueue = flume::bounded(VOTE_QUEUE_MAX);
        for n in 0..3 * VOTE_QUEUE_MAX as u8 {
            queue_vote(&queue, vec![n]);
        }
        let kept: Vec<u8> = queue.1.try_iter().flatten().collect();
        let first = 2 * VOTE_QUEUE_MAX as u8;
        assert_eq!(kept, (first..3 * VOTE_QUEUE_MAX as u8).collect::<Vec<_>>());
    }

    /// A frame longer than the limit is refused before it is read.
    #[test]
    fn an_oversized_frame_is_refused() {
        let mut inn = SnapIn::new(1, true);
        let mut wire = ((SNAPSHOT_FRAME_MAX + 1) as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&[0u8; 16]);
        assert!(inn.take(&wire).is_err());
    }

    /// ZooKeeper's format ends with Java's signature; another string there is refused, naming
    /// its offset.
    #[test]
    fn a_java_snapshot_without_its_signature_is_refused() {
        let img = image(10);
        let mut wire = streamed(&img, false);
        let n = wire.len();
        wire[n - 1] = b'X'; // "BenWasHerX"
        let mut inn = SnapIn::new(img.tree.last_zxid(), false);
        let e = inn.take(&wire).unwrap_err();
        assert!(
            e.contains("signature") && e.contains(&format!("offset {}", n - 14)),
            "{e}"
        );
    }
}
