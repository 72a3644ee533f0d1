//! The tracker client protocol, without sockets.
//!
//! Why pure: the engine talks to trackers from inside its glommio shards, over raw TCP and UDP sockets, with one
//! timer wheel per core (no per-torrent timers). Everything that decides *what* to send and *how* to read the reply
//! lives here as plain functions and state machines over bytes and an injected clock, so it is unit-tested and fuzzed
//! without a network, and the shard only moves bytes.
//!
//! - [`url`]: tracker URL parsing (`http`, `https`, `udp`) with bounded sizes.
//! - [`http`]: BitTornado's announce query layout, announce and scrape response parsing (BEP 3/23/7/48).
//! - [`http_response`]: a bounded HTTP/1.x response parser (status, headers, Content-Length / chunked / close).
//! - [`udp`]: the BEP 15 codec (connect, announce, scrape, error), BEP 41 URL data, retransmit and connection-id rules.
//! - [`tiers`]: BEP 12 `announce-list` state (shuffle once, move the tracker that answered to the front of its tier).
//! - [`schedule`]: when to announce next (events, interval, `min interval`, back-off, early re-announce).

use std::net::{IpAddr, SocketAddr};

pub mod http;
pub mod http_response;
pub mod schedule;
pub mod tiers;
pub mod udp;
pub mod url;

#[cfg(test)]
mod interop_tests;

/// The `event` of an announce. A periodic announce has none (`Option<Event>::None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Started,
    Completed,
    Stopped,
}

impl Event {
    /// The value of `&event=` in an HTTP announce.
    pub fn http_name(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Completed => "completed",
            Event::Stopped => "stopped",
        }
    }
}

/// The `key` a client sends so a tracker can recognise it across IP changes. BitTornado derives 6 characters per
/// tracker URL and keeps them for the life of the process; cyclone keeps one random 32-bit value per tracker, which
/// is also what BEP 15 sends, and renders it as 6 characters of BitTornado's alphabet for HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub u32);

/// BitTornado's `mapbase64` alphabet for `key` (URL-safe: no percent-encoding needed).
const KEY_ALPHABET: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-";

impl Key {
    /// A fresh random key. Pass a seeded RNG in tests.
    pub fn random(rng: &mut fastrand::Rng) -> Key {
        Key(rng.u32(..))
    }

    /// The 6-character form sent as `&key=` (6 bits per character, low bits first).
    pub fn http_text(self) -> [u8; 6] {
        let mut out = [0u8; 6];
        for (i, c) in out.iter_mut().enumerate() {
            *c = KEY_ALPHABET[((self.0 >> (6 * i)) & 0x3F) as usize];
        }
        out
    }
}

/// What the engine tells a tracker in one announce; shared by the HTTP and UDP encoders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceParams<'a> {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    /// The port peers should dial (the listen port).
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Option<Event>,
    /// `Some(0)` asks for no peers (BitTornado does this once connections reach `max_initiate`); `None` leaves the
    /// count to the tracker (HTTP: no `numwant`; UDP: -1).
    pub numwant: Option<u32>,
    pub key: Key,
    /// The `--ip` option, already resolved (this module does no DNS).
    pub ip: Option<IpAddr>,
    /// MSE capability sent as `supportcrypto`/`requirecrypto` (HTTP only).
    pub crypto: CryptoPolicy,
    /// `--dedicated_seed_id`, sent as `&seed_id=` (HTTP only).
    pub seed_id: Option<&'a [u8]>,
    /// Send `&check_seeded=1` (HTTP only; BitTornado does when it has a "seeded" callback).
    pub check_seeded: bool,
    /// The tracker's legacy `last` value from the previous reply, echoed back (HTTP only).
    pub last: Option<u64>,
    /// The `tracker id` from a previous reply of this tracker, echoed back as `trackerid` (HTTP only).
    pub tracker_id: Option<&'a [u8]>,
}

/// How the client advertises encryption to HTTP trackers (BitTornado `crypto_allowed`, `crypto_only`,
/// `crypto_stealth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CryptoPolicy {
    /// No crypto parameters.
    #[default]
    Plain,
    /// `supportcrypto=1`.
    Supported,
    /// `supportcrypto=1&requirecrypto=1`.
    Required,
    /// `supportcrypto=1&requirecrypto=1&port=0&cryptoport=<port>`: BitTornado's stealth mode, which is only in effect
    /// together with `crypto_only` (stealth alone announces the normal port).
    RequiredStealth,
}

/// One peer from a tracker reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Only the non-compact (dictionary) form carries the peer id.
    pub peer_id: Option<[u8; 20]>,
    /// From `crypto_flags` when the tracker sent a flag per peer: `Some(true)` means the peer requires MSE.
    pub requires_crypto: Option<bool>,
}

/// Swarm counts a tracker reports (announce or scrape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SwarmCounts {
    /// Seeders (`complete`).
    pub complete: Option<u64>,
    /// Leechers (`incomplete`).
    pub incomplete: Option<u64>,
    /// Completed downloads (`downloaded`; scrape only).
    pub downloaded: Option<u64>,
}

/// Bounds on what one tracker reply may make us hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Largest reply body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Peers kept from one reply (IPv4 + IPv6 + dictionary form together); the rest are dropped and counted.
    pub max_peers: usize,
    /// Longest `failure reason` / `warning message` / error text kept, in bytes (longer text is cut).
    pub max_message_bytes: usize,
    /// Most torrents kept from one scrape reply.
    pub max_scrape_files: usize,
}

impl Default for ReplyLimits {
    /// 512 KiB holds 80,000 compact peers, far beyond any real reply (bttrack gives at most 200, opentracker 200);
    /// 1,000 peers is what a torrent can use long before its next announce.
    fn default() -> Self {
        ReplyLimits {
            max_body_bytes: 512 << 10,
            max_peers: 1000,
            max_message_bytes: 1024,
            max_scrape_files: 1000,
        }
    }
}

/// `bytes` as text for a message shown to a user: lossy UTF-8, cut to `max` bytes on a character boundary.
pub(crate) fn message_text(bytes: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_uses_bittornado_alphabet_low_bits_first() {
        assert_eq!(&Key(0).http_text(), b"000000");
        assert_eq!(&Key(1).http_text(), b"100000");
        assert_eq!(&Key(63).http_text(), b"-00000");
        assert_eq!(&Key(64).http_text(), b"010000");
        // The top character carries the last 2 bits only.
        assert_eq!(&Key(u32::MAX).http_text(), b"-----3");
    }

    #[test]
    fn message_text_cuts_on_char_boundary() {
        assert_eq!(message_text("héllo".as_bytes(), 2), "h");
        assert_eq!(message_text(b"abc", 10), "abc");
        assert_eq!(message_text(b"\xffa", 10), "\u{fffd}a");
    }
}
