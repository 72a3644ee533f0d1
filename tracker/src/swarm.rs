//! Swarm state of one shard: the torrents whose info-hash maps to this shard, their peers and
//! completion counts. Only the owning shard's executor touches a `ShardState` (invariant); other
//! shards send it requests through the mesh.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use cyclone_metainfo::bencode::{write_bytes, write_decimal, write_int};

use crate::fast_hash::FastMap;
use crate::request::{AnnounceRequest, Event, InfoHash, PeerId, RequestError};

/// `nat` value of a peer that announced port 0: never listed (bttrack's `2**30`).
pub const NAT_PORT_ZERO: u32 = 1 << 30;

/// Most peers one torrent may hold (bounds memory per swarm; further new peers are refused).
pub const MAX_PEERS_PER_SWARM: usize = 1 << 20;
/// Most peers one shard holds over all its swarms. Every announce from a new peer id (or for a new info-hash,
/// without an allowed set) adds one until the next expiry sweep, so without this bound a flood of made-up ids or
/// hashes grows memory until `timeout_downloaders_interval` (45 min by default) passes. A new peer beyond it is
/// served but not recorded, as beyond [`MAX_PEERS_PER_SWARM`].
pub const MAX_PEERS_PER_SHARD: usize = 1 << 23;
/// Most swarms one shard holds (a swarm is created by a peer's first announce and lives until a sweep finds it
/// empty). An announce for a new info-hash beyond it is served an empty peer list and not recorded.
pub const MAX_SWARMS_PER_SHARD: usize = 1 << 21;

/// One peer of a swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: PeerId,
    /// The address other peers get: the connection IP, or the allowed override.
    pub ip: IpAddr,
    pub port: u16,
    pub left: u64,
    pub key: Option<Vec<u8>>,
    /// The `ip` parameter as the client sent it (persisted as `given ip`).
    pub given_ip: Option<String>,
    pub supportcrypto: bool,
    pub requirecrypto: bool,
    /// `None` = NAT check pending, `Some(0)` = reachable, `Some(n)` = n failed checks.
    pub nat: Option<u32>,
    /// Tracker clock (seconds) of the last accepted announce; 0 for peers loaded from the dfile.
    pub last_seen: u64,
}

impl Peer {
    fn listable(&self) -> bool {
        self.nat == Some(0) && self.port != 0
    }
}

/// One torrent's peers. Peers live in a `Vec` (random windows for selection, O(1) swap-remove)
/// indexed by peer id.
#[derive(Debug, Default, Clone)]
pub struct Swarm {
    peers: Vec<Peer>,
    index: FastMap<PeerId, usize>,
    seeds: usize,
    /// Peers learnt from other trackers (multitracker polls, bttrack §3.9): listed to this
    /// tracker's clients like non-seeds, never to polling trackers, never counted, never saved.
    /// `last_seen` is the clock of the poll that last returned them; peer id all zero when the
    /// other tracker answered compact. At most [`MAX_HARVESTED_PER_SWARM`].
    harvested: Vec<Peer>,
}

impl Swarm {
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    pub fn seeds(&self) -> usize {
        self.seeds
    }

    pub fn leechers(&self) -> usize {
        self.peers.len() - self.seeds
    }

    /// Peers harvested from other trackers (not part of the swarm's counts).
    pub fn harvested(&self) -> &[Peer] {
        &self.harvested
    }

    /// Adds or replaces a peer (used by the dfile loader and announces).
    pub fn insert(&mut self, peer: Peer) {
        if let Some(&i) = self.index.get(&peer.id) {
            if self.peers[i].left == 0 {
                self.seeds -= 1;
            }
            if peer.left == 0 {
                self.seeds += 1;
            }
            self.peers[i] = peer;
            return;
        }
        if peer.left == 0 {
            self.seeds += 1;
        }
        self.index.insert(peer.id, self.peers.len());
        self.peers.push(peer);
    }

    fn remove(&mut self, id: &PeerId) -> Option<Peer> {
        let i = self.index.remove(id)?;
        let p = self.peers.swap_remove(i);
        if i < self.peers.len() {
            let moved = self.peers[i].id;
            self.index.insert(moved, i);
        }
        if p.left == 0 {
            self.seeds -= 1;
        }
        Some(p)
    }

    fn set_left(&mut self, i: usize, left: u64) {
        let was_seed = self.peers[i].left == 0;
        self.peers[i].left = left;
        match (was_seed, left == 0) {
            (false, true) => self.seeds += 1,
            (true, false) => self.seeds -= 1,
            _ => {}
        }
    }
}

/// Settings a shard needs for swarm work (a slice of `TrackerConfig`).
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    pub response_size: usize,
    pub reannounce_interval: u64,
    pub min_interval: u64,
    pub multitracker_reannounce_interval: u64,
    pub nat_check: u32,
    pub keep_dead: bool,
    /// Honour `failure reason`/`warning message` of allowed .torrent files (allowed_dir only).
    pub allowed_controls: bool,
    /// `dedicated_seed_id`: an announce with this `seed_id` and left=0 marks the torrent seeded.
    pub dedicated_seed_id: Option<Vec<u8>>,
}

/// The set of torrents this tracker serves, when restricted (allowed_dir / allowed_list).
#[derive(Debug, Clone, Default)]
pub struct AllowedSet {
    pub hashes: HashSet<InfoHash>,
    /// Torrent names (from allowed_dir), for scrape and the info page.
    pub names: HashMap<InfoHash, String>,
    /// Total sizes (from allowed_dir), for the info page.
    pub sizes: HashMap<InfoHash, u64>,
    /// The .torrent file (full path, file name) per hash (from allowed_dir), for `/file`.
    pub files: HashMap<InfoHash, (std::path::PathBuf, String)>,
    /// `failure reason` / `warning message` found at the top level of allowed .torrent files.
    pub controls: HashMap<InfoHash, (Option<String>, Option<String>)>,
    /// Allowed torrents whose .torrent has an `announce-list` (multitracker_allowed=autodetect).
    pub multitracker: HashSet<InfoHash>,
    /// Their announce-list URLs, flattened and deduplicated (multitracker polling).
    pub announce_lists: HashMap<InfoHash, Vec<String>>,
}

/// An announce as the owning shard receives it: the parsed request plus what the front shard
/// learnt from the connection.
#[derive(Debug, Clone)]
pub struct AnnounceWork {
    pub req: AnnounceRequest,
    /// The connection's IP (IPv4-mapped addresses already converted).
    pub conn_ip: IpAddr,
    /// The IP to list this peer under (after any allowed override).
    pub listed_ip: IpAddr,
    /// Whether `listed_ip` is an intranet address (skips NAT checking).
    pub local: bool,
    /// Tracker clock, seconds.
    pub now: u64,
    /// How the owner encodes the response.
    pub reply: ReplyFormat,
}

/// The protocol an announce came by, which decides how the owning shard encodes its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    /// A bencoded HTTP body.
    Http,
    /// A BEP 15 announce response: peers of the requester's address family only (IPv4 entries of
    /// 6 bytes, or IPv6 entries of 18), at most [`MAX_UDP_PEERS`].
    Udp { transaction_id: u32, v6: bool },
}

/// Most peers in one UDP announce response (torrust's limit; 20 + 74 · 18 bytes fit in a
/// 1500-byte frame even for IPv6).
pub const MAX_UDP_PEERS: usize = 74;

/// Counts for scrape and the info page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SwarmCounts {
    pub complete: u64,
    pub incomplete: u64,
    pub downloaded: u64,
}

/// One shard's torrents.
#[derive(Debug)]
pub struct ShardState {
    pub config: SwarmConfig,
    pub swarms: FastMap<InfoHash, Swarm>,
    /// Completions per torrent; kept when a dead swarm is dropped (bttrack's `completed`); at most `max_swarms`.
    pub completed: HashMap<InfoHash, u64>,
    pub allowed: Option<Arc<AllowedSet>>,
    /// allowed_ips / banned_ips, as last loaded (read by this shard's HTTP front).
    pub ip_filter: Option<Arc<crate::ip_filter::IpFilter>>,
    /// Clock of the previous expiry sweep.
    pub prev_sweep: u64,
    /// NAT checks queued by announces, drained by the server.
    nat_queue: Vec<NatJob>,
    /// Peers with a NAT check in flight.
    nat_in_flight: HashSet<(InfoHash, PeerId)>,
    /// Torrents a dedicated seed announced as complete (`dedicated_seed_id`).
    seeded: HashSet<InfoHash>,
    /// Peers in all swarms (bounded by `max_peers`).
    peer_count: usize,
    /// [`MAX_PEERS_PER_SHARD`] and [`MAX_SWARMS_PER_SHARD`] (fields, so tests can lower them).
    max_peers: usize,
    max_swarms: usize,
}

impl ShardState {
    pub fn new(config: SwarmConfig, now: u64) -> Self {
        ShardState {
            config,
            swarms: FastMap::default(),
            completed: HashMap::new(),
            allowed: None,
            ip_filter: None,
            prev_sweep: now,
            nat_queue: Vec::new(),
            nat_in_flight: HashSet::new(),
            seeded: HashSet::new(),
            peer_count: 0,
            max_peers: MAX_PEERS_PER_SHARD,
            max_swarms: MAX_SWARMS_PER_SHARD,
        }
    }

    fn is_allowed(&self, ih: &InfoHash) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.hashes.contains(ih))
    }

    /// Handles one announce and returns the bencoded response body.
    pub fn announce(&mut self, work: &AnnounceWork) -> Result<Vec<u8>, RequestError> {
        let req = &work.req;
        if !self.is_allowed(&req.info_hash) {
            return Err(RequestError::NotAuthorized200(
                "Requested download is not authorized for use with this tracker.".to_string(),
            ));
        }
        let (control_failure, warning) = match (&self.allowed, self.config.allowed_controls) {
            (Some(a), true) => a.controls.get(&req.info_hash).cloned().unwrap_or_default(),
            _ => (None, None),
        };
        if let Some(reason) = control_failure {
            return Err(RequestError::NotAuthorized200(reason));
        }
        if let (Some(id), Some(given)) = (&self.config.dedicated_seed_id, &req.seed_id) {
            // bttrack 0.3.18 compared the string `left` with 0, so this never matched (bug).
            if id == given && req.left == 0 {
                self.seeded.insert(req.info_hash);
            }
        }
        let rsize = req.numwant.map_or(self.config.response_size, |n| {
            n.min(self.config.response_size)
        });
        let nat_check = self.config.nat_check;
        // The NAT state of a peer at a new address: port 0 is never checked, local peers (or no
        // checking) are taken as reachable, others wait for a check.
        let fresh_nat = if req.port == 0 {
            Some(NAT_PORT_ZERO)
        } else if work.local || nat_check == 0 {
            Some(0)
        } else {
            None
        };
        let look_only = req.event == Event::Snooped || req.event == Event::Stopped || req.tracker;
        if !self.swarms.contains_key(&req.info_hash)
            && (look_only || self.swarms.len() >= self.max_swarms)
        {
            // Nothing to record (a look, or the last word of an unknown peer), or no room for another swarm:
            // answer as for an empty swarm without creating one.
            return Ok(self.respond(&Swarm::default(), work, rsize, warning));
        }
        let room = self.peer_count < self.max_peers;
        let swarm = self.swarms.entry(req.info_hash).or_default();
        let known = swarm.index.get(&req.peer_id).copied();
        let peers_before = swarm.peers.len();
        let mut completed_delta: i64 = 0;
        match (req.event, known) {
            // Snoops and tracker-to-tracker polls look without touching.
            (Event::Snooped, _) => {}
            (_, _) if req.tracker => {}
            (Event::Stopped, Some(i)) => {
                if authenticated(&swarm.peers[i], req, work.conn_ip) {
                    // left >0 -> 0 counts as a completion whatever the event (bttrack's rule),
                    // including a client that stops right after finishing (aria2c --seed-time=0).
                    if swarm.peers[i].left > 0 && req.left == 0 {
                        completed_delta += 1;
                    }
                    swarm.remove(&req.peer_id);
                }
            }
            (Event::Stopped, None) => {}
            (_, None) => {
                if swarm.peers.len() < MAX_PEERS_PER_SWARM && room {
                    if req.event == Event::Completed {
                        completed_delta += 1;
                    }
                    swarm.insert(Peer {
                        id: req.peer_id,
                        ip: work.listed_ip,
                        port: req.port,
                        left: req.left,
                        key: req.key.clone(),
                        given_ip: req.ip.clone(),
                        supportcrypto: req.supportcrypto || req.requirecrypto,
                        requirecrypto: req.requirecrypto,
                        nat: fresh_nat,
                        last_seen: work.now,
                    });
                }
            }
            (_, Some(i)) => {
                if authenticated(&swarm.peers[i], req, work.conn_ip) {
                    let was_left = swarm.peers[i].left;
                    if was_left > 0 && req.left == 0 {
                        completed_delta += 1;
                    } else if was_left == 0 && req.left > 0 {
                        completed_delta -= 1;
                    }
                    swarm.set_left(i, req.left);
                    let p = &mut swarm.peers[i];
                    p.last_seen = work.now;
                    if p.ip != work.listed_ip || p.port != req.port || p.given_ip != req.ip {
                        p.ip = work.listed_ip;
                        p.port = req.port;
                        p.given_ip = req.ip.clone();
                        p.nat = fresh_nat;
                    } else if p.nat.is_none() && (work.local || nat_check == 0) && req.port != 0 {
                        // Loaded from a dfile without a `nat` key (the PHP dialect): a local
                        // peer needs no check.
                        p.nat = Some(0);
                    }
                    p.supportcrypto = req.supportcrypto || req.requirecrypto;
                    p.requirecrypto = req.requirecrypto;
                }
            }
        }
        // Every peer added or removed above (one at most).
        self.peer_count = (self.peer_count + swarm.peers.len()).saturating_sub(peers_before);
        if req.event != Event::Stopped && req.event != Event::Snooped {
            self.maybe_queue_nat_check(&req.info_hash, &req.peer_id);
        }
        // Completion counts outlive their swarms (bttrack), so they get the swarms' bound too.
        if completed_delta != 0
            && (self.completed.len() < self.max_swarms
                || self.completed.contains_key(&req.info_hash))
        {
            let c = self.completed.entry(req.info_hash).or_insert(0);
            *c = c.saturating_add_signed(completed_delta);
        }
        Ok(self.respond(&self.swarms[&req.info_hash], work, rsize, warning))
    }

    /// The announce's answer from `swarm` (HTTP body or UDP packet).
    fn respond(
        &self,
        swarm: &Swarm,
        work: &AnnounceWork,
        rsize: usize,
        warning: Option<String>,
    ) -> Vec<u8> {
        let req = &work.req;
        let interval = if req.tracker {
            self.config.multitracker_reannounce_interval
        } else {
            self.config.reannounce_interval
        };
        let extras = Extras {
            scrape: req.scrape.then(|| SwarmCounts {
                complete: swarm.seeds as u64,
                incomplete: swarm.leechers() as u64,
                downloaded: self.completed.get(&req.info_hash).copied().unwrap_or(0),
            }),
            seeded: req
                .check_seeded
                .then(|| self.seeded.contains(&req.info_hash)),
            warning,
        };
        if let ReplyFormat::Udp { transaction_id, v6 } = work.reply {
            let rsize = rsize.min(MAX_UDP_PEERS);
            let mut out = Vec::with_capacity(20 + rsize * if v6 { 18 } else { 6 });
            write_udp_response(&mut out, swarm, req, rsize, interval, transaction_id, v6);
            return out;
        }
        let mut out = Vec::with_capacity(64 + rsize * 8);
        write_response(
            &mut out,
            swarm,
            req,
            rsize,
            interval,
            self.config.min_interval,
            &extras,
        );
        out
    }

    /// Counts for one torrent, if this tracker knows it.
    pub fn counts(&self, ih: &InfoHash) -> Option<SwarmCounts> {
        let swarm = self.swarms.get(ih);
        let allowed_known = self.allowed.as_ref().is_some_and(|a| a.hashes.contains(ih));
        if swarm.is_none() && !allowed_known {
            return None;
        }
        if !self.is_allowed(ih) {
            return None;
        }
        Some(SwarmCounts {
            complete: swarm.map_or(0, |s| s.seeds as u64),
            incomplete: swarm.map_or(0, |s| s.leechers() as u64),
            downloaded: self.completed.get(ih).copied().unwrap_or(0),
        })
    }

    /// Counts for every torrent this shard knows (tracked ones, plus allowed ones that map here).
    pub fn all_counts(&self, shard: usize, shards: usize) -> Vec<(InfoHash, SwarmCounts)> {
        let mut keys: HashSet<InfoHash> = self.swarms.keys().copied().collect();
        if let Some(a) = &self.allowed {
            keys.retain(|k| a.hashes.contains(k));
            keys.extend(
                a.hashes
                    .iter()
                    .filter(|h| cyclone_shard::shard_for_key(&h[..], shards) == shard)
                    .copied(),
            );
        }
        keys.into_iter()
            .filter_map(|k| self.counts(&k).map(|c| (k, c)))
            .collect()
    }

    /// Recounts the peers of every swarm (after swarms were filled directly, as the dfile loader does).
    pub fn recount_peers(&mut self) {
        self.peer_count = self.swarms.values().map(|s| s.peers.len()).sum();
    }

    /// bttrack's expiry sweep: drops peers not seen since the previous sweep, then (unless
    /// keep_dead) torrents left without peers that are not in the allowed set. Returns the number
    /// of peers dropped.
    pub fn expire(&mut self, now: u64) -> usize {
        let cutoff = self.prev_sweep;
        let mut dropped = 0;
        for swarm in self.swarms.values_mut() {
            let stale: Vec<PeerId> = swarm
                .peers
                .iter()
                .filter(|p| p.last_seen < cutoff)
                .map(|p| p.id)
                .collect();
            for id in stale {
                swarm.remove(&id);
                dropped += 1;
            }
            // Harvested peers follow the same rule: not returned by a poll since the last sweep.
            swarm.harvested.retain(|p| p.last_seen >= cutoff);
        }
        if !self.config.keep_dead {
            let allowed = self.allowed.clone();
            self.swarms.retain(|ih, s| {
                !s.peers.is_empty() || allowed.as_ref().is_some_and(|a| a.hashes.contains(ih))
            });
        }
        self.prev_sweep = now;
        self.peer_count = self.peer_count.saturating_sub(dropped);
        dropped
    }

    /// Queues a NAT check of a peer that needs one (pending, or failed fewer than `nat_check`
    /// times), unless one is already in flight or the queue is full (it is retried on the peer's
    /// next announce).
    fn maybe_queue_nat_check(&mut self, ih: &InfoHash, id: &PeerId) {
        let nat_check = self.config.nat_check;
        if nat_check == 0 || self.nat_in_flight.len() >= MAX_NAT_IN_FLIGHT {
            return;
        }
        let Some(p) = self
            .swarms
            .get(ih)
            .and_then(|s| s.index.get(id).map(|&i| &s.peers[i]))
        else {
            return;
        };
        let wanted = match p.nat {
            None => true,
            Some(n) => n > 0 && n < nat_check && n != NAT_PORT_ZERO,
        };
        if !wanted || p.port == 0 || !self.nat_in_flight.insert((*ih, *id)) {
            return;
        }
        self.nat_queue.push(NatJob {
            info_hash: *ih,
            peer_id: *id,
            ip: p.ip,
            port: p.port,
        });
    }

    /// NAT checks to start (the server drains this after each announce).
    pub fn take_nat_jobs(&mut self) -> Vec<NatJob> {
        std::mem::take(&mut self.nat_queue)
    }

    /// Records a NAT check's result. Returns false (bttrack's 404 in the NAT log) if the peer is
    /// gone or changed address meanwhile.
    pub fn nat_result(&mut self, job: &NatJob, ok: bool) -> bool {
        self.nat_in_flight.remove(&(job.info_hash, job.peer_id));
        let Some(swarm) = self.swarms.get_mut(&job.info_hash) else {
            return false;
        };
        let Some(&i) = swarm.index.get(&job.peer_id) else {
            return false;
        };
        let p = &mut swarm.peers[i];
        if p.ip != job.ip || p.port != job.port {
            return false;
        }
        p.nat = Some(if ok {
            0
        } else {
            p.nat.unwrap_or(0).saturating_add(1)
        });
        true
    }
}

/// Most peers harvested from other trackers kept per torrent (oldest dropped first).
pub const MAX_HARVESTED_PER_SWARM: usize = 1000;

/// The peer id of a harvested peer whose tracker answered compact (no ids).
pub const UNKNOWN_PEER_ID: PeerId = [0; 20];

impl ShardState {
    /// Stores the peers one multitracker poll of another tracker returned for `ih` (bttrack §3.9
    /// harvest). An address already harvested is refreshed; harvested peers not refreshed within
    /// ten poll intervals (bttrack keeps a connection's last 10 lists) are dropped first, then the
    /// oldest beyond [`MAX_HARVESTED_PER_SWARM`]. Returns how many are held now.
    pub fn harvest(&mut self, ih: &InfoHash, peers: &[(PeerId, IpAddr, u16)], now: u64) -> usize {
        let keep_for = self.config.multitracker_reannounce_interval.max(1) * 10;
        if peers.is_empty() && !self.swarms.contains_key(ih) {
            return 0;
        }
        let swarm = self.swarms.entry(*ih).or_default();
        let h = &mut swarm.harvested;
        h.retain(|p| p.last_seen + keep_for >= now);
        for &(id, ip, port) in peers {
            if port == 0 {
                continue;
            }
            if let Some(p) = h.iter_mut().find(|p| p.ip == ip && p.port == port) {
                p.id = id;
                p.last_seen = now;
                continue;
            }
            if h.len() == MAX_HARVESTED_PER_SWARM {
                h.remove(0);
            }
            h.push(Peer {
                id,
                ip,
                port,
                left: 1,
                key: None,
                given_ip: None,
                supportcrypto: false,
                requirecrypto: false,
                nat: Some(0),
                last_seen: now,
            });
        }
        h.len()
    }
}

/// Most NAT checks in flight per shard (bounds connect-backs and the queue).
pub const MAX_NAT_IN_FLIGHT: usize = 256;

/// A connect-back to do (bttrack's NAT check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatJob {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub ip: IpAddr,
    pub port: u16,
}

/// bttrack's key authentication: a known peer's announce counts only if it carries the stored
/// `key`, or comes from the stored IP.
fn authenticated(p: &Peer, req: &AnnounceRequest, conn_ip: IpAddr) -> bool {
    match (&p.key, &req.key) {
        (Some(stored), Some(given)) if stored == given => true,
        (None, _) => true,
        _ => p.ip == conn_ip,
    }
}

/// Optional keys of an announce response.
struct Extras {
    /// The deprecated `scrape` parameter: counts of this torrent.
    scrape: Option<SwarmCounts>,
    /// `check_seeded`: whether a dedicated seed flagged the torrent.
    seeded: Option<bool>,
    /// `warning message` from the allowed .torrent (allowed_controls).
    warning: Option<String>,
}

/// Chooses up to `rsize` peers for `req` from a random starting point: never the requester, only
/// listable peers (NAT-checked, port ≠ 0), no seeds for a seed, crypto rules as bttrack, and when
/// `family_v6` is given only peers of that address family (UDP answers carry one family).
fn select_peers<'s>(
    swarm: &'s Swarm,
    req: &AnnounceRequest,
    rsize: usize,
    family_v6: Option<bool>,
) -> Vec<&'s Peer> {
    let t2t = req.tracker;
    // Harvested peers are offered to clients, never to other trackers (bttrack's T2T answers come
    // from the tracker's own peers only, so peers do not circulate between trackers).
    let harvested: &[Peer] = if t2t { &[] } else { &swarm.harvested };
    let own = swarm.peers.len();
    let n = own + harvested.len();
    let mut chosen: Vec<&Peer> = Vec::with_capacity(rsize.min(n));
    if n == 0 || rsize == 0 {
        return chosen;
    }
    let requester_is_seed = req.left == 0 && !t2t;
    // Walk all n from a random start, wrapping by comparison: a `%` per step is a division, ~60 per answer.
    let mut i = fastrand::usize(..n);
    for _ in 0..n {
        i += 1;
        if i == n {
            i = 0;
        }
        let p = if i < own {
            &swarm.peers[i]
        } else {
            let h = &harvested[i - own];
            // A peer this tracker knows itself is listed from its own record (bttrack).
            if h.id != UNKNOWN_PEER_ID && swarm.index.contains_key(&h.id) {
                continue;
            }
            h
        };
        if p.id == req.peer_id || !p.listable() || (requester_is_seed && p.left == 0) {
            continue;
        }
        if family_v6.is_some_and(|v6| p.ip.is_ipv6() != v6) {
            continue;
        }
        let ok = if !req.compact || t2t {
            !p.requirecrypto
        } else if req.requirecrypto {
            p.supportcrypto
        } else if req.supportcrypto {
            true
        } else {
            !p.requirecrypto
        };
        if !ok {
            continue;
        }
        chosen.push(p);
        if chosen.len() == rsize {
            break;
        }
    }
    chosen
}

/// Writes a BEP 15 announce response: interval, leechers, seeders, then the chosen peers of the
/// requester's family. A `stopped` announce gets no peers.
fn write_udp_response(
    out: &mut Vec<u8>,
    swarm: &Swarm,
    req: &AnnounceRequest,
    rsize: usize,
    interval: u64,
    transaction_id: u32,
    v6: bool,
) {
    use crate::udp::codec;
    codec::encode_announce_head(
        out,
        transaction_id,
        codec::clamp_u32(interval),
        codec::clamp_u32(swarm.leechers() as u64),
        codec::clamp_u32(swarm.seeds as u64),
    );
    if req.event == Event::Stopped {
        return;
    }
    for p in select_peers(swarm, req, rsize, Some(v6)) {
        match p.ip {
            IpAddr::V4(a) => codec::push_peer_v4(out, a, p.port),
            IpAddr::V6(a) => codec::push_peer_v6(out, a, p.port),
        }
    }
}

/// Writes the `count` peers of one family (`v6` or IPv4) among `peers` as one bencoded compact string: address
/// then big-endian port, 6 bytes each for IPv4, 18 for IPv6 (BEP 23, BEP 7).
fn write_compact_peers<'p>(
    out: &mut Vec<u8>,
    peers: impl Iterator<Item = &'p Peer>,
    count: usize,
    v6: bool,
) {
    write_decimal(out, (count * if v6 { 18 } else { 6 }) as u64);
    out.push(b':');
    for p in peers {
        match p.ip {
            IpAddr::V4(a) if !v6 => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) if v6 => out.extend_from_slice(&a.octets()),
            _ => continue,
        }
        out.extend_from_slice(&p.port.to_be_bytes());
    }
}

/// Writes the bencoded announce response (keys in sorted order).
fn write_response(
    out: &mut Vec<u8>,
    swarm: &Swarm,
    req: &AnnounceRequest,
    rsize: usize,
    interval: u64,
    min_interval: u64,
    extras: &Extras,
) {
    // A tracker-to-tracker poll (`event=stopped&port=0&left=1&tracker=1`) gets this tracker's
    // compact, non-crypto-requiring peers whatever its event (bttrack's T2T answer).
    let t2t = req.tracker;
    let compact = req.compact || t2t;
    let crypto_flags = compact && !t2t && (req.supportcrypto || req.requirecrypto);
    out.push(b'd');
    write_bytes(out, b"complete");
    write_int(out, swarm.seeds as i64);
    // Select first: crypto_flags precedes `incomplete` in key order.
    let no_list = (req.event == Event::Stopped && !t2t) || rsize == 0;
    let chosen = if no_list {
        Vec::new()
    } else {
        select_peers(swarm, req, rsize, None)
    };
    // `flags` allocates only if used; the compact lists are written straight into `out` below.
    let mut flags = Vec::new();
    if compact && crypto_flags {
        // One byte per peer, `peers` entries first, then `peers6` entries.
        let flag = |p: &&Peer| u8::from(req.requirecrypto || p.requirecrypto);
        flags.extend(chosen.iter().filter(|p| p.ip.is_ipv4()).map(flag));
        flags.extend(chosen.iter().filter(|p| p.ip.is_ipv6()).map(flag));
    }
    if crypto_flags && !no_list {
        write_bytes(out, b"crypto_flags");
        write_bytes(out, &flags);
    }
    write_bytes(out, b"incomplete");
    write_int(out, swarm.leechers() as i64);
    write_bytes(out, b"interval");
    write_int(out, interval as i64);
    if min_interval > 0 {
        write_bytes(out, b"min interval");
        write_int(out, min_interval.min(interval) as i64);
    }
    write_bytes(out, b"peers");
    if no_list {
        out.extend_from_slice(b"le");
    } else if compact {
        // Each family's entries written in place (no list built first and copied): `peers` always, `peers6` if any.
        let v6 = chosen.iter().filter(|p| p.ip.is_ipv6()).count();
        write_compact_peers(out, chosen.iter().copied(), chosen.len() - v6, false);
        if v6 > 0 {
            write_bytes(out, b"peers6");
            write_compact_peers(out, chosen.iter().copied(), v6, true);
        }
    } else {
        out.push(b'l');
        for p in &chosen {
            out.push(b'd');
            write_bytes(out, b"ip");
            write_bytes(out, p.ip.to_string().as_bytes());
            if !req.no_peer_id && p.id != UNKNOWN_PEER_ID {
                write_bytes(out, b"peer id");
                write_bytes(out, &p.id);
            }
            write_bytes(out, b"port");
            write_int(out, i64::from(p.port));
            out.push(b'e');
        }
        out.push(b'e');
    }
    if let Some(c) = extras.scrape {
        write_bytes(out, b"scrape");
        out.push(b'd');
        write_bytes(out, b"complete");
        write_int(out, c.complete as i64);
        write_bytes(out, b"downloaded");
        write_int(out, c.downloaded as i64);
        write_bytes(out, b"incomplete");
        write_int(out, c.incomplete as i64);
        out.push(b'e');
    }
    if let Some(seeded) = extras.seeded {
        write_bytes(out, b"seeded");
        write_int(out, i64::from(seeded));
    }
    if let Some(w) = &extras.warning {
        write_bytes(out, b"warning message");
        write_bytes(out, w.as_bytes());
    }
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclone_metainfo::bencode;

    fn config() -> SwarmConfig {
        SwarmConfig {
            response_size: 50,
            reannounce_interval: 1800,
            min_interval: 900,
            multitracker_reannounce_interval: 120,
            nat_check: 3,
            keep_dead: false,
            allowed_controls: false,
            dedicated_seed_id: None,
        }
    }

    fn req(id: u8, left: u64, event: Event) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: [7; 20],
            peer_id: [id; 20],
            port: 6881 + u16::from(id),
            left,
            event,
            compact: true,
            ..AnnounceRequest::default()
        }
    }

    fn work(r: AnnounceRequest, ip: [u8; 4], now: u64) -> AnnounceWork {
        let ip = IpAddr::from(ip);
        AnnounceWork {
            req: r,
            conn_ip: ip,
            listed_ip: ip,
            local: true,
            now,
            reply: ReplyFormat::Http,
        }
    }

    fn peers_of(body: &[u8]) -> Vec<u8> {
        let v = bencode::decode(body).unwrap();
        v.get(b"peers").unwrap().as_bytes().unwrap_or(&[]).to_vec()
    }

    #[test]
    fn swarms_and_peers_per_shard_are_bounded_and_looks_create_nothing() {
        let mut s = ShardState::new(config(), 1);
        s.max_swarms = 2;
        s.max_peers = 3;
        let on = |ih: u8, id: u8, event: Event| {
            let mut r = req(id, 5, event);
            r.info_hash = [ih; 20];
            work(r, [127, 0, 0, 1], 1)
        };
        // Looks and stops of unknown swarms are answered without creating one.
        for event in [Event::Snooped, Event::Stopped] {
            let body = s.announce(&on(1, 1, event)).unwrap();
            assert!(peers_of(&body).is_empty());
        }
        assert!(s.swarms.is_empty());
        // Two swarms fit, the third hash is served but not recorded.
        s.announce(&on(1, 1, Event::Started)).unwrap();
        s.announce(&on(2, 2, Event::Started)).unwrap();
        assert!(s.announce(&on(3, 3, Event::Started)).is_ok());
        assert_eq!(s.swarms.len(), 2);
        // A third peer fits, a fourth does not.
        s.announce(&on(1, 4, Event::Started)).unwrap();
        s.announce(&on(2, 5, Event::Started)).unwrap();
        let total = |s: &ShardState| s.swarms.values().map(|w| w.peers.len()).sum::<usize>();
        assert_eq!((total(&s), s.peer_count), (3, 3));
        // Room again once a peer stops.
        s.announce(&on(1, 4, Event::Stopped)).unwrap();
        s.announce(&on(2, 5, Event::Started)).unwrap();
        assert_eq!((total(&s), s.peer_count), (3, 3));
        // The sweep keeps the count in step.
        s.expire(10);
        s.expire(20);
        assert_eq!((total(&s), s.peer_count), (0, 0));
    }

    /// Random announces (new peers, updates that change address, port, left, crypto and NAT state, stops), NAT
    /// results and sweeps: every answer lists only peers the rules allow (listable, never the requester, no seed for
    /// a seed), and the seed count stays right.
    #[test]
    fn answers_follow_the_rules_through_random_changes() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut cfg = config();
        cfg.nat_check = 2;
        let mut s = ShardState::new(cfg, 1);
        let mut listed_total = 0;
        for step in 0..4000u64 {
            let id = rng.u8(..40);
            let event = match rng.u8(..10) {
                0 => Event::Stopped,
                1 => Event::Completed,
                2 => Event::None,
                _ => Event::Started,
            };
            let mut r = req(id, if rng.bool() { 0 } else { 5 }, event);
            r.port = if rng.u8(..20) == 0 {
                0
            } else {
                6000 + u16::from(rng.u8(..4))
            };
            r.supportcrypto = rng.bool();
            r.requirecrypto = rng.u8(..4) == 0;
            r.compact = rng.u8(..5) != 0;
            let ip = if rng.u8(..4) == 0 {
                IpAddr::from([
                    0x20,
                    1,
                    0xd,
                    0xb8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    rng.u8(..3),
                ])
            } else {
                IpAddr::from([10, 0, 0, rng.u8(..3)])
            };
            let mut w = work(r, [0, 0, 0, 0], step / 100 + 1);
            (w.conn_ip, w.listed_ip, w.local) = (ip, ip, rng.bool());
            let body = s.announce(&w).unwrap();
            for job in s.take_nat_jobs() {
                s.nat_result(&job, rng.bool());
            }
            if step % 500 == 499 {
                s.expire(step / 100 + 1);
            }
            for swarm in s.swarms.values() {
                assert_eq!(
                    swarm.seeds,
                    swarm.peers.iter().filter(|p| p.left == 0).count()
                );
            }
            // What was listed: each entry a listable peer of the swarm, not the requester, no seed for a seed.
            let v = bencode::decode(&body).unwrap();
            let Some(swarm) = s.swarms.get(&[7; 20]) else {
                continue;
            };
            let listed: Vec<(IpAddr, u16)> = match v.get(b"peers").map(|x| x.kind()) {
                Some(bencode::Kind::Bytes(b)) => b
                    .chunks(6)
                    .map(|c| {
                        (
                            IpAddr::from([c[0], c[1], c[2], c[3]]),
                            u16::from_be_bytes([c[4], c[5]]),
                        )
                    })
                    .chain(
                        v.get(b"peers6")
                            .and_then(|x| x.as_bytes())
                            .unwrap_or(&[])
                            .chunks(18)
                            .map(|c| {
                                let a: [u8; 16] = c[..16].try_into().unwrap();
                                (IpAddr::from(a), u16::from_be_bytes([c[16], c[17]]))
                            }),
                    )
                    .collect(),
                Some(bencode::Kind::List(items)) => items
                    .iter()
                    .map(|d| {
                        let ip =
                            std::str::from_utf8(d.get(b"ip").unwrap().as_bytes().unwrap()).unwrap();
                        (
                            ip.parse().unwrap(),
                            d.get(b"port").unwrap().as_int().unwrap() as u16,
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            };
            listed_total += listed.len();
            for (ip, port) in listed {
                let p = swarm
                    .peers
                    .iter()
                    .find(|p| p.ip == ip && p.port == port && p.id != [id; 20] && p.listable())
                    .unwrap_or_else(|| {
                        panic!("step {step}: listed {ip}:{port} is no eligible peer")
                    });
                if w.req.left == 0 && w.req.event != Event::Stopped {
                    assert!(
                        swarm.peers.iter().any(|q| q.ip == ip
                            && q.port == port
                            && q.left > 0
                            && q.id != [id; 20]),
                        "step {step}: a seed was given seed {p:?}"
                    );
                }
            }
        }
        assert!(
            listed_total > 10_000,
            "the answers listed {listed_total} peers"
        );
    }

    #[test]
    fn requester_never_gets_itself_and_seeds_get_only_leechers() {
        let mut s = ShardState::new(config(), 1);
        s.announce(&work(req(1, 0, Event::Started), [127, 0, 0, 1], 1))
            .unwrap();
        s.announce(&work(req(2, 0, Event::Started), [127, 0, 0, 2], 1))
            .unwrap();
        s.announce(&work(req(3, 10, Event::Started), [127, 0, 0, 3], 1))
            .unwrap();
        // Seed 1 sees only leecher 3.
        let body = s
            .announce(&work(req(1, 0, Event::None), [127, 0, 0, 1], 2))
            .unwrap();
        assert_eq!(peers_of(&body), vec![127, 0, 0, 3, 0x1a, 0xe4]);
        // Leecher 3 sees both seeds, not itself.
        let body = s
            .announce(&work(req(3, 10, Event::None), [127, 0, 0, 3], 2))
            .unwrap();
        let p = peers_of(&body);
        assert_eq!(p.len(), 12);
        assert!(!p.chunks(6).any(|c| c[3] == 3));
        let v = bencode::decode(&body).unwrap();
        assert_eq!(v.get(b"complete").unwrap().as_int(), Some(2));
        assert_eq!(v.get(b"incomplete").unwrap().as_int(), Some(1));
        assert_eq!(v.get(b"interval").unwrap().as_int(), Some(1800));
        assert_eq!(v.get(b"min interval").unwrap().as_int(), Some(900));
    }

    #[test]
    fn completion_counting_and_stop() {
        let mut s = ShardState::new(config(), 1);
        s.announce(&work(req(1, 10, Event::Started), [127, 0, 0, 1], 1))
            .unwrap();
        s.announce(&work(req(1, 0, Event::None), [127, 0, 0, 1], 2))
            .unwrap();
        assert_eq!(s.completed[&[7; 20]], 1);
        s.announce(&work(req(1, 5, Event::None), [127, 0, 0, 1], 2))
            .unwrap();
        assert_eq!(s.completed[&[7; 20]], 0);
        s.announce(&work(req(2, 0, Event::Completed), [127, 0, 0, 2], 2))
            .unwrap();
        assert_eq!(s.completed[&[7; 20]], 1);
        let body = s
            .announce(&work(req(2, 0, Event::Stopped), [127, 0, 0, 2], 3))
            .unwrap();
        let v = bencode::decode(&body).unwrap();
        assert!(v.get(b"peers").unwrap().as_list().unwrap().is_empty());
        assert_eq!(s.swarms[&[7; 20]].peers().len(), 1);
    }

    #[test]
    fn key_protects_known_peers() {
        let mut s = ShardState::new(config(), 1);
        let mut r = req(1, 10, Event::Started);
        r.key = Some(b"secret".to_vec());
        s.announce(&work(r.clone(), [127, 0, 0, 1], 1)).unwrap();
        let mut forged = req(1, 10, Event::Stopped);
        forged.key = Some(b"wrong".to_vec());
        s.announce(&work(forged, [127, 0, 0, 9], 2)).unwrap();
        assert_eq!(
            s.swarms[&[7; 20]].peers().len(),
            1,
            "a stop with a wrong key from another IP is ignored"
        );
        let mut good = req(1, 10, Event::Stopped);
        good.key = Some(b"secret".to_vec());
        s.announce(&work(good, [127, 0, 0, 9], 2)).unwrap();
        assert_eq!(s.swarms[&[7; 20]].peers().len(), 0);
    }

    #[test]
    fn crypto_types_and_dict_responses() {
        let mut s = ShardState::new(config(), 1);
        let mut r = req(1, 10, Event::Started);
        r.requirecrypto = true;
        s.announce(&work(r, [127, 0, 0, 1], 1)).unwrap();
        s.announce(&work(req(2, 10, Event::Started), [127, 0, 0, 2], 1))
            .unwrap();
        // Plain compact requester: the crypto-only peer is hidden.
        let body = s
            .announce(&work(req(3, 10, Event::Started), [127, 0, 0, 3], 1))
            .unwrap();
        assert_eq!(peers_of(&body).len(), 6);
        // supportcrypto requester: both, with flags 1 and 0.
        let mut r = req(4, 10, Event::Started);
        r.supportcrypto = true;
        r.numwant = Some(10);
        let body = s.announce(&work(r, [127, 0, 0, 4], 1)).unwrap();
        let v = bencode::decode(&body).unwrap();
        let peers = v.get(b"peers").unwrap().as_bytes().unwrap();
        let flags = v.get(b"crypto_flags").unwrap().as_bytes().unwrap();
        assert_eq!(flags.len(), peers.len() / 6);
        for (c, f) in peers.chunks(6).zip(flags) {
            assert_eq!(*f, u8::from(c[3] == 1));
        }
        // Non-compact, no_peer_id.
        let mut r = req(5, 10, Event::Started);
        r.compact = false;
        r.no_peer_id = true;
        r.numwant = Some(1);
        let body = s.announce(&work(r, [127, 0, 0, 5], 1)).unwrap();
        let v = bencode::decode(&body).unwrap();
        let list = v.get(b"peers").unwrap().as_list().unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].get(b"peer id").is_none());
        assert!(list[0]
            .get(b"ip")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("127.0.0."));
    }

    #[test]
    fn ipv6_peers_go_to_peers6() {
        let mut s = ShardState::new(config(), 1);
        let ip6: IpAddr = "::1".parse().unwrap();
        s.announce(&AnnounceWork {
            req: req(1, 10, Event::Started),
            conn_ip: ip6,
            listed_ip: ip6,
            local: true,
            now: 1,
            reply: ReplyFormat::Http,
        })
        .unwrap();
        let body = s
            .announce(&work(req(2, 10, Event::Started), [127, 0, 0, 2], 1))
            .unwrap();
        let v = bencode::decode(&body).unwrap();
        assert_eq!(v.get(b"peers6").unwrap().as_bytes().unwrap().len(), 18);
        assert_eq!(v.get(b"peers").unwrap().as_bytes().unwrap().len(), 0);
    }

    #[test]
    fn expiry_drops_after_a_full_interval_and_dead_torrents() {
        let mut s = ShardState::new(config(), 1);
        s.announce(&work(req(1, 10, Event::Started), [127, 0, 0, 1], 5))
            .unwrap();
        assert_eq!(s.expire(10), 0, "seen after the previous sweep: kept");
        assert_eq!(
            s.expire(20),
            1,
            "not seen since the previous sweep: dropped"
        );
        assert!(s.swarms.is_empty());
        s.config.keep_dead = true;
        s.announce(&work(req(1, 10, Event::Started), [127, 0, 0, 1], 21))
            .unwrap();
        s.expire(30);
        s.expire(40);
        assert_eq!(s.swarms.len(), 1);
    }

    #[test]
    fn numwant_and_response_size_cap() {
        let mut s = ShardState::new(config(), 1);
        for i in 1..=60u8 {
            s.announce(&work(req(i, 10, Event::Started), [127, 0, 0, i], 1))
                .unwrap();
        }
        let body = s
            .announce(&work(req(100, 10, Event::Started), [127, 0, 1, 1], 1))
            .unwrap();
        assert_eq!(peers_of(&body).len(), 50 * 6);
        let mut r = req(100, 10, Event::None);
        r.numwant = Some(5);
        assert_eq!(
            peers_of(&s.announce(&work(r, [127, 0, 1, 1], 1)).unwrap()).len(),
            30
        );
        let mut r = req(100, 10, Event::None);
        r.numwant = Some(0);
        let body = s.announce(&work(r, [127, 0, 1, 1], 1)).unwrap();
        assert!(bencode::decode(&body)
            .unwrap()
            .get(b"peers")
            .unwrap()
            .as_list()
            .unwrap()
            .is_empty());
    }

    fn udp_work(r: AnnounceRequest, ip: IpAddr, transaction_id: u32) -> AnnounceWork {
        AnnounceWork {
            req: r,
            conn_ip: ip,
            listed_ip: ip,
            local: true,
            now: 1,
            reply: ReplyFormat::Udp {
                transaction_id,
                v6: ip.is_ipv6(),
            },
        }
    }

    #[test]
    fn udp_answers_carry_one_family_counts_and_a_cap() {
        let mut s = ShardState::new(config(), 1);
        let v6: IpAddr = "::2".parse().unwrap();
        // Two IPv4 seeds, one IPv6 leecher, then 100 more IPv4 leechers.
        for i in 1..=2u8 {
            s.announce(&udp_work(
                req(i, 0, Event::Started),
                IpAddr::from([127, 0, 0, i]),
                1,
            ))
            .unwrap();
        }
        s.announce(&udp_work(req(3, 5, Event::Started), v6, 1))
            .unwrap();
        // IPv4 leecher: head (action 1, transaction id, interval 1800, 2 leechers counting
        // itself, 2 seeders), then the two IPv4 seeds, 6 bytes each; the IPv6 peer is not listed.

        let out = s
            .announce(&udp_work(
                req(4, 5, Event::Started),
                IpAddr::from([127, 0, 0, 4]),
                77,
            ))
            .unwrap();
        assert_eq!(&out[..8], &[0, 0, 0, 1, 0, 0, 0, 77]);
        assert_eq!(&out[8..20], &[0, 0, 7, 8, 0, 0, 0, 2, 0, 0, 0, 2]);
        assert_eq!(out.len(), 20 + 2 * 6);
        let mut got: Vec<&[u8]> = out[20..].chunks(6).collect();
        got.sort();
        assert_eq!(
            got,
            [[127, 0, 0, 1, 0x1a, 0xe2], [127, 0, 0, 2, 0x1a, 0xe3]]
        );
        // The IPv6 leecher sees only IPv6 peers: nobody (it is never listed to itself).
        let out = s
            .announce(&udp_work(req(3, 5, Event::None), v6, 5))
            .unwrap();
        assert_eq!(out.len(), 20);
        // A second IPv6 peer sees the first one, 18 bytes.
        let out = s
            .announce(&udp_work(
                req(5, 5, Event::Started),
                "::5".parse().unwrap(),
                5,
            ))
            .unwrap();
        assert_eq!(out.len(), 20 + 18);
        assert_eq!(
            &out[20..36],
            &"::2".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        // Stopped: counts, no peers.
        let out = s
            .announce(&udp_work(
                req(4, 5, Event::Stopped),
                IpAddr::from([127, 0, 0, 4]),
                9,
            ))
            .unwrap();
        assert_eq!(out.len(), 20);
        // At most MAX_UDP_PEERS peers whatever numwant and response_size say.
        let mut c = config();
        c.response_size = 500;
        let mut s = ShardState::new(c, 1);
        for i in 0..200u32 {
            let mut r = req(0, 0, Event::Started);
            r.peer_id[..4].copy_from_slice(&i.to_be_bytes());
            s.announce(&udp_work(
                r,
                IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + i + 1)),
                1,
            ))
            .unwrap();
        }
        let mut r = req(250, 5, Event::Started);
        r.numwant = Some(1000);
        let out = s
            .announce(&udp_work(r, IpAddr::from([127, 1, 0, 1]), 1))
            .unwrap();
        assert_eq!(out.len(), 20 + MAX_UDP_PEERS * 6);
    }

    #[test]
    fn scrape_param_seeded_flag_and_allowed_controls() {
        let mut c = config();
        c.dedicated_seed_id = Some(b"box1".to_vec());
        c.allowed_controls = true;
        let mut s = ShardState::new(c, 1);
        let mut allowed = AllowedSet::default();
        allowed.hashes.insert([7; 20]);
        allowed.hashes.insert([8; 20]);
        allowed
            .controls
            .insert([7; 20], (None, Some("be nice".to_string())));
        allowed
            .controls
            .insert([8; 20], (Some("closed for maintenance".to_string()), None));
        s.allowed = Some(Arc::new(allowed));
        let mut r = req(1, 0, Event::Started);
        r.seed_id = Some(b"box1".to_vec());
        s.announce(&work(r, [127, 0, 0, 1], 1)).unwrap();
        let mut r = req(2, 10, Event::Started);
        r.scrape = true;
        r.check_seeded = true;
        let body = s.announce(&work(r, [127, 0, 0, 2], 1)).unwrap();
        let v = bencode::decode(&body).expect("canonical response");
        let sc = v.get(b"scrape").unwrap();
        assert_eq!(sc.get(b"complete").unwrap().as_int(), Some(1));
        assert_eq!(sc.get(b"incomplete").unwrap().as_int(), Some(1));
        assert_eq!(v.get(b"seeded").unwrap().as_int(), Some(1));
        assert_eq!(v.get(b"warning message").unwrap().as_str(), Some("be nice"));
        let mut r = req(3, 10, Event::Started);
        r.info_hash = [8; 20];
        let e = s.announce(&work(r, [127, 0, 0, 3], 1)).unwrap_err();
        assert_eq!(
            e,
            RequestError::NotAuthorized200("closed for maintenance".to_string())
        );
    }

    #[test]
    fn tracker_polls_get_compact_peers_and_change_nothing() {
        let mut s = ShardState::new(config(), 1);
        s.announce(&work(req(1, 0, Event::Started), [127, 0, 0, 1], 1))
            .unwrap();
        s.announce(&work(req(2, 10, Event::Started), [127, 0, 0, 2], 1))
            .unwrap();
        let mut poll = req(9, 1, Event::Stopped);
        poll.port = 0;
        poll.compact = false;
        poll.tracker = true;
        let body = s.announce(&work(poll, [127, 0, 0, 9], 2)).unwrap();
        let v = bencode::decode(&body).unwrap();
        assert_eq!(
            v.get(b"peers").unwrap().as_bytes().unwrap().len(),
            12,
            "seed and leecher, compact"
        );
        assert_eq!(v.get(b"interval").unwrap().as_int(), Some(120));
        assert_eq!(
            s.swarms[&[7; 20]].peers().len(),
            2,
            "the poll is not a peer"
        );
    }

    #[test]
    fn harvested_peers_go_to_clients_only_and_expire() {
        let mut s = ShardState::new(config(), 1);
        s.announce(&work(req(1, 10, Event::Started), [127, 0, 0, 1], 1))
            .unwrap();
        let h: IpAddr = "10.9.9.9".parse().unwrap();
        // One harvested address twice (deduplicated), and one carrying peer 1's id (listed from
        // our own record, not twice).
        let got = s.harvest(
            &[7; 20],
            &[
                (UNKNOWN_PEER_ID, h, 7000),
                (UNKNOWN_PEER_ID, h, 7000),
                ([1; 20], "10.9.9.8".parse().unwrap(), 7001),
                (UNKNOWN_PEER_ID, h, 0),
            ],
            2,
        );
        assert_eq!(got, 2);
        let counts = s.counts(&[7; 20]).unwrap();
        assert_eq!((counts.complete, counts.incomplete), (0, 1), "not counted");
        // A seed client gets our leecher and the harvested peer.
        let mut r = req(2, 0, Event::Started);
        r.numwant = Some(10);
        let p = peers_of(&s.announce(&work(r, [127, 0, 0, 2], 2)).unwrap());
        assert_eq!(p.len(), 12);
        assert!(p.chunks(6).any(|c| c == [10, 9, 9, 9, 0x1b, 0x58]));
        // A polling tracker gets only our own peers.
        let mut poll = req(9, 1, Event::Stopped);
        poll.port = 0;
        poll.tracker = true;
        let p = peers_of(&s.announce(&work(poll, [127, 0, 0, 9], 2)).unwrap());
        assert_eq!(p.len(), 12, "our two peers, no harvested one");
        assert!(!p.chunks(6).any(|c| c[0] == 10));
        // A crypto-only client does not get them (their crypto support is unknown).
        let mut r = req(3, 10, Event::Started);
        r.requirecrypto = true;
        let body = s.announce(&work(r, [127, 0, 0, 3], 2)).unwrap();
        assert!(!peers_of(&body).chunks(6).any(|c| c[0] == 10));
        // Non-compact: no `peer id` for a peer whose id we never learnt.
        let mut r = req(4, 10, Event::Started);
        r.compact = false;
        r.numwant = Some(10);
        let body = s.announce(&work(r, [127, 0, 0, 4], 2)).unwrap();
        let v = bencode::decode(&body).unwrap();
        let list = v.get(b"peers").unwrap().as_list().unwrap().to_vec();
        let harvested: Vec<_> = list
            .iter()
            .filter(|d| d.get(b"ip").unwrap().as_str() == Some("10.9.9.9"))
            .collect();
        assert_eq!(harvested.len(), 1);
        assert!(harvested[0].get(b"peer id").is_none());
        // Not saved, and expired like peers: not re-harvested since the previous sweep.
        assert!(s.swarms[&[7; 20]].peers().iter().all(|p| p.ip != h));
        s.expire(3);
        assert_eq!(s.swarms[&[7; 20]].harvested().len(), 2);
        // Keep the torrent (allowed) so the swarm survives its peers' expiry.
        let mut allowed = AllowedSet::default();
        allowed.hashes.insert([7; 20]);
        s.allowed = Some(Arc::new(allowed));
        s.expire(4);
        assert!(s.swarms[&[7; 20]].harvested().is_empty());
    }

    #[test]
    fn harvest_is_bounded() {
        let mut s = ShardState::new(config(), 1);
        let many: Vec<_> = (0..MAX_HARVESTED_PER_SWARM as u32 + 10)
            .map(|i| {
                (
                    UNKNOWN_PEER_ID,
                    IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
                    1,
                )
            })
            .collect();
        assert_eq!(s.harvest(&[5; 20], &many, 1), MAX_HARVESTED_PER_SWARM);
        // The oldest went first; peers not returned for ten poll intervals are dropped.
        assert_eq!(s.swarms[&[5; 20]].harvested()[0].ip, many[10].1);
        assert_eq!(s.harvest(&[5; 20], &many[..1], 1 + 10 * 120 + 1), 1);
    }

    #[test]
    fn unlisted_torrent_refused_when_restricted() {
        let mut s = ShardState::new(config(), 1);
        s.allowed = Some(Arc::new(AllowedSet::default()));
        let e = s
            .announce(&work(req(1, 10, Event::Started), [127, 0, 0, 1], 1))
            .unwrap_err();
        assert!(matches!(e, RequestError::NotAuthorized200(_)));
    }
}
