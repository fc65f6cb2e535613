//! The clock and stop rules of one load phase, shared by every generator executor.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The phase's clock and stop rules, shared by every executor.
pub struct Control {
    start: Instant,
    pub warmup_ns: u64,
    pub end_ns: u64,
    ops_budget: Option<u64>,
    measured: AtomicU64,
    /// When (ns since start) the reply that spent the budget arrived; 0 while it is not spent.
    spent_ns: AtomicU64,
}

impl Control {
    /// A phase that warms up for `warmup`, then measures for `measure` or until `ops_budget`
    /// replies were measured, whichever comes first.
    pub fn new(warmup: Duration, measure: Duration, ops_budget: Option<u64>) -> Control {
        Control {
            start: Instant::now(),
            warmup_ns: warmup.as_nanos() as u64,
            end_ns: (warmup + measure).as_nanos() as u64,
            ops_budget,
            measured: AtomicU64::new(0),
            spent_ns: AtomicU64::new(0),
        }
    }

    /// Counts one measured reply; the one that spends the budget stops the phase and marks when.
    pub fn count_measured(&self) {
        let measured = self.measured.fetch_add(1, Relaxed) + 1;
        if self.ops_budget == Some(measured) {
            self.spent_ns.store(self.now_ns().max(1), Relaxed);
        }
    }

    /// How long the measured part of a phase that ended on its operation budget lasted (`None`
    /// if it ran on its clock).
    pub fn spent_after(&self) -> Option<Duration> {
        match self.spent_ns.load(Relaxed) {
            0 => None,
            t => Some(Duration::from_nanos(
                t.saturating_sub(self.warmup_ns).max(1),
            )),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn stopped(&self) -> bool {
        self.spent_ns.load(Relaxed) != 0 || self.now_ns() >= self.end_ns
    }
}
