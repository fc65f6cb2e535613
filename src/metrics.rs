//! `/metrics` in the Prometheus text format (version 0.0.4), on `metricsProvider.httpPort`.
//!
//! ZooKeeper's names where it has the metric: every number `mntr` reports (znode_count,
//! watch_count, outstanding_requests, packets_received, ...) as a gauge, as ZooKeeper's
//! Prometheus provider exports them, and the summaries `fsynctime`, `snapshottime`,
//! `readlatency`, `updatelatency` and `election_time`, in milliseconds as ZooKeeper records
//! them. Ringkeeper's own carry an `rk_` prefix and base units: the log's fdatasyncs and
//! group-commit batch sizes, request latency by opcode as histograms, and CPU time per thread
//! (each executor is a thread, pinned to its core unless `--no-pin`).

use crate::hist::{Hist, OpLatencies};
use crate::shared::{Control, Shared};
use ringkeeper_engine::proto::opcode;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// The quantiles every summary reports.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// Request latency histogram buckets, in seconds.
const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Group-commit batch size buckets, in txns.
const BATCH_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/// The whole exposition.
pub async fn render(shared: &Shared) -> String {
    let mut out = String::new();
    for (name, value) in crate::fourlw::mntr_values(shared).await {
        if name.starts_with("rk_") {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            gauge(&mut out, name, name, v);
        }
    }
    let s = &shared.stats;
    let latencies = front_latencies(shared).await;
    let (mut reads, mut updates) = (Hist::default(), Hist::default());
    for (op, h) in &latencies.by_op {
        if opcode::is_update(*op) {
            updates.merge(h);
        } else if ![
            opcode::PING,
            opcode::CREATE_SESSION,
            crate::hist::UNKNOWN_OPCODE,
        ]
        .contains(op)
        {
            reads.merge(h);
        }
    }
    let fsync_us = s.fsync_us.lock().expect("not poisoned").clone();
    let batches = s.commit_batch_txns.lock().expect("not poisoned").clone();
    let snapshot_ms = s.snapshot_ms.lock().expect("not poisoned").clone();
    let election_ms = s.election_ms.lock().expect("not poisoned").clone();
    summary(
        &mut out,
        "fsynctime",
        "transaction log write and fdatasync, ms",
        &fsync_us,
        1e-3,
    );
    summary(
        &mut out,
        "snapshottime",
        "snapshot write, ms",
        &snapshot_ms,
        1.0,
    );
    summary(
        &mut out,
        "readlatency",
        "read request latency, ms",
        &reads,
        1e-3,
    );
    summary(
        &mut out,
        "updatelatency",
        "write request latency, ms",
        &updates,
        1e-3,
    );
    summary(
        &mut out,
        "election_time",
        "looking to serving, ms",
        &election_ms,
        1.0,
    );

    counter(
        &mut out,
        "rk_log_fsyncs_total",
        "transaction log batches written and fdatasync'd",
        s.log_syncs.load(Relaxed) as f64,
    );
    counter(
        &mut out,
        "rk_log_synced_txns_total",
        "txns made durable by those batches",
        s.log_synced_txns.load(Relaxed) as f64,
    );
    counter(
        &mut out,
        "rk_executor_wakeups_forced_total",
        "executors the watchdog woke with a signal after they slept through their own timer",
        crate::watchdog::global().kicks() as f64,
    );
    counter(
        &mut out,
        "rk_txns_committed_on_leader_synced_total",
        "txns committed as a follower on the leader's word that its log has them, before the COMMIT",
        s.committed_on_leader_synced.load(Relaxed) as f64,
    );
    batch_histogram(&mut out, &batches);
    latency_histograms(&mut out, &latencies);
    counter(
        &mut out,
        "rk_snapshots_total",
        "snapshots written",
        s.snapshots_written.load(Relaxed) as f64,
    );
    counter(
        &mut out,
        "rk_snapshot_failures_total",
        "snapshots that failed",
        s.snapshot_failures.load(Relaxed) as f64,
    );
    counter(
        &mut out,
        "rk_connections_closed_by_limits_total",
        "client connections closed by a front-end limit",
        s.connections_closed_by_limits.load(Relaxed) as f64,
    );
    thread_cpu(&mut out);
    out
}

/// Every front core's request latencies, merged.
async fn front_latencies(shared: &Shared) -> OpLatencies {
    let mut all = OpLatencies::default();
    for front in &shared.controls {
        let (tx, rx) = flume::bounded(1);
        if front.send_async(Control::Latencies(tx)).await.is_ok() {
            if let Ok(l) = rx.recv_async().await {
                all.merge(&l);
            }
        }
    }
    all
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {v}");
}

fn counter(out: &mut String, name: &str, help: &str, v: f64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {v}");
}

/// A summary of `h`, its values scaled by `scale` (microseconds to ms: 1e-3).
fn summary(out: &mut String, name: &str, help: &str, h: &Hist, scale: f64) {
    header(out, name, help, "summary");
    for q in QUANTILES {
        let _ = writeln!(
            out,
            "{name}{{quantile=\"{q}\"}} {}",
            h.quantile(q) as f64 * scale
        );
    }
    let _ = writeln!(out, "{name}_sum {}", h.sum() as f64 * scale);
    let _ = writeln!(out, "{name}_count {}", h.count());
}

fn batch_histogram(out: &mut String, h: &Hist) {
    let name = "rk_group_commit_txns";
    header(
        out,
        name,
        "txns per transaction log batch (one fdatasync each)",
        "histogram",
    );
    let buckets: Vec<(String, u64)> = BATCH_BUCKETS.iter().map(|b| (b.to_string(), *b)).collect();
    histogram_lines(out, name, "", &buckets, h, 1.0);
}

fn latency_histograms(out: &mut String, l: &OpLatencies) {
    let name = "rk_request_latency_seconds";
    header(
        out,
        name,
        "request latency by opcode, from read off the socket to the reply queued",
        "histogram",
    );
    // Bucket bounds in seconds, counted in the histograms' microseconds.
    let buckets: Vec<(String, u64)> = LATENCY_BUCKETS_S
        .iter()
        .map(|b| (b.to_string(), (b * 1e6).round() as u64))
        .collect();
    for (op, h) in &l.by_op {
        let label = format!("op=\"{}\",", opcode::name(*op));
        histogram_lines(out, name, &label, &buckets, h, 1e-6);
    }
}

/// One histogram's samples: a bucket per (le, bound), `+Inf`, the sum (scaled) and the count;
/// `label` is `key="value",` or empty.
fn histogram_lines(
    out: &mut String,
    name: &str,
    label: &str,
    buckets: &[(String, u64)],
    h: &Hist,
    scale: f64,
) {
    for (le, bound) in buckets {
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}le=\"{le}\"}} {}",
            h.count_at_most(*bound)
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{label}le=\"+Inf\"}} {}", h.count());
    let plain = label.trim_end_matches(',');
    let braces = if plain.is_empty() {
        String::new()
    } else {
        format!("{{{plain}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum() as f64 * scale);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count());
}

/// CPU time (user + system) of each of the server's threads, from /proc/self/task.
#[allow(unsafe_code)]
fn thread_cpu(out: &mut String) {
    let name = "rk_thread_cpu_seconds_total";
    header(
        out,
        name,
        "CPU time of each server thread (executors are named rk-front*, rk-pipeline, rk-core0)",
        "counter",
    );
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let mut rows = Vec::new();
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        if let Some((comm, secs)) = parse_task_stat(&stat, ticks) {
            rows.push((comm, t.file_name().to_string_lossy().into_owned(), secs));
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (comm, tid, secs) in rows {
        let _ = writeln!(out, "{name}{{thread=\"{comm}\",tid=\"{tid}\"}} {secs}");
    }
}

/// (name, utime + stime in seconds) from a `/proc/.../stat` line; the name is in parentheses
/// and may itself hold spaces or parentheses.
fn parse_task_stat(stat: &str, ticks_per_s: f64) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.replace(['"', '\\'], "_");
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    // After the name: state is field 3 of the whole line; utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / ticks_per_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_stat_names_may_hold_spaces_and_parentheses() {
        let line = "4242 (rk-front0 (x)) S 1 1 1 0 -1 4194624 10 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        let (name, secs) = parse_task_stat(line, 100.0).unwrap();
        assert_eq!(name, "rk-front0 (x)");
        assert!((secs - 3.0).abs() < 1e-9, "{secs}");
    }
}
