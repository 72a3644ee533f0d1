//! Completed pieces on their way to "have": hashed, written, then announced, by one task per torrent.
//!
//! Why a queue and a task: the connection readers must not wait for hashing or disk writes (a reader that waits
//! stops reading its socket, and the sender's window closes). They push the completed piece here and go on; the
//! finisher takes up to four pieces at a time, hashes the in-memory ones in lock-step with the multi-lane SHA-NI
//! engine (`digest_batch`, ~2.4x one stream), writes each good one with a single piece-sized write, and only then
//! marks it had (a HAVE must never announce data that is not on disk yet).
//!
//! Bounds: at most [`MAX_FINISHING`] pieces are queued or being finished per torrent; a reader that completes a
//! piece beyond that waits for a slot, which is the back-pressure that bounds memory between the network and the
//! disk.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::{Semaphore, StaticPermit};

use super::assembly::PieceBuffer;
use super::torrent::Torrent;
use crate::storage::verify::digest_batch;

/// Pieces queued or being finished per torrent, at most.
pub(super) const MAX_FINISHING: u64 = 16;

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
            slots: Rc::new(Semaphore::new(MAX_FINISHING)),
            wake_tx,
            wake_rx,
        }
    }

    /// Queues a completed piece; waits while [`MAX_FINISHING`] pieces are in the queue or being finished.
    pub async fn push(&self, completed: Completed) {
        let Ok(permit) = self.slots.acquire_static_permit(1).await else {
            // Closed: the torrent has stopped and nobody will finish the piece.
            return;
        };
        self.queue.borrow_mut().push_back((completed, permit));
        let _ = self.wake_tx.try_send(());
    }

    /// After the finisher has ended: readers waiting for a slot give up instead of waiting forever.
    pub fn close(&self) {
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

/// Hashes the in-memory pieces of `batch` together, writes the good ones concurrently, verifies the on-disk ones,
/// then applies every verdict. Permits are released as each piece is done.
async fn finish_batch(torrent: &Rc<Torrent>, batch: Vec<(Completed, StaticPermit)>) {
    let in_memory: Vec<&[u8]> = batch
        .iter()
        .filter_map(|(c, _)| match c {
            Completed::InMemory(_, buf) => Some(buf.as_slice()),
            Completed::OnDisk(_) => None,
        })
        .collect();
    let mut digests = digest_batch(&in_memory).into_iter();
    let mut writes = Vec::new();
    for (completed, permit) in batch {
        let piece = completed.piece();
        match completed {
            Completed::InMemory(_, buf) => {
                let digest = digests.next().expect("one digest per in-memory piece");
                if digest != torrent.hashes[piece as usize] {
                    drop(buf);
                    torrent.apply_verdict(piece, Verdict::BadData).await;
                    continue;
                }
                let t = torrent.clone();
                writes.push(glommio::spawn_local(async move {
                    let verdict = match t.storage.write_piece(piece, buf.into_vec()).await {
                        Ok(()) => Verdict::Good,
                        Err(e) => {
                            // BitTornado stops the torrent on a failed write; so do we.
                            t.st.borrow_mut().error = Some(e.to_string());
                            Verdict::DiskError(e.to_string())
                        }
                    };
                    t.apply_verdict(piece, verdict).await;
                    drop(permit);
                }));
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
                torrent.apply_verdict(piece, verdict).await;
                drop(permit);
            }
        }
    }
    for w in writes {
        w.await;
    }
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
