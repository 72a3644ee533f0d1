//! Which shard owns a key.

/// The shard (0..shards) that owns `key`.
///
/// Keys are info-hashes (SHA-1 output, uniformly distributed), so the first 8 bytes read as a
/// little-endian integer are as good as any hash; shorter keys are zero-padded. Uses the
/// multiply-shift range reduction (Lemire) instead of `%` so every shard count is cheap and fair.
pub fn shard_for_key(key: &[u8], shards: usize) -> usize {
    assert!(shards > 0, "shard_for_key needs at least one shard");
    let mut word = [0u8; 8];
    let n = key.len().min(8);
    word[..n].copy_from_slice(&key[..n]);
    let x = u64::from_le_bytes(word);
    ((u128::from(x) * shards as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_maps_into_range_and_spreads() {
        let mut counts = [0usize; 3];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..30_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let s = shard_for_key(&state.to_le_bytes(), 3);
            counts[s] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn one_shard_and_short_keys() {
        assert_eq!(shard_for_key(b"", 1), 0);
        assert_eq!(shard_for_key(b"\xff", 1), 0);
        assert_eq!(shard_for_key(&[0xff; 20], 4), 3);
        assert_eq!(shard_for_key(&[0; 20], 4), 0);
    }
}
