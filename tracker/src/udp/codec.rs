//! BEP 15 (UDP tracker protocol) packets: bytes in, a typed request or a typed error out, and the
//! responses as bytes. Pure (no I/O, no clock, no state), so the fuzzer and unit tests reach every
//! branch without a socket.
//!
//! Lengths are strict: a connect request is exactly 16 bytes, an announce at least 98 (anything
//! after byte 98 is BEP 41 options), a scrape 16 + 20·n bytes with 1 ≤ n ≤ [`MAX_SCRAPE_HASHES`].

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::request::{InfoHash, PeerId};

/// The magic constant a connect request carries in place of a connection id.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Most info-hashes in one scrape: BEP 15's limit (74 · 12 + 8 bytes of response fit in a
/// 1500-byte Ethernet frame).
pub const MAX_SCRAPE_HASHES: usize = 74;

/// Longest datagram the server reads. The longest valid request is an announce with BEP 41 options
/// (each URL-data option ≤ 257 bytes); a datagram longer than this is refused as too long.
pub const MAX_REQUEST_LEN: usize = 2048;

/// Most URL-data bytes kept from BEP 41 options (the concatenation of every URLData option).
pub const MAX_URL_DATA: usize = 1024;

/// Length of a fixed announce request (before BEP 41 options).
pub const ANNOUNCE_LEN: usize = 98;

/// `action` values.
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

/// The announce `event` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEvent {
    None,
    Completed,
    Started,
    Stopped,
}

/// A decoded announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAnnounce {
    pub connection_id: u64,
    pub transaction_id: u32,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: UdpEvent,
    /// The IPv4 address field (0 = use the sender's address).
    pub ip: Ipv4Addr,
    pub key: u32,
    /// -1 (or any negative value) = the tracker's default.
    pub num_want: i32,
    pub port: u16,
    /// BEP 41 URL data (path and query of the tracker URL), concatenated, ≤ [`MAX_URL_DATA`].
    pub url_data: Vec<u8>,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpRequest {
    Connect {
        transaction_id: u32,
    },
    Announce(UdpAnnounce),
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        info_hashes: Vec<InfoHash>,
    },
}

impl UdpRequest {
    pub fn transaction_id(&self) -> u32 {
        match self {
            UdpRequest::Connect { transaction_id } => *transaction_id,
            UdpRequest::Announce(a) => a.transaction_id,
            UdpRequest::Scrape { transaction_id, .. } => *transaction_id,
        }
    }
}

/// Why a datagram was refused. `transaction_id` is known once the datagram has 16 bytes: the
/// server then answers with an error packet, otherwise it drops the datagram silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    pub transaction_id: Option<u32>,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("packet too short")]
    TooShort,
    #[error("packet too long")]
    TooLong,
    #[error("bad protocol id in connect request")]
    BadProtocolId,
    #[error("connect request must be 16 bytes")]
    ConnectLength,
    #[error("scrape request length is not 16 + 20 * n")]
    ScrapeLength,
    #[error("scrape request with no info_hash")]
    ScrapeEmpty,
    #[error("too many info_hashes in scrape (at most 74)")]
    ScrapeTooMany,
    #[error("invalid event")]
    BadEvent,
    #[error("truncated BEP 41 option")]
    BadOption,
    #[error("BEP 41 URL data too long")]
    UrlDataTooLong,
    #[error("unknown action")]
    UnknownAction,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn array20(b: &[u8], at: usize) -> [u8; 20] {
    let mut a = [0; 20];
    a.copy_from_slice(&b[at..at + 20]);
    a
}

/// Decodes one request datagram. Every index below is guarded by a length check first.
pub fn decode_request(b: &[u8]) -> Result<UdpRequest, DecodeError> {
    if b.len() < 16 {
        return Err(DecodeError {
            transaction_id: None,
            kind: DecodeErrorKind::TooShort,
        });
    }
    let connection_id = u64_at(b, 0);
    let action = u32_at(b, 8);
    let transaction_id = u32_at(b, 12);
    let err = |kind| DecodeError {
        transaction_id: Some(transaction_id),
        kind,
    };
    if b.len() > MAX_REQUEST_LEN {
        return Err(err(DecodeErrorKind::TooLong));
    }
    match action {
        ACTION_CONNECT => {
            if connection_id != PROTOCOL_ID {
                return Err(err(DecodeErrorKind::BadProtocolId));
            }
            if b.len() != 16 {
                return Err(err(DecodeErrorKind::ConnectLength));
            }
            Ok(UdpRequest::Connect { transaction_id })
        }
        ACTION_ANNOUNCE => {
            if b.len() < ANNOUNCE_LEN {
                return Err(err(DecodeErrorKind::TooShort));
            }
            let event = match u32_at(b, 80) {
                0 => UdpEvent::None,
                1 => UdpEvent::Completed,
                2 => UdpEvent::Started,
                3 => UdpEvent::Stopped,
                _ => return Err(err(DecodeErrorKind::BadEvent)),
            };
            let url_data = parse_options(&b[ANNOUNCE_LEN..]).map_err(err)?;
            Ok(UdpRequest::Announce(UdpAnnounce {
                connection_id,
                transaction_id,
                info_hash: array20(b, 16),
                peer_id: array20(b, 36),
                downloaded: u64_at(b, 56),
                left: u64_at(b, 64),
                uploaded: u64_at(b, 72),
                event,
                ip: Ipv4Addr::from(u32_at(b, 84)),
                key: u32_at(b, 88),
                num_want: u32_at(b, 92) as i32,
                port: u16_at(b, 96),
                url_data,
            }))
        }
        ACTION_SCRAPE => {
            let rest = &b[16..];
            if rest.is_empty() {
                return Err(err(DecodeErrorKind::ScrapeEmpty));
            }
            if !rest.len().is_multiple_of(20) {
                return Err(err(DecodeErrorKind::ScrapeLength));
            }
            if rest.len() / 20 > MAX_SCRAPE_HASHES {
                return Err(err(DecodeErrorKind::ScrapeTooMany));
            }
            Ok(UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes: rest.chunks_exact(20).map(|c| array20(c, 0)).collect(),
            })
        }
        _ => Err(err(DecodeErrorKind::UnknownAction)),
    }
}

/// BEP 41 options after the fixed announce: 0x0 end of options, 0x1 no-op, 0x2 URL data (one
/// length byte, then that many bytes; several are concatenated). An unknown option type has no
/// known length, so parsing stops there (as BEP 41 lets a tracker do) and what was read is kept.
fn parse_options(mut b: &[u8]) -> Result<Vec<u8>, DecodeErrorKind> {
    let mut url = Vec::new();
    while let Some((&kind, rest)) = b.split_first() {
        match kind {
            0x0 => break,
            0x1 => b = rest,
            0x2 => {
                let Some((&len, rest)) = rest.split_first() else {
                    return Err(DecodeErrorKind::BadOption);
                };
                let len = usize::from(len);
                if rest.len() < len {
                    return Err(DecodeErrorKind::BadOption);
                }
                if url.len() + len > MAX_URL_DATA {
                    return Err(DecodeErrorKind::UrlDataTooLong);
                }
                url.extend_from_slice(&rest[..len]);
                b = &rest[len..];
            }
            _ => break,
        }
    }
    Ok(url)
}

/// Encodes a request (the client's side; used by tests, the fuzzer's round trip and the load
/// generator). BEP 41 URL data is written in options of ≤ 255 bytes, then an end-of-options byte.
pub fn encode_request(r: &UdpRequest, out: &mut Vec<u8>) {
    match r {
        UdpRequest::Connect { transaction_id } => {
            out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
            out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
            out.extend_from_slice(&transaction_id.to_be_bytes());
        }
        UdpRequest::Announce(a) => {
            out.extend_from_slice(&a.connection_id.to_be_bytes());
            out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
            out.extend_from_slice(&a.transaction_id.to_be_bytes());
            out.extend_from_slice(&a.info_hash);
            out.extend_from_slice(&a.peer_id);
            out.extend_from_slice(&a.downloaded.to_be_bytes());
            out.extend_from_slice(&a.left.to_be_bytes());
            out.extend_from_slice(&a.uploaded.to_be_bytes());
            let event: u32 = match a.event {
                UdpEvent::None => 0,
                UdpEvent::Completed => 1,
                UdpEvent::Started => 2,
                UdpEvent::Stopped => 3,
            };
            out.extend_from_slice(&event.to_be_bytes());
            out.extend_from_slice(&a.ip.octets());
            out.extend_from_slice(&a.key.to_be_bytes());
            out.extend_from_slice(&a.num_want.to_be_bytes());
            out.extend_from_slice(&a.port.to_be_bytes());
            if !a.url_data.is_empty() {
                for chunk in a.url_data.chunks(255) {
                    out.push(0x2);
                    out.push(chunk.len() as u8);
                    out.extend_from_slice(chunk);
                }
                out.push(0x0);
            }
        }
        UdpRequest::Scrape {
            connection_id,
            transaction_id,
            info_hashes,
        } => {
            out.extend_from_slice(&connection_id.to_be_bytes());
            out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
            out.extend_from_slice(&transaction_id.to_be_bytes());
            for h in info_hashes {
                out.extend_from_slice(h);
            }
        }
    }
}

/// Connect response: 16 bytes.
pub fn encode_connect(out: &mut Vec<u8>, transaction_id: u32, connection_id: u64) {
    out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&connection_id.to_be_bytes());
}

/// The fixed 20-byte head of an announce response; peers follow with [`push_peer_v4`] or
/// [`push_peer_v6`] (one family per response: the family of the socket the request came on).
pub fn encode_announce_head(
    out: &mut Vec<u8>,
    transaction_id: u32,
    interval: u32,
    leechers: u32,
    seeders: u32,
) {
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
    out.extend_from_slice(&seeders.to_be_bytes());
}

pub fn push_peer_v4(out: &mut Vec<u8>, ip: Ipv4Addr, port: u16) {
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&port.to_be_bytes());
}

pub fn push_peer_v6(out: &mut Vec<u8>, ip: Ipv6Addr, port: u16) {
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&port.to_be_bytes());
}

/// One torrent's counts in a scrape response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeEntry {
    pub seeders: u32,
    pub completed: u32,
    pub leechers: u32,
}

/// Scrape response: 8 bytes + 12 per torrent, in request order.
pub fn encode_scrape(out: &mut Vec<u8>, transaction_id: u32, entries: &[ScrapeEntry]) {
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.seeders.to_be_bytes());
        out.extend_from_slice(&e.completed.to_be_bytes());
        out.extend_from_slice(&e.leechers.to_be_bytes());
    }
}

/// Most bytes of an error message sent (keeps an error packet small: no amplification).
pub const MAX_ERROR_MESSAGE: usize = 200;

/// Error response: 8 bytes + the message (cut at [`MAX_ERROR_MESSAGE`] bytes).
pub fn encode_error(out: &mut Vec<u8>, transaction_id: u32, message: &str) {
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    let m = message.as_bytes();
    out.extend_from_slice(&m[..m.len().min(MAX_ERROR_MESSAGE)]);
}

/// Saturating conversion for counters sent as u32.
pub fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> UdpAnnounce {
        UdpAnnounce {
            connection_id: 0x1122_3344_5566_7788,
            transaction_id: 0xdead_beef,
            info_hash: [7; 20],
            peer_id: [9; 20],
            downloaded: 1,
            left: 2,
            uploaded: 3,
            event: UdpEvent::Started,
            ip: Ipv4Addr::new(10, 0, 0, 1),
            key: 0x0102_0304,
            num_want: -1,
            port: 6881,
            url_data: Vec::new(),
        }
    }

    fn bytes(r: &UdpRequest) -> Vec<u8> {
        let mut v = Vec::new();
        encode_request(r, &mut v);
        v
    }

    fn kind(b: &[u8]) -> DecodeErrorKind {
        decode_request(b).unwrap_err().kind
    }

    #[test]
    fn connect_round_trips_and_is_exactly_16_bytes() {
        let r = UdpRequest::Connect { transaction_id: 42 };
        let b = bytes(&r);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..8], &[0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80]);
        assert_eq!(decode_request(&b).unwrap(), r);
        let mut long = b.clone();
        long.push(0);
        assert_eq!(kind(&long), DecodeErrorKind::ConnectLength);
        let mut bad = b.clone();
        bad[7] = 0x81;
        assert_eq!(kind(&bad), DecodeErrorKind::BadProtocolId);
        for n in 0..16 {
            let e = decode_request(&b[..n]).unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::TooShort);
            assert_eq!(e.transaction_id, None);
        }
    }

    #[test]
    fn announce_round_trips_with_exact_field_offsets() {
        let a = announce();
        let b = bytes(&UdpRequest::Announce(a.clone()));
        assert_eq!(b.len(), ANNOUNCE_LEN);
        assert_eq!(&b[8..12], &[0, 0, 0, 1]);
        assert_eq!(&b[92..96], &[0xff; 4]);
        assert_eq!(&b[96..98], &6881u16.to_be_bytes());
        assert_eq!(decode_request(&b).unwrap(), UdpRequest::Announce(a));
    }

    #[test]
    fn every_short_announce_is_refused_with_its_transaction_id() {
        let b = bytes(&UdpRequest::Announce(announce()));
        for n in 16..ANNOUNCE_LEN {
            let e = decode_request(&b[..n]).unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::TooShort, "length {n}");
            assert_eq!(e.transaction_id, Some(0xdead_beef));
        }
    }

    #[test]
    fn announce_events_and_bad_event() {
        for (code, ev) in [
            (0, UdpEvent::None),
            (1, UdpEvent::Completed),
            (2, UdpEvent::Started),
            (3, UdpEvent::Stopped),
        ] {
            let mut b = bytes(&UdpRequest::Announce(announce()));
            b[80..84].copy_from_slice(&(code as u32).to_be_bytes());
            match decode_request(&b).unwrap() {
                UdpRequest::Announce(a) => assert_eq!(a.event, ev),
                other => panic!("{other:?}"),
            }
        }
        let mut b = bytes(&UdpRequest::Announce(announce()));
        b[83] = 4;
        assert_eq!(kind(&b), DecodeErrorKind::BadEvent);
    }

    #[test]
    fn bep41_url_data_options() {
        // Round trip through several options (> 255 bytes).
        let mut a = announce();
        a.url_data = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        let b = bytes(&UdpRequest::Announce(a.clone()));
        assert_eq!(b.len(), ANNOUNCE_LEN + 2 + 255 + 2 + 45 + 1);
        assert_eq!(decode_request(&b).unwrap(), UdpRequest::Announce(a));

        let base = bytes(&UdpRequest::Announce(announce()));
        let with = |opts: &[u8]| {
            let mut b = base.clone();
            b.extend_from_slice(opts);
            decode_request(&b)
        };
        let url = |r: Result<UdpRequest, DecodeError>| match r.unwrap() {
            UdpRequest::Announce(a) => a.url_data,
            other => panic!("{other:?}"),
        };
        // NOPs, two URL data options concatenated, end of options, then ignored bytes.
        assert_eq!(
            url(with(
                b"\x01\x01\x02\x05/anno\x02\x08unce?a=b\x00\x02\x03xyz"
            )),
            b"/announce?a=b"
        );
        // An unknown option type stops parsing; what was read is kept.
        assert_eq!(url(with(b"\x02\x02/a\x07\x02\x02zz")), b"/a");
        // The old two-byte `extensions` field (zero) reads as end of options.
        assert_eq!(url(with(&[0, 0])), b"");
        // Truncated URL data: length byte missing, or fewer bytes than announced.
        assert_eq!(with(b"\x02").unwrap_err().kind, DecodeErrorKind::BadOption);
        assert_eq!(
            with(b"\x02\x05/an").unwrap_err().kind,
            DecodeErrorKind::BadOption
        );
        // More URL data than MAX_URL_DATA in total.
        let mut many = Vec::new();
        for _ in 0..5 {
            many.push(2);
            many.push(255);
            many.extend_from_slice(&[b'x'; 255]);
        }
        assert_eq!(
            with(&many).unwrap_err().kind,
            DecodeErrorKind::UrlDataTooLong
        );
    }

    #[test]
    fn datagram_longer_than_the_limit_is_refused() {
        let mut b = bytes(&UdpRequest::Announce(announce()));
        b.resize(MAX_REQUEST_LEN + 1, 1);
        assert_eq!(kind(&b), DecodeErrorKind::TooLong);
    }

    #[test]
    fn scrape_lengths() {
        let scrape = |n: usize| UdpRequest::Scrape {
            connection_id: 5,
            transaction_id: 6,
            info_hashes: (0..n).map(|i| [i as u8; 20]).collect(),
        };
        for n in [1, 2, MAX_SCRAPE_HASHES] {
            let r = scrape(n);
            let b = bytes(&r);
            assert_eq!(b.len(), 16 + 20 * n);
            assert_eq!(decode_request(&b).unwrap(), r);
        }
        let too_many = bytes(&scrape(MAX_SCRAPE_HASHES + 1));
        assert_eq!(kind(&too_many), DecodeErrorKind::ScrapeTooMany);
        let one = bytes(&scrape(1));
        assert_eq!(kind(&one[..16]), DecodeErrorKind::ScrapeEmpty);
        for n in 17..36 {
            assert_eq!(kind(&one[..n]), DecodeErrorKind::ScrapeLength, "length {n}");
        }
        let mut extra = bytes(&scrape(2));
        extra.push(0);
        assert_eq!(kind(&extra), DecodeErrorKind::ScrapeLength);
    }

    #[test]
    fn unknown_action() {
        let mut b = bytes(&UdpRequest::Connect { transaction_id: 1 });
        b[11] = 3;
        assert_eq!(kind(&b), DecodeErrorKind::UnknownAction);
        b[8] = 0xff;
        assert_eq!(kind(&b), DecodeErrorKind::UnknownAction);
    }

    #[test]
    fn responses_have_bep15_layout() {
        let mut v = Vec::new();
        encode_connect(&mut v, 7, 0x0102_0304_0506_0708);
        assert_eq!(v, [0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]);

        let mut v = Vec::new();
        encode_announce_head(&mut v, 7, 1800, 3, 4);
        push_peer_v4(&mut v, Ipv4Addr::new(127, 0, 0, 2), 0x1ae1);
        assert_eq!(v.len(), 26);
        assert_eq!(&v[..8], &[0, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&v[8..20], &[0, 0, 7, 8, 0, 0, 0, 3, 0, 0, 0, 4]);
        assert_eq!(&v[20..], &[127, 0, 0, 2, 0x1a, 0xe1]);

        let mut v = Vec::new();
        encode_announce_head(&mut v, 7, 1800, 0, 1);
        push_peer_v6(&mut v, Ipv6Addr::LOCALHOST, 6881);
        assert_eq!(v.len(), 20 + 18);
        assert_eq!(v[20 + 15], 1);

        let mut v = Vec::new();
        let e = ScrapeEntry {
            seeders: 1,
            completed: 2,
            leechers: 3,
        };
        encode_scrape(&mut v, 9, &[e, ScrapeEntry::default()]);
        assert_eq!(v.len(), 8 + 24);
        assert_eq!(&v[8..20], &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);

        let mut v = Vec::new();
        encode_error(&mut v, 9, "bad connection id");
        assert_eq!(&v[..8], &[0, 0, 0, 3, 0, 0, 0, 9]);
        assert_eq!(&v[8..], b"bad connection id");
        let mut v = Vec::new();
        encode_error(&mut v, 9, &"x".repeat(1000));
        assert_eq!(v.len(), 8 + MAX_ERROR_MESSAGE);
    }
}
