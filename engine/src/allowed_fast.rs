//! The BEP 6 allowed-fast set: pieces a peer may request from us even while we choke it.
//!
//! BEP 6 defines a canonical set so both sides agree without negotiation: hash the peer's IPv4 address
//! with its last octet zeroed, followed by the info-hash, with SHA-1; read 5 big-endian u32s out of each
//! digest, each modulo the piece count, skipping duplicates, re-hashing the digest until `k` pieces are
//! chosen. Giving a new peer a few pieces this way lets it start trading before the next rechoke.
//!
//! BEP 6 specifies IPv4 only; for IPv6 peers no set is generated.

use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// How many allowed-fast pieces cyclone offers (libtorrent's default `allowed_fast_set_size` is 5;
/// BEP 6's example uses 7 and 9).
pub const DEFAULT_ALLOWED_FAST_SET_SIZE: usize = 5;
/// Upper bound on a set we generate or accept from a peer.
pub const MAX_ALLOWED_FAST_SET_SIZE: usize = 32;

/// The canonical allowed-fast set of `k` pieces for a peer at `ip` in a torrent of `piece_count` pieces.
/// `k` is capped at [`MAX_ALLOWED_FAST_SET_SIZE`] and at `piece_count`.
pub fn allowed_fast_set(ip: IpAddr, info_hash: &[u8; 20], piece_count: u32, k: usize) -> Vec<u32> {
    let IpAddr::V4(v4) = ip else {
        return Vec::new();
    };
    let k = k.min(MAX_ALLOWED_FAST_SET_SIZE).min(piece_count as usize);
    let mut set = Vec::with_capacity(k);
    let masked = u32::from(v4) & 0xffff_ff00;
    let mut x: Vec<u8> = masked.to_be_bytes().to_vec();
    x.extend_from_slice(info_hash);
    while set.len() < k {
        x = Sha1::digest(&x).to_vec();
        for chunk in x.chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let index = y % piece_count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The example in BEP 6 itself.
    #[test]
    fn bep6_vectors() {
        let ip = IpAddr::V4(Ipv4Addr::new(80, 4, 4, 200));
        let hash = [0xaa; 20];
        assert_eq!(
            allowed_fast_set(ip, &hash, 1313, 7),
            vec![1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(ip, &hash, 1313, 9),
            vec![1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
        // The last octet does not matter.
        let same_net = IpAddr::V4(Ipv4Addr::new(80, 4, 4, 1));
        assert_eq!(
            allowed_fast_set(same_net, &hash, 1313, 7),
            allowed_fast_set(ip, &hash, 1313, 7)
        );
    }

    #[test]
    fn small_torrents_and_ipv6_terminate() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut s = allowed_fast_set(ip, &[1; 20], 3, 10);
        s.sort();
        assert_eq!(s, vec![0, 1, 2]);
        assert_eq!(allowed_fast_set(ip, &[1; 20], 0, 5), Vec::<u32>::new());
        assert!(allowed_fast_set("::1".parse().unwrap(), &[1; 20], 100, 5).is_empty());
        assert_eq!(
            allowed_fast_set(ip, &[1; 20], 10_000, 1000).len(),
            MAX_ALLOWED_FAST_SET_SIZE
        );
    }
}
