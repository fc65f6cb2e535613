//! The pipeline core: drains front messages in arrival order into the engine's [`Node`] and
//! carries out what it decides: log writes (to the log task), batches published to every front,
//! snapshot jobs (to the snapshot thread). The rules (the durability gate, group commit, flush
//! points, when to snapshot) are the node's, tested in `engine/src/node/tests.rs`; this loop only
//! waits for messages, log completions and ticks, and feeds them in.

use crate::clock::{now_ms, wall_offset_ms};
use crate::log::{log_dir, LogWriter};
use crate::shared::{Batch, PipeMsg, Report, Shared, Start};
use crate::snapshot;
use ringkeeper_engine::node::{Entry, Input, Node, NodeConfig, Output};
use ringkeeper_engine::pipeline::{Pipeline, PipelineConfig};
use ringkeeper_engine::prep::PrepConfig;
use ringkeeper_engine::session::{SessionConfig, SessionTable};
use ringkeeper_engine::tree::DataTree;
use ringkeeper_engine::txn::Txn;
use std::collections::HashMap;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Most messages folded into one published batch.
const BATCH_MSGS_MAX: usize = 1024;

pub fn pipeline_config(shared: &Shared) -> PipelineConfig {
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
    let mut gate = crate::stop::Gate::default();
    loop {
        use crate::stop::Next;
        let batch = match gate.next(&rx, &shared.stop).await {
            Next::Item(batch) => batch,
            Next::Closed => return,
            Next::Stop => crate::stop::exit_stopped(shared.stats.log_synced_zxid.load(SeqCst)),
        };
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
        shared.stats.record_log_batch(
            batch.len(),
            started.elapsed().as_micros() as u64,
            shared.cfg.fsync_warn_ms,
        );
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

/// Where the node's outputs go.
struct Effects<'a> {
    shared: &'a Shared,
    fronts: &'a [flume::Sender<Batch>],
    log: flume::Sender<Vec<Txn>>,
    snapshots: flume::Sender<snapshot::Job>,
    /// `snap` words waiting for their snapshot, by the token the node was given.
    snap_askers: HashMap<u64, flume::Sender<String>>,
    next_token: u64,
}

impl Effects<'_> {
    /// Carries out the node's outputs, in order. False once the log task is gone.
    async fn run(&mut self, outputs: Vec<Output>, pipeline: &Pipeline) -> bool {
        for out in outputs {
            match out {
                Output::AppendLog(txns) => {
                    if self.log.send(txns).is_err() {
                        return false;
                    }
                }
                Output::Publish { entries, version } => {
                    publish_version(
                        self.fronts,
                        entries,
                        version,
                        pipeline.sessions(),
                        self.shared,
                    )
                    .await;
                }
                Output::WriteSnapshot {
                    tree,
                    sessions,
                    token,
                } => {
                    let job = snapshot::Job {
                        tree,
                        sessions,
                        reply: token.and_then(|t| self.snap_askers.remove(&t)),
                    };
                    self.snapshots
                        .try_send(job)
                        .expect("the snapshot queue has room while no snapshot is being written");
                }
                Output::SnapshotSkipped => tracing::warn!(
                    "too busy to snapshot: the previous one is still being written; skipping"
                ),
                Output::SnapshotBusy { token } => {
                    if let Some(asker) = self.snap_askers.remove(&token) {
                        let _ = asker.try_send("busy: a snapshot is being written\n".to_string());
                    }
                }
            }
        }
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
    let dir = log_dir(&shared.cfg.data_log_dir);
    let writer = LogWriter::open_after(
        &dir,
        log_tail.as_ref(),
        pipeline.last_zxid(),
        shared.cfg.prealloc_bytes,
        crate::log::Durability::of(shared.cfg.force_sync, false),
    )
    .await;
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

    let node_cfg = NodeConfig {
        snap_count: shared.cfg.snap_count,
        pending_txns_max: PENDING_TXNS_MAX,
    };
    // The seed rolls the snapshot thresholds, so servers started together do not snapshot at once.
    let mut node = Node::new(pipeline, node_cfg, rand::random());
    node.set_wall_offset(wall_offset_ms());
    let mut effects = Effects {
        shared: &shared,
        fronts: &fronts,
        log: log_tx,
        snapshots: snap_tx,
        snap_askers: HashMap::new(),
        next_token: 0,
    };
    let started = node.start(replayed);
    if !effects.run(started, node.pipeline()).await {
        return;
    }
    let tick = Duration::from_millis((shared.cfg.tick_ms as u64 / 4).clamp(5, 500));
    let mut next_tick = std::time::Instant::now() + tick;
    loop {
        let wait = next_tick.saturating_duration_since(std::time::Instant::now());
        let accepting = node.accepting();
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
        node.set_wall_offset(wall_offset_ms());
        let mut outputs = Vec::new();
        match wake {
            Wake::Closed => return,
            Wake::Synced(z) => node.log_synced(z),
            Wake::Msg(msg) => {
                outputs.extend(handle(&mut node, &mut effects, msg, now));
                for _ in 1..BATCH_MSGS_MAX {
                    match rx.try_recv() {
                        Ok(msg) => outputs.extend(handle(&mut node, &mut effects, msg, now)),
                        Err(_) => break,
                    }
                }
            }
            Wake::Tick => {}
        }
        while let Ok(z) = synced_rx.try_recv() {
            node.log_synced(z);
        }
        if std::time::Instant::now() >= next_tick {
            next_tick = std::time::Instant::now() + tick;
            node.tick(now);
        }
        if cfg!(debug_assertions) {
            node.check_invariants();
        }
        outputs.extend(node.end_round());
        if !effects.run(outputs, node.pipeline()).await {
            return;
        }
    }
}

/// Feeds one front message to the node; answers the queries that need no decision.
fn handle(node: &mut Node, effects: &mut Effects, msg: PipeMsg, now: i64) -> Vec<Output> {
    let input = match msg {
        PipeMsg::Node(input) => input,
        PipeMsg::Report { dump, reply } => {
            let p = node.pipeline();
            let _ = reply.try_send(report(&p.version(), p.sessions(), dump));
            return Vec::new();
        }
        PipeMsg::Snapshot { reply } => {
            let token = effects.next_token;
            effects.next_token += 1;
            effects.snap_askers.insert(token, reply);
            Input::SnapshotAsked { token }
        }
        PipeMsg::SnapshotWritten => {
            node.snapshot_written();
            return Vec::new();
        }
    };
    node.handle(input, now)
}

/// Publishes released entries with the tree version after the last of them (never a version that
/// holds txns which are not durable yet).
pub async fn publish_version(
    fronts: &[flume::Sender<Batch>],
    entries: Vec<Entry>,
    version: DataTree,
    sessions: &SessionTable,
    shared: &Shared,
) {
    let s = &shared.stats;
    s.last_zxid.store(version.last_zxid(), Relaxed);
    // ZooKeeper's node count includes the "" alias of the root.
    s.node_count.store(version.node_count() as i64 + 1, Relaxed);
    s.session_count.store(sessions.len() as i64, Relaxed);
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
pub fn report(version: &DataTree, sessions: &SessionTable, dump: bool) -> Report {
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
            let paths = version.ephemerals_of(*session);
            for path in &paths {
                ephemerals.push_str(&format!("\t{path}\n"));
            }
            report.ephemerals_by_session.push((*session, paths));
        }
        report.ephemerals = ephemerals;
        report.sessions = dump_sessions(sessions);
        let mut by_deadline: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for s in sessions.iter() {
            let wall = s.deadline_ms + crate::clock::wall_offset_ms();
            by_deadline.entry(wall).or_default().push(s.id);
        }
        report.sessions_by_deadline = by_deadline.into_iter().collect();
        report.session_timeouts = sessions.iter().map(|s| (s.id, s.timeout_ms)).collect();
        report.session_timeouts.sort_unstable();
        report.tree = Some(version.clone());
    }
    report
}

fn dump_sessions(sessions: &SessionTable) -> String {
    let mut by_deadline: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for s in sessions.iter() {
        by_deadline.entry(s.deadline_ms).or_default().push(s.id);
    }
    let mut out = format!(
        "Session Sets ({})/({}):\n",
        by_deadline.len(),
        sessions.len()
    );
    for (deadline, ids) in by_deadline {
        out.push_str(&format!(
            "{} expire at {}:\n",
            ids.len(),
            // Deadlines run on the clock that never jumps; printed as wall time.
            crate::clock::format_time_ms(deadline + crate::clock::wall_offset_ms())
        ));
        for id in ids {
            out.push_str(&format!("\t0x{id:x}\n"));
        }
    }
    out
}
