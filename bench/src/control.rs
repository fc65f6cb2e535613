//! The clock and stop rules of one load phase, shared by every generator executor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The phase's clock and stop rules, shared by every executor.
pub struct Control {
    start: Instant,
    pub warmup_ns: u64,
    pub end_ns: u64,
    ops_budget: Option<u64>,
    pub measured: AtomicU64,
    stop: AtomicBool,
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
            stop: AtomicBool::new(false),
        }
    }

    /// Counts one measured reply; the one that spends the budget stops the phase.
    pub fn count_measured(&self) {
        let measured = self.measured.fetch_add(1, Relaxed) + 1;
        if self.ops_budget.is_some_and(|budget| measured >= budget) {
            self.stop.store(true, Relaxed);
        }
    }

    /// Whether the phase ended on its operation budget rather than its clock.
    pub fn budget_spent(&self) -> bool {
        self.stop.load(Relaxed)
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
            || self.now_ns() >= self.end_ns
            || self
                .ops_budget
                .is_some_and(|b| self.measured.load(Relaxed) >= b)
    }
}
