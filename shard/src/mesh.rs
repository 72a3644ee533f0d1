//! Long-lived bounded request/response channels between shards.
//!
//! [`mesh`] creates, once at start-up, one bounded request channel and one bounded reply channel
//! for every ordered pair of shards. A [`Router::call`] to another shard sends `(slot, request)`
//! on the request channel; the owner's serving task runs the handler and sends `(slot, reply)`
//! back; the caller's reply task puts the reply into the slot and wakes the caller. No channel is
//! ever created per request (aquatic's per-request `shared_channel` is the cost this avoids), and a
//! call to the caller's own shard runs the handler inline.
//!
//! Bounds: each channel holds `capacity` messages, and each shard has at most `capacity` calls in
//! flight in total (a semaphore), so the slot table never grows past `capacity`.
//!
//! Deadlock freedom: a serving task may wait for room in a reply channel, but reply tasks never
//! wait on anything but their channel, so replies always drain.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::sync::Semaphore;

use crate::ShardError;

type Envelope<T> = (u32, T);

/// One shard's ends of the mesh, created on the launching thread by [`mesh`] and moved into that
/// shard's executor, where [`MeshEndpoint::connect`] turns it into a [`Router`].
pub struct MeshEndpoint<Req: Send + 'static, Resp: Send + 'static> {
    shard: usize,
    capacity: usize,
    req_tx: Vec<Option<SharedSender<Envelope<Req>>>>,
    req_rx: Vec<Option<SharedReceiver<Envelope<Req>>>>,
    resp_tx: Vec<Option<SharedSender<Envelope<Resp>>>>,
    resp_rx: Vec<Option<SharedReceiver<Envelope<Resp>>>>,
}

/// Creates the full mesh for `shards` shards; element i goes to shard i.
pub fn mesh<Req: Send + 'static, Resp: Send + 'static>(
    shards: usize,
    capacity: usize,
) -> Vec<MeshEndpoint<Req, Resp>> {
    assert!(shards > 0 && capacity > 0 && capacity <= u32::MAX as usize);
    let mut eps: Vec<MeshEndpoint<Req, Resp>> = (0..shards)
        .map(|shard| MeshEndpoint {
            shard,
            capacity,
            req_tx: (0..shards).map(|_| None).collect(),
            req_rx: (0..shards).map(|_| None).collect(),
            resp_tx: (0..shards).map(|_| None).collect(),
            resp_rx: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(capacity);
            eps[from].req_tx[to] = Some(tx);
            eps[to].req_rx[from] = Some(rx);
            let (tx, rx) = shared_channel::new_bounded(capacity);
            eps[to].resp_tx[from] = Some(tx);
            eps[from].resp_rx[to] = Some(rx);
        }
    }
    eps
}

/// The handler a shard runs for requests addressed to it (from itself or from others). It is
/// synchronous on purpose: it touches only this shard's state and must not block.
pub type Handler<Req, Resp> = Rc<dyn Fn(Req) -> Resp>;

impl<Req: Send + 'static, Resp: Send + 'static> MeshEndpoint<Req, Resp> {
    /// This endpoint's shard index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Connects this shard's channels (must run on the shard's own executor) and starts the tasks
    /// that serve other shards' requests with `handler` and collect replies to this shard's calls.
    pub async fn connect(self, handler: Handler<Req, Resp>) -> Router<Req, Resp> {
        let shards = self.req_tx.len();
        let pending = Rc::new(Pending::new(self.capacity));
        // Each `connect` waits for the other side to connect too, so every end is connected in
        // its own task: awaiting them one after the other would deadlock two shards that each
        // wait for the other's first channel.
        let sender_tasks: Vec<Option<glommio::Task<ConnectedSender<Envelope<Req>>>>> = self
            .req_tx
            .into_iter()
            .map(|tx| tx.map(|tx| glommio::spawn_local(tx.connect())))
            .collect();
        let pairs = self.req_rx.into_iter().zip(self.resp_tx);
        for (rx, tx) in pairs {
            if let (Some(rx), Some(tx)) = (rx, tx) {
                let handler = handler.clone();
                glommio::spawn_local(async move {
                    let tx: ConnectedSender<Envelope<Resp>> = tx.connect().await;
                    let rx: ConnectedReceiver<Envelope<Req>> = rx.connect().await;
                    while let Some((slot, req)) = rx.recv().await {
                        let resp = handler(req);
                        if tx.send((slot, resp)).await.is_err() {
                            break;
                        }
                    }
                })
                .detach();
            }
        }
        for rx in self.resp_rx.into_iter().flatten() {
            let pending = pending.clone();
            glommio::spawn_local(async move {
                let rx: ConnectedReceiver<Envelope<Resp>> = rx.connect().await;
                while let Some((slot, resp)) = rx.recv().await {
                    pending.complete(slot, resp);
                }
            })
            .detach();
        }
        let mut senders = Vec::with_capacity(shards);
        for t in sender_tasks {
            senders.push(match t {
                Some(t) => Some(t.await),
                None => None,
            });
        }
        Router {
            shard: self.shard,
            shards,
            handler,
            senders,
            pending,
            permits: Rc::new(Semaphore::new(self.capacity as u64)),
        }
    }
}

/// A shard's handle to call any shard's handler. Cheap to share with `Rc`.
pub struct Router<Req: Send + 'static, Resp: Send + 'static> {
    shard: usize,
    shards: usize,
    handler: Handler<Req, Resp>,
    senders: Vec<Option<ConnectedSender<Envelope<Req>>>>,
    pending: Rc<Pending<Resp>>,
    permits: Rc<Semaphore>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Router<Req, Resp> {
    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Runs `req` on `shard`'s handler and returns its reply. Runs inline for this shard.
    pub async fn call(&self, shard: usize, req: Req) -> Result<Resp, ShardError> {
        if shard == self.shard {
            return Ok((self.handler)(req));
        }
        let sender = match self.senders.get(shard) {
            Some(Some(s)) => s,
            _ => return Err(ShardError::ShardGone(shard)),
        };
        let _permit = self
            .permits
            .acquire_permit(1)
            .await
            .map_err(|_| ShardError::ShardGone(shard))?;
        let slot = self.pending.alloc();
        let guard = SlotGuard {
            pending: &self.pending,
            slot,
            done: false,
        };
        if sender.send((slot, req)).await.is_err() {
            return Err(ShardError::ShardGone(shard));
        }
        let resp = WaitReply { guard }.await;
        Ok(resp)
    }
}

enum Slot<R> {
    Free,
    Waiting(Option<Waker>),
    /// The caller went away; free the slot when the reply arrives.
    Abandoned,
    Done(R),
}

/// The table of in-flight calls of one shard (at most `capacity` entries, enforced by the router's
/// semaphore).
struct Pending<R> {
    slots: RefCell<Vec<Slot<R>>>,
    free: RefCell<Vec<u32>>,
}

impl<R> Pending<R> {
    fn new(capacity: usize) -> Self {
        Pending {
            slots: RefCell::new((0..capacity).map(|_| Slot::Free).collect()),
            free: RefCell::new((0..capacity as u32).rev().collect()),
        }
    }

    fn alloc(&self) -> u32 {
        let slot = self
            .free
            .borrow_mut()
            .pop()
            .expect("the router's semaphore bounds in-flight calls to the slot count");
        self.slots.borrow_mut()[slot as usize] = Slot::Waiting(None);
        slot
    }

    fn complete(&self, slot: u32, resp: R) {
        let mut slots = self.slots.borrow_mut();
        let Some(entry) = slots.get_mut(slot as usize) else {
            return;
        };
        match std::mem::replace(entry, Slot::Free) {
            Slot::Waiting(waker) => {
                *entry = Slot::Done(resp);
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Slot::Abandoned => self.free.borrow_mut().push(slot),
            // A reply for a slot nobody waits on: keep the table consistent and drop it.
            other => *entry = other,
        }
    }
}

/// Frees (or abandons) the slot when the call ends, including when the caller's future is dropped.
struct SlotGuard<'a, R> {
    pending: &'a Pending<R>,
    slot: u32,
    done: bool,
}

impl<R> Drop for SlotGuard<'_, R> {
    fn drop(&mut self) {
        let mut slots = self.pending.slots.borrow_mut();
        let entry = &mut slots[self.slot as usize];
        if self.done || matches!(entry, Slot::Done(_)) {
            *entry = Slot::Free;
            self.pending.free.borrow_mut().push(self.slot);
        } else {
            *entry = Slot::Abandoned;
        }
    }
}

struct WaitReply<'a, R> {
    guard: SlotGuard<'a, R>,
}

impl<R> Future for WaitReply<'_, R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        let mut slots = this.guard.pending.slots.borrow_mut();
        let entry = &mut slots[this.guard.slot as usize];
        match std::mem::replace(entry, Slot::Free) {
            Slot::Done(r) => {
                drop(slots);
                this.guard.done = true;
                Poll::Ready(r)
            }
            _ => {
                *entry = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ShardPool, ShardPoolConfig};

    #[test]
    fn calls_reach_the_owner_and_return() {
        let config = ShardPoolConfig {
            shards: 2,
            pin: false,
            ..Default::default()
        };
        let eps = mesh::<(usize, u64), (usize, u64)>(2, 8);
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let out = ShardPool::run(&config, eps, move |ctx, ep| {
            let finished = finished.clone();
            async move {
                let me = ctx.shard;
                let router = ep
                    .connect(Rc::new(move |(from, x): (usize, u64)| {
                        (me * 1000 + from, x * 2)
                    }))
                    .await;
                let router = Rc::new(router);
                // 64 concurrent calls with only 8 slots: the semaphore must queue them, not fail.
                let mut tasks = Vec::new();
                for i in 0..64u64 {
                    let r = router.clone();
                    tasks.push(glommio::spawn_local(async move {
                        let target = (i as usize) % 2;
                        r.call(target, (me, i)).await.unwrap()
                    }));
                }
                let mut sum = 0;
                for (i, t) in tasks.into_iter().enumerate() {
                    let (who, v) = t.await;
                    assert_eq!(who, (i % 2) * 1000 + me);
                    sum += v;
                }
                // Keep serving until the other shard is done with us.
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                while finished.load(std::sync::atomic::Ordering::SeqCst) < 2 {
                    glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                }
                sum
            }
        })
        .unwrap();
        assert_eq!(out, vec![(0..64).map(|x| x * 2).sum::<u64>(); 2]);
    }
}
