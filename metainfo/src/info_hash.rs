//! The info-hash: SHA-1 over the raw bytes of a torrent's `info` dictionary.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

/// A BitTorrent v1 info-hash. `Display` prints 40 lowercase hex digits, as every tool does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// SHA-1 of `raw_info`, which must be the exact bytes of the `info` dictionary as found in the file
    /// ([`crate::bencode::Value::raw`]), never a re-encoding.
    pub fn of_raw_info(raw_info: &[u8]) -> InfoHash {
        InfoHash(Sha1::digest(raw_info).into())
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<InfoHash, InfoHashParseError> {
        let bytes = s.as_bytes();
        if bytes.len() != 40 {
            return Err(InfoHashParseError::Length(bytes.len()));
        }
        let mut out = [0u8; 20];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(InfoHashParseError::NotHex)?;
            let lo = hex_value(pair[1]).ok_or(InfoHashParseError::NotHex)?;
            out[i] = hi << 4 | lo;
        }
        Ok(InfoHash(out))
    }

    /// Parses the base32 form used by some magnet links (32 characters, RFC 4648 alphabet, either case).
    pub fn from_base32(s: &str) -> Result<InfoHash, InfoHashParseError> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return Err(InfoHashParseError::Length(bytes.len()));
        }
        let mut out = [0u8; 20];
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        let mut n = 0usize;
        for &c in bytes {
            let v = match c.to_ascii_uppercase() {
                c @ b'A'..=b'Z' => c - b'A',
                c @ b'2'..=b'7' => c - b'2' + 26,
                _ => return Err(InfoHashParseError::NotBase32),
            };
            acc = acc << 5 | u64::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out[n] = (acc >> bits) as u8;
                n += 1;
            }
        }
        debug_assert_eq!(n, 20);
        Ok(InfoHash(out))
    }

    /// Lowercase hex, as a `String`.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl FromStr for InfoHash {
    type Err = InfoHashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InfoHash::from_hex(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoHashParseError {
    #[error("an info-hash has 40 hex digits (or 32 base32 characters), not {0}")]
    Length(usize),
    #[error("an info-hash must be hex digits")]
    NotHex,
    #[error("invalid base32 character in info-hash")]
    NotBase32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_digest() {
        // SHA-1("abc") is the FIPS 180 test vector.
        let h = InfoHash::of_raw_info(b"abc");
        assert_eq!(h.to_string(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            InfoHash::from_hex("A9993E364706816ABA3E25717850C26C9CD0D89D").unwrap(),
            h
        );
        assert_eq!(
            InfoHash::from_hex("abc"),
            Err(InfoHashParseError::Length(3))
        );
        assert_eq!(
            InfoHash::from_hex("g9993e364706816aba3e25717850c26c9cd0d89d"),
            Err(InfoHashParseError::NotHex)
        );
    }

    #[test]
    fn base32_matches_hex() {
        let h = InfoHash::from_hex("a9993e364706816aba3e25717850c26c9cd0d89d").unwrap();
        // RFC 4648 base32 of those 20 bytes.
        assert_eq!(
            InfoHash::from_base32("VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5").unwrap(),
            h
        );
        assert_eq!(
            InfoHash::from_base32("vgmt4nsha2awvor6evyxqugcnsonbwe5").unwrap(),
            h
        );
        assert_eq!(
            InfoHash::from_base32("VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE1"),
            Err(InfoHashParseError::NotBase32)
        );
    }
}
