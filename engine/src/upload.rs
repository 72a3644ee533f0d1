//! The blocks a peer asked us for: validation and a bounded queue (upload side of BitTornado's
//! `Uploader`, with the BEP 6 fast-extension rules).
//!
//! REQUEST handling, in order:
//! 1. A peer that is not interested may not request (BitTornado closes the connection).
//! 2. The block must lie inside its piece (`PieceMap::check_block`) — close otherwise. The wire decoder
//!    already capped the length at `max_slice_length`.
//! 3. While we choke the peer: without the fast extension the request is ignored (BitTornado); with it,
//!    a request for an allowed-fast piece is queued and any other is rejected (BEP 6).
//! 4. A piece we do not have: REJECT for fast peers, close for others (we never announced it).
//! 5. A duplicate of a queued request is ignored; beyond [`MAX_QUEUED_UPLOAD_REQUESTS`] the peer is
//!    flooding us: close.
//!
//! CANCEL removes a queued request (fast peers are answered with REJECT, as BEP 6 requires a response).
//! Choking a peer drops its queue; fast peers get a REJECT for each dropped request, except requests
//! for allowed-fast pieces, which stay queued.

use crate::bitfield::Bitfield;
use crate::piece_map::{PieceMap, PieceMapError};
use crate::wire::BlockRequest;
use std::collections::VecDeque;
use thiserror::Error;

/// Most requests queued from one peer. We advertise this as `reqq` in the extension handshake.
pub const MAX_QUEUED_UPLOAD_REQUESTS: usize = 500;

/// A request that means "close the connection".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UploadError {
    #[error("request from a peer that is not interested")]
    NotInterested,
    #[error("bad request: {0}")]
    OutsidePiece(#[from] PieceMapError),
    #[error("request for piece {0}, which we do not have")]
    DontHave(u32),
    #[error("more than {MAX_QUEUED_UPLOAD_REQUESTS} requests queued")]
    QueueFull,
}

/// What to do with a valid REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Queued; it will be served.
    Queued,
    /// Dropped silently (choked non-fast peer, or a duplicate).
    Ignored,
    /// Send a REJECT for it (fast peers).
    Reject,
}

/// One peer's queue of blocks to upload.
#[derive(Debug, Clone, Default)]
pub struct UploadQueue {
    queue: VecDeque<BlockRequest>,
    fast: bool,
    allowed_fast: Vec<u32>,
}

impl UploadQueue {
    /// `fast`: BEP 6 negotiated with this peer.
    pub fn new(fast: bool) -> Self {
        UploadQueue {
            queue: VecDeque::new(),
            fast,
            allowed_fast: Vec::new(),
        }
    }

    /// The allowed-fast pieces we sent this peer (see [`crate::allowed_fast`]).
    pub fn set_allowed_fast(&mut self, pieces: Vec<u32>) {
        self.allowed_fast = pieces;
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The next request [`UploadQueue::pop`] would return.
    pub fn front(&self) -> Option<&BlockRequest> {
        self.queue.front()
    }

    /// A REQUEST arrived.
    pub fn got_request(
        &mut self,
        req: BlockRequest,
        peer_interested: bool,
        we_choke: bool,
        map: &PieceMap,
        have: &Bitfield,
    ) -> Result<RequestOutcome, UploadError> {
        if !peer_interested {
            return Err(UploadError::NotInterested);
        }
        map.check_block(req.piece, req.begin, req.length)?;
        if we_choke && !self.allowed_fast.contains(&req.piece) {
            return Ok(if self.fast {
                RequestOutcome::Reject
            } else {
                RequestOutcome::Ignored
            });
        }
        if !have.get(req.piece) {
            return if self.fast {
                Ok(RequestOutcome::Reject)
            } else {
                Err(UploadError::DontHave(req.piece))
            };
        }
        if self.queue.contains(&req) {
            return Ok(RequestOutcome::Ignored);
        }
        if self.queue.len() >= MAX_QUEUED_UPLOAD_REQUESTS {
            return Err(UploadError::QueueFull);
        }
        self.queue.push_back(req);
        Ok(RequestOutcome::Queued)
    }

    /// A CANCEL arrived. Returns the REJECT to send (fast peers, request was queued).
    pub fn got_cancel(&mut self, req: &BlockRequest) -> Option<BlockRequest> {
        let i = self.queue.iter().position(|r| r == req)?;
        self.queue.remove(i);
        self.fast.then_some(*req)
    }

    /// We choke the peer. Returns the REJECTs to send (fast peers only).
    pub fn choked(&mut self) -> Vec<BlockRequest> {
        if !self.fast {
            self.queue.clear();
            return Vec::new();
        }
        let allowed = &self.allowed_fast;
        let (keep, reject): (VecDeque<_>, VecDeque<_>) = self
            .queue
            .drain(..)
            .partition(|r| allowed.contains(&r.piece));
        self.queue = keep;
        reject.into()
    }

    /// The next block to send, oldest first.
    pub fn pop(&mut self) -> Option<BlockRequest> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (PieceMap, Bitfield) {
        let map = PieceMap::new(32768, &[32768 * 3 + 100]).unwrap();
        let mut have = Bitfield::new(4).unwrap();
        have.set(0);
        have.set(1);
        have.set(3);
        (map, have)
    }

    fn req(piece: u32, begin: u32, length: u32) -> BlockRequest {
        BlockRequest {
            piece,
            begin,
            length,
        }
    }

    #[test]
    fn bittornado_rules_without_fast() {
        let (map, have) = setup();
        let mut q = UploadQueue::new(false);
        let r = req(0, 0, 16384);
        assert_eq!(
            q.got_request(r, false, false, &map, &have),
            Err(UploadError::NotInterested)
        );
        assert_eq!(
            q.got_request(r, true, true, &map, &have),
            Ok(RequestOutcome::Ignored)
        );
        assert_eq!(
            q.got_request(r, true, false, &map, &have),
            Ok(RequestOutcome::Queued)
        );
        assert_eq!(
            q.got_request(r, true, false, &map, &have),
            Ok(RequestOutcome::Ignored)
        );
        assert_eq!(
            q.got_request(req(2, 0, 16384), true, false, &map, &have),
            Err(UploadError::DontHave(2))
        );
        assert!(matches!(
            q.got_request(req(3, 0, 101), true, false, &map, &have),
            Err(UploadError::OutsidePiece(_))
        ));
        assert!(matches!(
            q.got_request(req(9, 0, 1), true, false, &map, &have),
            Err(UploadError::OutsidePiece(_))
        ));
        assert_eq!(q.got_cancel(&r), None);
        assert!(q.is_empty());
        q.got_request(r, true, false, &map, &have).unwrap();
        assert!(q.choked().is_empty());
        assert!(q.is_empty());
    }

    #[test]
    fn fast_rules() {
        let (map, have) = setup();
        let mut q = UploadQueue::new(true);
        q.set_allowed_fast(vec![1]);
        let a = req(0, 0, 16384);
        let b = req(1, 16384, 16384);
        // Choked: allowed-fast piece queued, others rejected.
        assert_eq!(
            q.got_request(a, true, true, &map, &have),
            Ok(RequestOutcome::Reject)
        );
        assert_eq!(
            q.got_request(b, true, true, &map, &have),
            Ok(RequestOutcome::Queued)
        );
        assert_eq!(
            q.got_request(req(2, 0, 16384), true, false, &map, &have),
            Ok(RequestOutcome::Reject)
        );
        assert_eq!(
            q.got_request(a, true, false, &map, &have),
            Ok(RequestOutcome::Queued)
        );
        assert_eq!(
            q.choked(),
            vec![a],
            "allowed-fast request survives the choke"
        );
        assert_eq!(q.len(), 1);
        assert_eq!(q.got_cancel(&b), Some(b));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn queue_is_bounded_and_fifo() {
        let map = PieceMap::new(1 << 24, &[1 << 24]).unwrap();
        let have = Bitfield::full(1).unwrap();
        let mut q = UploadQueue::new(false);
        for i in 0..MAX_QUEUED_UPLOAD_REQUESTS as u32 {
            assert_eq!(
                q.got_request(req(0, i * 16384, 16384), true, false, &map, &have),
                Ok(RequestOutcome::Queued)
            );
        }
        assert_eq!(
            q.got_request(req(0, 0, 1), true, false, &map, &have),
            Err(UploadError::QueueFull)
        );
        assert_eq!(q.pop(), Some(req(0, 0, 16384)));
        assert_eq!(q.pop(), Some(req(0, 16384, 16384)));
    }
}
