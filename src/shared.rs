//! What the cores share and the messages they send each other (see `server.rs` for who runs
//! where). Every runtime module that talks to another core names these types from here, so none
//! of them needs the module that starts the cores.

use crate::config::Config;
use crate::conn::IpCounts;
use crate::stats::ServerStats;
pub use ringkeeper_engine::node::{Entry, Input};
use ringkeeper_engine::tree::DataTree;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub const PIPE_QUEUE_MAX: usize = 4096;
pub const BATCH_QUEUE_MAX: usize = 1024;

/// A message from a front core to the pipeline core.
pub enum PipeMsg {
    /// A request for the node: a connect (answered in the committed stream, to the front that
    /// owns the connection), a write, a sync or touches.
    Node(Input),
    /// Figures for `mntr` from the session table and the tree; with `dump`, also the listings
    /// `dump` prints (which take time in proportion to the sessions and ephemerals).
    Report {
        dump: bool,
        reply: flume::Sender<Report>,
    },
    /// Take a snapshot now (the `snap` four-letter word); the reply says how it went.
    Snapshot { reply: flume::Sender<String> },
    /// The snapshot thread finished the job it was given (written or failed).
    SnapshotWritten,
}

/// What startup recovery hands the pipeline.
pub struct Start {
    /// Keys session passwords (persisted in dataDir, so sessions survive a restart).
    pub secret: u64,
    pub snapshot: Option<ringkeeper_engine::snap::Loaded>,
    /// The logged txns after the snapshot.
    pub txns: Vec<ringkeeper_engine::txn::Txn>,
    /// The newest log segment, to append to.
    pub log_tail: Option<crate::log::TailSegment>,
}

/// What the pipeline reports for `dump` and `mntr`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// "Session Sets (..)/(..):" and the sessions by deadline.
    pub sessions: String,
    /// "Sessions with Ephemerals (n):" and their paths.
    pub ephemerals: String,
    pub ephemerals_count: usize,
    pub approximate_data_size: u64,
    /// With `dump`: session ids by deadline (wall ms), and ephemeral paths by session, for
    /// the AdminServer's `dump`.
    pub sessions_by_deadline: Vec<(i64, Vec<i64>)>,
    pub ephemerals_by_session: Vec<(i64, Vec<String>)>,
    /// With `dump`: every session's id and timeout, and the tree version the report was made
    /// from (an O(1) clone), for the AdminServer's `snapshot`.
    pub session_timeouts: Vec<(i64, i32)>,
    pub tree: Option<DataTree>,
}

/// What the pipeline publishes to every front core.
pub struct Batch {
    pub entries: Arc<Vec<Entry>>,
    pub version: DataTree,
}

/// One connection as `cons`/`stat` report it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: String,
    pub queued: usize,
    pub received: u64,
    pub sent: u64,
    pub session_id: i64,
    pub last_op: &'static str,
    pub established_ms: i64,
    pub timeout_ms: i32,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response_ms: i64,
    pub last_latency_ms: u64,
    pub min_latency_ms: u64,
    pub avg_latency_ms: u64,
    pub max_latency_ms: u64,
}

/// A four-letter-word query to a front core.
pub enum Control {
    Conns(flume::Sender<Vec<ConnInfo>>),
    /// Data-table watches as (path, session id) pairs.
    Watches(flume::Sender<Vec<(String, i64)>>),
    ResetConnStats(flume::Sender<()>),
    /// This front's request latencies by opcode.
    Latencies(flume::Sender<crate::hist::OpLatencies>),
    /// Bytes queued for this front's clients and not yet written.
    UnsentBytes(flume::Sender<usize>),
    /// An ensemble member stopped serving: close every client connection, and drop the
    /// connects waiting for an answer (they will get none).
    CloseClients,
}

/// What every core shares.
pub struct Shared {
    pub cfg: Config,
    pub stats: ServerStats,
    pub to_pipeline: flume::Sender<PipeMsg>,
    pub controls: Vec<flume::Sender<Control>>,
    pub ip_counts: Arc<IpCounts>,
    pub started: Instant,
    /// When the `snap` word last started a snapshot (it is rate limited).
    pub snap_word_last: Mutex<Option<Instant>>,
    /// Yields once SIGTERM or SIGINT asks the server to stop (`stop.rs`); the log task listens.
    pub stop: flume::Receiver<()>,
}
