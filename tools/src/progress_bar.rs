//! A one-line hashing progress bar on stderr (pieces, MB/s, ETA), drawn only when stderr is a
//! terminal, so pipes and logs stay clean.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use cyclone_metainfo::piece_hasher::Progress;

/// Redraw at most this often: the terminal is not the bottleneck we are measuring.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

pub struct ProgressBar {
    enabled: bool,
    label: String,
    started: Instant,
    last_draw: Option<Instant>,
}

impl ProgressBar {
    /// A bar for one job; silent when `quiet` or when stderr is not a terminal.
    pub fn new(label: impl Into<String>, quiet: bool) -> ProgressBar {
        ProgressBar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            label: label.into(),
            started: Instant::now(),
            last_draw: None,
        }
    }

    pub fn update(&mut self, p: Progress) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let done = p.pieces_done == p.pieces_total;
        if !done && self.last_draw.is_some_and(|t| now - t < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(now);
        let secs = (now - self.started).as_secs_f64().max(1e-6);
        let rate = p.bytes_done as f64 / secs;
        let eta = if rate > 0.0 {
            (p.bytes_total - p.bytes_done) as f64 / rate
        } else {
            0.0
        };
        let pct = if p.bytes_total == 0 {
            100.0
        } else {
            p.bytes_done as f64 * 100.0 / p.bytes_total as f64
        };
        let width = 30usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        let bar: String = "#".repeat(filled.min(width)) + &"-".repeat(width - filled.min(width));
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{bar}] {}/{} pieces {pct:5.1}% {:7.1} MB/s ETA {:4.0}s ",
            self.label,
            p.pieces_done,
            p.pieces_total,
            rate / 1e6,
            eta
        );
        let _ = err.flush();
    }

    /// Clears the line so later messages start clean.
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
