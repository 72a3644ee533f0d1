//! The tracker server: binds, loads the dfile, starts one shard per core and wires HTTP requests
//! to the shard that owns each torrent.
//!
//! Each shard runs: its HTTP front (its `SO_REUSEPORT` listeners), the mesh tasks serving other
//! shards' requests on its `ShardState`, its expiry timer and its log flusher. Shard 0 also saves
//! the dfile periodically and at shutdown, and watches for signals.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cyclone_metainfo::bencode::{write_bytes, write_int};
use cyclone_shard::http::{self, HttpLimits, Request, Response};
use cyclone_shard::listener::{
    reuseport_listeners, reuseport_udp_sockets, udp_into_glommio, ListenOptions,
};
use cyclone_shard::mesh::{mesh, MeshEndpoint, Router};
use cyclone_shard::{shard_for_key, ShardContext, ShardPool, ShardPoolConfig};

use crate::access_log::{LogBuffer, LogSink};
use crate::client_ip::{listed_ip, normalize};
use crate::config::{ConfigError, ScrapeAllowed, TrackerConfig};
use crate::dfile::{self, DfileState, Loaded};
use crate::infopage;
use crate::ip_filter::IpFilter;
use crate::query::percent_decode;
use crate::request::{parse_announce, parse_scrape, InfoHash, RequestError};
use crate::signals::{self, Signals};
use crate::swarm::{AllowedSet, AnnounceWork, ReplyFormat, ShardState, SwarmConfig, SwarmCounts};
use crate::TrackerError;

/// Requests a shard serves for other shards (and itself). The announce is not boxed: it is the
/// hot variant, and a box would be one more allocation per announce.
#[allow(clippy::large_enum_variant)]
pub enum ShardReq {
    Announce(AnnounceWork),
    Counts(Vec<InfoHash>),
    AllCounts,
    Snapshot,
    SetAllowed(Option<Arc<AllowedSet>>),
    SetIpFilter(Option<Arc<IpFilter>>),
}

/// Replies to [`ShardReq`].
pub enum ShardResp {
    Announce(Result<Vec<u8>, RequestError>),
    Counts(Vec<(InfoHash, SwarmCounts)>),
    Snapshot(DfileState),
    Done,
}

/// `SO_RCVBUF` asked for each UDP socket (absorbs bursts while the shard is busy; the kernel caps
/// it at `net.core.rmem_max`).
const UDP_RECV_BUFFER: usize = 4 << 20;

/// Capacity of each inter-shard channel and of each shard's in-flight call table.
const MESH_CAPACITY: usize = 1024;

/// State shared by all shards (read-only apart from the atomics).
pub(crate) struct Shared {
    pub(crate) config: TrackerConfig,
    /// Key of the UDP connection ids (one per process, so any shard checks any shard's ids).
    pub(crate) connection_ids: crate::udp::connection_id::ConnectionIds,
    start: Instant,
    /// Set by shard 0 after the final save: every shard returns.
    stop: AtomicBool,
    signals: Arc<Signals>,
    log: Option<Arc<LogSink>>,
    favicon: Option<Vec<u8>>,
    /// The allowed set as last loaded (for new shards' fronts; updates go through the mesh).
    allowed: Mutex<Option<Arc<AllowedSet>>>,
    /// allowed_ips / banned_ips at start.
    ip_filter: Option<Arc<IpFilter>>,
    /// `--aggregate_forward`, resolved at start.
    pub(crate) forward: Option<crate::aggregate_forward::ForwardTarget>,
    /// The allowed set as the dfile keeps it (bttrack's `allowed*` keys).
    allowed_persisted: Arc<Mutex<crate::allowed::Persisted>>,
    /// The allowed_dir scan cache of the start-up scan, taken by the reload loop.
    dir_cache: Mutex<Option<crate::allowed::DirCache>>,
    /// This tracker's peer id in its multitracker polls (bttrack's `trackerid`).
    tracker_id: crate::multitracker::TrackerId,
    /// The addresses actually listened on (port 0 resolved), so polls never target ourselves.
    self_addrs: Vec<SocketAddr>,
}

thread_local! {
    /// Forwards in flight on this shard (`--aggregate_forward`), HTTP and UDP announces together.
    pub(crate) static FORWARDS_IN_FLIGHT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Shared {
    /// Tracker clock in seconds; starts at 1 so peers loaded from the dfile (last seen 0) are
    /// older than the first sweep, as in bttrack.
    pub(crate) fn now(&self) -> u64 {
        self.start.elapsed().as_secs() + 1
    }

    /// Whether shard 0 has asked every shard to return.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// What each shard gets at start.
struct ShardInput {
    listeners: Vec<std::net::TcpListener>,
    udp_sockets: Vec<std::net::UdpSocket>,
    endpoint: MeshEndpoint<ShardReq, ShardResp>,
    loaded: DfileState,
}

/// Parses bttrack's command line and runs the tracker until SIGINT/SIGTERM. `program` is used in
/// the usage text printed when there are no arguments.
pub fn run_from_args(program: &str, args: &[OsString]) -> Result<(), TrackerError> {
    match TrackerConfig::from_bittornado_args(args) {
        Ok(c) => run(c),
        Err(ConfigError::Usage(u)) => {
            println!("usage: {program} [--option value ...]\n\n{u}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the tracker with `config` until SIGINT or SIGTERM, then saves the dfile and returns.
pub fn run(config: TrackerConfig) -> Result<(), TrackerError> {
    tune_malloc();
    let pool = ShardPoolConfig {
        shards: config.shards,
        name: "tracker".to_string(),
        io_memory: None,
        pin: true,
    };
    let shards = ShardPool::shard_count(&pool)?;
    // Fail on a too-low `ulimit -l` before binding or touching the dfile.
    cyclone_shard::memlock::io_memory_for(cyclone_shard::memlock::memlock_limit()?, shards)?;
    let loaded = match dfile::load(&config.dfile, config.anyone_may_override_ip())? {
        Loaded::Missing => DfileState::default(),
        Loaded::Ok(s) => {
            eprintln!(
                "cyclone-tracker: loaded {} ({} torrents, {} peers{})",
                config.dfile.display(),
                s.peers.len().max(s.completed.len()),
                s.peers.values().map(Vec::len).sum::<usize>(),
                if s.skipped_peers > 0 {
                    format!(", {} peers with unusable ip skipped", s.skipped_peers)
                } else {
                    String::new()
                }
            );
            s
        }
        Loaded::Corrupt { reason, set_aside } => {
            eprintln!(
                "**warning** statefile {} corrupt ({reason}); set aside as {}; starting empty",
                config.dfile.display(),
                set_aside.display()
            );
            DfileState::default()
        }
    };
    dfile::check_writable(&config.dfile)?;
    let addrs = bind_addrs(&config)?;
    let mut per_shard: Vec<Vec<std::net::TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    let mut udp_per_shard: Vec<Vec<std::net::UdpSocket>> =
        (0..shards).map(|_| Vec::new()).collect();
    let mut self_addrs = Vec::with_capacity(addrs.len());
    for addr in &addrs {
        let ls = reuseport_listeners(
            *addr,
            shards,
            ListenOptions {
                backlog: 4096,
                ipv6_binds_v4: config.ipv6_binds_v4,
                defer_accept_secs: config.socket_timeout.min(60) as u32,
            },
        )?;
        let actual = ls[0]
            .local_addr()
            .map_err(|e| TrackerError::io("listener address", e))?;
        eprintln!("cyclone-tracker: listening on {actual} ({shards} shards)");
        self_addrs.push(actual);
        for (i, l) in ls.into_iter().enumerate() {
            per_shard[i].push(l);
        }
        if config.udp {
            let us = reuseport_udp_sockets(actual, shards, config.ipv6_binds_v4, UDP_RECV_BUFFER)?;
            eprintln!("cyclone-tracker: UDP (BEP 15) on {actual} ({shards} shards)");
            for (i, u) in us.into_iter().enumerate() {
                udp_per_shard[i].push(u);
            }
        }
    }
    let log = if config.access_log || config.log_nat_checks {
        Some(
            LogSink::open(config.logfile.clone())
                .map_err(|e| TrackerError::io("opening the log file", e))?,
        )
    } else {
        None
    };
    let favicon = match &config.favicon {
        None => None,
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!(
                    "**warning** specified favicon file {} does not exist: {e}",
                    p.display()
                );
                None
            }
        },
    };
    let forward = match config.aggregate_forward.as_str() {
        "" => None,
        spec => Some(crate::aggregate_forward::parse(spec)?),
    };
    let (allowed, dir_cache, persisted) = crate::allowed::initial(
        &config,
        &crate::allowed::Persisted {
            dir: loaded.allowed_dir.clone(),
            list: loaded.allowed_list.clone(),
        },
    )?;
    if config.multitracker_enabled
        && (config.allowed_dir.is_none() || config.allowed_list.is_some())
    {
        eprintln!(
            "**warning** multitracker_enabled needs allowed_dir (the trackers to poll come from its torrents' announce-lists); not polling"
        );
    }
    let ip_filter =
        crate::ip_filter::load(config.allowed_ips.as_deref(), config.banned_ips.as_deref())
            .map(Arc::new);
    let signals = signals::install()?;
    let shared = Arc::new(Shared {
        config,
        connection_ids: crate::udp::connection_id::ConnectionIds::new(),
        start: Instant::now(),
        stop: AtomicBool::new(false),
        signals,
        log,
        favicon,
        allowed: Mutex::new(allowed),
        ip_filter,
        forward,
        allowed_persisted: Arc::new(Mutex::new(persisted)),
        dir_cache: Mutex::new(Some(dir_cache)),
        tracker_id: crate::multitracker::new_tracker_id(),
        self_addrs,
    });
    let _ = std::io::stderr().flush();
    let endpoints = mesh::<ShardReq, ShardResp>(shards, MESH_CAPACITY);
    let parts = dfile::split_by_shard(loaded, shards);
    let inputs: Vec<ShardInput> = endpoints
        .into_iter()
        .zip(per_shard.into_iter().zip(udp_per_shard))
        .zip(parts)
        .map(
            |((endpoint, (listeners, udp_sockets)), loaded)| ShardInput {
                listeners,
                udp_sockets,
                endpoint,
                loaded,
            },
        )
        .collect();
    let results = ShardPool::run(&pool, inputs, move |ctx, input| {
        shard_main(ctx, input, shared.clone())
    })?;
    for r in results {
        r?;
    }
    Ok(())
}

/// glibc's malloc grows and trims each executor thread's heap with `mprotect` as swarms churn
/// (hundreds of calls per second under load); keep a larger top pad and trim threshold.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any executor thread exists.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn bind_addrs(config: &TrackerConfig) -> Result<Vec<SocketAddr>, TrackerError> {
    if config.bind.is_empty() {
        let ip: IpAddr = if config.ipv6_enabled {
            "::".parse().expect("literal")
        } else {
            "0.0.0.0".parse().expect("literal")
        };
        return Ok(vec![SocketAddr::new(ip, config.port)]);
    }
    let mut out = Vec::new();
    for b in &config.bind {
        let resolved = (b.as_str(), config.port)
            .to_socket_addrs()
            .map_err(|e| TrackerError::io(format!("resolving bind address {b}"), e))?;
        out.extend(
            resolved
                .filter(|a| config.ipv6_enabled || a.is_ipv4())
                .take(1),
        );
    }
    out.dedup();
    Ok(out)
}

async fn shard_main(
    ctx: ShardContext,
    input: ShardInput,
    shared: Arc<Shared>,
) -> Result<(), TrackerError> {
    let c = &shared.config;
    let swarm_config = SwarmConfig {
        response_size: c.response_size,
        reannounce_interval: c.reannounce_interval,
        min_interval: c.min_interval,
        multitracker_reannounce_interval: c.multitracker_reannounce_interval,
        nat_check: c.nat_check,
        keep_dead: c.keep_dead,
        allowed_controls: c.allowed_controls && c.allowed_dir.is_some() && c.allowed_list.is_none(),
        dedicated_seed_id: (!c.dedicated_seed_id.is_empty())
            .then(|| c.dedicated_seed_id.as_bytes().to_vec()),
    };
    let mut st = ShardState::new(swarm_config, shared.now());
    st.ip_filter = shared.ip_filter.clone();
    for (ih, peers) in input.loaded.peers {
        let swarm = st.swarms.entry(ih).or_default();
        // Peers whose IP the lists refuse are dropped at load (bttrack).
        for p in peers
            .into_iter()
            .filter(|p| st.ip_filter.as_ref().is_none_or(|f| f.permits(p.ip)))
        {
            swarm.insert(p);
        }
    }
    st.recount_peers();
    st.completed.extend(input.loaded.completed);
    st.allowed = shared
        .allowed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let state = Rc::new(RefCell::new(st));
    let (shard, shards) = (ctx.shard, ctx.shards);
    let handler_state = state.clone();
    let log = Rc::new(LogBuffer::default());
    let handler_log = log.clone();
    let log_nat = shared.config.log_nat_checks;
    let router = Rc::new(
        input
            .endpoint
            .connect(Rc::new(move |req: ShardReq| {
                let resp = handle_shard_req(&handler_state, req, shard, shards);
                start_nat_checks(&handler_state, &handler_log, log_nat);
                resp
            }))
            .await,
    );
    let front = Rc::new(Front {
        router: router.clone(),
        state: state.clone(),
        shared: shared.clone(),
        log: log.clone(),
    });
    let limits = HttpLimits {
        idle_timeout: Duration::from_secs(c.socket_timeout),
        max_connections: c.max_connections,
        engine: if c.http_engine_hyper {
            http::Engine::Hyper
        } else {
            http::Engine::Httparse
        },
        ..HttpLimits::default()
    };
    for l in input.listeners {
        let front = front.clone();
        glommio::spawn_local(async move {
            let e = http::serve(l, front, limits).await;
            eprintln!("cyclone-tracker: shard {shard}: accept failed, listener stopped: {e}");
        })
        .detach();
    }
    if !input.udp_sockets.is_empty() {
        let udp = Rc::new(crate::udp::server::UdpFront {
            router: router.clone(),
            state: state.clone(),
            shared: shared.clone(),
            bans: RefCell::default(),
            log: log.clone(),
        });
        for u in input.udp_sockets {
            let udp = udp.clone();
            glommio::spawn_local(async move {
                let e = udp.serve(udp_into_glommio(u)).await;
                eprintln!("cyclone-tracker: shard {shard}: UDP socket failed, stopped: {e}");
            })
            .detach();
        }
    }
    // Expiry: every timeout_downloaders_interval, on this shard's own swarms.
    {
        let state = state.clone();
        let shared = shared.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_secs(
                    shared.config.timeout_downloaders_interval,
                ))
                .await;
                let now = shared.now();
                state.borrow_mut().expire(now);
            }
        })
        .detach();
    }
    // Log flushing, off the executor.
    if let Some(sink) = shared.log.clone() {
        let log = log.clone();
        let every = Duration::from_secs_f64(
            shared
                .config
                .min_time_between_log_flushes
                .clamp(0.05, 3600.0),
        );
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                let bytes = log.take();
                if !bytes.is_empty() {
                    let sink = sink.clone();
                    glommio::executor()
                        .spawn_blocking(move || sink.write(&bytes))
                        .await;
                }
            }
        })
        .detach();
    }
    // Multitracker polling of this shard's torrents (bttrack §3.9).
    if c.multitracker_enabled && c.allowed_dir.is_some() && c.allowed_list.is_none() {
        let settings = crate::multitracker::PollSettings {
            base: c.multitracker_reannounce_interval.max(1),
            maxpeers: c.multitracker_maxpeers,
            timeout: Duration::from_secs(c.http_timeout.max(1)),
            tracker_id: shared.tracker_id,
            self_addrs: shared.self_addrs.clone(),
            shard,
            shards,
        };
        glommio::spawn_local(crate::multitracker::run(
            state.clone(),
            shared.clone(),
            settings,
        ))
        .detach();
    }
    if shard == 0 {
        let cache = shared
            .dir_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        glommio::spawn_local(crate::allowed::reload_loop(
            router.clone(),
            shared.config.clone(),
            cache,
            shared.allowed_persisted.clone(),
        ))
        .detach();
        glommio::spawn_local(crate::allowed::ip_lists_loop(
            router.clone(),
            shared.config.clone(),
        ))
        .detach();
        glommio::spawn_local(coordinator(router.clone(), shared.clone())).detach();
    }
    while !shared.stop.load(Ordering::Acquire) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    // Last flush of this shard's log lines.
    if let Some(sink) = shared.log.clone() {
        let bytes = log.take();
        if !bytes.is_empty() {
            glommio::executor()
                .spawn_blocking(move || sink.write(&bytes))
                .await;
        }
    }
    Ok(())
}

/// Shard 0's duties: periodic dfile saves, and signals (save and stop; reopen the log).
/// The counts of `hashes` (those with a swarm), each asked of its owner shard, one request per shard (HTTP and UDP
/// scrapes).
pub(crate) async fn counts_from_owners(
    router: &Router<ShardReq, ShardResp>,
    hashes: &[InfoHash],
) -> Result<Vec<(InfoHash, SwarmCounts)>, TrackerError> {
    let shards = router.shards();
    let mut groups: Vec<Vec<InfoHash>> = vec![Vec::new(); shards];
    for h in hashes {
        groups[shard_for_key(h, shards)].push(*h);
    }
    let mut out = Vec::new();
    for (s, g) in groups.into_iter().enumerate() {
        if g.is_empty() {
            continue;
        }
        if let ShardResp::Counts(v) = router.call(s, ShardReq::Counts(g)).await? {
            out.extend(v);
        }
    }
    Ok(out)
}

async fn coordinator(router: Rc<Router<ShardReq, ShardResp>>, shared: Arc<Shared>) {
    let save_every = Duration::from_secs(shared.config.save_dfile_interval);
    let mut next_save = Instant::now() + save_every;
    loop {
        glommio::timer::sleep(Duration::from_millis(50)).await;
        if shared.signals.take_hup() && shared.config.hupmonitor {
            if let Some(sink) = shared.log.clone() {
                let r = glommio::executor()
                    .spawn_blocking(move || sink.reopen())
                    .await;
                if let Err(e) = r {
                    eprintln!("cyclone-tracker: reopening the log file: {e}");
                }
            }
        }
        let stopping = shared.signals.stop_requested();
        if stopping || Instant::now() >= next_save {
            if let Err(e) = save_dfile(&router, &shared).await {
                eprintln!("cyclone-tracker: saving the dfile failed: {e}");
            }
            next_save = Instant::now() + save_every;
        }
        if stopping {
            eprintln!("cyclone-tracker: dfile saved, exiting");
            shared.stop.store(true, Ordering::Release);
            return;
        }
    }
}

async fn save_dfile(
    router: &Router<ShardReq, ShardResp>,
    shared: &Shared,
) -> Result<(), TrackerError> {
    let mut parts = Vec::with_capacity(router.shards());
    for s in 0..router.shards() {
        if let ShardResp::Snapshot(d) = router.call(s, ShardReq::Snapshot).await? {
            parts.push(d);
        }
    }
    let mut state = dfile::merge(parts);
    {
        let p = shared
            .allowed_persisted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        state.allowed_dir = p.dir.clone();
        state.allowed_list = p.list.clone();
    }
    let bytes = dfile::encode(&state);
    let path = shared.config.dfile.clone();
    glommio::executor()
        .spawn_blocking(move || dfile::save_atomic(&path, &bytes))
        .await
}

/// Starts the connect-backs queued by the last announce, as tasks on this shard.
fn start_nat_checks(state: &Rc<RefCell<ShardState>>, log: &Rc<LogBuffer>, log_nat: bool) {
    let jobs = state.borrow_mut().take_nat_jobs();
    for job in jobs {
        let state = state.clone();
        let log = log.clone();
        glommio::spawn_local(async move {
            let ok = crate::nat_check::check(&job).await;
            let found = state.borrow_mut().nat_result(&job, ok);
            if log_nat {
                let code = match (found, ok) {
                    (false, _) => 404,
                    (true, true) => 200,
                    (true, false) => 503,
                };
                let line = format!(
                    "{} - {} [{}] \"!natcheck-{}:{}\" {code} 0 - -\n",
                    job.ip,
                    String::from_utf8_lossy(&job.peer_id).escape_default(),
                    crate::access_log::clf_now(),
                    job.ip,
                    job.port
                );
                log.push(line.as_bytes());
            }
        })
        .detach();
    }
}

/// Runs a request on this shard's state (called by the mesh, on this shard's executor).
fn handle_shard_req(
    state: &RefCell<ShardState>,
    req: ShardReq,
    shard: usize,
    shards: usize,
) -> ShardResp {
    match req {
        ShardReq::Announce(work) => ShardResp::Announce(state.borrow_mut().announce(&work)),
        ShardReq::Counts(hashes) => {
            let st = state.borrow();
            ShardResp::Counts(
                hashes
                    .iter()
                    .filter_map(|h| st.counts(h).map(|c| (*h, c)))
                    .collect(),
            )
        }
        ShardReq::AllCounts => ShardResp::Counts(state.borrow().all_counts(shard, shards)),
        ShardReq::Snapshot => {
            let st = state.borrow();
            let mut d = DfileState::default();
            for (ih, swarm) in &st.swarms {
                d.peers.insert(*ih, swarm.peers().to_vec());
            }
            d.completed = st.completed.iter().map(|(k, v)| (*k, *v)).collect();
            ShardResp::Snapshot(d)
        }
        ShardReq::SetAllowed(a) => {
            state.borrow_mut().allowed = a;
            ShardResp::Done
        }
        ShardReq::SetIpFilter(f) => {
            state.borrow_mut().ip_filter = f;
            ShardResp::Done
        }
    }
}

/// One shard's HTTP front.
struct Front {
    router: Rc<Router<ShardReq, ShardResp>>,
    state: Rc<RefCell<ShardState>>,
    shared: Arc<Shared>,
    log: Rc<LogBuffer>,
}

fn text(status: u16, reason: &'static str, body: &str) -> Response {
    Response::new(status, reason, "text/plain", body.as_bytes().to_vec())
}

fn failure(status: u16, reason: &str) -> Response {
    let mut body = b"d".to_vec();
    write_bytes(&mut body, b"failure reason");
    write_bytes(&mut body, reason.as_bytes());
    body.push(b'e');
    Response::new(status, "Not Authorized", "text/plain", body).with_header("Pragma", "no-cache")
}

fn error_response(e: &RequestError) -> Response {
    match e {
        RequestError::Garbage(_) | RequestError::Outdated => {
            text(400, "Bad Request", &e.to_string())
        }
        RequestError::NotAuthorized400(m) => failure(400, m),
        RequestError::NotAuthorized200(m) => failure(200, m),
    }
}

const ALAS: &str = "your file may exist elsewhere in the universe\nbut alas, not here\n";

impl http::Handler for Front {
    async fn handle(&self, req: Request) -> Response {
        let resp = self.route(&req).await;
        let resp = maybe_gzip(&req, resp);
        if self.shared.config.access_log {
            let gz = resp.headers.iter().any(|(n, _)| n == "Content-Encoding");
            self.log.access(&crate::access_log::AccessEntry {
                ip: normalize(req.peer.ip()),
                gzip: gz,
                method: req.method.as_str(),
                target: req.target(),
                protocol: crate::access_log::Protocol::Http {
                    minor_version: req.minor_version,
                },
                code: resp.status,
                bytes: resp.body.len(),
                referer: req.header("referer").unwrap_or(b"-"),
                agent: req.header("user-agent").unwrap_or(b"-"),
            });
        }
        resp
    }
}

impl Front {
    async fn route(&self, req: &Request) -> Response {
        let filter = self.state.borrow().ip_filter.clone();
        if let Some(f) = filter {
            if !f.permits(normalize(req.peer.ip())) {
                return failure(400, "your IP is not allowed on this tracker");
            }
        }
        let raw_path = req.path();
        let path: std::borrow::Cow<'_, [u8]> = if raw_path.contains(&b'%') {
            std::borrow::Cow::Owned(percent_decode(raw_path, 1024).unwrap_or_default())
        } else {
            std::borrow::Cow::Borrowed(raw_path)
        };
        let path = path.strip_prefix(b"/").unwrap_or(&path);
        let c = &self.shared.config;
        match path {
            b"announce" | b"announce.php" | b"tracker.php/announce" => self.announce(req).await,
            b"scrape" | b"scrape.php" | b"tracker.php/scrape" => self.scrape(req).await,
            b"" | b"index.html" => {
                if !c.infopage_redirect.is_empty() {
                    let body = format!("<A HREF=\"{}\">Click Here</A>", c.infopage_redirect);
                    return Response::new(302, "Found", "text/html", body.into_bytes())
                        .with_header("Location", c.infopage_redirect.clone());
                }
                if !c.show_infopage {
                    return text(404, "Not Found", ALAS);
                }
                self.infopage().await
            }
            b"favicon.ico" => match &self.shared.favicon {
                Some(icon) => Response::new(200, "OK", "image/x-icon", icon.clone()),
                None => text(404, "Not Found", ALAS),
            },
            b"file" if c.allow_get && c.allowed_dir.is_some() => self.file(req),
            _ => text(404, "Not Found", ALAS),
        }
    }

    async fn announce(&self, req: &Request) -> Response {
        let c = &self.shared.config;
        let a = match parse_announce(req.query()) {
            Ok(a) => a,
            Err(e) => return error_response(&e),
        };
        let conn_ip = normalize(req.peer.ip());
        // Tracker-to-tracker polls always get compact peers, so compact_reqd does not refuse
        // them (bttrack 0.3.18 did, since its own polls lacked compact=1: a bug master fixed).
        if !a.compact && !a.tracker && c.compact_reqd && conn_ip.is_ipv4() {
            return error_response(&RequestError::Outdated);
        }
        // bttrack's check_allowed order: aggregator password, allowed set (refused by the owner
        // shard), then the tracker-to-tracker rules.
        // Aggregator mode (`--aggregator 1|<password>`): record, answer `{'response': 'OK'}`.
        let aggregator = c.aggregator != "0";
        if aggregator
            && c.aggregator != "1"
            && a.password.as_deref() != Some(c.aggregator.as_bytes())
        {
            return failure(
                200,
                "Requested download is not authorized for use with this tracker.",
            );
        }
        // Tracker-to-tracker polls: multitracker_allowed is forced to none without allowed_dir
        // (or with allowed_list); autodetect admits torrents whose .torrent has an announce-list;
        // a poll carrying our own tracker id is ourselves: `disallowed`, which stops it.
        let allowed_here = self
            .state
            .borrow()
            .allowed
            .as_ref()
            .is_none_or(|s| s.hashes.contains(&a.info_hash));
        if a.tracker && allowed_here {
            let mode = if c.allowed_dir.is_none() || c.allowed_list.is_some() {
                "none"
            } else {
                c.multitracker_allowed.as_str()
            };
            if mode == "none" || a.peer_id == self.shared.tracker_id {
                return failure(200, "disallowed");
            }
            if mode == "autodetect" {
                let listed = self
                    .state
                    .borrow()
                    .allowed
                    .as_ref()
                    .is_some_and(|s| s.multitracker.contains(&a.info_hash));
                if !listed {
                    return failure(
                        200,
                        "Requested download is not authorized for multitracker use.",
                    );
                }
            }
        }
        let (ip, local) = listed_ip(
            conn_ip,
            |n| req.header(n).map(|v| v.to_vec()),
            a.ip.as_deref(),
            c.anyone_may_override_ip(),
        );
        if let Some(f) = &self.shared.forward {
            if !a.tracker {
                crate::aggregate_forward::spawn(f, req.query(), &FORWARDS_IN_FLIGHT);
            }
        }
        let owner = shard_for_key(&a.info_hash, self.router.shards());
        // Aggregators do no NAT checking (bttrack).
        let local = (local && !c.nat_check_local) || aggregator;
        let work = AnnounceWork {
            req: a,
            conn_ip,
            listed_ip: ip,
            local,
            now: self.shared.now(),
            reply: ReplyFormat::Http,
        };
        match self.router.call(owner, ShardReq::Announce(work)).await {
            Ok(ShardResp::Announce(Ok(_))) if aggregator => {
                Response::new(200, "OK", "text/plain", b"d8:response2:OKe".to_vec())
                    .with_header("Pragma", "no-cache")
            }
            Ok(ShardResp::Announce(Ok(body))) => {
                Response::new(200, "OK", "text/plain", body).with_header("Pragma", "no-cache")
            }
            Ok(ShardResp::Announce(Err(e))) => error_response(&e),
            Ok(_) => text(500, "Internal Server Error", "Server Error"),
            Err(e) => text(500, "Internal Server Error", &format!("Server Error: {e}")),
        }
    }

    async fn gather(
        &self,
        hashes: Option<Vec<InfoHash>>,
    ) -> Result<BTreeMap<InfoHash, SwarmCounts>, TrackerError> {
        let shards = self.router.shards();
        let mut out = BTreeMap::new();
        match hashes {
            Some(hs) => out.extend(counts_from_owners(&self.router, &hs).await?),
            None => {
                for s in 0..shards {
                    if let ShardResp::Counts(v) = self.router.call(s, ShardReq::AllCounts).await? {
                        out.extend(v);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn scrape(&self, req: &Request) -> Response {
        let c = &self.shared.config;
        let s = match parse_scrape(req.query()) {
            Ok(s) => s,
            Err(e) => return error_response(&e),
        };
        match (&s.info_hashes, c.scrape_allowed) {
            (Some(_), ScrapeAllowed::None) => {
                return failure(
                    400,
                    "specific scrape function is not available with this tracker.",
                )
            }
            (None, ScrapeAllowed::None | ScrapeAllowed::Specific) => {
                return failure(
                    400,
                    "full scrape function is not available with this tracker.",
                )
            }
            _ => {}
        }
        let counts = match self.gather(s.info_hashes).await {
            Ok(c) => c,
            Err(e) => return text(500, "Internal Server Error", &format!("Server Error: {e}")),
        };
        let names = if c.show_names && c.allowed_dir.is_some() {
            self.state.borrow().allowed.clone()
        } else {
            None
        };
        let mut body = Vec::with_capacity(32 + counts.len() * 80);
        body.push(b'd');
        write_bytes(&mut body, b"files");
        body.push(b'd');
        for (ih, n) in &counts {
            write_bytes(&mut body, ih);
            body.push(b'd');
            write_bytes(&mut body, b"complete");
            write_int(&mut body, n.complete as i64);
            write_bytes(&mut body, b"downloaded");
            write_int(&mut body, n.downloaded as i64);
            write_bytes(&mut body, b"incomplete");
            write_int(&mut body, n.incomplete as i64);
            if let Some(name) = names.as_ref().and_then(|a| a.names.get(ih)) {
                write_bytes(&mut body, b"name");
                write_bytes(&mut body, name.as_bytes());
            }
            body.push(b'e');
        }
        body.push(b'e');
        body.push(b'e');
        Response::new(200, "OK", "text/plain", body).with_header("Pragma", "no-cache")
    }

    async fn infopage(&self) -> Response {
        let c = &self.shared.config;
        let counts = match self.gather(None).await {
            Ok(c) => c,
            Err(_) => return text(500, "Internal Server Error", "Server Error"),
        };
        let with_names = c.allowed_dir.is_some() && c.show_names;
        let allowed = self.state.borrow().allowed.clone();
        let rows = counts
            .into_iter()
            .map(|(ih, counts)| infopage::Row {
                info_hash: ih,
                counts,
                name: allowed.as_ref().and_then(|a| a.names.get(&ih).cloned()),
                size: allowed.as_ref().and_then(|a| a.sizes.get(&ih).copied()),
            })
            .collect();
        let page = infopage::render(
            rows,
            with_names,
            c.allow_get,
            self.shared.favicon.is_some(),
            &utc_now_minutes(),
        );
        Response::new(
            200,
            "OK",
            "text/html; charset=iso-8859-1",
            page.into_bytes(),
        )
    }

    fn file(&self, req: &Request) -> Response {
        let Ok(s) = parse_scrape(req.query()) else {
            return text(400, "Bad Request", "you sent me garbage - bad info hash");
        };
        let Some(ih) = s.info_hashes.and_then(|v| v.first().copied()) else {
            return text(400, "Bad Request", "you sent me garbage - no info hash");
        };
        let allowed = self.state.borrow().allowed.clone();
        let Some((path, fname)) = allowed.as_ref().and_then(|a| a.files.get(&ih).cloned()) else {
            return text(404, "Not Found", ALAS);
        };
        // A .torrent is small (allowed_dir parsing bounds it); reading it is a short blocking call
        // accepted here because /file is rare and admin-enabled.
        match std::fs::read(&path) {
            Ok(bytes) => Response::new(200, "OK", "application/x-bittorrent", bytes).with_header(
                "Content-Disposition",
                format!("attachment; filename={fname}"),
            ),
            Err(_) => text(404, "Not Found", ALAS),
        }
    }
}

/// bttrack gzips a body (level 9) when the client accepts gzip and it gets smaller.
fn maybe_gzip(req: &Request, resp: Response) -> Response {
    if resp.body.len() < 200 {
        return resp;
    }
    let accepts = req
        .header("accept-encoding")
        .is_some_and(|v| v.windows(4).any(|w| w.eq_ignore_ascii_case(b"gzip")));
    if !accepts {
        return resp;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    if enc.write_all(&resp.body).is_err() {
        return resp;
    }
    match enc.finish() {
        Ok(z) if z.len() < resp.body.len() => {
            let mut r = resp;
            r.body = z;
            r.with_header("Content-Encoding", "gzip")
        }
        _ => resp,
    }
}

/// `YYYY-MM-DD HH:MM UTC`.
fn utc_now_minutes() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
