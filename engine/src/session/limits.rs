//! Rate limits as a torrent sees them: its own buckets (`TorrentConfig::max_upload_rate` / `max_download_rate`)
//! and its shard's share of the session-wide limits (`SessionConfig::max_upload_rate` / `max_download_rate`, one
//! [`SharedBucket`] each in `Shared`). A block is sent, or requested, only when both allow it.
//!
//! No lock on the hot path: the torrent bucket is plain data of the torrent, the shard's share is a `RefCell` on the
//! shard (one thread), and the share touches the global atomic once per chunk (see `global_rate.rs`).
//!
//! Upload: a block is taken from both before it is read and sent (all or nothing; otherwise the writer sleeps for the
//! longer of the two waits). Download: as BitTornado's `Downloader.queue_limit`/`chunk_requested`, requests are
//! throttled: a peer's pipeline is sized by what both buckets hold, and each request sent is charged to both.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::global_rate::{ShardShare, SharedBucket};
use crate::rate::TokenBucket;

/// One shard's shares of the session-wide upload and download limits, spent by all of its torrents.
#[derive(Debug)]
pub(super) struct ShardLimits {
    up: RefCell<ShardShare>,
    down: RefCell<ShardShare>,
}

impl ShardLimits {
    pub fn new(upload: Arc<SharedBucket>, download: Arc<SharedBucket>) -> Rc<ShardLimits> {
        Rc::new(ShardLimits {
            up: RefCell::new(ShardShare::new(upload)),
            down: RefCell::new(ShardShare::new(download)),
        })
    }
}

/// A torrent's limits: its own buckets and its shard's shares of the global ones.
#[derive(Debug)]
pub(super) struct TorrentLimits {
    up: TokenBucket,
    down: TokenBucket,
    shard: Rc<ShardLimits>,
}

impl TorrentLimits {
    /// `max_upload_rate` / `max_download_rate` in bytes/s, 0 = no per-torrent limit.
    pub fn new(
        now: Instant,
        max_upload_rate: u64,
        max_download_rate: u64,
        shard: Rc<ShardLimits>,
    ) -> Self {
        TorrentLimits {
            up: torrent_bucket(now, max_upload_rate),
            down: torrent_bucket(now, max_download_rate),
            shard,
        }
    }

    /// Takes `len` upload bytes from both the torrent's bucket and the shard's share of the global one, or from
    /// neither; `Err` holds how long to wait before trying again.
    pub fn take_upload(&mut self, now: Instant, len: u64) -> Result<(), Duration> {
        // A request larger than the torrent's burst (up to 128 KiB against a 32 KiB burst) waits for a full bucket
        // and then goes into debt, bounded by one burst, instead of waiting forever.
        if !self.up.is_unlimited() && self.up.available(now) < len.min(self.up.burst_bytes()) {
            return Err(self.up.time_until(now, len));
        }
        let mut share = self.shard.up.borrow_mut();
        if !share.take_exact(now, len) {
            return Err(share.time_until(now, len));
        }
        self.up.charge(now, len);
        Ok(())
    }

    /// Bytes of requests the torrent may have outstanding now (`None`: no limit applies).
    pub fn download_allowance(&mut self, now: Instant) -> Option<u64> {
        let mut share = self.shard.down.borrow_mut();
        if self.down.is_unlimited() && share.is_unlimited() {
            return None;
        }
        Some(self.down.available(now).min(share.available(now)))
    }

    /// Charges `bytes` of requests just sent to both download budgets.
    pub fn charge_download(&mut self, now: Instant, bytes: u64) {
        self.down.charge(now, bytes);
        self.shard.down.borrow_mut().charge(bytes);
    }
}

/// A per-torrent bucket: one second of data as burst, at least two blocks.
fn torrent_bucket(now: Instant, rate: u64) -> TokenBucket {
    TokenBucket::new(now, rate, rate.max(2 * 16384))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(now: Instant, global: u64, torrent: u64) -> (TorrentLimits, Arc<SharedBucket>) {
        let up = Arc::new(SharedBucket::with_one_second_burst(now, global));
        let down = Arc::new(SharedBucket::with_one_second_burst(now, global));
        let shard = ShardLimits::new(up.clone(), down);
        (TorrentLimits::new(now, torrent, torrent, shard), up)
    }

    #[test]
    fn upload_needs_both_buckets() {
        let t0 = Instant::now();
        // Torrent 100 kB/s under a global 50 kB/s: the global one binds.
        let (mut l, global) = limits(t0, 50_000, 100_000);
        let mut sent = 0;
        while l.take_upload(t0, 16_384).is_ok() {
            sent += 16_384;
        }
        assert_eq!(sent, 3 * 16_384); // 50 kB of burst = three whole blocks
                                      // The failed fourth block drew the rest; the shard keeps it for the next attempt.
        assert_eq!(global.available(t0), 0);
        assert_eq!(l.shard.up.borrow().local_tokens(), 50_000 - 3 * 16_384);
        // Torrent 20 kB/s under a global 1 MB/s: the torrent's binds, and refused blocks take nothing globally.
        let (mut l, global) = limits(t0, 1_000_000, 20_000);
        let mut sent = 0;
        while l.take_upload(t0, 16_384).is_ok() {
            sent += 16_384;
        }
        assert_eq!(sent, 2 * 16_384); // burst: two blocks
        let wait = l.take_upload(t0, 16_384).unwrap_err();
        assert!(wait > Duration::ZERO);
        assert!(global.available(t0) >= 1_000_000 - 100_000 - 2 * 16_384);
    }

    #[test]
    fn a_request_larger_than_the_torrent_burst_is_not_stuck() {
        let t0 = Instant::now();
        // 20 kB/s per torrent (burst 32 KiB), a 128 KiB request: sent once the bucket is full, paid afterwards.
        let (mut l, _) = limits(t0, 0, 20_000);
        assert!(l.take_upload(t0, 128 * 1024).is_ok());
        let wait = l.take_upload(t0, 16_384).unwrap_err();
        assert!(wait >= Duration::from_secs(2), "{wait:?}");
        let later = t0 + Duration::from_secs(4);
        assert!(l.take_upload(later, 16_384).is_ok());
    }

    #[test]
    fn download_requests_are_charged_to_both() {
        let t0 = Instant::now();
        let (mut l, _) = limits(t0, 0, 0);
        assert_eq!(l.download_allowance(t0), None);
        let (mut l, _) = limits(t0, 64_000, 0);
        let first = l.download_allowance(t0).unwrap();
        assert!(first > 0 && first <= 64_000, "{first}");
        l.charge_download(t0, 64_000);
        assert_eq!(l.download_allowance(t0), Some(0));
        let (mut l, _) = limits(t0, 0, 40_000);
        assert_eq!(l.download_allowance(t0), Some(40_000));
        l.charge_download(t0, 40_000);
        assert_eq!(l.download_allowance(t0), Some(0));
    }
}
