//! Pieces assembled in memory while their blocks arrive.
//!
//! Why: writing every 16 KiB block as it arrives, then reading the whole piece back to hash it, costs one disk
//! write per block and a second pass over the data, and the connection's reader waits for each write. A piece
//! assembled in memory is hashed from memory (four pieces at a time, see `finish.rs`) and written with one
//! piece-sized write that the reader does not wait for.
//!
//! Memory is bounded per shard by a [`PieceMemory`] budget. A piece whose first block arrives when the budget is
//! used up is written block by block to disk and verified from disk, as before: the budget limits speed, never
//! correctness. A piece keeps the path it started on until it is verified or fails.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Default bytes of piece buffers one shard holds at most (all its torrents together; `SessionConfig::piece_memory`).
pub(super) const PIECE_MEMORY_PER_SHARD: u64 = 256 << 20;

/// Free buffers kept for reuse per shard, at most. A fresh piece-sized allocation is served by `mmap` and costs a page
/// fault and a zeroed page per 4 KiB (page faults and `clear_page` were ~15 % of a 1 GiB download's CPU); a reused
/// buffer costs nothing, and needs no zeroing because a piece is complete only once every byte has arrived.
const FREE_BUFFERS: usize = 64;

/// The shard's budget for piece buffers, shared by its torrents, and its free buffers.
#[derive(Debug)]
pub(super) struct PieceMemory {
    limit: u64,
    used: Cell<u64>,
    free: RefCell<Vec<Vec<u8>>>,
}

impl PieceMemory {
    pub fn new(limit: u64) -> Rc<PieceMemory> {
        Rc::new(PieceMemory {
            limit,
            used: Cell::new(0),
            free: RefCell::new(Vec::new()),
        })
    }

    /// Bytes of buffers alive now.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// A buffer of `len` bytes (old contents when reused: the caller overwrites every byte), or `None` when it would
    /// exceed the budget.
    fn allocate(self: &Rc<Self>, len: usize) -> Option<PieceBuffer> {
        let used = self.used.get();
        if used + len as u64 > self.limit {
            return None;
        }
        self.used.set(used + len as u64);
        let reused = {
            let mut free = self.free.borrow_mut();
            free.iter()
                .position(|b| b.capacity() >= len && b.capacity() <= 2 * len)
                .map(|i| free.swap_remove(i))
        };
        let data = match reused {
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => vec![0; len],
        };
        Some(PieceBuffer {
            data,
            charged: len as u64,
            memory: self.clone(),
        })
    }

    /// Keeps `buf` for reuse if there is room (and it is not oversized for what is being assembled).
    fn recycle(&self, buf: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if free.len() < FREE_BUFFERS && buf.capacity() > 0 {
            free.push(buf);
        }
    }
}

/// A piece-sized buffer charged to its shard's [`PieceMemory`] until it is dropped or turned into a `Vec`.
#[derive(Debug)]
pub(super) struct PieceBuffer {
    data: Vec<u8>,
    charged: u64,
    memory: Rc<PieceMemory>,
}

impl PieceBuffer {
    pub fn as_slice(&self) -> &[u8] {
        &self.data
    }

    /// The bytes, for a write that takes ownership (the buffer is not reused then).
    #[cfg(test)]
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }
}

impl Drop for PieceBuffer {
    fn drop(&mut self) {
        self.memory.used.set(self.memory.used.get() - self.charged);
        self.memory.recycle(std::mem::take(&mut self.data));
    }
}

/// Where a received block goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// Copied into the piece's buffer: nothing to write now.
    Memory,
    /// Not buffered: the caller writes the block to disk, then calls [`PieceAssembly::disk_write_done`].
    Disk,
}

enum Slot {
    Memory(PieceBuffer),
    /// Blocks go to disk. A complete piece is verified only once no write of it is in flight (two readers can
    /// write blocks of the same piece at once; verifying before the other write lands would blame an honest peer).
    Disk {
        writing: u32,
        complete: bool,
    },
}

/// One torrent's partly received pieces that are (or are not) held in memory.
pub(super) struct PieceAssembly {
    memory: Rc<PieceMemory>,
    pieces: HashMap<u32, Slot>,
}

impl PieceAssembly {
    pub fn new(memory: Rc<PieceMemory>) -> Self {
        PieceAssembly {
            memory,
            pieces: HashMap::new(),
        }
    }

    /// Places an accepted block of `piece` (`piece_size` bytes in all) at `begin`. The first block of a piece
    /// decides its path: a buffer if the budget allows, otherwise disk.
    pub fn place(&mut self, piece: u32, piece_size: u32, begin: u32, data: &[u8]) -> Placement {
        let end = begin as usize + data.len();
        assert!(
            end <= piece_size as usize,
            "block {begin}+{} beyond piece {piece} of {piece_size} bytes (the requester accepted it)",
            data.len()
        );
        let slot = self.pieces.entry(piece).or_insert_with(|| {
            match self.memory.allocate(piece_size as usize) {
                Some(buf) => Slot::Memory(buf),
                None => Slot::Disk {
                    writing: 0,
                    complete: false,
                },
            }
        });
        match slot {
            Slot::Memory(buf) => {
                buf.data[begin as usize..end].copy_from_slice(data);
                Placement::Memory
            }
            Slot::Disk { writing, .. } => {
                *writing += 1;
                Placement::Disk
            }
        }
    }

    /// A block write of an on-disk piece finished (`completes_piece`: it was the piece's last block). True when the
    /// piece is complete and no write of it is in flight any more: verify it now. The piece then leaves the assembly.
    pub fn disk_write_done(&mut self, piece: u32, completes_piece: bool) -> bool {
        let Some(Slot::Disk { writing, complete }) = self.pieces.get_mut(&piece) else {
            debug_assert!(
                false,
                "disk_write_done for piece {piece} not on the disk path"
            );
            return completes_piece;
        };
        *writing = writing.saturating_sub(1);
        *complete |= completes_piece;
        let ready = *complete && *writing == 0;
        if ready {
            self.pieces.remove(&piece);
        }
        ready
    }

    /// Every block of an in-memory `piece` is in: its buffer, which leaves the assembly. `None` if the piece is on
    /// the disk path (see [`PieceAssembly::disk_write_done`]).
    pub fn take(&mut self, piece: u32) -> Option<PieceBuffer> {
        match self.pieces.remove(&piece) {
            Some(Slot::Memory(buf)) => Some(buf),
            Some(disk) => {
                self.pieces.insert(piece, disk);
                None
            }
            None => None,
        }
    }

    /// Pieces being assembled (tests and status).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pieces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_land_at_their_offsets_and_take_returns_the_piece() {
        let memory = PieceMemory::new(1 << 20);
        let mut a = PieceAssembly::new(memory.clone());
        assert_eq!(a.place(3, 8, 4, b"5678"), Placement::Memory);
        assert_eq!(a.place(3, 8, 0, b"1234"), Placement::Memory);
        assert_eq!(memory.used(), 8);
        let buf = a.take(3).expect("assembled in memory");
        assert_eq!(buf.as_slice(), b"12345678");
        assert_eq!(a.len(), 0);
        drop(buf);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn over_budget_pieces_go_to_disk_and_stay_there() {
        let memory = PieceMemory::new(10);
        let mut a = PieceAssembly::new(memory.clone());
        assert_eq!(a.place(0, 8, 0, b"abcd"), Placement::Memory);
        assert_eq!(a.place(1, 8, 0, b"abcd"), Placement::Disk);
        // Budget freed by piece 0; piece 1 already started on disk and keeps that path.
        drop(a.take(0));
        assert_eq!(a.place(1, 8, 4, b"efgh"), Placement::Disk);
        assert!(a.take(1).is_none());
        // The last block's write lands first: not ready until the other write is done too.
        assert!(!a.disk_write_done(1, true));
        assert!(a.disk_write_done(1, false));
        assert_eq!(a.len(), 0);
        // A new piece gets memory again.
        assert_eq!(a.place(2, 8, 0, b"abcd"), Placement::Memory);
    }

    #[test]
    fn buffers_are_reused_and_sized_to_the_piece() {
        let memory = PieceMemory::new(1 << 20);
        let mut a = PieceAssembly::new(memory.clone());
        a.place(0, 16, 0, &[9; 16]);
        let ptr = a.take(0).map(|b| b.as_slice().as_ptr()).unwrap();
        // Dropped above: the next piece of at most that size (and at least half) gets the same allocation.
        a.place(1, 8, 0, &[1; 8]);
        let b = a.take(1).unwrap();
        assert_eq!(b.as_slice().as_ptr(), ptr);
        assert_eq!(b.as_slice(), &[1; 8]);
        drop(b);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn into_vec_returns_the_budget() {
        let memory = PieceMemory::new(100);
        let mut a = PieceAssembly::new(memory.clone());
        a.place(0, 16, 0, &[7; 16]);
        let v = a.take(0).unwrap().into_vec();
        assert_eq!(v, vec![7; 16]);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn dropping_the_assembly_returns_the_budget() {
        let memory = PieceMemory::new(100);
        let mut a = PieceAssembly::new(memory.clone());
        a.place(0, 16, 0, &[1; 4]);
        a.place(1, 16, 0, &[1; 4]);
        assert_eq!(memory.used(), 32);
        drop(a);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    #[should_panic(expected = "beyond piece")]
    fn a_block_past_the_piece_is_a_bug() {
        let mut a = PieceAssembly::new(PieceMemory::new(100));
        a.place(0, 8, 6, b"xyz");
    }
}
