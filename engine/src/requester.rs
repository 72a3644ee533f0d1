//! Download side of a torrent: which blocks to request from which peer, endgame, and the cancels and
//! re-requests that follow from chokes, rejects, snubs, disconnects and hash failures.
//!
//! This is BitTornado's `Downloader`/`SingleDownload` plus the block part of `StorageWrapper`, without
//! sockets: the shard feeds it peer events and sends the requests and cancels it returns. It owns the
//! [`PiecePicker`] (piece level), a [`PartialPiece`] per started piece (block level) and, per peer, the
//! peer's bitfield and its outstanding requests (bounded by [`MAX_REQUESTS_PER_PEER`]).
//!
//! Behaviour (BitTornado 0.3.18):
//! - A peer is asked for blocks of the piece the picker chooses until its pipeline is full
//!   ([`pipeline_depth`]); the picker prefers started pieces when there are too many partial pieces
//!   (more pieces with received data than half the peers).
//! - A choke from a peer without the fast extension loses its requests; they go back to the pool. A
//!   fast peer keeps them until it rejects them (BEP 6).
//! - Endgame starts when every wanted block has been requested: a peer with room is then asked for
//!   blocks already requested from others (shuffled). When a block arrives, every other peer that has
//!   it outstanding gets a cancel. Endgame ends when all peers are gone.
//! - A snubbed peer's requests are cancelled and returned to the pool.
//! - While a fast peer chokes us, only its ALLOWED_FAST pieces are requested (BEP 6).
//! - A piece that fails its hash check goes back to the pool (bumped in the picker) and the caller is
//!   told who sent it, for [`crate::bad_data`].
//!
//! Interest: for each peer the requester counts the pieces it has that we want, so "are we interested
//! in this peer?" is O(1) after every event.

use crate::allowed_fast::MAX_ALLOWED_FAST_SET_SIZE;
use crate::bitfield::Bitfield;
use crate::blocks::PartialPiece;
use crate::picker::{PickerConfig, PiecePicker, Priority};
use crate::piece_map::{PieceMap, BLOCK_SIZE};
use crate::wire::BlockRequest;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use thiserror::Error;

/// Most requests outstanding to one peer (libtorrent's `max_out_request_queue` is also 500).
pub const MAX_REQUESTS_PER_PEER: usize = 500;
/// Most peers one torrent's requester tracks.
pub const MAX_PEERS_PER_TORRENT: usize = 4096;

/// Refusals; each is a caller mistake or a limit, never a peer's protocol error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequesterError {
    #[error("peer already registered")]
    DuplicatePeer,
    #[error("torrent already tracks {MAX_PEERS_PER_TORRENT} peers")]
    TooManyPeers,
    #[error("bitfield has {got} pieces, torrent has {expected}")]
    BitfieldLength { got: u32, expected: u32 },
}

/// BitTornado's per-peer pipeline depth (`SingleDownload._backlog`):
/// `min(2 + 4 × rate / block, 2 × just_unchoked + queue_limit)`, and above 50 it becomes
/// `max(50, depth × 0.075)`. `queue_limit` is the number of blocks the download rate limit allows
/// now (`None`: unlimited). Capped at [`MAX_REQUESTS_PER_PEER`].
pub fn pipeline_depth(
    download_rate_bytes_per_second: f64,
    just_unchoked: bool,
    queue_limit: Option<u64>,
) -> usize {
    let by_rate = 2 + (4.0 * download_rate_bytes_per_second.max(0.0) / BLOCK_SIZE as f64) as u64;
    let by_limit = queue_limit.map_or(u64::MAX, |q| q.saturating_add(2 * just_unchoked as u64));
    let mut depth = by_rate.min(by_limit) as f64;
    if depth > 50.0 {
        depth = (depth * 0.075).max(50.0);
    }
    (depth as usize).min(MAX_REQUESTS_PER_PEER)
}

#[derive(Debug, Clone)]
struct PeerState {
    has: Bitfield,
    /// Counted in the picker as a seed (not in availability).
    counted_as_seed: bool,
    /// The peer chokes us.
    choking_us: bool,
    /// BEP 6 negotiated: chokes do not drop requests, rejects do.
    fast: bool,
    /// In request order: blocks mostly arrive in that order, so the one received is found (and removed) at the
    /// front in O(1) rather than by shifting the whole queue.
    outstanding: VecDeque<BlockRequest>,
    /// Pieces the peer has that we want.
    interesting: u32,
    /// BEP 6 ALLOWED_FAST pieces: requestable while the peer chokes us.
    allowed_fast: Vec<u32>,
}

/// What became of a received block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome<K> {
    /// The data is new and must be written; false: discard it (not requested, or a duplicate).
    pub accepted: bool,
    /// Every block of this piece is now in: hash it, then call [`Requester::piece_verified`].
    pub piece_complete: Option<u32>,
    /// Cancels to send (endgame duplicates of this block).
    pub cancels: Vec<(K, BlockRequest)>,
}

/// Download state of one torrent.
#[derive(Debug, Clone)]
pub struct Requester<K> {
    map: PieceMap,
    picker: PiecePicker,
    partial: HashMap<u32, PartialPiece<K>>,
    peers: HashMap<K, PeerState>,
    endgame: bool,
    /// Unrequested blocks of wanted pieces: endgame starts when this reaches 0. Kept exact by every
    /// mutation (checked by `check_invariants`) so the endgame test is O(1).
    free_blocks: u64,
    rng: fastrand::Rng,
}

impl<K: Copy + Eq + Hash + std::fmt::Debug> Requester<K> {
    /// A requester for a torrent with nothing downloaded. `seed` makes every random choice replayable.
    pub fn new(map: PieceMap, config: PickerConfig, seed: u64) -> Self {
        let picker = PiecePicker::new(map.piece_count(), config, seed);
        let free_blocks = (0..map.piece_count())
            .map(|p| map.block_count(p) as u64)
            .sum();
        Requester {
            map,
            picker,
            partial: HashMap::new(),
            peers: HashMap::new(),
            endgame: false,
            free_blocks,
            rng: fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15),
        }
    }

    pub fn map(&self) -> &PieceMap {
        &self.map
    }
    pub fn picker(&self) -> &PiecePicker {
        &self.picker
    }
    pub fn in_endgame(&self) -> bool {
        self.endgame
    }
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }
    /// Pieces with requests out or data received, awaiting more blocks or their hash check.
    pub fn partial_pieces(&self) -> usize {
        self.partial.len()
    }

    /// Unrequested blocks of wanted pieces.
    pub fn free_blocks(&self) -> u64 {
        self.free_blocks
    }

    /// This piece's share of `free_blocks`.
    fn free_in(&self, piece: u32) -> u64 {
        if !self.picker.wants(piece) {
            0
        } else if let Some(pp) = self.partial.get(&piece) {
            pp.free() as u64
        } else {
            self.map.block_count(piece) as u64
        }
    }

    /// Marks a piece we already hold (resume data, recheck) before downloading starts.
    pub fn mark_have(&mut self, piece: u32) {
        assert!(
            !self.partial.contains_key(&piece),
            "mark_have on a piece in flight"
        );
        self.free_blocks -= self.free_in(piece);
        self.complete_piece(piece);
    }

    /// Records `piece` as held and updates interest counts.
    fn complete_piece(&mut self, piece: u32) {
        if self.picker.have().get(piece) {
            return;
        }
        let wanted = self.picker.wants(piece);
        self.picker.complete(piece);
        if wanted {
            for peer in self.peers.values_mut() {
                if peer.has.get(piece) {
                    peer.interesting -= 1;
                }
            }
        }
    }

    /// Registers a connected peer (after the handshake). `fast`: BEP 6 negotiated.
    pub fn add_peer(&mut self, key: K, fast: bool) -> Result<(), RequesterError> {
        if self.peers.contains_key(&key) {
            return Err(RequesterError::DuplicatePeer);
        }
        if self.peers.len() >= MAX_PEERS_PER_TORRENT {
            return Err(RequesterError::TooManyPeers);
        }
        self.peers.insert(
            key,
            PeerState {
                has: Bitfield::new(self.map.piece_count()).expect("map checked piece count"),
                counted_as_seed: false,
                choking_us: true,
                fast,
                outstanding: VecDeque::new(),
                interesting: 0,
                allowed_fast: Vec::new(),
            },
        );
        Ok(())
    }

    /// Forgets a peer: its requests return to the pool, its pieces leave the availability counts.
    pub fn remove_peer(&mut self, key: K) {
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        for req in &peer.outstanding {
            release(
                &self.map,
                &mut self.partial,
                &mut self.picker,
                &mut self.free_blocks,
                req,
            );
        }
        if peer.counted_as_seed {
            self.picker.lost_seed();
        } else {
            for piece in peer.has.iter_ones() {
                self.picker.lost_have(piece);
            }
        }
        if self.peers.is_empty() {
            self.endgame = false;
        }
    }

    /// Whether we should be interested in the peer.
    pub fn is_interesting(&self, key: K) -> bool {
        self.peers.get(&key).is_some_and(|p| p.interesting > 0)
    }

    /// Whether the peer has every piece.
    pub fn is_seed(&self, key: K) -> bool {
        self.peers.get(&key).is_some_and(|p| p.has.is_complete())
    }

    /// The peer's pieces.
    pub fn peer_has(&self, key: K) -> Option<&Bitfield> {
        self.peers.get(&key).map(|p| &p.has)
    }

    /// How many requests are outstanding to the peer.
    pub fn outstanding_count(&self, key: K) -> usize {
        self.peers.get(&key).map_or(0, |p| p.outstanding.len())
    }

    /// Requests outstanding to the peer, oldest first.
    pub fn outstanding(&self, key: K) -> Vec<BlockRequest> {
        self.peers
            .get(&key)
            .map_or(Vec::new(), |p| p.outstanding.iter().copied().collect())
    }

    /// The peer's BITFIELD (or HAVE_ALL as a full bitfield).
    pub fn peer_bitfield(&mut self, key: K, has: Bitfield) -> Result<(), RequesterError> {
        if has.len() != self.map.piece_count() {
            return Err(RequesterError::BitfieldLength {
                got: has.len(),
                expected: self.map.piece_count(),
            });
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        // The decoder only lets a bitfield come first; undo anything counted before, to be safe.
        if peer.counted_as_seed {
            self.picker.lost_seed();
        } else {
            for piece in peer.has.iter_ones() {
                self.picker.lost_have(piece);
            }
        }
        if has.is_complete() {
            self.picker.got_seed();
            peer.counted_as_seed = true;
        } else {
            peer.counted_as_seed = false;
            for piece in has.iter_ones() {
                self.picker.got_have(piece);
            }
        }
        peer.interesting = has.iter_ones().filter(|&p| self.picker.wants(p)).count() as u32;
        peer.has = has;
        Ok(())
    }

    /// BEP 6 HAVE_ALL.
    pub fn peer_have_all(&mut self, key: K) {
        let full = Bitfield::full(self.map.piece_count()).expect("map checked piece count");
        self.peer_bitfield(key, full)
            .expect("full bitfield has the torrent's length");
    }

    /// A HAVE. The index was range-checked by the wire decoder; duplicates are ignored.
    pub fn peer_have(&mut self, key: K, piece: u32) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if piece >= self.map.piece_count() || !peer.has.set(piece) {
            return;
        }
        self.picker.got_have(piece);
        if self.picker.wants(piece) {
            peer.interesting += 1;
        }
        if peer.has.is_complete() && !peer.counted_as_seed {
            self.picker.became_seed();
            peer.counted_as_seed = true;
        }
    }

    /// The peer unchoked us.
    pub fn peer_unchoked(&mut self, key: K) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.choking_us = false;
        }
    }

    /// The peer choked us. Without the fast extension its requests are lost and returned to the pool
    /// (and returned here); with it they stay outstanding until rejected.
    pub fn peer_choked(&mut self, key: K) -> Vec<BlockRequest> {
        let Some(peer) = self.peers.get_mut(&key) else {
            return Vec::new();
        };
        peer.choking_us = true;
        if peer.fast {
            return Vec::new();
        }
        let lost = std::mem::take(&mut peer.outstanding);
        for req in &lost {
            release(
                &self.map,
                &mut self.partial,
                &mut self.picker,
                &mut self.free_blocks,
                req,
            );
        }
        lost.into()
    }

    /// BEP 6 REJECT: the request returns to the pool. Returns false if it was not outstanding.
    pub fn peer_rejected(&mut self, key: K, req: &BlockRequest) -> bool {
        let Some(peer) = self.peers.get_mut(&key) else {
            return false;
        };
        let Some(i) = peer.outstanding.iter().position(|r| r == req) else {
            return false;
        };
        peer.outstanding.remove(i);
        release(
            &self.map,
            &mut self.partial,
            &mut self.picker,
            &mut self.free_blocks,
            req,
        );
        true
    }

    /// BEP 6 ALLOWED_FAST: the peer lets us request `piece` while it chokes us. At most
    /// [`MAX_ALLOWED_FAST_SET_SIZE`] are remembered per peer; duplicates and out-of-range indices are
    /// ignored.
    pub fn peer_allowed_fast(&mut self, key: K, piece: u32) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if piece < self.map.piece_count()
            && peer.allowed_fast.len() < MAX_ALLOWED_FAST_SET_SIZE
            && !peer.allowed_fast.contains(&piece)
        {
            peer.allowed_fast.push(piece);
        }
    }

    /// The peer is snubbed: returns its requests, to be cancelled, and puts them back in the pool.
    pub fn peer_snubbed(&mut self, key: K) -> Vec<BlockRequest> {
        let Some(peer) = self.peers.get_mut(&key) else {
            return Vec::new();
        };
        let cancel = std::mem::take(&mut peer.outstanding);
        for req in &cancel {
            release(
                &self.map,
                &mut self.partial,
                &mut self.picker,
                &mut self.free_blocks,
                req,
            );
        }
        cancel.into()
    }

    /// BitTornado's `too_many_partials`: more pieces with received data than half the peers.
    fn too_many_partials(&self) -> bool {
        let dirty = self.partial.values().filter(|p| p.received() > 0).count();
        dirty > self.peers.len() / 2
    }

    /// New requests to send to the peer so that it has up to `depth` outstanding.
    pub fn fill(&mut self, key: K, depth: usize) -> Vec<BlockRequest> {
        let depth = depth.min(MAX_REQUESTS_PER_PEER);
        let mut out = Vec::new();
        let complete_first = self.too_many_partials();
        let Some(peer) = self.peers.get_mut(&key) else {
            return out;
        };
        // Uninteresting peers have nothing for us (and would cost an endgame scan).
        if peer.interesting == 0 {
            return out;
        }
        let (map, partial, picker, free_blocks) = (
            &self.map,
            &mut self.partial,
            &mut self.picker,
            &mut self.free_blocks,
        );
        if peer.choking_us {
            // Choked: only allowed-fast pieces, no endgame.
            for &piece in &peer.allowed_fast {
                if !peer.has.get(piece) || !picker.wants(piece) {
                    continue;
                }
                let pp = partial
                    .entry(piece)
                    .or_insert_with(|| PartialPiece::new(map.block_count(piece)));
                while peer.outstanding.len() < depth {
                    let Some(block) = pp.request_free() else {
                        break;
                    };
                    *free_blocks -= 1;
                    picker.requested(piece);
                    let req = map.block(piece, block);
                    peer.outstanding.push_back(req);
                    out.push(req);
                }
                if pp.is_untouched() {
                    partial.remove(&piece);
                }
            }
            return out;
        }
        while peer.outstanding.len() < depth {
            let has_free = |p: u32| partial.get(&p).is_none_or(|pp| pp.free() > 0);
            let Some(piece) = picker.next(&peer.has, has_free, complete_first) else {
                break;
            };
            let pp = partial
                .entry(piece)
                .or_insert_with(|| PartialPiece::new(map.block_count(piece)));
            picker.requested(piece);
            while peer.outstanding.len() < depth {
                let Some(block) = pp.request_free() else {
                    break;
                };
                *free_blocks -= 1;
                let req = map.block(piece, block);
                peer.outstanding.push_back(req);
                out.push(req);
            }
        }
        if peer.outstanding.len() < depth && !self.endgame && self.free_blocks == 0 {
            self.endgame = true;
        }
        if self.endgame {
            self.fill_endgame(key, depth, &mut out);
        }
        out
    }

    /// Endgame: ask the peer for blocks already requested from others.
    fn fill_endgame(&mut self, key: K, depth: usize, out: &mut Vec<BlockRequest>) {
        let peer = self.peers.get_mut(&key).expect("caller checked");
        let room = depth.saturating_sub(peer.outstanding.len());
        if room == 0 {
            return;
        }
        let mut candidates: Vec<BlockRequest> = Vec::new();
        for (&piece, pp) in &self.partial {
            if !peer.has.get(piece) || !self.picker.wants(piece) {
                continue;
            }
            for block in pp.outstanding() {
                let req = self.map.block(piece, block);
                if !peer.outstanding.contains(&req) {
                    candidates.push(req);
                }
            }
        }
        // HashMap order is not replayable; sort before the seeded shuffle.
        candidates.sort();
        self.rng.shuffle(&mut candidates);
        for req in candidates.into_iter().take(room) {
            let block = req.begin / BLOCK_SIZE;
            self.partial
                .get_mut(&req.piece)
                .expect("candidate from partial")
                .request_again(block);
            peer.outstanding.push_back(req);
            out.push(req);
        }
    }

    /// A PIECE message's block arrived from `key`.
    pub fn block_received(&mut self, key: K, req: &BlockRequest) -> BlockOutcome<K> {
        let mut outcome = BlockOutcome {
            accepted: false,
            piece_complete: None,
            cancels: Vec::new(),
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return outcome;
        };
        let Some(i) = peer.outstanding.iter().position(|r| r == req) else {
            return outcome;
        };
        peer.outstanding.remove(i);
        let block = self
            .map
            .block_index(req)
            .expect("outstanding requests are our blocks");
        let pp = self
            .partial
            .get_mut(&req.piece)
            .expect("outstanding block has a partial piece");
        outcome.accepted = pp.receive(block, key);
        if !outcome.accepted {
            return outcome;
        }
        // Only endgame asks two peers for one block: outside it no other peer can have this one outstanding, and
        // scanning every peer's queue for every block would cost peers × queue length per block.
        if self.endgame {
            for (&other, p) in self.peers.iter_mut() {
                if let Some(j) = p.outstanding.iter().position(|r| r == req) {
                    p.outstanding.remove(j);
                    outcome.cancels.push((other, *req));
                }
            }
        }
        if pp.is_complete() {
            outcome.piece_complete = Some(req.piece);
        }
        outcome
    }

    /// The hash check of a complete piece finished. Returns the distinct senders of its blocks (for
    /// blame or credit). On failure every block returns to the pool.
    pub fn piece_verified(&mut self, piece: u32, passed: bool) -> Vec<K> {
        let mut distinct: Vec<K> = Vec::new();
        for k in self.piece_verified_blocks(piece, passed) {
            if !distinct.contains(&k) {
                distinct.push(k);
            }
        }
        distinct
    }

    /// As [`piece_verified`](Self::piece_verified), returning the sender of every block in block order (for the
    /// multi-sender culprit search of `bad_data`). Empty if the piece was not being downloaded.
    pub fn piece_verified_blocks(&mut self, piece: u32, passed: bool) -> Vec<K> {
        let Some(pp) = self.partial.remove(&piece) else {
            return Vec::new();
        };
        assert!(pp.is_complete(), "verified a piece with missing blocks");
        let senders: Vec<K> = pp.block_senders().into_iter().flatten().collect();
        // All blocks were received, so the piece contributed nothing to `free_blocks`.
        if passed {
            self.complete_piece(piece);
        } else {
            self.picker.bump(piece);
            self.free_blocks += self.free_in(piece);
        }
        senders
    }

    /// Applies piece priorities (from [`crate::picker::piece_priorities`]). Returns the cancels for
    /// requests of pieces that became skipped.
    pub fn set_priorities(&mut self, priorities: &[Priority]) -> Vec<(K, BlockRequest)> {
        assert_eq!(priorities.len(), self.map.piece_count() as usize);
        let mut cancels = Vec::new();
        for (piece, &prio) in priorities.iter().enumerate() {
            let piece = piece as u32;
            let free_before = self.free_in(piece);
            let wanted_before = self.picker.wants(piece);
            self.picker.set_priority(piece, prio);
            let wanted_after = self.picker.wants(piece);
            if wanted_before == wanted_after {
                continue;
            }
            for (&k, peer) in self.peers.iter_mut() {
                if peer.has.get(piece) {
                    if wanted_after {
                        peer.interesting += 1;
                    } else {
                        peer.interesting -= 1;
                    }
                }
                if !wanted_after {
                    let drop: Vec<BlockRequest> = peer
                        .outstanding
                        .iter()
                        .filter(|r| r.piece == piece)
                        .copied()
                        .collect();
                    peer.outstanding.retain(|r| r.piece != piece);
                    cancels.extend(drop.into_iter().map(|r| (k, r)));
                }
            }
            if !wanted_after {
                // Received blocks of a skipped piece are kept only while in flight; BitTornado keeps
                // edge pieces of skipped files in piece buffers, which is the storage layer's job.
                if let Some(pp) = self.partial.get(&piece) {
                    if pp.received() == 0 {
                        self.partial.remove(&piece);
                    }
                }
                if let Some(pp) = self.partial.get_mut(&piece) {
                    for (_, r) in cancels.iter().filter(|(_, r)| r.piece == piece) {
                        pp.release(r.begin / BLOCK_SIZE);
                    }
                }
            }
            self.free_blocks = self.free_blocks - free_before + self.free_in(piece);
        }
        cancels
    }

    /// Checks every cross-structure invariant (tests and debug builds).
    pub fn check_invariants(&self) {
        self.picker.check_invariants();
        let mut asked: HashMap<BlockRequest, u16> = HashMap::new();
        for peer in self.peers.values() {
            assert!(peer.outstanding.len() <= MAX_REQUESTS_PER_PEER);
            let wanted = peer
                .has
                .iter_ones()
                .filter(|&p| self.picker.wants(p))
                .count();
            assert_eq!(peer.interesting as usize, wanted, "interest count");
            for r in &peer.outstanding {
                *asked.entry(*r).or_default() += 1;
            }
        }
        for (&piece, pp) in &self.partial {
            pp.check();
            assert!(!self.picker.have().get(piece), "held piece {piece} partial");
            for b in 0..pp.block_count() {
                let req = self.map.block(piece, b);
                let n = asked.remove(&req).unwrap_or(0);
                match pp.state(b) {
                    crate::blocks::BlockState::Requested(k) => assert_eq!(k, n, "{req:?}"),
                    _ => assert_eq!(n, 0, "{req:?} outstanding but not requested"),
                }
            }
        }
        assert!(asked.is_empty(), "outstanding without partial piece");
        let free: u64 = (0..self.map.piece_count()).map(|p| self.free_in(p)).sum();
        assert_eq!(free, self.free_blocks, "free block count");
    }
}

/// Returns one lost request to the pool; forgets the piece if nothing of it is in flight.
fn release<K: Copy + Eq>(
    map: &PieceMap,
    partial: &mut HashMap<u32, PartialPiece<K>>,
    picker: &mut PiecePicker,
    free_blocks: &mut u64,
    req: &BlockRequest,
) {
    let Some(block) = map.block_index(req) else {
        return;
    };
    let Some(pp) = partial.get_mut(&req.piece) else {
        return;
    };
    if pp.release(block) && picker.wants(req.piece) {
        *free_blocks += 1;
    }
    if pp.is_untouched() {
        partial.remove(&req.piece);
        picker.unstarted(req.piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::picker::PRIORITY_SKIP;

    fn requester(piece_length: u64, total: u64) -> Requester<u32> {
        let map = PieceMap::new(piece_length, &[total]).unwrap();
        Requester::new(
            map,
            PickerConfig {
                rarest_first_cutoff: 0,
                ..PickerConfig::default()
            },
            1,
        )
    }

    fn seed_peer(r: &mut Requester<u32>, k: u32) {
        r.add_peer(k, false).unwrap();
        r.peer_have_all(k);
        r.peer_unchoked(k);
    }

    #[test]
    fn pipeline_depth_formula() {
        assert_eq!(pipeline_depth(0.0, false, None), 2);
        assert_eq!(pipeline_depth(16384.0 * 10.0, false, None), 42);
        // 2 + 4*100 = 402 > 50 -> max(50, 30.15) = 50
        assert_eq!(pipeline_depth(16384.0 * 100.0, false, None), 50);
        // 2 + 4*1000 = 4002 -> 300
        assert_eq!(pipeline_depth(16384.0 * 1000.0, false, None), 300);
        assert_eq!(
            pipeline_depth(1e12, false, None),
            MAX_REQUESTS_PER_PEER.min(300_000)
        );
        assert_eq!(pipeline_depth(16384.0 * 10.0, true, Some(3)), 5);
        assert_eq!(pipeline_depth(16384.0 * 10.0, false, Some(0)), 0);
    }

    #[test]
    fn download_whole_torrent_from_one_seed() {
        // 3 pieces of 40000 bytes (3 blocks each, last piece 20000 = 2 blocks) -> 8 blocks.
        let mut r = requester(40000, 100_000);
        seed_peer(&mut r, 1);
        assert!(r.is_interesting(1));
        let mut done = Vec::new();
        for _ in 0..20 {
            let reqs = r.fill(1, 4);
            r.check_invariants();
            if reqs.is_empty() && r.outstanding(1).is_empty() {
                break;
            }
            for req in r.outstanding(1).to_vec() {
                let o = r.block_received(1, &req);
                assert!(o.accepted);
                assert!(o.cancels.is_empty());
                if let Some(p) = o.piece_complete {
                    assert_eq!(r.piece_verified(p, true), vec![1]);
                    done.push(p);
                }
            }
        }
        done.sort();
        assert_eq!(done, vec![0, 1, 2]);
        assert!(r.picker().is_complete());
        assert!(!r.is_interesting(1));
        r.check_invariants();
    }

    #[test]
    fn choke_loses_requests_unless_fast() {
        let mut r = requester(32768, 65536);
        seed_peer(&mut r, 1);
        r.add_peer(2, true).unwrap();
        r.peer_have_all(2);
        r.peer_unchoked(2);
        let a = r.fill(1, 2);
        let b = r.fill(2, 2);
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 2);
        assert_eq!(r.peer_choked(1), a);
        assert!(r.outstanding(1).is_empty());
        assert!(r.fill(1, 2).is_empty(), "choked peers get no requests");
        assert!(r.peer_choked(2).is_empty());
        assert_eq!(r.outstanding(2), &b[..]);
        assert!(r.peer_rejected(2, &b[0]));
        assert!(!r.peer_rejected(2, &b[0]));
        r.check_invariants();
        // Lost blocks are requested again.
        r.peer_unchoked(1);
        let again = r.fill(1, 10);
        assert!(again.contains(&a[0]) && again.contains(&b[0]));
        r.check_invariants();
    }

    #[test]
    fn allowed_fast_pieces_while_choked() {
        let mut r = requester(32768, 32768 * 4);
        r.add_peer(1, true).unwrap();
        r.peer_have_all(1);
        assert!(r.fill(1, 10).is_empty(), "choked, nothing allowed");
        r.peer_allowed_fast(1, 2);
        r.peer_allowed_fast(1, 2);
        r.peer_allowed_fast(1, 99);
        let reqs = r.fill(1, 10);
        assert_eq!(reqs.len(), 2);
        assert!(reqs.iter().all(|q| q.piece == 2));
        assert!(!r.in_endgame());
        r.check_invariants();
        assert!(r.fill(1, 10).is_empty(), "allowed piece fully requested");
        r.check_invariants();
    }

    #[test]
    fn endgame_duplicates_and_cancels() {
        // One piece of 2 blocks.
        let mut r = requester(32768, 32768);
        seed_peer(&mut r, 1);
        seed_peer(&mut r, 2);
        let a = r.fill(1, 10);
        assert_eq!(a.len(), 2);
        assert!(r.in_endgame());
        let b = r.fill(2, 10);
        assert_eq!(b.len(), 2, "endgame asks peer 2 for the same blocks");
        r.check_invariants();
        let o = r.block_received(2, &a[0]);
        assert!(o.accepted);
        assert_eq!(o.cancels, vec![(1, a[0])]);
        r.check_invariants();
        // Peer 1's late copy of the same block is discarded.
        let late = r.block_received(1, &a[0]);
        assert!(!late.accepted);
        let o = r.block_received(1, &a[1]);
        assert_eq!(o.cancels, vec![(2, a[1])]);
        assert_eq!(o.piece_complete, Some(0));
        let mut senders = r.piece_verified(0, true);
        senders.sort();
        assert_eq!(senders, vec![1, 2]);
        r.check_invariants();
        r.remove_peer(1);
        r.remove_peer(2);
        assert!(!r.in_endgame(), "endgame resets when all peers are gone");
    }

    #[test]
    fn hash_failure_returns_blocks_and_names_sender() {
        let mut r = requester(32768, 32768);
        seed_peer(&mut r, 7);
        for req in r.fill(7, 2) {
            r.block_received(7, &req);
        }
        assert_eq!(r.piece_verified(0, false), vec![7]);
        assert!(!r.picker().have().get(0));
        r.check_invariants();
        assert_eq!(r.fill(7, 2).len(), 2, "piece is downloaded again");
    }

    #[test]
    fn unrequested_blocks_are_discarded() {
        let mut r = requester(32768, 32768);
        seed_peer(&mut r, 1);
        let req = BlockRequest {
            piece: 0,
            begin: 0,
            length: 16384,
        };
        assert!(!r.block_received(1, &req).accepted);
        assert!(!r.block_received(99, &req).accepted);
        r.check_invariants();
    }

    #[test]
    fn interest_follows_haves_and_completion() {
        let mut r = requester(16384, 16384 * 4);
        r.add_peer(1, false).unwrap();
        assert!(!r.is_interesting(1));
        r.peer_have(1, 2);
        assert!(r.is_interesting(1));
        r.peer_have(1, 2);
        r.mark_have(2);
        assert!(!r.is_interesting(1));
        for p in [0, 1, 3] {
            r.peer_have(1, p);
        }
        assert!(r.is_seed(1));
        assert_eq!(r.picker().seeds_connected(), 1);
        r.check_invariants();
        r.remove_peer(1);
        assert_eq!(r.picker().seeds_connected(), 0);
        r.check_invariants();
    }

    #[test]
    fn skipping_a_piece_cancels_its_requests() {
        let mut r = requester(16384, 16384 * 2);
        seed_peer(&mut r, 1);
        let reqs = r.fill(1, 1);
        let piece = reqs[0].piece;
        let mut prio = vec![1; 2];
        prio[piece as usize] = PRIORITY_SKIP;
        let cancels = r.set_priorities(&prio);
        assert_eq!(cancels, vec![(1, reqs[0])]);
        assert!(r.outstanding(1).is_empty());
        r.check_invariants();
        let next = r.fill(1, 5);
        assert!(next.iter().all(|q| q.piece != piece));
        assert_eq!(r.set_priorities(&[1, 1]), vec![]);
        r.check_invariants();
    }

    #[test]
    fn peer_limit_and_bad_bitfield() {
        let mut r = requester(16384, 16384);
        r.add_peer(1, false).unwrap();
        assert_eq!(r.add_peer(1, false), Err(RequesterError::DuplicatePeer));
        assert!(matches!(
            r.peer_bitfield(1, Bitfield::new(2).unwrap()),
            Err(RequesterError::BitfieldLength { .. })
        ));
    }

    /// Random peers, events and deliveries: invariants hold and the torrent completes.
    #[test]
    fn random_swarm_completes() {
        let mut priority_changes = 0;
        let mut endgames = 0;
        for seed in 0..20u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let map = PieceMap::new(32768, &[rng.u64(1..2_000_000)]).unwrap();
            let n = map.piece_count();
            let mut r: Requester<u32> = Requester::new(map, PickerConfig::default(), seed);
            for k in 0..5u32 {
                r.add_peer(k, rng.bool()).unwrap();
                if k == 0 {
                    r.peer_have_all(k);
                } else {
                    let mut b = Bitfield::new(n).unwrap();
                    for p in 0..n {
                        if rng.bool() {
                            b.set(p);
                        }
                    }
                    r.peer_bitfield(k, b).unwrap();
                }
            }
            for step in 0..5000 {
                if r.picker().is_complete() {
                    break;
                }
                // Early on, shuffle priorities (skips included); then want everything again.
                if step < 300 && rng.u8(0..20) == 0 {
                    let prio: Vec<Priority> = (0..n).map(|_| rng.i8(-1..=2)).collect();
                    r.set_priorities(&prio);
                    priority_changes += 1;
                } else if step == 300 {
                    r.set_priorities(&vec![1; n as usize]);
                }
                let k = rng.u32(0..5);
                match rng.u8(0..10) {
                    0 => {
                        r.peer_choked(k);
                    }
                    1 => {
                        r.peer_snubbed(k);
                        r.peer_allowed_fast(k, rng.u32(0..n));
                    }
                    2 => r.peer_have(k, rng.u32(0..n)),
                    3 => {
                        if let Some(&q) = r.outstanding(k).first() {
                            r.peer_rejected(k, &q);
                        }
                    }
                    _ => {
                        r.peer_unchoked(k);
                        let depth = rng.usize(1..8);
                        r.fill(k, depth);
                        if let Some(&q) = r.outstanding(k).first() {
                            let o = r.block_received(k, &q);
                            if let Some(p) = o.piece_complete {
                                r.piece_verified(p, rng.u8(0..10) > 0);
                            }
                        }
                    }
                }
                r.check_invariants();
                endgames += r.in_endgame() as u32;
            }
            assert!(r.picker().is_complete(), "seed {seed} did not complete");
        }
        assert!(priority_changes > 20, "{priority_changes}");
        assert!(endgames > 0);
    }
}
