//! The session's stop, seen on a shard without polling in every task.
//!
//! Why: the stop flag is an atomic set by another thread (the caller), and a glommio task cannot be woken from
//! another thread cheaply. Torrents and the acceptor used to notice it on their next 250 ms tick, so a finished
//! `--exit-on-complete` download spent up to half a second doing nothing before it exited. One watcher task per
//! shard polls the flag every [`POLL`] and then fires this signal, which every waiting task on the shard sees at
//! once. Cost: one timer wake-up per shard per [`POLL`], whatever the number of torrents.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::sync::Semaphore;

use super::Shared;

/// How often the watcher looks at the session's stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Fired once when the session stops; cheap to clone (one per shard, shared by its tasks).
#[derive(Clone)]
pub(super) struct StopSignal {
    /// Never has permits: waiters wait until it is closed, which wakes them all.
    gate: Rc<Semaphore>,
}

impl StopSignal {
    /// A signal fired by a watcher task (spawned here, on the current shard) once the session's stop flag is set.
    pub fn watch(shared: Arc<Shared>) -> StopSignal {
        let signal = StopSignal {
            gate: Rc::new(Semaphore::new(0)),
        };
        let gate = signal.gate.clone();
        glommio::spawn_local(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                glommio::timer::sleep(POLL).await;
            }
            gate.close();
        })
        .detach();
        signal
    }

    /// Returns once the session stops (at once if it has).
    pub async fn wait(&self) {
        // Acquiring fails only when the gate is closed: that is the signal.
        let _ = self.gate.acquire(1).await;
    }
}
