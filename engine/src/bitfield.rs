//! The have-bitfield: which pieces a peer (or we) hold.
//!
//! Bit order is MSB-first as on the wire (BEP 3): piece 0 is bit 7 of byte 0. A bitfield received from
//! a peer is validated the way BitTornado's `Bitfield` does it: the byte length must be exactly
//! `ceil(len / 8)` and the spare bits after the last piece must be zero. Anything else is a protocol
//! violation and the connection is closed by the caller.
//!
//! The number of set bits is kept up to date so "is this peer a seed?" and "how much do we have?" are
//! O(1) on every HAVE.

use thiserror::Error;

/// Upper bound on the number of pieces the engine accepts for one torrent.
///
/// 2^22 pieces is a 512 KiB bitfield and 80 MiB of piece hashes in the metainfo; real torrents stay far
/// below (libtorrent's own load limit is about 2.1 M pieces). Every per-piece array in the engine is
/// bounded by this.
pub const MAX_PIECE_COUNT: u32 = 1 << 22;

/// Why bytes could not become a [`Bitfield`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BitfieldError {
    /// The byte length is not `ceil(piece_count / 8)`.
    #[error("bitfield has {got} bytes, expected {expected} for {piece_count} pieces")]
    WrongLength {
        got: usize,
        expected: usize,
        piece_count: u32,
    },
    /// A bit after the last piece is set.
    #[error("bitfield has non-zero spare bits after piece {piece_count}")]
    SpareBitsSet { piece_count: u32 },
    /// More pieces than [`MAX_PIECE_COUNT`].
    #[error("bitfield of {piece_count} pieces exceeds the limit of {MAX_PIECE_COUNT}")]
    TooManyPieces { piece_count: u32 },
}

/// A fixed-length set of piece indices, MSB-first.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

/// Byte length of the wire form of a bitfield of `len` pieces.
pub fn byte_len(len: u32) -> usize {
    (len as usize).div_ceil(8)
}

impl Bitfield {
    /// An all-zero bitfield of `len` pieces.
    pub fn new(len: u32) -> Result<Self, BitfieldError> {
        if len > MAX_PIECE_COUNT {
            return Err(BitfieldError::TooManyPieces { piece_count: len });
        }
        Ok(Bitfield {
            bytes: vec![0; byte_len(len)],
            len,
            ones: 0,
        })
    }

    /// An all-one bitfield of `len` pieces (a seed; BEP 6 HAVE_ALL).
    pub fn full(len: u32) -> Result<Self, BitfieldError> {
        let mut b = Self::new(len)?;
        b.bytes.fill(0xff);
        b.clear_spare_bits();
        b.ones = len;
        Ok(b)
    }

    /// Validates the wire form received from a peer.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Result<Self, BitfieldError> {
        if len > MAX_PIECE_COUNT {
            return Err(BitfieldError::TooManyPieces { piece_count: len });
        }
        let expected = byte_len(len);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
                piece_count: len,
            });
        }
        if let Some(&last) = bytes.last() {
            if last & spare_mask(len) != 0 {
                return Err(BitfieldError::SpareBitsSet { piece_count: len });
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// Number of pieces (bits).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True for a zero-piece bitfield.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    /// Number of clear bits (BitTornado's `numfalse`).
    pub fn count_zeros(&self) -> u32 {
        self.len - self.ones
    }

    /// Every piece is set (a seed). A zero-length bitfield is complete.
    pub fn is_complete(&self) -> bool {
        self.ones == self.len
    }

    /// Whether piece `index` is set; out-of-range indices are not set.
    pub fn get(&self, index: u32) -> bool {
        if index >= self.len {
            return false;
        }
        self.bytes[(index / 8) as usize] & bit(index) != 0
    }

    /// Sets piece `index`; returns true if it was newly set. Out of range is a programmer error.
    pub fn set(&mut self, index: u32) -> bool {
        assert!(index < self.len, "bitfield index {index} >= {}", self.len);
        let byte = &mut self.bytes[(index / 8) as usize];
        if *byte & bit(index) != 0 {
            return false;
        }
        *byte |= bit(index);
        self.ones += 1;
        true
    }

    /// Clears piece `index`; returns true if it was set. Out of range is a programmer error.
    pub fn clear(&mut self, index: u32) -> bool {
        assert!(index < self.len, "bitfield index {index} >= {}", self.len);
        let byte = &mut self.bytes[(index / 8) as usize];
        if *byte & bit(index) == 0 {
            return false;
        }
        *byte &= !bit(index);
        self.ones -= 1;
        true
    }

    /// The wire form (spare bits always zero).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Indices of set bits, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b != 0)
            .flat_map(|(i, &b)| {
                (0..8u32)
                    .filter(move |k| b & (0x80 >> k) != 0)
                    .map(move |k| i as u32 * 8 + k)
            })
    }

    /// BitTornado's `breakup_seed_bitfield` (`get_have_list_cloaked`): a seed's bitfield with 2–4
    /// random pieces among the first 32 cleared (fewer if the torrent is smaller), and those pieces, to
    /// be sent as HAVE messages right after. Makes a seed look like a peer to traffic shapers that
    /// throttle seeds. Call it only on a complete bitfield.
    pub fn cloaked(&self, rng: &mut fastrand::Rng) -> (Bitfield, Vec<u32>) {
        assert!(self.is_complete(), "only a seed's bitfield is cloaked");
        let n = rng.usize(2..5).min(self.len as usize);
        let range = self.len.min(32);
        let mut out = self.clone();
        let mut unhaves = Vec::with_capacity(n);
        while unhaves.len() < n {
            let piece = rng.u32(0..range);
            if !unhaves.contains(&piece) {
                unhaves.push(piece);
                out.clear(piece);
            }
        }
        (out, unhaves)
    }

    fn clear_spare_bits(&mut self) {
        let mask = spare_mask(self.len);
        if let Some(last) = self.bytes.last_mut() {
            *last &= !mask;
        }
    }
}

fn bit(index: u32) -> u8 {
    0x80 >> (index % 8)
}

/// Mask of the spare (unused) bits in the last byte of a bitfield of `len` pieces.
fn spare_mask(len: u32) -> u8 {
    match len % 8 {
        0 => 0,
        used => 0xffu8 >> used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BitTornado's `bitfield.test_bitfield` rejections.
    #[test]
    fn bittornado_rejections() {
        let bad: &[(u32, &[u8])] = &[
            (7, b"ab"),
            (9, b"abc"),
            (0, b"a"),
            (1, b""),
            (7, b""),
            (8, b""),
            (9, b"a"),
            (7, &[0x01]),
            (9, &[0x00, 0x40]),
        ];
        for &(len, bytes) in bad {
            assert!(
                Bitfield::from_bytes(len, bytes).is_err(),
                "accepted len {len} bytes {bytes:?}"
            );
        }
        assert_eq!(
            Bitfield::from_bytes(7, &[0x01]),
            Err(BitfieldError::SpareBitsSet { piece_count: 7 })
        );
        assert_eq!(
            Bitfield::from_bytes(9, b"a"),
            Err(BitfieldError::WrongLength {
                got: 1,
                expected: 2,
                piece_count: 9
            })
        );
    }

    /// BitTornado's `bitfield.test_bitfield` round trips and counts.
    #[test]
    fn bittornado_round_trips() {
        let good: &[(u32, &[u8])] = &[
            (0, b""),
            (1, &[0x80]),
            (7, &[0x02]),
            (8, &[0xff]),
            (9, &[0x00, 0x80]),
        ];
        for &(len, bytes) in good {
            let b = Bitfield::from_bytes(len, bytes).unwrap();
            assert_eq!(b.as_bytes(), bytes);
        }
        let mut x = Bitfield::new(1).unwrap();
        assert_eq!(x.count_zeros(), 1);
        assert!(x.set(0));
        assert_eq!(x.count_zeros(), 0);
        assert!(!x.set(0));
        assert_eq!(x.count_zeros(), 0);
        assert_eq!(x.as_bytes(), &[0x80]);

        let mut x = Bitfield::new(7).unwrap();
        assert_eq!(x.len(), 7);
        x.set(6);
        assert_eq!(x.count_zeros(), 6);
        assert_eq!(x.as_bytes(), &[0x02]);

        let mut x = Bitfield::new(8).unwrap();
        x.set(7);
        assert_eq!(x.as_bytes(), &[0x01]);

        let mut x = Bitfield::new(9).unwrap();
        x.set(8);
        assert_eq!(x.count_zeros(), 8);
        assert_eq!(x.as_bytes(), &[0x00, 0x80]);

        let x = Bitfield::from_bytes(8, &[0xc4]).unwrap();
        assert_eq!(x.len(), 8);
        assert_eq!(x.count_zeros(), 5);
        assert_eq!(x.as_bytes(), &[0xc4]);
        assert_eq!(x.iter_ones().collect::<Vec<_>>(), vec![0, 1, 5]);
    }

    #[test]
    fn full_has_no_spare_bits_and_is_complete() {
        for len in [0u32, 1, 7, 8, 9, 15, 16, 17] {
            let b = Bitfield::full(len).unwrap();
            assert!(b.is_complete());
            assert_eq!(b.count_ones(), len);
            assert!(Bitfield::from_bytes(len, b.as_bytes()).is_ok());
            assert_eq!(b.iter_ones().count() as u32, len);
        }
    }

    #[test]
    fn clear_and_out_of_range_get() {
        let mut b = Bitfield::full(10).unwrap();
        assert!(b.clear(3));
        assert!(!b.clear(3));
        assert!(!b.get(3));
        assert!(b.get(9));
        assert!(!b.get(10));
        assert!(!b.get(u32::MAX));
        assert_eq!(b.count_ones(), 9);
        assert!(!b.is_complete());
    }

    #[test]
    fn cloaked_seed_bitfield() {
        let mut rng = fastrand::Rng::with_seed(5);
        for len in [1u32, 2, 3, 31, 32, 1000] {
            let seed = Bitfield::full(len).unwrap();
            for _ in 0..50 {
                let (b, haves) = seed.cloaked(&mut rng);
                assert!((2..=4).contains(&haves.len()) || haves.len() == len as usize);
                assert_eq!(b.count_zeros() as usize, haves.len());
                for &h in &haves {
                    assert!(h < 32 && !b.get(h));
                }
                assert!(Bitfield::from_bytes(len, b.as_bytes()).is_ok());
            }
        }
    }

    #[test]
    fn limit_on_piece_count() {
        assert!(Bitfield::new(MAX_PIECE_COUNT).is_ok());
        assert_eq!(
            Bitfield::new(MAX_PIECE_COUNT + 1),
            Err(BitfieldError::TooManyPieces {
                piece_count: MAX_PIECE_COUNT + 1
            })
        );
        assert!(Bitfield::from_bytes(MAX_PIECE_COUNT + 1, &[]).is_err());
    }

    #[test]
    #[should_panic]
    fn set_out_of_range_is_a_programmer_error() {
        Bitfield::new(3).unwrap().set(3);
    }
}
