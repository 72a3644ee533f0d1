//! A fast hasher for the swarm maps. Keys are info-hashes (SHA-1 output) and peer ids; SipHash's
//! flood resistance is not needed for info-hashes, but peer ids are client-chosen, so every byte
//! is mixed (FxHash-style multiply-rotate over 8-byte words) rather than trusting a prefix.

use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style hasher over whole words.
#[derive(Default, Clone, Copy)]
pub struct WordHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl WordHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche so hashbrown's top-7-bit tags are well mixed.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// `BuildHasher` for [`WordHasher`].
pub type BuildWordHasher = BuildHasherDefault<WordHasher>;
/// A `HashMap` using [`WordHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildWordHasher>;
