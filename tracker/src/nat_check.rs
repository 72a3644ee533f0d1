//! bttrack's NAT check (§3.7): connect back to a peer and check that it answers the BitTorrent
//! handshake for the torrent with the peer id it announced. Peers that fail are not listed.
//!
//! The plaintext check only: we send `\x13BitTorrent protocol`, 8 zero reserved bytes and the
//! info-hash (no peer id, like bttrack), and expect the peer's header, reserved bytes, the same
//! info-hash and the announced peer id. Peers that require encryption (MSE) would refuse a
//! plaintext handshake; bttrack does an MSE handshake for them, we do not yet (see the report).

use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::swarm::NatJob;

/// Time allowed for the whole connect-back.
pub const NAT_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// The handshake the tracker sends.
pub fn tracker_handshake(info_hash: &[u8; 20]) -> [u8; 48] {
    let mut hs = [0u8; 48];
    hs[0] = 19;
    hs[1..20].copy_from_slice(b"BitTorrent protocol");
    hs[28..48].copy_from_slice(info_hash);
    hs
}

/// Whether `reply` (the peer's first 68 bytes) is a handshake for `job`.
pub fn reply_matches(reply: &[u8; 68], job: &NatJob) -> bool {
    reply[0] == 19
        && &reply[1..20] == b"BitTorrent protocol"
        && reply[28..48] == job.info_hash
        && reply[48..68] == job.peer_id
}

/// Runs one connect-back (on the calling executor; never blocks it).
pub async fn check(job: &NatJob) -> bool {
    let addr = SocketAddr::new(job.ip, job.port);
    let attempt = async {
        let mut s = glommio::net::TcpStream::connect_timeout(addr, NAT_CHECK_TIMEOUT).await?;
        s.set_read_timeout(Some(NAT_CHECK_TIMEOUT))?;
        s.set_write_timeout(Some(NAT_CHECK_TIMEOUT))?;
        s.write_all(&tracker_handshake(&job.info_hash)).await?;
        let mut reply = [0u8; 68];
        s.read_exact(&mut reply).await?;
        Ok::<bool, std::io::Error>(reply_matches(&reply, job))
    };
    glommio::timer::timeout(NAT_CHECK_TIMEOUT * 2, async {
        attempt.await.map_err(glommio::GlommioError::from)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_layout_and_match() {
        let job = NatJob {
            info_hash: [7; 20],
            peer_id: [9; 20],
            ip: "127.0.0.1".parse().unwrap(),
            port: 1,
        };
        let hs = tracker_handshake(&job.info_hash);
        assert_eq!(&hs[..20], b"\x13BitTorrent protocol");
        assert_eq!(hs[20..28], [0; 8]);
        let mut reply = [0u8; 68];
        reply[..48].copy_from_slice(&hs);
        reply[48..].copy_from_slice(&job.peer_id);
        assert!(reply_matches(&reply, &job));
        reply[67] ^= 1;
        assert!(!reply_matches(&reply, &job), "another peer id is a failure");
    }
}
