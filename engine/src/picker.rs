//! BitTornado's piece picker: which piece to start (or continue) next from a given peer.
//!
//! Port of BitTornado 0.3.18 `BT1/PiecePicker.py` (without super-seeding):
//! - Every wanted piece sits in a bucket by *level* = (non-seed peers having it) + 20 × priority.
//!   Lower levels are picked first, so this is rarest-first within priority classes (0 highest,
//!   2 lowest). Inside a bucket the order is random: a piece is inserted at a random position each
//!   time it moves, which is also what makes the first picks random.
//! - Connected seeds are not counted in availability; they are counted in `seeds_connected`.
//! - *Started* (partially requested) pieces are preferred, lowest level first, when the caller says
//!   there are too many partial pieces (`complete_first`), or while fewer than `rarest_first_cutoff`
//!   pieces are complete and the cutoff rule applies.
//! - Cutoff rule: while fewer than `rarest_first_cutoff` pieces are complete, search levels from the
//!   cutoff upwards first (pieces many peers have, so the first piece completes fast), then below it.
//! - Priority −1 pieces leave the buckets (never picked); re-enabling puts them back, restoring their
//!   started state.
//! - A piece that fails its hash check is *bumped*: to the end of its bucket and out of `started`.
//!
//! Intended behaviour where BitTornado is inconsistent: BitTornado starts `cutoff` at
//! `rarest_first_priority_cutoff` (5), a level below every normal-priority piece, but once a seed
//! connects sets it to `rarest_first_priority_cutoff + 20 − seeds` (a level relative to normal
//! priority). cyclone uses the latter form throughout: cutoff level =
//! `20 + max(rarest_first_priority_cutoff − seeds_connected, 0)`, i.e. "normal-priority pieces that at
//! least `rarest_first_priority_cutoff` peers (counting seeds) can give us".
//!
//! Determinism: the picker owns a `fastrand::Rng` seeded by the caller, so tests replay exactly.

use crate::bitfield::{Bitfield, MAX_PIECE_COUNT};
use crate::piece_map::PieceMap;
use std::collections::HashSet;
use thiserror::Error;

/// Level distance between priority classes (BitTornado `priority_step`).
pub const PRIORITY_STEP: u32 = 20;
/// BitTornado `rarest_first_cutoff` default: complete pieces before rarest-first takes over.
pub const DEFAULT_RAREST_FIRST_CUTOFF: u32 = 2;
/// BitTornado `rarest_first_priority_cutoff` default.
pub const DEFAULT_RAREST_FIRST_PRIORITY_CUTOFF: u32 = 5;

/// A piece or file priority: 0 highest, 1 normal, 2 lowest, −1 skip (`--priority`).
pub type Priority = i8;
pub const PRIORITY_HIGHEST: Priority = 0;
pub const PRIORITY_NORMAL: Priority = 1;
pub const PRIORITY_LOWEST: Priority = 2;
pub const PRIORITY_SKIP: Priority = -1;

/// Picker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickerConfig {
    pub rarest_first_cutoff: u32,
    pub rarest_first_priority_cutoff: u32,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            rarest_first_cutoff: DEFAULT_RAREST_FIRST_CUTOFF,
            rarest_first_priority_cutoff: DEFAULT_RAREST_FIRST_PRIORITY_CUTOFF,
        }
    }
}

/// Why a `--priority` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PriorityError {
    /// BitTornado's message, with the reason.
    #[error("bad priority list given, ignored: {0}")]
    BadList(String),
}

/// Parses BitTornado's `--priority` value: comma-separated −1..=2, one per file.
pub fn parse_priority_list(text: &str, file_count: usize) -> Result<Vec<Priority>, PriorityError> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.len() != file_count {
        return Err(PriorityError::BadList(format!(
            "{} values for {file_count} files",
            items.len()
        )));
    }
    items
        .iter()
        .map(|s| match s.parse::<i8>() {
            Ok(p) if (-1..=2).contains(&p) => Ok(p),
            _ => Err(PriorityError::BadList(format!(
                "{s:?} is not one of -1, 0, 1, 2"
            ))),
        })
        .collect()
}

/// Maps file priorities to piece priorities (BitTornado `FileSelector`): a piece gets the highest
/// priority (lowest number) among the non-empty files it overlaps that are not skipped; a piece only
/// in skipped files is skipped.
pub fn piece_priorities(map: &PieceMap, file_priorities: &[Priority]) -> Vec<Priority> {
    assert_eq!(
        file_priorities.len(),
        map.file_count(),
        "one priority per file"
    );
    let mut out = vec![PRIORITY_SKIP; map.piece_count() as usize];
    for (file, &p) in file_priorities.iter().enumerate() {
        if p < 0 {
            continue;
        }
        for piece in map.file_pieces(file) {
            let slot = &mut out[piece as usize];
            *slot = if *slot < 0 { p } else { (*slot).min(p) };
        }
    }
    out
}

/// Piece-level selection state of one torrent.
#[derive(Debug, Clone)]
pub struct PiecePicker {
    config: PickerConfig,
    piece_count: u32,
    /// `interests[level]` = wanted pieces at that level, random order.
    interests: Vec<Vec<u32>>,
    level: Vec<u32>,
    pos: Vec<u32>,
    /// Non-seed peers having each piece.
    availability: Vec<u32>,
    priority: Vec<Priority>,
    have: Bitfield,
    /// Pieces with requests out, in the order they were started.
    started: Vec<u32>,
    /// Started pieces whose priority went to −1; restored to `started` when re-enabled.
    removed_partials: HashSet<u32>,
    seeds_connected: u32,
    rng: fastrand::Rng,
}

impl PiecePicker {
    /// A picker for `piece_count` pieces, all normal priority, none held.
    pub fn new(piece_count: u32, config: PickerConfig, seed: u64) -> Self {
        assert!(
            piece_count <= MAX_PIECE_COUNT,
            "piece count above MAX_PIECE_COUNT"
        );
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut bucket: Vec<u32> = (0..piece_count).collect();
        rng.shuffle(&mut bucket);
        let mut pos = vec![0u32; piece_count as usize];
        for (i, &p) in bucket.iter().enumerate() {
            pos[p as usize] = i as u32;
        }
        let normal = PRIORITY_STEP * PRIORITY_NORMAL as u32;
        let mut interests = vec![Vec::new(); normal as usize];
        interests.push(bucket);
        PiecePicker {
            config,
            piece_count,
            interests,
            level: vec![normal; piece_count as usize],
            pos,
            availability: vec![0; piece_count as usize],
            priority: vec![PRIORITY_NORMAL; piece_count as usize],
            have: Bitfield::new(piece_count).expect("checked above"),
            started: Vec::new(),
            removed_partials: HashSet::new(),
            seeds_connected: 0,
            rng,
        }
    }

    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    /// Pieces we hold (verified).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }
    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }
    /// Non-seed peers having `piece`.
    pub fn availability(&self, piece: u32) -> u32 {
        self.availability[piece as usize]
    }
    pub fn seeds_connected(&self) -> u32 {
        self.seeds_connected
    }
    pub fn priority(&self, piece: u32) -> Priority {
        self.priority[piece as usize]
    }
    /// Pieces with requests outstanding or partly received, oldest first.
    pub fn started(&self) -> &[u32] {
        &self.started
    }
    /// Whether we want `piece` at all: not held and not skipped.
    pub fn wants(&self, piece: u32) -> bool {
        !self.have.get(piece) && self.priority[piece as usize] >= 0
    }
    /// True when every piece is either held or skipped (download done as far as the user asked).
    pub fn wants_nothing(&self) -> bool {
        (0..self.piece_count).all(|p| !self.wants(p))
    }

    /// The cutoff level of the start-up rule.
    fn cutoff_level(&self) -> usize {
        (PRIORITY_STEP
            + self
                .config
                .rarest_first_priority_cutoff
                .saturating_sub(self.seeds_connected)) as usize
    }

    fn in_buckets(&self, piece: u32) -> bool {
        !self.have.get(piece) && self.priority[piece as usize] >= 0
    }

    fn remove_from_bucket(&mut self, piece: u32) {
        let level = self.level[piece as usize] as usize;
        let p = self.pos[piece as usize] as usize;
        let bucket = &mut self.interests[level];
        assert_eq!(bucket[p], piece, "picker position index corrupt");
        let last = bucket.pop().expect("bucket holds the piece");
        if last != piece {
            bucket[p] = last;
            self.pos[last as usize] = p as u32;
        }
    }

    fn insert_random(&mut self, piece: u32, level: usize) {
        while self.interests.len() <= level {
            self.interests.push(Vec::new());
        }
        let bucket = &mut self.interests[level];
        let newp = self.rng.usize(0..=bucket.len());
        if newp == bucket.len() {
            bucket.push(piece);
        } else {
            let old = bucket[newp];
            self.pos[old as usize] = bucket.len() as u32;
            bucket.push(old);
            bucket[newp] = piece;
        }
        self.pos[piece as usize] = newp as u32;
    }

    fn shift(&mut self, piece: u32, new_level: u32) {
        let in_buckets = self.in_buckets(piece);
        if in_buckets {
            self.remove_from_bucket(piece);
        }
        self.level[piece as usize] = new_level;
        if in_buckets {
            self.insert_random(piece, new_level as usize);
        }
    }

    fn level_for(&self, piece: u32) -> u32 {
        let p = self.priority[piece as usize].max(0) as u32;
        self.availability[piece as usize] + PRIORITY_STEP * p
    }

    /// A non-seed peer has `piece` (HAVE, or a bit of its bitfield).
    pub fn got_have(&mut self, piece: u32) {
        self.availability[piece as usize] += 1;
        let l = self.level_for(piece);
        self.shift(piece, l);
    }

    /// A non-seed peer that had `piece` is gone.
    pub fn lost_have(&mut self, piece: u32) {
        let a = &mut self.availability[piece as usize];
        assert!(*a > 0, "lost_have without got_have for piece {piece}");
        *a -= 1;
        let l = self.level_for(piece);
        self.shift(piece, l);
    }

    /// A seed connected (counted apart from availability).
    pub fn got_seed(&mut self) {
        self.seeds_connected += 1;
    }

    /// A seed disconnected.
    pub fn lost_seed(&mut self) {
        assert!(self.seeds_connected > 0, "lost_seed without got_seed");
        self.seeds_connected -= 1;
    }

    /// A peer counted through `got_have` now has every piece: move it to the seed count.
    pub fn became_seed(&mut self) {
        for piece in 0..self.piece_count {
            self.lost_have(piece);
        }
        self.got_seed();
    }

    /// We requested a block of `piece`: it is started.
    pub fn requested(&mut self, piece: u32) {
        if !self.started.contains(&piece) {
            self.started.push(piece);
        }
    }

    /// A started piece has nothing outstanding or received any more (all requests lost before any
    /// block arrived): it stops being preferred as partial.
    pub fn unstarted(&mut self, piece: u32) {
        self.started.retain(|&p| p != piece);
    }

    /// `piece` passed its hash check and is stored.
    pub fn complete(&mut self, piece: u32) {
        assert!(!self.have.get(piece), "piece {piece} completed twice");
        if self.in_buckets(piece) {
            self.remove_from_bucket(piece);
        }
        self.have.set(piece);
        self.unstarted(piece);
        self.removed_partials.remove(&piece);
    }

    /// `piece` failed its hash check: to the back of its bucket, no longer started.
    pub fn bump(&mut self, piece: u32) {
        if self.in_buckets(piece) {
            self.remove_from_bucket(piece);
            let level = self.level[piece as usize] as usize;
            self.pos[piece as usize] = self.interests[level].len() as u32;
            self.interests[level].push(piece);
        }
        self.unstarted(piece);
    }

    /// Changes a piece's priority. Returns true when the piece became wanted or unwanted (callers
    /// re-evaluate interest and cancel requests of a newly skipped piece).
    pub fn set_priority(&mut self, piece: u32, priority: Priority) -> bool {
        assert!((-1..=2).contains(&priority), "priority {priority}");
        let old = self.priority[piece as usize];
        if old == priority {
            return false;
        }
        let was_in = self.in_buckets(piece);
        if was_in {
            self.remove_from_bucket(piece);
        }
        self.priority[piece as usize] = priority;
        self.level[piece as usize] = self.level_for(piece);
        if priority < 0 {
            if self.started.contains(&piece) {
                self.unstarted(piece);
                self.removed_partials.insert(piece);
            }
            return was_in;
        }
        if self.in_buckets(piece) {
            let l = self.level[piece as usize] as usize;
            self.insert_random(piece, l);
        }
        if old < 0 {
            if self.removed_partials.remove(&piece) {
                self.started.push(piece);
            }
            return !self.have.get(piece);
        }
        false
    }

    /// Applies a whole priority vector (from [`piece_priorities`]).
    pub fn set_priorities(&mut self, priorities: &[Priority]) {
        assert_eq!(priorities.len(), self.piece_count as usize);
        for (piece, &p) in priorities.iter().enumerate() {
            self.set_priority(piece as u32, p);
        }
    }

    /// The next piece to request from a peer having `peer_has`, among pieces for which `want` is true
    /// (the requester's "still has unrequested blocks"). `complete_first` is the caller's "too many
    /// partial pieces" signal.
    pub fn next(
        &self,
        peer_has: &Bitfield,
        want: impl Fn(u32) -> bool,
        complete_first: bool,
    ) -> Option<u32> {
        let peer_is_seed = peer_has.is_complete();
        let cutoff = self.have.count_ones() < self.config.rarest_first_cutoff;
        let complete_first = (complete_first || cutoff) && !peer_is_seed;
        let cutoff_level = self.cutoff_level();
        let levels = self.interests.len();
        let mut best = None;
        let mut best_level = usize::MAX;
        for &p in &self.started {
            let l = self.level[p as usize] as usize;
            if self.in_buckets(p) && peer_has.get(p) && want(p) && l < best_level {
                best = Some(p);
                best_level = l;
            }
        }
        let cutoff_applies = cutoff && levels > cutoff_level;
        if best.is_some() && (complete_first || cutoff_applies) {
            return best;
        }
        let hi = best_level.min(levels);
        let ranges: [(usize, usize); 2] = if !peer_is_seed && cutoff_applies {
            [(cutoff_level, hi), (0, cutoff_level.min(hi))]
        } else {
            [(0, hi), (0, 0)]
        };
        for (lo, hi) in ranges {
            for bucket in self.interests.get(lo..hi).unwrap_or(&[]) {
                if let Some(&p) = bucket.iter().find(|&&p| peer_has.get(p) && want(p)) {
                    return Some(p);
                }
            }
        }
        best
    }

    /// Checks every internal index (tests and debug builds).
    pub fn check_invariants(&self) {
        let mut seen = 0usize;
        for (l, bucket) in self.interests.iter().enumerate() {
            for (i, &p) in bucket.iter().enumerate() {
                assert!(self.in_buckets(p), "piece {p} in a bucket but held/skipped");
                assert_eq!(self.level[p as usize] as usize, l, "piece {p} level");
                assert_eq!(self.pos[p as usize] as usize, i, "piece {p} position");
                assert_eq!(self.level[p as usize], self.level_for(p));
                seen += 1;
            }
        }
        let wanted = (0..self.piece_count)
            .filter(|&p| self.in_buckets(p))
            .count();
        assert_eq!(seen, wanted, "every wanted piece is in exactly one bucket");
        for &p in &self.started {
            assert!(!self.have.get(p), "held piece {p} still started");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(n: u32) -> Bitfield {
        Bitfield::full(n).unwrap()
    }

    fn bits(n: u32, ones: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(n).unwrap();
        for &i in ones {
            b.set(i);
        }
        b
    }

    fn no_cutoff() -> PickerConfig {
        PickerConfig {
            rarest_first_cutoff: 0,
            ..PickerConfig::default()
        }
    }

    #[test]
    fn rarest_first_after_cutoff() {
        let mut p = PiecePicker::new(6, no_cutoff(), 1);
        // availability: piece i held by (6 - i) peers -> piece 5 rarest.
        for piece in 0..6 {
            for _ in 0..(6 - piece) {
                p.got_have(piece);
            }
        }
        p.check_invariants();
        let mut got = Vec::new();
        let peer = full(6);
        while let Some(x) = p.next(&peer, |_| true, false) {
            got.push(x);
            p.complete(x);
        }
        assert_eq!(got, vec![5, 4, 3, 2, 1, 0]);
        assert!(p.is_complete());
        p.check_invariants();
    }

    #[test]
    fn only_pieces_the_peer_has_and_wants() {
        let mut p = PiecePicker::new(8, no_cutoff(), 2);
        for piece in 0..8 {
            p.got_have(piece);
        }
        let peer = bits(8, &[2, 6]);
        let x = p.next(&peer, |i| i != 2, false);
        assert_eq!(x, Some(6));
        assert_eq!(p.next(&peer, |_| false, false), None);
        assert_eq!(p.next(&bits(8, &[]), |_| true, false), None);
    }

    #[test]
    fn random_order_within_a_level_depends_on_seed() {
        let firsts: HashSet<u32> = (0..40)
            .map(|seed| {
                let p = PiecePicker::new(50, no_cutoff(), seed);
                p.next(&full(50), |_| true, false).unwrap()
            })
            .collect();
        assert!(firsts.len() > 10, "first picks should vary: {firsts:?}");
        // Same seed, same picks.
        let a = PiecePicker::new(50, no_cutoff(), 9);
        let b = PiecePicker::new(50, no_cutoff(), 9);
        assert_eq!(
            a.next(&full(50), |_| true, false),
            b.next(&full(50), |_| true, false)
        );
    }

    #[test]
    fn priorities_form_classes() {
        let mut p = PiecePicker::new(4, no_cutoff(), 3);
        // piece 0 is very common but highest priority; piece 3 rare but lowest priority.
        for _ in 0..10 {
            p.got_have(0);
        }
        p.got_have(1);
        p.got_have(1);
        p.got_have(2);
        p.set_priority(0, PRIORITY_HIGHEST);
        p.set_priority(3, PRIORITY_LOWEST);
        p.check_invariants();
        let peer = full(4);
        let mut order = Vec::new();
        while let Some(x) = p.next(&peer, |_| true, false) {
            order.push(x);
            p.complete(x);
        }
        assert_eq!(order, vec![0, 2, 1, 3]);
    }

    #[test]
    fn skipped_pieces_are_never_picked_and_partials_are_restored() {
        let mut p = PiecePicker::new(3, no_cutoff(), 4);
        p.requested(1);
        assert!(p.set_priority(1, PRIORITY_SKIP));
        p.check_invariants();
        assert!(!p.wants(1));
        assert!(p.started().is_empty());
        let peer = full(3);
        for _ in 0..20 {
            assert_ne!(p.next(&peer, |_| true, false), Some(1));
        }
        assert!(p.set_priority(1, PRIORITY_NORMAL));
        assert_eq!(p.started(), &[1]);
        p.check_invariants();
        p.complete(0);
        p.complete(2);
        p.set_priority(1, PRIORITY_SKIP);
        assert!(p.wants_nothing());
    }

    #[test]
    fn started_pieces_first_when_too_many_partials() {
        let mut p = PiecePicker::new(10, no_cutoff(), 5);
        for piece in 0..10 {
            p.got_have(piece);
        }
        // piece 7 is common and started; 3 is rare.
        for _ in 0..5 {
            p.got_have(7);
        }
        p.lost_have(3);
        p.requested(7);
        let peer = full(10);
        // Peer is a seed: complete_first is off for seeds, rarest wins.
        assert_eq!(p.next(&peer, |_| true, true), Some(3));
        let mut partial_peer = full(10);
        partial_peer.clear(0);
        assert_eq!(p.next(&partial_peer, |_| true, true), Some(7));
        assert_eq!(p.next(&partial_peer, |_| true, false), Some(3));
    }

    #[test]
    fn startup_cutoff_prefers_common_pieces() {
        let mut p = PiecePicker::new(4, PickerConfig::default(), 6);
        // piece 0 held by 1 peer, piece 1 by 6 peers (≥ cutoff 5), piece 2 by 2, piece 3 by none.
        p.got_have(0);
        for _ in 0..6 {
            p.got_have(1);
        }
        p.got_have(2);
        p.got_have(2);
        let mut peer = full(4);
        peer.clear(3);
        // Fewer than 2 pieces complete: start with the piece at least 5 peers have.
        assert_eq!(p.next(&peer, |_| true, false), Some(1));
        p.complete(1);
        // Then the started/cutoff rule still applies (1 < 2 complete); nothing else reaches the
        // cutoff level, so the search falls back to the lower levels: rarest first.
        assert_eq!(p.next(&peer, |_| true, false), Some(0));
        p.complete(0);
        // Past the cutoff: rarest first.
        assert_eq!(p.next(&peer, |_| true, false), Some(2));
    }

    #[test]
    fn seeds_lower_the_cutoff() {
        let mut p = PiecePicker::new(3, PickerConfig::default(), 7);
        p.got_have(0);
        for _ in 0..3 {
            p.got_have(1);
        }
        let mut peer = full(3);
        peer.clear(2);
        // cutoff 25: nothing qualifies; rarest first gives 0.
        assert_eq!(p.next(&peer, |_| true, false), Some(0));
        // Two seeds: cutoff 23; piece 1 (3 peers) qualifies.
        p.got_seed();
        p.got_seed();
        assert_eq!(p.next(&peer, |_| true, false), Some(1));
        p.lost_seed();
        p.lost_seed();
        assert_eq!(p.next(&peer, |_| true, false), Some(0));
    }

    #[test]
    fn became_seed_moves_counts() {
        let mut p = PiecePicker::new(3, no_cutoff(), 8);
        for piece in 0..3 {
            p.got_have(piece);
        }
        p.became_seed();
        assert_eq!(p.seeds_connected(), 1);
        assert!((0..3).all(|i| p.availability(i) == 0));
        p.check_invariants();
    }

    #[test]
    fn bump_moves_to_back_and_unstarts() {
        let mut p = PiecePicker::new(30, no_cutoff(), 10);
        let peer = full(30);
        let first = p.next(&peer, |_| true, false).unwrap();
        p.requested(first);
        p.bump(first);
        assert!(p.started().is_empty());
        assert_ne!(p.next(&peer, |_| true, false), Some(first));
        p.check_invariants();
    }

    #[test]
    fn random_operations_keep_invariants() {
        let mut rng = fastrand::Rng::with_seed(99);
        for round in 0..50 {
            let n = rng.u32(1..40);
            let mut p = PiecePicker::new(n, PickerConfig::default(), round);
            let mut avail = vec![0u32; n as usize];
            for _ in 0..300 {
                let piece = rng.u32(0..n);
                match rng.u8(0..7) {
                    0 | 1 => {
                        p.got_have(piece);
                        avail[piece as usize] += 1;
                    }
                    2 if avail[piece as usize] > 0 => {
                        p.lost_have(piece);
                        avail[piece as usize] -= 1;
                    }
                    3 => {
                        p.set_priority(piece, rng.i8(-1..=2));
                    }
                    4 if !p.have().get(piece) => p.complete(piece),
                    5 if !p.have().get(piece) => p.requested(piece),
                    6 => p.bump(piece),
                    _ => {}
                }
                let peer = bits(n, &(0..n).filter(|_| rng.bool()).collect::<Vec<_>>());
                if let Some(x) = p.next(&peer, |_| true, rng.bool()) {
                    assert!(peer.get(x) && p.wants(x), "picked unwanted {x}");
                } else {
                    assert!((0..n).all(|i| !(peer.get(i) && p.wants(i))));
                }
            }
            p.check_invariants();
        }
    }

    #[test]
    fn priority_list_parsing_and_mapping() {
        assert_eq!(
            parse_priority_list("0,1,-1,2", 4).unwrap(),
            vec![0, 1, -1, 2]
        );
        assert!(parse_priority_list("0,1", 3).is_err());
        assert!(parse_priority_list("0,3", 2).is_err());
        assert!(parse_priority_list("0,x", 2).is_err());
        let e = parse_priority_list("", 2).unwrap_err().to_string();
        assert!(e.starts_with("bad priority list given, ignored"), "{e}");
        // files: 10, 0, 5, 20 bytes; piece length 8 (pieces: 0:[a] 1:[a,c,d] 2..4:[d])
        let m = PieceMap::new(8, &[10, 0, 5, 20]).unwrap();
        assert_eq!(piece_priorities(&m, &[2, 0, -1, 1]), vec![2, 1, 1, 1, 1]);
        assert_eq!(piece_priorities(&m, &[-1, 0, -1, -1]), vec![-1; 5]);
        assert_eq!(piece_priorities(&m, &[-1, -1, 0, 2]), vec![-1, 0, 2, 2, 2]);
    }
}
