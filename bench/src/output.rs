//! What `ringkeeper bench` prints and writes: two numbers first (throughput, p99), then the
//! details; the same figures as JSON with `--json`.

use crate::latency::{percentile_ms, Recorder};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize, Debug, Clone)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Serialize, Debug, Clone)]
pub struct Summary {
    pub throughput_ops_per_s: f64,
    pub latency_ms: LatencyMs,
    pub ops: u64,
    pub errors: BTreeMap<String, u64>,
    pub measured_s: f64,
    pub workload: String,
    pub hosts: String,
    pub sessions: usize,
    pub outstanding: Option<usize>,
    pub offered_rate_ops_per_s: Option<u64>,
    pub value_bytes: usize,
    pub keys: usize,
    /// Generator CPU (user + system) per 1,000 operations, in seconds.
    pub generator_cpu_s_per_1000_ops: f64,
    /// Latency by kind of operation, when the workload mixes more than one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub latency_ms_by_op: BTreeMap<String, LatencyMs>,
    /// Latency by server, when the sessions went to more than one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub latency_ms_by_host: BTreeMap<String, LatencyMs>,
    /// Measured operations completed in each second of the run (by due time).
    pub timeline_ops_per_s: Vec<u64>,
}

/// ZooKeeper's name for an error code.
pub fn error_name(code: i32) -> String {
    let name = match code {
        -1 => "SYSTEMERROR",
        -2 => "RUNTIMEINCONSISTENCY",
        -4 => "CONNECTIONLOSS",
        -5 => "MARSHALLINGERROR",
        -6 => "UNIMPLEMENTED",
        -7 => "OPERATIONTIMEOUT",
        -8 => "BADARGUMENTS",
        -101 => "NONODE",
        -102 => "NOAUTH",
        -103 => "BADVERSION",
        -108 => "NOCHILDRENFOREPHEMERALS",
        -110 => "NODEEXISTS",
        -111 => "NOTEMPTY",
        -112 => "SESSIONEXPIRED",
        -114 => "INVALIDACL",
        -115 => "AUTHFAILED",
        -118 => "SESSIONMOVED",
        -122 => "REQUESTTIMEOUT",
        -127 => "THROTTLEDOP",
        _ => return format!("ERROR{code}"),
    };
    name.to_string()
}

impl Summary {
    pub fn latency(rec: &Recorder) -> LatencyMs {
        Self::hist_latency(&rec.hist)
    }

    fn hist_latency(hist: &Histogram<u64>) -> LatencyMs {
        LatencyMs {
            p50: percentile_ms(hist, 50.0),
            p90: percentile_ms(hist, 90.0),
            p99: percentile_ms(hist, 99.0),
            p999: percentile_ms(hist, 99.9),
            max: hist.max() as f64 / 1000.0,
        }
    }

    /// Latency by kind of operation; empty unless more than one kind was measured.
    pub fn latency_by_op(rec: &Recorder) -> BTreeMap<String, LatencyMs> {
        Self::breakdown(rec.by_op.iter().map(|(op, h)| (op.to_string(), h)))
    }

    /// Latency by server; empty unless more than one was measured.
    pub fn latency_by_host(rec: &Recorder) -> BTreeMap<String, LatencyMs> {
        Self::breakdown(rec.by_host.iter().map(|(host, h)| (host.clone(), h)))
    }

    fn breakdown<'h>(
        parts: impl ExactSizeIterator<Item = (String, &'h Histogram<u64>)>,
    ) -> BTreeMap<String, LatencyMs> {
        if parts.len() < 2 {
            return BTreeMap::new();
        }
        parts.map(|(k, h)| (k, Self::hist_latency(h))).collect()
    }

    pub fn errors(rec: &Recorder) -> BTreeMap<String, u64> {
        rec.errors
            .iter()
            .map(|(c, n)| (error_name(*c), *n))
            .collect()
    }

    /// Errors by code, `NONODE=3 BADVERSION=1`, or `none`.
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".to_string();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The text report: throughput and p99 on the first line.
    pub fn text(&self) -> String {
        let l = &self.latency_ms;
        let errors = self.errors_text();
        let load = match (self.offered_rate_ops_per_s, self.outstanding) {
            (Some(rate), _) => format!("open loop at {rate} ops/s"),
            (None, Some(n)) => format!("closed loop, {n} outstanding"),
            (None, None) => String::new(),
        };
        let breakdown: String = self
            .latency_ms_by_op
            .iter()
            .chain(&self.latency_ms_by_host)
            .map(|(part, l)| {
                format!(
                    "  {part}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms\n",
                    l.p50, l.p90, l.p99, l.p999, l.max
                )
            })
            .collect();
        format!(
            "throughput {:.0} ops/s  p99 {:.3} ms\n\
             p50 {:.3} ms  p90 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms\n\
             {}\
             ops {} in {:.1} s, errors: {}\n\
             workload {} on {}, {} sessions, {}, {} B values, {} keys\n\
             generator cpu {:.4} s per 1000 ops\n",
            self.throughput_ops_per_s,
            l.p99,
            l.p50,
            l.p90,
            l.p999,
            l.max,
            breakdown,
            self.ops,
            self.measured_s,
            errors,
            self.workload,
            self.hosts,
            self.sessions,
            load,
            self.value_bytes,
            self.keys,
            self.generator_cpu_s_per_1000_ops
        )
    }
}

/// One step of a `--ramp` search.
#[derive(Serialize, Debug, Clone)]
pub struct RampStep {
    pub offered_ops_per_s: u64,
    pub throughput_ops_per_s: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub sustained: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct RampReport {
    pub highest_sustainable_ops_per_s: Option<u64>,
    pub slo_p99_ms: f64,
    pub steps: Vec<RampStep>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_starts_with_throughput_and_p99() {
        let mut rec = Recorder::default();
        rec.record(0, 2_000_000, 0);
        rec.record(0, 2_000_000, -101);
        let s = summary(&rec);
        let text = s.text();
        assert!(
            text.starts_with("throughput 1234 ops/s  p99 2.00"),
            "{text}"
        );
        assert!(text.contains("errors: NONODE=1"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["latency_ms"]["p99"].as_f64().unwrap().round(), 2.0);
        assert!(json["throughput_ops_per_s"].is_number());
        // One kind of operation: no breakdown.
        assert!(json.get("latency_ms_by_op").is_none(), "{json}");
    }

    #[test]
    fn a_mix_reports_latency_by_operation() {
        let mut rec = Recorder::default();
        for _ in 0..9 {
            rec.record_op("get", 0, 100_000, 0);
        }
        rec.record_op("set", 0, 3_000_000, 0);
        let s = summary(&rec);
        let json = serde_json::to_value(&s).unwrap();
        let by_op = &json["latency_ms_by_op"];
        assert_eq!(by_op["get"]["p99"].as_f64().unwrap(), 0.1, "{json}");
        assert_eq!(by_op["set"]["p50"].as_f64().unwrap().round(), 3.0, "{json}");
        // The whole's p99 is the one slow set.
        assert_eq!(json["latency_ms"]["p99"].as_f64().unwrap().round(), 3.0);
        let text = s.text();
        assert!(text.contains("\n  get: p50 0.100 ms"), "{text}");
        assert!(text.contains("\n  set: p50 3.00"), "{text}");
        // One server: no breakdown by server.
        assert!(json.get("latency_ms_by_host").is_none(), "{json}");
    }

    #[test]
    fn sessions_on_several_servers_report_latency_by_server() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        let mut c = Recorder::default();
        a.record_op("get", 0, 100_000, 0);
        b.record_op("get", 0, 4_000_000, 0);
        c.record_op("get", 0, 200_000, 0);
        let mut rec = Recorder::default();
        rec.merge_session(&a, "h:1");
        rec.merge_session(&b, "h:2");
        rec.merge_session(&c, "h:1");
        let json = serde_json::to_value(summary(&rec)).unwrap();
        let by_host = &json["latency_ms_by_host"];
        assert_eq!(by_host["h:1"]["max"].as_f64().unwrap(), 0.2, "{json}");
        assert_eq!(
            by_host["h:2"]["p50"].as_f64().unwrap().round(),
            4.0,
            "{json}"
        );
        assert!(json.get("latency_ms_by_op").is_none(), "{json}");
        assert!(summary(&rec).text().contains("\n  h:2: p50 4.00"));
    }

    fn summary(rec: &Recorder) -> Summary {
        Summary {
            throughput_ops_per_s: 1234.4,
            latency_ms: Summary::latency(rec),
            ops: rec.ops,
            errors: Summary::errors(rec),
            measured_s: 1.0,
            workload: "get".into(),
            hosts: "h:1".into(),
            sessions: 1,
            outstanding: Some(1),
            offered_rate_ops_per_s: None,
            value_bytes: 10,
            keys: 5,
            generator_cpu_s_per_1000_ops: 0.01,
            latency_ms_by_op: Summary::latency_by_op(rec),
            latency_ms_by_host: Summary::latency_by_host(rec),
            timeline_ops_per_s: vec![2],
        }
    }
}
