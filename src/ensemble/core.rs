//! The member core: the ensemble counterpart of `pipeline_core.rs`. It owns the engine's
//! [`Member`] and carries out its outputs: votes and quorum messages (through [`Net`]), the
//! epoch files, log appends, truncations and snapshot installs (through the log task, in
//! order), batches published to every front, and closing every client connection when the
//! server stops serving. It feeds the member what arrives: the fronts' requests, the sockets'
//! events, log completions and the time. The rules are the member's and the peer's
//! (`engine/src/zab/`); this loop only waits and carries out.

use super::disk::{self, ACCEPTED_EPOCH, CURRENT_EPOCH};
use super::net::{Net, NetEvent};
use crate::clock::{now_ms, wall_ms, wall_offset_ms};
use crate::config::ensemble::Ensemble;
use crate::log::{log_dir, LogWriter};
use crate::pipeline_core::{pipeline_config, publish_version, report};
use crate::shared::{Batch, Control, PipeMsg, Shared, Start};
use crate::stats::mode;
use bytes::Bytes;
use ringkeeper_engine::node::Input;
use ringkeeper_engine::pipeline::{Pipeline, PipelineConfig};
use ringkeeper_engine::snap::SnapSession;
use ringkeeper_engine::tree::DataTree;
use ringkeeper_engine::txn::Txn;
use ringkeeper_engine::zab::epoch_of;
use ringkeeper_engine::zab::member::{Member, Output};
use ringkeeper_engine::zab::peer::{self, PeerConfig, Persisted, Role};
use ringkeeper_engine::zab::wire::Sender;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Txns a member keeps for DIFF, at most, and their bytes at most (ZooKeeper reads a learner's
/// DIFF back from its log where its 500 in memory do not reach; a window this size covers what
/// its default snapCount of 100,000 keeps in the log after the last snapshot). Both shrink to
/// fit a quarter of `ringkeeper.learnerQueueBytes`, so the part of a DIFF taken from the
/// window (each txn a PROPOSAL and a COMMIT) always fits a learner's queue with room for the
/// writes that follow it; older txns are streamed from the log as the connection drains.
const DIFF_WINDOW_TXNS: usize = 100_000;
const DIFF_WINDOW_BYTES: u64 = 32 << 20;

/// The DIFF window for a learner queue of `queue_bytes`: (txns, bytes of txns).
fn diff_window(queue_bytes: u64) -> (usize, u64) {
    let share = queue_bytes / 4;
    let per_txn = 2 * std::mem::size_of::<ringkeeper_engine::zab::peer::Msg>() as u64;
    let bytes = DIFF_WINDOW_BYTES.min(share / 2);
    let txns = (DIFF_WINDOW_TXNS as u64).min(share / 2 / per_txn).max(1) as usize;
    (txns, bytes)
}
/// ZooKeeper's `maxNotificationInterval`.
const MAX_NOTIFICATION_INTERVAL_MS: i64 = 60_000;
/// ZooKeeper's `leaderConnectDelayDuringRetryMs`.
const LEADER_CONNECT_RETRY_MS: i64 = 100;
/// Front messages handled before the core looks at its other inputs again.
const FRONT_MSGS_PER_ROUND: usize = 1024;
/// Sockets' events handled before the core carries out what they caused.
const NET_EVENTS_PER_ROUND: usize = 1024;
/// Sockets' events queued for the core; a full queue makes their tasks wait.
const NET_EVENTS_MAX: usize = 4096;

/// The configuration text ZooKeeper sends with votes and NEWLEADER and keeps in
/// `/zookeeper/config` (`QuorumVerifier`'s form; a line's client address only when the line
/// gives one).
pub fn config_text(e: &Ensemble) -> String {
    let mut out = String::new();
    for s in &e.servers {
        let kind = if s.observer {
            "observer"
        } else {
            "participant"
        };
        let host = if s.host.contains(':') {
            format!("[{}]", s.host)
        } else {
            s.host.clone()
        };
        out.push_str(&format!(
            "server.{}={host}:{}:{}:{kind}",
            s.id, s.quorum_port, s.election_port
        ));
        if let Some(c) = s.client {
            out.push_str(&format!(";{c}"));
        }
        out.push('\n');
    }
    out.push_str("version=0");
    out
}

enum LogCmd {
    Append(Vec<Txn>),
    Truncate {
        zxid: i64,
        done: flume::Sender<Result<(), String>>,
    },
    Install {
        tree: DataTree,
        sessions: Vec<SnapSession>,
        done: flume::Sender<Result<(), String>>,
    },
}

/// The log's work, in order: appends (queued ones go down together, one fdatasync), and the
/// rewrites a learner's sync asks for. Any failure is final: the process exits.
async fn log_task(
    mut writer: Option<LogWriter>,
    rx: flume::Receiver<LogCmd>,
    synced: flume::Sender<i64>,
    shared: Arc<Shared>,
) {
    let cfg = &shared.cfg;
    let dir = log_dir(&cfg.data_log_dir);
    let mut held: Option<LogCmd> = None;
    let mut gate = crate::stop::Gate::default();
    loop {
        use crate::stop::Next;
        let cmd = match held.take() {
            Some(c) => c,
            None => match gate.next(&rx, &shared.stop).await {
                Next::Item(c) => c,
                Next::Closed => return,
                Next::Stop => crate::stop::exit_stopped(shared.stats.log_synced_zxid.load(SeqCst)),
            },
        };
        match cmd {
            LogCmd::Append(mut batch) => {
                // Queued appends go down together; when stopping, only those queued before.
                while gate.take_one_more() {
                    let Ok(next) = rx.try_recv() else { break };
                    match next {
                        LogCmd::Append(more) => batch.extend(more),
                        other => {
                            held = Some(other);
                            break;
                        }
                    }
                }
                let last = batch.last().expect("appends are never empty").zxid;
                let w = writer.as_mut().expect("a writer between rewrites");
                let started = std::time::Instant::now();
                if let Err(e) = w.append(&batch).await {
                    tracing::error!(error = %e, zxid = format_args!("{last:#x}"), "transaction log write or fdatasync failed; stopping");
                    std::process::exit(2);
                }
                shared.stats.record_log_batch(
                    batch.len(),
                    started.elapsed().as_micros() as u64,
                    cfg.fsync_warn_ms,
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
            LogCmd::Truncate { zxid, done } => {
                if let Some(w) = writer.take() {
                    w.close().await;
                }
                let result = disk::truncate_log(&cfg.data_dir, &cfg.data_log_dir, zxid);
                // Everything through the point is durable (the snapshot thread waits on this).
                shared.stats.log_synced_zxid.fetch_max(zxid, SeqCst);
                writer = Some(reopen(&dir, zxid, &shared).await);
                let _ = done.send_async(result).await;
            }
            LogCmd::Install {
                tree,
                sessions,
                done,
            } => {
                if let Some(w) = writer.take() {
                    w.close().await;
                }
                let zxid = tree.last_zxid();
                shared.stats.log_synced_zxid.fetch_max(zxid, SeqCst);
                let result = disk::install(&cfg.data_dir, &cfg.data_log_dir, tree, sessions)
                    .map(|w| {
                        tracing::info!(path = %w.path.display(), zxid = format_args!("{zxid:#x}"), bytes = w.bytes, "installed the leader's snapshot");
                    });
                writer = Some(reopen(&dir, zxid, &shared).await);
                let _ = done.send_async(result).await;
            }
        }
    }
}

/// A writer after the log was rewritten: appending to the segment that now ends the log, or
/// a new one after `last`.
async fn reopen(dir: &std::path::Path, last: i64, shared: &Shared) -> LogWriter {
    let cfg = &shared.cfg;
    let opened = async {
        let recovered = crate::log::recover(dir, last).map_err(std::io::Error::other)?;
        LogWriter::open_after(
            dir,
            recovered.tail.as_ref(),
            last,
            cfg.prealloc_bytes,
            crate::log::Durability::of(cfg.force_sync, true),
        )
        .await
    };
    match opened.await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot reopen the transaction log; stopping");
            std::process::exit(2);
        }
    }
}

enum Wake {
    Front(PipeMsg),
    Net(NetEvent),
    Synced(i64),
    Time,
    Closed,
}

struct Core {
    shared: Arc<Shared>,
    fronts: Vec<flume::Sender<Batch>>,
    member: Member,
    net: Net,
    log: flume::Sender<LogCmd>,
    pcfg: PipelineConfig,
    wake_at: i64,
    serving: bool,
    /// The membership text (`/zookeeper/config`, votes, NEWLEADER).
    config: Bytes,
    snapshots: flume::Sender<crate::snapshot::Job>,
    /// `snap` words waiting for their snapshot, by the token the member was given.
    snap_askers: std::collections::HashMap<u64, flume::Sender<String>>,
    next_token: u64,
    /// When this server last started electing (for the log line once it serves again).
    looking_since: Option<std::time::Instant>,
    /// Where log reads for learners' syncs report (the sockets' channel).
    log_reads: flume::Sender<NetEvent>,
}

impl Core {
    /// Carries out the member's outputs, in order (and those of `truncated`, which a
    /// truncation's outputs end with).
    async fn carry(&mut self, outputs: Vec<Output>) {
        let mut queue: VecDeque<Output> = outputs.into();
        // The round's entries for the fronts go to them last, as one batch (`Member::flush`).
        while let Some(o) = queue.pop_front().or_else(|| self.member.flush()) {
            match o {
                Output::Io(io) => self.io(io),
                Output::Publish { entries, version } => {
                    publish_version(
                        &self.fronts,
                        entries,
                        version,
                        self.member.sessions(),
                        &self.shared,
                    )
                    .await;
                }
                Output::Role(role) => self.role(role).await,
                Output::WriteSnapshot {
                    tree,
                    sessions,
                    token,
                } => {
                    let job = crate::snapshot::Job {
                        tree,
                        sessions,
                        reply: token.and_then(|t| self.snap_askers.remove(&t)),
                    };
                    self.snapshots
                        .try_send(job)
                        .expect("the snapshot queue has room while no snapshot is being written");
                }
                Output::SnapshotBusy { token } => {
                    if let Some(asker) = self.snap_askers.remove(&token) {
                        let _ = asker.try_send(
                            "busy: a snapshot is being written, or this member is not serving\n"
                                .to_string(),
                        );
                    }
                }
                Output::Truncate(zxid) => {
                    let (done, wait) = flume::bounded(1);
                    let _ = self.log.send_async(LogCmd::Truncate { zxid, done }).await;
                    let rebuilt = match wait.recv_async().await {
                        Ok(Ok(())) => {
                            let cfg = &self.shared.cfg;
                            disk::rebuild(
                                &cfg.data_dir,
                                &cfg.data_log_dir,
                                &self.pcfg,
                                zxid,
                                now_ms(),
                            )
                        }
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err("the log task stopped".to_string()),
                    };
                    match rebuilt {
                        Ok((mut tree, sessions)) => {
                            tree.set_config(self.config.clone(), wall_ms());
                            tracing::info!(
                                zxid = format_args!("{zxid:#x}"),
                                "log truncated to the leader's history (TRUNC)"
                            );
                            let more = self.member.truncated(tree, &sessions, now_ms());
                            queue.extend(more);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot truncate the log as the leader asked; stopping");
                            std::process::exit(2);
                        }
                    }
                }
                Output::Install {
                    zxid: _,
                    tree,
                    sessions,
                } => {
                    let (done, wait) = flume::bounded(1);
                    let cmd = LogCmd::Install {
                        tree,
                        sessions,
                        done,
                    };
                    let _ = self.log.send_async(cmd).await;
                    if !matches!(wait.recv_async().await, Ok(Ok(()))) {
                        tracing::error!("cannot install the leader's snapshot; stopping");
                        std::process::exit(2);
                    }
                }
            }
        }
    }

    fn io(&mut self, io: peer::Output) {
        let cfg = &self.shared.cfg;
        match io {
            peer::Output::Vote { to, note } => self.net.vote(to, &note),
            peer::Output::Send { to, conn, msg } => {
                match &msg {
                    peer::Msg::Diff { zxid } => {
                        tracing::info!(
                            learner = to,
                            zxid = format_args!("{zxid:#x}"),
                            "syncing a learner by DIFF (the txns it lacks follow)"
                        )
                    }
                    peer::Msg::Trunc { zxid } => {
                        tracing::info!(
                            learner = to,
                            zxid = format_args!("{zxid:#x}"),
                            "syncing a learner by TRUNC (it drops txns past this zxid)"
                        )
                    }
                    peer::Msg::Snap { zxid, image } => {
                        tracing::info!(
                            learner = to,
                            zxid = format_args!("{zxid:#x}"),
                            nodes = image.tree.node_count(),
                            "syncing a learner by SNAP (a whole snapshot)"
                        )
                    }
                    _ => {}
                }
                self.net.send(to, conn, msg)
            }
            peer::Output::Close { conn, .. } => self.net.close(conn),
            peer::Output::WakeAt(at) => self.wake_at = self.wake_at.min(at),
            peer::Output::SaveAcceptedEpoch(e) | peer::Output::SaveCurrentEpoch(e) => {
                let name = if matches!(io, peer::Output::SaveAcceptedEpoch(_)) {
                    ACCEPTED_EPOCH
                } else {
                    CURRENT_EPOCH
                };
                if let Err(err) = disk::write_epoch(&cfg.data_dir, name, e) {
                    tracing::error!(file = name, error = %err, "cannot write an epoch file; stopping");
                    std::process::exit(2);
                }
            }
            peer::Output::Append(txns) => {
                if self.log.try_send(LogCmd::Append(txns)).is_err() {
                    tracing::error!("the log task stopped; stopping");
                    std::process::exit(2);
                }
            }
            peer::Output::LearnerSynced {
                learner,
                how,
                txns,
                ms,
            } => {
                let st = &self.shared.stats;
                match how {
                    peer::SyncKind::Snap => st.snap_syncs.fetch_add(1, Relaxed),
                    peer::SyncKind::Diff | peer::SyncKind::Trunc => {
                        st.diff_syncs.fetch_add(1, Relaxed)
                    }
                };
                tracing::info!(
                    learner,
                    how = how.name(),
                    txns,
                    ms,
                    "a learner is in step (UPTODATE sent)"
                )
            }
            peer::Output::ReadLog {
                to,
                conn,
                after,
                through,
                limits,
            } => {
                // Read on a thread: a DIFF from the log can be hundreds of MB of segments.
                let dir = crate::log::log_dir(&cfg.data_log_dir);
                let events = self.log_reads.clone();
                let read = move || {
                    let started = std::time::Instant::now();
                    let range = crate::log::read_range(&dir, after, through, limits);
                    let ms = started.elapsed().as_millis() as u64;
                    let range = match range {
                        Ok(Some(r)) => {
                            tracing::info!(learner = to, txns = r.txns, bytes = r.bytes, ms,
                                "read txns back from the log for a DIFF (the learner is behind the window kept in memory); they are read again as they are sent");
                            Some(r)
                        }
                        Ok(None) => {
                            tracing::info!(learner = to, ms,
                                "the log does not hold what the learner lacks, or it is more than snapshotSizeFactor of the tree: SNAP");
                            None
                        }
                        Err(e) => {
                            tracing::warn!(learner = to, error = %e, "cannot read the log back for a DIFF: SNAP");
                            None
                        }
                    };
                    let _ = events.send(NetEvent::LogRead { to, conn, range });
                };
                if let Err(e) = std::thread::Builder::new()
                    .name("rk-log-read".into())
                    .spawn(read)
                {
                    tracing::warn!(error = %e, "cannot start a thread to read the log: SNAP");
                    let _ = self.log_reads.try_send(NetEvent::LogRead {
                        to,
                        conn,
                        range: None,
                    });
                }
            }
            other => unreachable!("the member carries out {other:?}"),
        }
    }

    async fn role(&mut self, role: Role) {
        let (m, serving) = match role {
            Role::Leading {
                established: true, ..
            } => (mode::LEADER, true),
            Role::Following {
                serving: true,
                observer,
                ..
            } => (
                if observer {
                    mode::OBSERVER
                } else {
                    mode::FOLLOWER
                },
                true,
            ),
            _ => (mode::NOT_SERVING, false),
        };
        let epoch = self.member.peer().current_epoch();
        let election_ms = self
            .looking_since
            .map_or(0, |t| t.elapsed().as_millis() as u64);
        match role {
            Role::Leading {
                established: true, ..
            } => tracing::info!(
                epoch,
                election_ms,
                "leading: a quorum acknowledged this server as leader"
            ),
            Role::Following {
                leader,
                serving: true,
                observer,
            } => tracing::info!(
                leader,
                epoch,
                observer,
                election_ms,
                "serving: in step with the leader"
            ),
            Role::Looking => {
                self.looking_since = Some(std::time::Instant::now());
                tracing::info!("looking: electing a leader")
            }
            _ => tracing::debug!(?role, "role"),
        }
        self.shared.stats.mode.store(m, Relaxed);
        let leader_serves = (self.shared.cfg.ensemble.as_ref()).is_none_or(|e| e.leader_serves);
        let takes = serving && (m != mode::LEADER || leader_serves);
        self.shared.stats.takes_clients.store(takes, Relaxed);
        let leader_id = match role {
            Role::Leading {
                established: true, ..
            } => self.shared.cfg.server_id,
            Role::Following {
                leader,
                serving: true,
                ..
            } => leader,
            _ => 0,
        };
        self.shared.stats.leader_id.store(leader_id, Relaxed);
        if serving && !self.serving && self.looking_since.is_some() {
            let stats = &self.shared.stats;
            stats
                .election_ms
                .lock()
                .expect("not poisoned")
                .record(election_ms);
        }
        let leading_since = if m == mode::LEADER { now_ms() } else { 0 };
        self.shared
            .stats
            .leading_since_ms
            .store(leading_since, Relaxed);
        if self.serving && !takes {
            for c in &self.shared.controls {
                let _ = c.send_async(Control::CloseClients).await;
            }
        }
        self.serving = serving;
    }

    fn net_event(&mut self, ev: NetEvent, now: i64) -> Vec<Output> {
        match ev {
            NetEvent::Vote { from, note } => self.member.vote_received(from, &note, now),
            NetEvent::Msg { from, conn, msg } => self.member.message(from, conn, msg, now),
            NetEvent::Closed { from, conn } => self.member.closed(from, conn, now),
            NetEvent::LogRead { to, conn, range } => self.member.log_read(to, conn, range, now),
        }
    }

    fn front(&mut self, msg: PipeMsg, now: i64) -> Vec<Output> {
        match msg {
            PipeMsg::Node(input) => self.member.input(input, now),
            PipeMsg::Report { dump, reply } => {
                let r = report(self.member.tree(), self.member.sessions(), dump);
                let _ = reply.try_send(r);
                Vec::new()
            }
            PipeMsg::Snapshot { reply } => {
                let token = self.next_token;
                self.next_token += 1;
                self.snap_askers.insert(token, reply);
                self.member.input(Input::SnapshotAsked { token }, now)
            }
            PipeMsg::SnapshotWritten => {
                self.member.snapshot_written();
                Vec::new()
            }
        }
    }
}

/// Runs the member core until the fronts are gone.
pub async fn run(
    shared: Arc<Shared>,
    rx: flume::Receiver<PipeMsg>,
    fronts: Vec<flume::Sender<Batch>>,
    start: Start,
    ensemble: Ensemble,
    snapshots: flume::Sender<crate::snapshot::Job>,
) {
    let cfg = shared.cfg.clone();
    let now = now_ms();
    let mut pcfg = pipeline_config(&shared);
    pcfg.session.server_id = ensemble.my_id;
    // The tree and sessions recovery read, replayed.
    let mut pipeline = Pipeline::new(pcfg.clone(), now, 0);
    let snapshot_zxid = start.snapshot.as_ref().map_or(0, |s| s.last_zxid);
    if let Some(snapshot) = start.snapshot {
        pipeline.restore(snapshot, now);
    }
    let skipped = start.txns.len().saturating_sub(DIFF_WINDOW_TXNS);
    let recent: Vec<Txn> = start.txns.iter().skip(skipped).cloned().collect();
    // Recovery read the log from the txn right after the snapshot.
    let recent_base = match skipped {
        0 => snapshot_zxid,
        n => start.txns[n - 1].zxid,
    };
    for txn in start.txns {
        pipeline.replay(txn, now);
    }
    let last_zxid = pipeline.last_zxid();
    let epoch_file = |name: &str| match disk::read_epoch(&cfg.data_dir, name) {
        Ok(Some(e)) => e,
        Ok(None) => {
            // ZooKeeper's first start after an upgrade: the epoch of the last zxid.
            let e = epoch_of(last_zxid);
            if let Err(err) = disk::write_epoch(&cfg.data_dir, name, e) {
                eprintln!(
                    "ringkeeper: cannot write {name} in {}: {err}",
                    cfg.data_dir.display()
                );
                std::process::exit(1);
            }
            e
        }
        Err(e) => {
            eprintln!("ringkeeper: {e}");
            std::process::exit(1);
        }
    };
    let persisted = Persisted {
        accepted_epoch: epoch_file(ACCEPTED_EPOCH),
        current_epoch: epoch_file(CURRENT_EPOCH),
        last_zxid,
        recent,
        recent_base,
        snapshot_zxid,
    };
    let config = Bytes::from(config_text(&ensemble));
    let mut tree = pipeline.version();
    tree.set_config(config.clone(), wall_ms());
    let sessions = pipeline.sessions().snap_sessions();
    shared.stats.log_synced_zxid.store(last_zxid, SeqCst);
    shared.stats.mode.store(mode::NOT_SERVING, Relaxed);
    shared.stats.takes_clients.store(false, Relaxed);
    // The fronts start from the recovered tree (they serve nobody until a leader is found).
    publish_version(
        &fronts,
        Vec::new(),
        tree.clone(),
        pipeline.sessions(),
        &shared,
    )
    .await;

    let dir = log_dir(&cfg.data_log_dir);
    let writer = LogWriter::open_after(
        &dir,
        start.log_tail.as_ref(),
        last_zxid,
        cfg.prealloc_bytes,
        crate::log::Durability::of(cfg.force_sync, true),
    )
    .await;
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "ringkeeper: cannot open the transaction log in {}: {e}",
                dir.display()
            );
            std::process::exit(1);
        }
    };
    let (log_tx, log_rx) = flume::unbounded::<LogCmd>();
    let (synced_tx, synced_rx) = flume::unbounded::<i64>();
    let log_tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(1000),
        glommio::Latency::NotImportant,
        "log",
    );
    glommio::spawn_local_into(
        log_task(Some(writer), log_rx, synced_tx, shared.clone()),
        log_tq,
    )
    .expect("log task queue")
    .detach();

    let sender = Sender {
        my_id: ensemble.my_id,
        config_version: 0,
        config: config.clone(),
    };
    let (net_tx, net_rx) = flume::bounded(NET_EVENTS_MAX);
    let packet_max = cfg.jute_max_buffer * 4 + (1 << 20);
    let log_reads = net_tx.clone();
    let log_dir = crate::log::log_dir(&cfg.data_log_dir);
    let net = match Net::start(&ensemble, sender, net_tx, packet_max, log_dir).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!(
                "ringkeeper: cannot listen on the {e} (server.{})",
                ensemble.my_id
            );
            std::process::exit(1);
        }
    };
    let mut voters = Vec::new();
    let mut observers = Vec::new();
    for s in &ensemble.servers {
        if s.observer {
            observers.push(s.id);
        } else {
            voters.push(s.id);
        }
    }
    let (window_txns, window_bytes) = diff_window(ensemble.learner_queue_bytes);
    let peer_cfg = PeerConfig {
        my_id: ensemble.my_id,
        voters,
        observers,
        tick_ms: cfg.tick_ms,
        init_limit: ensemble.init_limit,
        sync_limit: ensemble.sync_limit,
        diff_window: window_txns,
        diff_window_bytes: window_bytes,
        diff_always: ensemble.commit_log_count,
        snapshot_size_factor: ensemble.snapshot_size_factor,
        finalize_wait_ms: ensemble.finalize_wait_ms,
        max_notification_interval_ms: MAX_NOTIFICATION_INTERVAL_MS,
        config: config.clone(),
        leader_connect_retry_ms: LEADER_CONNECT_RETRY_MS,
        // Connection ids a restarted server opens must differ from its last run's.
        first_conn: now as u64,
    };
    tracing::info!(
        my_id = ensemble.my_id,
        last_zxid = format_args!("{last_zxid:#x}"),
        accepted_epoch = persisted.accepted_epoch,
        current_epoch = persisted.current_epoch,
        "ensemble member starting: electing a leader"
    );
    let (mut member, out) = Member::start(
        pcfg.clone(),
        peer_cfg,
        persisted,
        tree,
        &sessions,
        // ZooKeeper's own derivation, so a session moves between Java and Ringkeeper members.
        ringkeeper_engine::session::Passwords::ZooKeeper,
        // The seed rolls the snapshot thresholds, so members do not snapshot at once.
        (cfg.snap_count, rand::random()),
        now,
    );
    member.set_wall_offset(wall_offset_ms());
    member.set_leader_serves(ensemble.leader_serves);
    if !ensemble.leader_serves {
        tracing::info!("leaderServes=no: while this member leads it takes no clients");
    }
    let mut core = Core {
        shared: shared.clone(),
        fronts,
        member,
        net,
        log: log_tx,
        pcfg,
        wake_at: i64::MAX,
        serving: false,
        config: config.clone(),
        snapshots,
        snap_askers: std::collections::HashMap::new(),
        next_token: 0,
        looking_since: None,
        log_reads,
    };
    core.carry(out).await;
    let tick_ms = (cfg.tick_ms / 2).max(1);
    let mut next_tick = now_ms() + tick_ms;
    loop {
        let until = core.wake_at.min(next_tick);
        let wait = Duration::from_millis((until - now_ms()).max(0) as u64);
        // `race` picks at random among ready sources: a busy client side cannot starve the
        // quorum messages, log completions and timers.
        let wake = futures_lite::future::race(
            futures_lite::future::race(
                async {
                    rx.recv_async()
                        .await
                        .map(Wake::Front)
                        .unwrap_or(Wake::Closed)
                },
                async {
                    net_rx
                        .recv_async()
                        .await
                        .map(Wake::Net)
                        .unwrap_or(Wake::Closed)
                },
            ),
            futures_lite::future::race(
                async {
                    synced_rx
                        .recv_async()
                        .await
                        .map(Wake::Synced)
                        .unwrap_or(Wake::Closed)
                },
                async {
                    glommio::timer::sleep(wait).await;
                    Wake::Time
                },
            ),
        )
        .await;
        let now = now_ms();
        core.member.set_wall_offset(wall_offset_ms());
        let out = match wake {
            Wake::Closed => return,
            Wake::Front(msg) => {
                let mut out = core.front(msg, now);
                for _ in 1..FRONT_MSGS_PER_ROUND {
                    if core.member.stalled() {
                        break; // a truncation first
                    }
                    match rx.try_recv() {
                        Ok(msg) => out.extend(core.front(msg, now)),
                        Err(_) => break,
                    }
                }
                out
            }
            Wake::Net(ev) => {
                let mut out = core.net_event(ev, now);
                for _ in 1..NET_EVENTS_PER_ROUND {
                    if core.member.stalled() {
                        break; // a truncation first
                    }
                    match net_rx.try_recv() {
                        Ok(ev) => out.extend(core.net_event(ev, now)),
                        Err(_) => break,
                    }
                }
                out
            }
            Wake::Synced(z) => {
                let mut last = z;
                while let Ok(z) = synced_rx.try_recv() {
                    last = z;
                }
                core.member.log_synced(last, now)
            }
            Wake::Time => Vec::new(),
        };
        core.carry(out).await;
        if now >= core.wake_at || now >= next_tick {
            core.wake_at = i64::MAX;
            next_tick = now + tick_ms;
            let out = core.member.tick(now);
            core.carry(out).await;
        }
        let ls = core.member.peer().leader_stats().unwrap_or_default();
        let st = &core.shared.stats;
        st.learners.store(ls.learners, Relaxed);
        st.synced_followers.store(ls.synced_followers, Relaxed);
        st.synced_observers.store(ls.synced_observers, Relaxed);
        st.pending_syncs.store(ls.pending_syncs, Relaxed);
        st.committed_on_leader_synced
            .store(core.member.peer().committed_on_leader_synced(), Relaxed);
        if cfg!(debug_assertions) {
            core.member.check_invariants();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkeeper_engine::zab::peer::{txn_cost, Msg};
    use ringkeeper_engine::{proto::ErrorCode, txn::TxnOp};

    /// What a whole DIFF of `txns` txns costs a learner's queue besides the txns' own bytes
    /// (each is a PROPOSAL and a COMMIT).
    fn diff_slots(txns: usize) -> u64 {
        let t = Txn {
            zxid: 1,
            time_ms: 0,
            session_id: 0,
            cxid: 0,
            op: TxnOp::Error(ErrorCode::Ok),
        };
        let slot = crate::ensemble::net::queued_cost(&Msg::Commit { zxid: 1 });
        assert_eq!(
            crate::ensemble::net::queued_cost(&Msg::Proposal(t.clone())),
            slot + txn_cost(&t)
        );
        txns as u64 * 2 * slot
    }

    #[test]
    fn a_whole_diff_window_fits_a_quarter_of_the_learner_queue() {
        let default = crate::config::ensemble::LEARNER_QUEUE_BYTES_DEFAULT;
        let (txns, bytes) = diff_window(default);
        assert_eq!(bytes, DIFF_WINDOW_BYTES);
        assert!(txns > 50_000 && txns <= DIFF_WINDOW_TXNS, "{txns}");
        for queue in [1 << 16, 1 << 20, 64 << 20, default, 1 << 40] {
            let (txns, bytes) = diff_window(queue);
            // The window holds at most `txns` txns and `bytes` of them.
            let worst = diff_slots(txns) + bytes;
            assert!(
                worst <= queue / 4,
                "queue {queue}: {txns} txns, {bytes} B: {worst}"
            );
        }
    }
}
