//! Stateless BEP 15 connection ids: a keyed hash of (client address, time window), so the tracker
//! keeps no per-client table (nothing for a flood of connects to fill) and any shard can check an
//! id another shard issued.
//!
//! The key is SipHash-1-3 with a 128-bit key drawn from the OS at start (std's `RandomState`), a
//! keyed PRF: without the key an id cannot be predicted for another address or window. Windows
//! are [`WINDOW_SECS`] long and an id is accepted in its own window and the next one, so it lives
//! between one and two minutes: BEP 15 lets a client use an id for one minute and a tracker accept
//! it for two.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;

/// Length of one time window.
pub const WINDOW_SECS: u64 = 60;

/// Issues and checks connection ids. Cloned into every shard (it is only a key).
#[derive(Clone, Debug)]
pub struct ConnectionIds {
    key: RandomState,
}

impl Default for ConnectionIds {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionIds {
    /// A fresh random key (ids of another instance are never accepted).
    pub fn new() -> Self {
        ConnectionIds {
            key: RandomState::new(),
        }
    }

    fn tag(&self, addr: &SocketAddr, window: u64) -> u64 {
        let mut h = self.key.build_hasher();
        addr.ip().hash(&mut h);
        addr.port().hash(&mut h);
        window.hash(&mut h);
        h.finish()
    }

    /// The id for `addr` at `now_secs` (any monotonic seconds clock shared by all shards).
    pub fn issue(&self, addr: &SocketAddr, now_secs: u64) -> u64 {
        self.tag(addr, now_secs / WINDOW_SECS)
    }

    /// Whether `id` was issued to `addr` in this window or the previous one.
    pub fn check(&self, id: u64, addr: &SocketAddr, now_secs: u64) -> bool {
        let w = now_secs / WINDOW_SECS;
        id == self.tag(addr, w) || (w > 0 && id == self.tag(addr, w - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn valid_for_at_least_one_and_at_most_two_minutes() {
        let ids = ConnectionIds::new();
        let addr = a("127.0.0.1:6881");
        for issued_at in [0, 1, 59, 60, 119, 1000, 123_456] {
            let id = ids.issue(&addr, issued_at);
            // Accepted for the next 60 s whatever the position in the window...
            for dt in 0..60 {
                assert!(ids.check(id, &addr, issued_at + dt), "{issued_at}+{dt}");
            }
            // ...and never 120 s or more after it was issued.
            for dt in 120..400 {
                assert!(!ids.check(id, &addr, issued_at + dt), "{issued_at}+{dt}");
            }
        }
    }

    #[test]
    fn bound_to_the_address_and_the_key() {
        let ids = ConnectionIds::new();
        let other_key = ConnectionIds::new();
        let addr = a("127.0.0.1:6881");
        let id = ids.issue(&addr, 500);
        assert!(ids.check(id, &addr, 500));
        assert!(!ids.check(id, &a("127.0.0.1:6882"), 500));
        assert!(!ids.check(id, &a("127.0.0.2:6881"), 500));
        assert!(!ids.check(id, &a("[::1]:6881"), 500));
        assert!(!other_key.check(id, &addr, 500));
        // Guessing: forged ids (simple patterns, neighbours of a valid id) are refused.
        for forged in [0, 1, u64::MAX, id ^ 1, id.wrapping_add(1), id >> 1] {
            assert!(!ids.check(forged, &addr, 500), "{forged:#x}");
        }
        let mut rng = fastrand::Rng::with_seed(1);
        let accepted = (0..100_000)
            .filter(|_| ids.check(rng.u64(..), &addr, 500))
            .count();
        assert_eq!(accepted, 0);
    }

    #[test]
    fn ids_differ_between_windows_and_addresses() {
        let ids = ConnectionIds::new();
        let addr = a("127.0.0.1:1");
        assert_ne!(ids.issue(&addr, 0), ids.issue(&addr, 60));
        assert_ne!(ids.issue(&addr, 0), ids.issue(&a("127.0.0.1:2"), 0));
        assert_eq!(ids.issue(&addr, 0), ids.issue(&addr, 59));
    }
}
