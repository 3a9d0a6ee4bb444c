//! Where a reproduction's wall time goes, phase by phase.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Wall-clock time since the start, and the time spent in named phases.
pub struct Stopwatch {
    start: Instant,
    phases: BTreeMap<&'static str, Duration>,
}

/// A [`Stopwatch`]'s reading, in seconds.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Wall-clock seconds from the start to the reading.
    pub wall_seconds: f64,
    /// Seconds spent in each phase; the rest of the wall time is loading,
    /// saving and reporting.
    pub phases: BTreeMap<String, f64>,
}

impl Stopwatch {
    /// Starts the clock.
    pub fn start() -> Self {
        Self { start: Instant::now(), phases: BTreeMap::new() }
    }

    /// Runs `f`, adding its wall time to `phase`.
    pub fn time<T>(&mut self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = f();
        self.add(phase, start.elapsed());
        result
    }

    /// Adds `spent` to `phase`.
    pub fn add(&mut self, phase: &'static str, spent: Duration) {
        *self.phases.entry(phase).or_default() += spent;
    }

    /// The time so far.
    pub fn reading(&self) -> Timing {
        Timing {
            wall_seconds: self.start.elapsed().as_secs_f64(),
            phases: self.phases.iter().map(|(name, d)| (name.to_string(), d.as_secs_f64())).collect(),
        }
    }
}

impl Timing {
    /// One line: the wall time in minutes and each phase's share.
    pub fn summary(&self) -> String {
        let phases: Vec<String> = self.phases.iter().map(|(name, s)| format!("{name} {:.1} min", s / 60.0)).collect();
        format!("{:.1} min in all: {}", self.wall_seconds / 60.0, phases.join(", "))
    }
}
