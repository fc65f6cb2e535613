//! The core map: which glommio executor runs which role, and the channels between them.
//!
//! Roles (DESIGN.md section 1): the **pipeline** core owns the engine's `Node` (sessions, prep,
//! apply, and when things are durable); **front** cores own client connections, serve reads from their own tree version
//! and keep their own watch tables. With two or more cores the pipeline gets the last core and the
//! fronts the others, each executor pinned; with one core both roles run on one executor, each
//! in its own task queue. Cores talk only through bounded channels:
//!
//! - front -> pipeline: `PipeMsg` (in `shared.rs`, with the other messages) (connects, writes, syncs, touches, queries), one channel
//!   shared by all fronts, bounded by `PIPE_QUEUE_MAX`; a full channel makes connection tasks
//!   wait, which stops them reading from their sockets.
//! - pipeline -> each front: `Batch` (committed entries in zxid order plus the tree version
//!   after them), bounded by `BATCH_QUEUE_MAX`; each front drains it in a task that never sends
//!   to the pipeline, so the two directions cannot deadlock.
//! - any front -> each front: `Control` queries for the four-letter words.

use crate::config::Config;
use crate::conn::IpCounts;
use crate::shared::{Batch, Control, PipeMsg, Shared, Start, BATCH_QUEUE_MAX, PIPE_QUEUE_MAX};
use crate::stats::ServerStats;
use crate::{front, pipeline_core};
use glommio::{LocalExecutorBuilder, Placement};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often each executor wakes with nothing to do (see [`keep_awake`]).
const KEEP_AWAKE: Duration = Duration::from_millis(10);

/// A second, later timer that [`keep_awake`] keeps pending beside its [`KEEP_AWAKE`] one.
const KEEP_AWAKE_BACKSTOP: Duration = Duration::from_millis(25);

/// Wakes its executor every [`KEEP_AWAKE`], and beats on the watchdog (`watchdog.rs`) each
/// time. glommio 0.9 can put an executor to sleep with woken tasks still queued: its run loop
/// takes "a preemption is already due" on entry to mean "nothing to run", and the executor then
/// sleeps until its next timer or I/O completion (once, a front slept for an hour with its first
/// tree version waiting, until a debugger's signal woke the thread). This task is the timer that
/// is always pending: while it waits, its 10 ms timer; while it sits woken but not yet run, its
/// 25 ms one, which cannot have fired yet. So such a sleep ends within about 25 ms, and the
/// tasks left queued run then. Should even that fail, the watchdog signals the thread after
/// `watchdog::STALE`. It costs an idle server about a hundred wake-ups a second per core.
async fn keep_awake(name: String) {
    let watch = crate::watchdog::global().register(&name);
    loop {
        watch.beat();
        futures_lite::future::or(
            watch.noting(glommio::timer::sleep(KEEP_AWAKE)),
            glommio::timer::sleep(KEEP_AWAKE_BACKSTOP),
        )
        .await;
    }
}

/// Which executors to start, by core count.
pub struct CoreMap {
    pub fronts: Vec<usize>,
    pub pipeline: usize,
    pub shared_core: bool,
}

impl CoreMap {
    pub fn for_cores(cores: usize) -> CoreMap {
        assert!(cores >= 1);
        if cores == 1 {
            CoreMap {
                fronts: vec![0],
                pipeline: 0,
                shared_core: true,
            }
        } else {
            CoreMap {
                fronts: (0..cores - 1).collect(),
                pipeline: cores - 1,
                shared_core: false,
            }
        }
    }
}

fn spawn_err(e: glommio::GlommioError<()>) -> anyhow::Error {
    anyhow::anyhow!("cannot start an executor: {e}")
}

/// Where a server's executors are pinned: its core k is `cpus[(first + k) % cpus.len()]`, where
/// `cpus` are the CPUs this process may run on (its affinity when it started: `taskset` or a
/// cgroup's cpuset), so that members sharing a machine take different ones and none leaves the
/// set it was given.
#[derive(Debug, Clone)]
pub struct Pinning {
    pub first: usize,
    pub cpus: Vec<usize>,
}

impl Pinning {
    /// The CPU for the server's core `core`.
    pub fn cpu(&self, core: usize) -> usize {
        self.cpus[(self.first + core) % self.cpus.len()]
    }
}

/// The CPUs this process may run on, in order (all online ones if that cannot be read).
#[allow(unsafe_code)]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain bits, so all zeroes is a valid (empty) set; sched_getaffinity
    // writes at most the size it is given into it; CPU_ISSET reads one bit below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    let got = unsafe { libc::sched_getaffinity(0, size, &mut set) };
    let cpus: Vec<usize> = if got == 0 {
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..online).collect()
    } else {
        cpus
    }
}

/// Starts every executor and blocks until they end (they end only on a fatal error).
pub fn run(
    cfg: Config,
    cores: usize,
    pin: Option<Pinning>,
    start: Start,
    listener: std::net::TcpListener,
) -> anyhow::Result<()> {
    let ensemble = cfg.ensemble.clone();
    // The core that owns the data: the standalone pipeline, or an ensemble member.
    let owner = move |shared: Arc<Shared>,
                      rx: flume::Receiver<PipeMsg>,
                      fronts: Vec<flume::Sender<Batch>>,
                      start: Start,
                      snap_tx: flume::Sender<crate::snapshot::Job>| async move {
        match ensemble {
            Some(e) => crate::ensemble::core::run(shared, rx, fronts, start, e, snap_tx).await,
            None => pipeline_core::run(shared, rx, fronts, start, snap_tx).await,
        }
    };
    let map = CoreMap::for_cores(cores);
    let (to_pipeline, pipe_rx) = flume::bounded::<PipeMsg>(PIPE_QUEUE_MAX);
    let mut batch_txs = Vec::new();
    let mut batch_rxs = Vec::new();
    let mut control_txs = Vec::new();
    let mut control_rxs = Vec::new();
    for _ in &map.fronts {
        let (tx, rx) = flume::bounded::<Batch>(BATCH_QUEUE_MAX);
        batch_txs.push(tx);
        batch_rxs.push(rx);
        let (ctx, crx) = flume::bounded::<Control>(64);
        control_txs.push(ctx);
        control_rxs.push(crx);
    }
    let ip_counts = Arc::new(IpCounts::new(cfg.max_client_cnxns));
    let shared = Arc::new(Shared {
        cfg,
        stats: ServerStats::new(),
        to_pipeline,
        controls: control_txs,
        ip_counts,
        started: Instant::now(),
        snap_word_last: Mutex::new(None),
        stop: crate::stop::watch_signals()
            .map_err(|e| anyhow::anyhow!("cannot watch for SIGTERM: {e}"))?,
    });
    let placement = |core: usize| match &pin {
        Some(p) => Placement::Fixed(p.cpu(core)),
        None => Placement::Unbound,
    };
    let mut handles = Vec::new();
    let snap_tx = crate::snapshot::spawn(shared.clone());
    start_http(&shared)?;

    if map.shared_core {
        let shared = shared.clone();
        let batch_rx = batch_rxs.pop().expect("one front");
        let control_rx = control_rxs.pop().expect("one front");
        handles.push(
            LocalExecutorBuilder::new(placement(0))
                .name("rk-core0")
                .preempt_timer(front::SLICE)
                .spawn(move || async move {
                    glommio::spawn_local(keep_awake("rk-core0".into())).detach();
                    let pipe_tq = glommio::executor().create_task_queue(
                        glommio::Shares::Static(1000),
                        glommio::Latency::NotImportant,
                        "pipeline",
                    );
                    let front_tq = glommio::executor().create_task_queue(
                        glommio::Shares::Static(1000),
                        glommio::Latency::NotImportant,
                        "front",
                    );
                    let s2 = shared.clone();
                    let p = glommio::spawn_local_into(
                        owner(s2, pipe_rx, batch_txs, start, snap_tx),
                        pipe_tq,
                    )
                    .expect("pipeline queue")
                    .detach();
                    let f = glommio::spawn_local_into(
                        front::run(0, shared, batch_rx, control_rx, listener),
                        front_tq,
                    )
                    .expect("front queue");
                    f.await;
                    p.await;
                })
                .map_err(spawn_err)?,
        );
    } else {
        let s = shared.clone();
        handles.push(
            LocalExecutorBuilder::new(placement(map.pipeline))
                .name("rk-pipeline")
                .spawn(move || async move {
                    glommio::spawn_local(keep_awake("rk-pipeline".into())).detach();
                    owner(s, pipe_rx, batch_txs, start, snap_tx).await
                })
                .map_err(spawn_err)?,
        );
        for ((i, core), (batch_rx, control_rx)) in map
            .fronts
            .iter()
            .copied()
            .enumerate()
            .zip(batch_rxs.into_iter().zip(control_rxs))
        {
            let s = shared.clone();
            let listener = listener
                .try_clone()
                .map_err(|e| anyhow::anyhow!("cannot share the client port's socket: {e}"))?;
            handles.push(
                LocalExecutorBuilder::new(placement(core))
                    .name(&format!("rk-front{i}"))
                    .preempt_timer(front::SLICE)
                    .spawn(move || async move {
                        glommio::spawn_local(keep_awake(format!("rk-front{i}"))).detach();
                        front::run(i, s, batch_rx, control_rx, listener).await
                    })
                    .map_err(spawn_err)?,
            );
        }
    }
    tracing::info!(
        fronts = ?map.fronts, pipeline = map.pipeline, shared_core = map.shared_core,
        pinned = ?pin.as_ref().map(|p| (0..cores).map(|c| p.cpu(c)).collect::<Vec<_>>()),
        "executors started"
    );
    for h in handles {
        h.join()
            .map_err(|e| anyhow::anyhow!("executor failed: {e}"))?;
    }
    Ok(())
}

/// The metrics endpoint and the AdminServer. A metrics port that cannot be bound stops the
/// server (ZooKeeper's Prometheus provider failing to start stops ZooKeeper); an AdminServer port
/// that cannot be bound is logged and skipped, as ZooKeeper does.
fn start_http(shared: &Arc<Shared>) -> anyhow::Result<()> {
    if let Some(addr) = shared.cfg.metrics_addr {
        let handler = |shared: &Shared, asked: &crate::http::Asked| {
            if asked.url.split('?').next() == Some("/metrics") {
                let body = futures_lite::future::block_on(crate::metrics::render(shared));
                crate::http::Answer::new(
                    200,
                    Some("text/plain; version=0.0.4; charset=utf-8"),
                    body,
                )
            } else {
                crate::http::Answer::new(
                    404,
                    Some("text/plain"),
                    "not found: try /metrics\n".into(),
                )
            }
        };
        crate::http::serve("rk-metrics", addr, shared.clone(), handler).map_err(|e| {
            anyhow::anyhow!("cannot serve metrics on {addr} (metricsProvider.httpPort): {e}")
        })?;
        tracing::info!(%addr, "Prometheus metrics at /metrics");
    }
    if let Some(addr) = shared.cfg.admin_addr {
        match crate::http::serve("rk-admin", addr, shared.clone(), crate::admin::handle) {
            Ok(()) => {
                tracing::info!(%addr, url = %shared.cfg.admin_command_url, "AdminServer started")
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot start the AdminServer (admin.serverPort); going on without it")
            }
        }
    }
    Ok(())
}
