//! Rate measurement and rate limiting, driven by an injected clock.
//!
//! Nothing here reads the system clock: every method takes `now: Instant`, so the shard passes the
//! time of its current tick and tests pass synthetic instants. That keeps the arithmetic exact in tests
//! and costs one clock read per shard tick instead of one per byte counted.
//!
//! - [`RateMeasure`] is BitTornado's `CurrentRateMeasure.Measure`: a rate averaged over a window that
//!   grows to `max_rate_period` (20 s) and then slides. It drives the choker (download rate from a peer
//!   while leeching, upload rate to it while seeding), the request pipeline depth and the status line.
//! - [`TokenBucket`] limits bytes per second, single-threaded: a torrent's own limit.
//!   [`take_from_all`] grants the minimum several such buckets allow and charges each. The session-wide
//!   limit, shared by all shards without a lock, is [`crate::global_rate`]; `session/limits.rs`
//!   combines the two.

use std::time::{Duration, Instant};

/// BitTornado's rate option unit: kB/s means 1000 bytes per second, not 1024.
pub fn kilobytes_per_second(kb: f64) -> u64 {
    if kb <= 0.0 || !kb.is_finite() {
        0
    } else {
        (kb * 1000.0) as u64
    }
}

/// BitTornado's `max_rate_period` default.
pub const DEFAULT_MAX_RATE_PERIOD: Duration = Duration::from_secs(20);
/// BitTornado starts every measure one second in the past so the first samples do not read as huge
/// rates.
const RATE_FUDGE: Duration = Duration::from_secs(1);

/// Averaged transfer rate over a sliding window (BitTornado `Measure`).
#[derive(Debug, Clone)]
pub struct RateMeasure {
    max_rate_period: Duration,
    rate_since: Instant,
    last: Instant,
    rate_bytes_per_second: f64,
    total_bytes: u64,
}

impl RateMeasure {
    /// A measure starting at `now` with the given averaging window.
    pub fn new(now: Instant, max_rate_period: Duration) -> Self {
        assert!(!max_rate_period.is_zero(), "rate period must be positive");
        let rate_since = now.checked_sub(RATE_FUDGE).unwrap_or(now);
        RateMeasure {
            max_rate_period,
            rate_since,
            last: rate_since,
            rate_bytes_per_second: 0.0,
            total_bytes: 0,
        }
    }

    /// Counts `amount` bytes transferred at `now`.
    pub fn update(&mut self, now: Instant, amount: u64) {
        self.total_bytes = self.total_bytes.saturating_add(amount);
        // A clock that went backwards is treated as "no time passed".
        let now = now.max(self.last);
        let held = self.last.duration_since(self.rate_since).as_secs_f64();
        let span = now.duration_since(self.rate_since).as_secs_f64();
        self.rate_bytes_per_second =
            (self.rate_bytes_per_second * held + amount as f64) / (span + 0.0001);
        self.last = now;
        if let Some(window_start) = now.checked_sub(self.max_rate_period) {
            if self.rate_since < window_start {
                self.rate_since = window_start;
            }
        }
    }

    /// The rate at `now` (decays while nothing is transferred).
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.update(now, 0);
        self.rate_bytes_per_second
    }

    /// The rate as of the last update.
    pub fn rate_noupdate(&self) -> f64 {
        self.rate_bytes_per_second
    }

    /// Bytes counted since creation.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// How long to stay idle until the measured rate falls to `target` (BitTornado
    /// `time_until_rate`, used to pace uploads under a limit).
    pub fn time_until_rate(&self, now: Instant, target: f64) -> Duration {
        if self.rate_bytes_per_second <= target || target <= 0.0 {
            return Duration::ZERO;
        }
        let t = now.saturating_duration_since(self.rate_since).as_secs_f64();
        Duration::from_secs_f64(((self.rate_bytes_per_second * t) / target - t).max(0.0))
    }
}

/// A token bucket: `rate_bytes_per_second` tokens per second, holding at most `burst_bytes`.
/// A rate of 0 means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_bytes_per_second: u64,
    burst_bytes: u64,
    /// May go negative (bounded by one burst) when bytes that already arrived are charged.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket holding at most `burst_bytes` (at least 1).
    pub fn new(now: Instant, rate_bytes_per_second: u64, burst_bytes: u64) -> Self {
        let mut b = TokenBucket {
            rate_bytes_per_second: 0,
            burst_bytes: 0,
            tokens: 0.0,
            last: now,
        };
        b.set_rate(now, rate_bytes_per_second, burst_bytes);
        b.tokens = b.burst_bytes as f64;
        b
    }

    /// A bucket with BitTornado-like burst: `burst_seconds` of rate (at least one `min_unit`).
    pub fn with_burst_seconds(
        now: Instant,
        rate_bytes_per_second: u64,
        burst_seconds: f64,
        min_unit: u64,
    ) -> Self {
        let burst = ((rate_bytes_per_second as f64 * burst_seconds) as u64).max(min_unit);
        Self::new(now, rate_bytes_per_second, burst)
    }

    /// Changes the rate; tokens already held are kept up to the new burst.
    pub fn set_rate(&mut self, now: Instant, rate_bytes_per_second: u64, burst_bytes: u64) {
        self.refill(now);
        self.rate_bytes_per_second = rate_bytes_per_second;
        self.burst_bytes = burst_bytes.max(1);
        self.tokens = self.tokens.min(self.burst_bytes as f64);
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate_bytes_per_second == 0
    }

    pub fn rate_bytes_per_second(&self) -> u64 {
        self.rate_bytes_per_second
    }

    pub fn burst_bytes(&self) -> u64 {
        self.burst_bytes
    }

    fn refill(&mut self, now: Instant) {
        let now = now.max(self.last);
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens =
            (self.tokens + dt * self.rate_bytes_per_second as f64).min(self.burst_bytes as f64);
    }

    /// Whole tokens available at `now` (`u64::MAX` if unlimited).
    pub fn available(&mut self, now: Instant) -> u64 {
        if self.is_unlimited() {
            return u64::MAX;
        }
        self.refill(now);
        self.tokens.max(0.0) as u64
    }

    /// Takes up to `want` tokens; returns how many were granted.
    pub fn take(&mut self, now: Instant, want: u64) -> u64 {
        let granted = want.min(self.available(now));
        if !self.is_unlimited() {
            self.tokens -= granted as f64;
        }
        granted
    }

    /// Charges `amount` bytes that were transferred regardless of the limit (received data, protocol
    /// overhead, `tcp_ack_fudge`). The debt is bounded by one burst so a flood cannot stall the bucket
    /// forever.
    pub fn charge(&mut self, now: Instant, amount: u64) {
        if self.is_unlimited() {
            return;
        }
        self.refill(now);
        self.tokens = (self.tokens - amount as f64).max(-(self.burst_bytes as f64));
    }

    /// Time until `amount` tokens are available (zero if they are; `amount` above the burst waits for
    /// a full bucket).
    pub fn time_until(&mut self, now: Instant, amount: u64) -> Duration {
        if self.is_unlimited() {
            return Duration::ZERO;
        }
        self.refill(now);
        let target = amount.min(self.burst_bytes) as f64;
        if self.tokens >= target {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((target - self.tokens) / self.rate_bytes_per_second as f64)
    }
}

/// Grants up to `want` bytes allowed by every bucket (e.g. the torrent's and the global one) and
/// charges each of them.
pub fn take_from_all(now: Instant, want: u64, buckets: &mut [&mut TokenBucket]) -> u64 {
    let grant = buckets
        .iter_mut()
        .fold(want, |g, b| g.min(b.available(now)));
    for b in buckets.iter_mut() {
        let got = b.take(now, grant);
        debug_assert_eq!(got, grant);
    }
    grant
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn steady_rate_converges() {
        let t0 = Instant::now();
        let mut m = RateMeasure::new(t0, DEFAULT_MAX_RATE_PERIOD);
        for i in 1..=60 {
            m.update(secs(t0, i as f64), 1000);
        }
        let r = m.rate(secs(t0, 60.0));
        assert!((r - 1000.0).abs() < 20.0, "rate {r}");
        assert_eq!(m.total_bytes(), 60_000);
    }

    #[test]
    fn rate_decays_when_idle_and_window_slides() {
        let t0 = Instant::now();
        let mut m = RateMeasure::new(t0, DEFAULT_MAX_RATE_PERIOD);
        for i in 1..=30 {
            m.update(secs(t0, i as f64), 10_000);
        }
        let busy = m.rate(secs(t0, 30.0));
        let idle = m.rate(secs(t0, 40.0));
        // 20 s of history diluted over 30 s: two thirds remain.
        assert!(
            (idle / busy - 2.0 / 3.0).abs() < 0.01,
            "busy {busy} idle {idle}"
        );
        // Polled every second (as the shard tick does).
        let mut gone = idle;
        for i in 41..=80 {
            gone = m.rate(secs(t0, i as f64));
        }
        // Each idle second multiplies the rate by window / (window + 1 s): a geometric decay.
        let expected = idle * (20.0f64 / 21.0).powi(40);
        assert!(
            (gone - expected).abs() < expected * 0.01,
            "{gone} vs {expected}"
        );
    }

    #[test]
    fn first_second_fudge_keeps_first_sample_sane() {
        let t0 = Instant::now();
        let mut m = RateMeasure::new(t0, DEFAULT_MAX_RATE_PERIOD);
        m.update(t0, 16384);
        // One second of fudge: rate is ~16 KiB/s, not infinite.
        assert!((m.rate_noupdate() - 16384.0).abs() < 10.0);
    }

    #[test]
    fn time_until_rate() {
        let t0 = Instant::now();
        let mut m = RateMeasure::new(t0, DEFAULT_MAX_RATE_PERIOD);
        for i in 1..=10 {
            m.update(secs(t0, i as f64), 2000);
        }
        let now = secs(t0, 10.0);
        assert_eq!(m.time_until_rate(now, 5000.0), Duration::ZERO);
        let wait = m.time_until_rate(now, 1000.0);
        // 20000 bytes over 11 s (one second of fudge) is ~1818 B/s: ~9 idle seconds bring it to 1000.
        assert!(
            wait > Duration::from_secs(8) && wait < Duration::from_secs(10),
            "{wait:?}"
        );
    }

    #[test]
    fn backwards_clock_is_harmless() {
        let t0 = Instant::now();
        let mut m = RateMeasure::new(secs(t0, 10.0), DEFAULT_MAX_RATE_PERIOD);
        m.update(secs(t0, 12.0), 100);
        m.update(secs(t0, 11.0), 100);
        assert!(m.rate_noupdate().is_finite());
        let mut b = TokenBucket::new(secs(t0, 10.0), 100, 100);
        assert_eq!(b.take(secs(t0, 5.0), 1000), 100);
        assert_eq!(b.available(secs(t0, 5.0)), 0);
    }

    #[test]
    fn bucket_refills_at_rate_and_caps_at_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 1000, 2000);
        assert_eq!(b.take(t0, 5000), 2000);
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.available(secs(t0, 0.5)), 500);
        assert_eq!(b.available(secs(t0, 100.0)), 2000);
        assert_eq!(b.take(secs(t0, 100.0), 300), 300);
        assert_eq!(b.time_until(secs(t0, 100.0), 1700), Duration::ZERO);
        let w = b.time_until(secs(t0, 100.0), 2000);
        assert!((w.as_secs_f64() - 0.3).abs() < 1e-6);
    }

    #[test]
    fn bucket_debt_is_bounded() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 1000, 1000);
        b.charge(t0, 1_000_000);
        assert_eq!(b.available(t0), 0);
        // Debt capped at one burst: after 2 s the bucket is full again.
        assert_eq!(b.available(secs(t0, 2.0)), 1000);
    }

    #[test]
    fn unlimited_bucket() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 0, 0);
        assert!(b.is_unlimited());
        assert_eq!(b.take(t0, 123_456_789), 123_456_789);
        b.charge(t0, 5);
        assert_eq!(b.time_until(t0, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn global_and_torrent_buckets_both_apply() {
        let t0 = Instant::now();
        let mut global = TokenBucket::new(t0, 1000, 1000);
        let mut torrent_a = TokenBucket::new(t0, 600, 600);
        let mut torrent_b = TokenBucket::new(t0, 0, 0);
        assert_eq!(
            take_from_all(t0, 5000, &mut [&mut torrent_a, &mut global]),
            600
        );
        assert_eq!(
            take_from_all(t0, 5000, &mut [&mut torrent_b, &mut global]),
            400
        );
        assert_eq!(
            take_from_all(t0, 5000, &mut [&mut torrent_b, &mut global]),
            0
        );
        // Over 10 simulated seconds the sum never exceeds the global budget.
        let mut sent = 0;
        for ms in (100..=10_000).step_by(100) {
            let now = t0 + Duration::from_millis(ms);
            sent += take_from_all(now, 10_000, &mut [&mut torrent_a, &mut global]);
            sent += take_from_all(now, 10_000, &mut [&mut torrent_b, &mut global]);
        }
        assert!(sent <= 10_000 + 1, "{sent}");
        assert!(sent >= 9_900, "{sent}");
    }

    #[test]
    fn kilobytes_are_thousands() {
        assert_eq!(kilobytes_per_second(20.0), 20_000);
        assert_eq!(kilobytes_per_second(0.0), 0);
        assert_eq!(kilobytes_per_second(-1.0), 0);
        assert_eq!(kilobytes_per_second(f64::NAN), 0);
    }
}
