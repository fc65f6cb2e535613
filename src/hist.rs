//! The distributions the metrics endpoint reports: request latency per opcode (kept by each
//! front core for itself, so recording touches no shared memory), and the log's fdatasync
//! time, group-commit batch sizes and snapshot time (recorded once per batch or snapshot).

use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Largest value a histogram holds (larger ones count as this): an hour in microseconds.
const VALUE_MAX: u64 = 3_600_000_000;
/// Significant decimal digits kept (1% error).
const SIGNIFICANT_DIGITS: u8 = 2;

/// One distribution, with its exact sum (which HdrHistogram does not keep).
#[derive(Clone)]
pub struct Hist {
    h: Histogram<u64>,
    sum: u64,
}

impl Default for Hist {
    fn default() -> Hist {
        Hist {
            h: Histogram::new_with_bounds(1, VALUE_MAX, SIGNIFICANT_DIGITS)
                .expect("the bounds are valid"),
            sum: 0,
        }
    }
}

impl std::fmt::Debug for Hist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hist(count {}, sum {})", self.count(), self.sum)
    }
}

impl Hist {
    pub fn record(&mut self, value: u64) {
        let v = value.clamp(1, VALUE_MAX);
        self.h.saturating_record(v);
        self.sum = self.sum.saturating_add(value);
    }

    pub fn count(&self) -> u64 {
        self.h.len()
    }

    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// The value at quantile `q` (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count() == 0 {
            0
        } else {
            self.h.value_at_quantile(q)
        }
    }

    /// How many values are at most `bound`.
    pub fn count_at_most(&self, bound: u64) -> u64 {
        if bound >= VALUE_MAX {
            return self.count();
        }
        self.h.count_between(0, bound.max(1))
    }

    pub fn merge(&mut self, other: &Hist) {
        self.h
            .add(&other.h)
            .expect("histograms with the same bounds always merge");
        self.sum = self.sum.saturating_add(other.sum);
    }
}

/// Request latency in microseconds by opcode, as one front core measured it.
#[derive(Clone, Debug, Default)]
pub struct OpLatencies {
    pub by_op: BTreeMap<i32, Hist>,
}

impl OpLatencies {
    pub fn merge(&mut self, other: &OpLatencies) {
        for (op, h) in &other.by_op {
            self.by_op.entry(*op).or_default().merge(h);
        }
    }
}

thread_local! {
    /// This front core's latencies (each front is one thread; `answer_controls` runs on it too).
    static FRONT_LATENCIES: RefCell<OpLatencies> = RefCell::new(OpLatencies::default());
}

/// Where requests with opcodes ZooKeeper does not define are counted, together, so a client
/// cannot grow the table by sending made-up opcodes.
pub const UNKNOWN_OPCODE: i32 = i32::MIN;

/// Records one answered request on the calling front core.
pub fn record_request(opcode: i32, micros: u64) {
    let key = if ringkeeper_engine::proto::opcode::name(opcode) == "unknown" {
        UNKNOWN_OPCODE
    } else {
        opcode
    };
    FRONT_LATENCIES.with(|l| l.borrow_mut().by_op.entry(key).or_default().record(micros));
}

/// A copy of the calling front core's latencies.
pub fn front_latencies() -> OpLatencies {
    FRONT_LATENCIES.with(|l| l.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_sums_and_buckets_follow_the_values() {
        let mut h = Hist::default();
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.sum(), 500_500);
        let p50 = h.quantile(0.5);
        assert!((495..=505).contains(&p50), "{p50}");
        assert_eq!(h.count_at_most(100), 100);
        assert_eq!(h.count_at_most(u64::MAX), 1000);
        let mut other = Hist::default();
        other.record(VALUE_MAX * 2);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert!(
            h.quantile(1.0) >= VALUE_MAX - VALUE_MAX / 100,
            "clamped, not dropped"
        );
    }

    #[test]
    fn each_thread_keeps_its_own_latencies() {
        record_request(4, 120);
        record_request(4, 80);
        let other = std::thread::spawn(|| {
            record_request(5, 1000);
            front_latencies()
        })
        .join()
        .unwrap();
        let mine = front_latencies();
        assert_eq!(mine.by_op[&4].count(), 2);
        assert!(!mine.by_op.contains_key(&5));
        assert_eq!(other.by_op[&5].sum(), 1000);
        let mut all = mine.clone();
        all.merge(&other);
        assert_eq!(all.by_op.len(), 2);
        for made_up in 1000..1100 {
            record_request(made_up, 5);
        }
        let l = front_latencies();
        assert_eq!(
            l.by_op[&UNKNOWN_OPCODE].count(),
            100,
            "made-up opcodes share one entry"
        );
        assert_eq!(l.by_op.len(), 2);
    }
}
