//! UDP tracker protocol (BEP 15), with BEP 41 URL data: a codec and a pure per-exchange state machine.
//!
//! Why a state machine here and not in the shard: the rules that make UDP trackers work (a connection id that lives
//! 60 s, transaction ids that must match, the `15 * 2^n` s retransmit ladder, giving up) are the same whoever owns
//! the socket. [`UdpExchange`] takes the clock and the received datagrams as arguments and says what to send and when
//! to wake up, so the shard's timer wheel drives it and tests drive it with a fake clock.
//!
//! Packet layouts (all integers big-endian):
//!
//! ```text
//! connect req   : protocol_id u64 = 0x41727101980 | action u32 = 0 | transaction_id u32                    (16 bytes)
//! connect resp  : action 0 | transaction_id | connection_id u64                                           (16 bytes)
//! announce req  : connection_id u64 | action 1 | transaction_id | info_hash [20] | peer_id [20] | downloaded u64
//!                 | left u64 | uploaded u64 | event u32 | ip u32 | key u32 | num_want i32 | port u16      (98 bytes)
//!                 [BEP 41 options: 0x2 URLData len u8 data... ]
//! announce resp : action 1 | transaction_id | interval u32 | leechers u32 | seeders u32 | peers (6 or 18 bytes each)
//! scrape req    : connection_id | action 2 | transaction_id | info_hash [20] * n (n <= 74)
//! scrape resp   : action 2 | transaction_id | (seeders u32 | completed u32 | leechers u32) * n
//! error resp    : action 3 | transaction_id | message
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::{message_text, AnnounceParams, Event, Key, Peer, SwarmCounts};

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// How long a client may use a connection id after receiving it (BEP 15).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);
/// Most info-hashes in one scrape request (BEP 15: the reply must fit a typical MTU).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Longest BEP 41 URL data we send (path and query). Longer data would not be split into options sensibly by
/// anyone; a passkey URL is well under this.
pub const MAX_URL_DATA_BYTES: usize = 1024;
/// Largest datagram we decode. A reply bigger than this is not a tracker reply.
pub const MAX_PACKET_BYTES: usize = 64 << 10;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// BEP 41 option types.
const OPTION_URL_DATA: u8 = 0x2;

/// The address family of the socket the reply came in on: BEP 15 peers are 6 bytes over IPv4 and 18 over IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn peer_bytes(self) -> usize {
        match self {
            Family::V4 => 6,
            Family::V6 => 18,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    #[error("bad data from tracker - UDP packet of {length} bytes is too short for {what}")]
    TooShort { what: &'static str, length: usize },
    #[error("bad data from tracker - UDP {what} of {length} bytes has a partial entry")]
    BadLength { what: &'static str, length: usize },
    #[error(
        "bad data from tracker - UDP packet of {length} bytes exceeds {MAX_PACKET_BYTES} bytes"
    )]
    TooLarge { length: usize },
    #[error("bad data from tracker - unknown UDP action {0}")]
    UnknownAction(u32),
    #[error("too many info-hashes for one UDP scrape ({count}, at most {MAX_SCRAPE_HASHES})")]
    TooManyHashes { count: usize },
    #[error("tracker URL data of {length} bytes exceeds {MAX_URL_DATA_BYTES} bytes")]
    UrlDataTooLong { length: usize },
}

/// The announce fields BEP 15 carries (a copy, so an exchange can re-encode after reconnecting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpAnnounce {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: Option<Event>,
    /// Only an IPv4 address fits the `ip` field; anything else sends 0 ("use the source address").
    pub ip: Option<Ipv4Addr>,
    pub key: Key,
    pub numwant: Option<u32>,
    pub port: u16,
}

impl From<&AnnounceParams<'_>> for UdpAnnounce {
    fn from(p: &AnnounceParams<'_>) -> Self {
        UdpAnnounce {
            info_hash: p.info_hash,
            peer_id: p.peer_id,
            downloaded: p.downloaded,
            left: p.left,
            uploaded: p.uploaded,
            event: p.event,
            ip: match p.ip {
                Some(IpAddr::V4(v4)) => Some(v4),
                _ => None,
            },
            key: p.key,
            numwant: p.numwant,
            port: p.port,
        }
    }
}

fn event_code(e: Option<Event>) -> u32 {
    match e {
        None => 0,
        Some(Event::Completed) => 1,
        Some(Event::Started) => 2,
        Some(Event::Stopped) => 3,
    }
}

/// The 16-byte connect request.
pub fn encode_connect(transaction_id: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    out[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    out[12..].copy_from_slice(&transaction_id.to_be_bytes());
    out
}

/// Appends an announce request, plus `url_data` (the tracker URL's path and query) as BEP 41 URLData options of at
/// most 255 bytes each. Trackers that do not know BEP 41 ignore the extra bytes.
pub fn encode_announce(
    out: &mut Vec<u8>,
    connection_id: u64,
    transaction_id: u32,
    a: &UdpAnnounce,
    url_data: &[u8],
) -> Result<(), UdpError> {
    if url_data.len() > MAX_URL_DATA_BYTES {
        return Err(UdpError::UrlDataTooLong {
            length: url_data.len(),
        });
    }
    out.reserve(98 + url_data.len() + url_data.len() / 255 * 2 + 2);
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&a.info_hash);
    out.extend_from_slice(&a.peer_id);
    out.extend_from_slice(&a.downloaded.to_be_bytes());
    out.extend_from_slice(&a.left.to_be_bytes());
    out.extend_from_slice(&a.uploaded.to_be_bytes());
    out.extend_from_slice(&event_code(a.event).to_be_bytes());
    out.extend_from_slice(&a.ip.map_or(0, u32::from).to_be_bytes());
    out.extend_from_slice(&a.key.0.to_be_bytes());
    let numwant: i32 = match a.numwant {
        None => -1,
        Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
    };
    out.extend_from_slice(&numwant.to_be_bytes());
    out.extend_from_slice(&a.port.to_be_bytes());
    for chunk in url_data.chunks(255) {
        out.push(OPTION_URL_DATA);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    Ok(())
}

/// Appends a scrape request for up to [`MAX_SCRAPE_HASHES`] info-hashes.
pub fn encode_scrape(
    out: &mut Vec<u8>,
    connection_id: u64,
    transaction_id: u32,
    info_hashes: &[[u8; 20]],
) -> Result<(), UdpError> {
    if info_hashes.len() > MAX_SCRAPE_HASHES {
        return Err(UdpError::TooManyHashes {
            count: info_hashes.len(),
        });
    }
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for h in info_hashes {
        out.extend_from_slice(h);
    }
    Ok(())
}

/// A decoded tracker datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce(UdpAnnounceReply<'a>),
    Scrape(UdpScrapeReply<'a>),
    Error {
        transaction_id: u32,
        /// The tracker's message (raw bytes; show with lossy UTF-8).
        message: &'a [u8],
    },
}

impl Response<'_> {
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. } | Response::Error { transaction_id, .. } => {
                *transaction_id
            }
            Response::Announce(a) => a.transaction_id,
            Response::Scrape(s) => s.transaction_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAnnounceReply<'a> {
    pub transaction_id: u32,
    pub interval: u32,
    pub leechers: u32,
    pub seeders: u32,
    family: Family,
    peers: &'a [u8],
}

impl UdpAnnounceReply<'_> {
    /// The peers, skipping entries with port 0. Cap them with `.take(n)`: they are decoded lazily from the datagram.
    pub fn peers(&self) -> impl Iterator<Item = Peer> + '_ {
        let family = self.family;
        self.peers
            .chunks_exact(family.peer_bytes())
            .map(move |c| {
                let (ip, port) = match family {
                    Family::V4 => (
                        IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                        [c[4], c[5]],
                    ),
                    Family::V6 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(&c[..16]);
                        (IpAddr::V6(Ipv6Addr::from(b)), [c[16], c[17]])
                    }
                };
                Peer {
                    addr: SocketAddr::new(ip, u16::from_be_bytes(port)),
                    peer_id: None,
                    requires_crypto: None,
                }
            })
            .filter(|p| p.addr.port() != 0)
    }

    /// Number of peer entries in the datagram (port-0 entries included).
    pub fn entry_count(&self) -> usize {
        self.peers.len() / self.family.peer_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpScrapeReply<'a> {
    pub transaction_id: u32,
    entries: &'a [u8],
}

impl UdpScrapeReply<'_> {
    /// One entry per requested info-hash, in request order.
    pub fn entries(&self) -> impl Iterator<Item = SwarmCounts> + '_ {
        self.entries.chunks_exact(12).map(|c| SwarmCounts {
            complete: Some(u64::from(be32(&c[0..4]))),
            downloaded: Some(u64::from(be32(&c[4..8]))),
            incomplete: Some(u64::from(be32(&c[8..12]))),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len() / 12
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes a datagram from a tracker. `family` is the family of the socket it arrived on.
pub fn decode_response(packet: &[u8], family: Family) -> Result<Response<'_>, UdpError> {
    let length = packet.len();
    if length > MAX_PACKET_BYTES {
        return Err(UdpError::TooLarge { length });
    }
    if length < 8 {
        return Err(UdpError::TooShort {
            what: "an action and a transaction id",
            length,
        });
    }
    let action = be32(&packet[0..4]);
    let transaction_id = be32(&packet[4..8]);
    match action {
        ACTION_CONNECT => {
            if length != 16 {
                return Err(UdpError::BadLength {
                    what: "connect reply",
                    length,
                });
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&packet[8..16]);
            Ok(Response::Connect {
                transaction_id,
                connection_id: u64::from_be_bytes(id),
            })
        }
        ACTION_ANNOUNCE => {
            if length < 20 {
                return Err(UdpError::TooShort {
                    what: "an announce reply",
                    length,
                });
            }
            let peers = &packet[20..];
            if !peers.len().is_multiple_of(family.peer_bytes()) {
                return Err(UdpError::BadLength {
                    what: "announce reply",
                    length,
                });
            }
            Ok(Response::Announce(UdpAnnounceReply {
                transaction_id,
                interval: be32(&packet[8..12]),
                leechers: be32(&packet[12..16]),
                seeders: be32(&packet[16..20]),
                family,
                peers,
            }))
        }
        ACTION_SCRAPE => {
            let entries = &packet[8..];
            if !entries.len().is_multiple_of(12) {
                return Err(UdpError::BadLength {
                    what: "scrape reply",
                    length,
                });
            }
            Ok(Response::Scrape(UdpScrapeReply {
                transaction_id,
                entries,
            }))
        }
        ACTION_ERROR => Ok(Response::Error {
            transaction_id,
            message: &packet[8..],
        }),
        other => Err(UdpError::UnknownAction(other)),
    }
}

/// How long to wait for a reply before retransmitting: `base * 2^n` for attempt `n` (BEP 15: 15 s, n up to 8, i.e.
/// 3840 s). Engines lower `max_exponent`: a dead tracker otherwise holds an exchange open for over two hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitPolicy {
    pub base: Duration,
    pub max_exponent: u32,
}

impl Default for RetransmitPolicy {
    fn default() -> Self {
        RetransmitPolicy {
            base: Duration::from_secs(15),
            max_exponent: 8,
        }
    }
}

impl RetransmitPolicy {
    /// The timeout of attempt `n` (0-based), or `None` once `n` exceeds `max_exponent` (give up).
    pub fn timeout(&self, attempt: u32) -> Option<Duration> {
        if attempt > self.max_exponent {
            return None;
        }
        self.base.checked_mul(1u32.checked_shl(attempt)?)
    }
}

/// What an exchange wants to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this datagram and call [`UdpExchange::on_timeout`] at `deadline` unless a reply arrives first.
    Send { packet: Vec<u8>, deadline: Instant },
    /// The announce succeeded.
    Announced(AnnounceOutcome),
    /// The scrape succeeded: one entry per requested hash.
    Scraped(Vec<([u8; 20], SwarmCounts)>),
    /// The tracker sent an error (`rejected by tracker - <message>`).
    Rejected(String),
    /// No reply after the last retransmission.
    TimedOut,
    /// The datagram was not for this exchange (wrong transaction id or action, or malformed): keep waiting.
    Ignored,
}

/// An announce result, owned so it outlives the datagram buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceOutcome {
    pub interval: u32,
    pub seeders: u32,
    pub leechers: u32,
    pub peers: Vec<Peer>,
    /// Entries dropped: over `max_peers`, or port 0.
    pub dropped_peers: usize,
}

/// What an exchange asks the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Announce(UdpAnnounce),
    /// At most [`MAX_SCRAPE_HASHES`] hashes.
    Scrape(Vec<[u8; 20]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Requesting,
    Done,
}

/// A connection id and when we got it. Keep one per tracker address and pass it to each new exchange, so announces
/// within a minute skip the connect round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionId {
    pub id: u64,
    pub received_at: Instant,
}

impl ConnectionId {
    pub fn is_valid(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.received_at) < CONNECTION_ID_LIFETIME
    }
}

/// One announce or scrape with one UDP tracker: connect (unless a fresh connection id is known), send the request,
/// match the reply by transaction id, retransmit on the `15 * 2^n` ladder, give up at the end of it.
///
/// A new transaction id is drawn for every datagram sent, so a late reply to an earlier attempt is ignored rather
/// than mistaken for the current one. The retransmit counter `n` runs across the connect and the request, as in
/// BEP 15, and restarts only when a reply moves the exchange forward. If the connection id expires while we wait,
/// the next retransmission reconnects.
#[derive(Debug, Clone)]
pub struct UdpExchange {
    request: Request,
    url_data: Vec<u8>,
    family: Family,
    policy: RetransmitPolicy,
    max_peers: usize,
    connection: Option<ConnectionId>,
    phase: Phase,
    transaction_id: u32,
    attempt: u32,
}

impl UdpExchange {
    /// A new exchange. `url_data` is the tracker URL's path and query (BEP 41), `connection` a cached connection id.
    pub fn new(
        request: Request,
        url_data: &[u8],
        family: Family,
        policy: RetransmitPolicy,
        max_peers: usize,
        connection: Option<ConnectionId>,
    ) -> Result<UdpExchange, UdpError> {
        if url_data.len() > MAX_URL_DATA_BYTES {
            return Err(UdpError::UrlDataTooLong {
                length: url_data.len(),
            });
        }
        if let Request::Scrape(h) = &request {
            if h.len() > MAX_SCRAPE_HASHES {
                return Err(UdpError::TooManyHashes { count: h.len() });
            }
        }
        Ok(UdpExchange {
            request,
            url_data: url_data.to_vec(),
            family,
            policy,
            max_peers,
            connection,
            phase: Phase::Connecting,
            transaction_id: 0,
            attempt: 0,
        })
    }

    /// The connection id to cache for the next exchange with this tracker, if still valid.
    pub fn connection(&self, now: Instant) -> Option<ConnectionId> {
        self.connection.filter(|c| c.is_valid(now))
    }

    /// The transaction id of the datagram sent last: a shard with many exchanges on one socket routes each reply
    /// to the exchange whose id it carries (bytes 4..8 of every reply).
    pub fn transaction_id(&self) -> u32 {
        self.transaction_id
    }

    /// The first datagram to send.
    pub fn start(&mut self, now: Instant, rng: &mut fastrand::Rng) -> Step {
        self.attempt = 0;
        self.send(now, rng)
    }

    /// Called at the deadline of the last [`Step::Send`] with no reply: retransmit, or give up.
    pub fn on_timeout(&mut self, now: Instant, rng: &mut fastrand::Rng) -> Step {
        if self.phase == Phase::Done {
            return Step::Ignored;
        }
        self.attempt += 1;
        self.send(now, rng)
    }

    fn send(&mut self, now: Instant, rng: &mut fastrand::Rng) -> Step {
        let Some(timeout) = self.policy.timeout(self.attempt) else {
            self.phase = Phase::Done;
            return Step::TimedOut;
        };
        self.transaction_id = rng.u32(..);
        let mut packet = Vec::with_capacity(100 + self.url_data.len());
        match self.connection.filter(|c| c.is_valid(now)) {
            None => {
                self.connection = None;
                self.phase = Phase::Connecting;
                packet.extend_from_slice(&encode_connect(self.transaction_id));
            }
            Some(c) => {
                self.phase = Phase::Requesting;
                // Sizes were checked in `new`, so encoding cannot fail; if it did, the exchange ends.
                let encoded = match &self.request {
                    Request::Announce(a) => {
                        encode_announce(&mut packet, c.id, self.transaction_id, a, &self.url_data)
                    }
                    Request::Scrape(h) => encode_scrape(&mut packet, c.id, self.transaction_id, h),
                };
                if encoded.is_err() {
                    self.phase = Phase::Done;
                    return Step::TimedOut;
                }
            }
        }
        Step::Send {
            packet,
            deadline: now + timeout,
        }
    }

    /// Feeds a datagram received from the tracker's address.
    pub fn on_packet(&mut self, now: Instant, packet: &[u8], rng: &mut fastrand::Rng) -> Step {
        if self.phase == Phase::Done {
            return Step::Ignored;
        }
        let Ok(response) = decode_response(packet, self.family) else {
            return Step::Ignored;
        };
        if response.transaction_id() != self.transaction_id {
            return Step::Ignored;
        }
        match (self.phase, response) {
            (_, Response::Error { message, .. }) => {
                self.phase = Phase::Done;
                // The id may be what the tracker objects to; do not reuse it.
                self.connection = None;
                Step::Rejected(message_text(message, 1024))
            }
            (Phase::Connecting, Response::Connect { connection_id, .. }) => {
                self.connection = Some(ConnectionId {
                    id: connection_id,
                    received_at: now,
                });
                self.attempt = 0;
                self.send(now, rng)
            }
            (Phase::Requesting, Response::Announce(reply))
                if matches!(self.request, Request::Announce(_)) =>
            {
                self.phase = Phase::Done;
                let peers: Vec<Peer> = reply.peers().take(self.max_peers).collect();
                let dropped_peers = reply.entry_count() - peers.len();
                Step::Announced(AnnounceOutcome {
                    interval: reply.interval,
                    seeders: reply.seeders,
                    leechers: reply.leechers,
                    peers,
                    dropped_peers,
                })
            }
            (Phase::Requesting, Response::Scrape(reply)) => {
                let Request::Scrape(hashes) = &self.request else {
                    return Step::Ignored;
                };
                if reply.len() != hashes.len() {
                    return Step::Ignored;
                }
                self.phase = Phase::Done;
                Step::Scraped(hashes.iter().copied().zip(reply.entries()).collect())
            }
            _ => Step::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> UdpAnnounce {
        UdpAnnounce {
            info_hash: [0x11; 20],
            peer_id: [0x22; 20],
            downloaded: 3,
            left: 4,
            uploaded: 5,
            event: Some(Event::Started),
            ip: None,
            key: Key(0xDEADBEEF),
            numwant: None,
            port: 6881,
        }
    }

    #[test]
    fn connect_request_bytes() {
        assert_eq!(
            encode_connect(0x01020304),
            [0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn announce_request_layout_and_url_data() {
        let mut out = Vec::new();
        encode_announce(&mut out, 0xAABBCCDDEEFF0011, 7, &announce(), b"").unwrap();
        assert_eq!(out.len(), 98);
        assert_eq!(&out[0..8], &0xAABBCCDDEEFF0011u64.to_be_bytes());
        assert_eq!(&out[8..12], &[0, 0, 0, 1]);
        assert_eq!(&out[12..16], &[0, 0, 0, 7]);
        assert_eq!(&out[16..36], &[0x11; 20]);
        assert_eq!(&out[36..56], &[0x22; 20]);
        assert_eq!(&out[56..64], &3u64.to_be_bytes());
        assert_eq!(&out[64..72], &4u64.to_be_bytes());
        assert_eq!(&out[72..80], &5u64.to_be_bytes());
        assert_eq!(&out[80..84], &2u32.to_be_bytes(), "started = 2");
        assert_eq!(&out[84..88], &[0; 4]);
        assert_eq!(&out[88..92], &0xDEADBEEFu32.to_be_bytes());
        assert_eq!(&out[92..96], &(-1i32).to_be_bytes());
        assert_eq!(&out[96..98], &6881u16.to_be_bytes());

        let mut a = announce();
        a.event = Some(Event::Stopped);
        a.ip = Some(Ipv4Addr::new(10, 0, 0, 1));
        a.numwant = Some(u32::MAX);
        let url = vec![b'x'; 300];
        out.clear();
        encode_announce(&mut out, 1, 7, &a, &url).unwrap();
        assert_eq!(&out[80..84], &3u32.to_be_bytes());
        assert_eq!(&out[84..88], &[10, 0, 0, 1]);
        assert_eq!(&out[92..96], &i32::MAX.to_be_bytes());
        assert_eq!(out[98], OPTION_URL_DATA);
        assert_eq!(out[99], 255);
        assert_eq!(out[355], OPTION_URL_DATA);
        assert_eq!(out[356], 45);
        assert_eq!(out.len(), 98 + 2 + 255 + 2 + 45);
        assert_eq!(
            encode_announce(&mut out, 1, 7, &a, &vec![0; MAX_URL_DATA_BYTES + 1]),
            Err(UdpError::UrlDataTooLong {
                length: MAX_URL_DATA_BYTES + 1
            })
        );
        let codes: Vec<u32> = [
            None,
            Some(Event::Completed),
            Some(Event::Started),
            Some(Event::Stopped),
        ]
        .into_iter()
        .map(event_code)
        .collect();
        assert_eq!(codes, [0, 1, 2, 3]);
    }

    #[test]
    fn scrape_request_limits() {
        let mut out = Vec::new();
        encode_scrape(&mut out, 9, 8, &[[1; 20], [2; 20]]).unwrap();
        assert_eq!(out.len(), 16 + 40);
        assert_eq!(&out[8..12], &[0, 0, 0, 2]);
        assert_eq!(
            encode_scrape(&mut out, 9, 8, &vec![[0; 20]; 75]),
            Err(UdpError::TooManyHashes { count: 75 })
        );
    }

    fn header(action: u32, tid: u32) -> Vec<u8> {
        [action.to_be_bytes(), tid.to_be_bytes()].concat()
    }

    #[test]
    fn decode_every_action_with_strict_lengths() {
        let mut p = header(0, 5);
        p.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(
            decode_response(&p, Family::V4),
            Ok(Response::Connect {
                transaction_id: 5,
                connection_id: 42
            })
        );
        p.push(0);
        assert!(matches!(
            decode_response(&p, Family::V4),
            Err(UdpError::BadLength { .. })
        ));

        let mut p = header(1, 6);
        for v in [1800u32, 3, 4] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        p.extend_from_slice(&[127, 0, 0, 1, 0x1A, 0xE1, 127, 0, 0, 2, 0, 0]);
        let Ok(Response::Announce(r)) = decode_response(&p, Family::V4) else {
            panic!("announce")
        };
        assert_eq!(
            (r.interval, r.leechers, r.seeders, r.entry_count()),
            (1800, 3, 4, 2)
        );
        let peers: Vec<_> = r.peers().map(|p| p.addr).collect();
        assert_eq!(
            peers,
            ["127.0.0.1:6881".parse().unwrap()],
            "port 0 is skipped"
        );
        // 12 bytes of peers is 2 IPv4 entries but not a whole IPv6 entry.
        assert!(matches!(
            decode_response(&p, Family::V6),
            Err(UdpError::BadLength { .. })
        ));
        let mut p6 = p[..20].to_vec();
        p6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p6.extend_from_slice(&[0, 80]);
        let Ok(Response::Announce(r)) = decode_response(&p6, Family::V6) else {
            panic!("announce6")
        };
        assert_eq!(r.peers().next().unwrap().addr, "[::1]:80".parse().unwrap());
        assert!(matches!(
            decode_response(&p[..19], Family::V4),
            Err(UdpError::TooShort { .. })
        ));

        let mut p = header(2, 7);
        for v in [1u32, 2, 3, 4, 5, 6] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        let Ok(Response::Scrape(s)) = decode_response(&p, Family::V4) else {
            panic!("scrape")
        };
        let e: Vec<_> = s.entries().collect();
        assert_eq!(
            e[1],
            SwarmCounts {
                complete: Some(4),
                downloaded: Some(5),
                incomplete: Some(6)
            }
        );
        assert!(matches!(
            decode_response(&p[..p.len() - 1], Family::V4),
            Err(UdpError::BadLength { .. })
        ));

        let mut p = header(3, 8);
        p.extend_from_slice(b"go away");
        assert_eq!(
            decode_response(&p, Family::V4),
            Ok(Response::Error {
                transaction_id: 8,
                message: b"go away"
            })
        );
        assert_eq!(
            decode_response(&header(4, 0), Family::V4),
            Err(UdpError::UnknownAction(4))
        );
        assert!(matches!(
            decode_response(&[0; 7], Family::V4),
            Err(UdpError::TooShort { .. })
        ));
        assert!(matches!(
            decode_response(&vec![0; MAX_PACKET_BYTES + 1], Family::V4),
            Err(UdpError::TooLarge { .. })
        ));
    }

    #[test]
    fn retransmit_ladder() {
        let p = RetransmitPolicy::default();
        let secs: Vec<u64> = (0..=8).map(|n| p.timeout(n).unwrap().as_secs()).collect();
        assert_eq!(secs, [15, 30, 60, 120, 240, 480, 960, 1920, 3840]);
        assert_eq!(p.timeout(9), None);
        let capped = RetransmitPolicy {
            max_exponent: 40,
            ..p
        };
        // Shifts past 31 bits give up instead of overflowing.
        assert_eq!(capped.timeout(32), None);
    }

    /// The transaction id sits at bytes 12..16 of both connect and announce/scrape requests.
    fn tid_of(packet: &[u8]) -> u32 {
        be32(&packet[12..16])
    }

    fn connect_reply(tid: u32, id: u64) -> Vec<u8> {
        let mut p = header(0, tid);
        p.extend_from_slice(&id.to_be_bytes());
        p
    }

    #[test]
    fn exchange_connects_announces_and_caches_the_connection() {
        let mut rng = fastrand::Rng::with_seed(1);
        let t0 = Instant::now();
        let mut x = UdpExchange::new(
            Request::Announce(announce()),
            b"/announce",
            Family::V4,
            RetransmitPolicy::default(),
            10,
            None,
        )
        .unwrap();
        let Step::Send { packet, deadline } = x.start(t0, &mut rng) else {
            panic!()
        };
        assert_eq!(packet.len(), 16);
        assert_eq!(deadline, t0 + Duration::from_secs(15));
        let tid = tid_of(&packet);
        assert_eq!(x.transaction_id(), tid);
        // A reply with another transaction id is ignored.
        assert_eq!(
            x.on_packet(t0, &connect_reply(tid ^ 1, 9), &mut rng),
            Step::Ignored
        );
        // Garbage is ignored.
        assert_eq!(x.on_packet(t0, b"xx", &mut rng), Step::Ignored);
        let t1 = t0 + Duration::from_secs(1);
        let Step::Send { packet, deadline } = x.on_packet(t1, &connect_reply(tid, 0x77), &mut rng)
        else {
            panic!()
        };
        assert_eq!(packet.len(), 98 + 2 + 9);
        assert_eq!(&packet[..8], &0x77u64.to_be_bytes());
        assert_eq!(deadline, t1 + Duration::from_secs(15));
        let tid = tid_of(&packet);
        let mut reply = header(1, tid);
        for v in [900u32, 1, 2] {
            reply.extend_from_slice(&v.to_be_bytes());
        }
        reply.extend_from_slice(&[127, 0, 0, 1, 0, 1]);
        let Step::Announced(out) = x.on_packet(t1, &reply, &mut rng) else {
            panic!()
        };
        assert_eq!(
            (out.interval, out.leechers, out.seeders, out.peers.len()),
            (900, 1, 2, 1)
        );
        // Done: further packets are ignored.
        assert_eq!(x.on_packet(t1, &reply, &mut rng), Step::Ignored);
        let cached = x.connection(t1).unwrap();
        assert_eq!(cached.id, 0x77);
        assert!(x.connection(t1 + CONNECTION_ID_LIFETIME).is_none());

        // A second exchange within the minute skips the connect.
        let mut y = UdpExchange::new(
            Request::Scrape(vec![[5; 20]]),
            b"",
            Family::V4,
            RetransmitPolicy::default(),
            10,
            Some(cached),
        )
        .unwrap();
        let Step::Send { packet, .. } = y.start(t1 + Duration::from_secs(59), &mut rng) else {
            panic!()
        };
        assert_eq!(packet.len(), 16 + 20);
        let tid = tid_of(&packet);
        // A scrape reply with the wrong number of entries is ignored.
        let mut bad = header(2, tid);
        bad.extend_from_slice(&[0; 24]);
        assert_eq!(y.on_packet(t1, &bad, &mut rng), Step::Ignored);
        let mut ok = header(2, tid);
        ok.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        let Step::Scraped(s) = y.on_packet(t1, &ok, &mut rng) else {
            panic!()
        };
        assert_eq!(s[0].0, [5; 20]);
        assert_eq!(s[0].1.incomplete, Some(3));
    }

    #[test]
    fn exchange_retransmits_reconnects_after_expiry_and_gives_up() {
        let mut rng = fastrand::Rng::with_seed(2);
        let t0 = Instant::now();
        let policy = RetransmitPolicy {
            base: Duration::from_secs(15),
            max_exponent: 3,
        };
        let conn = ConnectionId {
            id: 5,
            received_at: t0,
        };
        let mut x = UdpExchange::new(
            Request::Announce(announce()),
            b"",
            Family::V4,
            policy,
            10,
            Some(conn),
        )
        .unwrap();
        let Step::Send { packet, deadline } = x.start(t0, &mut rng) else {
            panic!()
        };
        assert_eq!(packet.len(), 98, "fresh connection id: announce directly");
        let first_tid = tid_of(&packet);
        let Step::Send { packet, deadline } = x.on_timeout(deadline, &mut rng) else {
            panic!()
        };
        assert_eq!(packet.len(), 98, "15 s later the id is still valid");
        assert_eq!(deadline, t0 + Duration::from_secs(15 + 30));
        // The late reply to the first attempt no longer matches.
        let mut late = header(1, first_tid);
        late.extend_from_slice(&[0; 12]);
        assert_ne!(
            tid_of(&packet),
            first_tid,
            "each datagram gets a fresh transaction id"
        );
        assert_eq!(x.on_packet(deadline, &late, &mut rng), Step::Ignored);
        // At 45 s the id (received at 0 s) is still valid.
        let Step::Send { packet, deadline } = x.on_timeout(deadline, &mut rng) else {
            panic!()
        };
        assert_eq!(packet.len(), 98);
        assert_eq!(deadline, t0 + Duration::from_secs(15 + 30 + 60));
        // At 105 s it has expired, so the retransmission is a connect, with the next timeout on the ladder.
        let Step::Send { packet, deadline } = x.on_timeout(deadline, &mut rng) else {
            panic!()
        };
        assert_eq!(packet.len(), 16);
        assert_eq!(x.connection(deadline), None);
        assert_eq!(deadline, t0 + Duration::from_secs(15 + 30 + 60 + 120));
        assert_eq!(x.on_timeout(deadline, &mut rng), Step::TimedOut);
        assert_eq!(x.on_timeout(deadline, &mut rng), Step::Ignored);
    }

    #[test]
    fn exchange_error_rejects_and_forgets_connection() {
        let mut rng = fastrand::Rng::with_seed(3);
        let t0 = Instant::now();
        let conn = ConnectionId {
            id: 5,
            received_at: t0,
        };
        let mut x = UdpExchange::new(
            Request::Announce(announce()),
            b"",
            Family::V4,
            RetransmitPolicy::default(),
            10,
            Some(conn),
        )
        .unwrap();
        let Step::Send { packet, .. } = x.start(t0, &mut rng) else {
            panic!()
        };
        let mut err = header(3, tid_of(&packet));
        err.extend_from_slice(b"unregistered torrent");
        assert_eq!(
            x.on_packet(t0, &err, &mut rng),
            Step::Rejected("unregistered torrent".into())
        );
        assert_eq!(x.connection(t0), None);
        assert!(UdpExchange::new(
            Request::Scrape(vec![[0; 20]; 75]),
            b"",
            Family::V4,
            RetransmitPolicy::default(),
            1,
            None
        )
        .is_err());
    }
}
