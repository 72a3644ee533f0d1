//! Outgoing multitracker polling (bttrack's T2T, `reference/seeds-behaviour.md` §3.9).
//!
//! With `--multitracker_enabled 1` and an allowed_dir, every (tracker URL in an allowed torrent's
//! `announce-list`, info-hash) pair is polled with bttrack's snoop announce
//! (`event=stopped&port=0&uploaded=0&downloaded=0&left=1&tracker=1&numwant=<maxpeers>`, this
//! tracker's id as `peer_id`, plus `compact=1` as BitTornado master sends, so a tracker requiring
//! compact answers). The peers returned are harvested into the torrent's swarm
//! ([`ShardState::harvest`]): listed to this tracker's clients, never counted, never saved, never
//! passed on to other trackers.
//!
//! Where it runs: each shard polls the pairs whose info-hash it owns, from a task on its own
//! executor, and stores the harvest in its own `ShardState`, so no swarm state crosses shards.
//! DNS runs on glommio's blocking pool (`cyclone_shard::http_client`).
//!
//! Schedule and failures, as bttrack's `T2TConnection`: first poll at a random time between a
//! tenth of the interval and the interval; then every interval, the other tracker's `interval`
//! if it answers one (never below ours: a remote cannot make us poll faster than configured);
//! a remote interval over 3x ours scales `numwant` up by the ratio; `failure reason: disallowed`
//! stops all polling of that tracker (on this shard); any other failure reason three times in a
//! row stops that pair; from the third consecutive error on, each error lengthens the interval by
//! one base interval. A URL that points at this tracker itself is never polled; if it slips
//! through (a name we cannot recognise), our own answer to our id is `disallowed`, which stops it.
//!
//! Bounds: ≤ [`MAX_PAIRS_PER_SHARD`] pairs, ≤ [`MAX_POLLS_IN_FLIGHT`] polls in flight per shard,
//! answers ≤ [`MAX_ANSWER_BYTES`], each poll within `--http_timeout`, ≤
//! [`crate::swarm::MAX_HARVESTED_PER_SWARM`] harvested peers per torrent. `https://` and other
//! schemes are reported once and not polled.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cyclone_metainfo::bencode;
use cyclone_shard::http_client::{self, HttpClientError, HttpUrl};

use crate::request::{InfoHash, PeerId};
use crate::server::Shared;
use crate::swarm::{AllowedSet, ShardState, MAX_HARVESTED_PER_SWARM, UNKNOWN_PEER_ID};

/// Most (tracker, torrent) pairs one shard polls.
pub const MAX_PAIRS_PER_SHARD: usize = 65_536;
/// Most polls in flight per shard.
pub const MAX_POLLS_IN_FLIGHT: usize = 16;
/// Largest answer read from another tracker (head and body).
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Longest interval between two polls of a pair, whatever the other tracker asks.
pub const MAX_POLL_INTERVAL: u64 = 86_400;

/// This tracker's peer id in its polls (bttrack's `trackerid`); an incoming poll carrying it is
/// answered `disallowed`, so a tracker never polls itself for long.
pub type TrackerId = [u8; 20];

/// A fresh tracker id: `-CYT01-` and 13 random alphanumerics.
pub fn new_tracker_id() -> TrackerId {
    let mut id = [0u8; 20];
    id[..7].copy_from_slice(b"-CYT01-");
    for b in &mut id[7..] {
        *b = fastrand::alphanumeric() as u8;
    }
    id
}

/// The request target of one poll: the announce URL's path and query, then bttrack's snoop.
pub fn poll_target(base: &HttpUrl, ih: &InfoHash, id: &TrackerId, numwant: u64) -> String {
    let mut t = base.target.clone();
    t.push(if t.contains('?') { '&' } else { '?' });
    t.push_str("info_hash=");
    crate::query::percent_encode_into(&mut t, ih);
    t.push_str("&peer_id=");
    crate::query::percent_encode_into(&mut t, id);
    t.push_str(&format!(
        "&event=stopped&port=0&uploaded=0&downloaded=0&left=1&tracker=1&numwant={numwant}&compact=1"
    ));
    t
}

/// What one poll gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    Peers {
        interval: Option<u64>,
        peers: Vec<(PeerId, IpAddr, u16)>,
    },
    /// `failure reason: disallowed`: stop polling this tracker.
    Disallowed,
    /// Any other failure reason.
    Rejected(String),
    /// Network, HTTP or format error.
    Error(String),
}

/// Reads another tracker's answer: compact `peers` (6-byte entries) and `peers6` (18-byte), a
/// list of `{ip, port[, peer id]}` dicts, or a list of 6-byte strings (bttrack 0.3.18's T2T
/// answer). At most `max_peers` peers are kept. Pure.
pub fn parse_poll_answer(status: u16, body: &[u8], max_peers: usize) -> PollOutcome {
    let v = match bencode::decode(body) {
        Ok(v) if v.as_dict().is_some() => v,
        _ if status != 200 => return PollOutcome::Error(format!("HTTP status {status}")),
        _ => return PollOutcome::Error("answer is not a bencoded dict".to_string()),
    };
    if let Some(r) = v.get(b"failure reason") {
        let r = String::from_utf8_lossy(r.as_bytes().unwrap_or(b"")).into_owned();
        return if r == "disallowed" {
            PollOutcome::Disallowed
        } else {
            PollOutcome::Rejected(r)
        };
    }
    if status != 200 {
        return PollOutcome::Error(format!("HTTP status {status}"));
    }
    let interval = v
        .get(b"interval")
        .and_then(|i| i.as_int())
        .and_then(|i| u64::try_from(i).ok());
    let mut peers = Vec::new();
    let compact4 = |c: &[u8]| {
        let ip = IpAddr::from([c[0], c[1], c[2], c[3]]);
        (UNKNOWN_PEER_ID, ip, u16::from_be_bytes([c[4], c[5]]))
    };
    match v.get(b"peers") {
        Some(p) if p.as_bytes().is_some() => {
            let b = p.as_bytes().unwrap_or_default();
            peers.extend(b.chunks_exact(6).take(max_peers).map(compact4));
        }
        Some(p) => {
            for e in p.as_list().unwrap_or_default() {
                if peers.len() >= max_peers {
                    break;
                }
                if let Some(b) = e.as_bytes() {
                    if b.len() == 6 {
                        peers.push(compact4(b));
                    }
                    continue;
                }
                let ip = e
                    .get(b"ip")
                    .and_then(|i| i.as_bytes())
                    .and_then(|i| std::str::from_utf8(i).ok())
                    .and_then(|i| i.parse::<IpAddr>().ok());
                let port = e
                    .get(b"port")
                    .and_then(|p| p.as_int())
                    .and_then(|p| u16::try_from(p).ok());
                let id = e
                    .get(b"peer id")
                    .and_then(|i| i.as_bytes())
                    .and_then(|i| <[u8; 20]>::try_from(i).ok())
                    .unwrap_or(UNKNOWN_PEER_ID);
                if let (Some(ip), Some(port)) = (ip, port) {
                    peers.push((id, crate::client_ip::normalize(ip), port));
                }
            }
        }
        None => return PollOutcome::Error("answer has no peers".to_string()),
    }
    if let Some(b) = v.get(b"peers6").and_then(|p| p.as_bytes()) {
        for c in b.chunks_exact(18) {
            if peers.len() >= max_peers {
                break;
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&c[..16]);
            peers.push((
                UNKNOWN_PEER_ID,
                IpAddr::from(a),
                u16::from_be_bytes([c[16], c[17]]),
            ));
        }
    }
    PollOutcome::Peers { interval, peers }
}

/// One (tracker, torrent) pair's polling state (bttrack's `T2TConnection`).
#[derive(Debug, Clone)]
pub struct Pair {
    pub url: HttpUrl,
    /// Tracker clock (seconds) of the next poll.
    pub next_due: u64,
    /// Current interval (ours, the remote's, or lengthened after errors).
    pub operating: u64,
    pub numwant: u64,
    pub errors: u32,
    pub rejected: u32,
    pub active: bool,
    pub busy: bool,
}

impl Pair {
    fn new(url: HttpUrl, now: u64, base: u64, maxpeers: u64) -> Pair {
        let lo = base / 10;
        let first = if base > lo {
            fastrand::u64(lo..base)
        } else {
            0
        };
        Pair {
            url,
            next_due: now + first,
            operating: base,
            numwant: maxpeers,
            errors: 0,
            rejected: 0,
            active: true,
            busy: false,
        }
    }

    /// Applies a poll's outcome (bttrack's `callback` / `errorfunc`) and schedules the next
    /// poll. Returns true when the whole tracker must be disallowed.
    pub fn on_outcome(&mut self, outcome: &PollOutcome, base: u64, now: u64) -> bool {
        self.busy = false;
        let mut disallow = false;
        match outcome {
            PollOutcome::Peers { interval, .. } => {
                self.errors = 0;
                self.rejected = 0;
                if let Some(remote) = *interval {
                    if remote > 3 * base && base > 0 {
                        self.numwant =
                            (self.numwant * (remote / base)).min(MAX_HARVESTED_PER_SWARM as u64);
                    }
                    self.operating = remote.clamp(base, MAX_POLL_INTERVAL.max(base));
                }
            }
            PollOutcome::Disallowed => {
                self.active = false;
                disallow = true;
            }
            PollOutcome::Rejected(_) => {
                self.rejected += 1;
                if self.rejected >= 3 {
                    self.active = false;
                }
            }
            PollOutcome::Error(_) => {
                self.errors = self.errors.saturating_add(1);
                if self.errors >= 3 {
                    self.operating = (self.operating + base).min(MAX_POLL_INTERVAL.max(base));
                }
            }
        }
        self.next_due = now + self.operating.max(1);
        disallow
    }
}

/// One shard's pairs.
#[derive(Debug, Default)]
pub struct Poller {
    pub pairs: HashMap<(String, InfoHash), Pair>,
    /// Trackers that answered `disallowed` (reset when they leave every announce-list).
    pub disallowed: HashSet<String>,
    /// URLs already reported as not pollable (bounded by the URLs in allowed torrents).
    reported: HashSet<String>,
    pub in_flight: usize,
}

/// Settings of the polling.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub base: u64,
    pub maxpeers: u64,
    pub timeout: Duration,
    pub tracker_id: TrackerId,
    /// This tracker's own listening addresses (never polled).
    pub self_addrs: Vec<SocketAddr>,
    pub shard: usize,
    pub shards: usize,
}

/// Whether `addr` is one of ours (an unspecified bind address stands for every local address;
/// loopback and the unspecified address are recognised, other local addresses are left to the
/// `disallowed` answer to our own id).
pub fn is_self(addr: SocketAddr, self_addrs: &[SocketAddr]) -> bool {
    let ip = crate::client_ip::normalize(addr.ip());
    self_addrs.iter().any(|s| {
        s.port() == addr.port()
            && (crate::client_ip::normalize(s.ip()) == ip
                || (s.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified())))
    })
}

impl Poller {
    /// Rebuilds the pair list from the allowed set: pairs whose info-hash this shard owns, for
    /// every pollable announce-list URL. Existing pairs keep their state (bttrack's
    /// `T2TList.parse`).
    pub fn sync(&mut self, allowed: Option<&AllowedSet>, s: &PollSettings, now: u64) {
        let mut next: HashMap<(String, InfoHash), Pair> = HashMap::new();
        let mut listed: HashSet<String> = HashSet::new();
        let mut capped = false;
        if let Some(a) = allowed {
            let mut hashes: Vec<&InfoHash> = a
                .announce_lists
                .keys()
                .filter(|h| cyclone_shard::shard_for_key(&h[..], s.shards) == s.shard)
                .collect();
            hashes.sort();
            for ih in hashes {
                for url in &a.announce_lists[ih] {
                    listed.insert(url.clone());
                    let key = (url.clone(), *ih);
                    if let Some(p) = self.pairs.remove(&key) {
                        next.insert(key, p);
                        continue;
                    }
                    if next.len() >= MAX_PAIRS_PER_SHARD {
                        capped = true;
                        continue;
                    }
                    let parsed = match HttpUrl::parse(url) {
                        Ok(u) => u,
                        Err(e) => {
                            if self.reported.insert(url.clone()) {
                                eprintln!("cyclone-tracker: multitracker: not polling {url}: {e}");
                            }
                            continue;
                        }
                    };
                    if let Ok(ip) = parsed.host.parse::<IpAddr>() {
                        if is_self(SocketAddr::new(ip, parsed.port), &s.self_addrs) {
                            continue;
                        }
                    }
                    next.insert(key, Pair::new(parsed, now, s.base, s.maxpeers));
                }
            }
        }
        if capped {
            eprintln!(
                "cyclone-tracker: multitracker: more than {MAX_PAIRS_PER_SHARD} (tracker, torrent) pairs on shard {}; the rest are not polled",
                s.shard
            );
        }
        self.reported.retain(|u| listed.contains(u));
        self.disallowed.retain(|u| listed.contains(u));
        self.pairs = next;
    }

    /// Pairs due now, marked busy, at most as many as free poll slots.
    pub fn take_due(&mut self, now: u64) -> Vec<(String, InfoHash)> {
        let mut due = Vec::new();
        for (key, p) in self.pairs.iter_mut() {
            if self.in_flight + due.len() >= MAX_POLLS_IN_FLIGHT {
                break;
            }
            if p.active && !p.busy && p.next_due <= now && !self.disallowed.contains(&key.0) {
                p.busy = true;
                due.push(key.clone());
            }
        }
        self.in_flight += due.len();
        due
    }
}

/// One poll, start to finish (on the calling shard's executor).
async fn poll_once(
    url: &HttpUrl,
    ih: &InfoHash,
    numwant: u64,
    s: &PollSettings,
) -> Result<PollOutcome, String> {
    // Resolution counts against the poll's deadline: a hung resolver must not hold a poll slot.
    let (addr, left) = http_client::resolve_within(&url.host, url.port, s.timeout)
        .await
        .map_err(|e| e.to_string())?;
    if is_self(addr, &s.self_addrs) {
        return Ok(PollOutcome::Disallowed);
    }
    let target = HttpUrl {
        target: poll_target(url, ih, &s.tracker_id, numwant),
        ..url.clone()
    };
    let max_peers = (numwant as usize).min(MAX_HARVESTED_PER_SWARM);
    match http_client::get_addr(addr, &target, "cyclone-tracker", left, MAX_ANSWER_BYTES).await {
        Ok(a) => Ok(parse_poll_answer(a.status, &a.body, max_peers)),
        Err(e @ HttpClientError::TooLarge(_)) => Ok(PollOutcome::Error(e.to_string())),
        Err(e) => Err(e.to_string()),
    }
}

/// The polling loop of one shard: resyncs when the allowed set changes, starts due polls, and
/// stores their harvest in this shard's state.
pub(crate) async fn run(
    state: Rc<RefCell<ShardState>>,
    shared: Arc<Shared>,
    settings: PollSettings,
) {
    let poller = Rc::new(RefCell::new(Poller::default()));
    let settings = Rc::new(settings);
    let mut seen: Option<Arc<AllowedSet>> = None;
    let mut first = true;
    let tick = Duration::from_millis(if settings.base < 10 { 250 } else { 1000 });
    loop {
        if shared.stopping() {
            return;
        }
        let now = shared.now();
        let allowed = state.borrow().allowed.clone();
        let changed = match (&seen, &allowed) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        if changed || first {
            poller.borrow_mut().sync(allowed.as_deref(), &settings, now);
            seen = allowed;
            first = false;
        }
        let due = poller.borrow_mut().take_due(now);
        for key in due {
            let (url, numwant) = {
                let p = poller.borrow();
                let pair = &p.pairs[&key];
                (pair.url.clone(), pair.numwant)
            };
            let poller = poller.clone();
            let state = state.clone();
            let shared = shared.clone();
            let settings = settings.clone();
            glommio::spawn_local(async move {
                let outcome = match poll_once(&url, &key.1, numwant, &settings).await {
                    Ok(o) => o,
                    Err(e) => PollOutcome::Error(e),
                };
                let now = shared.now();
                if let PollOutcome::Peers { peers, .. } = &outcome {
                    state.borrow_mut().harvest(&key.1, peers, now);
                }
                let mut p = poller.borrow_mut();
                p.in_flight = p.in_flight.saturating_sub(1);
                let disallow = match p.pairs.get_mut(&key) {
                    Some(pair) => {
                        let was_active = pair.active;
                        let d = pair.on_outcome(&outcome, settings.base, now);
                        if was_active && !pair.active && !d {
                            eprintln!(
                                "cyclone-tracker: multitracker: {} rejected polls for one torrent 3 times; no longer polled for it",
                                key.0
                            );
                        }
                        d
                    }
                    // The pair left the allowed set meanwhile.
                    None => false,
                };
                if disallow && p.disallowed.insert(key.0.clone()) {
                    eprintln!(
                        "cyclone-tracker: multitracker: {} answered `disallowed` (or is this tracker); no longer polled",
                        key.0
                    );
                }
            })
            .detach();
        }
        glommio::timer::sleep(tick).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclone_metainfo::bencode::{write_bytes, write_int};

    fn settings() -> PollSettings {
        PollSettings {
            base: 120,
            maxpeers: 20,
            timeout: Duration::from_secs(60),
            tracker_id: *b"-CYT01-abcdefghijklm",
            self_addrs: vec!["0.0.0.0:6969".parse().unwrap()],
            shard: 0,
            shards: 1,
        }
    }

    #[test]
    fn poll_query_is_bttracks_snoop() {
        let u = HttpUrl::parse("http://127.0.0.1:7000/announce?pk=1").unwrap();
        let t = poll_target(&u, &[0xab; 20], b"-CYT01-abcdefghijklm", 20);
        assert_eq!(
            t,
            format!(
                "/announce?pk=1&info_hash={}&peer_id=-CYT01-abcdefghijklm&event=stopped&port=0&uploaded=0&downloaded=0&left=1&tracker=1&numwant=20&compact=1",
                "%AB".repeat(20)
            )
        );
    }

    #[test]
    fn answers_in_every_shape() {
        // Compact, with peers6.
        let mut b = b"d8:intervali120e5:peers12:".to_vec();
        b.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 2, 0x1a, 0xe2]);
        b.extend_from_slice(b"6:peers618:");
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80]);
        b.push(b'e');
        let PollOutcome::Peers { interval, peers } = parse_poll_answer(200, &b, 100) else {
            panic!()
        };
        assert_eq!(interval, Some(120));
        assert_eq!(peers.len(), 3);
        assert_eq!(
            peers[1],
            (UNKNOWN_PEER_ID, "127.0.0.2".parse().unwrap(), 6882)
        );
        assert_eq!(peers[2].1, "::1".parse::<IpAddr>().unwrap());
        // Capped.
        let PollOutcome::Peers { peers, .. } = parse_poll_answer(200, &b, 1) else {
            panic!()
        };
        assert_eq!(peers.len(), 1);
        // Dict list with ids; a 0.3.18-style list of compact strings.
        let mut d = b"d8:intervali60e5:peersl".to_vec();
        d.push(b'd');
        write_bytes(&mut d, b"ip");
        write_bytes(&mut d, b"10.0.0.1");
        write_bytes(&mut d, b"peer id");
        write_bytes(&mut d, &[7; 20]);
        write_bytes(&mut d, b"port");
        write_int(&mut d, 6881);
        d.push(b'e');
        write_bytes(&mut d, &[10, 0, 0, 2, 0, 1]);
        d.extend_from_slice(b"ee");
        let PollOutcome::Peers { peers, .. } = parse_poll_answer(200, &d, 100) else {
            panic!()
        };
        assert_eq!(
            peers,
            vec![
                ([7; 20], "10.0.0.1".parse().unwrap(), 6881),
                (UNKNOWN_PEER_ID, "10.0.0.2".parse().unwrap(), 1)
            ]
        );
        assert_eq!(
            parse_poll_answer(200, b"d14:failure reason10:disallowede", 10),
            PollOutcome::Disallowed
        );
        assert!(matches!(
            parse_poll_answer(400, b"d14:failure reason2:noe", 10),
            PollOutcome::Rejected(r) if r == "no"
        ));
        assert!(matches!(
            parse_poll_answer(400, b"your client is outdated", 10),
            PollOutcome::Error(_)
        ));
        assert!(matches!(
            parse_poll_answer(200, b"d8:intervali5ee", 10),
            PollOutcome::Error(_)
        ));
    }

    #[test]
    fn schedule_follows_t2tconnection() {
        let u = HttpUrl::parse("http://127.0.0.1:7000/announce").unwrap();
        let mut p = Pair::new(u, 1000, 120, 20);
        assert!((1012..1120).contains(&p.next_due), "{}", p.next_due);
        let err = PollOutcome::Error("x".into());
        p.on_outcome(&err, 120, 2000);
        p.on_outcome(&err, 120, 2000);
        assert_eq!(p.next_due, 2120);
        p.on_outcome(&err, 120, 2000);
        assert_eq!(
            (p.operating, p.next_due),
            (240, 2240),
            "third error lengthens"
        );
        p.on_outcome(&err, 120, 2000);
        assert_eq!(p.operating, 360);
        // Success: errors reset, remote interval adopted, numwant scaled over 3x.
        let ok = PollOutcome::Peers {
            interval: Some(1800),
            peers: vec![],
        };
        p.on_outcome(&ok, 120, 3000);
        assert_eq!((p.errors, p.operating, p.numwant), (0, 1800, 300));
        // A remote cannot make us poll faster than configured.
        let fast = PollOutcome::Peers {
            interval: Some(1),
            peers: vec![],
        };
        p.on_outcome(&fast, 120, 3000);
        assert_eq!(p.operating, 120);
        let rej = PollOutcome::Rejected("no".into());
        p.on_outcome(&rej, 120, 3000);
        p.on_outcome(&rej, 120, 3000);
        assert!(p.active);
        assert!(!p.on_outcome(&rej, 120, 3000));
        assert!(!p.active, "rejected three times: pair stops");
        let mut q = Pair::new(HttpUrl::parse("http://h/").unwrap(), 0, 120, 20);
        assert!(q.on_outcome(&PollOutcome::Disallowed, 120, 0));
        assert!(!q.active);
    }

    #[test]
    fn pairs_from_announce_lists_skip_self_and_https() {
        let mut a = AllowedSet::default();
        a.announce_lists.insert(
            [1; 20],
            vec![
                "http://127.0.0.1:7000/announce".into(),
                "http://127.0.0.1:6969/announce".into(),
                "https://127.0.0.1:7001/announce".into(),
                "udp://127.0.0.1:7002".into(),
            ],
        );
        a.announce_lists
            .insert([2; 20], vec!["http://127.0.0.1:7000/announce".into()]);
        let s = settings();
        let mut p = Poller::default();
        p.sync(Some(&a), &s, 1000);
        let mut keys: Vec<_> = p.pairs.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                ("http://127.0.0.1:7000/announce".to_string(), [1; 20]),
                ("http://127.0.0.1:7000/announce".to_string(), [2; 20]),
            ]
        );
        // Nothing due before the first poll time; all due after one interval; state is kept
        // across a resync.
        assert!(p.take_due(1000 + 11).is_empty());
        assert_eq!(p.take_due(1000 + 120).len(), 2);
        assert_eq!(p.in_flight, 2);
        assert!(
            p.take_due(5000).is_empty(),
            "busy pairs are not polled twice"
        );
        p.sync(Some(&a), &s, 1200);
        assert!(p.pairs.values().all(|x| x.busy));
        p.sync(None, &s, 1300);
        assert!(p.pairs.is_empty());
        assert!(is_self("127.0.0.1:6969".parse().unwrap(), &s.self_addrs));
        assert!(!is_self("127.0.0.1:6970".parse().unwrap(), &s.self_addrs));
    }
}
