//! One peer connection on the torrent's shard: the handshake (both directions), then a reader task that feeds the
//! `MessageDecoder` and applies each message to the torrent, and a writer task that drains the connection's outgoing
//! buffer and serves the upload queue within the upload rate limit.
//!
//! The socket is duplicated so reader and writer each own a glommio stream on the same connection; closing is a
//! `shutdown(2)` that ends both. The reader alone removes the peer from the torrent, so the peer's fd stays valid
//! for `shutdown` while the peer is in the torrent's map.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::assembly::Placement;
use super::finish::Completed;
use super::torrent::{
    fill_peer, rechoke, update_interest, PeerKey, Torrent, TorrentState, MAX_OUTGOING_BYTES,
};
use crate::connection_timers::HANDSHAKE_TIMEOUT;
use crate::upload::RequestOutcome;
use crate::wire::{
    encode_piece_header, BlockRequest, Handshake, HandshakeHead, Message, MessageDecoder, Reserved,
    WireLimits, HANDSHAKE_LEN,
};

/// Time allowed for an outgoing TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A write that does not complete in this time closes the connection (the peer is not reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of bytes written per socket write (one upload block plus queued control messages).
const WRITE_BATCH: usize = 256 << 10;

/// A connection accepted (possibly on another shard) whose handshake head is read.
pub(super) async fn incoming(torrent: Rc<Torrent>, mut stream: TcpStream, head: HandshakeHead) {
    let addr = match stream.peer_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let mut peer_id = [0u8; 20];
    let ok = glommio::timer::timeout(HANDSHAKE_TIMEOUT, async {
        stream.read_exact(&mut peer_id).await?;
        stream.write_all(&our_handshake(&torrent)).await?;
        Ok(())
    })
    .await;
    if ok.is_err() || peer_id == torrent.shared.config.peer_id {
        return;
    }
    let fast = Reserved::CYCLONE.negotiate(head.reserved).fast;
    if torrent.st.borrow().addrs.contains(&addr) {
        return;
    }
    run(torrent, stream, addr, peer_id, head.reserved, fast).await;
}

/// Dials `addr` (already counted in the half-open limit and the torrent's address set).
pub(super) async fn outgoing(torrent: Rc<Torrent>, addr: SocketAddr) {
    let connected = glommio::timer::timeout(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT, async {
        let mut s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await?;
        s.write_all(&our_handshake(&torrent)).await?;
        let mut buf = [0u8; HANDSHAKE_LEN];
        s.read_exact(&mut buf).await?;
        Ok((s, buf))
    })
    .await;
    torrent.st.borrow_mut().half_open.release();
    if let Err(e) = &connected {
        super::debug(format_args!("dial {addr}: {e}"));
    }
    let hs = connected
        .ok()
        .and_then(|(s, buf)| Handshake::decode(&buf).ok().map(|h| (s, h)));
    match hs {
        Some((s, h))
            if h.info_hash == torrent.info_hash && h.peer_id != torrent.shared.config.peer_id =>
        {
            // `run` re-inserts the address when the peer registers.
            torrent.st.borrow_mut().addrs.remove(&addr);
            let fast = Reserved::CYCLONE.negotiate(h.reserved).fast;
            run(torrent.clone(), s, addr, h.peer_id, h.reserved, fast).await;
        }
        _ => {
            torrent.st.borrow_mut().addrs.remove(&addr);
        }
    }
    torrent.dial_more();
}

fn our_handshake(torrent: &Torrent) -> [u8; HANDSHAKE_LEN] {
    Handshake {
        reserved: Reserved::CYCLONE,
        info_hash: torrent.info_hash,
        peer_id: torrent.shared.config.peer_id,
    }
    .encode()
}

/// The connection after the handshake: register, then read until it closes.
async fn run(
    torrent: Rc<Torrent>,
    stream: TcpStream,
    addr: SocketAddr,
    peer_id: [u8; 20],
    reserved: Reserved,
    fast: bool,
) {
    let _ = stream.set_nodelay(true);
    // SAFETY: the fd belongs to `stream`, alive for this expression; try_clone_to_owned dups it into a new fd.
    let dup = match unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned() {
        Ok(fd) => fd,
        Err(_) => return,
    };
    // SAFETY: `dup` is an fd we own and give up here; the writer stream becomes its only owner.
    let writer_stream = unsafe { TcpStream::from_raw_fd(dup.into_raw_fd()) };
    let (wake_tx, wake_rx) = glommio::channels::local_channel::new_bounded(1);
    let ext = Reserved::CYCLONE.negotiate(reserved);
    let Some(key) = torrent.add_peer(
        addr,
        peer_id,
        fast,
        ext.extended,
        stream.as_raw_fd(),
        wake_tx,
    ) else {
        return;
    };
    let writer = glommio::spawn_local(write_loop(torrent.clone(), key, writer_stream, wake_rx));
    let config = &torrent.shared.config;
    let limits = WireLimits {
        max_message_length: config.max_message_length,
        // `--max_slice_length` caps the requests we serve; the blocks we receive are never longer than the
        // BLOCK_SIZE we request, so the cap never refuses an honest reply.
        max_block_length: config.max_slice_length.max(crate::piece_map::BLOCK_SIZE),
        ..WireLimits::default()
    };
    let mut decoder = MessageDecoder::new(torrent.map.piece_count(), ext, limits);
    decoder.allow_late_bitfield(true);
    if let Err(e) = read_loop(&torrent, key, stream, decoder).await {
        super::debug(format_args!("peer {addr}: {e}"));
    }
    {
        let mut st = torrent.st.borrow_mut();
        Torrent::close_peer(&mut st, key);
    }
    torrent.remove_peer(key);
    writer.await;
}

/// What the reader must do after a message.
enum Follow {
    None,
    /// An accepted block: `write` holds its bytes when the piece is on the disk path (otherwise they are already
    /// in the piece's buffer); `complete` when it was the piece's last block.
    Block {
        req: BlockRequest,
        write: Option<Vec<u8>>,
        complete: Option<u32>,
    },
}

async fn read_loop(
    torrent: &Rc<Torrent>,
    key: PeerKey,
    mut stream: TcpStream,
    mut decoder: MessageDecoder,
) -> Result<(), String> {
    loop {
        if decoder.room() == 0 {
            return Err("decoder full".into());
        }
        let n = stream
            .read(decoder.read_buf())
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        decoder.commit(n);
        let now = Instant::now();
        if let Some(p) = torrent.st.borrow_mut().peers.get_mut(&key) {
            p.timers.received(now);
            if p.closing {
                return Ok(());
            }
        }
        loop {
            let follow = {
                let msg = match decoder.next_message() {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => return Err(e.to_string()),
                };
                let mut st = torrent.st.borrow_mut();
                handle(torrent, &mut st, key, msg, now)?
            };
            if let Follow::Block {
                req,
                write,
                complete,
            } = follow
            {
                let ready = match write {
                    Some(data) => {
                        if let Err(e) = torrent
                            .storage
                            .write_block(req.piece, req.begin, data)
                            .await
                        {
                            torrent.st.borrow_mut().error = Some(e.to_string());
                            return Err(e.to_string());
                        }
                        let ready = torrent
                            .st
                            .borrow_mut()
                            .assembly
                            .disk_write_done(req.piece, complete.is_some());
                        ready.then_some(Completed::OnDisk(req.piece))
                    }
                    None => {
                        complete.map(|piece| match torrent.st.borrow_mut().assembly.take(piece) {
                            Some(buf) => Completed::InMemory(piece, buf),
                            None => Completed::OnDisk(piece),
                        })
                    }
                };
                if let Some(c) = ready {
                    let size = torrent.map.piece_size(req.piece);
                    torrent.finish.push(c, size).await;
                }
            }
        }
    }
}

/// Applies one message to the torrent. An error closes the connection.
fn handle(
    torrent: &Torrent,
    st: &mut TorrentState,
    key: PeerKey,
    msg: Message<'_>,
    now: Instant,
) -> Result<Follow, String> {
    let Some(p) = st.peers.get_mut(&key) else {
        return Err("peer gone".into());
    };
    match msg {
        Message::KeepAlive | Message::Port(_) | Message::Suggest(_) | Message::Extended(_) => {}
        Message::Choke => {
            p.peer_choking = true;
            st.requester.peer_choked(key);
        }
        Message::Unchoke => {
            p.peer_choking = false;
            p.just_unchoked = true;
            p.last_activity = now;
            st.requester.peer_unchoked(key);
            fill_peer(st, key, now);
        }
        Message::Interested => {
            p.peer_interested = true;
            // Interest changes are rare: rechoke at once, as on any other change of the connections.
            rechoke(
                st,
                st.wanted_missing == 0,
                now,
                torrent.shared.config.snub_time,
            );
        }
        Message::NotInterested => {
            p.peer_interested = false;
            // Interest changes are rare: rechoke at once, as on any other change of the connections.
            rechoke(
                st,
                st.wanted_missing == 0,
                now,
                torrent.shared.config.snub_time,
            );
        }
        Message::Have(piece) => {
            st.requester.peer_have(key, piece);
            update_interest(st, key);
            fill_peer(st, key, now);
        }
        Message::Bitfield(bf) => {
            // A repeated bitfield (aria2) may only add pieces.
            if let Some(known) = st.requester.peer_has(key) {
                if known.iter_ones().any(|p| !bf.get(p)) {
                    return Err("a later bitfield drops pieces".into());
                }
            }
            st.requester
                .peer_bitfield(key, bf)
                .map_err(|e| e.to_string())?;
            refuse_seed_to_seed(st, key)?;
            update_interest(st, key);
            fill_peer(st, key, now);
        }
        Message::HaveAll => {
            st.requester.peer_have_all(key);
            refuse_seed_to_seed(st, key)?;
            update_interest(st, key);
            fill_peer(st, key, now);
        }
        Message::HaveNone => {}
        Message::AllowedFast(piece) => {
            st.requester.peer_allowed_fast(key, piece);
            fill_peer(st, key, now);
        }
        Message::Request(r) => {
            let outcome = p
                .upload
                .got_request(r, p.peer_interested, p.am_choking, &torrent.map, &st.have)
                .map_err(|e| e.to_string())?;
            match outcome {
                RequestOutcome::Reject => p.send(&Message::Reject(r)),
                RequestOutcome::Queued => {
                    let _ = p.wake.try_send(());
                }
                RequestOutcome::Ignored => {}
            }
        }
        Message::Cancel(r) => {
            if let Some(rej) = p.upload.got_cancel(&r) {
                p.send(&Message::Reject(rej));
            }
        }
        Message::Reject(r) => {
            st.requester.peer_rejected(key, &r);
            fill_peer(st, key, now);
        }
        Message::Piece(b) => {
            let len = b.data.len() as u64;
            p.down_rate.update(now, len);
            p.last_activity = now;
            st.down_rate.update(now, len);
            st.downloaded += len;
            let req = b.request();
            let outcome = st.requester.block_received(key, &req);
            for (other, c) in outcome.cancels {
                if let Some(o) = st.peers.get_mut(&other) {
                    o.send(&Message::Cancel(c));
                }
            }
            fill_peer(st, key, now);
            if outcome.accepted {
                let size = torrent.map.piece_size(req.piece);
                let placement = st.assembly.place(req.piece, size, req.begin, b.data);
                return Ok(Follow::Block {
                    req,
                    write: (placement == Placement::Disk).then(|| b.data.to_vec()),
                    complete: outcome.piece_complete,
                });
            }
        }
    }
    Ok(Follow::None)
}

/// Two seeds have nothing to exchange: close (BitTornado does the same).
fn refuse_seed_to_seed(st: &TorrentState, key: PeerKey) -> Result<(), String> {
    if st.have.is_complete() && st.requester.is_seed(key) {
        return Err("seed to seed connection".into());
    }
    Ok(())
}

/// Drains the outgoing buffer and serves queued upload requests until the peer is gone.
async fn write_loop(
    torrent: Rc<Torrent>,
    key: PeerKey,
    mut stream: TcpStream,
    wake: glommio::channels::local_channel::LocalReceiver<()>,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.clear();
        let (uploads, retry_in) = {
            let now = Instant::now();
            let mut guard = torrent.st.borrow_mut();
            let st = &mut *guard;
            let Some(p) = st.peers.get_mut(&key) else {
                break;
            };
            if p.closing {
                break;
            }
            if p.out.len() > MAX_OUTGOING_BYTES {
                Torrent::close_peer(st, key);
                break;
            }
            std::mem::swap(&mut buf, &mut p.out);
            let mut uploads = Vec::new();
            let mut retry_in = None;
            let mut batch = buf.len() as u64;
            // Several blocks per write, within the batch size and the upload rate limit.
            while batch < WRITE_BATCH as u64 && !p.upload.is_empty() {
                let len = p.upload_front_len();
                // Both the torrent's limit and the session-wide one (see `limits.rs`).
                if let Err(wait) = st.limits.take_upload(now, len) {
                    retry_in = Some(wait.max(Duration::from_millis(5)));
                    break;
                }
                if let Some(r) = p.upload.pop() {
                    uploads.push(r);
                }
                batch += len + 13;
            }
            (uploads, retry_in)
        };
        let mut failed = false;
        for r in uploads {
            buf.extend_from_slice(&encode_piece_header(r.piece, r.begin, r.length));
            if let Err(e) = torrent
                .storage
                .read_into(r.piece, r.begin, r.length, &mut buf)
                .await
            {
                // BitTornado: data we claimed is gone ("told file complete on start-up, but data is missing").
                torrent.st.borrow_mut().error = Some(e.to_string());
                failed = true;
                break;
            }
            let now = Instant::now();
            let mut st = torrent.st.borrow_mut();
            let len = u64::from(r.length);
            st.uploaded += len;
            st.up_rate.update(now, len);
            if let Some(p) = st.peers.get_mut(&key) {
                p.up_rate.update(now, len);
            }
        }
        if failed {
            break;
        }
        if buf.is_empty() {
            let wait = retry_in.unwrap_or(Duration::from_secs(1));
            futures_lite::future::or(
                async {
                    wake.recv().await;
                },
                glommio::timer::sleep(wait),
            )
            .await;
            continue;
        }
        // A peer that stops reading is closed after WRITE_TIMEOUT instead of pinning the writer forever.
        let written = glommio::timer::timeout(WRITE_TIMEOUT, async {
            stream
                .write_all(&buf)
                .await
                .map_err(glommio::GlommioError::from)
        })
        .await;
        if written.is_err() {
            let mut st = torrent.st.borrow_mut();
            Torrent::close_peer(&mut st, key);
            break;
        }
        if let Some(p) = torrent.st.borrow_mut().peers.get_mut(&key) {
            p.timers.sent(Instant::now());
        }
        if buf.capacity() > 2 * WRITE_BATCH {
            buf = Vec::new();
        }
    }
    let _ = stream.close().await;
}

impl super::torrent::PeerConn {
    /// Length of the next queued upload request (0 if none).
    fn upload_front_len(&self) -> u64 {
        self.upload.front().map_or(0, |r| u64::from(r.length))
    }
}
