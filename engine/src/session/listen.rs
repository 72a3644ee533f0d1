//! A shard's main task: its torrents, its listener, and the handshake hand-off between shards.
//!
//! Any shard may accept a connection (the kernel spreads them over the `SO_REUSEPORT` listeners). The accepting
//! shard reads the 48-byte handshake head (within the 30 s handshake timeout), finds the owner of the info-hash with
//! `shard_for_key` and hands the socket over: to itself directly, to another shard through the mesh (the fd plus the
//! bytes already read). The owner accepts it only if it runs that torrent; otherwise the socket is closed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cyclone_shard::{shard_for_key, ShardContext};
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use super::stop_signal::StopSignal;
use super::torrent::Torrent;
use super::{Handoff, ShardCommand, ShardInput, Shared, TorrentConfig};
use crate::connection_timers::HANDSHAKE_TIMEOUT;
use crate::wire::{HandshakeHead, HANDSHAKE_HEAD_LEN};

/// Connections accepted but not yet handed to their torrent's shard, per shard.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// The torrents a shard runs, by info-hash.
type Torrents = Rc<RefCell<HashMap<[u8; 20], Rc<Torrent>>>>;

/// What a shard's torrents share: its open-file pool, piece memory, stop signal, rate shares and check permit.
pub(super) struct ShardResources {
    pub pool: Rc<crate::storage::FilePool>,
    pub memory: Rc<super::assembly::PieceMemory>,
    pub stop: StopSignal,
    pub limits: Rc<super::limits::ShardLimits>,
    /// One start-up check at a time on this shard.
    pub check_lock: Rc<glommio::sync::Semaphore>,
}

/// A shard's torrents and how to start one.
struct ShardTorrents {
    map: Torrents,
    shared: Arc<Shared>,
    res: ShardResources,
    /// Torrent tasks not yet ended (the shard waits for them before it returns).
    live: Cell<usize>,
}

impl ShardTorrents {
    /// Builds `config`'s torrent and runs it. A torrent with the same info-hash still shutting down (removed, then
    /// added again: a changed .torrent file) is waited for first, so two instances never touch the same files; one
    /// still running makes this a duplicate, reported as a failed status.
    fn launch(self: &Rc<Self>, config: TorrentConfig) {
        let torrent = match Torrent::new(config, self.shared.clone(), &self.res) {
            Ok(t) => Rc::new(t),
            Err(status) => {
                let _ = self.shared.status_tx.try_send(*status);
                return;
            }
        };
        let hash = torrent.info_hash;
        let previous = self.map.borrow_mut().insert(hash, torrent.clone());
        if let Some(prev) = &previous {
            if !prev.stop.is_fired() {
                self.map.borrow_mut().insert(hash, prev.clone());
                torrent.fail("a torrent with this info-hash is already running".into());
                torrent.report();
                return;
            }
        }
        self.live.set(self.live.get() + 1);
        let me = self.clone();
        glommio::spawn_local(async move {
            if let Some(prev) = previous {
                prev.ended.wait().await;
            }
            if torrent.stopping() {
                // Removed (or the session stopped) before it started: nothing to shut down.
                torrent.mark_stopped();
                torrent.report();
            } else {
                Torrent::run(torrent.clone()).await;
            }
            torrent.ended.fire();
            let mut map = me.map.borrow_mut();
            if map.get(&hash).is_some_and(|t| Rc::ptr_eq(t, &torrent)) {
                map.remove(&hash);
            }
            me.live.set(me.live.get() - 1);
        })
        .detach();
    }

    /// Stops the torrent as at shutdown (close connections, announce `stopped`, final resume write, a Stopped
    /// status); it leaves the map when that is done. Unknown (already ended) info-hashes are ignored.
    fn remove(&self, hash: &[u8; 20]) {
        if let Some(t) = self.map.borrow().get(hash) {
            t.stop.fire();
        }
    }

    fn apply(self: &Rc<Self>, command: ShardCommand) {
        match command {
            ShardCommand::Add(config) => self.launch(*config),
            ShardCommand::Remove(hash) => self.remove(&hash),
        }
    }
}

pub(super) async fn shard_main(ctx: ShardContext, input: ShardInput) {
    let ShardInput {
        listener,
        mesh,
        torrents: configs,
        commands,
        shared,
    } = input;
    let torrents: Torrents = Rc::new(RefCell::new(HashMap::new()));
    // Filled in below, once the stop signal (whose watcher task drains the commands) exists.
    let slot: Rc<RefCell<Option<Rc<ShardTorrents>>>> = Rc::new(RefCell::new(None));
    let poll_slot = slot.clone();
    let stop = StopSignal::watch(shared.clone(), move || {
        let Some(shard) = poll_slot.borrow().clone() else {
            return;
        };
        // Bounded: the channel holds at most COMMAND_CHANNEL_CAPACITY commands.
        while let Ok(command) = commands.try_recv() {
            shard.apply(command);
        }
    });
    let shard = Rc::new(ShardTorrents {
        map: torrents.clone(),
        shared: shared.clone(),
        res: ShardResources {
            pool: crate::storage::FilePool::new(shared.config.max_files_open),
            memory: super::assembly::PieceMemory::new(shared.config.piece_memory),
            stop: stop.clone(),
            limits: super::limits::ShardLimits::new(
                shared.upload_limit.clone(),
                shared.download_limit.clone(),
            ),
            check_lock: Rc::new(glommio::sync::Semaphore::new(1)),
        },
        live: Cell::new(0),
    });
    *slot.borrow_mut() = Some(shard.clone());
    let handler_torrents = torrents.clone();
    let handler: cyclone_shard::mesh::Handler<Handoff, bool> =
        Rc::new(move |h: Handoff| accept_handoff(&handler_torrents, h));
    let router = Rc::new(mesh.connect(handler).await);

    for config in configs {
        shard.launch(config);
    }

    let listener = cyclone_shard::listener::into_glommio(listener);
    let accept_torrents = torrents.clone();
    let pending = Rc::new(std::cell::Cell::new(0usize));
    let shards = ctx.shards;
    let accept_shared = shared.clone();
    let acceptor = glommio::spawn_local(async move {
        while !accept_shared.stop.load(Ordering::Relaxed) {
            let accepted =
                futures_lite::future::or(async { Some(listener.accept().await) }, async {
                    stop.wait().await;
                    None
                })
                .await;
            let stream = match accepted {
                None => break,
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    log::debug!("accept: {e}");
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if pending.get() >= MAX_PENDING_HANDSHAKES {
                continue; // dropped: closed
            }
            pending.set(pending.get() + 1);
            let pending = pending.clone();
            let router = router.clone();
            let torrents = accept_torrents.clone();
            glommio::spawn_local(async move {
                // `pending` counts the connection until it is handed over, so a flood waiting on the mesh cannot
                // pile up sockets beyond the bound.
                let got = read_head(stream).await;
                let Some((fd, head_bytes, head)) = got else {
                    pending.set(pending.get() - 1);
                    return;
                };
                let owner = shard_for_key(&head.info_hash, shards);
                let handoff = Handoff {
                    fd,
                    head: head_bytes,
                };
                if owner == router.shard() {
                    accept_handoff(&torrents, handoff);
                } else if let Err(e) = router.call(owner, handoff).await {
                    log::debug!("hand-off to shard {owner} failed: {e}");
                }
                pending.set(pending.get() - 1);
            })
            .detach();
        }
    });

    // Accept (and hand off) until the session stops; then wait for the torrents' shutdowns (each is bounded: the
    // tracker's `stopped` timeout, the peer tasks' grace period, the final resume write).
    acceptor.await;
    while shard.live.get() > 0 {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // The watcher's closure held the shard: break the cycle.
    *slot.borrow_mut() = None;
    // The executor ends when this returns. A job still running on its blocking pool (a file creation or stat left
    // by a task that is winding down) would then find no one to answer and glommio's blocking thread panics
    // ("failed to send response"). The pool has one thread and runs jobs in order, so once this no-op job has run,
    // every job submitted before it has finished.
    glommio::executor().spawn_blocking(|| ()).await;
}

/// Reads the handshake head of a freshly accepted connection and detaches its fd from glommio.
async fn read_head(
    mut stream: TcpStream,
) -> Option<(OwnedFd, [u8; HANDSHAKE_HEAD_LEN], HandshakeHead)> {
    let mut head = [0u8; HANDSHAKE_HEAD_LEN];
    let read = glommio::timer::timeout(HANDSHAKE_TIMEOUT, async {
        stream
            .read_exact(&mut head)
            .await
            .map_err(glommio::GlommioError::from)
    })
    .await;
    if read.is_err() {
        return None;
    }
    let decoded = HandshakeHead::decode(&head).ok()?;
    // SAFETY: the fd belongs to `stream`, which is alive for this whole expression; we duplicate it into an fd we
    // own and then drop `stream`, closing only its own copy.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }
        .try_clone_to_owned()
        .ok()?;
    drop(stream);
    Some((fd, head, decoded))
}

/// Runs on the owning shard: starts the connection if we run the torrent. Returns whether it was taken.
fn accept_handoff(torrents: &Torrents, handoff: Handoff) -> bool {
    let head = match HandshakeHead::decode(&handoff.head) {
        Ok(h) => h,
        Err(_) => return false,
    };
    let Some(torrent) = torrents.borrow().get(&head.info_hash).cloned() else {
        return false; // unknown info-hash: the fd is dropped, closing the socket
    };
    if !torrent.accepts_connections() {
        return false;
    }
    let raw = handoff.fd.into_raw_fd();
    // SAFETY: `raw` comes from an OwnedFd we just gave up, so the new glommio stream is its only owner.
    let stream = unsafe { TcpStream::from_raw_fd(raw) };
    glommio::spawn_local(super::peer::incoming(torrent, stream, head)).detach();
    true
}
