//! Announce and scrape request parsing: bytes in, a typed request or a typed error out. Pure (no
//! I/O, no clock, no state), so it can be fuzzed; the error carries bttrack's HTTP status and text.

use std::borrow::Cow;

use crate::query::{percent_decode, split_query};

/// 20 raw bytes.
pub type InfoHash = [u8; 20];
/// 20 raw bytes.
pub type PeerId = [u8; 20];

/// Longest value kept for free-form parameters (`key`, `ip`, `trackerid`...).
const MAX_VALUE: usize = 256;

/// The `event` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    #[default]
    None,
    Started,
    Completed,
    Stopped,
    /// BitTornado's "look, don't touch": the announce returns peers but records nothing.
    Snooped,
}

/// A parsed announce. `Default` is an empty request (all zero, no event, nothing optional), for code that builds one
/// from another protocol or for a test.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// `cryptoport` if given, else `port`.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    pub compact: bool,
    pub no_peer_id: bool,
    pub numwant: Option<usize>,
    pub key: Option<Vec<u8>>,
    /// The `ip` parameter (the client's claim; used only if the config allows it).
    pub ip: Option<String>,
    pub supportcrypto: bool,
    pub requirecrypto: bool,
    /// `trackerid` (accepted and ignored, like bttrack).
    pub trackerid: Option<Vec<u8>>,
    /// The `tracker` parameter: a tracker-to-tracker poll.
    pub tracker: bool,
    /// The deprecated `scrape` parameter: add this torrent's counts to the response.
    pub scrape: bool,
    /// `seed_id` (see `--dedicated_seed_id`).
    pub seed_id: Option<Vec<u8>>,
    /// `check_seeded`: add `seeded` to the response.
    pub check_seeded: bool,
    /// `password` (aggregator mode).
    pub password: Option<Vec<u8>>,
}

/// A parsed scrape: `None` = full scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest {
    pub info_hashes: Option<Vec<InfoHash>>,
}

/// Most info-hashes in one scrape (bounds the work per request).
pub const MAX_SCRAPE_HASHES: usize = 64;

/// How an error is shown to the client (bttrack's rules, §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// 400, text/plain, `you sent me garbage - <msg>` (not bencoded).
    Garbage(String),
    /// 400, `your client is outdated, please upgrade` (non-compact while compact_reqd).
    Outdated,
    /// 400 `Not Authorized`, bencoded failure reason (IP bans, scrape not allowed).
    NotAuthorized400(String),
    /// 200 `Not Authorized`, bencoded failure reason (torrent not allowed).
    NotAuthorized200(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Garbage(m) => write!(f, "you sent me garbage - {m}"),
            RequestError::Outdated => write!(f, "your client is outdated, please upgrade"),
            RequestError::NotAuthorized400(m) | RequestError::NotAuthorized200(m) => {
                write!(f, "{m}")
            }
        }
    }
}

fn garbage(m: impl Into<String>) -> RequestError {
    RequestError::Garbage(m.into())
}

/// The query's pairs: names decoded once (borrowed unless they contain an escape), values kept
/// encoded and decoded on lookup, so a typical announce allocates only for `info_hash`/`peer_id`.
struct Params<'q> {
    pairs: Vec<(Cow<'q, [u8]>, &'q [u8])>,
}

/// Longest encoded value accepted (a decoded value is never longer than its encoding).
const MAX_ENCODED_VALUE: usize = 3 * MAX_VALUE;

/// Whether `v` has a `%` escape or a `+` (a space).
fn needs_decoding(v: &[u8]) -> bool {
    memchr::memchr2(b'%', b'+', v).is_some()
}

/// Decodes `v` if it needs it, else borrows it. `v` is at most `MAX_ENCODED_VALUE` bytes (checked
/// at parse), so decoding cannot exceed the limit.
fn decoded(v: &[u8]) -> Cow<'_, [u8]> {
    if needs_decoding(v) {
        Cow::Owned(percent_decode(v, MAX_ENCODED_VALUE).unwrap_or_default())
    } else {
        Cow::Borrowed(v)
    }
}

impl<'q> Params<'q> {
    fn parse(query: &'q [u8]) -> Result<Params<'q>, RequestError> {
        let raw = split_query(query).map_err(garbage)?;
        let mut pairs = Vec::with_capacity(raw.len());
        for (n, v) in raw {
            if n.len() > 64 || v.len() > MAX_ENCODED_VALUE {
                return Err(garbage("parameter too long"));
            }
            pairs.push((decoded(n), v));
        }
        Ok(Params { pairs })
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Cow<'q, [u8]>> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| **n == *name.as_bytes())
            .map(|(_, v)| decoded(v))
    }
}

/// The parameters an announce reads. [`AnnounceParams`] fills a slot per name in one pass over the query's bytes;
/// looking each of ~20 names up in a list of pairs (several scans of the query, a name comparison per pair and
/// lookup) cost ~1 µs per announce of a typical client (14 parameters), about a tenth of a keep-alive request's
/// whole server CPU.
mod slot {
    pub const INFO_HASH: usize = 0;
    pub const PEER_ID: usize = 1;
    pub const EVENT: usize = 2;
    pub const CRYPTOPORT: usize = 3;
    pub const PORT: usize = 4;
    pub const LEFT: usize = 5;
    pub const UPLOADED: usize = 6;
    pub const DOWNLOADED: usize = 7;
    pub const NUMWANT: usize = 8;
    pub const IP: usize = 9;
    pub const COMPACT: usize = 10;
    pub const NO_PEER_ID: usize = 11;
    pub const KEY: usize = 12;
    pub const SUPPORTCRYPTO: usize = 13;
    pub const REQUIRECRYPTO: usize = 14;
    pub const TRACKERID: usize = 15;
    pub const TRACKER: usize = 16;
    pub const SCRAPE: usize = 17;
    pub const SEED_ID: usize = 18;
    pub const CHECK_SEEDED: usize = 19;
    pub const PASSWORD: usize = 20;
    pub const COUNT: usize = 21;

    /// The slot of a (decoded) parameter name.
    pub fn of(name: &[u8]) -> Option<usize> {
        Some(match name {
            b"info_hash" => INFO_HASH,
            b"peer_id" => PEER_ID,
            b"event" => EVENT,
            b"cryptoport" => CRYPTOPORT,
            b"port" => PORT,
            b"left" => LEFT,
            b"uploaded" => UPLOADED,
            b"downloaded" => DOWNLOADED,
            b"numwant" => NUMWANT,
            b"ip" => IP,
            b"compact" => COMPACT,
            b"no_peer_id" => NO_PEER_ID,
            b"key" => KEY,
            b"supportcrypto" => SUPPORTCRYPTO,
            b"requirecrypto" => REQUIRECRYPTO,
            b"trackerid" => TRACKERID,
            b"tracker" => TRACKER,
            b"scrape" => SCRAPE,
            b"seed_id" => SEED_ID,
            b"check_seeded" => CHECK_SEEDED,
            b"password" => PASSWORD,
            _ => return None,
        })
    }
}

/// An announce's parameters: the first value of each known name, still encoded (first occurrence wins, names
/// compared decoded, values decoded on use; the limits and errors of [`split_query`] and [`Params`]).
struct AnnounceParams<'q> {
    slots: [Option<&'q [u8]>; slot::COUNT],
}

impl<'q> AnnounceParams<'q> {
    /// One pass: `&` and `=` are found with `memchr` (vectorised; a byte-at-a-time scan with a branch per byte was
    /// most of the parse's time), and a name is decoded only if it is not already a known name as sent.
    fn parse(query: &'q [u8]) -> Result<AnnounceParams<'q>, RequestError> {
        let mut slots = [None; slot::COUNT];
        let mut count = 0usize;
        let mut too_long = false;
        let mut rest = query;
        loop {
            let (piece, next) = match memchr::memchr(b'&', rest) {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if !piece.is_empty() {
                count += 1;
                if count > crate::query::MAX_PARAMS {
                    return Err(garbage("too many parameters"));
                }
                // After a too-long parameter only the count is checked: the count error takes precedence, as in
                // `split_query`.
                if !too_long {
                    let (n, v) = crate::query::split_pair(piece);
                    if n.len() > 64 || v.len() > MAX_ENCODED_VALUE {
                        too_long = true;
                    } else {
                        // A known name as sent needs no decoding (it has no `%` or `+`).
                        let known = slot::of(n).or_else(|| {
                            if needs_decoding(n) {
                                slot::of(&decoded(n))
                            } else {
                                None
                            }
                        });
                        if let Some(i) = known {
                            slots[i].get_or_insert(v);
                        }
                    }
                }
            }
            match next {
                Some(r) => rest = r,
                None => break,
            }
        }
        if too_long {
            return Err(garbage("parameter too long"));
        }
        Ok(AnnounceParams { slots })
    }

    fn get(&self, slot: usize) -> Option<Cow<'q, [u8]>> {
        self.slots[slot].map(decoded)
    }

    /// A 20-byte parameter decoded without allocating: `None` if absent, `Some(None)` if its decoded length is
    /// not 20.
    fn get20(&self, slot: usize) -> Option<Option<[u8; 20]>> {
        let raw = self.slots[slot]?;
        let mut out = [0u8; 20];
        Some(match crate::query::percent_decode_into(raw, &mut out) {
            Some(20) => Some(out),
            _ => None,
        })
    }

    /// An integer parameter; `what` is bttrack's error text.
    fn int(&self, slot: usize, what: &str) -> Result<Option<i64>, RequestError> {
        if let Some(n) = self.slots[slot].and_then(plain_int) {
            return Ok(Some(n));
        }
        match self.get(slot) {
            None => Ok(None),
            Some(v) => parse_int(&v).map(Some).ok_or_else(|| garbage(what)),
        }
    }

    /// A flag: present with a non-zero integer value (master's `int()`; 0.3.18's "any non-empty string" made
    /// `compact=0` mean compact, a bug). A non-numeric non-empty value counts as true.
    fn flag(&self, slot: usize) -> bool {
        if let Some(n) = self.slots[slot].and_then(plain_int) {
            return n != 0;
        }
        match self.get(slot) {
            None => false,
            Some(v) => match parse_int(&v) {
                Some(n) => n != 0,
                None => !v.is_empty(),
            },
        }
    }
}

/// The common case of [`parse_int`] without its UTF-8 check, trim and generic parse: 1 to 18 ASCII digits (cannot
/// overflow an i64). Anything else is `None`, and the caller takes the general path.
fn plain_int(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')))
}

/// An integer with surrounding whitespace allowed (Python's `int()`), as the other parameter readers.
fn parse_int(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.trim().parse::<i64>().ok()
}

fn hash20(v: &[u8], what: &str) -> Result<[u8; 20], RequestError> {
    v.try_into()
        .map_err(|_| garbage(format!("{what} not of length 20")))
}

/// Parses an announce query string (the part after `?`).
pub fn parse_announce(query: &[u8]) -> Result<AnnounceRequest, RequestError> {
    let p = AnnounceParams::parse(query)?;
    let info_hash = match p.get20(slot::INFO_HASH) {
        None => return Err(garbage("no info hash")),
        Some(v) => v.ok_or_else(|| garbage("info hash not of length 20"))?,
    };
    let peer_id = match p.get20(slot::PEER_ID) {
        Some(Some(v)) => v,
        _ => return Err(garbage("id not of length 20")),
    };
    let event = match p.get(slot::EVENT).as_deref() {
        None | Some(b"") => Event::None,
        Some(b"started") => Event::Started,
        Some(b"completed") => Event::Completed,
        Some(b"stopped") => Event::Stopped,
        Some(b"snooped") => Event::Snooped,
        Some(_) => return Err(garbage("invalid event")),
    };
    let port = match p.int(slot::CRYPTOPORT, "invalid port")? {
        Some(v) => v,
        None => p
            .int(slot::PORT, "invalid port")?
            .ok_or_else(|| garbage("invalid port"))?,
    };
    if !(0..=65535).contains(&port) {
        return Err(garbage("invalid port"));
    }
    let left = p
        .int(slot::LEFT, "invalid amount left")?
        .ok_or_else(|| garbage("invalid amount left"))?;
    if left < 0 {
        return Err(garbage("invalid amount left"));
    }
    let uploaded = p
        .int(slot::UPLOADED, "invalid amount uploaded")?
        .unwrap_or(0);
    let downloaded = p
        .int(slot::DOWNLOADED, "invalid amount downloaded")?
        .unwrap_or(0);
    if uploaded < 0 || downloaded < 0 {
        return Err(garbage("invalid amount uploaded or downloaded"));
    }
    let numwant = match p.int(slot::NUMWANT, "invalid numwant")? {
        None => None,
        Some(n) if n < 0 => return Err(garbage("invalid numwant")),
        Some(n) => Some(n.min(1 << 20) as usize),
    };
    let ip = match p.get(slot::IP).as_deref() {
        None | Some(b"") => None,
        Some(v) => Some(String::from_utf8(v.to_vec()).map_err(|_| garbage("invalid ip"))?),
    };
    Ok(AnnounceRequest {
        info_hash,
        peer_id,
        port: port as u16,
        uploaded: uploaded as u64,
        downloaded: downloaded as u64,
        left: left as u64,
        event,
        compact: p.flag(slot::COMPACT),
        no_peer_id: p.flag(slot::NO_PEER_ID),
        numwant,
        key: p.get(slot::KEY).map(|v| v.to_vec()),
        ip,
        supportcrypto: p.flag(slot::SUPPORTCRYPTO),
        requirecrypto: p.flag(slot::REQUIRECRYPTO),
        trackerid: p.get(slot::TRACKERID).map(|v| v.to_vec()),
        tracker: p.get(slot::TRACKER).is_some(),
        scrape: p.get(slot::SCRAPE).is_some(),
        seed_id: p.get(slot::SEED_ID).map(|v| v.to_vec()),
        check_seeded: p.get(slot::CHECK_SEEDED).is_some(),
        password: p.get(slot::PASSWORD).map(|v| v.to_vec()),
    })
}

/// Parses a scrape query string. Every `info_hash` is used (bttrack); PHP's `info_hash[]` too.
pub fn parse_scrape(query: &[u8]) -> Result<ScrapeRequest, RequestError> {
    let p = Params::parse(query)?;
    let mut hashes = Vec::new();
    for v in p.all("info_hash").chain(p.all("info_hash[]")) {
        if hashes.len() == MAX_SCRAPE_HASHES {
            return Err(garbage(format!(
                "more than {MAX_SCRAPE_HASHES} info hashes"
            )));
        }
        hashes.push(hash20(&v, "info hash")?);
    }
    Ok(ScrapeRequest {
        info_hashes: if hashes.is_empty() {
            None
        } else {
            Some(hashes)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: &str = "%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13%14";

    fn q(extra: &str) -> String {
        format!("info_hash={IH}&peer_id=-XX0001-abcdefghijkl&port=6881&left=5{extra}")
    }

    #[test]
    fn parses_every_bttrack_parameter() {
        let r = parse_announce(
            q("&uploaded=1&downloaded=2&event=started&compact=1&no_peer_id=1&numwant=7&key=k&ip=10.0.0.1&supportcrypto=1&requirecrypto=1&cryptoport=7000&trackerid=t")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.info_hash[0], 1);
        assert_eq!(r.info_hash[19], 0x14);
        assert_eq!(&r.peer_id, b"-XX0001-abcdefghijkl");
        assert_eq!(r.port, 7000);
        assert_eq!((r.uploaded, r.downloaded, r.left), (1, 2, 5));
        assert_eq!(r.event, Event::Started);
        assert!(r.compact && r.no_peer_id && r.supportcrypto && r.requirecrypto);
        assert_eq!(r.numwant, Some(7));
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(r.trackerid.as_deref(), Some(&b"t"[..]));
        let snooped = parse_announce(q("&event=snooped").as_bytes()).unwrap();
        assert_eq!(snooped.event, Event::Snooped);
    }

    #[test]
    fn compact_zero_is_not_compact() {
        assert!(!parse_announce(q("&compact=0").as_bytes()).unwrap().compact);
        assert!(parse_announce(q("&compact=1").as_bytes()).unwrap().compact);
    }

    #[test]
    fn announce_names_decoded_first_value_wins_unknown_ignored() {
        let q = b"info%5Fhash=%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01\
&peer_id=abcdefghijklmnopqrst&port=1&port=2&left=0&compact=0&compact=1&no_peer_id=x&unknown=9&ip=";
        let a = parse_announce(q).unwrap();
        assert_eq!(a.info_hash, [1; 20], "an escaped name is matched decoded");
        assert_eq!(a.port, 1, "the first value wins");
        assert!(!a.compact, "compact=0 first");
        assert!(a.no_peer_id, "a non-numeric non-empty flag is true");
        assert_eq!(a.ip, None, "an empty ip is none");
        // Too many parameters outranks a parameter that is too long, as split_query did.
        let mut long = format!("info_hash={}", "a".repeat(MAX_ENCODED_VALUE + 1));
        for i in 0..crate::query::MAX_PARAMS {
            long.push_str(&format!("&p{i}=1"));
        }
        assert_eq!(
            parse_announce(long.as_bytes()),
            Err(garbage("too many parameters"))
        );
        let long = format!("peer_id={}&info_hash=x", "a".repeat(MAX_ENCODED_VALUE + 1));
        assert_eq!(
            parse_announce(long.as_bytes()),
            Err(garbage("parameter too long"))
        );
    }

    #[test]
    fn bttrack_error_texts() {
        let e = |s: &str| parse_announce(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(e("peer_id=x"), "you sent me garbage - no info hash");
        assert_eq!(
            e(&format!("info_hash={IH}&peer_id=short&port=1&left=0")),
            "you sent me garbage - id not of length 20"
        );
        assert_eq!(e(&q("&event=bogus")), "you sent me garbage - invalid event");
        assert_eq!(
            e(&q("&port=70000").replace("port=6881&", "")),
            "you sent me garbage - invalid port"
        );
        assert_eq!(
            e(&q("").replace("left=5", "left=x")),
            "you sent me garbage - invalid amount left"
        );
        assert_eq!(
            e(&q("").replace("left=5", "left=-1")),
            "you sent me garbage - invalid amount left"
        );
        assert_eq!(
            e("info_hash=abc&peer_id=-XX0001-abcdefghijkl"),
            "you sent me garbage - info hash not of length 20"
        );
    }

    #[test]
    fn scrape_takes_every_hash() {
        let s = parse_scrape(format!("info_hash={IH}&info_hash={IH}").as_bytes()).unwrap();
        assert_eq!(s.info_hashes.unwrap().len(), 2);
        assert_eq!(parse_scrape(b"").unwrap().info_hashes, None);
        assert!(parse_scrape(b"info_hash=short").is_err());
    }
}
