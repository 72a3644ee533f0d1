//! BitTornado's choker: which interested peers we upload to.
//!
//! The choker owns one thing, the *connection order* of a torrent's peers, and decides from a snapshot
//! of their state. It reads no clock and sends nothing: [`Choker::tick`] and [`Choker::rechoke`] take
//! the time and a per-peer [`PeerSnapshot`] and return the choke/unchoke messages to send (only the
//! changes). The shard calls `tick` every [`ChokerConfig::rechoke_interval`] (5 s) and `rechoke` on
//! connect, disconnect and interest changes, as BitTornado did.
//!
//! Rules (BitTornado 0.3.18 `Choker._rechoke`, `_round_robin`, `connection_made`):
//! 1. *Preferred*: up to `max_uploads - 1` interested peers with the best rate. Leeching: our download
//!    rate from them, skipping peers under 1000 B/s and snubbed peers. Seeding: our upload rate to them.
//! 2. Walking the connection order, preferred peers are unchoked; others are unchoked until
//!    `max_uploads` interested peers are unchoked *and* at least one non-preferred interested peer
//!    (the optimistic unchoke) has been; everyone after is choked. Uninterested peers before that point
//!    stay unchoked so they can become interested.
//! 3. Every `round_robin_period` (30 s) the order rotates so the first choked, interested peer (after
//!    the head) becomes the head: the optimistic unchoke moves on.
//! 4. A new connection goes to a random position `max(randrange(-2, len + 1), 0)`, about three times
//!    likelier to land first.
//!
//! Deliberate differences: `max_uploads == 0` chokes everyone (BitTornado would still unchoke one
//! optimistic peer); rate ties keep connection order instead of Python's object comparison.

use std::time::{Duration, Instant};

/// BitTornado's `max_uploads` default.
pub const DEFAULT_MAX_UPLOADS: usize = 7;
/// Rechoke period (BitTornado schedules `_round_robin` every 5 s).
pub const RECHOKE_INTERVAL: Duration = Duration::from_secs(5);
/// BitTornado's `round_robin_period` default.
pub const DEFAULT_ROUND_ROBIN_PERIOD: Duration = Duration::from_secs(30);
/// BitTornado's `snub_time` default.
pub const DEFAULT_SNUB_TIME: Duration = Duration::from_secs(30);
/// While leeching, peers sending us less than this are never preferred.
pub const MIN_PREFERRED_DOWNLOAD_RATE: f64 = 1000.0;
/// Upper bound on peers one choker orders (the engine's per-torrent connection cap is lower).
pub const MAX_CHOKER_PEERS: usize = 1 << 16;

/// Choker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChokerConfig {
    pub max_uploads: usize,
    pub rechoke_interval: Duration,
    pub round_robin_period: Duration,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            max_uploads: DEFAULT_MAX_UPLOADS,
            rechoke_interval: RECHOKE_INTERVAL,
            round_robin_period: DEFAULT_ROUND_ROBIN_PERIOD,
        }
    }
}

/// What BitTornado does to the optimistic rotation once a download completes:
/// `max(p, p * piece_length / 200000)` for `p` = `--round_robin_period` (30 s), so big pieces get time to be
/// uploaded.
pub fn seeding_round_robin_period(piece_length: u64, round_robin_period: Duration) -> Duration {
    let p = round_robin_period.as_secs_f64();
    Duration::from_secs_f64((p * piece_length as f64 / 200_000.0).max(p))
}

/// BitTornado's snub rule: a peer that unchoked us but has sent no block for `snub_time` is snubbed.
/// `last_activity` is the later of its last unchoke and its last block.
pub fn is_snubbed(
    now: Instant,
    peer_choking_us: bool,
    last_activity: Instant,
    snub_time: Duration,
) -> bool {
    !peer_choking_us && now.saturating_duration_since(last_activity) > snub_time
}

/// A peer's state as the choker needs it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PeerSnapshot {
    /// The peer is interested in our pieces.
    pub interested: bool,
    /// We currently unchoke the peer.
    pub unchoked: bool,
    /// The peer snubs us (see [`is_snubbed`]).
    pub snubbed: bool,
    /// Bytes/s we download from the peer.
    pub download_rate: f64,
    /// Bytes/s we upload to the peer.
    pub upload_rate: f64,
}

/// A message the choker wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChokeAction {
    Choke,
    Unchoke,
}

/// The choker of one torrent, generic over the engine's peer key.
#[derive(Debug, Clone)]
pub struct Choker<K> {
    config: ChokerConfig,
    order: Vec<K>,
    last_round_robin: Instant,
    last_tick: Instant,
    paused: bool,
}

impl<K: Copy + Eq + std::fmt::Debug> Choker<K> {
    pub fn new(config: ChokerConfig, now: Instant) -> Self {
        Choker {
            config,
            order: Vec::new(),
            last_round_robin: now,
            last_tick: now,
            paused: false,
        }
    }

    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// Changes `max_uploads` (the automatic upload rate does this).
    pub fn set_max_uploads(&mut self, max_uploads: usize) {
        self.config.max_uploads = max_uploads;
    }

    /// Changes the optimistic rotation period (see [`seeding_round_robin_period`]).
    pub fn set_round_robin_period(&mut self, period: Duration) {
        self.config.round_robin_period = period;
    }

    /// Paused torrents choke everyone.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The connection order (head = current optimistic candidate).
    pub fn order(&self) -> &[K] {
        &self.order
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds a peer at BitTornado's random position. Callers rechoke afterwards. Returns false (and
    /// changes nothing) if the peer is already known or the choker is full.
    pub fn peer_connected(&mut self, key: K, rng: &mut fastrand::Rng) -> bool {
        if self.order.len() >= MAX_CHOKER_PEERS || self.order.contains(&key) {
            return false;
        }
        let p = rng.i64(-2..=self.order.len() as i64).max(0) as usize;
        self.order.insert(p, key);
        true
    }

    /// Removes a peer. Returns whether it was known.
    pub fn peer_disconnected(&mut self, key: K) -> bool {
        match self.order.iter().position(|k| *k == key) {
            Some(i) => {
                self.order.remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether the periodic tick is due.
    pub fn tick_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_tick) >= self.config.rechoke_interval
    }

    /// The periodic step: rotate the order if the round-robin period passed, then rechoke.
    pub fn tick(
        &mut self,
        now: Instant,
        seeding: bool,
        snapshot: impl Fn(K) -> PeerSnapshot,
    ) -> Vec<(K, ChokeAction)> {
        self.last_tick = now;
        if now.saturating_duration_since(self.last_round_robin) > self.config.round_robin_period {
            self.last_round_robin = now;
            if let Some(i) = (1..self.order.len()).find(|&i| {
                let s = snapshot(self.order[i]);
                !s.unchoked && s.interested
            }) {
                self.order.rotate_left(i);
            }
        }
        self.rechoke(seeding, snapshot)
    }

    /// Decides who is unchoked; returns only the peers whose state must change.
    pub fn rechoke(
        &self,
        seeding: bool,
        snapshot: impl Fn(K) -> PeerSnapshot,
    ) -> Vec<(K, ChokeAction)> {
        let snaps: Vec<(K, PeerSnapshot)> = self.order.iter().map(|&k| (k, snapshot(k))).collect();
        let max_uploads = self.config.max_uploads;
        let unchoke: Vec<bool> = if self.paused || max_uploads == 0 {
            vec![false; snaps.len()]
        } else {
            let mut candidates: Vec<(usize, f64)> = snaps
                .iter()
                .enumerate()
                .filter(|(_, (_, s))| s.interested)
                .filter_map(|(i, (_, s))| {
                    if seeding {
                        Some((i, s.upload_rate))
                    } else if s.download_rate < MIN_PREFERRED_DOWNLOAD_RATE || s.snubbed {
                        None
                    } else {
                        Some((i, s.download_rate))
                    }
                })
                .collect();
            // Stable: equal rates keep connection order.
            candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
            candidates.truncate(max_uploads - 1);
            let mut preferred = vec![false; snaps.len()];
            for &(i, _) in &candidates {
                preferred[i] = true;
            }
            let mut count = candidates.len();
            let mut hit = false;
            snaps
                .iter()
                .enumerate()
                .map(|(i, (_, s))| {
                    if preferred[i] {
                        true
                    } else if count < max_uploads || !hit {
                        if s.interested {
                            count += 1;
                            hit = true;
                        }
                        true
                    } else {
                        false
                    }
                })
                .collect()
        };
        snaps
            .iter()
            .zip(unchoke)
            .filter(|((_, s), u)| s.unchoked != *u)
            .map(|((k, _), u)| {
                (
                    *k,
                    if u {
                        ChokeAction::Unchoke
                    } else {
                        ChokeAction::Choke
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A small simulated torrent: peer key -> snapshot, applying the choker's actions.
    struct Swarm {
        peers: HashMap<u32, PeerSnapshot>,
    }

    impl Swarm {
        fn snap(&self) -> impl Fn(u32) -> PeerSnapshot + '_ {
            |k| self.peers[&k]
        }
        fn apply(&mut self, actions: &[(u32, ChokeAction)]) {
            for (k, a) in actions {
                let p = self.peers.get_mut(k).unwrap();
                assert_ne!(p.unchoked, *a == ChokeAction::Unchoke, "redundant action");
                p.unchoked = *a == ChokeAction::Unchoke;
            }
        }
        fn unchoked(&self, order: &[u32]) -> Vec<u32> {
            order
                .iter()
                .copied()
                .filter(|k| self.peers[k].unchoked)
                .collect()
        }
    }

    fn choker_with(n: u32, max_uploads: usize, now: Instant) -> Choker<u32> {
        let mut c = Choker::new(
            ChokerConfig {
                max_uploads,
                ..ChokerConfig::default()
            },
            now,
        );
        // Deterministic order 0..n: append at the end by clearing with direct pushes.
        for k in 0..n {
            c.order.push(k);
        }
        c
    }

    fn leecher(rate: f64) -> PeerSnapshot {
        PeerSnapshot {
            interested: true,
            download_rate: rate,
            ..Default::default()
        }
    }

    #[test]
    fn best_downloaders_plus_one_optimistic() {
        let now = Instant::now();
        let c = choker_with(10, 4, now);
        let mut s = Swarm {
            peers: (0..10).map(|k| (k, leecher(0.0))).collect(),
        };
        // Fast peers 7, 8, 9; 5 is fast but snubbed; 6 is below 1000 B/s.
        for (k, r) in [(7, 50_000.0), (8, 40_000.0), (9, 30_000.0), (5, 90_000.0)] {
            s.peers.get_mut(&k).unwrap().download_rate = r;
        }
        s.peers.get_mut(&5).unwrap().snubbed = true;
        s.peers.get_mut(&6).unwrap().download_rate = 999.0;
        let actions = c.rechoke(false, s.snap());
        s.apply(&actions);
        // 3 preferred (max_uploads - 1) + the first interested peer in order as optimistic.
        assert_eq!(s.unchoked(c.order()), vec![0, 7, 8, 9]);
        // A second rechoke with the same state changes nothing.
        assert!(c.rechoke(false, s.snap()).is_empty());
    }

    #[test]
    fn uninterested_peers_before_the_cut_stay_unchoked() {
        let now = Instant::now();
        let c = choker_with(6, 2, now);
        let mut s = Swarm {
            peers: (0..6).map(|k| (k, leecher(0.0))).collect(),
        };
        s.peers.get_mut(&0).unwrap().interested = false;
        s.peers.get_mut(&1).unwrap().interested = false;
        s.peers.get_mut(&5).unwrap().download_rate = 10_000.0;
        s.apply(&c.rechoke(false, s.snap()));
        // 5 preferred; 0 and 1 (uninterested) unchoked; 2 is the optimistic; 3, 4 choked.
        assert_eq!(s.unchoked(c.order()), vec![0, 1, 2, 5]);
    }

    #[test]
    fn seeding_prefers_upload_rate() {
        let now = Instant::now();
        let c = choker_with(5, 3, now);
        let mut s = Swarm {
            peers: (0..5)
                .map(|k| {
                    (
                        k,
                        PeerSnapshot {
                            interested: true,
                            upload_rate: k as f64 * 100.0,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        };
        s.apply(&c.rechoke(true, s.snap()));
        // Preferred by upload rate: 4, 3; optimistic: first in order, 0.
        assert_eq!(s.unchoked(c.order()), vec![0, 3, 4]);
    }

    #[test]
    fn optimistic_rotates_every_round_robin_period() {
        let t0 = Instant::now();
        let mut c = choker_with(5, 1, t0);
        let mut s = Swarm {
            peers: (0..5).map(|k| (k, leecher(0.0))).collect(),
        };
        s.apply(&c.tick(t0, false, s.snap()));
        assert_eq!(s.unchoked(c.order()), vec![0]);
        let mut seen = vec![0];
        let mut t = t0;
        for _ in 0..4 {
            // Rechokes inside the period keep the same optimistic peer.
            t += Duration::from_secs(5);
            s.apply(&c.tick(t, false, s.snap()));
            assert_eq!(s.unchoked(c.order()).len(), 1);
            assert_eq!(s.unchoked(c.order())[0], *seen.last().unwrap());
            t += Duration::from_secs(26);
            assert!(c.tick_due(t));
            s.apply(&c.tick(t, false, s.snap()));
            let now_unchoked = s.unchoked(c.order());
            assert_eq!(now_unchoked.len(), 1);
            assert_eq!(c.order()[0], now_unchoked[0]);
            seen.push(now_unchoked[0]);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen,
            vec![0, 1, 2, 3, 4],
            "every peer had its optimistic turn"
        );
    }

    #[test]
    fn pause_and_zero_uploads_choke_everyone() {
        let now = Instant::now();
        let mut c = choker_with(3, 4, now);
        let mut s = Swarm {
            peers: (0..3).map(|k| (k, leecher(5000.0))).collect(),
        };
        s.apply(&c.rechoke(false, s.snap()));
        assert_eq!(s.unchoked(c.order()).len(), 3);
        c.set_paused(true);
        s.apply(&c.rechoke(false, s.snap()));
        assert!(s.unchoked(c.order()).is_empty());
        c.set_paused(false);
        c.set_max_uploads(0);
        assert!(c.rechoke(false, s.snap()).is_empty());
    }

    #[test]
    fn unchoked_count_never_exceeds_max_uploads_plus_uninterested() {
        let mut rng = fastrand::Rng::with_seed(11);
        let now = Instant::now();
        for _ in 0..200 {
            let max_uploads = rng.usize(1..8);
            let mut c: Choker<u32> = Choker::new(
                ChokerConfig {
                    max_uploads,
                    ..ChokerConfig::default()
                },
                now,
            );
            let n = rng.u32(0..30);
            let mut s = Swarm {
                peers: HashMap::new(),
            };
            for k in 0..n {
                assert!(c.peer_connected(k, &mut rng));
                s.peers.insert(
                    k,
                    PeerSnapshot {
                        interested: rng.bool(),
                        unchoked: rng.bool(),
                        snubbed: rng.u8(..) < 30,
                        download_rate: rng.f64() * 5000.0,
                        upload_rate: rng.f64() * 5000.0,
                    },
                );
            }
            let seeding = rng.bool();
            s.apply(&c.rechoke(seeding, s.snap()));
            let interested_unchoked = c
                .order()
                .iter()
                .filter(|k| s.peers[k].unchoked && s.peers[k].interested)
                .count();
            let interested = c.order().iter().filter(|k| s.peers[k].interested).count();
            assert!(interested_unchoked <= max_uploads);
            assert_eq!(interested_unchoked, interested.min(max_uploads));
        }
    }

    #[test]
    fn connect_position_and_disconnect() {
        let mut rng = fastrand::Rng::with_seed(3);
        let now = Instant::now();
        let mut c: Choker<u32> = Choker::new(ChokerConfig::default(), now);
        let mut heads = 0;
        for round in 0..1000u32 {
            let mut cc = c.clone();
            for k in 0..4 {
                cc.peer_connected(k, &mut rng);
            }
            cc.peer_connected(99, &mut rng);
            if cc.order()[0] == 99 {
                heads += 1;
            }
            if round == 0 {
                assert!(!cc.peer_connected(99, &mut rng), "duplicates refused");
                assert!(cc.peer_disconnected(99));
                assert!(!cc.peer_disconnected(99));
                assert_eq!(cc.len(), 4);
            }
        }
        // randrange(-2, 5) clamped: P(head) = 3/7.
        assert!((300..560).contains(&heads), "{heads}");
        c.peer_connected(1, &mut rng);
        assert_eq!(c.order(), &[1]);
    }

    #[test]
    fn seeding_round_robin_and_snub() {
        let p = DEFAULT_ROUND_ROBIN_PERIOD;
        assert_eq!(
            seeding_round_robin_period(262_144, p),
            Duration::from_secs_f64(39.3216)
        );
        assert_eq!(
            seeding_round_robin_period(16_384, p),
            Duration::from_secs(30)
        );
        // `--round_robin_period 10`: the seeding period scales from it.
        let ten = Duration::from_secs(10);
        assert_eq!(seeding_round_robin_period(16_384, ten), ten);
        assert_eq!(
            seeding_round_robin_period(400_000, ten),
            Duration::from_secs(20)
        );
        let t0 = Instant::now();
        let t = t0 + Duration::from_secs(31);
        assert!(is_snubbed(t, false, t0, DEFAULT_SNUB_TIME));
        assert!(!is_snubbed(t, true, t0, DEFAULT_SNUB_TIME));
        assert!(!is_snubbed(
            t0 + Duration::from_secs(30),
            false,
            t0,
            DEFAULT_SNUB_TIME
        ));
    }
}
