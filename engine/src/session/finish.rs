//! Completed pieces on their way to "have": hashed, written, then announced, by one task per torrent.
//!
//! Why a queue and a task: the connection readers must not wait for hashing or disk writes (a reader that waits
//! stops reading its socket, and the sender's window closes). They push the completed piece here and go on; the
//! finisher takes up to four pieces at a time, hashes the in-memory ones in lock-step with the multi-lane SHA-NI
//! engine (`digest_batch`, ~2.4x one stream), writes each good one with a single piece-sized write, and only then
//! marks it had (a HAVE must never announce data that is not on disk yet).
//!
//! Writes are not awaited by the finisher: it goes on hashing the next pieces while earlier ones are on their way
//! to the disk (an O_DIRECT write of a piece takes about a millisecond here; waiting for it before hashing the next
//! batch capped the download at the disk's latency, not its bandwidth).
//!
//! Bounds: at most [`MAX_FINISHING_BYTES`] of pieces (at least one piece) are queued, being hashed or being
//! written per torrent; a reader that completes a piece beyond that waits, which is the back-pressure that bounds
//! memory between the network and the disk.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::{Semaphore, StaticPermit};

use super::assembly::PieceBuffer;
use super::torrent::Torrent;
use crate::storage::verify::digest_batch;

/// Bytes of pieces queued or being finished per torrent, at most (rounded to [`SLOT_BYTES`]; a larger piece
/// takes every slot, so one piece always fits).
pub(super) const MAX_FINISHING_BYTES: u64 = 64 << 20;

/// Granularity of the finishing budget.
const SLOT_BYTES: u64 = 64 << 10;

/// Slots in the finishing budget.
const SLOTS: u64 = MAX_FINISHING_BYTES / SLOT_BYTES;

/// Pieces hashed together (the SHA-NI engine's lane count).
const BATCH: usize = 4;

/// A piece whose blocks are all in.
pub(super) enum Completed {
    /// Assembled in memory: hash it, then write it.
    InMemory(u32, PieceBuffer),
    /// Written block by block: verify it from disk.
    OnDisk(u32),
}

impl Completed {
    fn piece(&self) -> u32 {
        match self {
            Completed::InMemory(p, _) | Completed::OnDisk(p) => *p,
        }
    }
}

/// The torrent's queue of completed pieces.
pub(super) struct FinishQueue {
    queue: RefCell<VecDeque<(Completed, StaticPermit)>>,
    slots: Rc<Semaphore>,
    wake_tx: LocalSender<()>,
    wake_rx: LocalReceiver<()>,
}

impl FinishQueue {
    pub fn new() -> FinishQueue {
        let (wake_tx, wake_rx) = local_channel::new_bounded(1);
        FinishQueue {
            queue: RefCell::new(VecDeque::new()),
            slots: Rc::new(Semaphore::new(SLOTS)),
            wake_tx,
            wake_rx,
        }
    }

    /// Queues a completed piece of `size` bytes; waits while [`MAX_FINISHING_BYTES`] are queued or being finished.
    pub async fn push(&self, completed: Completed, size: u32) {
        let units = u64::from(size).div_ceil(SLOT_BYTES).clamp(1, SLOTS);
        let Ok(permit) = self.slots.acquire_static_permit(units).await else {
            // Closed: the torrent has stopped and nobody will finish the piece.
            return;
        };
        self.queue.borrow_mut().push_back((completed, permit));
        let _ = self.wake_tx.try_send(());
    }

    /// After the finisher has ended: waits for the writes still in flight (each holds its slots until it is
    /// applied), then closes the queue, so a reader still waiting for a slot gives up instead of waiting forever.
    pub async fn close(&self) {
        let _ = self.slots.acquire(SLOTS).await;
        self.slots.close();
    }

    /// Wakes the finisher (e.g. to notice that the torrent stops).
    pub fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    fn take_batch(&self) -> Vec<(Completed, StaticPermit)> {
        let mut q = self.queue.borrow_mut();
        let n = q.len().min(BATCH);
        q.drain(..n).collect()
    }
}

/// The finisher: runs until the torrent stops and its queue is empty.
pub(super) async fn run(torrent: Rc<Torrent>) {
    loop {
        let batch = torrent.finish.take_batch();
        if batch.is_empty() {
            if torrent.stopping() {
                return;
            }
            futures_lite::future::or(
                async {
                    torrent.finish.wake_rx.recv().await;
                },
                glommio::timer::sleep(Duration::from_millis(250)),
            )
            .await;
            continue;
        }
        finish_batch(&torrent, batch).await;
        glommio::yield_if_needed().await;
    }
}

/// Hashes the in-memory pieces of `batch` together and starts the writes of the good ones (each applies its verdict
/// when written), verifies the on-disk ones, applies the other verdicts. Permits are released as each piece is done.
async fn finish_batch(torrent: &Rc<Torrent>, batch: Vec<(Completed, StaticPermit)>) {
    let in_memory: Vec<&[u8]> = batch
        .iter()
        .filter_map(|(c, _)| match c {
            Completed::InMemory(_, buf) => Some(buf.as_slice()),
            Completed::OnDisk(_) => None,
        })
        .collect();
    let mut digests = digest_batch(&in_memory).into_iter();
    for (completed, permit) in batch {
        let piece = completed.piece();
        match completed {
            Completed::InMemory(_, buf) => {
                let digest = digests.next().expect("one digest per in-memory piece");
                if digest != torrent.hashes[piece as usize] {
                    let fingerprints = block_fingerprints(buf.as_slice());
                    drop(buf);
                    torrent
                        .apply_verdict(piece, Verdict::BadData, Some(fingerprints))
                        .await;
                    continue;
                }
                // Fingerprints of a good piece only when an earlier bad download of it had several senders.
                let fingerprints = torrent
                    .st
                    .borrow()
                    .bad_data
                    .is_suspect(piece)
                    .then(|| block_fingerprints(buf.as_slice()));
                let t = torrent.clone();
                // Not awaited: the permit it holds bounds the writes in flight, and `close` waits for them.
                glommio::spawn_local(async move {
                    let verdict = match t.storage.write_piece(piece, buf.as_slice()).await {
                        Ok(()) => Verdict::Good,
                        Err(e) => {
                            // BitTornado stops the torrent on a failed write; so do we.
                            t.st.borrow_mut().error = Some(e.to_string());
                            Verdict::DiskError(e.to_string())
                        }
                    };
                    drop(buf);
                    t.apply_verdict(piece, verdict, fingerprints).await;
                    drop(permit);
                })
                .detach();
            }
            Completed::OnDisk(_) => {
                let verdict = match torrent
                    .storage
                    .verify_piece(piece, &torrent.hashes[piece as usize])
                    .await
                {
                    Ok(true) => Verdict::Good,
                    Ok(false) => Verdict::BadData,
                    Err(e) => Verdict::DiskError(e.to_string()),
                };
                torrent.apply_verdict(piece, verdict, None).await;
                drop(permit);
            }
        }
    }
}

/// A fingerprint of each 16 KiB block of `data` (the first 8 bytes of its SHA-1): enough to tell whether two
/// downloads of a block carried the same bytes, without keeping the bad data (BitTornado compared the bytes).
fn block_fingerprints(data: &[u8]) -> Vec<u64> {
    use sha1::{Digest, Sha1};
    data.chunks(crate::piece_map::BLOCK_SIZE as usize)
        .map(|block| {
            let d = Sha1::digest(block);
            u64::from_le_bytes(d[..8].try_into().expect("SHA-1 has 20 bytes"))
        })
        .collect()
}

/// What became of a completed piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Hash matches and the data is on disk: the piece is had.
    Good,
    /// Hash mismatch: re-download and blame the senders.
    BadData,
    /// Our disk failed (a write, or reading the piece back): not had, peers not blamed. A failed write also fails
    /// the torrent (set where the write failed).
    DiskError(String),
}
