//! A shard's main task: its torrents, its listener, and the handshake hand-off between shards.
//!
//! Any shard may accept a connection (the kernel spreads them over the `SO_REUSEPORT` listeners). The accepting
//! shard reads the 48-byte handshake head (within the 30 s handshake timeout), finds the owner of the info-hash with
//! `shard_for_key` and hands the socket over: to itself directly, to another shard through the mesh (the fd plus the
//! bytes already read). The owner accepts it only if it runs that torrent; otherwise the socket is closed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cyclone_shard::{shard_for_key, ShardContext};
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use super::torrent::Torrent;
use super::{Handoff, ShardInput};
use crate::connection_timers::HANDSHAKE_TIMEOUT;
use crate::wire::{HandshakeHead, HANDSHAKE_HEAD_LEN};

/// Connections accepted but not yet handed to their torrent's shard, per shard.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// The torrents a shard runs, by info-hash.
type Torrents = Rc<RefCell<HashMap<[u8; 20], Rc<Torrent>>>>;

pub(super) async fn shard_main(ctx: ShardContext, input: ShardInput) {
    let ShardInput {
        listener,
        mesh,
        torrents: configs,
        shared,
    } = input;
    let torrents: Torrents = Rc::new(RefCell::new(HashMap::new()));
    let pool = crate::storage::FilePool::new(shared.config.max_files_open);
    let memory = super::assembly::PieceMemory::new(shared.config.piece_memory);
    let stop = super::stop_signal::StopSignal::watch(shared.clone());
    let limits =
        super::limits::ShardLimits::new(shared.upload_limit.clone(), shared.download_limit.clone());
    let handler_torrents = torrents.clone();
    let handler: cyclone_shard::mesh::Handler<Handoff, bool> =
        Rc::new(move |h: Handoff| accept_handoff(&handler_torrents, h));
    let router = Rc::new(mesh.connect(handler).await);

    let mut mains = Vec::new();
    for config in configs {
        match Torrent::new(
            config,
            shared.clone(),
            pool.clone(),
            memory.clone(),
            stop.clone(),
            limits.clone(),
        ) {
            Ok(t) => {
                let t = Rc::new(t);
                torrents.borrow_mut().insert(t.info_hash, t.clone());
                mains.push(glommio::spawn_local(Torrent::run(t)));
            }
            Err(status) => {
                let _ = shared.status_tx.try_send(*status);
            }
        }
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

    for m in mains {
        m.await;
    }
    // This shard's torrents have ended; keep accepting (and handing off) until the session stops.
    acceptor.await;
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
