//! Command-line flags of `ringkeeper bench`.

use clap::Args;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Servers to drive, host:port[,host:port...]; sessions are spread over them.
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub hosts: String,
    /// A preset (get, set, exists, create-delete, mixed, children, multi) or a weighted mix such as
    /// get=90,set=10.
    #[arg(long, default_value = "get")]
    pub workload: String,
    /// Client sessions (connections).
    #[arg(long, default_value_t = 8)]
    pub sessions: usize,
    /// Requests in flight in total (closed loop); each session keeps its share in flight.
    #[arg(long, default_value_t = 32)]
    pub outstanding: usize,
    /// Bytes of data per znode written or read.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Number of znodes the key-based workloads spread over.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// How long to measure, e.g. 30s, 500ms, 2m.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Stop after this many measured operations instead of after --duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: Option<u64>,
    /// Load before measuring starts.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub warmup: Duration,
    /// Open loop at this many requests per second (latency corrected for coordinated omission).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Capacity search: open-loop steps of increasing rate until p99 passes --slo-p99-ms or errors
    /// appear; reports the highest sustainable rate.
    #[arg(long)]
    pub ramp: bool,
    /// The p99 latency objective for --ramp, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub slo_p99_ms: f64,
    /// Length of each --ramp step.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub ramp_step: Duration,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Write a Markdown report with PNG plots into this directory.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Generator threads (glommio executors).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin generator threads to these CPUs, e.g. 2,3 (default: unpinned).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Seed for key choice and workload mixing.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Session timeout asked for, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: i32,
    /// Root znode the benchmark works under.
    #[arg(long, default_value = "/rkbench")]
    pub root: String,
}

/// "30s", "500ms", "2m", "1h", or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("bad duration '{s}'"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1000.0,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in '{s}' (use ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("bad duration '{s}'"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("3 weeks").is_err());
    }
}
