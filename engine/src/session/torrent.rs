//! One torrent on its shard: start-up (resume record or recheck), the per-torrent tick (choker, timers, dialling,
//! status), piece completion (verify, HAVE broadcast, completion), and shutdown.
//!
//! All mutable state lives in [`TorrentState`] behind a `RefCell`; it is borrowed only between awaits, never across
//! one. The pure core makes every decision; this file carries them out.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::choker::{
    is_snubbed, seeding_round_robin_period, ChokeAction, Choker, ChokerConfig, PeerSnapshot,
};
use crate::connection_timers::{ConnectionTimers, HalfOpenLimit, TimerAction};
use crate::picker::PickerConfig;
use crate::piece_map::PieceMap;
use crate::rate::RateMeasure;
use crate::requester::{pipeline_depth, Requester, MAX_PEERS_PER_TORRENT};
use crate::storage::recheck::recheck_untrusted;
use crate::storage::{RecheckOptions, Storage};
use crate::upload::UploadQueue;
use crate::wire::{BlockRequest, Message};

use super::assembly::PieceAssembly;
use super::finish::{FinishQueue, Verdict};
use super::limits::TorrentLimits;
use super::listen::ShardResources;
use super::resume_io::Resume;
use super::stop_signal::StopSignal;
use super::{
    Activity, ResumeRecordKind, Shared, TorrentConfig, TorrentStatus, MIN_RESUME_GAP,
    RESUME_SAVE_BYTES,
};
use crate::bad_data::{BadDataGuard, Verdict as BadVerdict};

/// Most peer addresses kept from trackers, waiting to be dialled.
pub(super) const MAX_KNOWN_PEERS: usize = 1000;
/// A peer whose unsent outgoing bytes exceed this is not reading: it is closed.
pub(super) const MAX_OUTGOING_BYTES: usize = 4 << 20;
/// Longest wait at shutdown for the connections' tasks to end (their sockets are shut down: they end at once
/// unless a disk write is in progress).
const PEER_TASKS_GRACE: Duration = Duration::from_secs(10);
/// How often the torrent tick runs.
const TICK: Duration = Duration::from_millis(250);
/// How long a status report may reuse the distributed-copies figure (an O(pieces) count).
const COPIES_REFRESH: Duration = Duration::from_secs(2);
/// How long a torrent's last report waits for room in a full status channel.
const FINAL_REPORT_PATIENCE: Duration = Duration::from_secs(2);
/// Bad pieces a sole sender may send before it is closed and banned (BitTornado kicks at more than one).
const MAX_BAD_PIECES_PER_PEER: u32 = 1;
/// Most entries kept in each of a torrent's ban lists (peer ids, addresses, IPs).
const MAX_BANNED: usize = 1024;

pub(super) type PeerKey = u32;

/// One live connection, as the torrent sees it.
pub(super) struct PeerConn {
    pub addr: SocketAddr,
    pub peer_id: [u8; 20],
    /// Bytes to send, appended by anyone, drained by the connection's writer.
    pub out: Vec<u8>,
    pub wake: glommio::channels::local_channel::LocalSender<()>,
    /// Raw fd of the connection's reader socket (open while the peer is in the map), for `shutdown`.
    pub fd: i32,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub upload: UploadQueue,
    pub timers: ConnectionTimers,
    pub down_rate: RateMeasure,
    pub up_rate: RateMeasure,
    /// Later of the peer's last unchoke and its last block (snubbing).
    pub last_activity: Instant,
    pub just_unchoked: bool,
    pub bad_pieces: u32,
    pub closing: bool,
}

impl PeerConn {
    pub fn send(&mut self, msg: &Message<'_>) {
        msg.encode_into(&mut self.out);
        let _ = self.wake.try_send(());
    }
}

/// Everything mutable about a torrent.
pub(super) struct TorrentState {
    pub requester: Requester<PeerKey>,
    pub choker: Choker<PeerKey>,
    pub have: Bitfield,
    pub peers: HashMap<PeerKey, PeerConn>,
    next_key: PeerKey,
    pub half_open: HalfOpenLimit,
    pub known: VecDeque<SocketAddr>,
    /// Addresses connected or being dialled (no second connection to the same address).
    pub addrs: HashSet<SocketAddr>,
    /// Peers that sent bad data: never dialled or accepted again (by peer id and address; on loopback every peer
    /// shares one IP, so BitTornado's per-IP ban is not usable).
    pub banned_ids: HashSet<[u8; 20]>,
    pub banned_addrs: HashSet<SocketAddr>,
    /// IPs banned by the multi-sender culprit search (never loopback: there every peer shares the IP).
    pub banned_ips: HashSet<IpAddr>,
    /// Who sent bad data, for pieces with several senders (BitTornado's culprit search; see `bad_data.rs`).
    pub bad_data: BadDataGuard<Culprit>,
    pub down_rate: RateMeasure,
    pub up_rate: RateMeasure,
    /// The torrent's own rate buckets and its shard's shares of the session-wide ones.
    pub limits: TorrentLimits,
    pub downloaded: u64,
    pub uploaded: u64,
    pub hash_failures: u32,
    /// Peers closed and banned for sending bad data.
    pub bad_peers_closed: u32,
    pub activity: Activity,
    pub resumed: bool,
    pub resume_record: ResumeRecordKind,
    pub pieces_trusted: u32,
    pub pieces_rechecked: u32,
    /// Pieces held when the last resume write took its snapshot (to write again after `RESUME_SAVE_BYTES`).
    pub resume_saved_pieces: u32,
    /// The final (clean) resume write is done: no later write may replace it.
    pub resume_final_written: bool,
    pub ready: bool,
    /// The torrent is complete (from the start, or finished during this session).
    pub complete_announced: bool,
    /// A download finished during this session and the tracker has not been told yet: set once when the last
    /// wanted piece passes, taken once by the tracker task (`take_completion_event`). A torrent complete at start
    /// never sends `completed` (BitTornado).
    pub completion_event_due: bool,
    pub tracker_message: Option<String>,
    pub error: Option<String>,
    /// Pieces verified since the last resume write.
    pub resume_dirty: bool,
    /// Selected pieces not verified yet; the download is done at 0.
    pub wanted_missing: u32,
    pub rng: fastrand::Rng,
    /// Partly received pieces held in memory (see `assembly.rs`).
    pub assembly: PieceAssembly,
    /// The last distributed-copies figure and when it was computed (see `COPIES_REFRESH`).
    pub copies_cache: Option<(Instant, f64)>,
}

/// A torrent on its shard.
pub(super) struct Torrent {
    pub info_hash: [u8; 20],
    pub hashes: Vec<[u8; 20]>,
    pub map: PieceMap,
    pub storage: Rc<Storage>,
    pub shared: Arc<Shared>,
    pub config: TorrentConfig,
    /// Per piece priority from the file priorities (`None`: every piece wanted at normal priority).
    pub piece_priorities: Option<Vec<crate::picker::Priority>>,
    pub st: RefCell<TorrentState>,
    /// Completed pieces waiting to be hashed and written (see `finish.rs`).
    pub finish: FinishQueue,
    /// The session's stop or this torrent's removal, seen at once rather than at the next tick.
    pub stop: StopSignal,
    /// Fired when [`Torrent::run`] has returned (shutdown complete): a re-added torrent with the same info-hash
    /// waits for it before it starts on the same files.
    pub ended: StopSignal,
    /// The shard's start-up check permit: one torrent of a shard checks its data at a time (BitTornado checks one
    /// torrent at a time).
    check_lock: Rc<glommio::sync::Semaphore>,
    /// One resume write at a time (periodic, completion and final writes never interleave their renames).
    pub resume_lock: glommio::sync::Semaphore,
}

impl Torrent {
    /// Builds the torrent's state; an error is reported as a failed status.
    pub fn new(
        config: TorrentConfig,
        shared: Arc<Shared>,
        res: &ShardResources,
    ) -> Result<Torrent, Box<TorrentStatus>> {
        let pool = res.pool.clone();
        let memory = res.memory.clone();
        let shard_limits = res.limits.clone();
        let info_hash = *config.metainfo.info_hash.as_bytes();
        let fail = |msg: String| {
            Box::new(TorrentStatus {
                info_hash,
                activity: Activity::Failed,
                resumed: false,
                resume_record: ResumeRecordKind::None,
                pieces_trusted: 0,
                pieces_rechecked: 0,
                total_length: config.metainfo.info.total_length(),
                have_bytes: 0,
                pieces_have: 0,
                piece_count: 0,
                download_rate: 0.0,
                upload_rate: 0.0,
                downloaded: 0,
                uploaded: 0,
                seeds: 0,
                peers: 0,
                distributed_copies: 0.0,
                peers_done: 0.0,
                hash_failures: 0,
                banned_peers: 0,
                tracker_message: None,
                error: Some(msg),
            })
        };
        let map = PieceMap::from_info(&config.metainfo.info).map_err(|e| fail(e.to_string()))?;
        let storage = Storage::new(map.clone(), config.layout.clone(), pool)
            .map_err(|e| fail(e.to_string()))?;
        let piece_priorities = match &config.file_priorities {
            Some(p) if p.len() == map.file_count() => {
                Some(crate::picker::piece_priorities(&map, p))
            }
            Some(p) => {
                return Err(fail(format!(
                    "bad priority list given, ignored: {} values for {} files",
                    p.len(),
                    map.file_count()
                )))
            }
            None => None,
        };
        let now = Instant::now();
        let sc = &shared.config;
        let seed = fastrand::u64(..);
        let st = TorrentState {
            requester: Requester::new(
                map.clone(),
                PickerConfig {
                    rarest_first_cutoff: sc.rarest_first_cutoff,
                    rarest_first_priority_cutoff: sc.rarest_first_priority_cutoff,
                },
                seed,
            ),
            choker: Choker::new(
                ChokerConfig {
                    max_uploads: sc.max_uploads,
                    round_robin_period: sc.round_robin_period,
                    ..Default::default()
                },
                now,
            ),
            have: Bitfield::new(map.piece_count()).map_err(|e| fail(e.to_string()))?,
            peers: HashMap::new(),
            next_key: 0,
            half_open: HalfOpenLimit::default(),
            known: VecDeque::new(),
            addrs: HashSet::new(),
            banned_ids: HashSet::new(),
            banned_addrs: HashSet::new(),
            banned_ips: HashSet::new(),
            bad_data: BadDataGuard::new(),
            down_rate: RateMeasure::new(now, sc.max_rate_period),
            up_rate: RateMeasure::new(now, sc.max_rate_period),
            limits: TorrentLimits::new(
                now,
                config.max_upload_rate,
                config.max_download_rate,
                shard_limits,
            ),
            downloaded: 0,
            uploaded: 0,
            hash_failures: 0,
            bad_peers_closed: 0,
            activity: Activity::Checking(0.0),
            resumed: false,
            resume_record: ResumeRecordKind::None,
            pieces_trusted: 0,
            pieces_rechecked: 0,
            resume_saved_pieces: 0,
            resume_final_written: false,
            ready: false,
            complete_announced: false,
            completion_event_due: false,
            tracker_message: None,
            error: None,
            resume_dirty: false,
            wanted_missing: map.piece_count(),
            rng: fastrand::Rng::with_seed(seed ^ 1),
            assembly: PieceAssembly::new(memory),
            copies_cache: None,
        };
        Ok(Torrent {
            info_hash,
            hashes: config.metainfo.info.pieces.clone(),
            map,
            storage: Rc::new(storage),
            shared,
            config,
            piece_priorities,
            st: RefCell::new(st),
            finish: FinishQueue::new(),
            stop: res.stop.child(),
            ended: StopSignal::new(),
            check_lock: res.check_lock.clone(),
            resume_lock: glommio::sync::Semaphore::new(1),
        })
    }

    /// The session is stopping, the torrent was removed or it failed: no new connections, announce `stopped`.
    pub fn stopping(&self) -> bool {
        self.stop.is_fired()
            || self.shared.stop.load(Ordering::Relaxed)
            || self.st.borrow().error.is_some()
    }

    /// Whether incoming connections are taken now (checked and not stopping).
    pub fn accepts_connections(&self) -> bool {
        !self.stopping() && {
            let st = self.st.borrow();
            st.ready && st.peers.len() < self.max_connections()
        }
    }

    pub fn max_connections(&self) -> usize {
        match self.shared.config.max_connections {
            0 => MAX_PEERS_PER_TORRENT,
            n => n.min(MAX_PEERS_PER_TORRENT),
        }
    }

    /// Every selected piece is verified (the whole torrent unless files are skipped).
    pub fn is_complete(&self) -> bool {
        self.st.borrow().wanted_missing == 0
    }

    /// Whether `piece` is selected for download.
    pub fn wanted(&self, piece: u32) -> bool {
        self.piece_priorities
            .as_ref()
            .is_none_or(|p| p[piece as usize] >= 0)
    }

    /// The torrent's life: start-up, then ticks until the session stops, then shutdown.
    pub async fn run(self: Rc<Self>) {
        if let Err(msg) = self.start_up().await {
            self.fail(msg);
            self.report_final().await;
            return;
        }
        let tracker = glommio::spawn_local(super::tracker::run(self.clone()));
        let finisher = glommio::spawn_local(super::finish::run(self.clone()));
        let mut last_report = Instant::now() - self.shared.config.display_interval;
        let mut last_resume = Instant::now();
        // Pieces verified since the last write that trigger the next one early (at least one).
        let save_after_pieces = u32::try_from(RESUME_SAVE_BYTES / self.map.piece_length())
            .unwrap_or(u32::MAX)
            .max(1);
        // From now on data may be written: replace a clean record at once, so that a crash before the first periodic
        // write finds a crash record (trusted with its files intact) rather than a clean one with moved stamps.
        if !self.is_complete() {
            super::resume_io::save(&self).await;
        }
        self.report();
        while !self.stopping() {
            futures_lite::future::or(glommio::timer::sleep(TICK), self.stop.wait()).await;
            let now = Instant::now();
            self.tick(now);
            if now.duration_since(last_report) >= self.shared.config.display_interval {
                last_report = now;
                self.report();
            }
            let (dirty, new_pieces) = {
                let st = self.st.borrow();
                let new = st.have.count_ones().saturating_sub(st.resume_saved_pieces);
                (st.resume_dirty, new)
            };
            let since = now.duration_since(last_resume);
            if dirty
                && (since >= self.shared.config.resume_interval
                    || (new_pieces >= save_after_pieces && since >= MIN_RESUME_GAP))
            {
                last_resume = now;
                self.st.borrow_mut().resume_dirty = false;
                super::resume_io::save(&self).await;
            }
        }
        // Shutdown: close every connection, let the tracker task send `stopped`, save the resume record.
        self.close_all();
        tracker.await;
        self.wait_for_peer_tasks().await;
        // No reader queues pieces any more: finish what is queued (written pieces become part of the record).
        self.finish.wake();
        finisher.await;
        self.finish.close().await;
        super::resume_io::save_final(&self).await;
        self.storage.close().await;
        if self.st.borrow().error.is_none() {
            self.st.borrow_mut().activity = Activity::Stopped;
        }
        self.report_final().await;
    }

    /// After `close_all`: waits (at most `PEER_TASKS_GRACE`) until every connection's task has removed its peer,
    /// so that no block write, file creation or piece verification of this torrent is still running when the final
    /// resume record is written and the shard's executor ends (a blocking-pool job outliving its executor makes
    /// glommio panic: "failed to send response").
    async fn wait_for_peer_tasks(&self) {
        let start = Instant::now();
        while !self.st.borrow().peers.is_empty() && start.elapsed() < PEER_TASKS_GRACE {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Resume record if it can be trusted (see `ResumeRecord::decide`), otherwise a recheck of what it does not
    /// vouch for.
    async fn start_up(self: &Rc<Self>) -> Result<(), String> {
        let (trusted, skip_check, record) = match super::resume_io::load(self).await {
            Resume::Trust(have, kind) => (Some(have), true, kind),
            Resume::Recheck(have, kind) => (Some(have), false, kind),
            Resume::None => (None, false, ResumeRecordKind::None),
        };
        let pieces_trusted = trusted.as_ref().map_or(0, Bitfield::count_ones);
        let have = match trusted {
            Some(have) if skip_check => have,
            trusted => {
                // One check at a time per shard (BitTornado's launchmany queues hash checks the same way): parallel
                // checks of torrents on one disk only make every one of them slower.
                let _permit = self.check_lock.acquire_permit(1).await;
                let paths = self.file_paths();
                let probe = glommio::executor()
                    .spawn_blocking(move || {
                        // An existing directory on the data's device, for glommio's DMA probe.
                        paths
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p.parent().map(|d| d.to_path_buf()))
                            .find(|d| d.is_dir())
                    })
                    .await;
                if let Some(dir) = probe {
                    // A probe file of real data: a sparse data file would show glommio a hole at offset 0 and arm
                    // its probe trap for every later O_DIRECT read and write on the device (stack-notes 1f).
                    cyclone_shard::dma_probe::ensure_probed(&dir).await;
                }
                let options = RecheckOptions {
                    check_hashes: self.shared.config.check_hashes,
                    ..Default::default()
                };
                let last_check_report = std::cell::Cell::new(Instant::now());
                let report = recheck_untrusted(
                    self.storage.clone(),
                    &self.hashes,
                    trusted.as_ref(),
                    &options,
                    |p| {
                        if p.bytes_to_read > 0 {
                            if let Ok(mut st) = self.st.try_borrow_mut() {
                                st.activity = Activity::Checking(
                                    p.bytes_read as f64 / p.bytes_to_read as f64,
                                );
                            }
                            // A check of a large torrent takes minutes: report its progress as the status
                            // lines do the rest of the time.
                            let now = Instant::now();
                            if now.duration_since(last_check_report.get())
                                >= self.shared.config.display_interval
                                && self.st.try_borrow_mut().is_ok()
                            {
                                last_check_report.set(now);
                                self.report();
                            }
                        }
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
                report.have
            }
        };
        let mut st = self.st.borrow_mut();
        for p in have.iter_ones() {
            st.requester.mark_have(p);
        }
        if let Some(prio) = &self.piece_priorities {
            st.requester.set_priorities(prio);
        }
        st.wanted_missing = (0..self.map.piece_count())
            .filter(|&p| !have.get(p) && self.wanted(p))
            .count() as u32;
        st.resume_saved_pieces = have.count_ones();
        st.have = have;
        st.resumed = skip_check;
        st.resume_record = record;
        st.pieces_trusted = pieces_trusted;
        st.pieces_rechecked = if skip_check {
            0
        } else {
            self.map.piece_count() - pieces_trusted
        };
        st.ready = true;
        if st.wanted_missing == 0 {
            st.activity = Activity::Seeding;
            st.complete_announced = true; // already complete: no `completed` event (BitTornado)
            let period = seeding_round_robin_period(
                self.map.piece_length(),
                self.shared.config.round_robin_period,
            );
            st.choker.set_round_robin_period(period);
        } else {
            st.activity = Activity::Downloading;
        }
        Ok(())
    }

    /// The path of every file of the torrent, in order (`None`: a padding file, never on disk).
    pub(super) fn file_paths(&self) -> Vec<Option<std::path::PathBuf>> {
        let layout = self.storage.layout();
        (0..layout.file_count())
            .map(|i| (!layout.is_padding(i)).then(|| layout.path(i).to_path_buf()))
            .collect()
    }

    pub(super) fn fail(&self, msg: String) {
        let mut st = self.st.borrow_mut();
        st.error = Some(msg);
        st.activity = Activity::Failed;
    }

    /// Ended without running (removed before it started).
    pub(super) fn mark_stopped(&self) {
        self.st.borrow_mut().activity = Activity::Stopped;
    }

    /// Registers a connection whose handshake completed; returns its key, or `None` if the torrent is full.
    pub fn add_peer(
        &self,
        addr: SocketAddr,
        peer_id: [u8; 20],
        fast: bool,
        extended: bool,
        fd: i32,
        wake: glommio::channels::local_channel::LocalSender<()>,
    ) -> Option<PeerKey> {
        let now = Instant::now();
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        let security = self.shared.config.security;
        if st.peers.len() >= self.max_connections()
            || st.peers.values().any(|p| p.peer_id == peer_id)
            || st.banned_ids.contains(&peer_id)
            || (security && st.banned_ips.contains(&addr.ip()))
        {
            return None;
        }
        // `--security`: the new connection from a connected IP replaces the old one (seeds-behaviour §1.1).
        let displaced = crate::one_per_ip::displaced(
            security,
            addr.ip(),
            st.peers.iter().map(|(&k, p)| (k, p.addr.ip())),
        );
        for k in displaced {
            Self::close_peer(st, k);
        }
        let key = loop {
            let k = st.next_key;
            st.next_key = st.next_key.wrapping_add(1);
            if !st.peers.contains_key(&k) {
                break k;
            }
        };
        st.requester.add_peer(key, fast).ok()?;
        st.choker.peer_connected(key, &mut st.rng);
        let mut timers = ConnectionTimers::new(
            now,
            self.shared.config.timeout,
            self.shared.config.keepalive_interval,
        );
        timers.handshake_completed(now);
        let mut conn = PeerConn {
            addr,
            peer_id,
            out: Vec::new(),
            wake,
            fd,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            upload: UploadQueue::new(fast),
            timers,
            down_rate: RateMeasure::new(now, self.shared.config.max_rate_period),
            up_rate: RateMeasure::new(now, self.shared.config.max_rate_period),
            last_activity: now,
            just_unchoked: false,
            bad_pieces: 0,
            closing: false,
        };
        // Our pieces: BEP 6 peers get HAVE_ALL / HAVE_NONE when they apply, others a bitfield (skipped when empty).
        // A seed with `breakup_seed_bitfield` sends a cloaked bitfield and then HAVEs for the withheld pieces.
        if st.have.is_complete() && self.shared.config.breakup_seed_bitfield {
            let (cloaked, withheld) = st.have.cloaked(&mut st.rng);
            conn.send(&Message::Bitfield(cloaked));
            for piece in withheld {
                conn.send(&Message::Have(piece));
            }
        } else if fast && st.have.is_complete() {
            conn.send(&Message::HaveAll);
        } else if fast && st.have.count_ones() == 0 {
            conn.send(&Message::HaveNone);
        } else if st.have.count_ones() > 0 {
            conn.send(&Message::Bitfield(st.have.clone()));
        }
        // BEP 10: our extension handshake (no extension messages yet; theirs are accepted and ignored).
        if extended {
            let ours = crate::extension::ExtensionHandshake {
                messages: Vec::new(),
                port: Some(self.shared.listen_port),
                client: Some(concat!("cyclone ", env!("CARGO_PKG_VERSION")).to_string()),
                request_queue: Some(crate::upload::MAX_QUEUED_UPLOAD_REQUESTS as u32),
                your_ip: Some(addr.ip()),
                metadata_size: None,
            };
            let payload = ours.encode();
            conn.send(&Message::Extended(crate::wire::Extended {
                id: 0,
                payload: &payload,
            }));
        }
        st.addrs.insert(addr);
        st.peers.insert(key, conn);
        drop(guard);
        self.rechoke();
        Some(key)
    }

    /// Forgets a connection (its reader ended).
    pub fn remove_peer(&self, key: PeerKey) {
        let mut st = self.st.borrow_mut();
        if let Some(p) = st.peers.remove(&key) {
            st.addrs.remove(&p.addr);
            let _ = p.wake.try_send(());
        }
        st.requester.remove_peer(key);
        st.choker.peer_disconnected(key);
        drop(st);
        self.rechoke();
        self.fill_all();
    }

    /// Asks a connection to close (its reader sees EOF and cleans up).
    pub fn close_peer(st: &mut TorrentState, key: PeerKey) {
        if let Some(p) = st.peers.get_mut(&key) {
            if !p.closing {
                p.closing = true;
                // SAFETY: `fd` is the reader's socket, which stays open while the peer is in the map; shutdown only
                // changes the socket's state and is harmless on an fd that is still ours.
                unsafe { libc::shutdown(p.fd, libc::SHUT_RDWR) };
                let _ = p.wake.try_send(());
            }
        }
    }

    fn close_all(&self) {
        let mut st = self.st.borrow_mut();
        let keys: Vec<PeerKey> = st.peers.keys().copied().collect();
        for k in keys {
            Self::close_peer(&mut st, k);
        }
    }

    /// Runs the choker over the current connections and sends the chokes/unchokes it decides.
    pub fn rechoke(&self) {
        let seeding = self.is_complete();
        rechoke(
            &mut self.st.borrow_mut(),
            seeding,
            Instant::now(),
            self.shared.config.snub_time,
        );
    }

    /// Sends requests to every peer with room in its pipeline.
    pub fn fill_all(&self) {
        let mut st = self.st.borrow_mut();
        let keys: Vec<PeerKey> = st.peers.keys().copied().collect();
        for k in keys {
            fill_peer(&mut st, k, Instant::now());
        }
    }

    /// The periodic work: choker tick, timers, snubbing, dialling.
    fn tick(self: &Rc<Self>, now: Instant) {
        let seeding = self.is_complete();
        let snub_time = self.shared.config.snub_time;
        {
            let mut guard = self.st.borrow_mut();
            let st = &mut *guard;
            if st.choker.tick_due(now) {
                let snaps = snapshots(st, now, self.shared.config.snub_time);
                let actions = st
                    .choker
                    .tick(now, seeding, |k| snaps.get(&k).copied().unwrap_or_default());
                apply_choke_actions(st, actions);
            }
            let keys: Vec<PeerKey> = st.peers.keys().copied().collect();
            for k in keys {
                let action = st.peers[&k].timers.check(now);
                match action {
                    TimerAction::SendKeepAlive => {
                        if let Some(p) = st.peers.get_mut(&k) {
                            p.send(&Message::KeepAlive);
                        }
                    }
                    TimerAction::Close(_) => Self::close_peer(st, k),
                    _ => {}
                }
                // Snubbed peers lose their requests to others (BitTornado `snub_time`).
                let snubbed = st.peers.get(&k).is_some_and(|p| {
                    st.requester.outstanding_count(k) > 0
                        && is_snubbed(now, p.peer_choking, p.last_activity, snub_time)
                });
                if snubbed && !st.requester.in_endgame() {
                    let cancels = st.requester.peer_snubbed(k);
                    if let Some(p) = st.peers.get_mut(&k) {
                        for c in cancels {
                            p.send(&Message::Cancel(c));
                        }
                    }
                }
                fill_peer(st, k, now);
            }
        }
        self.dial_more();
    }

    /// Dials known peers while under `max_initiate` and the half-open limit.
    pub fn dial_more(self: &Rc<Self>) {
        if self.stopping() {
            return;
        }
        let max_initiate = self.shared.config.max_initiate.min(self.max_connections());
        let own = SocketAddr::new(self.shared.config.bind, self.shared.listen_port);
        let mut st = self.st.borrow_mut();
        if !st.ready {
            return;
        }
        while st.peers.len() + st.half_open.in_flight() < max_initiate {
            let Some(addr) = st.known.pop_front() else {
                break;
            };
            let security = self.shared.config.security;
            if st.addrs.contains(&addr)
                || st.banned_addrs.contains(&addr)
                || (security && st.banned_ips.contains(&addr.ip()))
                || addr == own
                || addr.port() == 0
                || crate::one_per_ip::refuses(security, addr.ip(), st.addrs.iter().map(|a| a.ip()))
            {
                continue;
            }
            if addr.port() == self.shared.listen_port && addr.ip().is_loopback() {
                continue; // ourselves, as the tracker lists us
            }
            if !st.half_open.try_acquire() {
                st.known.push_front(addr);
                break;
            }
            st.addrs.insert(addr);
            glommio::spawn_local(super::peer::outgoing(self.clone(), addr)).detach();
        }
    }

    /// Adds peers from a tracker reply (bounded).
    pub fn add_known(self: &Rc<Self>, peers: impl Iterator<Item = SocketAddr>) {
        {
            let mut st = self.st.borrow_mut();
            for a in peers {
                if st.known.len() >= MAX_KNOWN_PEERS {
                    break;
                }
                if !st.known.contains(&a) {
                    st.known.push_back(a);
                }
            }
        }
        self.dial_more();
    }

    /// Applies the finisher's verdict on a completed piece: announce it, or re-download it (blaming the senders of
    /// bad data).
    /// `fingerprints` (one per block) come with a failed in-memory piece, and with a good one when an earlier failed
    /// download of it had several senders: they drive the culprit search.
    pub async fn apply_verdict(
        self: &Rc<Self>,
        piece: u32,
        verdict: Verdict,
        fingerprints: Option<Vec<u64>>,
    ) {
        let passed = verdict == Verdict::Good;
        if let Verdict::DiskError(e) = &verdict {
            log::warn!("piece {piece}: {e}");
        }
        let blame = verdict == Verdict::BadData;
        let just_completed;
        {
            let mut guard = self.st.borrow_mut();
            let st = &mut *guard;
            let block_senders = st.requester.piece_verified_blocks(piece, passed);
            let mut senders: Vec<PeerKey> = Vec::new();
            for &k in &block_senders {
                if !senders.contains(&k) {
                    senders.push(k);
                }
            }
            let culprit_verdicts =
                judge_senders(st, piece, passed, blame, &block_senders, fingerprints);
            if passed {
                if st.have.set(piece) && self.wanted(piece) {
                    st.wanted_missing = st.wanted_missing.saturating_sub(1);
                }
                st.resume_dirty = true;
                for p in st.peers.values_mut() {
                    p.send(&Message::Have(piece));
                }
            } else {
                if blame {
                    st.hash_failures += 1;
                }
                if let ([sole], true) = (&senders[..], blame && self.shared.config.auto_kick) {
                    let sole = *sole;
                    if let Some(p) = st.peers.get_mut(&sole) {
                        p.bad_pieces += 1;
                    }
                    if let Some(p) = st.peers.get(&sole) {
                        // Several bad pieces of one peer can be judged in one batch: ban and count it once.
                        if p.bad_pieces > MAX_BAD_PIECES_PER_PEER && !p.closing {
                            let (id, addr) = (p.peer_id, p.addr);
                            ban(&mut st.banned_ids, id);
                            ban(&mut st.banned_addrs, addr);
                            st.bad_peers_closed += 1;
                            Self::close_peer(st, sole);
                        }
                    }
                }
            }
            // `--auto_kick 0`: the culprit search still runs (its records stay bounded), nobody is punished.
            if self.shared.config.auto_kick {
                for (culprit, action) in culprit_verdicts {
                    punish(st, culprit, action);
                }
            }
            // Interest may have flipped for every peer.
            let keys: Vec<PeerKey> = st.peers.keys().copied().collect();
            for k in keys {
                update_interest(st, k);
                fill_peer(st, k, Instant::now());
            }
            just_completed = passed && st.wanted_missing == 0 && !st.complete_announced;
            if just_completed {
                st.complete_announced = true;
                st.completion_event_due = true;
                st.activity = Activity::Seeding;
                st.choker.set_round_robin_period(seeding_round_robin_period(
                    self.map.piece_length(),
                    self.shared.config.round_robin_period,
                ));
                // Seed-to-seed connections are useless once we are complete.
                let seeds: Vec<PeerKey> = st
                    .peers
                    .keys()
                    .copied()
                    .filter(|&k| st.requester.is_seed(k))
                    .collect();
                for k in seeds {
                    Self::close_peer(st, k);
                }
            }
        }
        if just_completed {
            self.storage.seal().await;
            self.rechoke();
            super::resume_io::save(self).await;
            self.report();
        }
    }

    /// Sends a status report to the caller (dropped if the channel is full).
    pub fn report(&self) {
        let _ = self.shared.status_tx.try_send(self.status());
    }

    /// The last report of a torrent that stops or fails: unlike periodic reports (the next one replaces a dropped
    /// one), nothing would replace it, so a full channel is retried for up to [`FINAL_REPORT_PATIENCE`] before the
    /// report is given up (the executor is never blocked).
    pub async fn report_final(&self) {
        let mut status = self.status();
        let start = Instant::now();
        loop {
            match self.shared.status_tx.try_send(status) {
                Ok(()) => return,
                Err(std::sync::mpsc::TrySendError::Full(s))
                    if start.elapsed() < FINAL_REPORT_PATIENCE =>
                {
                    status = s;
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return,
            }
        }
    }

    fn status(&self) -> TorrentStatus {
        let now = Instant::now();
        let mut st = self.st.borrow_mut();
        let n = self.map.piece_count();
        let (total_length, have_bytes) = if self.piece_priorities.is_none() {
            let have = if st.have.is_complete() {
                self.map.total_length()
            } else {
                st.have
                    .iter_ones()
                    .map(|p| u64::from(self.map.piece_size(p)))
                    .sum()
            };
            (self.map.total_length(), have)
        } else {
            let size = |p: u32| u64::from(self.map.piece_size(p));
            let wanted = (0..n).filter(|&p| self.wanted(p));
            let total: u64 = wanted.clone().map(size).sum();
            let have: u64 = wanted.filter(|&p| st.have.get(p)).map(size).sum();
            (total, have)
        };
        let (mut seeds, mut peers, mut done) = (0usize, 0usize, 0f64);
        for &k in st.peers.keys() {
            if st.requester.is_seed(k) {
                seeds += 1;
            } else {
                peers += 1;
                let c = st.requester.peer_has(k).map_or(0, |b| b.count_ones());
                done += f64::from(c) / f64::from(n.max(1));
            }
        }
        let status = TorrentStatus {
            info_hash: self.info_hash,
            activity: st.activity,
            resumed: st.resumed,
            resume_record: st.resume_record,
            pieces_trusted: st.pieces_trusted,
            pieces_rechecked: st.pieces_rechecked,
            total_length,
            have_bytes,
            pieces_have: st.have.count_ones(),
            piece_count: n,
            download_rate: st.down_rate.rate(now),
            upload_rate: st.up_rate.rate(now),
            downloaded: st.downloaded,
            uploaded: st.uploaded,
            seeds,
            peers,
            distributed_copies: match st.copies_cache {
                // Two passes over every piece: with thousands of large torrents reporting every 0.5 s that adds
                // up, and the figure moves slowly.
                Some((at, copies)) if now.duration_since(at) < COPIES_REFRESH => copies,
                _ => {
                    let picker = st.requester.picker();
                    let min = (0..n).map(|p| picker.availability(p)).min().unwrap_or(0);
                    let above = (0..n).filter(|&p| picker.availability(p) > min).count();
                    let copies = f64::from(min) + above as f64 / f64::from(n.max(1));
                    st.copies_cache = Some((now, copies));
                    copies
                }
            },
            peers_done: if peers > 0 { done / peers as f64 } else { 0.0 },
            hash_failures: st.hash_failures,
            banned_peers: st.bad_peers_closed,
            tracker_message: st.tracker_message.clone(),
            error: st.error.clone(),
        };
        status
    }
}

fn snapshots(
    st: &mut TorrentState,
    now: Instant,
    snub_time: Duration,
) -> HashMap<PeerKey, PeerSnapshot> {
    st.peers
        .iter_mut()
        .map(|(&k, p)| {
            let snap = PeerSnapshot {
                interested: p.peer_interested,
                unchoked: !p.am_choking,
                snubbed: is_snubbed(now, p.peer_choking, p.last_activity, snub_time),
                download_rate: p.down_rate.rate(now),
                upload_rate: p.up_rate.rate(now),
            };
            (k, snap)
        })
        .collect()
}

/// Runs the choker over the connections and sends the chokes/unchokes it decides ([`Torrent::rechoke`], for a
/// caller that already holds the state).
pub(super) fn rechoke(st: &mut TorrentState, seeding: bool, now: Instant, snub_time: Duration) {
    let snaps = snapshots(st, now, snub_time);
    let actions = st
        .choker
        .rechoke(seeding, |k| snaps.get(&k).copied().unwrap_or_default());
    apply_choke_actions(st, actions);
}

fn apply_choke_actions(st: &mut TorrentState, actions: Vec<(PeerKey, ChokeAction)>) {
    for (k, action) in actions {
        let Some(p) = st.peers.get_mut(&k) else {
            continue;
        };
        match action {
            ChokeAction::Unchoke => {
                p.am_choking = false;
                p.send(&Message::Unchoke);
            }
            ChokeAction::Choke => {
                p.am_choking = true;
                p.send(&Message::Choke);
                for r in p.upload.choked() {
                    p.send(&Message::Reject(r));
                }
            }
        }
    }
}

/// Who is blamed for bad data: the IP, as BitTornado; on loopback (every peer shares 127.0.0.1) the IP and the
/// peer id, or every local peer would be blamed for one.
pub(super) type Culprit = (IpAddr, [u8; 20]);

fn culprit_of(addr: SocketAddr, peer_id: [u8; 20]) -> Culprit {
    let ip = addr.ip();
    (ip, if ip.is_loopback() { peer_id } else { [0; 20] })
}

/// Feeds a verified piece to the multi-sender culprit search: a failed piece with several senders is remembered
/// with each block's fingerprint; when it later passes, the senders whose blocks differed are blamed. Good pieces
/// credit their senders. A sender that has left counts as an unknown culprit (nobody to punish).
fn judge_senders(
    st: &mut TorrentState,
    piece: u32,
    passed: bool,
    blame: bool,
    block_senders: &[PeerKey],
    fingerprints: Option<Vec<u64>>,
) -> Vec<(Culprit, BadVerdict)> {
    if !passed && !blame {
        return Vec::new(); // our disk failed: nobody to judge
    }
    let unknown: Culprit = (IpAddr::from([0, 0, 0, 0]), [0; 20]);
    let have_fingerprints = fingerprints.is_some();
    let fps = fingerprints.unwrap_or_default();
    let blocks: Vec<(Culprit, u64)> = block_senders
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let who = st
                .peers
                .get(k)
                .map_or(unknown, |p| culprit_of(p.addr, p.peer_id));
            (who, fps.get(i).copied().unwrap_or(0))
        })
        .collect();
    let connected = st.peers.len();
    st.bad_data
        .judge_piece(piece, passed, &blocks, have_fingerprints, connected)
}

/// Carries out a culprit search verdict: close the culprit's connections; a ban also refuses it from now on.
fn punish(st: &mut TorrentState, culprit: Culprit, action: BadVerdict) {
    let keys: Vec<PeerKey> = st
        .peers
        .iter()
        .filter(|(_, p)| !p.closing && culprit_of(p.addr, p.peer_id) == culprit)
        .map(|(&k, _)| k)
        .collect();
    if action == BadVerdict::Ban {
        let (ip, id) = culprit;
        if ip.is_loopback() {
            ban(&mut st.banned_ids, id);
        } else if !ip.is_unspecified() {
            ban(&mut st.banned_ips, ip);
        }
    }
    if !keys.is_empty() {
        st.bad_peers_closed += 1;
    }
    for k in keys {
        if action == BadVerdict::Ban {
            if let Some(p) = st.peers.get(&k) {
                ban(&mut st.banned_addrs, p.addr);
            }
        }
        Torrent::close_peer(st, k);
    }
}

/// Adds `item` to one of the torrent's ban lists unless that list already holds [`MAX_BANNED`] entries (each list
/// is bounded on its own; the peer is closed either way).
fn ban<T: Eq + std::hash::Hash>(list: &mut HashSet<T>, item: T) {
    if list.len() < MAX_BANNED {
        list.insert(item);
    }
}

/// Sends INTERESTED / NOT_INTERESTED when our interest in the peer flips.
pub(super) fn update_interest(st: &mut TorrentState, key: PeerKey) {
    let want = st.requester.is_interesting(key);
    if let Some(p) = st.peers.get_mut(&key) {
        if want != p.am_interested {
            p.am_interested = want;
            p.send(if want {
                &Message::Interested
            } else {
                &Message::NotInterested
            });
        }
    }
}

/// Tops up the peer's request pipeline, within the torrent's and the session's download limits (BitTornado
/// `queue_limit`: the pipeline is sized by the tokens held, and every request sent is charged).
pub(super) fn fill_peer(st: &mut TorrentState, key: PeerKey, now: Instant) {
    let Some(p) = st.peers.get_mut(&key) else {
        return;
    };
    if p.closing || !p.am_interested || p.out.len() > MAX_OUTGOING_BYTES / 2 {
        return;
    }
    let queue_limit = st
        .limits
        .download_allowance(now)
        .map(|bytes| bytes / u64::from(crate::piece_map::BLOCK_SIZE));
    let depth = pipeline_depth(p.down_rate.rate(now), p.just_unchoked, queue_limit);
    p.just_unchoked = false;
    // Top up in batches: once the queue is three quarters full, wait until a quarter has arrived. One fill per
    // block (a picker pass and a REQUEST each) was 8 % of a fast download's CPU; a batch is one pass and one write.
    let outstanding = st.requester.outstanding_count(key);
    if outstanding > 0 && outstanding >= depth - depth / 4 {
        return;
    }
    let reqs: Vec<BlockRequest> = st.requester.fill(key, depth);
    if queue_limit.is_some() {
        let bytes = reqs.iter().map(|r| u64::from(r.length)).sum();
        st.limits.charge_download(now, bytes);
    }
    for r in reqs {
        p.send(&Message::Request(r));
    }
}
