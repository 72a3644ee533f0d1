//! Shared helpers for cyclone's benchmarks: timing with warm-up and best/median reporting.
//!
//! Every benchmark binary in `src/bin/` compares cyclone against a real peer (another program or library) in the
//! same run and prints the ratio, so the figure means something on whatever machine runs it.

use std::time::{Duration, Instant};

/// Timing summary of repeated runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub best: Duration,
    pub median: Duration,
    pub runs: usize,
}

/// Runs `f` once to warm up, then `runs` times (bounded), and returns best and median wall time.
pub fn time_runs<T>(runs: usize, mut f: impl FnMut() -> T) -> Timing {
    assert!((1..=10_000).contains(&runs), "runs must be in 1..=10000");
    std::hint::black_box(f());
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    samples.sort();
    Timing {
        best: samples[0],
        median: samples[runs / 2],
        runs,
    }
}

/// Milliseconds with three decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}
