//! Where every piece lies in the concatenated content, and which files it touches.
//!
//! Pure arithmetic, no I/O: shared by the file hasher, `verify` and (later) the
//! engine's recheck, which reads through its own I/O path.

use std::ops::Range;

/// Upper bound on the number of pieces a layout accepts: 2^26 pieces is already
/// 1.3 GB of digests, far past anything a client loads.
pub const MAX_PIECES: u64 = 1 << 26;

/// Upper bound on a piece length (1 GiB): bigger pieces are rejected by every client
/// and would need buffers of that size.
pub const MAX_PIECE_LENGTH: u64 = 1 << 30;

/// Why a layout cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Zero or above [`MAX_PIECE_LENGTH`].
    #[error("piece length {0} is out of range (1 byte ..= 1 GiB)")]
    PieceLength(u64),
    /// The content size overflows a u64.
    #[error("total content size overflows 64 bits")]
    TotalOverflow,
    /// More than [`MAX_PIECES`] pieces.
    #[error("{pieces} pieces is more than the limit of {MAX_PIECES}; use a bigger piece size")]
    TooManyPieces {
        /// Pieces the content would need.
        pieces: u64,
    },
}

/// File offsets and piece arithmetic for an ordered list of file lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceLayout {
    piece_length: u64,
    /// `starts[i]` = offset of file i in the content; `starts[len]` = total.
    starts: Vec<u64>,
}

impl PieceLayout {
    /// Builds the layout of files with the given lengths, in content order.
    pub fn new(
        lengths: impl IntoIterator<Item = u64>,
        piece_length: u64,
    ) -> Result<PieceLayout, LayoutError> {
        if piece_length == 0 || piece_length > MAX_PIECE_LENGTH {
            return Err(LayoutError::PieceLength(piece_length));
        }
        let mut starts = vec![0u64];
        let mut total = 0u64;
        for len in lengths {
            total = total.checked_add(len).ok_or(LayoutError::TotalOverflow)?;
            starts.push(total);
        }
        let pieces = total.div_ceil(piece_length);
        if pieces > MAX_PIECES {
            return Err(LayoutError::TooManyPieces { pieces });
        }
        Ok(PieceLayout {
            piece_length,
            starts,
        })
    }

    /// Nominal piece length.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Total content bytes.
    pub fn total_length(&self) -> u64 {
        *self.starts.last().expect("starts is never empty")
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.starts.len() - 1
    }

    /// Length of file `f`.
    pub fn file_length(&self, f: usize) -> u64 {
        self.starts[f + 1] - self.starts[f]
    }

    /// Byte range of file `f` in the content.
    pub fn file_range(&self, f: usize) -> Range<u64> {
        self.starts[f]..self.starts[f + 1]
    }

    /// Number of pieces (the last one may be short).
    pub fn piece_count(&self) -> usize {
        // Bounded by MAX_PIECES in `new`, so it fits a usize.
        self.total_length().div_ceil(self.piece_length) as usize
    }

    /// Byte range of piece `p` in the content.
    pub fn piece_range(&self, p: usize) -> Range<u64> {
        let start = p as u64 * self.piece_length;
        start..(start + self.piece_length).min(self.total_length())
    }

    /// Files that overlap piece `p`: a contiguous range, so an empty file lying strictly
    /// inside the piece is included; one at the piece's edge is not.
    pub fn files_of_piece(&self, p: usize) -> Range<usize> {
        let r = self.piece_range(p);
        self.files_overlapping(r)
    }

    /// Files overlapping the content range `r` (see [`PieceLayout::files_of_piece`]).
    pub fn files_overlapping(&self, r: Range<u64>) -> Range<usize> {
        if r.start >= r.end {
            return 0..0;
        }
        // First file whose end is past r.start, skipping empty files.
        let first = self.starts[1..].partition_point(|&end| end <= r.start);
        // Files starting before r.end.
        let last = self.starts[..self.file_count()].partition_point(|&s| s < r.end);
        first..last.max(first)
    }

    /// Pieces holding at least one byte of file `f` (empty for an empty file).
    pub fn pieces_of_file(&self, f: usize) -> Range<usize> {
        self.pieces_overlapping(self.file_range(f))
    }

    /// Pieces holding at least one byte of the content range `r`.
    pub fn pieces_overlapping(&self, r: Range<u64>) -> Range<usize> {
        if r.start >= r.end {
            return 0..0;
        }
        let first = r.start / self.piece_length;
        let last = r.end.div_ceil(self.piece_length);
        first as usize..last as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_span_files_and_skip_empty_ones() {
        // files: 10, 0, 5, 20 ; pieces of 8 → 35 bytes, 5 pieces (last 3 bytes)
        let l = PieceLayout::new([10, 0, 5, 20], 8).unwrap();
        assert_eq!(l.total_length(), 35);
        assert_eq!(l.piece_count(), 5);
        assert_eq!(l.piece_range(4), 32..35);
        assert_eq!(l.files_of_piece(0), 0..1);
        // bytes 8..16: files 0 (..10), 1 (empty, at 10), 2 (10..15), 3 (15..)
        assert_eq!(l.files_of_piece(1), 0..4);
        assert_eq!(l.files_of_piece(4), 3..4);
        assert_eq!(l.pieces_of_file(0), 0..2);
        assert_eq!(l.pieces_of_file(1), 0..0);
        assert_eq!(l.pieces_of_file(2), 1..2);
        assert_eq!(l.pieces_of_file(3), 1..5);
    }

    #[test]
    fn brute_force_agrees() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..200 {
            let lens: Vec<u64> = (0..rng.usize(0..8)).map(|_| rng.u64(0..30)).collect();
            let pl = rng.u64(1..17);
            let l = PieceLayout::new(lens.clone(), pl).unwrap();
            for p in 0..l.piece_count() {
                let r = l.piece_range(p);
                let want: Vec<usize> = (0..lens.len())
                    .filter(|&f| {
                        let fr = l.file_range(f);
                        fr.start < r.end && r.start < fr.end
                    })
                    .collect();
                let got: Vec<usize> = l.files_of_piece(p).collect();
                assert_eq!(got, want, "{lens:?} pl {pl} piece {p}");
            }
        }
    }

    #[test]
    fn rejects_bad_piece_lengths_and_huge_counts() {
        assert_eq!(PieceLayout::new([1], 0), Err(LayoutError::PieceLength(0)));
        assert!(PieceLayout::new([1], MAX_PIECE_LENGTH + 1).is_err());
        assert!(matches!(
            PieceLayout::new([MAX_PIECES * 2], 1),
            Err(LayoutError::TooManyPieces { .. })
        ));
        assert_eq!(
            PieceLayout::new([u64::MAX, 1], 1 << 20),
            Err(LayoutError::TotalOverflow)
        );
    }
}
