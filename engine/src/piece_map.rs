//! Torrent geometry: pieces, 16 KiB blocks, and the mapping of piece bytes onto the torrent's files.
//!
//! The torrent's payload is the concatenation of its files in metainfo order; a piece is a fixed-size
//! window of it (the last one shorter). Storage asks [`PieceMap::spans`] where a block lives and gets
//! `(file index, file offset, length)` spans. The map guarantees that every span lies inside its file
//! and every file inside the torrent: a block that is not inside its piece is an error, never a span
//! that runs past the end. Zero-length files hold no bytes and never appear in a span.
//!
//! Everything is checked once in [`PieceMap::new`] (counts, sizes, overflow), so the per-block path
//! does integer arithmetic only.

use crate::bitfield::MAX_PIECE_COUNT;
use crate::wire::BlockRequest;
use cyclone_metainfo::piece_layout::{LayoutError, PieceLayout};
use std::ops::Range;
use thiserror::Error;

/// The request size cyclone uses (`download_slice_size`, 2^14), and the block unit of accounting.
pub const BLOCK_SIZE: u32 = 1 << 14;
/// Largest piece length accepted: the metainfo limit (512 MiB, at most 32768 blocks per piece).
pub const MAX_PIECE_LENGTH: u64 = cyclone_metainfo::MAX_PIECE_LENGTH;
/// Largest number of files accepted in one torrent: the metainfo limit.
pub const MAX_FILE_COUNT: usize = cyclone_metainfo::MAX_FILES;

/// Why a geometry or a block address was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PieceMapError {
    #[error("piece length {0} is not in 1..={MAX_PIECE_LENGTH}")]
    BadPieceLength(u64),
    #[error("torrent has {0} files, the limit is {MAX_FILE_COUNT}")]
    TooManyFiles(usize),
    #[error("torrent holds no data (total length 0)")]
    Empty,
    #[error("total length overflows 64 bits")]
    TotalOverflow,
    #[error("torrent has {0} pieces, the limit is {MAX_PIECE_COUNT}")]
    TooManyPieces(u64),
    #[error("piece {piece} does not exist (torrent has {piece_count})")]
    PieceOutOfRange { piece: u32, piece_count: u32 },
    #[error("metainfo lists {listed} piece hashes but its files need {needed} pieces")]
    PieceHashCount { listed: usize, needed: u32 },
    #[error("block {begin}+{length} is not inside piece {piece} of {piece_size} bytes")]
    BlockOutsidePiece {
        piece: u32,
        begin: u32,
        length: u32,
        piece_size: u32,
    },
}

/// A contiguous run of torrent bytes inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    pub file_index: usize,
    pub file_offset: u64,
    pub length: u64,
    /// Offset of the span's first byte within the block/range that was mapped.
    pub range_offset: u64,
}

/// Piece, block and file geometry of one torrent.
#[derive(Debug, Clone)]
pub struct PieceMap {
    /// File offsets and piece arithmetic, shared with the metainfo tools' hasher and `verify`.
    layout: PieceLayout,
    piece_count: u32,
}

impl PieceMap {
    /// Builds the map from the metainfo's piece length and file lengths (in order).
    pub fn new(piece_length: u64, file_lengths: &[u64]) -> Result<Self, PieceMapError> {
        if piece_length == 0 || piece_length > MAX_PIECE_LENGTH {
            return Err(PieceMapError::BadPieceLength(piece_length));
        }
        if file_lengths.len() > MAX_FILE_COUNT {
            return Err(PieceMapError::TooManyFiles(file_lengths.len()));
        }
        let layout = match PieceLayout::new(file_lengths.iter().copied(), piece_length) {
            Ok(layout) => layout,
            Err(LayoutError::TotalOverflow) => return Err(PieceMapError::TotalOverflow),
            Err(LayoutError::PieceLength(l)) => return Err(PieceMapError::BadPieceLength(l)),
            Err(LayoutError::TooManyPieces { pieces }) => {
                return Err(PieceMapError::TooManyPieces(pieces))
            }
        };
        if layout.total_length() == 0 {
            return Err(PieceMapError::Empty);
        }
        let pieces = layout.piece_count() as u64;
        if pieces > MAX_PIECE_COUNT as u64 {
            return Err(PieceMapError::TooManyPieces(pieces));
        }
        Ok(PieceMap {
            layout,
            piece_count: pieces as u32,
        })
    }

    /// The map of a parsed torrent; also checks that the piece hashes match the files' total length.
    pub fn from_info(info: &cyclone_metainfo::Info) -> Result<Self, PieceMapError> {
        let lengths: Vec<u64> = info.files.iter().map(|f| f.length).collect();
        let map = Self::new(info.piece_length, &lengths)?;
        if info.pieces.len() != map.piece_count as usize {
            return Err(PieceMapError::PieceHashCount {
                listed: info.pieces.len(),
                needed: map.piece_count,
            });
        }
        Ok(map)
    }

    pub fn piece_length(&self) -> u64 {
        self.layout.piece_length()
    }
    pub fn total_length(&self) -> u64 {
        self.layout.total_length()
    }
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    pub fn file_count(&self) -> usize {
        self.layout.file_count()
    }
    /// Length of file `index`.
    pub fn file_length(&self, index: usize) -> u64 {
        self.layout.file_length(index)
    }

    fn check_piece(&self, piece: u32) -> Result<(), PieceMapError> {
        if piece < self.piece_count {
            Ok(())
        } else {
            Err(PieceMapError::PieceOutOfRange {
                piece,
                piece_count: self.piece_count,
            })
        }
    }

    /// Byte length of `piece` (the last piece may be short). Panics on a bad index: callers hold
    /// indices the wire decoder already range-checked.
    pub fn piece_size(&self, piece: u32) -> u32 {
        assert!(piece < self.piece_count, "piece {piece} out of range");
        let range = self.layout.piece_range(piece as usize);
        (range.end - range.start) as u32
    }

    /// Torrent byte offset of the first byte of `piece`.
    pub fn piece_offset(&self, piece: u32) -> u64 {
        assert!(piece < self.piece_count, "piece {piece} out of range");
        self.layout.piece_range(piece as usize).start
    }

    /// Number of [`BLOCK_SIZE`] blocks in `piece`.
    pub fn block_count(&self, piece: u32) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_SIZE)
    }

    /// The request for block `block` of `piece`.
    pub fn block(&self, piece: u32, block: u32) -> BlockRequest {
        let size = self.piece_size(piece);
        let begin = block
            .checked_mul(BLOCK_SIZE)
            .filter(|&b| b < size)
            .unwrap_or_else(|| panic!("block {block} out of range in piece {piece}"));
        BlockRequest {
            piece,
            begin,
            length: (size - begin).min(BLOCK_SIZE),
        }
    }

    /// Which of our blocks `req` is, if it is exactly one of them (aligned, full length). Data from a
    /// peer that does not match a block we would have requested is refused by the caller.
    pub fn block_index(&self, req: &BlockRequest) -> Option<u32> {
        if req.piece >= self.piece_count || !req.begin.is_multiple_of(BLOCK_SIZE) {
            return None;
        }
        let block = req.begin / BLOCK_SIZE;
        if block >= self.block_count(req.piece) {
            return None;
        }
        (self.block(req.piece, block) == *req).then_some(block)
    }

    /// Checks that `begin..begin+length` lies inside `piece` (a peer's request before we serve it).
    pub fn check_block(&self, piece: u32, begin: u32, length: u32) -> Result<(), PieceMapError> {
        self.check_piece(piece)?;
        let piece_size = self.piece_size(piece);
        match begin.checked_add(length) {
            Some(end) if length > 0 && end <= piece_size => Ok(()),
            _ => Err(PieceMapError::BlockOutsidePiece {
                piece,
                begin,
                length,
                piece_size,
            }),
        }
    }

    /// The file spans holding `length` bytes at `begin` within `piece`, in order.
    pub fn spans(&self, piece: u32, begin: u32, length: u32) -> Result<Spans<'_>, PieceMapError> {
        self.check_block(piece, begin, length)?;
        let offset = self.piece_offset(piece) + begin as u64;
        Ok(self.range_spans(offset, length as u64))
    }

    /// Spans of a whole piece (hashing, resume checks).
    pub fn piece_spans(&self, piece: u32) -> Result<Spans<'_>, PieceMapError> {
        self.check_piece(piece)?;
        self.spans(piece, 0, self.piece_size(piece))
    }

    /// Spans of torrent bytes `offset..offset+length`; the range must be inside the torrent
    /// (checked by callers via `check_block`).
    fn range_spans(&self, offset: u64, length: u64) -> Spans<'_> {
        assert!(
            offset + length <= self.total_length(),
            "range past the torrent"
        );
        // First file whose end is beyond `offset` (skips zero-length files at that offset).
        let file = self
            .layout
            .files_overlapping(offset..offset + length.max(1))
            .start;
        Spans {
            map: self,
            file,
            offset,
            remaining: length,
            range_offset: 0,
        }
    }

    /// Files (by index) that hold at least one byte of `piece`. Zero-length files lying between two
    /// such files are inside the range too; callers mapping priorities skip them.
    pub fn piece_files(&self, piece: u32) -> Range<usize> {
        assert!(piece < self.piece_count, "piece {piece} out of range");
        self.layout.files_of_piece(piece as usize)
    }

    /// Pieces holding at least one byte of file `index`; empty for a zero-length file.
    pub fn file_pieces(&self, index: usize) -> Range<u32> {
        // Bounded by `piece_count`, which fits a u32.
        let r = self.layout.pieces_of_file(index);
        r.start as u32..r.end as u32
    }
}

/// Iterator over the [`FileSpan`]s of a byte range.
#[derive(Debug)]
pub struct Spans<'a> {
    map: &'a PieceMap,
    file: usize,
    offset: u64,
    remaining: u64,
    range_offset: u64,
}

impl Iterator for Spans<'_> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        while self.remaining > 0 {
            if self.file >= self.map.layout.file_count() {
                return None;
            }
            let f = self.map.layout.file_range(self.file);
            if self.offset >= f.end {
                self.file += 1;
                continue;
            }
            let file_offset = self.offset - f.start;
            let length = (f.end - self.offset).min(self.remaining);
            debug_assert!(f.start + file_offset + length <= f.end);
            let span = FileSpan {
                file_index: self.file,
                file_offset,
                length,
                range_offset: self.range_offset,
            };
            self.offset += length;
            self.remaining -= length;
            self.range_offset += length;
            self.file += 1;
            return Some(span);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_refusals() {
        assert_eq!(
            PieceMap::new(0, &[1]).unwrap_err(),
            PieceMapError::BadPieceLength(0)
        );
        assert!(PieceMap::new(MAX_PIECE_LENGTH + 1, &[1]).is_err());
        assert_eq!(PieceMap::new(16384, &[]).unwrap_err(), PieceMapError::Empty);
        assert_eq!(
            PieceMap::new(16384, &[0, 0]).unwrap_err(),
            PieceMapError::Empty
        );
        assert_eq!(
            PieceMap::new(16384, &[u64::MAX, 1]).unwrap_err(),
            PieceMapError::TotalOverflow
        );
        assert!(matches!(
            PieceMap::new(1, &[MAX_PIECE_COUNT as u64 + 1]),
            Err(PieceMapError::TooManyPieces(_))
        ));
    }

    #[test]
    fn from_a_real_metainfo() {
        use cyclone_metainfo::bencode::Owned;
        let build = |hashes: usize| {
            let mut file_a = Owned::dict();
            file_a.insert("length", 30000i64);
            file_a.insert("path", Owned::List(vec!["a".into()]));
            let mut file_b = Owned::dict();
            file_b.insert("length", 20000i64);
            file_b.insert("path", Owned::List(vec!["b".into()]));
            let mut info = Owned::dict();
            info.insert("files", Owned::List(vec![file_a, file_b]));
            info.insert("name", "t");
            info.insert("piece length", 32768i64);
            info.insert("pieces", vec![0u8; 20 * hashes]);
            let mut top = Owned::dict();
            top.insert("info", info);
            cyclone_metainfo::Metainfo::from_bytes(&top.encode()).unwrap()
        };
        let m = PieceMap::from_info(&build(2).info).unwrap();
        assert_eq!(
            (m.piece_count(), m.file_count(), m.total_length()),
            (2, 2, 50000)
        );
        let spans: Vec<_> = m
            .piece_spans(0)
            .unwrap()
            .map(|s| (s.file_index, s.length))
            .collect();
        assert_eq!(spans, vec![(0, 30000), (1, 2768)]);
        // An Info built by hand with the wrong number of hashes is refused.
        let mut info = build(2).info;
        info.pieces.push([0; 20]);
        assert_eq!(
            PieceMap::from_info(&info).unwrap_err(),
            PieceMapError::PieceHashCount {
                listed: 3,
                needed: 2
            }
        );
    }

    #[test]
    fn pieces_and_blocks() {
        // 2.5 pieces of 40000 bytes: blocks 16384,16384,7232.
        let m = PieceMap::new(40000, &[100_000]).unwrap();
        assert_eq!(m.piece_count(), 3);
        assert_eq!(m.piece_size(0), 40000);
        assert_eq!(m.piece_size(2), 20000);
        assert_eq!(m.block_count(0), 3);
        assert_eq!(m.block_count(2), 2);
        assert_eq!(
            m.block(0, 2),
            BlockRequest {
                piece: 0,
                begin: 32768,
                length: 7232
            }
        );
        assert_eq!(m.block(2, 1).length, 20000 - 16384);
        assert_eq!(m.block_index(&m.block(0, 2)), Some(2));
        assert_eq!(
            m.block_index(&BlockRequest {
                piece: 0,
                begin: 32768,
                length: 16384
            }),
            None
        );
        assert_eq!(
            m.block_index(&BlockRequest {
                piece: 0,
                begin: 1,
                length: 16384
            }),
            None
        );
        assert_eq!(
            m.block_index(&BlockRequest {
                piece: 3,
                begin: 0,
                length: 16384
            }),
            None
        );
    }

    #[test]
    fn check_block_refuses_outside() {
        let m = PieceMap::new(32768, &[40000]).unwrap();
        assert!(m.check_block(1, 0, 7232).is_ok());
        assert!(m.check_block(1, 0, 7233).is_err());
        assert!(m.check_block(1, 7232, 1).is_err());
        assert!(m.check_block(0, 0, 0).is_err());
        assert!(m.check_block(0, u32::MAX, 2).is_err());
        assert!(matches!(
            m.check_block(2, 0, 1),
            Err(PieceMapError::PieceOutOfRange { .. })
        ));
        assert!(m.spans(1, 7000, 1000).is_err());
    }

    #[test]
    fn spans_cross_files_and_skip_empty_ones() {
        // files: a=10, b=0, c=5, d=20 ; piece length 8 -> 35 bytes, 5 pieces
        let m = PieceMap::new(8, &[10, 0, 5, 20]).unwrap();
        assert_eq!(m.piece_count(), 5);
        let s: Vec<_> = m.piece_spans(1).unwrap().collect();
        assert_eq!(
            s,
            vec![
                FileSpan {
                    file_index: 0,
                    file_offset: 8,
                    length: 2,
                    range_offset: 0
                },
                FileSpan {
                    file_index: 2,
                    file_offset: 0,
                    length: 5,
                    range_offset: 2
                },
                FileSpan {
                    file_index: 3,
                    file_offset: 0,
                    length: 1,
                    range_offset: 7
                },
            ]
        );
        assert_eq!(m.piece_files(1), 0..4);
        assert_eq!(m.piece_files(0), 0..1);
        assert_eq!(m.piece_files(4), 3..4);
        assert_eq!(m.file_pieces(0), 0..2);
        assert_eq!(m.file_pieces(1), 0..0);
        assert_eq!(m.file_pieces(2), 1..2);
        assert_eq!(m.file_pieces(3), 1..5);
        // Last piece is 3 bytes, all in d.
        let s: Vec<_> = m.piece_spans(4).unwrap().collect();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].file_index, s[0].file_offset, s[0].length), (3, 17, 3));
    }

    /// For many random layouts, every byte of every piece maps to exactly one in-bounds byte of one
    /// file, in order, and the spans of all pieces tile every file exactly.
    #[test]
    fn spans_tile_the_torrent_exactly() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let n = rng.usize(1..8);
            let lens: Vec<u64> = (0..n)
                .map(|_| if rng.u8(..) < 50 { 0 } else { rng.u64(0..200) })
                .collect();
            let Ok(m) = PieceMap::new(rng.u64(1..64), &lens) else {
                assert_eq!(lens.iter().sum::<u64>(), 0);
                continue;
            };
            let mut covered: Vec<u64> = vec![0; n];
            let mut total = 0;
            for p in 0..m.piece_count() {
                let mut expect = 0;
                for s in m.piece_spans(p).unwrap() {
                    assert_eq!(s.range_offset, expect);
                    assert!(s.length > 0);
                    assert!(s.file_offset + s.length <= lens[s.file_index]);
                    assert_eq!(
                        s.file_offset, covered[s.file_index],
                        "files filled in order"
                    );
                    covered[s.file_index] += s.length;
                    expect += s.length;
                    assert!(m.piece_files(p).contains(&s.file_index));
                    assert!(m.file_pieces(s.file_index).contains(&p));
                }
                assert_eq!(expect, m.piece_size(p) as u64);
                total += expect;
            }
            assert_eq!(covered, lens);
            assert_eq!(total, m.total_length());
        }
    }
}
