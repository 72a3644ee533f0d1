//! Block accounting for one partially downloaded piece.
//!
//! A piece is requested in [`BLOCK_SIZE`](crate::piece_map::BLOCK_SIZE) blocks. Each block is free,
//! requested from one or more peers (more than one only in endgame), or received. The record also keeps
//! who sent each received block, so a piece that fails its hash check can be blamed on its sender
//! (BitTornado blames a peer when it sent every block of a bad piece).
//!
//! Invariants, checked by [`PartialPiece::check`]: `free` equals the number of free blocks and
//! `received` the number of received ones; a received block has a sender, other blocks have none.

/// State of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    Free,
    /// Requested from this many peers (more than one only in endgame).
    Requested(u16),
    Received,
}

/// Block states of one piece being downloaded.
#[derive(Debug, Clone)]
pub struct PartialPiece<K> {
    states: Vec<BlockState>,
    senders: Vec<Option<K>>,
    free: u32,
    received: u32,
}

impl<K: Copy + Eq> PartialPiece<K> {
    /// A piece of `block_count` free blocks.
    pub fn new(block_count: u32) -> Self {
        assert!(block_count > 0, "a piece has at least one block");
        PartialPiece {
            states: vec![BlockState::Free; block_count as usize],
            senders: vec![None; block_count as usize],
            free: block_count,
            received: 0,
        }
    }

    pub fn block_count(&self) -> u32 {
        self.states.len() as u32
    }
    pub fn free(&self) -> u32 {
        self.free
    }
    pub fn received(&self) -> u32 {
        self.received
    }
    pub fn state(&self, block: u32) -> BlockState {
        self.states[block as usize]
    }
    /// All blocks received: the piece is ready to be hashed.
    pub fn is_complete(&self) -> bool {
        self.received == self.block_count()
    }
    /// Nothing requested or received: the piece can be forgotten.
    pub fn is_untouched(&self) -> bool {
        self.free == self.block_count()
    }

    /// The lowest free block, now marked requested once.
    pub fn request_free(&mut self) -> Option<u32> {
        let b = self.states.iter().position(|s| *s == BlockState::Free)?;
        self.states[b] = BlockState::Requested(1);
        self.free -= 1;
        Some(b as u32)
    }

    /// Blocks requested but not yet received (endgame candidates).
    pub fn outstanding(&self) -> impl Iterator<Item = u32> + '_ {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, BlockState::Requested(_)))
            .map(|(i, _)| i as u32)
    }

    /// One more peer was asked for an already requested block (endgame).
    pub fn request_again(&mut self, block: u32) {
        match &mut self.states[block as usize] {
            BlockState::Requested(n) => *n = n.saturating_add(1),
            other => panic!("request_again on a {other:?} block"),
        }
    }

    /// A request for `block` was lost (choke, reject, disconnect, cancel). Returns true if the block
    /// became free.
    pub fn release(&mut self, block: u32) -> bool {
        match &mut self.states[block as usize] {
            BlockState::Requested(n) if *n > 1 => {
                *n -= 1;
                false
            }
            BlockState::Requested(_) => {
                self.states[block as usize] = BlockState::Free;
                self.free += 1;
                true
            }
            // Already received from another peer, or released twice: nothing to do.
            _ => false,
        }
    }

    /// `block` arrived from `sender`. Returns false if it had already been received (an endgame
    /// duplicate) or was never requested; the data must then be discarded.
    pub fn receive(&mut self, block: u32, sender: K) -> bool {
        match self.states[block as usize] {
            BlockState::Requested(_) => {
                self.states[block as usize] = BlockState::Received;
                self.senders[block as usize] = Some(sender);
                self.received += 1;
                true
            }
            BlockState::Free | BlockState::Received => false,
        }
    }

    /// The sender of each block, in block order (`None`: not received).
    pub fn block_senders(&self) -> Vec<Option<K>> {
        self.senders.clone()
    }

    /// Distinct senders of the received blocks, in block order.
    pub fn senders(&self) -> Vec<K> {
        let mut out: Vec<K> = Vec::new();
        for s in self.senders.iter().flatten() {
            if !out.contains(s) {
                out.push(*s);
            }
        }
        out
    }

    /// Checks the counters against the states.
    pub fn check(&self) {
        let free = self
            .states
            .iter()
            .filter(|s| **s == BlockState::Free)
            .count();
        let received = self
            .states
            .iter()
            .filter(|s| **s == BlockState::Received)
            .count();
        assert_eq!(free as u32, self.free, "free count");
        assert_eq!(received as u32, self.received, "received count");
        for (s, from) in self.states.iter().zip(&self.senders) {
            assert_eq!(*s == BlockState::Received, from.is_some(), "sender record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_receive_complete() {
        let mut p: PartialPiece<u8> = PartialPiece::new(3);
        assert!(p.is_untouched());
        assert_eq!(p.request_free(), Some(0));
        assert_eq!(p.request_free(), Some(1));
        assert_eq!(p.request_free(), Some(2));
        assert_eq!(p.request_free(), None);
        assert!(p.receive(1, 7));
        assert!(!p.receive(1, 8), "duplicate");
        assert!(p.receive(0, 7));
        assert!(p.receive(2, 9));
        assert!(p.is_complete());
        assert_eq!(p.senders(), vec![7, 9]);
        p.check();
    }

    #[test]
    fn release_and_endgame_duplicates() {
        let mut p: PartialPiece<u8> = PartialPiece::new(2);
        p.request_free();
        p.request_again(0);
        assert!(!p.release(0), "still requested from the other peer");
        assert_eq!(p.state(0), BlockState::Requested(1));
        assert!(p.release(0));
        assert_eq!(p.free(), 2);
        assert!(!p.release(0), "double release is harmless");
        assert!(!p.receive(0, 1), "a free block was not requested");
        p.check();
        p.request_free();
        assert_eq!(p.outstanding().collect::<Vec<_>>(), vec![0]);
        assert!(p.receive(0, 1));
        assert!(!p.release(0), "received blocks are not released");
        p.check();
    }
}
