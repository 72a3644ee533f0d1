//! Multi-buffer SHA-1: many independent messages (torrent pieces) hashed in lock-step.
//!
//! Why: on this class of CPU one SHA-1 stream is bound by the latency of `sha1rnds4`
//! (about 6 cycles, issued every 2), so the best single-stream code (the `sha1` crate,
//! OpenSSL) tops out near 1.67 GB/s per core. Pieces are independent, so interleaving
//! the rounds of 4 messages fills the pipeline and reaches about 4 GB/s per core.
//!
//! The lane scheduler keeps up to 4 messages in flight: a message that finishes is
//! replaced by the next one, so unequal lengths (the short last piece) cost little.
//! When the CPU lacks SHA-NI (checked at run time) every message goes through the
//! portable `sha1` crate instead; the results are identical.

/// A SHA-1 digest.
pub type Digest = [u8; 20];

/// The implementation that [`hash_pieces`] uses on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// x86-64 SHA extensions, up to 4 messages interleaved.
    ShaNi,
    /// The `sha1` crate, one message at a time.
    Portable,
}

impl Backend {
    /// The fastest backend this CPU supports (checked once per call, the check is cached by std).
    pub fn detect() -> Backend {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse2")
                && std::arch::is_x86_feature_detected!("ssse3")
                && std::arch::is_x86_feature_detected!("sse4.1")
            {
                return Backend::ShaNi;
            }
        }
        Backend::Portable
    }
}

/// SHA-1 of one message (single stream; used for info-hashes and odd pieces).
pub fn sha1(data: &[u8]) -> Digest {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

/// Hashes every message of `data` independently: `result[i] = sha1(data[i])`.
pub fn hash_pieces(data: &[&[u8]]) -> Vec<Digest> {
    let mut out = vec![[0u8; 20]; data.len()];
    hash_pieces_into(Backend::detect(), data, &mut out);
    out
}

/// Hashes consecutive `piece_len`-byte pieces of `buf` (the last one may be shorter)
/// into `out`, which must hold exactly `ceil(buf.len() / piece_len)` digests.
///
/// # Panics
/// If `piece_len` is 0 or `out` has the wrong length (programmer errors).
pub fn hash_chunks_into(buf: &[u8], piece_len: usize, out: &mut [Digest]) {
    assert!(piece_len > 0, "piece length must be positive");
    assert_eq!(out.len(), buf.len().div_ceil(piece_len), "digest slots");
    let pieces: Vec<&[u8]> = buf.chunks(piece_len).collect();
    hash_pieces_into(Backend::detect(), &pieces, out);
}

/// Hashes `data[i]` into `out[i]` with the given backend.
///
/// A caller may pick [`Backend::Portable`] explicitly (tests compare both); asking for
/// [`Backend::ShaNi`] on a CPU without it falls back to the portable code.
///
/// # Panics
/// If `out.len() != data.len()`.
pub fn hash_pieces_into(backend: Backend, data: &[&[u8]], out: &mut [Digest]) {
    assert_eq!(data.len(), out.len(), "one digest slot per message");
    #[cfg(target_arch = "x86_64")]
    {
        if backend == Backend::ShaNi && Backend::detect() == Backend::ShaNi {
            // SAFETY: the CPU supports sha, sse2, ssse3 and sse4.1 (checked just above),
            // which is every target feature `shani::hash_many` is compiled with.
            unsafe { shani::hash_many(data, out) };
            return;
        }
    }
    let _ = backend;
    for (msg, slot) in data.iter().zip(out.iter_mut()) {
        *slot = sha1(msg);
    }
}

/// Initial SHA-1 state (FIPS 180-4 §5.3.1).
const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// A SHA-1 chaining state, for hashing long messages piece by piece ([`compress4`], [`finish`]).
pub type State = [u32; 5];

/// The state before any block.
pub const INITIAL_STATE: State = H0;

/// Advances four independent messages by the same number of whole 64-byte blocks.
///
/// This is the streaming form of the kernel: a caller can feed four pieces a slice at a
/// time (say 64 KiB each, so the data stays in L2 cache) and finish each with [`finish`].
///
/// # Panics
/// If the four slices differ in length or are not a multiple of 64 bytes.
pub fn compress4(backend: Backend, states: &mut [State; 4], data: [&[u8]; 4]) {
    let len = data[0].len();
    assert!(len.is_multiple_of(64), "whole blocks only");
    assert!(data.iter().all(|d| d.len() == len), "equal lengths");
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if backend == Backend::ShaNi && Backend::detect() == Backend::ShaNi {
            let ptrs = data.map(|d| d.as_ptr());
            // SAFETY: each pointer is valid for `len` bytes = `len / 64` blocks (checked
            // above), and the CPU has every feature `compress` is compiled with.
            unsafe { shani::compress4(states, ptrs, len / 64) };
            return;
        }
    }
    let _ = backend;
    for (state, d) in states.iter_mut().zip(data) {
        let (blocks, rest) = d.as_chunks::<64>();
        debug_assert!(rest.is_empty());
        sha1::block_api::compress(state, blocks);
    }
}

/// Finishes a message whose first `total_len - tail.len()` bytes (a multiple of 64) are
/// already compressed into `state`; `tail` holds the remaining bytes.
///
/// # Panics
/// If `tail` is 64 bytes or longer, or `total_len` does not leave `tail` on a block boundary.
pub fn finish(mut state: State, tail: &[u8], total_len: u64) -> Digest {
    assert!(tail.len() < 64, "tail shorter than a block");
    assert_eq!(
        (total_len - tail.len() as u64) % 64,
        0,
        "tail starts on a block boundary"
    );
    let mut pad = [[0u8; 64]; 2];
    let flat = pad.as_flattened_mut();
    flat[..tail.len()].copy_from_slice(tail);
    flat[tail.len()] = 0x80;
    let blocks = if tail.len() < 56 { 1 } else { 2 };
    flat[blocks * 64 - 8..blocks * 64].copy_from_slice(&total_len.wrapping_mul(8).to_be_bytes());
    sha1::block_api::compress(&mut state, &pad[..blocks]);
    let mut d = [0u8; 20];
    for (chunk, word) in d.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    d
}

/// One message being hashed: its whole 64-byte blocks are read in place, the padded
/// tail (1 or 2 blocks) lives in `tail`.
#[cfg(any(target_arch = "x86_64", test))]
struct Lane<'a> {
    index: usize,
    data: &'a [u8],
    full_blocks: usize,
    total_blocks: usize,
    done_blocks: usize,
    tail: [u8; 128],
    state: [u32; 5],
}

#[cfg(any(target_arch = "x86_64", test))]
impl<'a> Lane<'a> {
    fn new(index: usize, data: &'a [u8]) -> Lane<'a> {
        let full_blocks = data.len() / 64;
        let rest = &data[full_blocks * 64..];
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        // 8 bytes of length must fit after the 0x80 byte in the same block.
        let tail_blocks = if rest.len() < 56 { 1 } else { 2 };
        let bits = (data.len() as u64).wrapping_mul(8);
        tail[tail_blocks * 64 - 8..tail_blocks * 64].copy_from_slice(&bits.to_be_bytes());
        Lane {
            index,
            data,
            full_blocks,
            total_blocks: full_blocks + tail_blocks,
            done_blocks: 0,
            tail,
            state: H0,
        }
    }

    /// Pointer to the next block and how many blocks follow it contiguously.
    fn run(&self) -> (*const u8, usize) {
        if self.done_blocks < self.full_blocks {
            // The whole run lies inside `data` (done_blocks < full_blocks <= len/64).
            (
                self.data[self.done_blocks * 64..].as_ptr(),
                self.full_blocks - self.done_blocks,
            )
        } else {
            let k = self.done_blocks - self.full_blocks;
            (
                self.tail[k * 64..].as_ptr(),
                self.total_blocks - self.done_blocks,
            )
        }
    }

    fn finished(&self) -> bool {
        self.done_blocks == self.total_blocks
    }

    fn digest(&self) -> Digest {
        let mut d = [0u8; 20];
        for (chunk, word) in d.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        d
    }
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use super::{Digest, Lane, State};
    use core::arch::x86_64::*;

    /// Four lanes, same block count each.
    ///
    /// # Safety
    /// Each `ptrs[l]` must be valid for reads of `blocks * 64` bytes, and the CPU must
    /// support `sha`, `sse2`, `ssse3` and `sse4.1`.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress4(states: &mut [State; 4], ptrs: [*const u8; 4], blocks: usize) {
        // SAFETY: forwarded from our caller's contract.
        unsafe { compress::<4>(states, ptrs, blocks) }
    }

    /// Hashes every message with up to 4 lanes in flight.
    ///
    /// # Safety
    /// The CPU must support the `sha`, `sse2`, `ssse3` and `sse4.1` features.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn hash_many(data: &[&[u8]], out: &mut [Digest]) {
        let mut next = 0usize;
        let mut active: Vec<Lane<'_>> = Vec::with_capacity(4);
        loop {
            while active.len() < 4 && next < data.len() {
                active.push(Lane::new(next, data[next]));
                next += 1;
            }
            if active.is_empty() {
                return;
            }
            let lanes = match active.len() {
                4 => 4,
                2 | 3 => 2,
                _ => 1,
            };
            let mut ptrs = [core::ptr::null::<u8>(); 4];
            let mut blocks = usize::MAX;
            for (p, lane) in ptrs.iter_mut().zip(&active[..lanes]) {
                let (ptr, n) = lane.run();
                *p = ptr;
                blocks = blocks.min(n);
            }
            debug_assert!(blocks > 0 && blocks != usize::MAX);
            // SAFETY: for each used lane, `ptr` points at `n >= blocks` readable 64-byte
            // blocks (inside `data` or the lane's own tail buffer, both alive and not
            // mutated during the call), and the CPU features are guaranteed by our caller.
            unsafe {
                match lanes {
                    4 => {
                        let mut st = [
                            active[0].state,
                            active[1].state,
                            active[2].state,
                            active[3].state,
                        ];
                        compress::<4>(&mut st, [ptrs[0], ptrs[1], ptrs[2], ptrs[3]], blocks);
                        for (lane, s) in active.iter_mut().zip(st) {
                            lane.state = s;
                        }
                    }
                    2 => {
                        let mut st = [active[0].state, active[1].state];
                        compress::<2>(&mut st, [ptrs[0], ptrs[1]], blocks);
                        active[0].state = st[0];
                        active[1].state = st[1];
                    }
                    _ => {
                        let mut st = [active[0].state];
                        compress::<1>(&mut st, [ptrs[0]], blocks);
                        active[0].state = st[0];
                    }
                }
            }
            for lane in &mut active[..lanes] {
                lane.done_blocks += blocks;
            }
            active.retain(|lane| {
                if lane.finished() {
                    out[lane.index] = lane.digest();
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Runs `blocks` SHA-1 compressions on each of `L` independent states, interleaving
    /// the lanes instruction by instruction so their dependency chains overlap.
    ///
    /// Round structure follows Intel's SHA extensions reference code: 20 groups of 4
    /// rounds, message schedule `W[i] = msg2(msg1(W[i-4], W[i-3]) ^ W[i-2], W[i-1])`.
    ///
    /// # Safety
    /// Each `ptrs[l]` must be valid for reads of `blocks * 64` bytes, and the CPU must
    /// support `sha`, `sse2`, `ssse3` and `sse4.1`.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    #[inline]
    unsafe fn compress<const L: usize>(
        states: &mut [[u32; 5]; L],
        ptrs: [*const u8; L],
        blocks: usize,
    ) {
        let mask = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
        let zero = _mm_setzero_si128();
        let mut abcd = [zero; L];
        let mut e0 = [zero; L];
        for l in 0..L {
            let s = states[l];
            abcd[l] = _mm_set_epi32(s[0] as i32, s[1] as i32, s[2] as i32, s[3] as i32);
            e0[l] = _mm_set_epi32(s[4] as i32, 0, 0, 0);
        }
        for b in 0..blocks {
            let abcd_save = abcd;
            let e_save = e0;
            let mut w = [[zero; 4]; L];
            for l in 0..L {
                for (k, wk) in w[l].iter_mut().enumerate() {
                    // SAFETY: b < blocks, so bytes b*64 .. b*64+64 are inside the
                    // caller-guaranteed readable range; loadu has no alignment needs.
                    let m = unsafe { _mm_loadu_si128(ptrs[l].add(b * 64 + k * 16).cast()) };
                    *wk = _mm_shuffle_epi8(m, mask);
                }
            }
            let mut prev = abcd;
            for l in 0..L {
                let e = _mm_add_epi32(e0[l], w[l][0]);
                abcd[l] = _mm_sha1rnds4_epu32::<0>(abcd[l], e);
            }
            macro_rules! group {
                ($i:expr, $f:literal) => {
                    for l in 0..L {
                        if $i >= 4 {
                            let t = _mm_sha1msg1_epu32(w[l][$i % 4], w[l][($i + 1) % 4]);
                            let t = _mm_xor_si128(t, w[l][($i + 2) % 4]);
                            w[l][$i % 4] = _mm_sha1msg2_epu32(t, w[l][($i + 3) % 4]);
                        }
                        let e = _mm_sha1nexte_epu32(prev[l], w[l][$i % 4]);
                        prev[l] = abcd[l];
                        abcd[l] = _mm_sha1rnds4_epu32::<$f>(abcd[l], e);
                    }
                };
            }
            group!(1, 0);
            group!(2, 0);
            group!(3, 0);
            group!(4, 0);
            group!(5, 1);
            group!(6, 1);
            group!(7, 1);
            group!(8, 1);
            group!(9, 1);
            group!(10, 2);
            group!(11, 2);
            group!(12, 2);
            group!(13, 2);
            group!(14, 2);
            group!(15, 3);
            group!(16, 3);
            group!(17, 3);
            group!(18, 3);
            group!(19, 3);
            for l in 0..L {
                e0[l] = _mm_sha1nexte_epu32(prev[l], e_save[l]);
                abcd[l] = _mm_add_epi32(abcd[l], abcd_save[l]);
            }
        }
        for l in 0..L {
            let mut words = [0u32; 4];
            // SAFETY: `words` is 16 writable bytes; storeu has no alignment needs.
            unsafe { _mm_storeu_si128(words.as_mut_ptr().cast(), abcd[l]) };
            // Lane 3 holds A, lane 0 holds D.
            states[l] = [
                words[3],
                words[2],
                words[1],
                words[0],
                _mm_extract_epi32::<3>(e0[l]) as u32,
            ];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[&[u8]]) -> Vec<Digest> {
        data.iter().map(|m| sha1(m)).collect()
    }

    fn random_bytes(rng: &mut fastrand::Rng, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        rng.fill(&mut v);
        v
    }

    #[test]
    fn known_answers() {
        // FIPS 180 examples.
        let msgs: [&[u8]; 3] = [
            b"",
            b"abc",
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        ];
        let want = [
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "a9993e364706816aba3e25717850c26c9cd0d89d",
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
        ];
        for backend in [Backend::ShaNi, Backend::Portable] {
            let mut out = vec![[0u8; 20]; 3];
            hash_pieces_into(backend, &msgs, &mut out);
            for (d, w) in out.iter().zip(want) {
                let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(hex, w, "{backend:?}");
            }
        }
    }

    #[test]
    fn every_length_class_matches_sha1_crate() {
        let mut rng = fastrand::Rng::with_seed(0x5ea1);
        let mut lengths: Vec<usize> = (0..=200).collect();
        lengths.extend([
            255,
            256,
            257,
            1000,
            4095,
            4096,
            4097,
            16384,
            16383,
            65536 + 55,
        ]);
        // Every length in every lane position, with neighbours of other lengths.
        for &len in &lengths {
            for lanes in 1..=9 {
                let msgs: Vec<Vec<u8>> = (0..lanes)
                    .map(|i| {
                        let n = if i % 2 == 0 { len } else { rng.usize(0..300) };
                        random_bytes(&mut rng, n)
                    })
                    .collect();
                let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                let mut out = vec![[0u8; 20]; refs.len()];
                hash_pieces_into(Backend::ShaNi, &refs, &mut out);
                assert_eq!(out, reference(&refs), "len {len}, lanes {lanes}");
            }
        }
    }

    #[test]
    fn unequal_lane_lengths_and_many_blocks() {
        let mut rng = fastrand::Rng::with_seed(42);
        for round in 0..40 {
            let count = rng.usize(0..23);
            let msgs: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let n = match rng.u8(0..4) {
                        0 => rng.usize(0..130),
                        1 => rng.usize(0..5000),
                        2 => 1 << rng.u32(10..17),
                        _ => rng.usize(60_000..140_000),
                    };
                    random_bytes(&mut rng, n)
                })
                .collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            assert_eq!(hash_pieces(&refs), reference(&refs), "round {round}");
        }
    }

    #[test]
    fn chunks_cover_buffer_with_short_tail() {
        let mut rng = fastrand::Rng::with_seed(7);
        let buf = random_bytes(&mut rng, 10 * 1024 + 17);
        for piece in [1usize, 63, 64, 65, 1024, 4096, 20_000] {
            let mut out = vec![[0u8; 20]; buf.len().div_ceil(piece)];
            hash_chunks_into(&buf, piece, &mut out);
            let want: Vec<Digest> = buf.chunks(piece).map(sha1).collect();
            assert_eq!(out, want, "piece {piece}");
        }
    }

    #[test]
    fn streaming_compress4_and_finish_match_one_shot() {
        let mut rng = fastrand::Rng::with_seed(77);
        for len in [
            0usize,
            1,
            55,
            56,
            63,
            64,
            65,
            127,
            128,
            1000,
            65536,
            65536 + 100,
            200_003,
        ] {
            let msgs: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(&mut rng, len)).collect();
            for backend in [Backend::ShaNi, Backend::Portable] {
                for seg in [64usize, 640, 65536] {
                    let mut states = [INITIAL_STATE; 4];
                    let whole = len / 64 * 64;
                    let mut off = 0;
                    while off < whole {
                        let n = seg.min(whole - off);
                        let data = [0, 1, 2, 3].map(|l| &msgs[l][off..off + n]);
                        compress4(backend, &mut states, data);
                        off += n;
                    }
                    for l in 0..4 {
                        let d = finish(states[l], &msgs[l][whole..], len as u64);
                        assert_eq!(d, sha1(&msgs[l]), "len {len} seg {seg} {backend:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn lane_padding_layout() {
        // 55 bytes: one tail block; 56: two (the length no longer fits).
        assert_eq!(Lane::new(0, &[0u8; 55]).total_blocks, 1);
        assert_eq!(Lane::new(0, &[0u8; 56]).total_blocks, 2);
        assert_eq!(Lane::new(0, &[0u8; 64]).total_blocks, 2);
        assert_eq!(Lane::new(0, &[0u8; 119]).total_blocks, 2);
        assert_eq!(Lane::new(0, &[0u8; 120]).total_blocks, 3);
        assert_eq!(Lane::new(0, &[]).state, H0);
    }
}
