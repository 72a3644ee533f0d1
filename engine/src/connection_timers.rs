//! Per-connection deadlines and the half-open connection limit, as BitTornado set them.
//!
//! - A handshake not complete within 30 s closes the connection (`Encrypter`).
//! - A connection on which nothing arrived for `timeout` (300 s) is closed; the check runs every
//!   `timeout_check_interval` (60 s) in BitTornado, here on every shard tick.
//! - A keep-alive (zero-length message) is sent when we have sent nothing for `keepalive_interval`
//!   (120 s).
//! - At most `MAX_INCOMPLETE` (8) outgoing connections per torrent may be half-open (dialled, handshake
//!   not finished).
//!
//! Pure: the shard passes `now` and carries out the returned [`TimerAction`].

use std::time::{Duration, Instant};

/// BitTornado's handshake deadline.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// BitTornado's `timeout` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// BitTornado's `keepalive_interval` default.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(120);
/// BitTornado's `MAX_INCOMPLETE`: half-open outgoing connections per torrent.
pub const MAX_HALF_OPEN: usize = 8;

/// What a connection's timers ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    Nothing,
    SendKeepAlive,
    Close(CloseReason),
}

/// Why a connection is closed by a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    HandshakeTimeout,
    Idle,
}

/// Deadlines of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionTimers {
    opened: Instant,
    handshake_done: bool,
    last_received: Instant,
    last_sent: Instant,
    idle_timeout: Duration,
    keepalive_interval: Duration,
}

impl ConnectionTimers {
    pub fn new(now: Instant, idle_timeout: Duration, keepalive_interval: Duration) -> Self {
        ConnectionTimers {
            opened: now,
            handshake_done: false,
            last_received: now,
            last_sent: now,
            idle_timeout,
            keepalive_interval,
        }
    }

    /// With BitTornado's defaults.
    pub fn with_defaults(now: Instant) -> Self {
        Self::new(now, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE_INTERVAL)
    }

    pub fn handshake_completed(&mut self, now: Instant) {
        self.handshake_done = true;
        self.last_received = now;
    }

    /// Any bytes arrived.
    pub fn received(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
    }

    /// Any message was sent.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = self.last_sent.max(now);
    }

    /// What to do at `now`. Closing wins over a keep-alive.
    pub fn check(&self, now: Instant) -> TimerAction {
        if !self.handshake_done {
            if now.saturating_duration_since(self.opened) > HANDSHAKE_TIMEOUT {
                return TimerAction::Close(CloseReason::HandshakeTimeout);
            }
            return TimerAction::Nothing;
        }
        if now.saturating_duration_since(self.last_received) > self.idle_timeout {
            return TimerAction::Close(CloseReason::Idle);
        }
        if now.saturating_duration_since(self.last_sent) >= self.keepalive_interval {
            return TimerAction::SendKeepAlive;
        }
        TimerAction::Nothing
    }
}

/// Counts half-open outgoing connections of one torrent.
#[derive(Debug, Clone, Default)]
pub struct HalfOpenLimit {
    in_flight: usize,
}

impl HalfOpenLimit {
    /// A slot to dial, if fewer than [`MAX_HALF_OPEN`] dials are in flight.
    pub fn try_acquire(&mut self) -> bool {
        if self.in_flight >= MAX_HALF_OPEN {
            return false;
        }
        self.in_flight += 1;
        true
    }

    /// A dial finished (handshake done, failed or timed out).
    pub fn release(&mut self) {
        assert!(self.in_flight > 0, "release without acquire");
        self.in_flight -= 1;
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn handshake_deadline() {
        let t0 = Instant::now();
        let t = ConnectionTimers::with_defaults(t0);
        assert_eq!(t.check(at(t0, 30)), TimerAction::Nothing);
        assert_eq!(
            t.check(at(t0, 31)),
            TimerAction::Close(CloseReason::HandshakeTimeout)
        );
        // No keep-alives before the handshake.
        assert_eq!(t.check(at(t0, 29)), TimerAction::Nothing);
    }

    #[test]
    fn keepalive_then_idle_close() {
        let t0 = Instant::now();
        let mut t = ConnectionTimers::with_defaults(t0);
        t.handshake_completed(t0);
        assert_eq!(t.check(at(t0, 119)), TimerAction::Nothing);
        assert_eq!(t.check(at(t0, 120)), TimerAction::SendKeepAlive);
        t.sent(at(t0, 120));
        assert_eq!(t.check(at(t0, 200)), TimerAction::Nothing);
        t.received(at(t0, 250));
        t.sent(at(t0, 250));
        assert_eq!(t.check(at(t0, 540)), TimerAction::SendKeepAlive);
        t.sent(at(t0, 540));
        assert_eq!(t.check(at(t0, 550)), TimerAction::Nothing);
        assert_eq!(t.check(at(t0, 551)), TimerAction::Close(CloseReason::Idle));
        // A stale timestamp does not move the clocks back.
        t.received(t0);
        assert_eq!(t.check(at(t0, 551)), TimerAction::Close(CloseReason::Idle));
    }

    #[test]
    fn half_open_limit() {
        let mut h = HalfOpenLimit::default();
        for _ in 0..MAX_HALF_OPEN {
            assert!(h.try_acquire());
        }
        assert!(!h.try_acquire());
        h.release();
        assert!(h.try_acquire());
        assert_eq!(h.in_flight(), MAX_HALF_OPEN);
    }
}
