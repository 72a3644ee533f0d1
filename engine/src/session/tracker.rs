//! The torrent's tracker client: the pure [`crate::announce`] protocol driven over glommio sockets.
//!
//! One task per torrent: asks the [`AnnounceSchedule`] what is due (started, completed, regular, retry, stopped),
//! walks the BEP 12 tiers until a tracker answers (promoting it), feeds the peers to the torrent's dialler. HTTP
//! and UDP (BEP 15) trackers; https is reported as unsupported.

use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::torrent::Torrent;
use crate::announce::http::{announce_from_http, announce_request, warning_text};
use crate::announce::http_response::{parse_response, Parsed, ResponseLimits};
use crate::announce::schedule::{AnnounceSchedule, ScheduleConfig};
use crate::announce::tiers::TrackerTiers;
use crate::announce::udp::{Family, Request, RetransmitPolicy, Step, UdpAnnounce, UdpExchange};
use crate::announce::url::{Host, Scheme, TrackerUrl};
use crate::announce::{AnnounceParams, CryptoPolicy, Event, Key, Peer, ReplyLimits};

/// A `stopped` announce gets less: the user is waiting for the program to exit.
const STOPPED_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed per announce (BitTornado: 10).
const MAX_REDIRECTS: usize = 10;
const USER_AGENT: &str = "cyclone/0.1";

pub(super) async fn run(torrent: Rc<Torrent>) {
    let meta = &torrent.config.metainfo;
    let mut rng = fastrand::Rng::new();
    let mut tiers = TrackerTiers::new(meta.announce.as_deref(), &meta.announce_list, &mut rng);
    if tiers.is_empty() {
        return; // trackerless: nothing to announce to
    }
    let sc = &torrent.shared.config;
    let config = ScheduleConfig {
        min_announce_interval: sc.min_announce_interval,
        min_peers: sc.min_peers,
        rerequest_interval: sc.rerequest_interval,
        ..Default::default()
    };
    let mut schedule = AnnounceSchedule::new(Instant::now(), config);
    let key = Key::random(&mut rng);
    let mut stopping = false;
    let mut tracker_id: Option<Vec<u8>> = None;
    loop {
        let now = Instant::now();
        // Exactly once per finished download: re-arming `completed` on every pass made a seeding torrent announce
        // in a tight loop (thousands of tracker connections per second, found by bench/src/bin/transfer.rs).
        // Taken before the stop check, so a download that finishes and stops at once still reports `completed`
        // (the schedule sends it before `stopped`).
        if std::mem::take(&mut torrent.st.borrow_mut().completion_event_due) {
            schedule.completed();
        }
        if !stopping && torrent.stopping() {
            stopping = true;
            schedule.stop();
        }
        if schedule.is_finished() {
            return;
        }
        let connected = torrent.st.borrow().peers.len();
        let Some(due) = schedule.poll(now, connected) else {
            if stopping {
                return;
            }
            futures_lite::future::or(
                glommio::timer::sleep(Duration::from_millis(250)),
                torrent.stop.wait(),
            )
            .await;
            continue;
        };
        let mut pos = tiers.first();
        let mut answered = false;
        while let Some(p) = pos {
            let Some(url) = tiers.get(p).cloned() else {
                break;
            };
            let timeout = if due.event == Some(Event::Stopped) {
                STOPPED_TIMEOUT.min(torrent.shared.config.http_timeout)
            } else {
                torrent.shared.config.http_timeout
            };
            match announce_once(
                &torrent,
                &url,
                due.event,
                key,
                tracker_id.as_deref(),
                timeout,
            )
            .await
            {
                Ok(outcome) => {
                    schedule.on_success(
                        Instant::now(),
                        outcome.interval,
                        outcome.min_interval,
                        &mut rng,
                    );
                    if outcome.tracker_id.is_some() {
                        tracker_id = outcome.tracker_id;
                    }
                    torrent.st.borrow_mut().tracker_message = outcome.warning;
                    if due.event != Some(Event::Stopped) {
                        torrent.add_known(outcome.peers.into_iter());
                    }
                    tiers.promote(p);
                    answered = true;
                    break;
                }
                Err(msg) => {
                    torrent.st.borrow_mut().tracker_message = Some(msg);
                    pos = tiers.after(p);
                }
            }
        }
        if !answered {
            schedule.on_failure(Instant::now(), &mut rng);
        }
    }
}

struct Outcome {
    interval: Option<u32>,
    min_interval: Option<u32>,
    tracker_id: Option<Vec<u8>>,
    warning: Option<String>,
    peers: Vec<SocketAddr>,
}

async fn announce_once(
    torrent: &Torrent,
    url: &TrackerUrl,
    event: Option<Event>,
    key: Key,
    tracker_id: Option<&[u8]>,
    timeout: Duration,
) -> Result<Outcome, String> {
    if url.scheme == Scheme::Https {
        return Err("Problem connecting to tracker - https trackers are not supported yet".into());
    }
    let (left, uploaded, downloaded, connected) = {
        let st = torrent.st.borrow();
        let have: u64 = if st.have.is_complete() {
            torrent.map.total_length()
        } else {
            st.have
                .iter_ones()
                .map(|p| u64::from(torrent.map.piece_size(p)))
                .sum()
        };
        (
            torrent.map.total_length() - have,
            st.uploaded,
            st.downloaded,
            st.peers.len(),
        )
    };
    let numwant =
        if connected >= torrent.shared.config.max_initiate || event == Some(Event::Stopped) {
            Some(0)
        } else {
            None
        };
    let params = AnnounceParams {
        info_hash: torrent.info_hash,
        peer_id: torrent.shared.config.peer_id,
        port: torrent.shared.listen_port,
        uploaded,
        downloaded,
        left,
        event,
        numwant,
        key,
        ip: torrent.shared.config.announce_ip,
        crypto: CryptoPolicy::Plain,
        seed_id: Some(torrent.shared.config.dedicated_seed_id.as_slice()).filter(|s| !s.is_empty()),
        check_seeded: false,
        last: None,
        tracker_id,
    };
    if url.scheme == Scheme::Udp {
        return udp_announce(torrent, url, &params, timeout).await;
    }
    let mut url = url.clone();
    for _ in 0..MAX_REDIRECTS {
        let request = announce_request(&url, &params, USER_AGENT);
        let addr = resolve(&url).await?;
        let body = glommio::timer::timeout(timeout, async {
            http_exchange(addr, &request)
                .await
                .map_err(|e| glommio::GlommioError::from(std::io::Error::other(e)))
        })
        .await
        .map_err(|e| format!("Problem connecting to tracker - {e}"))?;
        let limits = ResponseLimits::default();
        let Parsed::Complete(resp) =
            parse_response(&body, true, &limits).map_err(|e| e.to_string())?
        else {
            return Err("Problem connecting to tracker - incomplete response".into());
        };
        if let Some(loc) = resp.redirect() {
            url = url.join(loc).map_err(|e| e.to_string())?;
            continue;
        }
        let reply =
            announce_from_http(&resp, &ReplyLimits::default()).map_err(|e| e.to_string())?;
        return Ok(Outcome {
            interval: reply.interval,
            min_interval: reply.min_interval,
            tracker_id: reply.tracker_id.map(|t| t.to_vec()),
            warning: reply.warning.as_deref().map(warning_text),
            peers: reply.peers().map(|p: Peer| p.addr).collect(),
        });
    }
    Err("Problem connecting to tracker - too many redirects".into())
}

/// One BEP 15 exchange (connect + announce, retransmitted on the `15 × 2ⁿ` ladder, cut to `timeout` overall).
async fn udp_announce(
    torrent: &Torrent,
    url: &TrackerUrl,
    params: &AnnounceParams<'_>,
    timeout: Duration,
) -> Result<Outcome, String> {
    let addr = resolve(url).await?;
    let local = match (addr, torrent.shared.config.bind) {
        (SocketAddr::V4(_), ip @ std::net::IpAddr::V4(_)) => SocketAddr::new(ip, 0),
        (SocketAddr::V4(_), _) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (SocketAddr::V6(_), ip @ std::net::IpAddr::V6(_)) => SocketAddr::new(ip, 0),
        (SocketAddr::V6(_), _) => SocketAddr::from(([0u16; 8], 0)),
    };
    let family = if addr.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let io = |e: glommio::GlommioError<()>| format!("Problem connecting to tracker - {e}");
    let socket = glommio::net::UdpSocket::bind(local).map_err(io)?;
    socket.connect(addr).await.map_err(io)?;
    let policy = RetransmitPolicy {
        base: Duration::from_secs(15).min(timeout),
        max_exponent: 2,
    };
    let mut exchange = UdpExchange::new(
        Request::Announce(UdpAnnounce::from(params)),
        url.path_and_query.as_bytes(),
        family,
        policy,
        ReplyLimits::default().max_peers,
        None,
    )
    .map_err(|e| e.to_string())?;
    let mut rng = fastrand::Rng::new();
    let give_up = Instant::now() + timeout;
    let mut step = exchange.start(Instant::now(), &mut rng);
    let mut deadline = Instant::now();
    let mut buf = vec![0u8; 2048];
    // Bounded: each datagram moves the exchange or is ignored, and the overall timeout ends the loop.
    loop {
        match step {
            Step::Send {
                packet,
                deadline: d,
            } => {
                deadline = d;
                socket.send(&packet).await.map_err(io)?;
            }
            Step::Announced(o) => {
                return Ok(Outcome {
                    interval: Some(o.interval),
                    min_interval: None,
                    tracker_id: None,
                    warning: None,
                    peers: o.peers.iter().map(|p| p.addr).collect(),
                })
            }
            Step::Rejected(msg) => return Err(msg),
            Step::TimedOut => return Err("Problem connecting to tracker - timeout exceeded".into()),
            Step::Scraped(_) => return Err("unexpected scrape reply".into()),
            Step::Ignored => {}
        }
        let now = Instant::now();
        if now >= give_up {
            return Err("Problem connecting to tracker - timeout exceeded".into());
        }
        let wait = deadline.min(give_up).saturating_duration_since(now);
        let got = glommio::timer::timeout(wait.max(Duration::from_millis(1)), async {
            socket
                .recv(&mut buf)
                .await
                .map_err(|e| glommio::GlommioError::from(std::io::Error::other(e.to_string())))
        })
        .await;
        step = match got {
            Ok(n) => exchange.on_packet(Instant::now(), &buf[..n], &mut rng),
            Err(_) => exchange.on_timeout(Instant::now(), &mut rng),
        };
    }
}

async fn resolve(url: &TrackerUrl) -> Result<SocketAddr, String> {
    match &url.host {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, url.port)),
        Host::Name(name) => {
            let target = format!("{name}:{}", url.port);
            glommio::executor()
                .spawn_blocking(move || {
                    target
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| {
                            format!("Problem connecting to tracker - cannot resolve {target}")
                        })
                })
                .await
        }
    }
}

/// Sends one request and reads the reply to EOF (the request says `Connection: close`), bounded.
async fn http_exchange(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let limits = ResponseLimits::default();
    let max = limits.max_head_bytes + limits.max_body_bytes;
    let mut s = glommio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > max {
            return Err("response too large".into());
        }
        // Stop early once the response is complete (keep-alive servers do not close).
        if let Ok(Parsed::Complete(_)) = parse_response(&buf, false, &limits) {
            return Ok(buf);
        }
    }
}
