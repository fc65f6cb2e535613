//! Ringkeeper's load generator, `ringkeeper bench`, and (in `benches/`) the criterion
//! micro-benchmarks of the engine.
//!
//! The generator speaks the plain ZooKeeper protocol, so it drives Java ZooKeeper as well as
//! Ringkeeper. It runs on its own glommio executors; each session is one connection with
//! requests pipelined on it. Two load models:
//! - closed loop: a fixed number of requests in flight (`--outstanding`), a new one sent per reply;
//! - open loop (`--rate`): requests are due at fixed intervals whatever the replies do, and each
//!   latency is measured from when the request was *due*, not when it went out, so a stalled
//!   server cannot hide its stall (coordinated omission).

#![forbid(unsafe_code)]

pub mod args;
pub mod control;
pub mod latency;
pub mod output;
pub mod report;
pub mod run;
pub mod scenario;
pub mod wire;
pub mod workload;

use args::BenchArgs;
use latency::{ramp_next_rate, ramp_step_failed};
use output::{RampReport, RampStep, Summary};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use workload::{Layout, Workload};

fn summarize(args: &BenchArgs, r: &run::PhaseResult, rate: Option<u64>) -> Summary {
    let ops = r.recorder.ops;
    Summary {
        throughput_ops_per_s: ops as f64 / r.measured_s.max(1e-9),
        latency_ms: Summary::latency(&r.recorder),
        ops,
        errors: Summary::errors(&r.recorder),
        measured_s: r.measured_s,
        workload: args.workload.clone(),
        hosts: args.hosts.clone(),
        sessions: args.sessions,
        outstanding: if rate.is_none() {
            Some(args.outstanding)
        } else {
            None
        },
        offered_rate_ops_per_s: rate,
        value_bytes: args.value_bytes,
        keys: args.keys,
        generator_cpu_s_per_1000_ops: if ops > 0 {
            r.cpu_s / ops as f64 * 1000.0
        } else {
            0.0
        },
        latency_ms_by_op: Summary::latency_by_op(&r.recorder),
        latency_ms_by_host: Summary::latency_by_host(&r.recorder),
        timeline_ops_per_s: r.timeline.clone(),
    }
}

/// A progress line on a terminal, once a second; nothing when stderr is not a terminal.
fn start_progress(
    counter: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut last = 0;
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            let now = counter.load(Relaxed);
            eprint!(
                "\r[{:>5.0}s] {:>9} ops/s  {:>11} replies",
                start.elapsed().as_secs_f64(),
                now - last,
                now
            );
            last = now;
        }
        eprintln!();
    }))
}

/// `ringkeeper bench`: runs the load and prints (and optionally writes) the figures.
pub fn main(args: &BenchArgs) -> Result<(), String> {
    let workload = Workload::parse(&args.workload)?;
    let layout = Layout {
        root: args.root.trim_end_matches('/').to_string(),
        keys: args.keys.max(1),
    };
    if !layout.root.starts_with('/') || layout.root.len() < 2 {
        return Err(format!(
            "--root must be an absolute path below /, not '{}'",
            args.root
        ));
    }
    run::setup(args, &layout)?;
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let progress = start_progress(counter.clone(), done.clone());
    let result = if args.ramp {
        ramp(args, &workload, &layout, &counter).map(|(r, steps)| (Some(r), steps))
    } else {
        single(args, &workload, &layout, &counter).map(|s| (None, vec![s]))
    };
    done.store(true, Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }
    let (ramp_report, summaries) = result?;
    let json = match &ramp_report {
        None => serde_json::to_value(&summaries[0]).expect("serializable"),
        Some(r) => {
            let last = summaries.last().expect("a ramp runs at least one step");
            let mut json = serde_json::to_value(r).expect("serializable");
            json["throughput_ops_per_s"] = serde_json::json!(last.throughput_ops_per_s);
            json["latency_ms"] = serde_json::to_value(&last.latency_ms).expect("serializable");
            json["step_summaries"] = serde_json::to_value(&summaries).expect("serializable");
            json
        }
    };
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).expect("serializable"),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(dir) = &args.report {
        let command: Vec<String> = std::env::args().collect();
        report::write(dir, &command.join(" "), &summaries, ramp_report.as_ref())?;
        println!("report written to {}", dir.join("report.md").display());
    }
    Ok(())
}

fn single(
    args: &BenchArgs,
    workload: &Workload,
    layout: &Layout,
    counter: &Arc<AtomicU64>,
) -> Result<Summary, String> {
    let measure = if args.ops.is_some() {
        Duration::from_secs(3600)
    } else {
        args.duration
    };
    let r = run::run_phase(
        args,
        workload,
        layout,
        args.rate,
        args.warmup,
        measure,
        Some(counter.clone()),
    )?;
    let summary = summarize(args, &r, args.rate);
    print!("{}", summary.text());
    Ok(summary)
}

fn ramp(
    args: &BenchArgs,
    workload: &Workload,
    layout: &Layout,
    counter: &Arc<AtomicU64>,
) -> Result<(RampReport, Vec<Summary>), String> {
    let mut rate = args.rate.unwrap_or(1000).max(1);
    let mut steps = Vec::new();
    let mut best = None;
    let mut summaries = Vec::new();
    // Bounded: at most 40 steps (x1.25 each: a factor of ~7500 over the start rate).
    for _ in 0..40 {
        let warmup = Duration::from_secs(1);
        let r = run::run_phase(
            args,
            workload,
            layout,
            Some(rate),
            warmup,
            args.ramp_step,
            Some(counter.clone()),
        )?;
        let s = summarize(args, &r, Some(rate));
        let errors = r.recorder.error_count();
        let failed = ramp_step_failed(
            s.latency_ms.p99,
            args.slo_p99_ms,
            errors,
            s.throughput_ops_per_s,
            rate as f64,
        );
        println!(
            "offered {:>8} ops/s  achieved {:>9.0} ops/s  p99 {:>8.3} ms  errors {:>6}  {}",
            rate,
            s.throughput_ops_per_s,
            s.latency_ms.p99,
            errors,
            if failed { "over" } else { "ok" }
        );
        steps.push(RampStep {
            offered_ops_per_s: rate,
            throughput_ops_per_s: s.throughput_ops_per_s,
            p99_ms: s.latency_ms.p99,
            errors,
            sustained: !failed,
        });
        summaries.push(s);
        if failed {
            break;
        }
        best = Some(rate);
        rate = ramp_next_rate(rate);
    }
    match best {
        Some(b) => println!(
            "highest sustainable rate {b} ops/s (p99 <= {} ms, no errors)",
            args.slo_p99_ms
        ),
        None => println!(
            "no step met p99 <= {} ms without errors; start lower with --rate",
            args.slo_p99_ms
        ),
    }
    Ok((
        RampReport {
            highest_sustainable_ops_per_s: best,
            slo_p99_ms: args.slo_p99_ms,
            steps,
        },
        summaries,
    ))
}
