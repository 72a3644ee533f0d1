//! Signal handling without running anything in a signal handler: SIGINT, SIGTERM and SIGHUP are
//! blocked in every thread (the mask is set before the executors start, so they inherit it) and a
//! dedicated thread receives them with `sigwait`, setting flags that shard 0 polls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::TrackerError;

/// Flags set by the signal thread.
#[derive(Debug, Default)]
pub struct Signals {
    stop: AtomicBool,
    hup: AtomicBool,
}

impl Signals {
    /// SIGINT or SIGTERM arrived.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// SIGHUP arrived since the last call.
    pub fn take_hup(&self) -> bool {
        self.hup.swap(false, Ordering::AcqRel)
    }
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

/// Blocks the signals in the calling thread (and so in every thread it starts afterwards) and
/// starts the thread that waits for them.
pub fn install() -> Result<Arc<Signals>, TrackerError> {
    let set = signal_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(TrackerError::io(
            "pthread_sigmask",
            std::io::Error::from_raw_os_error(rc),
        ));
    }
    let signals = Arc::new(Signals::default());
    let s = signals.clone();
    std::thread::Builder::new()
        .name("tracker-signals".to_string())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` and `sig` are valid for the call.
            let rc = unsafe { libc::sigwait(&set, &mut sig) };
            if rc != 0 {
                continue;
            }
            if sig == libc::SIGHUP {
                s.hup.store(true, Ordering::Release);
            } else {
                s.stop.store(true, Ordering::Release);
            }
        })
        .map_err(|e| TrackerError::io("starting the signal thread", e))?;
    Ok(signals)
}
