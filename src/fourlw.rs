//! Four-letter words on the client port (ZooKeeper's `FourLetterCommands`), gated by
//! `4lw.commands.whitelist`. The output follows ZooKeeper's formats line for line where tools
//! parse them (`srvr`, `stat`, `mntr`, `cons`, `wchs`, ...).

use crate::config::ALL_4LW;
use crate::shared::{ConnInfo, Control, PipeMsg, Report, Shared};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

pub const VERSION_LINE: &str = concat!("3.9.0-ringkeeper-", env!("CARGO_PKG_VERSION"));

pub fn is_word(word: &str) -> bool {
    ALL_4LW.contains(&word)
}

/// The text answering `word`; the caller writes it and closes the connection.
pub async fn answer(word: &str, shared: &Shared) -> String {
    if !shared.cfg.four_letter_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let serving = shared.stats.takes_clients.load(Relaxed);
    if !serving && !matches!(word, "ruok" | "conf" | "envi" | "isro" | "dirs") {
        // ZooKeeper's words that need a running server say so while it elects or syncs, and on
        // a leader with `leaderServes=no` (whose client side has no server).
        return "This ZooKeeper instance is not currently serving requests\n".to_string();
    }
    match word {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => format!(
            "Zookeeper version: {VERSION_LINE}, built on unknown\n{}",
            server_lines(shared)
        ),
        "stat" => {
            let mut out =
                format!("Zookeeper version: {VERSION_LINE}, built on unknown\nClients:\n");
            for c in conns(shared).await {
                let _ = writeln!(
                    out,
                    " /{}[1](queued={},recved={},sent={})",
                    c.peer, c.queued, c.received, c.sent
                );
            }
            out.push('\n');
            out.push_str(&server_lines(shared));
            out
        }
        "mntr" => mntr(shared).await,
        "conf" => conf(shared),
        "cons" => {
            let mut out = String::new();
            for c in conns(shared).await {
                out.push_str(&cons_line(&c));
                out.push('\n');
            }
            out.push('\n');
            out
        }
        "crst" => {
            reset_conn_stats(shared).await;
            "Connection stats reset.\n".to_string()
        }
        "srst" => {
            shared.stats.reset();
            "Server stats reset.\n".to_string()
        }
        "envi" => envi(),
        "wchs" => {
            let pairs = watches(shared).await;
            let sessions: std::collections::HashSet<i64> = pairs.iter().map(|(_, s)| *s).collect();
            let paths: std::collections::HashSet<&str> =
                pairs.iter().map(|(p, _)| p.as_str()).collect();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                sessions.len(),
                paths.len(),
                pairs.len()
            )
        }
        "wchc" => {
            let mut by_session: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
            for (p, s) in watches(shared).await {
                by_session.entry(s).or_default().push(p);
            }
            let mut out = String::new();
            for (s, paths) in by_session {
                let _ = writeln!(out, "0x{s:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out.push('\n');
            out
        }
        "wchp" => {
            let mut by_path: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
            for (p, s) in watches(shared).await {
                by_path.entry(p).or_default().push(s);
            }
            let mut out = String::new();
            for (p, sessions) in by_path {
                let _ = writeln!(out, "{p}");
                for s in sessions {
                    let _ = writeln!(out, "\t0x{s:x}");
                }
            }
            out.push('\n');
            out
        }
        "dump" => {
            let r = report(shared, true).await;
            let mut out = format!(
                "SessionTracker dump:\n{}ephemeral nodes dump:\n{}Connections dump:\n",
                r.sessions, r.ephemerals
            );
            let cs = conns(shared).await;
            let _ = writeln!(out, "Connections Sets (1)/({}):", cs.len());
            let _ = writeln!(out, "{} expire at (unknown):", cs.len());
            for c in cs {
                let _ = writeln!(out, "\tip: /{} sessionId: 0x{:x}", c.peer, c.session_id);
            }
            out
        }
        "dirs" => {
            let cfg = &shared.cfg;
            format!(
                "datadir_size: {}\nlogdir_size: {}\n",
                dir_bytes(&crate::snapshot::snap_dir(&cfg.data_dir)),
                dir_bytes(&crate::log::log_dir(&cfg.data_log_dir))
            )
        }
        // Ringkeeper's own (ZooKeeper offers this as the admin server's `snapshot` command):
        // takes a snapshot now and answers once it is on disk. One at a time (the pipeline
        // answers "busy" while one is written), and rate limited as ZooKeeper limits its
        // command, so the port cannot be used to fill the disk.
        "snap" => {
            if let Err(wait_ms) = take_snap_turn(shared) {
                return format!(
                    "snap refused: at most one per admin.rateLimiterIntervalInMS ({} ms); try again in {wait_ms} ms\n",
                    shared.cfg.snap_interval_ms
                );
            }
            let (tx, rx) = flume::bounded(1);
            if shared
                .to_pipeline
                .send_async(PipeMsg::Snapshot { reply: tx })
                .await
                .is_err()
            {
                return "snapshot failed: the pipeline has stopped\n".to_string();
            }
            rx.recv_async()
                .await
                .unwrap_or_else(|_| "snapshot failed: the snapshot thread has stopped\n".into())
        }
        _ => format!("{word} is not executed because it is not in the whitelist.\n"),
    }
}

/// Claims the `snap` word's turn, or says how many ms until the next one.
fn take_snap_turn(shared: &Shared) -> Result<(), u64> {
    let interval = std::time::Duration::from_millis(shared.cfg.snap_interval_ms);
    let mut last = shared.snap_word_last.lock().expect("snap word lock");
    let now = std::time::Instant::now();
    if let Some(at) = *last {
        let since = now.duration_since(at);
        if since < interval {
            return Err((interval - since).as_millis() as u64);
        }
    }
    *last = Some(now);
    Ok(())
}

/// Bytes of the files directly in `dir` (0 if it does not exist).
pub async fn reset_conn_stats(shared: &Shared) {
    for front in &shared.controls {
        let (tx, rx) = flume::bounded(1);
        if front.send_async(Control::ResetConnStats(tx)).await.is_ok() {
            let _ = rx.recv_async().await;
        }
    }
}

pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn server_lines(shared: &Shared) -> String {
    let s = &shared.stats;
    let (min, avg, max) = s.latency();
    format!(
        "Latency min/avg/max: {min}/{}/{max}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        java_double(avg),
        s.packets_received.load(Relaxed),
        s.packets_sent.load(Relaxed),
        s.alive_connections.load(Relaxed),
        s.outstanding.load(Relaxed).max(0),
        s.last_zxid.load(Relaxed),
        crate::stats::mode::name(s.mode.load(Relaxed)),
        s.node_count.load(Relaxed),
    )
}

/// A double as Java prints it (`0.0`, `1.25`).
pub fn java_double(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

pub async fn conns(shared: &Shared) -> Vec<ConnInfo> {
    let mut all = Vec::new();
    for front in &shared.controls {
        let (tx, rx) = flume::bounded(1);
        if front.send_async(Control::Conns(tx)).await.is_ok() {
            if let Ok(mut v) = rx.recv_async().await {
                all.append(&mut v);
            }
        }
    }
    all
}

/// Bytes queued for clients over all fronts, not yet written.
async fn unsent_bytes(shared: &Shared) -> usize {
    let mut total = 0;
    for front in &shared.controls {
        let (tx, rx) = flume::bounded(1);
        if front.send_async(Control::UnsentBytes(tx)).await.is_ok() {
            total += rx.recv_async().await.unwrap_or(0);
        }
    }
    total
}

/// Data watches over all fronts as (path, session id), sorted.
pub async fn watches(shared: &Shared) -> Vec<(String, i64)> {
    let mut all = Vec::new();
    for front in &shared.controls {
        let (tx, rx) = flume::bounded(1);
        if front.send_async(Control::Watches(tx)).await.is_ok() {
            if let Ok(mut v) = rx.recv_async().await {
                all.append(&mut v);
            }
        }
    }
    all.sort();
    all
}

pub async fn report(shared: &Shared, dump: bool) -> Report {
    let (tx, rx) = flume::bounded(1);
    if shared
        .to_pipeline
        .send_async(PipeMsg::Report { dump, reply: tx })
        .await
        .is_err()
    {
        return Report::default();
    }
    rx.recv_async().await.unwrap_or_default()
}

fn cons_line(c: &ConnInfo) -> String {
    let mut out = format!(
        " /{}[1](queued={},recved={},sent={}",
        c.peer, c.queued, c.received, c.sent
    );
    if c.session_id != 0 {
        let _ = write!(
            out,
            ",sid=0x{:x},lop={},est={},to={}",
            c.session_id, c.last_op, c.established_ms, c.timeout_ms
        );
        if c.last_cxid >= 0 {
            let _ = write!(out, ",lcxid=0x{:x}", c.last_cxid);
        }
        let _ = write!(
            out,
            ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            c.last_zxid,
            c.last_response_ms,
            c.last_latency_ms,
            c.min_latency_ms,
            c.avg_latency_ms,
            c.max_latency_ms
        );
    }
    out.push(')');
    out
}

fn conf(shared: &Shared) -> String {
    let c = &shared.cfg;
    let mut out = String::new();
    let _ = writeln!(out, "clientPort={}", c.client_port);
    let _ = writeln!(out, "secureClientPort=-1");
    let _ = writeln!(out, "dataDir={}", c.data_dir.display());
    let _ = writeln!(out, "dataDirSize=0");
    let _ = writeln!(out, "dataLogDir={}", c.data_log_dir.display());
    let _ = writeln!(out, "dataLogSize=0");
    let _ = writeln!(out, "tickTime={}", c.tick_ms);
    let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout_ms);
    let _ = writeln!(out, "clientPortListenBacklog=-1");
    let _ = writeln!(out, "serverId={}", c.server_id);
    if let Some(e) = &c.ensemble {
        // ZooKeeper's quorum part, in its order.
        let me = e.me();
        let _ = writeln!(out, "initLimit={}", e.init_limit);
        let _ = writeln!(out, "syncLimit={}", e.sync_limit);
        let _ = writeln!(out, "electionAlg=3");
        let _ = writeln!(out, "electionPort={}", me.election_port);
        let _ = writeln!(out, "quorumPort={}", me.quorum_port);
        let _ = writeln!(out, "peerType={}", u8::from(me.observer));
        let _ = writeln!(out, "membership: ");
        let _ = writeln!(out, "{}", crate::ensemble::core::config_text(e));
    }
    let _ = writeln!(out, "clientPortAddress={}", c.client_port_address);
    let _ = writeln!(out, "jute.maxbuffer={}", c.jute_max_buffer);
    let _ = writeln!(out, "extendedTypesEnabled={}", c.extended_types);
    let _ = writeln!(out, "globalOutstandingLimit={}", c.global_outstanding_limit);
    let _ = writeln!(
        out,
        "znode.container.checkIntervalMs={}",
        c.container_check_ms
    );
    let _ = writeln!(
        out,
        "4lw.commands.whitelist={}",
        c.four_letter_words.join(",")
    );
    out
}

fn envi() -> String {
    let mut out = "Environment:\n".to_string();
    for (k, v) in environment() {
        let _ = writeln!(out, "{k}={v}");
    }
    out
}

/// `envi`'s keys and values: ZooKeeper's, with `<NA>` for the JVM's.
pub fn environment() -> Vec<(&'static str, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "<NA>".into());
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "<NA>".into());
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "<NA>".to_string());
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "<NA>".into());
    vec![
        ("zookeeper.version", VERSION_LINE.to_string()),
        ("host.name", host),
        ("java.version", "<NA>".into()),
        ("java.vendor", "<NA>".into()),
        ("java.home", "<NA>".into()),
        ("java.class.path", "<NA>".into()),
        ("java.library.path", "<NA>".into()),
        ("java.io.tmpdir", std::env::temp_dir().display().to_string()),
        ("java.compiler", "<NA>".into()),
        ("os.name", "Linux".into()),
        ("os.arch", std::env::consts::ARCH.into()),
        ("os.version", os_version),
        ("user.name", env("USER")),
        ("user.home", env("HOME")),
        ("user.dir", cwd),
        // Java reports its heap here; Ringkeeper has no heap limit of its own, so: memory the
        // machine has available, the machine's memory, and this process's resident memory.
        (
            "os.memory.free",
            format!("{}MB", meminfo_mb("MemAvailable:")),
        ),
        ("os.memory.max", format!("{}MB", meminfo_mb("MemTotal:"))),
        ("os.memory.total", format!("{}MB", rss_mb())),
    ]
}

/// A `/proc/meminfo` line's value, in MiB (0 if absent).
fn meminfo_mb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// This process's resident memory, in MiB (0 if unknown).
fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

pub fn fd_counts() -> (u64, u64) {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    (open, max)
}

async fn mntr(shared: &Shared) -> String {
    let mut out = String::new();
    for (k, v) in mntr_values(shared).await {
        let _ = writeln!(out, "zk_{k}\t{v}");
    }
    out
}

/// `mntr`'s keys (without its `zk_` prefix) and values, in its order; the metrics endpoint
/// and the AdminServer's `monitor` report the same figures.
pub async fn mntr_values(shared: &Shared) -> Vec<(&'static str, String)> {
    let r = report(shared, false).await;
    let s = &shared.stats;
    let (min, avg, max) = s.latency();
    let (open_fds, max_fds) = fd_counts();
    let mut out = Vec::new();
    let mut line = |k: &'static str, v: String| out.push((k, v));
    line("version", format!("{VERSION_LINE}, built on unknown"));
    let mode = s.mode.load(Relaxed);
    line("server_state", crate::stats::mode::name(mode).into());
    {
        use crate::stats::mode;
        let peer_state = match mode {
            mode::LEADER => Some("leading - broadcast"),
            mode::FOLLOWER => Some("following - broadcast"),
            mode::OBSERVER => Some("observing - broadcast"),
            _ => None,
        };
        if let Some(p) = peer_state {
            line("peer_state", p.into());
        }
        if mode == mode::LEADER {
            // ZooKeeper 3.8's names; zk_followers is what 3.4 and 3.5 called zk_learners.
            let learners = s.learners.load(Relaxed).to_string();
            line("learners", learners.clone());
            line("followers", learners);
            line(
                "synced_followers",
                s.synced_followers.load(Relaxed).to_string(),
            );
            line("synced_non_voting_followers", "0".into());
            line(
                "synced_observers",
                s.synced_observers.load(Relaxed).to_string(),
            );
            line("pending_syncs", s.pending_syncs.load(Relaxed).to_string());
            let since = s.leading_since_ms.load(Relaxed);
            let uptime = if since > 0 {
                (crate::clock::now_ms() - since).max(0)
            } else {
                0
            };
            line("leader_uptime", uptime.to_string());
        }
    }
    line("ephemerals_count", r.ephemerals_count.to_string());
    line(
        "num_alive_connections",
        s.alive_connections.load(Relaxed).to_string(),
    );
    line("avg_latency", java_double(avg));
    line(
        "outstanding_requests",
        s.outstanding.load(Relaxed).max(0).to_string(),
    );
    line("znode_count", s.node_count.load(Relaxed).to_string());
    line("global_sessions", s.session_count.load(Relaxed).to_string());
    line("packets_sent", s.packets_sent.load(Relaxed).to_string());
    line(
        "packets_received",
        s.packets_received.load(Relaxed).to_string(),
    );
    line("watch_count", s.watch_count.load(Relaxed).to_string());
    line("auth_failed_count", s.auth_failed.load(Relaxed).to_string());
    line("min_latency", min.to_string());
    line("max_file_descriptor_count", max_fds.to_string());
    line("approximate_data_size", r.approximate_data_size.to_string());
    line("open_file_descriptor_count", open_fds.to_string());
    line("local_sessions", "0".into());
    line("uptime", shared.started.elapsed().as_millis().to_string());
    line("max_latency", max.to_string());
    line("diff_count", s.diff_syncs.load(Relaxed).to_string());
    line("snap_count", s.snap_syncs.load(Relaxed).to_string());
    // Ringkeeper's own: connections its front-end limits closed, and the group commit's
    // fdatasyncs and the txns they made durable.
    line(
        "rk_connections_closed_by_limits",
        s.connections_closed_by_limits.load(Relaxed).to_string(),
    );
    line("rk_unsent_bytes", unsent_bytes(shared).await.to_string());
    line("rk_log_fsync_count", s.log_syncs.load(Relaxed).to_string());
    // Times the watchdog had to signal an executor that slept through its own timer.
    line(
        "rk_executor_wakeups_forced",
        crate::watchdog::global().kicks().to_string(),
    );
    line(
        "rk_log_synced_txns",
        s.log_synced_txns.load(Relaxed).to_string(),
    );
    // Txns committed as a follower on the leader's word that its log has them, before the
    // COMMIT (ensembles of Ringkeeper servers; see `zab::peer::Msg::LeaderSynced`).
    line(
        "rk_txns_committed_on_leader_synced",
        s.committed_on_leader_synced.load(Relaxed).to_string(),
    );
    line(
        "rk_snapshot_count",
        s.snapshots_written.load(Relaxed).to_string(),
    );
    line(
        "rk_snapshot_failures",
        s.snapshot_failures.load(Relaxed).to_string(),
    );
    line(
        "rk_snapshot_last_zxid",
        format!("0x{:x}", s.snapshot_last_zxid.load(Relaxed)),
    );
    line(
        "rk_snapshot_last_ms",
        s.snapshot_last_ms.load(Relaxed).to_string(),
    );
    line(
        "rk_snapshot_last_bytes",
        s.snapshot_last_bytes.load(Relaxed).to_string(),
    );
    line(
        "connection_rejected",
        s.connections_rejected.load(Relaxed).to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.25), "1.25");
    }
}
