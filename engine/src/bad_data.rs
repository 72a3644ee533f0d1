//! Who sent bad data, and when to kick or ban them (BitTornado's `BadDataGuard`, `try_kick`,
//! `try_ban`, and `StorageWrapper`'s culprit search).
//!
//! Rules (seeds-behaviour §4.7):
//! - A piece that fails its hash check and came entirely from one IP is blamed on that IP.
//! - A piece with several senders is remembered with a fingerprint of each block; when the piece is
//!   later downloaded again and passes, every IP whose earlier block differs from the good one is
//!   blamed (BitTornado compares the bytes; a fingerprint is the same test without keeping the data).
//! - An IP is *kicked* (its connection closed) once it has sent bad data for more than one distinct
//!   piece, and *banned* once it has ≥ 3 bad pieces and bad > good / 30.
//! - Kicks and bans stop for good once more than 10 distinct IPs have sent bad data (the torrent or
//!   our storage is more likely broken than the peers), and are skipped while 2 or fewer peers are
//!   connected.
//!
//! Generic over the address type so the engine can key by `IpAddr` and tests by small integers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// More IPs than this with bad data halts kicking and banning (BitTornado: 10).
pub const MAX_BAD_IPS_BEFORE_HALT: usize = 10;
/// Kicks and bans need more than this many connected peers (BitTornado: 2).
pub const MIN_PEERS_FOR_KICKS: usize = 2;
/// Most IPs whose good/bad record is kept; new IPs beyond it are not tracked.
pub const MAX_TRACKED_IPS: usize = 1 << 16;
/// Most multi-sender failed pieces remembered for the culprit search (oldest forgotten first).
pub const MAX_SUSPECT_PIECES: usize = 64;
/// Bad pieces remembered per IP (only the count up to here matters for the rules).
const MAX_BAD_PIECES_PER_IP: usize = 64;

/// What to do with an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Close its connections.
    Kick,
    /// Close its connections and refuse it from now on (`--security`).
    Ban,
}

#[derive(Debug, Clone, Default)]
struct IpRecord {
    bad_pieces: HashSet<u32>,
    good_pieces: u64,
    last_good_piece: Option<u32>,
}

/// Bad-data bookkeeping for one torrent.
#[derive(Debug, Clone)]
pub struct BadDataGuard<A> {
    per_ip: HashMap<A, IpRecord>,
    ips_with_bad_data: HashSet<A>,
    halted: bool,
    /// piece -> per block (sender, fingerprint) of a failed multi-sender download.
    suspects: HashMap<u32, Vec<(A, u64)>>,
    suspect_order: VecDeque<u32>,
}

impl<A: Copy + Eq + Hash> Default for BadDataGuard<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Copy + Eq + Hash> BadDataGuard<A> {
    pub fn new() -> Self {
        BadDataGuard {
            per_ip: HashMap::new(),
            ips_with_bad_data: HashSet::new(),
            halted: false,
            suspects: HashMap::new(),
            suspect_order: VecDeque::new(),
        }
    }

    /// Whether kicking and banning stopped because too many IPs sent bad data.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// Whether an earlier, failed download of `piece` with several senders waits for the good one (the caller then
    /// fingerprints the good blocks for [`piece_passed`](Self::piece_passed)).
    pub fn is_suspect(&self, piece: u32) -> bool {
        self.suspects.contains_key(&piece)
    }

    /// The engine's entry point for a verified piece. `blocks`: each block's sender and fingerprint (fingerprints
    /// are 0 when `have_fingerprints` is false: the piece was checked from disk). A good piece credits its senders
    /// and settles an earlier multi-sender failure by comparing fingerprints (or forgets it when it cannot); a bad
    /// piece with several senders is remembered. A bad piece from a single sender is left to the caller's own rule
    /// (the engine closes such a sender at its second bad piece, whatever the number of peers).
    pub fn judge_piece(
        &mut self,
        piece: u32,
        passed: bool,
        blocks: &[(A, u64)],
        have_fingerprints: bool,
        connected_peers: usize,
    ) -> Vec<(A, Verdict)> {
        if passed {
            if !have_fingerprints {
                self.forget_suspect(piece);
            }
            return self.piece_passed(piece, blocks, connected_peers);
        }
        let several = blocks.iter().any(|(who, _)| *who != blocks[0].0);
        if have_fingerprints && several {
            return self.piece_failed(piece, blocks, connected_peers);
        }
        Vec::new()
    }

    /// Drops the remembered failed download of `piece` (its good version cannot be compared).
    pub fn forget_suspect(&mut self, piece: u32) {
        if self.suspects.remove(&piece).is_some() {
            self.suspect_order.retain(|&p| p != piece);
        }
    }

    /// Bad pieces counted against `ip`.
    pub fn bad_pieces(&self, ip: A) -> usize {
        self.per_ip.get(&ip).map_or(0, |r| r.bad_pieces.len())
    }

    fn record(&mut self, ip: A) -> Option<&mut IpRecord> {
        if !self.per_ip.contains_key(&ip) && self.per_ip.len() >= MAX_TRACKED_IPS {
            return None;
        }
        Some(self.per_ip.entry(ip).or_default())
    }

    /// A piece failed its hash check. `blocks` lists, per block in order, the sender IP and a
    /// fingerprint of the bytes it sent. Returns the verdicts to carry out now.
    pub fn piece_failed(
        &mut self,
        piece: u32,
        blocks: &[(A, u64)],
        connected_peers: usize,
    ) -> Vec<(A, Verdict)> {
        let Some(&(first, _)) = blocks.first() else {
            return Vec::new();
        };
        if blocks.iter().all(|(ip, _)| *ip == first) {
            return self
                .blame(first, piece, connected_peers)
                .into_iter()
                .collect();
        }
        if self.suspects.insert(piece, blocks.to_vec()).is_none() {
            self.suspect_order.push_back(piece);
            if self.suspect_order.len() > MAX_SUSPECT_PIECES {
                if let Some(old) = self.suspect_order.pop_front() {
                    self.suspects.remove(&old);
                }
            }
        }
        Vec::new()
    }

    /// A piece passed its hash check. `blocks` as in [`piece_failed`](Self::piece_failed), for the
    /// good download. Credits the senders and, if an earlier download of the piece failed with several
    /// senders, blames those whose blocks differ from the good ones.
    pub fn piece_passed(
        &mut self,
        piece: u32,
        blocks: &[(A, u64)],
        connected_peers: usize,
    ) -> Vec<(A, Verdict)> {
        for &(ip, _) in blocks {
            if let Some(r) = self.record(ip) {
                // Count each good piece once per IP however many blocks it sent.
                if r.last_good_piece != Some(piece) {
                    r.good_pieces += 1;
                    r.last_good_piece = Some(piece);
                }
            }
        }
        let mut verdicts = Vec::new();
        if let Some(old) = self.suspects.remove(&piece) {
            self.suspect_order.retain(|&p| p != piece);
            let mut culprits: Vec<A> = Vec::new();
            for ((ip, old_fp), (_, good_fp)) in old.iter().zip(blocks) {
                if old_fp != good_fp && !culprits.contains(ip) {
                    culprits.push(*ip);
                }
            }
            for ip in culprits {
                verdicts.extend(self.blame(ip, piece, connected_peers));
            }
        }
        verdicts
    }

    fn blame(&mut self, ip: A, piece: u32, connected_peers: usize) -> Option<(A, Verdict)> {
        if !self.ips_with_bad_data.contains(&ip)
            && self.ips_with_bad_data.len() <= MAX_BAD_IPS_BEFORE_HALT
        {
            self.ips_with_bad_data.insert(ip);
        }
        if self.ips_with_bad_data.len() > MAX_BAD_IPS_BEFORE_HALT {
            self.halted = true;
        }
        let record = self.record(ip)?;
        if record.bad_pieces.len() < MAX_BAD_PIECES_PER_IP {
            record.bad_pieces.insert(piece);
        }
        let bad = record.bad_pieces.len() as u64;
        let good = record.good_pieces;
        if self.halted || connected_peers <= MIN_PEERS_FOR_KICKS {
            return None;
        }
        if bad >= 3 && bad as f64 > good as f64 / 30.0 {
            Some((ip, Verdict::Ban))
        } else if bad > 1 {
            Some((ip, Verdict::Kick))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: u8, n: usize) -> Vec<(u8, u64)> {
        vec![(ip, 1); n]
    }

    #[test]
    fn judge_piece_finds_the_sender_whose_blocks_differed() {
        let mut g = BadDataGuard::new();
        // Piece 5 from peers 1 (blocks 0-1) and 2 (blocks 2-3) fails; the good copy from peer 3 shows that only
        // peer 2's blocks were wrong.
        let bad = [(1u8, 11), (1, 12), (2, 99), (2, 98)];
        let good = [(3u8, 11), (3, 12), (3, 13), (3, 14)];
        assert_eq!(g.judge_piece(5, false, &bad, true, 5), vec![]);
        assert!(g.is_suspect(5));
        assert_eq!(g.judge_piece(5, true, &good, true, 5), vec![]);
        assert_eq!((g.bad_pieces(1), g.bad_pieces(2)), (0, 1));
        // The same on another piece: peer 2 is kicked (more than one bad piece).
        assert_eq!(g.judge_piece(6, false, &bad, true, 5), vec![]);
        assert_eq!(
            g.judge_piece(6, true, &good, true, 5),
            vec![(2, Verdict::Kick)]
        );
        assert_eq!(g.bad_pieces(1), 0);
    }

    #[test]
    fn judge_piece_without_fingerprints_never_blames_the_good_copy() {
        let mut g = BadDataGuard::new();
        let bad = [(1u8, 11), (2, 99)];
        assert_eq!(g.judge_piece(5, false, &bad, true, 5), vec![]);
        // Verified from disk (no fingerprints): the suspect is dropped, nobody blamed.
        assert_eq!(g.judge_piece(5, true, &[(3, 0), (3, 0)], false, 5), vec![]);
        assert!(!g.is_suspect(5));
        assert_eq!((g.bad_pieces(1), g.bad_pieces(2)), (0, 0));
        // A failure without fingerprints, or from one sender, is not remembered here.
        assert_eq!(g.judge_piece(7, false, &[(1, 0), (2, 0)], false, 5), vec![]);
        assert_eq!(g.judge_piece(8, false, &[(1, 5), (1, 6)], true, 5), vec![]);
        assert!(!g.is_suspect(7) && !g.is_suspect(8));
        assert_eq!(g.bad_pieces(1), 0);
    }

    #[test]
    fn single_sender_kick_then_ban() {
        let mut g = BadDataGuard::new();
        assert_eq!(g.piece_failed(0, &from(1, 4), 5), vec![]);
        // The same piece again is still one distinct bad piece.
        assert_eq!(g.piece_failed(0, &from(1, 4), 5), vec![]);
        assert_eq!(g.piece_failed(1, &from(1, 4), 5), vec![(1, Verdict::Kick)]);
        assert_eq!(g.piece_failed(2, &from(1, 4), 5), vec![(1, Verdict::Ban)]);
        assert_eq!(g.bad_pieces(1), 3);
    }

    #[test]
    fn good_history_delays_the_ban() {
        let mut g = BadDataGuard::new();
        for p in 0..120 {
            g.piece_passed(p, &from(1, 2), 5);
        }
        // 120 good pieces: ban needs bad > 4.
        assert_eq!(g.piece_failed(200, &from(1, 1), 5), vec![]);
        assert_eq!(
            g.piece_failed(201, &from(1, 1), 5),
            vec![(1, Verdict::Kick)]
        );
        assert_eq!(
            g.piece_failed(202, &from(1, 1), 5),
            vec![(1, Verdict::Kick)]
        );
        assert_eq!(
            g.piece_failed(203, &from(1, 1), 5),
            vec![(1, Verdict::Kick)]
        );
        assert_eq!(g.piece_failed(204, &from(1, 1), 5), vec![(1, Verdict::Ban)]);
    }

    #[test]
    fn few_peers_means_no_kicks() {
        let mut g = BadDataGuard::new();
        for p in 0..5 {
            assert_eq!(g.piece_failed(p, &from(1, 1), 2), vec![]);
        }
        assert_eq!(g.bad_pieces(1), 5, "still counted");
        assert_eq!(g.piece_failed(9, &from(1, 1), 3), vec![(1, Verdict::Ban)]);
    }

    #[test]
    fn many_bad_ips_halt_kicks() {
        let mut g = BadDataGuard::new();
        for ip in 0..11u8 {
            g.piece_failed(ip as u32, &from(ip, 1), 20);
        }
        assert!(g.is_halted());
        assert_eq!(g.piece_failed(100, &from(0, 1), 20), vec![]);
        assert_eq!(g.piece_failed(101, &from(0, 1), 20), vec![]);
    }

    #[test]
    fn multi_sender_culprit_found_on_good_redownload() {
        let mut g = BadDataGuard::new();
        // Block 1 from ip 2 was corrupt.
        let bad = vec![(1u8, 10u64), (2, 99), (3, 30)];
        assert_eq!(g.piece_failed(5, &bad, 10), vec![]);
        assert_eq!(g.piece_failed(6, &[(1, 1), (2, 98)], 10), vec![]);
        let good = vec![(4u8, 10u64), (4, 20), (4, 30)];
        assert_eq!(g.piece_passed(5, &good, 10), vec![]);
        assert_eq!(g.bad_pieces(2), 1);
        assert_eq!(g.bad_pieces(1), 0);
        assert_eq!(g.bad_pieces(3), 0);
        let good6 = vec![(4u8, 1u64), (4, 2)];
        assert_eq!(g.piece_passed(6, &good6, 10), vec![(2, Verdict::Kick)]);
    }

    #[test]
    fn suspect_memory_is_bounded() {
        let mut g = BadDataGuard::new();
        for p in 0..(MAX_SUSPECT_PIECES as u32 + 10) {
            g.piece_failed(p, &[(1u8, 1), (2, 2)], 10);
        }
        assert_eq!(g.suspects.len(), MAX_SUSPECT_PIECES);
        assert!(!g.suspects.contains_key(&0));
    }
}
