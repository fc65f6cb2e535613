//! Server-wide counters shared by every core (atomics, relaxed: they feed `srvr`/`mntr`, not
//! decisions).

use crate::hist::Hist;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

/// What `srvr` and `mntr` say this server is ([`ServerStats::mode`]).
pub mod mode {
    pub const STANDALONE: u8 = 0;
    /// An ensemble member that is not serving (electing, or syncing with a leader).
    pub const NOT_SERVING: u8 = 1;
    pub const LEADER: u8 = 2;
    pub const FOLLOWER: u8 = 3;
    pub const OBSERVER: u8 = 4;

    /// `Mode:` of `srvr` and `zk_server_state` of `mntr`, as ZooKeeper names them.
    pub fn name(m: u8) -> &'static str {
        match m {
            LEADER => "leader",
            FOLLOWER => "follower",
            OBSERVER => "observer",
            NOT_SERVING => "looking",
            _ => "standalone",
        }
    }
}

#[derive(Debug, Default)]
pub struct ServerStats {
    /// One of [`mode`]'s values.
    pub mode: AtomicU8,
    /// Whether this server takes clients: standalone always; an ensemble member while it
    /// serves, unless it leads with `leaderServes=no`. The four-letter words that need a
    /// serving ZooKeeper server follow it.
    pub takes_clients: AtomicBool,
    /// An ensemble leader's figures (`mntr`'s `zk_learners` and the rest), published by the
    /// member core after each round; zero elsewhere.
    pub learners: AtomicU64,
    pub synced_followers: AtomicU64,
    pub synced_observers: AtomicU64,
    pub pending_syncs: AtomicU64,
    /// Txns this server, following, committed on its leader's `LeaderSynced` before the
    /// leader's COMMIT came (`mntr`'s `rk_txns_committed_on_leader_synced`).
    pub committed_on_leader_synced: AtomicU64,
    /// Learners this server, leading, brought in step by DIFF or TRUNC, and by SNAP
    /// (ZooKeeper's `diff_count` and `snap_count`, which it too keeps on every server).
    pub diff_syncs: AtomicU64,
    pub snap_syncs: AtomicU64,
    /// When this server became an established leader (ms since the epoch; 0: it is not one).
    pub leading_since_ms: AtomicI64,
    /// The established leader's server id while this member serves (itself, when it leads);
    /// 0 otherwise.
    pub leader_id: AtomicI64,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_total_ms: AtomicU64,
    pub latency_min_ms: AtomicU64,
    pub latency_max_ms: AtomicU64,
    pub outstanding: AtomicI64,
    pub alive_connections: AtomicI64,
    pub auth_failed: AtomicU64,
    pub connections_rejected: AtomicU64,
    /// Connections closed by a limit of `conn.rs` (handshake time or size, unread output,
    /// stalled output, the server-wide output budget).
    pub connections_closed_by_limits: AtomicU64,
    pub watch_count: AtomicI64,
    // Published by the pipeline after each batch.
    pub last_zxid: AtomicI64,
    pub node_count: AtomicI64,
    pub session_count: AtomicI64,
    // Published by the log task.
    pub log_syncs: AtomicU64,
    /// Log batches whose write and fdatasync took `fsync.warningthresholdms` or more.
    pub fsync_threshold_exceeded: AtomicU64,
    pub log_synced_txns: AtomicU64,
    /// The newest zxid the log has made durable (the snapshot thread waits on it).
    pub log_synced_zxid: AtomicI64,
    // Published by the snapshot thread.
    pub snapshots_written: AtomicU64,
    pub snapshot_failures: AtomicU64,
    pub snapshot_last_zxid: AtomicI64,
    pub snapshot_last_ms: AtomicU64,
    pub snapshot_last_bytes: AtomicU64,
    /// Distributions for the metrics endpoint, each recorded once per log batch or snapshot:
    /// a log write plus its fdatasync in microseconds, txns per such batch (the group commit),
    /// and milliseconds per snapshot.
    pub fsync_us: Mutex<Hist>,
    pub commit_batch_txns: Mutex<Hist>,
    pub snapshot_ms: Mutex<Hist>,
    /// Milliseconds from looking to serving, per election this member took part in.
    pub election_ms: Mutex<Hist>,
}

impl ServerStats {
    pub fn new() -> ServerStats {
        let s = ServerStats::default();
        s.mode.store(mode::STANDALONE, Relaxed);
        s.takes_clients.store(true, Relaxed);
        s.latency_min_ms.store(u64::MAX, Relaxed);
        s
    }

    pub fn record_latency(&self, ms: u64) {
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_total_ms.fetch_add(ms, Relaxed);
        self.latency_min_ms.fetch_min(ms, Relaxed);
        self.latency_max_ms.fetch_max(ms, Relaxed);
    }

    /// Records one log batch: its write and fdatasync took `micros`.
    pub fn record_log_batch(&self, txns: usize, micros: u64, warn_ms: u64) {
        if micros / 1000 >= warn_ms {
            self.fsync_threshold_exceeded.fetch_add(1, Relaxed);
        }
        self.fsync_us.lock().expect("not poisoned").record(micros);
        self.commit_batch_txns
            .lock()
            .expect("not poisoned")
            .record(txns as u64);
    }

    /// (min, avg, max) as ZooKeeper prints them: zeros when nothing was measured.
    pub fn latency(&self) -> (u64, f64, u64) {
        let count = self.latency_count.load(Relaxed);
        if count == 0 {
            return (0, 0.0, 0);
        }
        let avg = self.latency_total_ms.load(Relaxed) as f64 / count as f64;
        (
            self.latency_min_ms.load(Relaxed),
            (avg * 10000.0).round() / 10000.0,
            self.latency_max_ms.load(Relaxed),
        )
    }

    /// `srst`: resets the request counters and latencies.
    pub fn reset(&self) {
        self.packets_received.store(0, Relaxed);
        self.packets_sent.store(0, Relaxed);
        self.latency_count.store(0, Relaxed);
        self.latency_total_ms.store(0, Relaxed);
        self.latency_min_ms.store(u64::MAX, Relaxed);
        self.latency_max_ms.store(0, Relaxed);
    }
}
