//! Bans for UDP clients that keep sending connection ids this tracker never issued (torrust's
//! defence against id guessing and broken clients): more than [`BAD_IDS_PER_MINUTE`] bad ids from
//! one IP within a minute and every datagram from it is dropped unanswered for the ban time.
//!
//! Per shard (the kernel sends one source address's datagrams to one shard), pure (the clock is an
//! argument) and bounded: at most [`MAX_TRACKED`] addresses; when full, expired records are
//! purged (at most once a second), and if none are expired a new address is not tracked (fails
//! open: a flood of forged sources can grow neither memory nor work per packet). A forged source address can get a victim banned on one shard for
//! the ban time — the same trade-off torrust makes; `--udp_bad_id_ban 0` turns bans off.

use std::collections::HashMap;
use std::net::IpAddr;

/// Bad connection ids tolerated per IP per minute (a restarted tracker invalidates a client's id
/// once; a guesser sends thousands).
pub const BAD_IDS_PER_MINUTE: u32 = 64;

/// Most addresses tracked per shard.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: u64,
    bad: u32,
    banned_until: u64,
}

/// One shard's bad-id counts and bans.
#[derive(Debug, Default)]
pub struct BadIdBans {
    records: HashMap<IpAddr, Record>,
    /// When the table was last purged: at most one O(n) purge per second, so a flood of new
    /// forged addresses against a full table costs a lookup each, not a scan each.
    last_purge: Option<u64>,
}

impl BadIdBans {
    /// Whether datagrams from `ip` are dropped at `now` (seconds).
    pub fn is_banned(&self, ip: IpAddr, now: u64) -> bool {
        !self.records.is_empty() && self.records.get(&ip).is_some_and(|r| r.banned_until > now)
    }

    /// Counts one bad id from `ip`; returns true if this starts a ban of `ban_secs` (0 = never ban).
    pub fn record_bad(&mut self, ip: IpAddr, now: u64, ban_secs: u64) -> bool {
        if ban_secs == 0 {
            return false;
        }
        if !self.records.contains_key(&ip) && self.records.len() >= MAX_TRACKED {
            if self.last_purge == Some(now) {
                return false;
            }
            self.last_purge = Some(now);
            self.records
                .retain(|_, r| r.banned_until > now || now.saturating_sub(r.window_start) < 60);
            if self.records.len() >= MAX_TRACKED {
                return false;
            }
        }
        let r = self.records.entry(ip).or_insert(Record {
            window_start: now,
            bad: 0,
            banned_until: 0,
        });
        if now.saturating_sub(r.window_start) >= 60 {
            r.window_start = now;
            r.bad = 0;
        }
        r.bad = r.bad.saturating_add(1);
        if r.bad > BAD_IDS_PER_MINUTE && r.banned_until <= now {
            r.banned_until = now + ban_secs;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn ban_after_the_threshold_within_a_minute_then_expiry() {
        let mut b = BadIdBans::default();
        let a = ip(1);
        for _ in 0..BAD_IDS_PER_MINUTE {
            assert!(!b.record_bad(a, 100, 3600));
        }
        assert!(!b.is_banned(a, 100));
        assert!(b.record_bad(a, 130, 3600));
        assert!(b.is_banned(a, 130));
        assert!(!b.is_banned(ip(2), 130));
        assert!(b.is_banned(a, 130 + 3599));
        assert!(!b.is_banned(a, 130 + 3600));
    }

    #[test]
    fn slow_bad_ids_never_ban_and_zero_disables() {
        let mut b = BadIdBans::default();
        for minute in 0..100 {
            for _ in 0..BAD_IDS_PER_MINUTE {
                assert!(!b.record_bad(ip(1), minute * 60, 3600));
            }
        }
        assert!(!b.is_banned(ip(1), 6000));
        for _ in 0..1000 {
            assert!(!b.record_bad(ip(3), 5, 0));
        }
        assert!(!b.is_banned(ip(3), 5));
    }

    #[test]
    fn bounded_and_fails_open_when_full() {
        let mut b = BadIdBans::default();
        for n in 0..MAX_TRACKED as u32 {
            b.record_bad(ip(n), 10, 3600);
        }
        assert_eq!(b.records.len(), MAX_TRACKED);
        // Full of fresh records: a new address is not tracked.
        let new = ip(u32::MAX);
        for _ in 0..=BAD_IDS_PER_MINUTE {
            assert!(!b.record_bad(new, 20, 3600));
        }
        assert!(!b.is_banned(new, 20));
        assert_eq!(b.records.len(), MAX_TRACKED);
        assert_eq!(b.last_purge, Some(20));
        // A minute later the stale records are purged and the new address is tracked.
        for _ in 0..=BAD_IDS_PER_MINUTE {
            b.record_bad(new, 100, 3600);
        }
        assert!(b.is_banned(new, 100));
        assert_eq!(b.records.len(), 1);
    }
}
