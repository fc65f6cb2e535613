//! Runs one load phase: sets up the znodes, starts the generator's executors, drives every session
//! until the phase ends, and merges what each session measured.

use crate::args::BenchArgs;
use crate::control::Control;
use crate::latency::{Recorder, Schedule};
use crate::scenario::{self, WatchBoard};
use crate::wire::{connect_request, encode_request};
use crate::workload::{Layout, SessionGen, Workload};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::{LocalExecutorBuilder, Placement};
use ringkeeper_engine::proto::{frame, ConnectResponse, Reader, Request};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Largest reply frame the generator accepts.
const REPLY_BYTES_MAX: usize = 64 << 20;
/// How long to wait for replies still in flight when a phase ends.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// Requests written to a socket in one go at most.
const WRITE_BATCH_MAX: usize = 64;

/// What one phase measured.
pub struct PhaseResult {
    pub recorder: Recorder,
    pub measured_s: f64,
    /// Measured replies per second of the phase.
    pub timeline: Vec<u64>,
    /// Generator CPU (user + system) over the phase.
    pub cpu_s: f64,
}

/// Process CPU time from /proc/self/stat (user + system, in clock ticks of 1/100 s).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Creates the benchmark's znodes (those that exist already are kept), pipelined on one session.
pub fn setup(args: &BenchArgs, layout: &Layout) -> Result<(), String> {
    let host = args.hosts.split(',').next().ok_or("no host")?;
    let mut s =
        std::net::TcpStream::connect(host).map_err(|e| format!("cannot connect to {host}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(&connect_request(args.session_timeout_ms))
        .map_err(|e| e.to_string())?;
    let read_frame = |s: &mut std::net::TcpStream| -> Result<Vec<u8>, String> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(|e| format!("setup: {e}"))?;
        let mut buf = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        s.read_exact(&mut buf).map_err(|e| format!("setup: {e}"))?;
        Ok(buf)
    };
    let hello = read_frame(&mut s)?;
    ConnectResponse::decode(&hello).map_err(|e| format!("setup: bad connect response: {e}"))?;
    let value = bytes::Bytes::from(vec![b'x'; args.value_bytes]);
    let paths = layout.setup_paths();
    for chunk in paths.chunks(500) {
        let mut out = Vec::new();
        for (i, path) in chunk.iter().enumerate() {
            let req = Request::Create(ringkeeper_engine::proto::CreateRequest {
                opcode: ringkeeper_engine::proto::opcode::CREATE,
                path: path.clone(),
                data: Some(value.clone()),
                acl: ringkeeper_engine::proto::Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            });
            encode_request(&mut out, i as i32 + 1, &req);
        }
        s.write_all(&out).map_err(|e| e.to_string())?;
        for _ in chunk {
            let reply = read_frame(&mut s)?;
            let mut r = Reader::new(&reply);
            let (_xid, _zxid, err) = (r.int("xid"), r.long("zxid"), r.int("err").unwrap_or(0));
            if err != 0 && err != -110 {
                return Err(format!(
                    "setup: creating the benchmark znodes failed with error {err}"
                ));
            }
        }
    }
    Ok(())
}

/// Runs one phase. `rate` selects the open loop; `None` the closed loop.
pub fn run_phase(
    args: &BenchArgs,
    workload: &Workload,
    layout: &Layout,
    rate: Option<u64>,
    warmup: Duration,
    measure: Duration,
    progress: Option<Arc<AtomicU64>>,
) -> Result<PhaseResult, String> {
    let hosts: Vec<String> = args
        .hosts
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return Err("--hosts names no server".into());
    }
    // A storm keeps --outstanding connects going; every other workload has --sessions sessions.
    let sessions = match workload {
        Workload::SessionStorm => args.outstanding.max(1),
        Workload::Watch => args.sessions.max(2),
        _ => args.sessions.max(1),
    };
    let threads = args.threads.clamp(1, sessions);
    let board = Arc::new(WatchBoard::new());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let control = Arc::new(Control::new(warmup, measure, args.ops));
    let cpu_before = cpu_seconds();
    let mut handles = Vec::new();
    for t in 0..threads {
        let mine: Vec<usize> = (0..sessions).filter(|s| s % threads == t).collect();
        let placement = match args.cpus.get(t) {
            Some(cpu) => Placement::Fixed(*cpu),
            None => Placement::Unbound,
        };
        let (control, hosts, workload, layout, progress) = (
            control.clone(),
            hosts.clone(),
            workload.clone(),
            layout.clone(),
            progress.clone(),
        );
        let board = board.clone();
        let args = args.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("rk-bench{t}"))
            .spawn(move || async move {
                let mut tasks = Vec::new();
                for s in mine {
                    let host = hosts[s % hosts.len()].clone();
                    let task = SessionTask {
                        control: control.clone(),
                        args: args.clone(),
                        workload: workload.clone(),
                        layout: layout.clone(),
                        session: s,
                        sessions,
                        host,
                        rate,
                        nonce,
                        progress: progress.clone(),
                        board: board.clone(),
                    };
                    tasks.push(glommio::spawn_local(task.run()));
                }
                let mut results = Vec::new();
                for task in tasks {
                    results.push(task.await);
                }
                results
            })
            .map_err(|e| format!("cannot start a generator executor: {e}"))?;
        handles.push(handle);
    }
    let mut recorder = Recorder::default();
    let secs = measure.as_secs() as usize + 1;
    let mut timeline = vec![0u64; secs];
    for h in handles {
        let results = h
            .join()
            .map_err(|e| format!("generator executor failed: {e}"))?;
        for r in results {
            let r = r?;
            recorder.merge_session(&r.recorder, &r.host);
            for (i, n) in r.timeline.iter().enumerate() {
                if i < timeline.len() {
                    timeline[i] += n;
                }
            }
        }
    }
    let measured_s = control.spent_after().unwrap_or(measure).as_secs_f64();
    Ok(PhaseResult {
        recorder,
        measured_s,
        timeline,
        cpu_s: cpu_seconds() - cpu_before,
    })
}

/// Session `s`'s share of `total` in-flight requests over `sessions` sessions (at least 1).
pub fn share(total: usize, sessions: usize, s: usize) -> usize {
    (total / sessions + usize::from(s < total % sessions)).max(1)
}

/// Everything one session needs to run its part of the workload.
struct SessionTask {
    control: Arc<Control>,
    args: BenchArgs,
    workload: Workload,
    layout: Layout,
    session: usize,
    sessions: usize,
    host: String,
    rate: Option<u64>,
    nonce: u64,
    progress: Option<Arc<AtomicU64>>,
    board: Arc<WatchBoard>,
}

impl SessionTask {
    async fn run(self) -> Result<SessionResult, String> {
        let c = self.control.clone();
        let host = self.host.clone();
        let timeout = self.args.session_timeout_ms;
        let mut recorder = Recorder::default();
        let mut timeline = vec![0u64; ((c.end_ns - c.warmup_ns) / 1_000_000_000) as usize + 1];
        match self.workload {
            Workload::Stream(mix) => {
                let per_session = share(self.args.outstanding.max(1), self.sessions, self.session);
                let session_rate = self.rate.map(|r| r as f64 / self.sessions as f64);
                let gen = SessionGen::new(
                    mix,
                    self.layout,
                    self.args.value_bytes,
                    self.args.seed,
                    self.session,
                    self.nonce,
                );
                let ctx = SessionCtx {
                    control: c,
                    timeout_ms: timeout,
                    progress: self.progress,
                };
                return drive_session(ctx, self.host, gen, per_session, session_rate).await;
            }
            Workload::SessionStorm => {
                scenario::storm(c, self.host, timeout, &mut recorder, &mut timeline).await?
            }
            Workload::Lock => {
                scenario::lock(
                    c,
                    self.host,
                    timeout,
                    self.layout.lock_dir(),
                    &mut recorder,
                    &mut timeline,
                )
                .await?
            }
            Workload::Watch if self.session == 0 => {
                let watchers = self.sessions as u64 - 1;
                scenario::watch_writer(
                    c,
                    self.host,
                    timeout,
                    self.layout.watched(),
                    watchers,
                    self.board,
                )
                .await?
            }
            Workload::Watch => {
                scenario::watcher(
                    c,
                    self.host,
                    timeout,
                    self.layout.watched(),
                    self.board,
                    &mut recorder,
                    &mut timeline,
                )
                .await?
            }
        }
        Ok(SessionResult {
            recorder,
            timeline,
            host,
        })
    }
}

struct SessionCtx {
    control: Arc<Control>,
    timeout_ms: i32,
    progress: Option<Arc<AtomicU64>>,
}

struct SessionResult {
    recorder: Recorder,
    timeline: Vec<u64>,
    host: String,
}

struct InFlight {
    xid: i32,
    intended_ns: u64,
    op: &'static str,
}

/// Reads whole frames from a stream into `buf`; `None` at EOF.
async fn next_frame<R: futures_lite::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Option<Vec<u8>> {
    loop {
        if let Ok(Some((start, end))) = frame::next_frame(buf, REPLY_BYTES_MAX) {
            let f = buf[start..end].to_vec();
            buf.drain(..end);
            return Some(f);
        }
        match rd.read(chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn drive_session(
    ctx: SessionCtx,
    host: String,
    mut gen: SessionGen,
    in_flight_max: usize,
    rate: Option<f64>,
) -> Result<SessionResult, String> {
    let stream = glommio::net::TcpStream::connect(host.as_str())
        .await
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = futures_lite::io::split(stream);
    wr.write_all(&connect_request(ctx.timeout_ms))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 256 << 10];
    let hello = next_frame(&mut rd, &mut buf, &mut chunk)
        .await
        .ok_or_else(|| format!("{host} closed during connect"))?;
    let resp = ConnectResponse::decode(&hello)
        .map_err(|e| format!("bad connect response from {host}: {e}"))?;
    if resp.session_id == 0 {
        return Err(format!("{host} refused the session"));
    }

    let in_flight: Rc<RefCell<VecDeque<InFlight>>> = Rc::new(RefCell::new(VecDeque::new()));
    let permits = Rc::new(glommio::sync::Semaphore::new(in_flight_max as u64));
    let control = ctx.control.clone();
    let sender_done = Rc::new(std::cell::Cell::new(false));

    // The sender: closed loop waits for a permit per request; open loop follows the schedule.
    let sender = {
        let (in_flight, permits, control, sender_done) = (
            in_flight.clone(),
            permits.clone(),
            control.clone(),
            sender_done.clone(),
        );
        glommio::spawn_local(async move {
            let schedule = rate.map(|r| Schedule::new(control.now_ns(), r));
            let mut xid: i32 = 0;
            let mut i: u64 = 0;
            let mut out = Vec::with_capacity(64 << 10);
            while !control.stopped() {
                let mut batch = 0;
                match schedule {
                    None => {
                        if permits.acquire(1).await.is_err() {
                            break;
                        }
                        batch = 1;
                        while batch < WRITE_BATCH_MAX && permits.try_acquire(1).unwrap_or(false) {
                            batch += 1;
                        }
                    }
                    Some(s) => {
                        let due = s.due_ns(i);
                        let now = control.now_ns();
                        if due > now {
                            glommio::timer::sleep(Duration::from_nanos(due - now)).await;
                        }
                        let now = control.now_ns();
                        while batch < WRITE_BATCH_MAX && s.due_ns(i + batch as u64) <= now {
                            batch += 1;
                        }
                    }
                }
                out.clear();
                let now = control.now_ns();
                for k in 0..batch {
                    xid = xid.wrapping_add(1).max(1);
                    let (kind, req) = gen.next_request();
                    encode_request(&mut out, xid, &req);
                    let intended_ns = match schedule {
                        Some(s) => s.due_ns(i + k as u64),
                        None => now,
                    };
                    in_flight.borrow_mut().push_back(InFlight {
                        xid,
                        intended_ns,
                        op: kind.name(),
                    });
                }
                i += batch as u64;
                if wr.write_all(&out).await.is_err() {
                    break;
                }
            }
            sender_done.set(true);
            // Say goodbye so the server drops the session at once.
            let mut bye = Vec::new();
            encode_request(&mut bye, xid.wrapping_add(1).max(1), &Request::CloseSession);
            let _ = wr.write_all(&bye).await;
            let _ = wr.flush().await;
            wr
        })
    };

    // The receiver: matches replies to requests in order and records their latency.
    let mut recorder = Recorder::default();
    let mut timeline =
        vec![0u64; ((control.end_ns - control.warmup_ns) / 1_000_000_000) as usize + 1];
    let drain_deadline = control.end_ns + DRAIN_WAIT.as_nanos() as u64;
    // One timer bounds the whole receive loop, rather than one armed and cancelled per reply.
    let receive = async {
        loop {
            if sender_done.get() && in_flight.borrow().is_empty() {
                return Ok(());
            }
            let Some(frame) = next_frame(&mut rd, &mut buf, &mut chunk).await else {
                if control.stopped() {
                    return Ok(());
                }
                return Err(format!("{host} closed the connection during the run"));
            };
            let now = control.now_ns();
            let mut r = Reader::new(&frame);
            let (Ok(xid), Ok(_zxid), Ok(err)) = (r.int("xid"), r.long("zxid"), r.int("err")) else {
                return Err(format!("{host} sent a reply shorter than its header"));
            };
            if xid < 0 {
                continue; // notifications and pings
            }
            let Some(sent) = in_flight.borrow_mut().pop_front() else {
                continue; // the reply to our closeSession
            };
            if sent.xid != xid {
                return Err(format!(
                    "{host} answered xid {xid} where {} was next",
                    sent.xid
                ));
            }
            permits.signal(1);
            if sent.intended_ns >= control.warmup_ns && sent.intended_ns < control.end_ns {
                recorder.record_op(sent.op, sent.intended_ns, now, err);
                let sec = ((sent.intended_ns - control.warmup_ns) / 1_000_000_000) as usize;
                if let Some(slot) = timeline.get_mut(sec) {
                    *slot += 1;
                }
                control.count_measured();
            }
            if let Some(p) = &ctx.progress {
                p.fetch_add(1, Relaxed);
            }
        }
    };
    let deadline = async {
        glommio::timer::sleep(Duration::from_nanos(
            drain_deadline.saturating_sub(control.now_ns()),
        ))
        .await;
        Ok(())
    };
    let received: Result<(), String> = futures_lite::future::or(receive, deadline).await;
    received?;
    permits.close();
    drop(sender.await);
    Ok(SessionResult {
        recorder,
        timeline,
        host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outstanding_is_shared_across_sessions() {
        let shares: Vec<usize> = (0..8).map(|s| share(32, 8, s)).collect();
        assert_eq!(shares.iter().sum::<usize>(), 32);
        let shares: Vec<usize> = (0..3).map(|s| share(10, 3, s)).collect();
        assert_eq!(shares, vec![4, 3, 3]);
        assert_eq!(
            share(1, 8, 5),
            1,
            "every session keeps at least one request going"
        );
    }

    #[test]
    fn requests_encode_as_frames() {
        let mut out = Vec::new();
        encode_request(
            &mut out,
            7,
            &Request::Exists {
                path: "/a".into(),
                watch: false,
            },
        );
        let (start, end) = frame::next_frame(&out, 1 << 20).unwrap().unwrap();
        let mut r = Reader::new(&out[start..end]);
        assert_eq!(
            (r.int("xid").unwrap(), r.int("op").unwrap()),
            (7, ringkeeper_engine::proto::opcode::EXISTS)
        );
    }
}
