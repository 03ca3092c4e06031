//! Wall time of each link phase, printed by `--show-times`. Each phase opens its own span, so
//! the time is measured where the work is and cannot be left out by a caller.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Records how long each phase took, in the order the phases ended.
#[derive(Default, Debug)]
pub struct PhaseTimes {
    phases: Mutex<Vec<(&'static str, Duration)>>,
}

/// A phase being timed: records its wall time when dropped.
#[must_use = "a span measures until it is dropped"]
pub struct Span<'a> {
    times: &'a PhaseTimes,
    name: &'static str,
    start: Instant,
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.times
            .phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.name, elapsed));
    }
}

impl PhaseTimes {
    /// Start timing the phase `name`; it ends when the span is dropped.
    pub fn span(&self, name: &'static str) -> Span<'_> {
        Span {
            times: self,
            name,
            start: Instant::now(),
        }
    }

    /// Each phase's name and wall time, in the order the phases ended.
    pub fn phases(&self) -> Vec<(&'static str, Duration)> {
        self.phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One line per phase, then the total: `   resolve     1.234 ms`.
    pub fn report(&self) -> String {
        let phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut total = Duration::ZERO;
        for (name, duration) in phases.iter() {
            total += *duration;
            out.push_str(&format!(
                "{name:>10} {:>9.3} ms\n",
                duration.as_secs_f64() * 1e3
            ));
        }
        out.push_str(&format!(
            "{:>10} {:>9.3} ms\n",
            "total",
            total.as_secs_f64() * 1e3
        ));
        out
    }
}
