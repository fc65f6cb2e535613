//! Latency bookkeeping: HdrHistograms in microseconds, the open-loop schedule, and the ramp's
//! stop rule. Pure functions of their inputs, so the tests below pin the rules down.

use hdrhistogram::Histogram;

/// Highest latency recorded (longer ones are clamped): 10 minutes, in microseconds.
const LATENCY_US_MAX: u64 = 600_000_000;

/// Latencies of one session (or the merge of many), and errors by ZooKeeper code.
#[derive(Clone)]
pub struct Recorder {
    pub hist: Histogram<u64>,
    pub ops: u64,
    pub errors: std::collections::BTreeMap<i32, u64>,
    /// The same latencies by kind of operation (scenarios record none) and by server (filled as
    /// sessions are merged: each session has one).
    pub by_op: std::collections::BTreeMap<&'static str, Histogram<u64>>,
    pub by_host: std::collections::BTreeMap<String, Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

fn latency_us(intended_ns: u64, done_ns: u64) -> u64 {
    (done_ns.saturating_sub(intended_ns) / 1000).clamp(1, LATENCY_US_MAX)
}

/// The latency at percentile `p` of `hist`, in milliseconds (0 if it is empty).
pub fn percentile_ms(hist: &Histogram<u64>, p: f64) -> f64 {
    if hist.is_empty() {
        return 0.0;
    }
    hist.value_at_quantile(p / 100.0) as f64 / 1000.0
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            hist: histogram(),
            ops: 0,
            errors: Default::default(),
            by_op: Default::default(),
            by_host: Default::default(),
        }
    }
}

impl Recorder {
    /// Records one reply. `intended_ns` is when the request was due (open loop) or sent (closed
    /// loop); `done_ns` is when its reply arrived. Measuring from the due time is what corrects
    /// for coordinated omission.
    pub fn record(&mut self, intended_ns: u64, done_ns: u64, err: i32) {
        self.hist
            .record(latency_us(intended_ns, done_ns))
            .expect("clamped into range");
        self.ops += 1;
        if err != 0 {
            *self.errors.entry(err).or_default() += 1;
        }
    }

    /// Records one reply to an operation of kind `op`: in the whole and in that kind's own.
    pub fn record_op(&mut self, op: &'static str, intended_ns: u64, done_ns: u64, err: i32) {
        self.record(intended_ns, done_ns, err);
        self.by_op
            .entry(op)
            .or_insert_with(histogram)
            .record(latency_us(intended_ns, done_ns))
            .expect("clamped into range");
    }

    /// Merges what one session against `host` measured, counting it as that server's too.
    pub fn merge_session(&mut self, session: &Recorder, host: &str) {
        self.merge(session);
        if session.hist.is_empty() {
            return; // the watch writer, say: it measures nothing itself
        }
        self.by_host
            .entry(host.to_string())
            .or_insert_with(histogram)
            .add(&session.hist)
            .expect("same bounds");
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.hist.add(&other.hist).expect("same bounds");
        for (op, hist) in &other.by_op {
            self.by_op
                .entry(op)
                .or_insert_with(histogram)
                .add(hist)
                .expect("same bounds");
        }
        for (host, hist) in &other.by_host {
            self.by_host
                .entry(host.clone())
                .or_insert_with(histogram)
                .add(hist)
                .expect("same bounds");
        }
        self.ops += other.ops;
        for (code, n) in &other.errors {
            *self.errors.entry(*code).or_default() += n;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// When the i-th request of an open-loop session is due: evenly spaced at `rate` per second.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start_ns: u64,
    pub interval_ns: f64,
}

impl Schedule {
    pub fn new(start_ns: u64, rate_per_s: f64) -> Schedule {
        assert!(rate_per_s > 0.0);
        Schedule {
            start_ns,
            interval_ns: 1e9 / rate_per_s,
        }
    }

    pub fn due_ns(&self, i: u64) -> u64 {
        self.start_ns + (i as f64 * self.interval_ns) as u64
    }
}

/// The ramp stops at the first step whose p99 misses the objective or that saw errors.
pub fn ramp_step_failed(
    p99_ms: f64,
    slo_p99_ms: f64,
    errors: u64,
    achieved_rate: f64,
    offered_rate: f64,
) -> bool {
    // A step that could not even deliver 90% of its offered rate has also saturated the server.
    errors > 0 || p99_ms > slo_p99_ms || achieved_rate < 0.9 * offered_rate
}

/// The next offered rate of a ramp: +25%, at least +1.
pub fn ramp_next_rate(rate: u64) -> u64 {
    (rate + rate / 4).max(rate + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that stalls for one second under an open-loop load of 1000/s: every request due
    /// during the stall waits until it ends. Measured from the due time, the stall shows in the
    /// percentiles; measured from the (late) send time it would vanish.
    #[test]
    fn open_loop_latency_includes_the_stall() {
        let sched = Schedule::new(0, 1000.0);
        let mut corrected = Recorder::default();
        let mut naive = Recorder::default();
        let stall_end_ns = 1_000_000_000;
        for i in 0..2000 {
            let due = sched.due_ns(i);
            let sent = due.max(stall_end_ns);
            let done = sent + 100_000; // 0.1 ms service time
            corrected.record(due, done, 0);
            naive.record(sent, done, 0);
        }
        // Half the requests were due during the stall and waited 0..1000 ms for it to end.
        assert!(
            percentile_ms(&corrected.hist, 75.0) > 400.0,
            "{}",
            percentile_ms(&corrected.hist, 75.0)
        );
        assert!(
            percentile_ms(&corrected.hist, 90.0) > 700.0,
            "{}",
            percentile_ms(&corrected.hist, 90.0)
        );
        assert!(corrected.hist.max() as f64 / 1000.0 > 990.0);
        assert!(
            naive.hist.max() as f64 / 1000.0 < 0.2,
            "send-time measurement hides the stall"
        );
    }

    #[test]
    fn schedule_spaces_requests_evenly() {
        let s = Schedule::new(5_000, 4.0);
        assert_eq!(
            (s.due_ns(0), s.due_ns(1), s.due_ns(4)),
            (5_000, 250_005_000, 1_000_005_000)
        );
    }

    #[test]
    fn errors_are_counted_by_code() {
        let mut r = Recorder::default();
        r.record(0, 1_000_000, 0);
        r.record(0, 1_000_000, -101);
        r.record(0, 1_000_000, -101);
        let mut total = Recorder::default();
        total.merge(&r);
        total.merge(&r);
        assert_eq!(
            (total.ops, total.error_count(), total.errors[&-101]),
            (6, 4, 4)
        );
        assert!((percentile_ms(&total.hist, 99.0) - 1.0).abs() < 0.01);
    }

    #[test]
    fn ramp_stops_on_slo_errors_or_saturation() {
        assert!(!ramp_step_failed(5.0, 10.0, 0, 1000.0, 1000.0));
        assert!(ramp_step_failed(11.0, 10.0, 0, 1000.0, 1000.0));
        assert!(ramp_step_failed(1.0, 10.0, 1, 1000.0, 1000.0));
        assert!(ramp_step_failed(1.0, 10.0, 0, 800.0, 1000.0));
        assert_eq!(ramp_next_rate(1000), 1250);
        assert_eq!(ramp_next_rate(1), 2);
    }
}
