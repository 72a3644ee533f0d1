//! The session: the shard driver that turns the pure core into a client talking to real peers.
//!
//! [`Session::start`] binds one `SO_REUSEPORT` listener per shard on the same port, starts the shard pool
//! (`cyclone_shard::ShardPool`) on its own thread and gives every torrent to the shard
//! `shard_for_key(info_hash)`. That shard owns everything about the torrent ([`torrent`]): its storage, requester,
//! choker, rate measures, peer connections ([`peer`]), tracker announces ([`tracker`]) and resume record
//! ([`resume_io`]). An incoming connection is accepted by whichever shard the kernel picks; that shard reads the
//! 48-byte handshake head and hands the socket to the owner through the pool's bounded mesh ([`listen`]); an
//! unknown info-hash is closed.
//!
//! The caller sees the session through [`SessionHandle`]: a bounded channel of [`TorrentStatus`] reports (one per
//! torrent every `display_interval`), a stop flag and `join`, and `add_torrent` / `remove_torrent` while it runs
//! (through a bounded command channel per shard, drained by the shard's 20 ms stop watcher).
//!
//! Invariants: nothing blocks an executor (resume files and DNS go to glommio's blocking pool); a torrent's state is
//! touched only by its shard; every queue is bounded (status channel, known-peer list, outgoing buffer per peer,
//! mesh, upload queues, requester pipelines).

mod assembly;
mod finish;
mod limits;
mod listen;
mod peer;
mod resume_io;
mod stop_signal;
mod torrent;
mod tracker;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cyclone_metainfo::Metainfo;
use cyclone_shard::listener::{reuseport_listeners, ListenOptions};
use cyclone_shard::{shard_for_key, ShardPool, ShardPoolConfig};

use crate::global_rate::SharedBucket;
use crate::storage::{FileLayout, FileSpec, StorageError};

/// Capacity of the status channel to the caller (a few reports per torrent of a large launchmany session, ~300
/// bytes each); periodic reports beyond it are dropped (the next one replaces them), a torrent's last report waits
/// for room a little (`Torrent::report_final`).
const STATUS_CHANNEL_CAPACITY: usize = 4096;
/// Verified bytes since the last resume write that trigger the next one before `resume_interval` is up (at most one
/// write per [`MIN_RESUME_GAP`]): after a crash, at most about this much, or `resume_interval`'s worth, is
/// downloaded again.
pub const RESUME_SAVE_BYTES: u64 = 256 << 20;
/// Shortest time between two periodic resume writes (each costs an fsync of the data and of the record).
pub const MIN_RESUME_GAP: Duration = Duration::from_secs(1);
/// Capacity of each shard's command channel (torrents added or removed while the session runs). A caller that fills
/// it gets [`SessionError::CommandsFull`] rather than blocking; the shard drains it every 20 ms.
pub const COMMAND_CHANNEL_CAPACITY: usize = 256;
/// Capacity of each inter-shard mesh channel (socket hand-offs in flight per pair of shards).
const MESH_CAPACITY: usize = 64;
/// Ports tried in a `minport..=maxport` range (BitTornado `find_and_bind`: 20 random ports).
const PORT_ATTEMPTS: usize = 20;

/// Session-wide settings (BitTornado option names in brackets; rates in bytes/s).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Address to listen on and to dial from [`--bind`]; 0.0.0.0 = all interfaces.
    pub bind: IpAddr,
    /// Listen port range [`--minport`, `--maxport`]; `minport == 0` lets the kernel pick.
    pub minport: u16,
    pub maxport: u16,
    /// Shards (executors); 0 = one per CPU.
    pub shards: usize,
    /// Session-wide upload and download limits in bytes/s, shared by every torrent on every shard, 0 = unlimited
    /// [`--max_upload_rate`, `--max_download_rate`]. Each torrent may also have its own
    /// ([`TorrentConfig::max_upload_rate`]); both apply.
    pub max_upload_rate: u64,
    pub max_download_rate: u64,
    /// Upload slots [`--max_uploads`].
    pub max_uploads: usize,
    /// Stop dialling at this many connections [`--max_initiate`].
    pub max_initiate: usize,
    /// Absolute cap on connections per torrent [`--max_connections`], 0 = the requester's cap.
    pub max_connections: usize,
    /// As a seed, send a bitfield with 2–4 of the first 32 pieces withheld, then HAVEs for them
    /// [`--breakup_seed_bitfield`].
    pub breakup_seed_bitfield: bool,
    /// Hash existing data at start-up [`--check_hashes`].
    pub check_hashes: bool,
    /// Open-file LRU per shard [`--max_files_open`].
    pub max_files_open: usize,
    /// [`--keepalive_interval`], [`--timeout`].
    pub keepalive_interval: Duration,
    pub timeout: Duration,
    /// How often each torrent reports its status [`--display_interval`].
    pub display_interval: Duration,
    /// Floor under tracker intervals (tests with a fast tracker lower it).
    pub min_announce_interval: Duration,
    /// How often the resume record is rewritten while pieces arrive (it is also written on completion and stop, and
    /// sooner when [`RESUME_SAVE_BYTES`] of pieces were verified since the last write).
    pub resume_interval: Duration,
    /// Ignore resume records at start-up and check every piece (`cyclone download --recheck`); records are still
    /// written. The explicit way to catch files modified behind the engine's back after a crash.
    pub ignore_resume: bool,
    /// Bytes of piece buffers per shard for pieces being downloaded (assembled in memory, hashed and written
    /// whole). When they are used up, further pieces are written block by block and verified from disk: slower,
    /// never wrong. 0 = always the disk path.
    pub piece_memory: u64,
    /// Our peer id (BitTornado style: client prefix + random).
    pub peer_id: [u8; 20],
    /// Try ports of `minport..=maxport` at random (20 distinct tries) rather than counting up from `minport`
    /// [`--random_port` 1]; see [`port_candidates`].
    pub random_port: bool,
    /// Seconds between optimistic-unchoke rotations while downloading [`--round_robin_period` 30]; once complete
    /// it becomes `max(p, p × piece_length / 200000)` (BitTornado).
    pub round_robin_period: Duration,
    /// A peer that unchoked us but sent no block for this long is snubbed: its requests go to others and it
    /// leaves the choker's preferred set [`--snub_time` 30 s].
    pub snub_time: Duration,
    /// Complete pieces before the picker switches from its start-up rule to rarest first
    /// [`--rarest_first_cutoff` 2].
    pub rarest_first_cutoff: u32,
    /// Peers that must have a piece before the start-up rule prefers it [`--rarest_first_priority_cutoff` 5].
    pub rarest_first_priority_cutoff: u32,
    /// Window of every rate estimate (choker, pipeline depth, status) [`--max_rate_period` 20 s].
    pub max_rate_period: Duration,
    /// Largest block a peer may request (or send us); a longer REQUEST closes the connection
    /// [`--max_slice_length` 2^17]. At least [`crate::piece_map::BLOCK_SIZE`], the block size we request.
    pub max_slice_length: u32,
    /// A message length prefix above this closes the connection [`--max_message_length` 2^23].
    pub max_message_length: u32,
    /// Seconds between "too few peers?" announces [`--rerequest_interval` 300]; the tracker's `min interval`
    /// raises it.
    pub rerequest_interval: Duration,
    /// With fewer connections than this, announce again every `rerequest_interval` [`--min_peers` 20].
    pub min_peers: usize,
    /// Tracker request timeout, HTTP and UDP [`--http_timeout` 60 s].
    pub http_timeout: Duration,
    /// The address reported to trackers as `&ip=` [`--ip`], already resolved; `None` = let the tracker see it.
    pub announce_ip: Option<IpAddr>,
    /// Sent to HTTP trackers as `&seed_id=` [`--dedicated_seed_id`]; empty = not sent.
    pub dedicated_seed_id: Vec<u8>,
    /// One connection per IP address, and IP bans enforced [`--security` 1]. Loopback addresses are exempt from
    /// the one-per-IP rule (every local peer shares 127.0.0.1); see [`crate::one_per_ip`].
    pub security: bool,
    /// Close and ban peers that send bad data (sole senders of more than one bad piece, culprits found by the
    /// multi-sender search) [`--auto_kick` 1]. Off: bad pieces are re-downloaded and nobody is punished.
    pub auto_kick: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            minport: 10000,
            maxport: 60000,
            shards: 0,
            max_upload_rate: 0,
            max_download_rate: 0,
            max_uploads: crate::choker::DEFAULT_MAX_UPLOADS,
            max_initiate: 40,
            max_connections: 0,
            breakup_seed_bitfield: true,
            check_hashes: true,
            max_files_open: crate::storage::files::DEFAULT_MAX_FILES_OPEN,
            keepalive_interval: crate::connection_timers::DEFAULT_KEEPALIVE_INTERVAL,
            timeout: crate::connection_timers::DEFAULT_IDLE_TIMEOUT,
            display_interval: Duration::from_millis(500),
            min_announce_interval: Duration::from_secs(30),
            resume_interval: Duration::from_secs(30),
            ignore_resume: false,
            piece_memory: assembly::PIECE_MEMORY_PER_SHARD,
            peer_id: random_peer_id(),
            random_port: true,
            round_robin_period: crate::choker::DEFAULT_ROUND_ROBIN_PERIOD,
            snub_time: crate::choker::DEFAULT_SNUB_TIME,
            rarest_first_cutoff: crate::picker::DEFAULT_RAREST_FIRST_CUTOFF,
            rarest_first_priority_cutoff: crate::picker::DEFAULT_RAREST_FIRST_PRIORITY_CUTOFF,
            max_rate_period: crate::rate::DEFAULT_MAX_RATE_PERIOD,
            max_slice_length: crate::wire::DEFAULT_MAX_BLOCK_LENGTH,
            max_message_length: crate::wire::DEFAULT_MAX_MESSAGE_LENGTH,
            rerequest_interval: Duration::from_secs(300),
            min_peers: 20,
            http_timeout: Duration::from_secs(60),
            announce_ip: None,
            dedicated_seed_id: Vec::new(),
            security: true,
            auto_kick: true,
        }
    }
}

/// Connection-level diagnostics on stderr when `CYCLONE_DEBUG=1` (why a dial or a peer failed), for interop work.
pub(crate) fn debug(msg: std::fmt::Arguments<'_>) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("CYCLONE_DEBUG").is_some_and(|v| v == "1")) {
        eprintln!("cyclone: {msg}");
    }
}

/// A fresh peer id: `-CY0100-` then 12 random alphanumeric bytes.
pub fn random_peer_id() -> [u8; 20] {
    let mut id = *b"-CY0100-000000000000";
    let mut rng = fastrand::Rng::new();
    for b in &mut id[8..] {
        *b = rng.alphanumeric() as u8;
    }
    id
}

/// One torrent to run.
#[derive(Debug, Clone)]
pub struct TorrentConfig {
    pub metainfo: Metainfo,
    /// Where its files live.
    pub layout: FileLayout,
    /// Where its resume record is kept (`None`: no resume; always recheck).
    pub resume_path: Option<PathBuf>,
    /// BitTornado `--priority`: one value per file, 0 highest, 1 normal, 2 lowest, -1 skip (`None`: all normal).
    pub file_priorities: Option<Vec<crate::picker::Priority>>,
    /// This torrent's own upload and download limits in bytes/s, 0 = none. The session-wide limits
    /// ([`SessionConfig::max_upload_rate`]) apply as well: a block is sent or requested only when both allow it.
    pub max_upload_rate: u64,
    pub max_download_rate: u64,
}

impl TorrentConfig {
    /// The BitTornado placement: without `saveas`, `info.name` in `dir`; with it, a single-file torrent is saved
    /// as the file `saveas` and a multi-file torrent's files go under the directory `saveas`.
    pub fn layout_for(
        metainfo: &Metainfo,
        dir: &Path,
        saveas: Option<&Path>,
    ) -> Result<FileLayout, StorageError> {
        let info = &metainfo.info;
        let Some(saveas) = saveas else {
            return FileLayout::from_info(dir, info);
        };
        let saveas = if saveas.is_absolute() {
            saveas.to_path_buf()
        } else {
            dir.join(saveas)
        };
        if info.is_single_file {
            let parent = saveas.parent().unwrap_or(Path::new("/")).to_path_buf();
            let name = saveas
                .file_name()
                .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec())
                .ok_or(StorageError::UnsafePath {
                    path: saveas.display().to_string(),
                    reason: "--saveas has no file name",
                })?;
            let spec = FileSpec {
                path: vec![name],
                length: info.total_length(),
                padding: false,
            };
            FileLayout::new(&parent, vec![spec])
        } else {
            let specs = info
                .files
                .iter()
                .map(|f| FileSpec {
                    path: f.path.clone(),
                    length: f.length,
                    padding: f.is_padding(),
                })
                .collect();
            FileLayout::new(&saveas, specs)
        }
    }
}

/// What a torrent is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activity {
    /// Checking existing data; fraction done.
    Checking(f64),
    Downloading,
    Seeding,
    /// Stopped after a fatal error (see `error`).
    Failed,
    Stopped,
}

/// The resume record found at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeRecordKind {
    /// None, unreadable, for another torrent, or ignored (`ignore_resume`).
    None,
    /// Written at a graceful stop: trusted file by file while each file matches its size/mtime stamp.
    Clean,
    /// Written while the torrent ran, so that session crashed: its pieces are trusted while their files are intact.
    Crash,
}

/// A torrent's status, sent to the caller every `display_interval`.
#[derive(Debug, Clone)]
pub struct TorrentStatus {
    pub info_hash: [u8; 20],
    pub activity: Activity,
    /// The torrent started from its resume record with no recheck at all.
    pub resumed: bool,
    /// Which resume record start-up found.
    pub resume_record: ResumeRecordKind,
    /// Pieces taken from the resume record without reading them.
    pub pieces_trusted: u32,
    /// Pieces the start-up check examined (read and hashed if present, with `check_hashes`): every piece not
    /// trusted, or 0 when the record allowed skipping the check.
    pub pieces_rechecked: u32,
    /// Bytes selected for download (all of the torrent unless files are skipped with priority -1).
    pub total_length: u64,
    /// Bytes of verified pieces among the selected ones.
    pub have_bytes: u64,
    pub pieces_have: u32,
    pub piece_count: u32,
    /// Bytes/s.
    pub download_rate: f64,
    pub upload_rate: f64,
    /// Payload bytes received and sent this session.
    pub downloaded: u64,
    pub uploaded: u64,
    /// Connected peers that have every piece, and the others.
    pub seeds: usize,
    pub peers: usize,
    /// BitTornado's "distributed copies" (shown after the seed count, so seeds are not in it): the lowest availability
    /// of any piece among connected non-seeds, plus the fraction of pieces available above that minimum.
    pub distributed_copies: f64,
    /// Average completion of connected non-seed peers, 0..=1.
    pub peers_done: f64,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// Peers closed and banned for sending bad data.
    pub banned_peers: u32,
    /// Last tracker error or warning, if any.
    pub tracker_message: Option<String>,
    /// The fatal error of a failed torrent.
    pub error: Option<String>,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Shard(#[from] cyclone_shard::ShardError),
    #[error("couldn't listen - no port free in {minport}..={maxport}: {last}")]
    NoPort {
        minport: u16,
        maxport: u16,
        last: String,
    },
    #[error("cannot start the shard pool thread: {0}")]
    Thread(std::io::Error),
    #[error("torrent {0} is already in the session")]
    Duplicate(cyclone_metainfo::InfoHash),
    #[error("torrent {0} is not in the session")]
    UnknownTorrent(String),
    #[error("shard {shard}'s command queue is full ({COMMAND_CHANNEL_CAPACITY} commands); try again later")]
    CommandsFull { shard: usize },
    #[error("the session has stopped")]
    Stopped,
}

/// A command to a shard, from the caller's thread (the control plane: bounded, polled, never on the hot path).
pub(crate) enum ShardCommand {
    /// Start this torrent (its info-hash belongs to the shard).
    Add(Box<TorrentConfig>),
    /// Stop this torrent as at shutdown; it then leaves the shard.
    Remove([u8; 20]),
}

/// State shared by every shard and the caller (read-only but for the stop flag and the global rate buckets, which are
/// atomics drawn in chunks: no lock).
pub(crate) struct Shared {
    pub config: SessionConfig,
    pub stop: AtomicBool,
    /// The session-wide limits (`config.max_upload_rate`, `config.max_download_rate`); each shard draws from them
    /// through its `limits::ShardLimits`.
    pub upload_limit: Arc<SharedBucket>,
    pub download_limit: Arc<SharedBucket>,
    pub status_tx: SyncSender<TorrentStatus>,
    pub listen_port: u16,
}

/// A socket handed from the accepting shard to the owner of its torrent, with the handshake head already read.
pub(crate) struct Handoff {
    pub fd: std::os::fd::OwnedFd,
    pub head: [u8; crate::wire::HANDSHAKE_HEAD_LEN],
}

/// What each shard starts with.
struct ShardInput {
    listener: std::net::TcpListener,
    mesh: cyclone_shard::mesh::MeshEndpoint<Handoff, bool>,
    torrents: Vec<TorrentConfig>,
    commands: Receiver<ShardCommand>,
    shared: Arc<Shared>,
}

/// A running session.
pub struct SessionHandle {
    shared: Arc<Shared>,
    /// Status reports, one per torrent per `display_interval`.
    pub status: Receiver<TorrentStatus>,
    thread: Option<std::thread::JoinHandle<Result<(), cyclone_shard::ShardError>>>,
    /// One command channel per shard.
    commands: Vec<SyncSender<ShardCommand>>,
    /// Info-hashes added and not removed (the duplicate check; a torrent that failed stays until removed).
    torrents: Mutex<HashSet<[u8; 20]>>,
}

impl SessionHandle {
    /// The port peers connect to.
    pub fn listen_port(&self) -> u16 {
        self.shared.listen_port
    }

    /// Asks every torrent to stop: announce `stopped`, write resume data, close connections.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Adds a torrent to the running session, on the shard that owns its info-hash. Returns once the command is
    /// queued: the torrent then reports its status like the others (a torrent that cannot start reports
    /// [`Activity::Failed`]). Errors: the info-hash is already in the session, the shard's command queue is full
    /// (never blocks), or the session has stopped.
    pub fn add_torrent(&self, torrent: TorrentConfig) -> Result<(), SessionError> {
        let hash = *torrent.metainfo.info_hash.as_bytes();
        let mut torrents = self.lock_torrents();
        if torrents.contains(&hash) {
            return Err(SessionError::Duplicate(torrent.metainfo.info_hash));
        }
        self.send(&hash, ShardCommand::Add(Box::new(torrent)))?;
        torrents.insert(hash);
        Ok(())
    }

    /// Removes a torrent: it stops as at shutdown (connections closed, `stopped` announced, final resume write) and
    /// reports a last status with [`Activity::Stopped`]. Returns once the command is queued. After it the info-hash
    /// may be added again (the new instance waits for the old one's shutdown).
    pub fn remove_torrent(&self, info_hash: &[u8; 20]) -> Result<(), SessionError> {
        let mut torrents = self.lock_torrents();
        if !torrents.contains(info_hash) {
            return Err(SessionError::UnknownTorrent(
                info_hash.iter().map(|b| format!("{b:02x}")).collect(),
            ));
        }
        self.send(info_hash, ShardCommand::Remove(*info_hash))?;
        torrents.remove(info_hash);
        Ok(())
    }

    fn lock_torrents(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 20]>> {
        // The set is only ever updated after a successful send: a poisoned lock still holds a consistent set.
        self.torrents.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, hash: &[u8; 20], command: ShardCommand) -> Result<(), SessionError> {
        if self.shared.stop.load(Ordering::SeqCst) {
            return Err(SessionError::Stopped);
        }
        let shard = shard_for_key(hash, self.commands.len());
        self.commands[shard].try_send(command).map_err(|e| match e {
            TrySendError::Full(_) => SessionError::CommandsFull { shard },
            TrySendError::Disconnected(_) => SessionError::Stopped,
        })
    }

    /// True once the shards have all returned.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the shards to finish (call [`SessionHandle::stop`] first).
    pub fn join(mut self) -> Result<(), cyclone_shard::ShardError> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(cyclone_shard::ShardError::Executor {
                    shard: 0,
                    message: "a shard panicked".into(),
                })
            }),
            None => Ok(()),
        }
    }
}

/// The session entry point.
pub struct Session;

impl Session {
    /// Binds the listening port and starts the shard pool with `torrents` (more can be added and removed later:
    /// [`SessionHandle::add_torrent`], [`SessionHandle::remove_torrent`]). Returns at once.
    pub fn start(
        config: SessionConfig,
        torrents: Vec<TorrentConfig>,
    ) -> Result<SessionHandle, SessionError> {
        tune_allocator();
        let pool_config = ShardPoolConfig {
            shards: config.shards,
            name: "cyclone-engine".into(),
            io_memory: None,
            pin: false,
        };
        let shards = ShardPool::shard_count(&pool_config)?;
        // Check the locked-memory limit before binding anything, for a clear message.
        cyclone_shard::memlock::io_memory_for(cyclone_shard::memlock::memlock_limit()?, shards)?;
        let listeners = bind_listeners(&config, shards)?;
        let listen_port = listeners[0]
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default();
        let (status_tx, status) = std::sync::mpsc::sync_channel(STATUS_CHANNEL_CAPACITY);
        let now = std::time::Instant::now();
        let shared = Arc::new(Shared {
            upload_limit: Arc::new(SharedBucket::with_one_second_burst(
                now,
                config.max_upload_rate,
            )),
            download_limit: Arc::new(SharedBucket::with_one_second_burst(
                now,
                config.max_download_rate,
            )),
            config,
            stop: AtomicBool::new(false),
            status_tx,
            listen_port,
        });
        let mut per_shard: Vec<Vec<TorrentConfig>> = (0..shards).map(|_| Vec::new()).collect();
        let mut known = HashSet::new();
        for t in torrents {
            known.insert(*t.metainfo.info_hash.as_bytes());
            let owner = shard_for_key(t.metainfo.info_hash.as_bytes(), shards);
            per_shard[owner].push(t);
        }
        let meshes = cyclone_shard::mesh::mesh::<Handoff, bool>(shards, MESH_CAPACITY);
        let (command_txs, command_rxs): (Vec<_>, Vec<_>) = (0..shards)
            .map(|_| std::sync::mpsc::sync_channel(COMMAND_CHANNEL_CAPACITY))
            .unzip();
        let inputs: Vec<ShardInput> = listeners
            .into_iter()
            .zip(meshes)
            .zip(per_shard)
            .zip(command_rxs)
            .map(|(((listener, mesh), torrents), commands)| ShardInput {
                listener,
                mesh,
                torrents,
                commands,
                shared: shared.clone(),
            })
            .collect();
        let thread = std::thread::Builder::new()
            .name("cyclone-session".into())
            .spawn(move || {
                ShardPool::run(&pool_config, inputs, |ctx, input| async move {
                    listen::shard_main(ctx, input).await
                })
                .map(|_| ())
            })
            .map_err(SessionError::Thread)?;
        Ok(SessionHandle {
            shared,
            status,
            thread: Some(thread),
            commands: command_txs,
            torrents: Mutex::new(known),
        })
    }
}

/// Serves large buffers (piece buffers, O_DIRECT write buffers, up to 64 MiB) from malloc's arenas instead of a
/// fresh `mmap` each time. With glibc's default threshold every O_DIRECT write buffer of a 256 KiB piece was mapped,
/// page-faulted and zeroed by the kernel, then unmapped: page faults and `clear_page` were ~12 % of a 1 GiB
/// download's CPU. Process-wide and once; a no-op on other C libraries.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets glibc malloc parameters; it is called once, before the shard threads start
            // allocating, with valid parameter constants.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
            }
        });
    }
}

/// The ports to try, in order (BitTornado `find_and_bind`): with `random` and a range of at least 50 ports, 20
/// distinct random ports; with `random` and a smaller range, the range shuffled, first 20; otherwise counting up
/// from `lo`, at most 20.
pub fn port_candidates(lo: u16, hi: u16, random: bool, rng: &mut fastrand::Rng) -> Vec<u16> {
    let hi = hi.max(lo);
    let span = usize::from(hi - lo) + 1;
    if random && span >= 50 {
        let mut out: Vec<u16> = Vec::with_capacity(PORT_ATTEMPTS);
        // Bounded: the range holds at least 50 ports, so 20 distinct ones are found quickly; the cap stops a
        // pathological generator.
        for _ in 0..PORT_ATTEMPTS * 50 {
            if out.len() == PORT_ATTEMPTS {
                break;
            }
            let p = rng.u16(lo..=hi);
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    } else {
        let mut all: Vec<u16> = (lo..=hi).collect();
        if random {
            rng.shuffle(&mut all);
        }
        all.truncate(PORT_ATTEMPTS);
        all
    }
}

/// One listener per shard on a port of `minport..=maxport` (random tries as BitTornado), or a kernel-chosen port.
fn bind_listeners(
    config: &SessionConfig,
    shards: usize,
) -> Result<Vec<std::net::TcpListener>, SessionError> {
    let opts = ListenOptions::default();
    if config.minport == 0 {
        return Ok(reuseport_listeners(
            SocketAddr::new(config.bind, 0),
            shards,
            opts,
        )?);
    }
    let (lo, hi) = (config.minport, config.maxport.max(config.minport));
    let mut rng = fastrand::Rng::new();
    let mut last = String::new();
    for port in port_candidates(lo, hi, config.random_port, &mut rng) {
        match reuseport_listeners(SocketAddr::new(config.bind, port), shards, opts) {
            Ok(l) => return Ok(l),
            Err(e) => last = e.to_string(),
        }
    }
    Err(SessionError::NoPort {
        minport: lo,
        maxport: hi,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_candidates_follow_find_and_bind() {
        let mut rng = fastrand::Rng::with_seed(5);
        // Linear: counting up, at most 20.
        assert_eq!(
            port_candidates(6881, 6889, false, &mut rng),
            (6881..=6889).collect::<Vec<_>>()
        );
        assert_eq!(
            port_candidates(10000, 60000, false, &mut rng),
            (10000..10020).collect::<Vec<_>>()
        );
        // Random, wide range: 20 distinct ports inside it.
        let r = port_candidates(10000, 60000, true, &mut rng);
        assert_eq!(r.len(), 20);
        assert!(r.iter().all(|p| (10000..=60000).contains(p)));
        let mut d = r.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 20);
        // Random, narrow range: a permutation of the range, cut to 20.
        let mut r = port_candidates(7000, 7009, true, &mut rng);
        r.sort();
        assert_eq!(r, (7000..=7009).collect::<Vec<_>>());
        assert_eq!(port_candidates(7000, 7048, true, &mut rng).len(), 20);
        // maxport below minport: just minport.
        assert_eq!(port_candidates(9000, 10, true, &mut rng), vec![9000]);
    }
}
