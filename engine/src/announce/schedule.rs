//! When one torrent announces next: a pure state machine over an injected clock.
//!
//! The shard keeps one [`AnnounceSchedule`] per torrent, asks [`AnnounceSchedule::next_wakeup`] for the instant to
//! file in its timer wheel, and at that instant calls [`AnnounceSchedule::poll`]; a `Some` starts one announce round
//! (a walk over the tiers, see `tiers.rs`), whose outcome is reported with [`AnnounceSchedule::on_success`] or
//! [`AnnounceSchedule::on_failure`]. At most one announce is in flight per torrent (BitTornado serialises them too).
//!
//! Rules, from BitTornado 0.3.18 `Rerequester` with its bugs fixed and modern practice added:
//! - `started` first; `completed` when the download finishes; `stopped` at shutdown (one attempt, and only if the
//!   tracker ever heard `started`); no event otherwise.
//! - Regular announces every tracker `interval` (1800 s until a tracker says otherwise; a reply without `interval`
//!   keeps the previous one), minus a random jitter of up to [`ScheduleConfig::jitter_percent`], so thousands of
//!   torrents started together do not announce in lock-step. Never earlier than the tracker's `min interval` or our
//!   own floor [`ScheduleConfig::min_announce_interval`], never later than [`ScheduleConfig::max_interval`]: a tracker
//!   cannot make us spin, nor silence us for a week.
//! - Failures: BitTornado retries every 60 s until the first success, then waits a whole interval. cyclone backs off
//!   from [`ScheduleConfig::retry_base`] (60 s), doubling per consecutive failure up to [`ScheduleConfig::retry_max`],
//!   with ±jitter, and after a first success never waits longer than the regular interval. A pending event
//!   (`started`, `completed`) is kept and re-sent on retry.
//! - Early re-announce for peers: BitTornado meant to announce again every `rerequest_interval` (300 s; replaced by
//!   the tracker's `min interval`) while fewer than `min_peers` (20) are connected, but its check tests
//!   `not unpauseflag.isSet()`, true only while *paused*, so it never fires. cyclone implements the intent: with fewer
//!   than `min_peers` connections, a regular (event-less) announce is due `max(rerequest_interval, min interval)`
//!   after the last one, if that is sooner than the regular time.
//! - Events are sent as soon as possible, without waiting for `min interval`: trackers count on them.

use std::time::{Duration, Instant};

use super::Event;

/// Timing policy (BitTornado option names in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Regular interval until a tracker sends `interval` (BitTornado: 30 min).
    pub default_interval: Duration,
    /// How soon an announce for more peers may follow the last one [`--rerequest_interval` 300 s].
    pub rerequest_interval: Duration,
    /// Announce early while fewer peers than this are connected [`--min_peers` 20].
    pub min_peers: usize,
    /// First retry delay after a failed round (BitTornado: 60 s).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Our floor under any tracker `interval` / `min interval`. Loopback tests with a 3 s tracker lower it.
    pub min_announce_interval: Duration,
    /// Our ceiling over a tracker `interval`.
    pub max_interval: Duration,
    /// Random spread, in percent: regular announces come up to this much early; retries ± this much.
    pub jitter_percent: u32,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            default_interval: Duration::from_secs(1800),
            rerequest_interval: Duration::from_secs(300),
            min_peers: 20,
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(1800),
            min_announce_interval: Duration::from_secs(30),
            max_interval: Duration::from_secs(4 * 3600),
            jitter_percent: 10,
        }
    }
}

/// Why an announce is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An event to deliver (`started`, `completed`, `stopped`).
    Event,
    /// The tracker's interval has passed.
    Regular,
    /// A retry after a failed round.
    Retry,
    /// Fewer than `min_peers` connections.
    NeedPeers,
}

/// An announce to start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub event: Option<Event>,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// `stop` was called: deliver `stopped` (if the tracker knows us), then finish.
    Stopping,
    Finished,
}

/// The announce timing state of one torrent.
#[derive(Debug, Clone)]
pub struct AnnounceSchedule {
    config: ScheduleConfig,
    phase: Phase,
    started_acknowledged: bool,
    completed_pending: bool,
    /// The event of the announce in flight (`Some(None)`: an event-less one).
    in_flight: Option<Option<Event>>,
    /// Consecutive failed rounds.
    failures: u32,
    ever_succeeded: bool,
    /// When the next retry may go (after a failure).
    retry_at: Option<Instant>,
    /// When the next regular announce is due (after a success).
    regular_at: Instant,
    last_sent: Option<Instant>,
    /// Tracker `interval`, clamped.
    interval: Duration,
    /// Tracker `min interval`, if it sent one.
    min_interval: Option<Duration>,
}

impl AnnounceSchedule {
    /// A torrent starting now: `started` is due at once.
    pub fn new(now: Instant, config: ScheduleConfig) -> AnnounceSchedule {
        let interval = config.default_interval.clamp(
            config.min_announce_interval,
            config.max_interval.max(config.min_announce_interval),
        );
        AnnounceSchedule {
            config,
            phase: Phase::Running,
            started_acknowledged: false,
            completed_pending: false,
            in_flight: None,
            failures: 0,
            ever_succeeded: false,
            retry_at: None,
            regular_at: now,
            last_sent: None,
            interval,
            min_interval: None,
        }
    }

    /// The download finished: `completed` goes out next (after `started`, if that is still pending, so the tracker
    /// counts the completion).
    pub fn completed(&mut self) {
        if self.phase == Phase::Running {
            self.completed_pending = true;
        }
    }

    /// The torrent is stopping: `stopped` goes out next, once, if the tracker ever acknowledged `started`. A
    /// `completed` still pending goes out first (one attempt), so a download that finishes and exits at once
    /// (`--exit-on-complete`) is still counted by the tracker.
    pub fn stop(&mut self) {
        if self.phase == Phase::Running {
            self.phase = Phase::Stopping;
            self.completed_pending &= self.started_acknowledged;
            self.retry_at = None;
        }
    }

    /// Nothing more will ever be announced.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// An announce is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The tracker's current interval (clamped), for display.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The next announce and the earliest instant it is due, given the current connection count. `None` while one is
    /// in flight or when finished.
    fn next(&self, connected_peers: usize) -> Option<(Instant, Due)> {
        if self.in_flight.is_some() {
            return None;
        }
        let event_due = |event| Due {
            event: Some(event),
            reason: Reason::Event,
        };
        match self.phase {
            Phase::Finished => None,
            // Stopping with nothing the tracker knows about is handled in `poll`; here both cases are "now".
            Phase::Stopping => Some((
                self.last_sent.unwrap_or(self.regular_at),
                event_due(if self.completed_pending {
                    Event::Completed
                } else {
                    Event::Stopped
                }),
            )),
            Phase::Running => {
                let pending = if !self.started_acknowledged {
                    Some(Event::Started)
                } else if self.completed_pending {
                    Some(Event::Completed)
                } else {
                    None
                };
                if let Some(retry_at) = self.retry_at {
                    return Some((
                        retry_at,
                        Due {
                            event: pending,
                            reason: Reason::Retry,
                        },
                    ));
                }
                if let Some(event) = pending {
                    return Some((self.last_sent.unwrap_or(self.regular_at), event_due(event)));
                }
                let regular = (
                    self.regular_at,
                    Due {
                        event: None,
                        reason: Reason::Regular,
                    },
                );
                if connected_peers < self.config.min_peers {
                    if let Some(last) = self.last_sent {
                        let gap = self
                            .config
                            .rerequest_interval
                            .max(self.min_interval.unwrap_or_default())
                            .max(self.config.min_announce_interval);
                        let early = last + gap;
                        if early < self.regular_at {
                            return Some((
                                early,
                                Due {
                                    event: None,
                                    reason: Reason::NeedPeers,
                                },
                            ));
                        }
                    }
                }
                Some(regular)
            }
        }
    }

    /// When to call [`AnnounceSchedule::poll`] next (for the timer wheel). `None`: not until an outcome is reported,
    /// or never. The answer depends on `connected_peers`; ask again when it drops below `min_peers`.
    pub fn next_wakeup(&self, connected_peers: usize) -> Option<Instant> {
        if self.phase == Phase::Stopping && !self.started_acknowledged && self.in_flight.is_none() {
            return None;
        }
        self.next(connected_peers).map(|(at, _)| at)
    }

    /// If an announce is due at `now`, marks it in flight and returns what to send.
    pub fn poll(&mut self, now: Instant, connected_peers: usize) -> Option<Due> {
        if self.phase == Phase::Stopping && !self.started_acknowledged && self.in_flight.is_none() {
            // The tracker never heard of us: there is nothing to stop.
            self.phase = Phase::Finished;
            return None;
        }
        let (at, due) = self.next(connected_peers)?;
        if at > now {
            return None;
        }
        self.in_flight = Some(due.event);
        self.last_sent = Some(now);
        Some(due)
    }

    /// The announce in flight succeeded; `interval` and `min_interval` are the tracker's (seconds), if it sent them.
    pub fn on_success(
        &mut self,
        now: Instant,
        interval: Option<u32>,
        min_interval: Option<u32>,
        rng: &mut fastrand::Rng,
    ) {
        let Some(event) = self.in_flight.take() else {
            return;
        };
        self.failures = 0;
        self.retry_at = None;
        self.ever_succeeded = true;
        match event {
            Some(Event::Started) => self.started_acknowledged = true,
            Some(Event::Completed) => self.completed_pending = false,
            Some(Event::Stopped) => {
                self.phase = Phase::Finished;
                return;
            }
            None => {}
        }
        let floor = self.config.min_announce_interval;
        let ceiling = self.config.max_interval.max(floor);
        if let Some(m) = min_interval {
            self.min_interval = Some(Duration::from_secs(u64::from(m)).clamp(floor, ceiling));
        }
        if let Some(i) = interval {
            self.interval = Duration::from_secs(u64::from(i)).clamp(floor, ceiling);
        }
        let lowest = self.min_interval.unwrap_or(floor).max(floor);
        let spread = self
            .interval
            .mul_f64(f64::from(self.config.jitter_percent.min(100)) / 100.0);
        let early = spread.mul_f64(rng.f64());
        self.regular_at = now + self.interval.saturating_sub(early).max(lowest);
    }

    /// The announce in flight failed on every tracker.
    pub fn on_failure(&mut self, now: Instant, rng: &mut fastrand::Rng) {
        let Some(event) = self.in_flight.take() else {
            return;
        };
        if event == Some(Event::Stopped)
            || self.phase == Phase::Stopping && !self.started_acknowledged
        {
            // `stopped` is a courtesy: one attempt. And a failed `started` during shutdown needs no `stopped`.
            self.phase = Phase::Finished;
            return;
        }
        if self.phase == Phase::Stopping {
            // While stopping, `completed` gets one attempt; `stopped` follows either way.
            if event == Some(Event::Completed) {
                self.completed_pending = false;
            }
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        let mut delay = self
            .config
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(self.config.retry_max);
        if self.ever_succeeded {
            delay = delay.min(self.interval);
        }
        // ±jitter_percent, uniformly.
        let spread = delay.mul_f64(f64::from(self.config.jitter_percent.min(100)) / 100.0);
        let offset = spread.mul_f64(rng.f64() * 2.0);
        let delay = (delay + offset).saturating_sub(spread);
        self.retry_at = Some(now + delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn no_jitter() -> ScheduleConfig {
        ScheduleConfig {
            jitter_percent: 0,
            ..ScheduleConfig::default()
        }
    }

    const MANY: usize = 100;

    #[test]
    fn started_then_regular_intervals() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        assert_eq!(s.next_wakeup(MANY), Some(t0));
        let due = s.poll(t0, MANY).unwrap();
        assert_eq!(
            due,
            Due {
                event: Some(Event::Started),
                reason: Reason::Event
            }
        );
        assert!(s.in_flight());
        assert_eq!(s.poll(t0, MANY), None, "one announce in flight at a time");
        assert_eq!(s.next_wakeup(MANY), None);
        s.on_success(t0 + secs(1), Some(600), None, &mut rng);
        assert_eq!(s.next_wakeup(MANY), Some(t0 + secs(601)));
        assert_eq!(s.poll(t0 + secs(600), MANY), None);
        let due = s.poll(t0 + secs(601), MANY).unwrap();
        assert_eq!(
            due,
            Due {
                event: None,
                reason: Reason::Regular
            }
        );
        // A reply without interval keeps the previous one.
        s.on_success(t0 + secs(602), None, None, &mut rng);
        assert_eq!(s.next_wakeup(MANY), Some(t0 + secs(1202)));
    }

    #[test]
    fn interval_is_clamped_both_ways() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.poll(t0, MANY).unwrap();
        s.on_success(t0, Some(1), None, &mut rng);
        assert_eq!(s.next_wakeup(MANY), Some(t0 + secs(30)), "floor");
        s.poll(t0 + secs(30), MANY).unwrap();
        s.on_success(t0 + secs(30), Some(u32::MAX), None, &mut rng);
        assert_eq!(
            s.next_wakeup(MANY),
            Some(t0 + secs(30 + 4 * 3600)),
            "ceiling"
        );
    }

    #[test]
    fn jitter_only_makes_regular_announces_earlier_and_respects_min_interval() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(5);
        let config = ScheduleConfig::default();
        let mut seen_early = false;
        for _ in 0..200 {
            let mut s = AnnounceSchedule::new(t0, config);
            s.poll(t0, MANY).unwrap();
            s.on_success(t0, Some(1000), None, &mut rng);
            let at = s.next_wakeup(MANY).unwrap();
            assert!(
                at <= t0 + secs(1000) && at >= t0 + secs(900),
                "{:?}",
                at - t0
            );
            seen_early |= at < t0 + secs(990);
            // With min interval close to interval, jitter cannot go below it.
            let mut s = AnnounceSchedule::new(t0, config);
            s.poll(t0, MANY).unwrap();
            s.on_success(t0, Some(1000), Some(980), &mut rng);
            assert!(s.next_wakeup(MANY).unwrap() >= t0 + secs(980));
        }
        assert!(seen_early, "jitter spreads announces");
    }

    #[test]
    fn backoff_until_first_success_with_cap() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let due = s.poll(now, MANY).unwrap();
            assert_eq!(
                due.event,
                Some(Event::Started),
                "the pending event is re-sent"
            );
            s.on_failure(now, &mut rng);
            let next = s.next_wakeup(MANY).unwrap();
            delays.push((next - now).as_secs());
            assert_eq!(s.poll(next - secs(1), MANY), None);
            now = next;
        }
        assert_eq!(delays, [60, 120, 240, 480, 960, 1800, 1800, 1800]);
        let due = s.poll(now, MANY).unwrap();
        assert_eq!(due.reason, Reason::Retry);
        s.on_success(now, Some(300), None, &mut rng);
        // After a success the back-off resets, and a failure never waits longer than the interval.
        now += secs(300);
        for want in [60, 120, 240, 300, 300] {
            s.poll(now, MANY).unwrap();
            s.on_failure(now, &mut rng);
            let next = s.next_wakeup(MANY).unwrap();
            assert_eq!((next - now).as_secs(), want);
            now = next;
        }
    }

    #[test]
    fn retry_jitter_is_bounded_both_ways() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut low, mut high) = (false, false);
        for _ in 0..200 {
            let mut s = AnnounceSchedule::new(t0, ScheduleConfig::default());
            s.poll(t0, MANY).unwrap();
            s.on_failure(t0, &mut rng);
            let d = s.next_wakeup(MANY).unwrap() - t0;
            assert!(d >= secs(54) && d <= secs(66), "{d:?}");
            low |= d < secs(59);
            high |= d > secs(61);
        }
        assert!(low && high);
    }

    #[test]
    fn completed_waits_for_started_then_goes_at_once() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.poll(t0, MANY).unwrap();
        s.completed();
        s.on_success(t0 + secs(1), Some(1800), Some(900), &mut rng);
        // Completed is due now, regardless of min interval.
        assert_eq!(s.next_wakeup(MANY), Some(t0));
        let due = s.poll(t0 + secs(2), MANY).unwrap();
        assert_eq!(
            due,
            Due {
                event: Some(Event::Completed),
                reason: Reason::Event
            }
        );
        // A failed completed is retried as completed.
        s.on_failure(t0 + secs(2), &mut rng);
        let due = s.poll(t0 + secs(62), MANY).unwrap();
        assert_eq!(
            due,
            Due {
                event: Some(Event::Completed),
                reason: Reason::Retry
            }
        );
        s.on_success(t0 + secs(63), None, None, &mut rng);
        assert_eq!(s.poll(t0 + secs(64), MANY), None);
        assert_eq!(s.next_wakeup(MANY), Some(t0 + secs(63 + 1800)));
    }

    /// A download that completes and stops at once (`--exit-on-complete`) still tells the tracker `completed`, then
    /// `stopped`; a failed `completed` while stopping gets no retry.
    #[test]
    fn stop_sends_a_pending_completed_first() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        for completed_succeeds in [true, false] {
            let mut s = AnnounceSchedule::new(t0, no_jitter());
            s.poll(t0, MANY).unwrap();
            s.on_success(t0, Some(1800), None, &mut rng);
            s.completed();
            s.stop();
            let due = s.poll(t0 + secs(5), MANY).unwrap();
            assert_eq!(due.event, Some(Event::Completed));
            if completed_succeeds {
                s.on_success(t0 + secs(6), Some(1800), None, &mut rng);
            } else {
                s.on_failure(t0 + secs(6), &mut rng);
            }
            let due = s.poll(t0 + secs(6), MANY).unwrap();
            assert_eq!(due.event, Some(Event::Stopped));
            s.on_success(t0 + secs(7), None, None, &mut rng);
            assert!(s.is_finished());
        }
        // Never acknowledged: nothing at all, not even `completed`.
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.completed();
        s.stop();
        assert_eq!(s.poll(t0, MANY), None);
        assert!(s.is_finished());
    }

    #[test]
    fn stop_sends_stopped_once_only_if_started_was_acknowledged() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        // Never acknowledged: nothing to send.
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.stop();
        assert_eq!(s.next_wakeup(MANY), None);
        assert_eq!(s.poll(t0, MANY), None);
        assert!(s.is_finished());

        // Acknowledged: stopped goes now, even mid-interval; one attempt.
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.poll(t0, MANY).unwrap();
        s.on_success(t0, Some(1800), None, &mut rng);
        s.stop();
        let due = s.poll(t0 + secs(5), MANY).unwrap();
        assert_eq!(
            due,
            Due {
                event: Some(Event::Stopped),
                reason: Reason::Event
            }
        );
        s.on_failure(t0 + secs(6), &mut rng);
        assert!(s.is_finished());
        assert_eq!(s.poll(t0 + secs(1000), 0), None);

        // Stop while started is in flight: if started then succeeds, stopped follows; if it fails, we are done.
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.poll(t0, MANY).unwrap();
        s.stop();
        assert_eq!(s.poll(t0, MANY), None, "in flight");
        s.on_success(t0 + secs(1), None, None, &mut rng);
        assert_eq!(
            s.poll(t0 + secs(1), MANY).unwrap().event,
            Some(Event::Stopped)
        );
        s.on_success(t0 + secs(2), None, None, &mut rng);
        assert!(s.is_finished());
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.poll(t0, MANY).unwrap();
        s.stop();
        s.on_failure(t0 + secs(1), &mut rng);
        assert!(s.is_finished());
        assert_eq!(s.next_wakeup(MANY), None);
    }

    #[test]
    fn early_reannounce_when_short_of_peers_bounded_by_min_interval() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.poll(t0, 0).unwrap();
        s.on_success(t0, Some(1800), None, &mut rng);
        // Enough peers: regular only.
        assert_eq!(s.next_wakeup(20), Some(t0 + secs(1800)));
        // Too few: rerequest_interval after the last announce.
        assert_eq!(s.next_wakeup(19), Some(t0 + secs(300)));
        assert_eq!(s.poll(t0 + secs(299), 19), None);
        let due = s.poll(t0 + secs(300), 19).unwrap();
        assert_eq!(
            due,
            Due {
                event: None,
                reason: Reason::NeedPeers
            }
        );
        s.on_success(t0 + secs(300), Some(1800), Some(600), &mut rng);
        // min interval (600) now bounds the early announce.
        assert_eq!(s.next_wakeup(0), Some(t0 + secs(900)));
        // Close to the regular time, the regular announce wins.
        s.poll(t0 + secs(900), 0).unwrap();
        s.on_success(t0 + secs(900), Some(600), Some(600), &mut rng);
        assert_eq!(s.next_wakeup(0), Some(t0 + secs(1500)));
        assert_eq!(s.poll(t0 + secs(1500), 0).unwrap().reason, Reason::Regular);
    }

    #[test]
    fn min_peers_and_rerequest_interval_are_configurable() {
        // `--min_peers 5 --rerequest_interval 60`.
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        let config = ScheduleConfig {
            min_peers: 5,
            rerequest_interval: secs(60),
            ..no_jitter()
        };
        let mut s = AnnounceSchedule::new(t0, config);
        s.poll(t0, 0).unwrap();
        s.on_success(t0, Some(1800), None, &mut rng);
        assert_eq!(
            s.next_wakeup(5),
            Some(t0 + secs(1800)),
            "5 peers are enough"
        );
        assert_eq!(s.next_wakeup(4), Some(t0 + secs(60)));
        assert_eq!(s.poll(t0 + secs(59), 4), None);
        assert_eq!(s.poll(t0 + secs(60), 4).unwrap().reason, Reason::NeedPeers);
        // The floor under every interval (`min_announce_interval`, 30 s) still bounds a tiny rerequest_interval.
        let mut s = AnnounceSchedule::new(
            t0,
            ScheduleConfig {
                rerequest_interval: secs(1),
                ..no_jitter()
            },
        );
        s.poll(t0, 0).unwrap();
        s.on_success(t0, Some(1800), None, &mut rng);
        assert_eq!(
            s.next_wakeup(0),
            Some(t0 + no_jitter().min_announce_interval)
        );
    }

    #[test]
    fn outcomes_without_an_announce_in_flight_are_ignored() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = AnnounceSchedule::new(t0, no_jitter());
        s.on_success(t0, Some(5), None, &mut rng);
        s.on_failure(t0, &mut rng);
        assert_eq!(s.poll(t0, MANY).unwrap().event, Some(Event::Started));
    }
}
