//! The pipeline core: drains front messages in arrival order, runs them through the engine's
//! [`Pipeline`], and publishes each batch of committed entries with the tree version after it.
//!
//! Prep applies a write to the pipeline's newest tree at once (later writes are checked against
//! it), but nothing leaves this core before the write is durable: every txn goes to the log task
//! (group commit, one fdatasync per batch), and the committed entries, connect replies and sync
//! answers behind it are held until the log reports their zxid synced.

use crate::log::{log_dir, LogWriter};
use crate::server::{Batch, Entry, PipeMsg, Report, Shared, Start};
use crate::snapshot;
use ringkeeper_engine::pipeline::{ConnectOutcome, Pipeline, PipelineConfig};
use ringkeeper_engine::prep::PrepConfig;
use ringkeeper_engine::session::SessionConfig;
use ringkeeper_engine::snap::SnapSession;
use ringkeeper_engine::tree::DataTree;
use ringkeeper_engine::txn::Txn;
use ringkeeper_engine::watch::ConnId;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Most messages folded into one published batch.
const BATCH_MSGS_MAX: usize = 1024;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn pipeline_config(shared: &Shared) -> PipelineConfig {
    let cfg = &shared.cfg;
    PipelineConfig {
        prep: PrepConfig {
            extended_types: cfg.extended_types,
        },
        session: SessionConfig {
            tick_ms: cfg.tick_ms,
            min_timeout_ms: cfg.min_session_timeout_ms,
            max_timeout_ms: cfg.max_session_timeout_ms,
            // A standalone ZooKeeper's session tracker uses server id 1.
            server_id: cfg.server_id.max(1),
        },
        container_check_ms: cfg.container_check_ms,
        container_never_used_ms: cfg.container_never_used_ms,
    }
}

enum Wake {
    Msg(PipeMsg),
    Synced(i64),
    Closed,
    Tick,
}

/// Something waiting for the log: released once every txn up to `gate` is durable. Nearly
/// every item is a commit, so the variants are not boxed to even out their sizes.
#[allow(clippy::large_enum_variant)]
enum Held {
    Publish(Entry),
    ConnectReply(ConnId, flume::Sender<ConnectOutcome>, ConnectOutcome),
}

/// Most txns waiting for the log while a write is in flight. Past it, the pipeline stops taking
/// messages (the fronts' sends then wait, and their connections stop reading) until the write
/// completes. This bounds one log write (one fdatasync) to about this many txns.
const PENDING_TXNS_MAX: usize = 8192;

/// The log core's work, as a task queue of the pipeline executor. The pipeline sends one batch
/// at a time and gathers the next while this one is written and fdatasync'd (group commit); each
/// sync acknowledges all of its batch. A write or sync error is final: the process exits without
/// acknowledging anything more.
async fn log_task(
    mut writer: LogWriter,
    rx: flume::Receiver<Vec<Txn>>,
    synced: flume::Sender<i64>,
    shared: Arc<Shared>,
) {
    while let Ok(batch) = rx.recv_async().await {
        let last = batch.last().expect("batches are never empty").zxid;
        let started = std::time::Instant::now();
        if let Err(e) = writer.append(&batch).await {
            tracing::error!(error = %e, zxid = format_args!("{last:#x}"), "transaction log write or fdatasync failed; stopping");
            std::process::exit(2);
        }
        let ms = started.elapsed().as_millis() as u64;
        if ms >= shared.cfg.fsync_warn_ms {
            tracing::warn!(
                ms,
                txns = batch.len(),
                "fsync-ing the transaction log took {ms} ms"
            );
        }
        shared.stats.log_syncs.fetch_add(1, Relaxed);
        shared
            .stats
            .log_synced_txns
            .fetch_add(batch.len() as u64, Relaxed);
        shared.stats.log_synced_zxid.store(last, SeqCst);
        if synced.send_async(last).await.is_err() {
            return;
        }
    }
}

/// When to snapshot: after about `snapCount` txns, randomized as ZooKeeper's
/// `SyncRequestProcessor` does (more than snapCount/2 plus a roll below snapCount/2), so servers
/// started together do not all snapshot at once.
struct Snapper {
    tx: flume::Sender<snapshot::Job>,
    txns_since: u64,
    threshold: u64,
    shared: Arc<Shared>,
}

impl Snapper {
    fn new(tx: flume::Sender<snapshot::Job>, shared: Arc<Shared>) -> Snapper {
        let mut s = Snapper {
            tx,
            txns_since: 0,
            threshold: 0,
            shared,
        };
        s.roll();
        s
    }

    fn roll(&mut self) {
        let half = self.shared.cfg.snap_count / 2;
        self.threshold = half + rand::random::<u64>() % half.max(1);
        self.txns_since = 0;
    }

    /// Counts txns sent to the log; snapshots when the count passes the threshold.
    fn logged(&mut self, txns: usize, pipeline: &Pipeline) {
        self.txns_since += txns as u64;
        if self.txns_since > self.threshold {
            if !self.take(pipeline, None) {
                tracing::warn!(
                    "too busy to snapshot: the previous one is still being written; skipping"
                );
            }
            self.roll();
        }
    }

    /// Hands the newest tree and the sessions (both at the pipeline's last zxid) to the snapshot
    /// thread; false if one is still being written.
    fn take(&mut self, pipeline: &Pipeline, reply: Option<flume::Sender<String>>) -> bool {
        if self.shared.stats.snapshot_busy.swap(true, SeqCst) {
            if let Some(reply) = reply {
                let _ = reply.try_send("busy: a snapshot is being written\n".to_string());
            }
            return false;
        }
        let job = snapshot::Job {
            tree: pipeline.version(),
            sessions: pipeline
                .sessions()
                .iter()
                .map(|s| SnapSession {
                    id: s.id,
                    timeout_ms: s.timeout_ms,
                })
                .collect(),
            reply,
        };
        self.tx
            .try_send(job)
            .expect("the snapshot queue has room while no snapshot is busy");
        true
    }
}

pub async fn run(
    shared: Arc<Shared>,
    rx: flume::Receiver<PipeMsg>,
    fronts: Vec<flume::Sender<Batch>>,
    start: Start,
    snap_tx: flume::Sender<snapshot::Job>,
) {
    let mut pipeline = Pipeline::new(pipeline_config(&shared), now_ms(), start.secret);
    let now = now_ms();
    if let Some(snapshot) = start.snapshot {
        pipeline.restore(snapshot, now);
    }
    let replayed = start.txns.len();
    let log_tail = start.log_tail;
    for txn in start.txns {
        pipeline.replay(txn, now);
    }
    if cfg!(debug_assertions) {
        pipeline.check_invariants(); // O(nodes): kept out of a release restart
    }
    shared
        .stats
        .log_synced_zxid
        .store(pipeline.last_zxid(), SeqCst);
    let mut snapper = Snapper::new(snap_tx, shared.clone());
    let dir = log_dir(&shared.cfg.data_log_dir);
    let resumed = match &log_tail {
        Some(seg) => LogWriter::resume(&dir, seg, shared.cfg.force_sync).await,
        None => Ok(None),
    };
    let writer = match resumed {
        Ok(Some(w)) => Ok(w),
        Ok(None) => {
            LogWriter::create(
                &dir,
                pipeline.last_zxid() + 1,
                shared.cfg.prealloc_bytes,
                shared.cfg.force_sync,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot open or create a transaction log segment");
            std::process::exit(1);
        }
    };
    tracing::info!(
        replayed, last_zxid = format_args!("{:#x}", pipeline.last_zxid()), sessions = pipeline.sessions().len(),
        segment = %writer.path().display(), "transaction log ready"
    );
    if !shared.cfg.force_sync {
        tracing::warn!("forceSync=no: writes are acknowledged WITHOUT fdatasync; a crash can lose acknowledged data");
    }
    let (log_tx, log_rx) = flume::unbounded::<Vec<Txn>>();
    let (synced_tx, synced_rx) = flume::unbounded::<i64>();
    let log_tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(1000),
        glommio::Latency::NotImportant,
        "log",
    );
    glommio::spawn_local_into(log_task(writer, log_rx, synced_tx, shared.clone()), log_tq)
        .expect("log task queue")
        .detach();

    let tick = Duration::from_millis((shared.cfg.tick_ms as u64 / 4).clamp(5, 500));
    // The initial version, so fronts can serve before the first write.
    publish(&fronts, Vec::new(), &pipeline, &shared).await;
    // A long log tail was replayed: snapshot it in the background (ZooKeeper snapshots on every
    // startup, before serving), so the next restart does not replay it again.
    if replayed as u64 > shared.cfg.snap_count / 2 {
        snapper.take(&pipeline, None);
    }
    let mut synced_zxid = pipeline.last_zxid();
    let mut durable_version = pipeline.version();
    let mut held: VecDeque<(i64, Held)> = VecDeque::new();
    // Txns wait here while a log write is in flight, then go down together as the next one.
    let mut pending_txns: Vec<Txn> = Vec::new();
    let mut log_busy = false;
    // Since the last flush point: something fronts must flush for, and who wrote or synced.
    let mut unflushed = false;
    let mut span_conns: HashSet<ConnId> = HashSet::new();
    let mut next_tick = std::time::Instant::now() + tick;
    loop {
        let wait = next_tick.saturating_duration_since(std::time::Instant::now());
        let accepting = pending_txns.len() < PENDING_TXNS_MAX;
        let wake = futures_lite::future::or(
            futures_lite::future::or(
                async {
                    if !accepting {
                        return futures_lite::future::pending().await;
                    }
                    rx.recv_async().await.map(Wake::Msg).unwrap_or(Wake::Closed)
                },
                async {
                    synced_rx
                        .recv_async()
                        .await
                        .map(Wake::Synced)
                        .unwrap_or(Wake::Closed)
                },
            ),
            async {
                glommio::timer::sleep(wait).await;
                Wake::Tick
            },
        )
        .await;
        let now = now_ms();
        let logged_before = pipeline.last_zxid();
        let mut fresh: Vec<Held> = Vec::new();
        let mut round = Round {
            fresh: &mut fresh,
            conns: &mut span_conns,
            now,
        };
        match wake {
            Wake::Closed => return,
            Wake::Synced(z) => {
                synced_zxid = synced_zxid.max(z);
                log_busy = false;
            }
            Wake::Msg(msg) => {
                handle(&mut pipeline, &mut snapper, msg, &mut round);
                for _ in 1..BATCH_MSGS_MAX {
                    match rx.try_recv() {
                        Ok(msg) => handle(&mut pipeline, &mut snapper, msg, &mut round),
                        Err(_) => break,
                    }
                }
            }
            Wake::Tick => {}
        }
        while let Ok(z) = synced_rx.try_recv() {
            synced_zxid = synced_zxid.max(z);
            log_busy = false;
        }
        if std::time::Instant::now() >= next_tick {
            next_tick = std::time::Instant::now() + tick;
            fresh.extend(
                pipeline
                    .tick(now)
                    .into_iter()
                    .map(|c| Held::Publish(Entry::Commit(c))),
            );
        }
        if cfg!(debug_assertions) {
            pipeline.check_invariants();
        }
        // Hold everything until its zxid is durable.
        let mut gate = logged_before;
        for item in fresh {
            match &item {
                Held::Publish(Entry::Commit(c)) => {
                    gate = c.txn.zxid;
                    pending_txns.push(c.txn.clone());
                    unflushed = true;
                }
                Held::Publish(Entry::SyncDone { .. }) => unflushed = true,
                _ => {}
            }
            held.push_back((gate, item));
        }
        // With the log idle, the waiting txns become the next log write (group commit: while
        // one write and its fdatasync are in flight, the next gathers here), and the tree after
        // them becomes a flush point. One version per log write, not per commit: taking a
        // version is O(1), but every later change then copies the map paths it touches.
        if unflushed && !log_busy {
            held.push_back((
                pipeline.last_zxid(),
                Held::Publish(Entry::Flush(pipeline.version())),
            ));
            unflushed = false;
            span_conns.clear();
            if !pending_txns.is_empty() {
                let txns = std::mem::take(&mut pending_txns);
                let n = txns.len();
                if log_tx.send(txns).is_err() {
                    return;
                }
                log_busy = true;
                snapper.logged(n, &pipeline);
            }
        }
        let mut release = Vec::new();
        while held.front().is_some_and(|(gate, _)| *gate <= synced_zxid) {
            match held.pop_front().expect("checked").1 {
                Held::Publish(entry) => release.push(entry),
                Held::ConnectReply(conn, reply, outcome) => {
                    release.push(Entry::ConnectReply {
                        conn,
                        reply,
                        outcome,
                    });
                }
            }
        }
        if !release.is_empty() {
            // The version at the last released flush point; with none released, the one
            // published before. Never `pipeline.version()`: that one holds txns the log has not
            // synced. Each log write ends with a flush point, so a released commit always comes
            // with it.
            let last_commit = release.iter().rposition(|e| matches!(e, Entry::Commit(_)));
            let last_flush = release.iter().rposition(|e| matches!(e, Entry::Flush(_)));
            assert!(
                last_commit <= last_flush,
                "a released commit without its flush point"
            );
            if let Some(Entry::Flush(v)) = last_flush.map(|i| &release[i]) {
                durable_version = v.clone();
            }
            let version = durable_version.clone();
            publish_version(&fronts, release, version, &pipeline, &shared).await;
        }
    }
}

/// What one round of the pipeline loop gathers: the entries it holds for the log, and (since the
/// last flush point) the connections that wrote or synced.
struct Round<'a> {
    fresh: &'a mut Vec<Held>,
    conns: &'a mut HashSet<ConnId>,
    now: i64,
}

impl Round<'_> {
    /// The version just before this write or sync, if its connection already wrote since the
    /// last flush point and has reads waiting behind that: those reads must not see this one.
    fn version_before(
        &mut self,
        pipeline: &Pipeline,
        conn: ConnId,
        reads_waiting: bool,
    ) -> Option<DataTree> {
        let repeat = !self.conns.insert(conn);
        (repeat && reads_waiting).then(|| pipeline.version())
    }
}

fn handle(pipeline: &mut Pipeline, snapper: &mut Snapper, msg: PipeMsg, round: &mut Round) {
    let now = round.now;
    match msg {
        PipeMsg::Connect { conn, req, reply } => {
            let (outcome, committed) = pipeline.connect(&req, now);
            if let Some(c) = committed {
                round.fresh.push(Held::Publish(Entry::Commit(c)));
            }
            if let ConnectOutcome::Accepted { session_id, .. } = outcome {
                if req.session_id != 0 {
                    round
                        .fresh
                        .push(Held::Publish(Entry::Resumed { session_id, conn }));
                }
            }
            round.fresh.push(Held::ConnectReply(conn, reply, outcome));
        }
        PipeMsg::Write {
            origin,
            session_id,
            req,
            auth,
            reads_waiting,
        } => {
            let before = round.version_before(pipeline, origin.conn, reads_waiting);
            let mut c = pipeline.write(origin, session_id, &req, &auth, now);
            c.version_before = before;
            round.fresh.push(Held::Publish(Entry::Commit(c)));
        }
        PipeMsg::Sync {
            origin,
            session_id,
            path,
            reads_waiting,
        } => {
            let version_before = round.version_before(pipeline, origin.conn, reads_waiting);
            pipeline.touch(&[session_id], now);
            round.fresh.push(Held::Publish(Entry::SyncDone {
                origin,
                path,
                zxid: pipeline.last_zxid(),
                version_before,
            }));
        }
        PipeMsg::Touch { sessions } => pipeline.touch(&sessions, now),
        PipeMsg::Report { dump, reply } => {
            let _ = reply.try_send(report(pipeline, dump));
        }
        PipeMsg::Snapshot { reply } => {
            snapper.take(pipeline, Some(reply));
        }
    }
}

async fn publish(
    fronts: &[flume::Sender<Batch>],
    entries: Vec<Entry>,
    pipeline: &Pipeline,
    shared: &Shared,
) {
    publish_version(fronts, entries, pipeline.version(), pipeline, shared).await;
}

/// Publishes released entries with the tree version after the last of them (never a version that
/// holds txns which are not durable yet).
async fn publish_version(
    fronts: &[flume::Sender<Batch>],
    entries: Vec<Entry>,
    version: DataTree,
    pipeline: &Pipeline,
    shared: &Shared,
) {
    let s = &shared.stats;
    s.last_zxid.store(version.last_zxid(), Relaxed);
    // ZooKeeper's node count includes the "" alias of the root.
    s.node_count.store(version.node_count() as i64 + 1, Relaxed);
    s.session_count
        .store(pipeline.sessions().len() as i64, Relaxed);
    let entries = Arc::new(entries);
    for front in fronts {
        // A front that has stopped is not waited for.
        let _ = front
            .send_async(Batch {
                entries: entries.clone(),
                version: version.clone(),
            })
            .await;
    }
}

/// `mntr`'s figures cost no walk of the tree or the sessions; `dump`'s listings do.
fn report(pipeline: &Pipeline, dump: bool) -> Report {
    let version = pipeline.version();
    let mut report = Report {
        ephemerals_count: version.ephemeral_count(),
        approximate_data_size: version.approximate_data_size(),
        ..Report::default()
    };
    if dump {
        let counts = version.ephemeral_counts();
        let mut ephemerals = format!("Sessions with Ephemerals ({}):\n", counts.len());
        for (session, _) in &counts {
            ephemerals.push_str(&format!("0x{session:x}:\n"));
            for path in version.ephemerals_of(*session) {
                ephemerals.push_str(&format!("\t{path}\n"));
            }
        }
        report.ephemerals = ephemerals;
        report.sessions = dump_sessions(pipeline);
    }
    report
}

fn dump_sessions(pipeline: &Pipeline) -> String {
    let mut by_deadline: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for s in pipeline.sessions().iter() {
        by_deadline.entry(s.deadline_ms).or_default().push(s.id);
    }
    let mut out = format!(
        "Session Sets ({})/({}):\n",
        by_deadline.len(),
        pipeline.sessions().len()
    );
    for (deadline, ids) in by_deadline {
        out.push_str(&format!(
            "{} expire at {}:\n",
            ids.len(),
            crate::fourlw::format_time_ms(deadline)
        ));
        for id in ids {
            out.push_str(&format!("\t0x{id:x}\n"));
        }
    }
    out
}
