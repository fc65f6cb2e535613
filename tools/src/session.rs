//! A ZooKeeper session for interactive tools (`ringkeeper cli`): requests one at a time from
//! the caller's thread, replies and watch notifications read by a thread of its own, pings
//! while idle, and on a lost connection a reconnect to the next server of the connect string
//! that resumes the session and re-registers its watches (setWatches2), as ZooKeeper's own
//! client does. What happens to the session comes out as [`Event`]s.

use bytes::Bytes;
use ringkeeper_engine::proto::{
    opcode as op, ConnectRequest, ConnectResponse, ErrorCode, Reader, Request, Response,
    SetWatches, Writer,
};
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What a session reports besides replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A watch fired: ZooKeeper's event type, and the path.
    Watch { kind: i32, path: String, zxid: i64 },
    /// The session's state changed.
    State(State),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected to `server` (index into the connect string).
    Connected,
    Disconnected,
    Expired,
    Closed,
    AuthFailed,
}

impl State {
    /// The name ZooKeeper's `KeeperState`/`States` give it.
    pub fn keeper_state(self) -> &'static str {
        match self {
            State::Connected => "SyncConnected",
            State::Disconnected => "Disconnected",
            State::Expired => "Expired",
            State::Closed => "Closed",
            State::AuthFailed => "AuthFailed",
        }
    }
}

/// Why a request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// The connection went away (or none is up): ZooKeeper's CONNECTIONLOSS.
    ConnectionLoss,
    /// The session expired or was closed.
    SessionGone,
}

/// The watches this session holds, by kind, for re-registration after a reconnect.
#[derive(Default, Debug, Clone)]
pub struct Watches {
    pub data: BTreeSet<String>,
    pub exist: BTreeSet<String>,
    pub child: BTreeSet<String>,
    pub persistent: BTreeSet<String>,
    pub persistent_recursive: BTreeSet<String>,
}

struct Link {
    stream: Option<TcpStream>,
    server: usize,
    session_id: i64,
    passwd: Bytes,
    timeout_ms: i32,
    last_zxid: i64,
    next_xid: i32,
    /// The request waiting for its reply: (xid, opcode, where the reply goes, the watch it
    /// asks for).
    waiting: Option<(i32, i32, mpsc::Sender<Reply>, Option<WatchAsked>)>,
    state: State,
    /// Bumped on every new connection, so a reader thread of an old one stops.
    generation: u64,
    /// Rounds through the whole connect string that found no server.
    rounds_failed: u64,
    /// When a frame last went to the server (pings keep the session alive when idle).
    last_sent: std::time::Instant,
    /// Set once closeSession is on its way: the server's closing the socket is no loss.
    closing: bool,
    /// Credentials added with `auth`, sent again on every new connection, as ZooKeeper's
    /// client does.
    auths: Vec<(String, Bytes)>,
}

type Reply = Result<(i64, Result<Response, ErrorCode>), CallError>;

pub struct Session {
    hosts: Vec<String>,
    link: Mutex<Link>,
    changed: Condvar,
    events: mpsc::Sender<Event>,
    pub watches: Mutex<Watches>,
    read_only: bool,
    requested_timeout_ms: i32,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Session {
    /// Starts connecting to `connect_string` (`host:port,host:port`); events (the first
    /// `Connected` included) arrive on the returned receiver.
    pub fn start(
        connect_string: &str,
        timeout_ms: i32,
        read_only: bool,
    ) -> (Arc<Session>, mpsc::Receiver<Event>) {
        let hosts = connect_string
            .split(',')
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        let (tx, rx) = mpsc::channel();
        let s = Arc::new(Session {
            hosts,
            link: Mutex::new(Link {
                stream: None,
                server: 0,
                session_id: 0,
                passwd: Bytes::from_static(&[0; 16]),
                timeout_ms,
                last_zxid: 0,
                next_xid: 0,
                waiting: None,
                state: State::Disconnected,
                generation: 0,
                rounds_failed: 0,
                last_sent: std::time::Instant::now(),
                closing: false,
                auths: Vec::new(),
            }),
            changed: Condvar::new(),
            events: tx,
            watches: Mutex::new(Watches::default()),
            read_only,
            requested_timeout_ms: timeout_ms,
        });
        let me = s.clone();
        std::thread::spawn(move || me.keep_connected());
        let me = s.clone();
        std::thread::spawn(move || me.ping_while_idle());
        (s, rx)
    }

    pub fn state(&self) -> State {
        self.link.lock().unwrap().state
    }

    pub fn session_id(&self) -> i64 {
        self.link.lock().unwrap().session_id
    }

    /// The server of the connect string in use (or last used).
    pub fn server(&self) -> String {
        let l = self.link.lock().unwrap();
        self.hosts.get(l.server).cloned().unwrap_or_default()
    }

    /// Waits until connected, until every server of the connect string was tried and none
    /// answered, or until `wait` passes; whether connected.
    pub fn wait_connected(&self, wait: Duration) -> bool {
        let l = self.link.lock().unwrap();
        let rounds = l.rounds_failed;
        let (l, _) = self
            .changed
            .wait_timeout_while(l, wait, |l| {
                l.state == State::Disconnected
                    && !self.hosts.is_empty()
                    && l.rounds_failed == rounds
            })
            .unwrap();
        l.state == State::Connected
    }

    /// Sends `req` and waits for its reply (zxid, and the response or the server's error).
    pub fn call(&self, req: &Request) -> Result<(i64, Result<Response, ErrorCode>), CallError> {
        let opcode = req.opcode();
        let (tx, rx) = mpsc::channel();
        let wait = {
            let mut l = self.link.lock().unwrap();
            match l.state {
                State::Connected => {}
                State::Disconnected => return Err(CallError::ConnectionLoss),
                _ => return Err(CallError::SessionGone),
            }
            if let Request::Auth { scheme, auth, .. } = req {
                l.auths.push((scheme.clone(), auth.clone()));
            }
            let xid = match opcode {
                op::AUTH => op::XID_AUTH,
                _ => {
                    l.next_xid += 1;
                    l.next_xid
                }
            };
            let mut frame = vec![0u8; 4];
            {
                let mut w = Writer::new(&mut frame);
                w.int(xid).int(opcode);
                req.encode(&mut w);
            }
            let len = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&len.to_be_bytes());
            l.waiting = Some((xid, opcode, tx, WatchAsked::of(req)));
            let sent = l.stream.as_mut().map(|s| s.write_all(&frame));
            l.last_sent = std::time::Instant::now();
            if !matches!(sent, Some(Ok(()))) {
                l.waiting = None;
                return Err(CallError::ConnectionLoss);
            }
            Duration::from_millis(l.timeout_ms.max(1000) as u64 * 2)
        };
        rx.recv_timeout(wait)
            .unwrap_or(Err(CallError::ConnectionLoss))
    }

    /// Closes the session (closeSession, then the socket) and reports `Closed`; no reconnect
    /// follows.
    pub fn close(&self) {
        self.end();
        let _ = self.events.send(Event::State(State::Closed));
    }

    /// Closes the session without reporting it (a one-shot command's exit).
    pub fn end(&self) {
        self.link.lock().unwrap().closing = true;
        if self.state() == State::Connected {
            let _ = self.call(&Request::CloseSession);
        }
        let mut l = self.link.lock().unwrap();
        if let Some(s) = l.stream.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        l.state = State::Closed;
        l.generation += 1;
        self.changed.notify_all();
    }

    fn set_state(&self, l: &mut Link, state: State) {
        if l.state != state {
            l.state = state;
            let _ = self.events.send(Event::State(state));
        }
        self.changed.notify_all();
    }

    /// Connects, reads until the connection fails, and connects again, until the session
    /// expires or is closed.
    fn keep_connected(self: Arc<Self>) {
        let mut next = 0usize;
        loop {
            if matches!(
                self.state(),
                State::Closed | State::Expired | State::AuthFailed
            ) || self.link.lock().unwrap().closing
            {
                return;
            }
            if self.hosts.is_empty() {
                return;
            }
            let server = next % self.hosts.len();
            next += 1;
            match self.open(server) {
                Ok((stream, generation)) => self.read_until_lost(stream, generation),
                Err(Opened::Expired) => {
                    let mut l = self.link.lock().unwrap();
                    self.set_state(&mut l, State::Expired);
                    return;
                }
                Err(Opened::Failed) => {
                    let round_over = next.is_multiple_of(self.hosts.len());
                    if round_over {
                        let mut l = self.link.lock().unwrap();
                        l.rounds_failed += 1;
                        self.changed.notify_all();
                    }
                    std::thread::sleep(Duration::from_millis(if round_over { 1000 } else { 10 }));
                }
            }
        }
    }

    fn open(&self, server: usize) -> Result<(TcpStream, u64), Opened> {
        let addr = self.hosts[server]
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or(Opened::Failed)?;
        let mut stream =
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|_| Opened::Failed)?;
        let _ = stream.set_nodelay(true);
        let (session_id, passwd, last_zxid) = {
            let l = self.link.lock().unwrap();
            (l.session_id, l.passwd.clone(), l.last_zxid)
        };
        let mut body = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: last_zxid,
            timeout_ms: self.requested_timeout_ms,
            session_id,
            passwd,
            read_only: Some(self.read_only),
        }
        .encode(&mut body);
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        stream
            .set_read_timeout(Some(CONNECT_TIMEOUT))
            .map_err(|_| Opened::Failed)?;
        stream.write_all(&frame).map_err(|_| Opened::Failed)?;
        let reply = read_frame(&mut stream).map_err(|_| Opened::Failed)?;
        let resp = ConnectResponse::decode(&reply).map_err(|_| Opened::Failed)?;
        if resp.timeout_ms <= 0 {
            return Err(Opened::Expired);
        }
        // A server that says nothing for two thirds of the session timeout (pings go out every
        // third) is gone: the connection is dropped and the next server tried, as ZooKeeper's
        // client does.
        let silent = Duration::from_millis((resp.timeout_ms as u64 * 2 / 3).max(100));
        let _ = stream.set_read_timeout(Some(silent));
        let mut l = self.link.lock().unwrap();
        if l.closing {
            return Err(Opened::Failed);
        }
        l.session_id = resp.session_id;
        l.passwd = resp.passwd;
        l.timeout_ms = resp.timeout_ms;
        l.server = server;
        l.generation += 1;
        let generation = l.generation;
        l.stream = Some(stream.try_clone().map_err(|_| Opened::Failed)?);
        // Watches set before the connection was lost, registered again from the last zxid seen.
        let w = self.watches.lock().unwrap().clone();
        if session_id != 0 && !is_empty(&w) {
            let req = Request::SetWatches(SetWatches {
                relative_zxid: l.last_zxid,
                data: w.data.into_iter().collect(),
                exist: w.exist.into_iter().collect(),
                child: w.child.into_iter().collect(),
                persistent: w.persistent.into_iter().collect(),
                persistent_recursive: w.persistent_recursive.into_iter().collect(),
            });
            let _ = stream.write_all(&frame_of(op::XID_SET_WATCHES, &req));
        }
        for (scheme, auth) in l.auths.clone() {
            let req = Request::Auth {
                kind: 0,
                scheme,
                auth,
            };
            let _ = stream.write_all(&frame_of(op::XID_AUTH, &req));
        }
        self.set_state(&mut l, State::Connected);
        Ok((stream, generation))
    }

    fn read_until_lost(&self, mut stream: TcpStream, generation: u64) {
        while let Ok(frame) = read_frame(&mut stream) {
            if !self.take_frame(&frame, generation) {
                break;
            }
        }
        let mut l = self.link.lock().unwrap();
        if l.generation != generation {
            return; // replaced already
        }
        if let Some((_, _, tx, _)) = l.waiting.take() {
            let _ = tx.send(Err(CallError::ConnectionLoss));
        }
        l.stream = None;
        if l.closing || matches!(l.state, State::AuthFailed | State::Expired | State::Closed) {
            return;
        }
        self.set_state(&mut l, State::Disconnected);
    }

    /// Handles one frame; false when the connection must be dropped.
    fn take_frame(&self, frame: &[u8], generation: u64) -> bool {
        let mut r = Reader::new(frame);
        let (Ok(xid), Ok(zxid), Ok(err)) = (r.int("xid"), r.long("zxid"), r.int("err")) else {
            return false;
        };
        let body = &frame[r.position()..];
        let mut l = self.link.lock().unwrap();
        if l.generation != generation {
            return false;
        }
        if zxid > 0 {
            l.last_zxid = l.last_zxid.max(zxid);
        }
        match xid {
            op::XID_NOTIFICATION => {
                let mut r = Reader::new(body);
                let (Ok(kind), Ok(_state), Ok(path)) =
                    (r.int("type"), r.int("state"), r.ustring("path"))
                else {
                    return false;
                };
                drop(l);
                self.forget_fired(kind, &path);
                let _ = self.events.send(Event::Watch { kind, path, zxid });
            }
            op::XID_PING | op::XID_SET_WATCHES => {}
            // The answer to credentials sent again on a new connection.
            op::XID_AUTH if !matches!(l.waiting, Some((op::XID_AUTH, _, _, _))) => {
                if err == ErrorCode::AuthFailed.code() {
                    self.set_state(&mut l, State::AuthFailed);
                    return false;
                }
            }
            _ => {
                let Some((want, opcode, tx, watch)) = l.waiting.take() else {
                    return false;
                };
                if xid != want {
                    return false;
                }
                if xid == op::XID_AUTH && err == ErrorCode::AuthFailed.code() {
                    self.set_state(&mut l, State::AuthFailed);
                }
                let reply = if err == 0 {
                    match Response::decode(opcode, body) {
                        Ok(resp) => Ok(resp),
                        Err(_) => return false,
                    }
                } else {
                    Err(ErrorCode::from_code(err).unwrap_or(ErrorCode::SystemError))
                };
                // The watch is on the books before the reply is handed over, so an event that
                // fires right after finds it there (and forgets it).
                if let Some(w) = watch {
                    w.record(&mut self.watches.lock().unwrap(), &reply);
                }
                let _ = tx.send(Ok((zxid, reply)));
            }
        }
        true
    }

    /// One-shot watches end when they fire.
    fn forget_fired(&self, kind: i32, path: &str) {
        use ringkeeper_engine::proto::event;
        let mut w = self.watches.lock().unwrap();
        match kind {
            event::NODE_CREATED | event::NODE_DATA_CHANGED => {
                w.data.remove(path);
                w.exist.remove(path);
            }
            event::NODE_DELETED => {
                w.data.remove(path);
                w.exist.remove(path);
                w.child.remove(path);
            }
            event::NODE_CHILDREN_CHANGED => {
                w.child.remove(path);
            }
            _ => {}
        }
    }

    /// Sends a ping whenever nothing went to the server for a third of the negotiated
    /// session timeout, as ZooKeeper's client does.
    fn ping_while_idle(self: Arc<Self>) {
        const PING: [u8; 12] = {
            let mut f = [0u8; 12];
            let len = 8i32.to_be_bytes();
            let xid = op::XID_PING.to_be_bytes();
            let code = op::PING.to_be_bytes();
            let mut i = 0;
            while i < 4 {
                f[i] = len[i];
                f[4 + i] = xid[i];
                f[8 + i] = code[i];
                i += 1;
            }
            f
        };
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let mut l = self.link.lock().unwrap();
            match l.state {
                State::Closed | State::Expired | State::AuthFailed => return,
                State::Disconnected => continue,
                State::Connected => {}
            }
            let idle = Duration::from_millis((l.timeout_ms / 3).max(100) as u64);
            if l.last_sent.elapsed() < idle {
                continue;
            }
            l.last_sent = std::time::Instant::now();
            if let Some(s) = l.stream.as_mut() {
                let _ = s.write_all(&PING);
            }
        }
    }
}

/// A watch a request sets, recorded when its reply comes (the server sets it then).
struct WatchAsked {
    path: String,
    kind: WatchKind,
}

enum WatchKind {
    /// getData: a data watch.
    Data,
    /// exists: a data watch if the node is there, else an exist watch.
    Exists,
    Child,
    Persistent,
    PersistentRecursive,
}

impl WatchAsked {
    fn of(req: &Request) -> Option<WatchAsked> {
        let (path, kind) = match req {
            Request::GetData { path, watch: true } => (path, WatchKind::Data),
            Request::Exists { path, watch: true } => (path, WatchKind::Exists),
            Request::GetChildren { path, watch: true }
            | Request::GetChildren2 { path, watch: true } => (path, WatchKind::Child),
            Request::AddWatch { path, mode: 0 } => (path, WatchKind::Persistent),
            Request::AddWatch { path, mode: 1 } => (path, WatchKind::PersistentRecursive),
            _ => return None,
        };
        Some(WatchAsked {
            path: path.clone(),
            kind,
        })
    }

    fn record(self, w: &mut Watches, reply: &Result<Response, ErrorCode>) {
        let set = match (self.kind, reply) {
            (WatchKind::Exists, Err(ErrorCode::NoNode)) => &mut w.exist,
            (_, Err(_)) => return,
            (WatchKind::Data | WatchKind::Exists, Ok(_)) => &mut w.data,
            (WatchKind::Child, Ok(_)) => &mut w.child,
            (WatchKind::Persistent, Ok(_)) => &mut w.persistent,
            (WatchKind::PersistentRecursive, Ok(_)) => &mut w.persistent_recursive,
        };
        set.insert(self.path);
    }
}

enum Opened {
    Failed,
    Expired,
}

/// A request frame: length, xid, the request's own opcode, its record.
fn frame_of(xid: i32, req: &Request) -> Vec<u8> {
    let mut frame = vec![0u8; 4];
    {
        let mut w = Writer::new(&mut frame);
        w.int(xid).int(req.opcode());
        req.encode(&mut w);
    }
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame
}

fn is_empty(w: &Watches) -> bool {
    w.data.is_empty()
        && w.exist.is_empty()
        && w.child.is_empty()
        && w.persistent.is_empty()
        && w.persistent_recursive.is_empty()
}

fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad frame length",
        ));
    }
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_recorded_as_the_server_sets_them() {
        let mut w = Watches::default();
        let ok = Ok(Response::Empty);
        let exists = |watch| Request::Exists {
            path: "/e".into(),
            watch,
        };
        assert!(WatchAsked::of(&exists(false)).is_none());
        WatchAsked::of(&exists(true))
            .unwrap()
            .record(&mut w, &Err(ErrorCode::NoNode));
        assert!(w.exist.contains("/e") && !w.data.contains("/e"));
        WatchAsked::of(&exists(true)).unwrap().record(&mut w, &ok);
        assert!(w.data.contains("/e"));
        let get = Request::GetData {
            path: "/g".into(),
            watch: true,
        };
        WatchAsked::of(&get)
            .unwrap()
            .record(&mut w, &Err(ErrorCode::NoAuth));
        assert!(!w.data.contains("/g"), "a refused read sets no watch");
        let add = Request::AddWatch {
            path: "/r".into(),
            mode: 1,
        };
        WatchAsked::of(&add).unwrap().record(&mut w, &ok);
        assert!(w.persistent_recursive.contains("/r"));
        let ls = Request::GetChildren2 {
            path: "/c".into(),
            watch: true,
        };
        WatchAsked::of(&ls).unwrap().record(&mut w, &ok);
        assert!(w.child.contains("/c"));
    }
}
