//! HTTP tracker protocol: the announce query as BitTornado lays it out, and the announce and scrape replies.
//!
//! Query layout (BitTornado 0.3.18 `BT1/Rerequester.py`, reproduced parameter for parameter so bttrack-era trackers
//! see exactly what they always saw):
//!
//! ```text
//! info_hash=<q>&peer_id=<q>
//! [&supportcrypto=1[&requirecrypto=1]]&port=<p>      (stealth: port=0&cryptoport=<p>)
//! [&seed_id=<q>][&check_seeded=1]
//! &uploaded=<n>&downloaded=<n>&left=<n>
//! [&last=<v>][&trackerid=<q>]
//! &numwant=0 | [&numwant=<n>]&no_peer_id=1&compact=1
//! [&event=started|completed|stopped]
//! [&ip=<ip>]
//! &key=<6 chars>
//! ```
//!
//! Replies are read with the zero-allocation [`Reader`]: the compact peer strings stay borrowed from the body and are
//! decoded lazily by [`AnnounceReply::peers`]; only the old dictionary form of `peers` allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cyclone_metainfo::bencode::{DecodeError, DecodeOptions, Limits, Mode, Reader, ValueType};

use super::http_response::HttpResponse;
use super::url::TrackerUrl;
use super::{message_text, AnnounceParams, CryptoPolicy, Peer, ReplyLimits, SwarmCounts};

/// Longest `tracker id` we keep and echo back; a longer one is ignored so it cannot grow every later URL.
pub const MAX_TRACKER_ID_BYTES: usize = 256;

/// Why an announce or scrape reply is unusable. The texts are BitTornado's, so users of both see the same messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The tracker answered with `failure reason`.
    #[error("rejected by tracker - {0}")]
    Rejected(String),
    /// The body is not bencode, or a key has the wrong type.
    #[error("bad data from tracker - {0}")]
    BadData(String),
    /// An empty body.
    #[error("no data from tracker")]
    NoData,
    /// The body is larger than [`ReplyLimits::max_body_bytes`].
    #[error("bad data from tracker - reply of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge { length: usize, max: usize },
    /// A status other than 200 whose body is not a bencoded `failure reason` (BitTornado's `zurllib` message).
    #[error("Problem connecting to tracker - HTTP Error {status}: {reason}")]
    HttpStatus { status: u16, reason: String },
    /// No complete reply within the timeout (BitTornado `--http_timeout`, default [`DEFAULT_HTTP_TIMEOUT`]; for UDP,
    /// the end of the retransmit ladder). Produced by the caller that owns the clock and the socket.
    #[error("Problem connecting to tracker - timeout exceeded")]
    Timeout,
    /// The connection failed (refused, reset, DNS); the text is the OS error. Produced by the caller.
    #[error("Problem connecting to tracker - {0}")]
    Connect(String),
}

/// BitTornado's `--http_timeout`: how long one tracker request may take.
pub const DEFAULT_HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How a tracker's `warning message` is shown (BitTornado's text).
pub fn warning_text(warning: &str) -> String {
    format!("warning from tracker - {warning}")
}

/// The announce reply in an HTTP response. As BitTornado's `zurllib`: a non-200 response whose body is a bencoded
/// `failure reason` is that rejection; any other non-200 response is an [`AnnounceError::HttpStatus`]. Redirects are
/// the caller's to follow first ([`HttpResponse::redirect`]).
pub fn announce_from_http<'a>(
    response: &'a HttpResponse<'_>,
    limits: &ReplyLimits,
) -> Result<AnnounceReply<'a>, AnnounceError> {
    let parsed = parse_announce(&response.body, limits);
    if response.status == 200 {
        return parsed;
    }
    Err(non_200(response, parsed.err(), limits))
}

/// The scrape reply in an HTTP response; non-200 handled as in [`announce_from_http`].
pub fn scrape_from_http(
    response: &HttpResponse<'_>,
    limits: &ReplyLimits,
) -> Result<ScrapeReply, AnnounceError> {
    let parsed = parse_scrape(&response.body, limits);
    if response.status == 200 {
        return parsed;
    }
    Err(non_200(response, parsed.err(), limits))
}

fn non_200(
    response: &HttpResponse<'_>,
    parse_error: Option<AnnounceError>,
    limits: &ReplyLimits,
) -> AnnounceError {
    match parse_error {
        Some(rejected @ AnnounceError::Rejected(_)) => rejected,
        _ => AnnounceError::HttpStatus {
            status: response.status,
            reason: message_text(response.reason.as_bytes(), limits.max_message_bytes),
        },
    }
}

/// Appends `bytes` percent-encoded: everything but RFC 3986 unreserved characters becomes `%XX` (upper-case hex).
///
/// BitTornado uses Python 2's `urllib.quote`, which also leaves `/` raw (and encodes `~`). A raw `/` inside a query
/// value is legal but some trackers split on it, so cyclone encodes it; every tracker decodes both forms the same.
pub fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xF)] as char);
        }
    }
}

/// Appends `query` to `url` the way BitTornado does: after `?`, or after `&` when the URL already has a query
/// (a passkey, say). A URL ending in `?` or `&` gets no extra separator (BitTornado would send `?&`, harmless but
/// untidy). A `#fragment` is never sent to a server, so it is dropped.
fn join_query(url: &str, query: &str) -> String {
    let url = url.split('#').next().unwrap_or(url);
    let mut out = String::with_capacity(url.len() + 1 + query.len());
    out.push_str(url);
    match url.find('?') {
        None => out.push('?'),
        Some(_) if url.ends_with('?') || url.ends_with('&') => {}
        Some(_) => out.push('&'),
    }
    out.push_str(query);
    out
}

/// The announce query string (without `?`), in BitTornado's order.
pub fn announce_query(p: &AnnounceParams<'_>) -> String {
    let mut q = String::with_capacity(256);
    q.push_str("info_hash=");
    percent_encode_into(&mut q, &p.info_hash);
    q.push_str("&peer_id=");
    percent_encode_into(&mut q, &p.peer_id);
    match p.crypto {
        CryptoPolicy::Plain => q.push_str("&port="),
        CryptoPolicy::Supported => q.push_str("&supportcrypto=1&port="),
        CryptoPolicy::Required => q.push_str("&supportcrypto=1&requirecrypto=1&port="),
        CryptoPolicy::RequiredStealth => {
            q.push_str("&supportcrypto=1&requirecrypto=1&port=0&cryptoport=")
        }
    }
    q.push_str(&p.port.to_string());
    if let Some(seed_id) = p.seed_id.filter(|s| !s.is_empty()) {
        q.push_str("&seed_id=");
        percent_encode_into(&mut q, seed_id);
    }
    if p.check_seeded {
        q.push_str("&check_seeded=1");
    }
    q.push_str(&format!(
        "&uploaded={}&downloaded={}&left={}",
        p.uploaded, p.downloaded, p.left
    ));
    if let Some(last) = p.last {
        q.push_str(&format!("&last={last}"));
    }
    if let Some(id) = p.tracker_id {
        q.push_str("&trackerid=");
        percent_encode_into(&mut q, id);
    }
    match p.numwant {
        Some(0) => q.push_str("&numwant=0"),
        Some(n) => q.push_str(&format!("&numwant={n}&no_peer_id=1&compact=1")),
        None => q.push_str("&no_peer_id=1&compact=1"),
    }
    if let Some(event) = p.event {
        q.push_str("&event=");
        q.push_str(event.http_name());
    }
    if let Some(ip) = p.ip {
        q.push_str("&ip=");
        percent_encode_into(&mut q, ip.to_string().as_bytes());
    }
    q.push_str("&key=");
    for &c in &p.key.http_text() {
        q.push(c as char);
    }
    q
}

/// The full announce URL for `tracker_url` (as written in the torrent).
pub fn announce_url(tracker_url: &str, p: &AnnounceParams<'_>) -> String {
    join_query(tracker_url, &announce_query(p))
}

/// Most redirects followed for one request (BitTornado's `zurllib` follows 10).
pub const MAX_REDIRECTS: usize = 10;

/// The HTTP/1.0 GET request for `target` (a path and query) on `tracker`'s host. HTTP/1.0 with `Connection: close`
/// because every tracker since bttrack answers it well, and it lets the reply end at EOF when a tracker sends no
/// length. No `Accept-Encoding`: we do not want gzip. `user_agent` is the caller's constant (never input); `target`
/// comes from a parsed URL plus percent-encoded parameters, so neither can smuggle a line break into the request.
pub fn request_bytes(tracker: &TrackerUrl, target: &str, user_agent: &str) -> Vec<u8> {
    debug_assert!(!target.contains(['\r', '\n', ' ']) && !user_agent.contains(['\r', '\n']));
    format!(
        "GET {target} HTTP/1.0\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n",
        tracker.host_header(),
    )
    .into_bytes()
}

/// The whole announce request for `tracker`. Built from the parsed URL rather than [`announce_url`] so the
/// parameters never count against the URL length limit.
pub fn announce_request(tracker: &TrackerUrl, p: &AnnounceParams<'_>, user_agent: &str) -> Vec<u8> {
    let target = join_query(&tracker.path_and_query, &announce_query(p));
    request_bytes(tracker, &target, user_agent)
}

/// The whole scrape request for `tracker` and `info_hashes`, or `None` if its URL does not follow the scrape
/// convention ([`scrape_base`]).
pub fn scrape_request(
    tracker: &TrackerUrl,
    info_hashes: &[[u8; 20]],
    user_agent: &str,
) -> Option<Vec<u8>> {
    let path = scrape_path(&tracker.path_and_query)?;
    let target = with_info_hashes(&path, info_hashes);
    Some(request_bytes(tracker, &target, user_agent))
}

/// A parsed announce reply. Compact peer strings are borrowed from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceReply<'a> {
    /// Seconds until the next regular announce (`interval`).
    pub interval: Option<u32>,
    /// Seconds the tracker wants between any two announces (`min interval`).
    pub min_interval: Option<u32>,
    /// `tracker id`, to echo back as `trackerid`.
    pub tracker_id: Option<&'a [u8]>,
    /// `warning message`; show it as `warning from tracker - <msg>`.
    pub warning: Option<String>,
    pub counts: SwarmCounts,
    /// The legacy `last` value, echoed back as `&last=`.
    pub last: Option<u64>,
    /// The tracker flagged the torrent as seeded by a dedicated seed (`seeded`; see `--dedicated_seed_id`).
    pub seeded: bool,
    /// Peers dropped: over [`ReplyLimits::max_peers`], or not dialable (port 0, a host name instead of an IP). A
    /// compact entry with port 0 still uses a slot of the cap.
    pub dropped_peers: usize,
    compact_v4: &'a [u8],
    compact_v6: &'a [u8],
    dict_peers: Vec<Peer>,
    /// One byte per entry of `peers` (not `peers6`), when its length matched.
    crypto_flags: Option<&'a [u8]>,
    /// Compact entries with port 0 inside `compact_v4`/`compact_v6` (skipped by `peers()`).
    zero_ports: usize,
}

impl<'a> AnnounceReply<'a> {
    /// Every kept peer: `peers` (compact or dictionary form) first, then `peers6`.
    pub fn peers(&self) -> impl Iterator<Item = Peer> + '_ {
        let flags = self.crypto_flags;
        let v4 = self
            .compact_v4
            .chunks_exact(6)
            .enumerate()
            .map(move |(i, c)| Peer {
                addr: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                    u16::from_be_bytes([c[4], c[5]]),
                ),
                peer_id: None,
                requires_crypto: flags.and_then(|f| f.get(i)).map(|&b| b & 1 == 1),
            });
        let v6 = self.compact_v6.chunks_exact(18).map(|c| {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&c[..16]);
            Peer {
                addr: SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(ip)),
                    u16::from_be_bytes([c[16], c[17]]),
                ),
                peer_id: None,
                requires_crypto: None,
            }
        });
        v4.chain(self.dict_peers.iter().copied())
            .chain(v6)
            .filter(|p| p.addr.port() != 0)
    }

    /// How many peers [`AnnounceReply::peers`] yields.
    pub fn peer_count(&self) -> usize {
        self.compact_v4.len() / 6 + self.dict_peers.len() + self.compact_v6.len() / 18
            - self.zero_ports
    }
}

fn decode_options(limits: &ReplyLimits) -> DecodeOptions {
    let small = Limits::small_message();
    DecodeOptions {
        // Trackers in the wild write unsorted keys and trailing newlines; neither changes the meaning.
        mode: Mode::Lenient,
        limits: Limits {
            max_input_bytes: limits.max_body_bytes,
            max_string_bytes: limits.max_body_bytes,
            // Dictionary peers cost ~7 values each; leave room for the cap plus the other keys.
            max_items: small
                .max_items
                .max(limits.max_peers.saturating_mul(8).saturating_add(64)),
            ..small
        },
    }
}

fn bad(e: DecodeError) -> AnnounceError {
    AnnounceError::BadData(e.to_string())
}

fn check_size(body: &[u8], limits: &ReplyLimits) -> Result<(), AnnounceError> {
    if body.is_empty() {
        return Err(AnnounceError::NoData);
    }
    if body.len() > limits.max_body_bytes {
        return Err(AnnounceError::TooLarge {
            length: body.len(),
            max: limits.max_body_bytes,
        });
    }
    Ok(())
}

/// Reads a standalone raw value (a span captured with `skip`) as one integer, if it is one.
fn raw_int(raw: &[u8], opts: &DecodeOptions) -> Option<i64> {
    let mut r = Reader::new(raw, opts).ok()?;
    r.read_int().ok()
}

fn raw_bytes<'a>(raw: &'a [u8], opts: &DecodeOptions) -> Option<&'a [u8]> {
    let mut r = Reader::new(raw, opts).ok()?;
    r.read_bytes().ok()
}

/// A positive integer number of seconds (BitTornado rejects zero and negatives), saturated to `u32`.
fn positive_seconds(raw: &[u8], opts: &DecodeOptions, key: &str) -> Result<u32, AnnounceError> {
    match raw_int(raw, opts) {
        Some(v) if v > 0 => Ok(u32::try_from(v).unwrap_or(u32::MAX)),
        _ => Err(AnnounceError::BadData(format!(
            "'{key}' is not a positive integer"
        ))),
    }
}

fn count(raw: Option<&[u8]>, opts: &DecodeOptions) -> Option<u64> {
    raw.and_then(|r| raw_int(r, opts))
        .and_then(|v| u64::try_from(v).ok())
}

/// The raw spans of the top-level keys a reply parser cares about.
struct TopLevel<'a, const N: usize> {
    values: [Option<&'a [u8]>; N],
}

/// Walks the top-level dictionary once, validating all of it, and keeps the raw span of each key in `keys`.
fn top_level<'a, const N: usize>(
    body: &'a [u8],
    opts: &DecodeOptions,
    keys: [&[u8]; N],
) -> Result<TopLevel<'a, N>, AnnounceError> {
    let mut r = Reader::new(body, opts).map_err(bad)?;
    if r.peek_type().map_err(bad)? != ValueType::Dict {
        return Err(AnnounceError::BadData("reply is not a dictionary".into()));
    }
    let mut values = [None; N];
    let mut d = r.begin_dict().map_err(bad)?;
    while let Some(key) = d.next_key(&mut r).map_err(bad)? {
        let raw = r.skip().map_err(bad)?;
        if let Some(i) = keys.iter().position(|k| *k == key) {
            values[i] = Some(raw);
        }
    }
    r.finish().map_err(bad)?;
    Ok(TopLevel { values })
}

fn rejection(raw: &[u8], opts: &DecodeOptions, limits: &ReplyLimits) -> AnnounceError {
    match raw_bytes(raw, opts) {
        Some(reason) => AnnounceError::Rejected(message_text(reason, limits.max_message_bytes)),
        None => AnnounceError::BadData("'failure reason' is not a string".into()),
    }
}

const K_FAILURE: usize = 0;
const K_WARNING: usize = 1;
const K_INTERVAL: usize = 2;
const K_MIN_INTERVAL: usize = 3;
const K_TRACKER_ID: usize = 4;
const K_COMPLETE: usize = 5;
const K_INCOMPLETE: usize = 6;
const K_PEERS: usize = 7;
const K_PEERS6: usize = 8;
const K_CRYPTO: usize = 9;
const K_LAST: usize = 10;
const K_SEEDED: usize = 11;
const K_DOWNLOADED: usize = 12;

/// Parses an announce reply body.
///
/// Rules (BitTornado `btformats.check_peers` + `Rerequester.postrequest`, with BEP 7 `peers6` added):
/// - `failure reason` wins over everything else: the reply is a rejection even if other keys are malformed.
/// - `interval` and `min interval`, if present, must be positive integers; `tracker id` a string; `last` a
///   non-negative integer. Otherwise the reply is bad data.
/// - `peers` is a string of 6-byte entries (length a multiple of 6) or a list of dictionaries with a string `ip`, an
///   integer `port` and an optional 20-byte `peer id`; `peers6` a string of 18-byte entries. Entries that cannot be
///   dialled (port 0 or out of range, a host name instead of an IP literal: this module does no DNS) are dropped and
///   counted, not fatal. BitTornado requires `peers`; cyclone accepts its absence as "no peers", as modern trackers
///   omit it in replies to `stopped`.
/// - `crypto_flags` is used only when it has exactly one byte per `peers` entry (before the cap), as in BitTornado.
/// - `complete`/`incomplete` of the wrong type are ignored (they are informational).
pub fn parse_announce<'a>(
    body: &'a [u8],
    limits: &ReplyLimits,
) -> Result<AnnounceReply<'a>, AnnounceError> {
    check_size(body, limits)?;
    let opts = decode_options(limits);
    let top = top_level(
        body,
        &opts,
        [
            b"failure reason",
            b"warning message",
            b"interval",
            b"min interval",
            b"tracker id",
            b"complete",
            b"incomplete",
            b"peers",
            b"peers6",
            b"crypto_flags",
            b"last",
            b"seeded",
            b"downloaded",
        ],
    )?;
    let v = &top.values;
    if let Some(raw) = v[K_FAILURE] {
        return Err(rejection(raw, &opts, limits));
    }
    let interval = v[K_INTERVAL]
        .map(|r| positive_seconds(r, &opts, "interval"))
        .transpose()?;
    let min_interval = v[K_MIN_INTERVAL]
        .map(|r| positive_seconds(r, &opts, "min interval"))
        .transpose()?;
    let tracker_id = match v[K_TRACKER_ID] {
        None => None,
        Some(raw) => {
            let id = raw_bytes(raw, &opts)
                .ok_or_else(|| AnnounceError::BadData("'tracker id' is not a string".into()))?;
            (id.len() <= MAX_TRACKER_ID_BYTES).then_some(id)
        }
    };
    let last = match v[K_LAST] {
        None => None,
        Some(raw) => Some(count(Some(raw), &opts).ok_or_else(|| {
            AnnounceError::BadData("'last' is not a non-negative integer".into())
        })?),
    };
    let warning = v[K_WARNING]
        .and_then(|r| raw_bytes(r, &opts))
        .map(|w| message_text(w, limits.max_message_bytes));
    let seeded = v[K_SEEDED]
        .and_then(|r| raw_int(r, &opts))
        .is_some_and(|s| s != 0);
    let counts = SwarmCounts {
        complete: count(v[K_COMPLETE], &opts),
        incomplete: count(v[K_INCOMPLETE], &opts),
        downloaded: count(v[K_DOWNLOADED], &opts),
    };

    let mut budget = limits.max_peers;
    let mut dropped = 0usize;
    let mut compact_v4: &[u8] = &[];
    let mut dict_peers = Vec::new();
    let mut entries_in_peers = 0usize;
    if let Some(raw) = v[K_PEERS] {
        let mut r = Reader::new(raw, &opts).map_err(bad)?;
        match r.peek_type().map_err(bad)? {
            ValueType::Bytes => {
                let all = r.read_bytes().map_err(bad)?;
                if !all.len().is_multiple_of(6) {
                    return Err(AnnounceError::BadData(format!(
                        "compact 'peers' of {} bytes is not a multiple of 6",
                        all.len()
                    )));
                }
                entries_in_peers = all.len() / 6;
                let kept = entries_in_peers.min(budget);
                compact_v4 = &all[..kept * 6];
                dropped += entries_in_peers - kept;
                budget -= kept;
            }
            ValueType::List => {
                r.begin_list().map_err(bad)?;
                while r.next_in_list().map_err(bad)? {
                    match dict_peer(&mut r)? {
                        Some(peer) if budget > 0 => {
                            budget -= 1;
                            dict_peers.push((entries_in_peers, peer));
                        }
                        _ => dropped += 1,
                    }
                    entries_in_peers += 1;
                }
            }
            other => {
                return Err(AnnounceError::BadData(format!(
                    "'peers' is {}, not a string or a list",
                    other.name()
                )))
            }
        }
    }
    let crypto_flags = v[K_CRYPTO]
        .and_then(|r| raw_bytes(r, &opts))
        .filter(|f| f.len() == entries_in_peers);
    // Flags index the entries of `peers` as sent, dropped ones included.
    let dict_peers: Vec<Peer> = dict_peers
        .into_iter()
        .map(|(index, mut peer)| {
            peer.requires_crypto = crypto_flags.and_then(|f| f.get(index)).map(|&b| b & 1 == 1);
            peer
        })
        .collect();
    let mut compact_v6: &[u8] = &[];
    if let Some(raw) = v[K_PEERS6] {
        let all = raw_bytes(raw, &opts)
            .ok_or_else(|| AnnounceError::BadData("'peers6' is not a string".into()))?;
        if !all.len().is_multiple_of(18) {
            return Err(AnnounceError::BadData(format!(
                "'peers6' of {} bytes is not a multiple of 18",
                all.len()
            )));
        }
        let n = all.len() / 18;
        let kept = n.min(budget);
        compact_v6 = &all[..kept * 18];
        dropped += n - kept;
    }
    // Compact entries with port 0 cannot be dialled either: count them as dropped; `peers()` skips them.
    let zero_ports = compact_v4
        .chunks_exact(6)
        .filter(|c| c[4] == 0 && c[5] == 0)
        .count()
        + compact_v6
            .chunks_exact(18)
            .filter(|c| c[16] == 0 && c[17] == 0)
            .count();
    dropped += zero_ports;
    Ok(AnnounceReply {
        interval,
        min_interval,
        tracker_id,
        warning,
        counts,
        last,
        seeded,
        dropped_peers: dropped,
        compact_v4,
        compact_v6,
        dict_peers,
        crypto_flags,
        zero_ports,
    })
}

/// One `{ip, port[, peer id]}` entry. Type errors are bad data (BitTornado rejects the whole reply); an entry with a
/// host name or an unusable port is `None` (dropped).
fn dict_peer(r: &mut Reader<'_, '_>) -> Result<Option<Peer>, AnnounceError> {
    if r.peek_type().map_err(bad)? != ValueType::Dict {
        return Err(AnnounceError::BadData(
            "an entry of 'peers' is not a dictionary".into(),
        ));
    }
    let mut ip = None;
    let mut port = None;
    let mut peer_id = None;
    let mut d = r.begin_dict().map_err(bad)?;
    while let Some(key) = d.next_key(r).map_err(bad)? {
        match key {
            b"ip" => {
                if r.peek_type().map_err(bad)? != ValueType::Bytes {
                    return Err(AnnounceError::BadData(
                        "a peer's 'ip' is not a string".into(),
                    ));
                }
                ip = Some(r.read_bytes().map_err(bad)?);
            }
            b"port" => {
                if r.peek_type().map_err(bad)? != ValueType::Int {
                    return Err(AnnounceError::BadData(
                        "a peer's 'port' is not an integer".into(),
                    ));
                }
                port = Some(r.read_int().map_err(bad)?);
            }
            b"peer id" => {
                let id = match r.peek_type().map_err(bad)? {
                    ValueType::Bytes => r.read_bytes().map_err(bad)?,
                    _ => &[][..],
                };
                let id: [u8; 20] = id.try_into().map_err(|_| {
                    AnnounceError::BadData("a peer's 'peer id' is not 20 bytes".into())
                })?;
                peer_id = Some(id);
            }
            _ => {
                r.skip().map_err(bad)?;
            }
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Err(AnnounceError::BadData("a peer lacks 'ip' or 'port'".into()));
    };
    // BitTornado strips whitespace around the address.
    let ip = std::str::from_utf8(ip)
        .ok()
        .and_then(|s| s.trim().parse::<IpAddr>().ok());
    let port = u16::try_from(port).ok().filter(|&p| p != 0);
    Ok(match (ip, port) {
        (Some(ip), Some(port)) => Some(Peer {
            addr: SocketAddr::new(ip, port),
            peer_id,
            requires_crypto: None,
        }),
        _ => None,
    })
}

/// The scrape URL for an announce URL, by the convention of BEP 48: the last path component must begin with
/// `announce`, which becomes `scrape` (`/announce.php?pk=1` → `/scrape.php?pk=1`). `None` means the tracker does not
/// follow the convention and cannot be scraped.
pub fn scrape_base(announce_url: &str) -> Option<String> {
    let url = announce_url.split('#').next().unwrap_or(announce_url);
    let authority_start = url.find("://")? + 3;
    let tail_start = url[authority_start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority_start + i);
    let path = scrape_path(&url[tail_start..])?;
    Some(format!("{}{path}", &url[..tail_start]))
}

/// [`scrape_base`] on a path and query (`/x/announce.php?pk=1` → `/x/scrape.php?pk=1`).
pub fn scrape_path(path_and_query: &str) -> Option<String> {
    let path_end = path_and_query.find('?').unwrap_or(path_and_query.len());
    let slash = path_and_query[..path_end].rfind('/')?;
    let component = &path_and_query[slash + 1..path_end];
    if !component.starts_with("announce") {
        return None;
    }
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(&path_and_query[..slash + 1]);
    out.push_str("scrape");
    out.push_str(&path_and_query[slash + 1 + "announce".len()..]);
    Some(out)
}

/// `base` with one `info_hash` parameter per hash appended.
fn with_info_hashes(base: &str, info_hashes: &[[u8; 20]]) -> String {
    if info_hashes.is_empty() {
        return base.to_string();
    }
    let mut q = String::with_capacity(info_hashes.len() * 72);
    for (i, h) in info_hashes.iter().enumerate() {
        if i > 0 {
            q.push('&');
        }
        q.push_str("info_hash=");
        percent_encode_into(&mut q, h);
    }
    join_query(base, &q)
}

/// The scrape URL asking for `info_hashes` (each as a repeated `info_hash` parameter); `None` as for [`scrape_base`].
pub fn scrape_url(announce_url: &str, info_hashes: &[[u8; 20]]) -> Option<String> {
    Some(with_info_hashes(&scrape_base(announce_url)?, info_hashes))
}

/// A parsed scrape reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeReply {
    /// One entry per 20-byte key of `files`, in the order of the reply.
    pub files: Vec<([u8; 20], SwarmCounts)>,
    /// Entries dropped: over [`ReplyLimits::max_scrape_files`], or keyed by something that is not 20 bytes.
    pub dropped: usize,
}

/// Parses a scrape reply: `{files: {<20-byte hash>: {complete, incomplete, downloaded, [name]}}}`, or a
/// `failure reason`. Counts of the wrong type are `None`; a `files` that is not a dictionary, or an entry that is not
/// one, is bad data.
pub fn parse_scrape(body: &[u8], limits: &ReplyLimits) -> Result<ScrapeReply, AnnounceError> {
    check_size(body, limits)?;
    let opts = decode_options(limits);
    let top = top_level(body, &opts, [b"failure reason", b"files"])?;
    if let Some(raw) = top.values[0] {
        return Err(rejection(raw, &opts, limits));
    }
    let mut reply = ScrapeReply::default();
    let Some(raw) = top.values[1] else {
        return Err(AnnounceError::BadData("scrape reply has no 'files'".into()));
    };
    let mut r = Reader::new(raw, &opts).map_err(bad)?;
    if r.peek_type().map_err(bad)? != ValueType::Dict {
        return Err(AnnounceError::BadData("'files' is not a dictionary".into()));
    }
    let mut d = r.begin_dict().map_err(bad)?;
    while let Some(key) = d.next_key(&mut r).map_err(bad)? {
        if r.peek_type().map_err(bad)? != ValueType::Dict {
            return Err(AnnounceError::BadData(
                "an entry of 'files' is not a dictionary".into(),
            ));
        }
        let entry = r.skip().map_err(bad)?;
        let hash: Result<[u8; 20], _> = key.try_into();
        match hash {
            Ok(hash) if reply.files.len() < limits.max_scrape_files => {
                let e = top_level(entry, &opts, [b"complete", b"incomplete", b"downloaded"])?;
                reply.files.push((
                    hash,
                    SwarmCounts {
                        complete: count(e.values[0], &opts),
                        incomplete: count(e.values[1], &opts),
                        downloaded: count(e.values[2], &opts),
                    },
                ));
            }
            _ => reply.dropped += 1,
        }
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::{Event, Key};

    fn params() -> AnnounceParams<'static> {
        AnnounceParams {
            info_hash: *b"\x00\x01 /~-._AZaz\xff\xfe%&?=+:",
            peer_id: *b"-CY0001-abcdefghijkl",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: None,
            numwant: None,
            key: Key(0),
            ip: None,
            crypto: CryptoPolicy::Plain,
            seed_id: None,
            check_seeded: false,
            last: None,
            tracker_id: None,
        }
    }

    const IH: &str = "%00%01%20%2F~-._AZaz%FF%FE%25%26%3F%3D%2B%3A";

    #[test]
    fn minimal_query_layout() {
        let q = announce_query(&params());
        assert_eq!(
            q,
            format!(
                "info_hash={IH}&peer_id=-CY0001-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3\
                 &no_peer_id=1&compact=1&key=000000"
            )
        );
    }

    #[test]
    fn full_query_layout_in_bittornado_order() {
        let mut p = params();
        p.crypto = CryptoPolicy::Supported;
        p.seed_id = Some(b"seed me");
        p.check_seeded = true;
        p.last = Some(7);
        p.tracker_id = Some(b"t/id");
        p.event = Some(Event::Started);
        p.ip = Some("10.0.0.1".parse().unwrap());
        p.key = Key(1);
        assert_eq!(
            announce_query(&p),
            format!(
                "info_hash={IH}&peer_id=-CY0001-abcdefghijkl&supportcrypto=1&port=6881&seed_id=seed%20me\
                 &check_seeded=1&uploaded=1&downloaded=2&left=3&last=7&trackerid=t%2Fid&no_peer_id=1&compact=1\
                 &event=started&ip=10.0.0.1&key=100000"
            )
        );
    }

    #[test]
    fn crypto_and_numwant_variants() {
        let mut p = params();
        p.crypto = CryptoPolicy::Required;
        p.numwant = Some(0);
        p.event = Some(Event::Stopped);
        let q = announce_query(&p);
        assert!(
            q.contains("&supportcrypto=1&requirecrypto=1&port=6881&uploaded="),
            "{q}"
        );
        assert!(q.contains("&left=3&numwant=0&event=stopped&key="), "{q}");
        assert!(
            !q.contains("compact"),
            "numwant=0 replaces compact, as in BitTornado: {q}"
        );
        p.crypto = CryptoPolicy::RequiredStealth;
        p.numwant = Some(80);
        p.event = Some(Event::Completed);
        p.ip = Some("::1".parse().unwrap());
        let q = announce_query(&p);
        assert!(
            q.contains("&requirecrypto=1&port=0&cryptoport=6881&uploaded="),
            "{q}"
        );
        assert!(
            q.contains("&numwant=80&no_peer_id=1&compact=1&event=completed&ip=%3A%3A1&key="),
            "{q}"
        );
    }

    #[test]
    fn url_separator_follows_existing_query() {
        let p = params();
        let q = announce_query(&p);
        assert_eq!(
            announce_url("http://t/announce", &p),
            format!("http://t/announce?{q}")
        );
        assert_eq!(
            announce_url("http://t/announce?pk=1", &p),
            format!("http://t/announce?pk=1&{q}")
        );
        assert_eq!(
            announce_url("http://t/announce?", &p),
            format!("http://t/announce?{q}")
        );
        assert_eq!(
            announce_url("http://t/a?pk=1&", &p),
            format!("http://t/a?pk=1&{q}")
        );
        assert_eq!(
            announce_url("http://t/announce#x", &p),
            format!("http://t/announce?{q}")
        );
    }

    #[test]
    fn request_bytes_layout() {
        let url = TrackerUrl::parse("http://127.0.0.1:6969/announce?x=1").unwrap();
        let p = params();
        let request = announce_request(&url, &p, "cyclone/0.1");
        let want = format!(
            "GET /announce?x=1&{} HTTP/1.0\r\nHost: 127.0.0.1:6969\r\nUser-Agent: cyclone/0.1\r\n\
             Connection: close\r\n\r\n",
            announce_query(&p)
        );
        assert_eq!(String::from_utf8(request).unwrap(), want);
        // A tracker URL at the length limit still makes a request: the parameters are not part of the URL check.
        let long = format!(
            "http://t/announce?pk={}",
            "a".repeat(crate::announce::url::MAX_URL_BYTES - 25)
        );
        let url = TrackerUrl::parse(&long).unwrap();
        assert!(announce_request(&url, &p, "x").len() > crate::announce::url::MAX_URL_BYTES);

        let url = TrackerUrl::parse("http://[::1]/announce.php").unwrap();
        assert_eq!(
            String::from_utf8(scrape_request(&url, &[[b'a'; 20]], "ua").unwrap()).unwrap(),
            format!(
                "GET /scrape.php?info_hash={} HTTP/1.0\r\nHost: [::1]\r\nUser-Agent: ua\r\n\
                 Connection: close\r\n\r\n",
                "a".repeat(20)
            )
        );
        let url = TrackerUrl::parse("http://t/tracker").unwrap();
        assert_eq!(scrape_request(&url, &[], "ua"), None);
    }

    fn limits() -> ReplyLimits {
        ReplyLimits::default()
    }

    #[test]
    fn compact_reply_with_everything() {
        let body = b"d8:completei5e12:crypto_flags2:\x00\x0110:incompletei3e8:intervali1800e12:min intervali900e\
5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x506:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2\
10:tracker id3:abc15:warning message4:caree";
        let r = parse_announce(body, &limits()).unwrap();
        assert_eq!(r.interval, Some(1800));
        assert_eq!(r.min_interval, Some(900));
        assert_eq!(r.tracker_id, Some(&b"abc"[..]));
        assert_eq!(r.warning.as_deref(), Some("care"));
        assert_eq!(r.counts.complete, Some(5));
        assert_eq!(r.counts.incomplete, Some(3));
        let peers: Vec<Peer> = r.peers().collect();
        assert_eq!(r.peer_count(), 3);
        assert_eq!(peers[0].addr, "127.0.0.1:6881".parse().unwrap());
        assert_eq!(peers[0].requires_crypto, Some(false));
        assert_eq!(peers[1].addr, "10.0.0.2:80".parse().unwrap());
        assert_eq!(peers[1].requires_crypto, Some(true));
        assert_eq!(peers[2].addr, "[::1]:6882".parse().unwrap());
        assert_eq!(peers[2].requires_crypto, None);
        assert_eq!(r.dropped_peers, 0);
    }

    #[test]
    fn dict_peers_with_ids_hostnames_dropped() {
        let body = b"d8:intervali60e5:peersld2:ip10: 127.0.0.17:peer id20:AAAAAAAAAAAAAAAAAAAA4:porti7000eed2:ip9:host.name4:porti1eed2:ip3:::14:porti0eed2:ip3:::14:porti9eeee";
        let r = parse_announce(body, &limits()).unwrap();
        let peers: Vec<Peer> = r.peers().collect();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(peers[0].peer_id, Some(*b"AAAAAAAAAAAAAAAAAAAA"));
        assert_eq!(peers[1].addr, "[::1]:9".parse().unwrap());
        assert_eq!(r.dropped_peers, 2);
    }

    #[test]
    fn crypto_flags_apply_to_dictionary_peers_by_position() {
        // Three entries, the middle one undialable: flags still line up with the entries as sent.
        let body = b"d12:crypto_flags3:\x01\x00\x008:intervali60e5:peersld2:ip9:127.0.0.14:porti1eed2:ip1:x4:porti2eed2:ip9:127.0.0.34:porti3eeee";
        let r = parse_announce(body, &limits()).unwrap();
        let peers: Vec<(SocketAddr, Option<bool>)> =
            r.peers().map(|p| (p.addr, p.requires_crypto)).collect();
        assert_eq!(
            peers,
            [
                ("127.0.0.1:1".parse().unwrap(), Some(true)),
                ("127.0.0.3:3".parse().unwrap(), Some(false))
            ]
        );
        assert_eq!(r.dropped_peers, 1);
    }

    #[test]
    fn crypto_flags_of_wrong_length_are_ignored() {
        let body = b"d12:crypto_flags1:\x018:intervali60e5:peers12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x01\x1a\xe2e";
        let r = parse_announce(body, &limits()).unwrap();
        assert!(r.peers().all(|p| p.requires_crypto.is_none()));
    }

    #[test]
    fn peer_cap_applies_across_forms_and_flags_still_match() {
        let mut body = b"d12:crypto_flags3:\x01\x01\x018:intervali60e5:peers18:".to_vec();
        body.extend_from_slice(&[1, 2, 3, 4, 0, 1, 1, 2, 3, 5, 0, 1, 1, 2, 3, 6, 0, 1]);
        body.extend_from_slice(b"6:peers618:");
        body.extend_from_slice(&[0; 18]);
        body.push(b'e');
        let lim = ReplyLimits {
            max_peers: 2,
            ..limits()
        };
        let r = parse_announce(&body, &lim).unwrap();
        assert_eq!(r.peer_count(), 2);
        assert_eq!(r.dropped_peers, 2);
        assert!(r.peers().all(|p| p.requires_crypto == Some(true)));
    }

    #[test]
    fn failure_reason_wins_even_over_bad_fields() {
        let body = b"d14:failure reason9:not today8:intervali-5e5:peers5:xxxxxe";
        let e = parse_announce(body, &limits()).unwrap_err();
        assert_eq!(e, AnnounceError::Rejected("not today".into()));
        assert_eq!(e.to_string(), "rejected by tracker - not today");
        let e = parse_announce(b"d14:failure reasoni1ee", &limits()).unwrap_err();
        assert!(matches!(e, AnnounceError::BadData(_)));
    }

    #[test]
    fn bad_data_cases() {
        let cases: &[&[u8]] = &[
            b"le",
            b"i5e",
            b"d5:peers5:12345e",
            b"d6:peers617:12345678901234567e",
            b"d6:peers6i1ee",
            b"d5:peersi1ee",
            b"d8:intervali0e5:peers0:e",
            b"d8:interval2:60e5:peers0:e",
            b"d12:min intervali-1e5:peers0:e",
            b"d10:tracker idi1e5:peers0:e",
            b"d4:lasti-1e5:peers0:e",
            b"d5:peersli1eee",
            b"d5:peersld2:ipi1e4:porti1eeee",
            b"d5:peersld2:ip1:x4:port1:1eeee",
            b"d5:peersld4:porti1eeee",
            b"d5:peersld2:ip9:127.0.0.17:peer id3:abc4:porti1eeee",
            b"d5:peers0:",
            b"d5:peers0:ee",
            b"d5:peers0:5:peers0:e",
        ];
        for case in cases {
            let e = parse_announce(case, &limits()).unwrap_err();
            assert!(
                matches!(e, AnnounceError::BadData(_)),
                "{:?}: {e:?}",
                String::from_utf8_lossy(case)
            );
            assert!(e.to_string().starts_with("bad data from tracker - "));
        }
    }

    #[test]
    fn empty_oversized_and_lenient_bodies() {
        assert_eq!(parse_announce(b"", &limits()), Err(AnnounceError::NoData));
        let lim = ReplyLimits {
            max_body_bytes: 8,
            ..limits()
        };
        assert!(matches!(
            parse_announce(b"d5:peers0:e", &lim),
            Err(AnnounceError::TooLarge { length: 11, max: 8 })
        ));
        // Unsorted keys and a trailing newline are accepted; missing peers means none.
        let r = parse_announce(b"d8:intervali5e5:abcdei1ee\n", &limits()).unwrap();
        assert_eq!(r.interval, Some(5));
        assert_eq!(r.peer_count(), 0);
        // Huge intervals saturate instead of wrapping.
        let r = parse_announce(b"d8:intervali99999999999ee", &limits()).unwrap();
        assert_eq!(r.interval, Some(u32::MAX));
        // Oversized tracker ids are ignored, not echoed.
        let body = format!(
            "d10:tracker id{}:{}e",
            MAX_TRACKER_ID_BYTES + 1,
            "x".repeat(MAX_TRACKER_ID_BYTES + 1)
        );
        assert_eq!(
            parse_announce(body.as_bytes(), &limits())
                .unwrap()
                .tracker_id,
            None
        );
    }

    #[test]
    fn compact_port_zero_is_dropped() {
        let body = b"d5:peers12:\x7f\x00\x00\x01\x00\x00\x7f\x00\x00\x02\x00\x01e";
        let r = parse_announce(body, &limits()).unwrap();
        assert_eq!(r.peer_count(), 1);
        assert_eq!(r.dropped_peers, 1);
        assert_eq!(
            r.peers().map(|p| p.addr).collect::<Vec<_>>(),
            ["127.0.0.2:1".parse().unwrap()]
        );
    }

    #[test]
    fn http_status_handling() {
        use std::borrow::Cow;
        let resp = |status, body: &'static [u8]| HttpResponse {
            status,
            reason: "Nope",
            location: None,
            body: Cow::Borrowed(body),
        };
        let ok = resp(200, b"d8:intervali5ee");
        assert_eq!(
            announce_from_http(&ok, &limits()).unwrap().interval,
            Some(5)
        );
        let rejected = resp(400, b"d14:failure reason6:bannede");
        assert_eq!(
            announce_from_http(&rejected, &limits())
                .unwrap_err()
                .to_string(),
            "rejected by tracker - banned"
        );
        assert_eq!(
            scrape_from_http(&rejected, &limits()),
            Err(AnnounceError::Rejected("banned".into()))
        );
        let not_found = resp(
            404,
            b"your file may exist elsewhere in the universe\nbut alas, not here\n",
        );
        assert_eq!(
            announce_from_http(&not_found, &limits())
                .unwrap_err()
                .to_string(),
            "Problem connecting to tracker - HTTP Error 404: Nope"
        );
        // A 500 with a valid non-failure body is still an error.
        assert!(matches!(
            announce_from_http(&resp(500, b"d8:intervali5ee"), &limits()),
            Err(AnnounceError::HttpStatus { status: 500, .. })
        ));
    }

    #[test]
    fn caller_side_messages_are_bittornados() {
        assert_eq!(
            AnnounceError::Timeout.to_string(),
            "Problem connecting to tracker - timeout exceeded"
        );
        assert_eq!(
            AnnounceError::Connect("Connection refused (os error 111)".into()).to_string(),
            "Problem connecting to tracker - Connection refused (os error 111)"
        );
        assert_eq!(
            warning_text("slow down"),
            "warning from tracker - slow down"
        );
    }

    #[test]
    fn long_failure_reason_is_cut() {
        let lim = ReplyLimits {
            max_message_bytes: 4,
            ..limits()
        };
        assert_eq!(
            parse_announce(b"d14:failure reason10:0123456789e", &lim),
            Err(AnnounceError::Rejected("0123".into()))
        );
    }

    #[test]
    fn scrape_url_convention() {
        let cases = [
            (
                "http://example.com/announce",
                Some("http://example.com/scrape"),
            ),
            (
                "http://example.com/x/announce",
                Some("http://example.com/x/scrape"),
            ),
            (
                "http://example.com/announce.php",
                Some("http://example.com/scrape.php"),
            ),
            ("http://example.com/a", None),
            (
                "http://example.com/announce?x2%0644",
                Some("http://example.com/scrape?x2%0644"),
            ),
            (
                "http://example.com/announce?x=2/4",
                Some("http://example.com/scrape?x=2/4"),
            ),
            ("http://example.com/x%064announce", None),
            ("http://example.com/announce/x", None),
            ("http://announce", None),
            ("announce", None),
            ("http://example.com/a?b/announce", None),
            ("http://example.com?announce", None),
            (
                "udp://example.com:80/announce",
                Some("udp://example.com:80/scrape"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrape_base(input).as_deref(), want, "{input}");
        }
        assert_eq!(
            scrape_url("http://t/announce?pk=1", &[[0xAB; 20], [b'a'; 20]]).unwrap(),
            format!(
                "http://t/scrape?pk=1&info_hash={}&info_hash={}",
                "%AB".repeat(20),
                "a".repeat(20)
            )
        );
        assert_eq!(
            scrape_url("http://t/announce", &[]).unwrap(),
            "http://t/scrape"
        );
    }

    #[test]
    fn scrape_reply() {
        let body = b"d5:filesd20:AAAAAAAAAAAAAAAAAAAAd8:completei1e10:downloadedi2e10:incompletei3e4:name1:xe3:bad\
d8:completei1ee20:BBBBBBBBBBBBBBBBBBBBd8:complete1:xeee";
        let r = parse_scrape(body, &limits()).unwrap();
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.dropped, 1);
        assert_eq!(
            r.files[0],
            (
                *b"AAAAAAAAAAAAAAAAAAAA",
                SwarmCounts {
                    complete: Some(1),
                    incomplete: Some(3),
                    downloaded: Some(2)
                }
            )
        );
        assert_eq!(r.files[1].1, SwarmCounts::default());
        let lim = ReplyLimits {
            max_scrape_files: 1,
            ..limits()
        };
        let r = parse_scrape(body, &lim).unwrap();
        assert_eq!((r.files.len(), r.dropped), (1, 2));
        assert_eq!(
            parse_scrape(b"d14:failure reason2:noe", &limits()),
            Err(AnnounceError::Rejected("no".into()))
        );
        for bad_body in [
            &b"de"[..],
            b"d5:filesi1ee",
            b"d5:filesd20:AAAAAAAAAAAAAAAAAAAAi1eee",
            b"l",
        ] {
            assert!(matches!(
                parse_scrape(bad_body, &limits()),
                Err(AnnounceError::BadData(_))
            ));
        }
    }
}
