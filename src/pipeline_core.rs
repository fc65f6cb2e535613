//! The pipeline core: drains front messages in arrival order, runs them through the engine's
//! [`Pipeline`], and publishes each batch of committed entries with the tree version after it.
//!
//! Until the durable log lands (issue 4), a txn is committed as soon as it is prepped: state
//! lives in memory only, and the startup log says so.

use crate::server::{Batch, Entry, PipeMsg, Report, Shared};
use ringkeeper_engine::pipeline::{ConnectOutcome, Pipeline, PipelineConfig};
use ringkeeper_engine::prep::PrepConfig;
use ringkeeper_engine::session::SessionConfig;
use std::sync::atomic::Ordering::Relaxed;
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
    Closed,
    Tick,
}

pub async fn run(
    shared: Arc<Shared>,
    rx: flume::Receiver<PipeMsg>,
    fronts: Vec<flume::Sender<Batch>>,
    secret: u64,
) {
    let mut pipeline = Pipeline::new(pipeline_config(&shared), now_ms(), secret);
    let tick = Duration::from_millis((shared.cfg.tick_ms as u64 / 4).clamp(5, 500));
    tracing::warn!("no durable log yet: all state is held in memory and lost on restart");
    // The initial version, so fronts can serve before the first write.
    publish(&fronts, Vec::new(), &pipeline, &shared).await;
    let mut next_tick = std::time::Instant::now() + tick;
    loop {
        let wait = next_tick.saturating_duration_since(std::time::Instant::now());
        let wake = futures_lite::future::or(
            async { rx.recv_async().await.map(Wake::Msg).unwrap_or(Wake::Closed) },
            async {
                glommio::timer::sleep(wait).await;
                Wake::Tick
            },
        )
        .await;
        let mut entries = Vec::new();
        let now = now_ms();
        match wake {
            Wake::Closed => return,
            Wake::Msg(msg) => {
                handle(&mut pipeline, msg, now, &mut entries);
                for _ in 1..BATCH_MSGS_MAX {
                    match rx.try_recv() {
                        Ok(msg) => handle(&mut pipeline, msg, now, &mut entries),
                        Err(_) => break,
                    }
                }
            }
            Wake::Tick => {}
        }
        if std::time::Instant::now() >= next_tick {
            next_tick = std::time::Instant::now() + tick;
            entries.extend(pipeline.tick(now).into_iter().map(Entry::Commit));
        }
        if cfg!(debug_assertions) {
            pipeline.check_invariants();
        }
        if !entries.is_empty() {
            publish(&fronts, entries, &pipeline, &shared).await;
        }
    }
}

fn handle(pipeline: &mut Pipeline, msg: PipeMsg, now: i64, entries: &mut Vec<Entry>) {
    match msg {
        PipeMsg::Connect { conn, req, reply } => {
            let (outcome, committed) = pipeline.connect(&req, now);
            if let Some(c) = committed {
                entries.push(Entry::Commit(c));
            }
            if let ConnectOutcome::Accepted { session_id, .. } = outcome {
                if req.session_id != 0 {
                    entries.push(Entry::Resumed { session_id, conn });
                }
            }
            // The connection may be gone already; then nobody needs the answer.
            let _ = reply.try_send(outcome);
        }
        PipeMsg::Write {
            origin,
            session_id,
            req,
            auth,
        } => {
            entries.push(Entry::Commit(
                pipeline.write(origin, session_id, &req, &auth, now),
            ));
        }
        PipeMsg::Sync {
            origin,
            session_id,
            path,
        } => {
            pipeline.touch(&[session_id], now);
            entries.push(Entry::SyncDone {
                origin,
                path,
                zxid: pipeline.last_zxid(),
            });
        }
        PipeMsg::Touch { sessions } => pipeline.touch(&sessions, now),
        PipeMsg::Report { reply } => {
            let _ = reply.try_send(report(pipeline));
        }
    }
}

async fn publish(
    fronts: &[flume::Sender<Batch>],
    entries: Vec<Entry>,
    pipeline: &Pipeline,
    shared: &Shared,
) {
    let version = pipeline.version();
    let s = &shared.stats;
    s.last_zxid.store(pipeline.last_zxid(), Relaxed);
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

fn report(pipeline: &Pipeline) -> Report {
    let version = pipeline.version();
    let counts = version.ephemeral_counts();
    let mut ephemerals = format!("Sessions with Ephemerals ({}):\n", counts.len());
    for (session, _) in &counts {
        ephemerals.push_str(&format!("0x{session:x}:\n"));
        for path in version.ephemerals_of(*session) {
            ephemerals.push_str(&format!("\t{path}\n"));
        }
    }
    Report {
        sessions: dump_sessions(pipeline),
        ephemerals,
        ephemerals_count: counts.iter().map(|(_, n)| n).sum(),
        approximate_data_size: version.approximate_data_size(),
    }
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
