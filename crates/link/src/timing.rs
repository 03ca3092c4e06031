//! Wall time of each link phase, printed by `--show-times`.

use std::time::{Duration, Instant};

/// Records how long each phase took, in the order the phases ran.
#[derive(Default, Debug)]
pub struct PhaseTimes {
    phases: Vec<(&'static str, Duration)>,
}

impl PhaseTimes {
    /// Run `work` as the phase `name`, recording its wall time.
    pub fn time<T>(&mut self, name: &'static str, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = work();
        self.phases.push((name, start.elapsed()));
        result
    }

    /// One line per phase, then the total: `  resolve      1.234 ms`.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let mut total = Duration::ZERO;
        for (name, duration) in &self.phases {
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
