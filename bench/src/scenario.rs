//! Workloads that are not a stream of independent requests: each step waits on replies or on
//! events, so every session runs one request at a time.
//!
//! - `session-storm`: open a session, close it, again; latency is connect-to-close-reply.
//! - `lock`: ZooKeeper's lock recipe (ephemeral-sequential node, wait on the predecessor) with
//!   every session contending for one lock; latency is from creating the lock node to holding
//!   the lock.
//! - `watch`: one writer, every other session watches one znode (exists watch, re-armed after each
//!   event); latency is from the moment the writer sends a write to each watcher's receipt of its
//!   event. (Not from the write's acknowledgement: a server sends the events of a txn before its
//!   reply, so on a standalone server an event never comes after the ack.)

use crate::control::Control;
use crate::latency::Recorder;
use crate::wire::{connect_request, encode_request};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringkeeper_engine::proto::{
    frame, opcode as op, Acl, ConnectResponse, CreateRequest, Reader, Request,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// A watch event as it arrived: (event type, path, arrival in ns since the phase started).
pub type Event = (i32, String, u64);

/// A session that sends one request at a time and keeps notifications aside.
pub struct SeqConn {
    rd: ReadHalf<TcpStream>,
    wr: WriteHalf<TcpStream>,
    buf: Vec<u8>,
    chunk: Vec<u8>,
    xid: i32,
    pub events: VecDeque<Event>,
}

impl SeqConn {
    pub async fn open(host: &str, timeout_ms: i32) -> Result<SeqConn, String> {
        let stream = TcpStream::connect(host)
            .await
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = futures_lite::io::split(stream);
        wr.write_all(&connect_request(timeout_ms))
            .await
            .map_err(|e| e.to_string())?;
        let mut c = SeqConn {
            rd,
            wr,
            buf: Vec::new(),
            chunk: vec![0; 64 << 10],
            xid: 0,
            events: VecDeque::new(),
        };
        let hello = c
            .frame()
            .await
            .ok_or_else(|| format!("{host} closed during connect"))?;
        let resp =
            ConnectResponse::decode(&hello).map_err(|e| format!("bad connect response: {e}"))?;
        if resp.session_id == 0 {
            return Err(format!("{host} refused the session"));
        }
        Ok(c)
    }

    async fn frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Ok(Some((start, end))) = frame::next_frame(&self.buf, 64 << 20) {
                let f = self.buf[start..end].to_vec();
                self.buf.drain(..end);
                return Some(f);
            }
            match self.rd.read(&mut self.chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
            }
        }
    }

    /// Sends `req` and returns (error code, reply body); notifications met on the way are kept.
    pub async fn call(
        &mut self,
        req: &Request,
        control: &Control,
    ) -> Result<(i32, Vec<u8>), String> {
        self.xid += 1;
        let mut out = Vec::new();
        encode_request(&mut out, self.xid, req);
        self.wr.write_all(&out).await.map_err(|e| e.to_string())?;
        loop {
            let f = self.frame().await.ok_or("connection closed")?;
            let mut r = Reader::new(&f);
            let (xid, _zxid, err) = (
                r.int("xid").map_err(|e| e.to_string())?,
                r.long("zxid").map_err(|e| e.to_string())?,
                r.int("err").map_err(|e| e.to_string())?,
            );
            if xid == -1 {
                let event = (
                    r.int("type").unwrap_or(0),
                    r.ustring("path").unwrap_or_default(),
                    control.now_ns(),
                );
                r.int("state").ok();
                self.events.push_back(event);
                continue;
            }
            if xid == self.xid {
                return Ok((err, f[r.position()..].to_vec()));
            }
        }
    }

    /// The next notification, waiting at most until `deadline_ns`.
    pub async fn next_event(&mut self, control: &Control, deadline_ns: u64) -> Option<Event> {
        let wait = Duration::from_nanos(deadline_ns.saturating_sub(control.now_ns()));
        self.next_event_before(control, glommio::timer::sleep(wait))
            .await
    }

    /// The next notification, waiting at most until `grace` after the phase stopped (on its clock
    /// or on its operation budget).
    pub async fn next_event_or_stop(
        &mut self,
        control: &Control,
        grace: Duration,
    ) -> Option<Event> {
        let give_up = async {
            while !control.stopped() {
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            glommio::timer::sleep(grace).await;
        };
        self.next_event_before(control, give_up).await
    }

    /// The next notification, or `None` if `give_up` finishes first or the connection fails.
    async fn next_event_before<T>(
        &mut self,
        control: &Control,
        give_up: impl std::future::Future<Output = T>,
    ) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        let got = futures_lite::future::or(async { self.frame().await.map(Some) }, async {
            give_up.await;
            Some(None)
        })
        .await;
        let f = got??;
        let mut r = Reader::new(&f);
        let (xid, _zxid, _err) = (r.int("xid").ok()?, r.long("zxid").ok()?, r.int("err").ok()?);
        if xid != -1 {
            return None;
        }
        let event_type = r.int("type").ok()?;
        let _state = r.int("state").ok()?;
        Some((event_type, r.ustring("path").ok()?, control.now_ns()))
    }

    pub async fn close(mut self, control: &Control) {
        let _ = self.call(&Request::CloseSession, control).await;
    }
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create(CreateRequest {
        opcode: op::CREATE,
        path: path.into(),
        data: Default::default(),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    })
}

fn measured(control: &Control, t0: u64) -> bool {
    t0 >= control.warmup_ns && t0 < control.end_ns
}

fn record(control: &Control, rec: &mut Recorder, timeline: &mut [u64], t0: u64, t1: u64, err: i32) {
    if measured(control, t0) {
        rec.record(t0, t1, err);
        if let Some(slot) = timeline.get_mut(((t0 - control.warmup_ns) / 1_000_000_000) as usize) {
            *slot += 1;
        }
        control.count_measured();
    }
}

/// `session-storm`: connect, close, repeat.
pub async fn storm(
    control: Arc<Control>,
    host: String,
    timeout_ms: i32,
    rec: &mut Recorder,
    timeline: &mut [u64],
) -> Result<(), String> {
    while !control.stopped() {
        let t0 = control.now_ns();
        let conn = SeqConn::open(&host, timeout_ms).await?;
        conn.close(&control).await;
        record(&control, rec, timeline, t0, control.now_ns(), 0);
    }
    Ok(())
}

/// `lock`: the lock recipe, over and over, against the other sessions.
pub async fn lock(
    control: Arc<Control>,
    host: String,
    timeout_ms: i32,
    dir: String,
    rec: &mut Recorder,
    timeline: &mut [u64],
) -> Result<(), String> {
    let mut c = SeqConn::open(&host, timeout_ms).await?;
    while !control.stopped() {
        let t0 = control.now_ns();
        let (err, body) = c.call(&create(&format!("{dir}/lk-"), 3), &control).await?;
        if err != 0 {
            record(&control, rec, timeline, t0, control.now_ns(), err);
            continue;
        }
        let mine = Reader::new(&body)
            .ustring("path")
            .map_err(|e| e.to_string())?;
        let my_name = mine.rsplit('/').next().unwrap_or("").to_string();
        loop {
            let (err, body) = c
                .call(
                    &Request::GetChildren {
                        path: dir.clone(),
                        watch: false,
                    },
                    &control,
                )
                .await?;
            if err != 0 {
                return Err(format!("lock: getChildren failed with {err}"));
            }
            let mut children = Reader::new(&body)
                .vector("children", 4, |r| r.ustring("c"))
                .map_err(|e| e.to_string())?;
            children.sort_by(|a, b| a.rsplit('-').next().cmp(&b.rsplit('-').next()));
            let Some(pos) = children.iter().position(|c| *c == my_name) else {
                return Err(format!("lock: our node {mine} vanished"));
            };
            if pos == 0 {
                break;
            }
            let pred = format!("{dir}/{}", children[pos - 1]);
            let (err, _) = c
                .call(
                    &Request::Exists {
                        path: pred.clone(),
                        watch: true,
                    },
                    &control,
                )
                .await?;
            if err == -101 {
                continue; // the predecessor left already
            }
            let deadline = control.end_ns + 10_000_000_000;
            loop {
                match c.next_event(&control, deadline).await {
                    Some((_, path, _)) if path == pred => break,
                    Some(_) => continue,
                    None => {
                        return Err(
                            "lock: no event from the predecessor within 10 s of the end".into()
                        )
                    }
                }
            }
        }
        record(&control, rec, timeline, t0, control.now_ns(), 0);
        let (err, _) = c
            .call(
                &Request::Delete {
                    path: mine,
                    version: -1,
                },
                &control,
            )
            .await?;
        if err != 0 {
            return Err(format!("lock: releasing failed with {err}"));
        }
    }
    c.close(&control).await;
    Ok(())
}

/// Shared by the writer and the watchers of `watch`.
pub struct WatchBoard {
    /// Writes sent so far (their send times are published first).
    pub sent: AtomicU64,
    /// Send time of write k, at slot k % len.
    pub sent_ns: Vec<AtomicU64>,
    /// Watchers whose watch is armed for the next write.
    pub armed: AtomicU64,
}

impl WatchBoard {
    pub fn new() -> WatchBoard {
        WatchBoard {
            sent: AtomicU64::new(0),
            sent_ns: (0..1024).map(|_| AtomicU64::new(0)).collect(),
            armed: AtomicU64::new(0),
        }
    }
}

impl Default for WatchBoard {
    fn default() -> Self {
        Self::new()
    }
}

/// How long a watcher waits, after the phase stopped, for a notification still on its way.
const WATCH_GRACE: Duration = Duration::from_millis(500);

/// The writer of `watch`: waits until every watcher is armed, publishes the send time, writes.
pub async fn watch_writer(
    control: Arc<Control>,
    host: String,
    timeout_ms: i32,
    node: String,
    watchers: u64,
    board: Arc<WatchBoard>,
) -> Result<(), String> {
    let mut c = SeqConn::open(&host, timeout_ms).await?;
    let mut k: u64 = 0;
    while !control.stopped() {
        // Every watcher re-arms after each event; give them up to a second.
        let wait_until = control.now_ns() + 1_000_000_000;
        while board.armed.load(Relaxed) < watchers * (k + 1) && control.now_ns() < wait_until {
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
        k += 1;
        board.sent_ns[(k % 1024) as usize].store(control.now_ns(), Relaxed);
        board.sent.store(k, Relaxed);
        let write = Request::SetData {
            path: node.clone(),
            data: Some(k.to_string().into_bytes().into()),
            version: -1,
        };
        let (err, _) = c.call(&write, &control).await?;
        if err != 0 {
            return Err(format!("watch: the write failed with {err}"));
        }
    }
    c.close(&control).await;
    Ok(())
}

/// A watcher of `watch`.
pub async fn watcher(
    control: Arc<Control>,
    host: String,
    timeout_ms: i32,
    node: String,
    board: Arc<WatchBoard>,
    rec: &mut Recorder,
    timeline: &mut [u64],
) -> Result<(), String> {
    let mut c = SeqConn::open(&host, timeout_ms).await?;
    loop {
        let (err, _) = c
            .call(
                &Request::Exists {
                    path: node.clone(),
                    watch: true,
                },
                &control,
            )
            .await?;
        if err != 0 {
            return Err(format!("watch: exists failed with {err}"));
        }
        board.armed.fetch_add(1, Relaxed);
        // Once the phase stops, the writer sends nothing more: wait only for an event on its way.
        let Some((_, _, arrived)) = c.next_event_or_stop(&control, WATCH_GRACE).await else {
            break;
        };
        // The writer sends the next write only once every watcher has re-armed, so this event
        // belongs to the latest write sent.
        let k = board.sent.load(Relaxed);
        let sent = board.sent_ns[(k % 1024) as usize].load(Relaxed);
        record(&control, rec, timeline, sent, arrived.max(sent), 0);
        if control.stopped() {
            break;
        }
    }
    c.close(&control).await;
    Ok(())
}
