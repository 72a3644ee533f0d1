//! The UDP front of one shard: reads datagrams from this shard's `SO_REUSEPORT` socket, checks
//! connection ids, and sends announces and scrapes to the shards owning the torrents over the same
//! mesh the HTTP front uses (the owner's `ShardState::announce` encodes the BEP 15 answer).
//!
//! Work that stays on this shard (connects, refusals, announces and scrapes of torrents this shard
//! owns) is answered inline by the read loop. Work needing another shard runs as a task; at most
//! [`MAX_IN_FLIGHT`] such tasks exist per shard, and when they are all busy the loop stops reading
//! (the kernel's socket buffer absorbs or drops the excess, as UDP allows).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;

use cyclone_metainfo::bencode::write_decimal;
use cyclone_shard::mesh::Router;
use cyclone_shard::shard_for_key;
use cyclone_shard::udp_batch::{Flushed, RecvBatch, SendBatch, MAX_BATCH};
use glommio::net::UdpSocket;
use glommio::sync::Semaphore;

use crate::access_log::{AccessEntry, LogBuffer, Protocol};
use crate::client_ip::{listed_ip, normalize};
use crate::config::ScrapeAllowed;
use crate::query::percent_encode_bytes;
use crate::request::{AnnounceRequest, Event, InfoHash};
use crate::server::{ShardReq, ShardResp, Shared};
use crate::swarm::{AnnounceWork, ReplyFormat, ShardState, SwarmCounts};
use crate::udp::bans::BadIdBans;
use crate::udp::codec::{
    self, decode_request, ScrapeEntry, UdpAnnounce, UdpEvent, UdpRequest, MAX_REQUEST_LEN,
};

/// Requests waiting on another shard, per shard (bounds tasks and their buffers).
pub const MAX_IN_FLIGHT: usize = 256;

/// Consecutive receive errors after which the loop gives up (a broken socket, not a bad packet).
const MAX_CONSECUTIVE_ERRORS: u32 = 10_000;

/// One shard's UDP front.
pub struct UdpFront {
    pub(crate) router: Rc<Router<ShardReq, ShardResp>>,
    pub(crate) state: Rc<RefCell<ShardState>>,
    pub(crate) shared: Arc<Shared>,
    /// This shard's bad-id counts and bans.
    pub(crate) bans: RefCell<BadIdBans>,
    /// This shard's access log (shared with its HTTP front).
    pub(crate) log: Rc<LogBuffer>,
}

/// What to do with a datagram after the checks that need no other shard.
enum Next {
    /// Answer with these bytes (or stay silent if empty).
    Reply(Vec<u8>),
    /// Ask the owner shard(s).
    Remote(Remote),
}

enum Remote {
    Announce(usize, Box<AnnounceWork>, u32),
    Scrape(Vec<InfoHash>, u32),
}

impl Remote {
    /// Whether every torrent involved belongs to this shard.
    fn is_local(&self, router: &Router<ShardReq, ShardResp>) -> bool {
        let me = router.shard();
        match self {
            Remote::Announce(owner, ..) => *owner == me,
            Remote::Scrape(hashes, _) => hashes
                .iter()
                .all(|h| shard_for_key(h, router.shards()) == me),
        }
    }
}

fn error_packet(transaction_id: u32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + message.len());
    codec::encode_error(&mut out, transaction_id, message);
    out
}

impl UdpFront {
    /// Serves `socket` until it fails persistently; returns that error.
    ///
    /// Fast path: `recvmmsg` takes up to [`MAX_BATCH`] waiting datagrams without blocking, the
    /// answers this shard gives itself are queued and sent with one `sendmmsg`; only when the
    /// socket is empty does the loop wait for readiness through glommio (a `MSG_PEEK` receive,
    /// which consumes nothing), and only when the send buffer is full does an answer
    /// go through glommio's awaiting send.
    pub async fn serve(self: Rc<Self>, socket: UdpSocket) -> std::io::Error {
        let socket = Rc::new(socket);
        let fd = socket.as_raw_fd();
        let permits = Rc::new(Semaphore::new(MAX_IN_FLIGHT as u64));
        let mut batch = RecvBatch::new(MAX_BATCH, MAX_REQUEST_LEN + 1);
        let mut answers = SendBatch::default();
        let mut errors = 0u32;
        loop {
            let n = match batch.recv(fd) {
                Ok(0) => 0,
                Ok(n) => {
                    errors = 0;
                    n
                }
                Err(e) => {
                    errors += 1;
                    if errors >= MAX_CONSECUTIVE_ERRORS {
                        return e;
                    }
                    continue;
                }
            };
            if n == 0 {
                // Empty: wait until a datagram is there (peeking one byte consumes nothing;
                // `peek_from`, since glommio's `peek` wants a connected socket).
                let mut probe = [0u8; 1];
                if let Err(e) = socket.peek_from(&mut probe).await {
                    errors += 1;
                    if errors >= MAX_CONSECUTIVE_ERRORS {
                        return e.into();
                    }
                }
                continue;
            }
            for i in 0..n {
                let Some((packet, from)) = batch.get(i) else {
                    continue;
                };
                let (next, logged_as) = self.first_pass(packet, from);
                match next {
                    Next::Reply(out) => {
                        self.log_answer(from, logged_as.as_deref(), &out);
                        if !out.is_empty() {
                            answers.push(out, from);
                        }
                    }
                    Next::Remote(r) if r.is_local(&self.router) => {
                        // The router runs this shard's handler inline (it also starts the NAT
                        // checks the announce queued): no suspension, no task.
                        let out = self.remote(r).await;
                        self.log_answer(from, logged_as.as_deref(), &out);
                        answers.push(out, from);
                    }
                    Next::Remote(r) => {
                        let Ok(permit) = permits.acquire_static_permit(1).await else {
                            continue;
                        };
                        let me = self.clone();
                        let socket = socket.clone();
                        glommio::spawn_local(async move {
                            let out = me.remote(r).await;
                            me.log_answer(from, logged_as.as_deref(), &out);
                            let _ = socket.send_to(&out, from).await;
                            drop(permit);
                        })
                        .detach();
                    }
                }
            }
            // Bounded: each round sends at least one queued answer (or drops it on error).
            while answers.flush(fd) == Flushed::WouldBlock {
                if let Some((out, to)) = answers.pop_front() {
                    // A failed send (e.g. no route) loses one answer; the client retries.
                    let _ = socket.send_to(&out, to).await;
                }
            }
            // A socket that never empties must not starve this shard's other tasks.
            glommio::yield_if_needed().await;
        }
    }

    /// Writes the access-log line of an announce or scrape (`logged_as`, its HTTP form; `None` for what is not
    /// logged): code 400 when the answer is an error packet, else 200, and the answer's size.
    fn log_answer(&self, from: SocketAddr, logged_as: Option<&[u8]>, answer: &[u8]) {
        let Some(target) = logged_as else { return };
        let error = answer.get(..4) == Some(&codec::ACTION_ERROR.to_be_bytes()[..]);
        self.log.access(&AccessEntry {
            ip: normalize(from.ip()),
            gzip: false,
            method: "GET",
            target,
            protocol: Protocol::Udp,
            code: if error { 400 } else { 200 },
            bytes: answer.len(),
            referer: b"-",
            agent: b"-",
        });
    }

    /// Decodes and answers what this shard can answer alone. Also returns the request's HTTP form for the access
    /// log (announces and scrapes, with `--access_log` on; connects and undecodable datagrams are not logged).
    fn first_pass(&self, packet: &[u8], from: SocketAddr) -> (Next, Option<Vec<u8>>) {
        let now = self.shared.now();
        if self.bans.borrow().is_banned(normalize(from.ip()), now) {
            return (Next::Reply(Vec::new()), None);
        }
        let req = match decode_request(packet) {
            Ok(r) => r,
            Err(e) => return (self.malformed(e, packet, from, now), None),
        };
        let logged_as = match &req {
            UdpRequest::Connect { .. } => None,
            _ if !self.shared.config.access_log => None,
            r => Some(http_form(r)),
        };
        let next = self.answer(req, from, now, logged_as.as_deref());
        (next, logged_as)
    }

    /// The answer to a datagram that did not decode: explained only to a client holding a valid connection id
    /// (so stray datagrams get no answer, and nobody can aim answers at a forged source); without a transaction
    /// id there is nothing to answer to anyway.
    fn malformed(&self, e: codec::DecodeError, packet: &[u8], from: SocketAddr, now: u64) -> Next {
        let reply = match (e.transaction_id, packet.get(..8)) {
            (Some(t), Some(id)) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(id);
                let id = u64::from_be_bytes(b);
                if self.shared.connection_ids.check(id, &from, now) {
                    error_packet(t, &e.to_string())
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        Next::Reply(reply)
    }

    /// Answers a decoded request, or says which shard(s) must. `logged_as` is its HTTP form if the access log
    /// already built it.
    fn answer(
        &self,
        req: UdpRequest,
        from: SocketAddr,
        now: u64,
        logged_as: Option<&[u8]>,
    ) -> Next {
        let shards = self.router.shards();
        match req {
            UdpRequest::Connect { transaction_id } => {
                let mut out = Vec::with_capacity(16);
                let id = self.shared.connection_ids.issue(&from, now);
                codec::encode_connect(&mut out, transaction_id, id);
                Next::Reply(out)
            }
            UdpRequest::Announce(a) => {
                if let Some(refusal) = self.refusal(a.connection_id, a.transaction_id, from, now) {
                    return Next::Reply(refusal);
                }
                // Forwarded as HTTP announces are (bttrack's query; UDP has no tracker-to-tracker polls), and only
                // once accepted: past the connection-id check (a forged source address is never forwarded) and the
                // aggregator's password rule.
                let forward = self.shared.forward.as_ref().map(|f| {
                    let query = match logged_as {
                        Some(t) => t.strip_prefix(b"/announce?").unwrap_or(t).to_vec(),
                        None => {
                            let mut q = Vec::with_capacity(256);
                            announce_query(&a, &mut q);
                            q
                        }
                    };
                    (f, query)
                });
                let transaction_id = a.transaction_id;
                let owner = shard_for_key(&a.info_hash, shards);
                let work = match self.announce_work(a, from, now) {
                    Ok(w) => w,
                    Err(message) => return Next::Reply(error_packet(transaction_id, message)),
                };
                if let Some((f, query)) = forward {
                    crate::aggregate_forward::spawn(f, &query, &crate::server::FORWARDS_IN_FLIGHT);
                }
                Next::Remote(Remote::Announce(owner, Box::new(work), transaction_id))
            }
            UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                if let Some(refusal) = self.refusal(connection_id, transaction_id, from, now) {
                    return Next::Reply(refusal);
                }
                if self.shared.config.scrape_allowed == ScrapeAllowed::None {
                    return Next::Reply(error_packet(
                        transaction_id,
                        "specific scrape function is not available with this tracker.",
                    ));
                }
                Next::Remote(Remote::Scrape(info_hashes, transaction_id))
            }
        }
    }

    /// The error packet for a request this tracker refuses before any swarm work: a connection id
    /// it did not issue to this address in the last two minutes, or an IP the lists refuse.
    fn refusal(
        &self,
        connection_id: u64,
        transaction_id: u32,
        from: SocketAddr,
        now: u64,
    ) -> Option<Vec<u8>> {
        if !self.shared.connection_ids.check(connection_id, &from, now) {
            let ip = normalize(from.ip());
            let ban = self.shared.config.udp_bad_id_ban;
            // No log line per ban: printing from the executor could block on a full stderr pipe.
            self.bans.borrow_mut().record_bad(ip, now, ban);
            return Some(error_packet(transaction_id, "bad connection id"));
        }
        let filter = self.state.borrow().ip_filter.clone();
        if filter.is_some_and(|f| !f.permits(normalize(from.ip()))) {
            return Some(error_packet(
                transaction_id,
                "your IP is not allowed on this tracker",
            ));
        }
        None
    }

    /// The announce as the owner shard receives it, with the HTTP front's rules for the listed IP
    /// (the IPv4 `ip` field is honoured only where bttrack honours `ip=`).
    fn announce_work(
        &self,
        a: UdpAnnounce,
        from: SocketAddr,
        now: u64,
    ) -> Result<AnnounceWork, &'static str> {
        let c = &self.shared.config;
        // Aggregator mode with a password: UDP has no way to carry it.
        if c.aggregator != "0" && c.aggregator != "1" {
            return Err("Requested download is not authorized for use with this tracker.");
        }
        let conn_ip = normalize(from.ip());
        let given_ip = (!a.ip.is_unspecified()).then(|| a.ip.to_string());
        let (ip, local) = listed_ip(
            conn_ip,
            |_| None,
            given_ip.as_deref(),
            c.anyone_may_override_ip(),
        );
        let event = match a.event {
            UdpEvent::None => Event::None,
            UdpEvent::Completed => Event::Completed,
            UdpEvent::Started => Event::Started,
            UdpEvent::Stopped => Event::Stopped,
        };
        let req = AnnounceRequest {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            port: a.port,
            uploaded: a.uploaded,
            downloaded: a.downloaded,
            left: a.left,
            event,
            compact: true,
            no_peer_id: true,
            numwant: usize::try_from(a.num_want).ok(),
            // The HTTP form libtorrent sends (`key=%08X`), so a client using both protocols
            // authenticates with the same key.
            key: Some(format!("{:08X}", a.key).into_bytes()),
            ip: given_ip,
            ..AnnounceRequest::default()
        };
        Ok(AnnounceWork {
            req,
            conn_ip,
            listed_ip: ip,
            local: (local && !c.nat_check_local) || c.aggregator != "0",
            now,
            reply: ReplyFormat::Udp {
                transaction_id: a.transaction_id,
                v6: conn_ip.is_ipv6(),
            },
        })
    }

    /// Asks the owner shard(s) and encodes the answer.
    async fn remote(&self, r: Remote) -> Vec<u8> {
        match r {
            Remote::Announce(owner, work, transaction_id) => {
                match self.router.call(owner, ShardReq::Announce(*work)).await {
                    Ok(ShardResp::Announce(result)) => announce_reply(result, transaction_id),
                    _ => error_packet(transaction_id, "internal error"),
                }
            }
            Remote::Scrape(hashes, transaction_id) => {
                let found: HashMap<InfoHash, SwarmCounts> =
                    match crate::server::counts_from_owners(&self.router, &hashes).await {
                        Ok(v) => v.into_iter().collect(),
                        Err(_) => return error_packet(transaction_id, "internal error"),
                    };
                let counts: Vec<Option<SwarmCounts>> =
                    hashes.iter().map(|h| found.get(h).copied()).collect();
                scrape_reply(&counts, transaction_id)
            }
        }
    }
}

/// A UDP announce or scrape in the HTTP form a client would have sent (`/announce?…`, `/scrape?…`), for the
/// access log. Written as bytes with no formatting machinery: with the default `--access_log 1` this runs for
/// every UDP request (through `format!` it cost more instructions than the announce itself).
fn http_form(req: &UdpRequest) -> Vec<u8> {
    let mut t = Vec::with_capacity(320);
    match req {
        UdpRequest::Announce(a) => {
            t.extend_from_slice(b"/announce?");
            announce_query(a, &mut t);
        }
        UdpRequest::Scrape { info_hashes, .. } => {
            t.extend_from_slice(b"/scrape");
            for (i, h) in info_hashes.iter().enumerate() {
                t.extend_from_slice(if i == 0 {
                    b"?info_hash="
                } else {
                    b"&info_hash="
                });
                percent_encode_bytes(&mut t, h);
            }
        }
        UdpRequest::Connect { .. } => t.extend_from_slice(b"/connect"),
    }
    t
}

/// Appends a UDP announce as the query of the HTTP announce carrying the same fields (`key` in the `%08X` form the
/// swarm stores for UDP clients, `ip` only when the packet names one): what `--aggregate_forward` sends and the
/// access log shows.
fn announce_query(a: &UdpAnnounce, q: &mut Vec<u8>) {
    q.extend_from_slice(b"info_hash=");
    percent_encode_bytes(q, &a.info_hash);
    q.extend_from_slice(b"&peer_id=");
    percent_encode_bytes(q, &a.peer_id);
    for (name, v) in [
        (&b"&port="[..], u64::from(a.port)),
        (b"&uploaded=", a.uploaded),
        (b"&downloaded=", a.downloaded),
        (b"&left=", a.left),
    ] {
        q.extend_from_slice(name);
        write_decimal(q, v);
    }
    q.extend_from_slice(b"&compact=1&no_peer_id=1&key=");
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    q.extend(
        (0..8)
            .rev()
            .map(|i| HEX[((a.key >> (4 * i)) & 15) as usize]),
    );
    let event: &[u8] = match a.event {
        UdpEvent::None => b"",
        UdpEvent::Completed => b"&event=completed",
        UdpEvent::Started => b"&event=started",
        UdpEvent::Stopped => b"&event=stopped",
    };
    q.extend_from_slice(event);
    if let Ok(n) = u64::try_from(a.num_want) {
        q.extend_from_slice(b"&numwant=");
        write_decimal(q, n);
    }
    if !a.ip.is_unspecified() {
        q.extend_from_slice(b"&ip=");
        for (i, octet) in a.ip.octets().into_iter().enumerate() {
            if i > 0 {
                q.push(b'.');
            }
            write_decimal(q, u64::from(octet));
        }
    }
}

/// The owner's result as a datagram: the encoded response, or its refusal as an error packet.
fn announce_reply(
    result: Result<Vec<u8>, crate::request::RequestError>,
    transaction_id: u32,
) -> Vec<u8> {
    match result {
        Ok(bytes) => bytes,
        Err(e) => error_packet(transaction_id, &e.to_string()),
    }
}

/// Scrape counts in request order; unknown torrents count zero (BEP 15 has no "absent").
fn scrape_reply(counts: &[Option<SwarmCounts>], transaction_id: u32) -> Vec<u8> {
    let entries: Vec<ScrapeEntry> = counts
        .iter()
        .map(|c| {
            let c = c.unwrap_or_default();
            ScrapeEntry {
                seeders: codec::clamp_u32(c.complete),
                completed: codec::clamp_u32(c.downloaded),
                leechers: codec::clamp_u32(c.incomplete),
            }
        })
        .collect();
    let mut out = Vec::with_capacity(8 + 12 * entries.len());
    codec::encode_scrape(&mut out, transaction_id, &entries);
    out
}
