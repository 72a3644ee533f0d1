//! The session's stop (and a torrent's removal), seen on a shard without polling in every task; and the shard's
//! one control-plane timer.
//!
//! Why: the stop flag is an atomic set by another thread (the caller), and a glommio task cannot be woken from
//! another thread cheaply. Torrents and the acceptor used to notice it on their next 250 ms tick, so a finished
//! `--exit-on-complete` download spent up to half a second doing nothing before it exited. One watcher task per
//! shard polls the flag every [`POLL`] and then fires this signal, which every waiting task on the shard sees at
//! once. The same task also drains the shard's command channel (torrents added and removed while the session runs,
//! `listen.rs`): one timer wake-up per shard per [`POLL`], whatever the number of torrents.
//!
//! Each torrent waits on a *child* signal ([`StopSignal::child`]): fired with its shard's (session stop) or on its
//! own (the torrent is removed), so one torrent can be stopped the way the whole session is.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::sync::Semaphore;

use super::Shared;

/// How often the watcher looks at the session's stop flag and the shard's command channel.
pub(super) const POLL: Duration = Duration::from_millis(20);

struct Gate {
    /// Never has permits: waiters wait until it is closed, which wakes them all.
    sem: Semaphore,
    fired: Cell<bool>,
    /// Signals fired with this one (torrents of the shard). Pruned of ended and fired ones when a child is added,
    /// so it holds at most the shard's live torrents.
    children: RefCell<Vec<Weak<Gate>>>,
}

impl Gate {
    fn fire(&self) {
        if self.fired.replace(true) {
            return;
        }
        self.sem.close();
        for c in self.children.take() {
            if let Some(c) = c.upgrade() {
                c.fire();
            }
        }
    }
}

/// Fired once (session stop, torrent removal, or a torrent's end); cheap to clone.
#[derive(Clone)]
pub(super) struct StopSignal {
    gate: Rc<Gate>,
}

impl StopSignal {
    /// A signal nobody fires but its owner ([`StopSignal::fire`]).
    pub fn new() -> StopSignal {
        StopSignal {
            gate: Rc::new(Gate {
                sem: Semaphore::new(0),
                fired: Cell::new(false),
                children: RefCell::new(Vec::new()),
            }),
        }
    }

    /// A signal fired by a watcher task (spawned here, on the current shard) once the session's stop flag is set.
    /// Until then the watcher calls `on_poll` every [`POLL`] (the shard's command channel); not after the stop.
    pub fn watch(shared: Arc<Shared>, mut on_poll: impl FnMut() + 'static) -> StopSignal {
        let signal = StopSignal::new();
        let gate = signal.gate.clone();
        glommio::spawn_local(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                on_poll();
                glommio::timer::sleep(POLL).await;
            }
            gate.fire();
        })
        .detach();
        signal
    }

    /// A signal fired when this one is, or on its own.
    pub fn child(&self) -> StopSignal {
        let child = StopSignal::new();
        if self.is_fired() {
            child.fire();
        } else {
            let mut children = self.gate.children.borrow_mut();
            children.retain(|c| c.upgrade().is_some_and(|c| !c.fired.get()));
            children.push(Rc::downgrade(&child.gate));
        }
        child
    }

    /// Fires the signal (and its children); later calls do nothing.
    pub fn fire(&self) {
        self.gate.fire();
    }

    pub fn is_fired(&self) -> bool {
        self.gate.fired.get()
    }

    /// Returns once the signal fires (at once if it has).
    pub async fn wait(&self) {
        // Acquiring fails only when the gate is closed: that is the signal.
        let _ = self.gate.sem.acquire(1).await;
    }
}
