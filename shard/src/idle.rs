//! Idle-connection timeouts for many connections without a timer per read.
//!
//! Why: a read timeout on every socket read makes glommio insert and remove a timer (and read the clock) per
//! request; on a keep-alive tracker answering ~100k requests/s on one core that was a few percent of the CPU. Here
//! each connection only records the current *epoch* (a counter one sweeper task bumps every [`TICK`]) when it
//! receives bytes, and the sweeper shuts down (`shutdown(2)`) the sockets idle for longer than the limit: their
//! pending read then returns end-of-file and the connection ends. Precision is one tick, which is plenty for idle
//! limits of seconds (bttrack checks every `timeout_check_interval`, 5 s).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// Sweeper period, and the precision of idle limits.
pub const TICK: Duration = Duration::from_secs(1);

struct Entry {
    fd: RawFd,
    last_epoch: u64,
    swept: bool,
}

/// The connections of one listener on one shard, watched for idleness.
pub struct IdleWatch {
    epoch: Cell<u64>,
    limit_ticks: u64,
    entries: RefCell<Vec<Option<Entry>>>,
    free: RefCell<Vec<usize>>,
}

impl IdleWatch {
    /// A watch closing connections idle for `limit` (rounded up to whole ticks, at least one); its sweeper task
    /// runs on the current executor until the watch is dropped.
    pub fn start(limit: Duration) -> Rc<IdleWatch> {
        let watch = Rc::new(IdleWatch::new(limit));
        let weak: Weak<IdleWatch> = Rc::downgrade(&watch);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                let Some(w) = weak.upgrade() else { return };
                w.sweep();
            }
        })
        .detach();
        watch
    }

    fn new(limit: Duration) -> IdleWatch {
        let ticks = limit.as_nanos().div_ceil(TICK.as_nanos()).max(1);
        IdleWatch {
            epoch: Cell::new(0),
            limit_ticks: u64::try_from(ticks).unwrap_or(u64::MAX),
            entries: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
        }
    }

    /// Watches `fd` until the returned guard is dropped. Drop the guard *before* closing `fd`, so a sweep can never
    /// reach a reused descriptor number.
    pub fn register(self: &Rc<Self>, fd: RawFd) -> IdleGuard {
        let entry = Entry {
            fd,
            last_epoch: self.epoch.get(),
            swept: false,
        };
        let mut entries = self.entries.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(i) => {
                entries[i] = Some(entry);
                i
            }
            None => {
                entries.push(Some(entry));
                entries.len() - 1
            }
        };
        IdleGuard {
            watch: self.clone(),
            slot,
        }
    }

    /// One tick: the epoch advances, and connections silent for the limit are shut down.
    fn sweep(&self) {
        let epoch = self.epoch.get() + 1;
        self.epoch.set(epoch);
        for e in self.entries.borrow_mut().iter_mut().flatten() {
            if !e.swept && epoch.saturating_sub(e.last_epoch) > self.limit_ticks {
                e.swept = true;
                // SAFETY: `fd` is open: its connection drops its guard (removing this entry) before closing it, and
                // this runs on the same thread. shutdown changes only the socket's state.
                unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
            }
        }
    }
}

/// A connection's registration in an [`IdleWatch`].
pub struct IdleGuard {
    watch: Rc<IdleWatch>,
    slot: usize,
}

impl IdleGuard {
    /// Bytes arrived: the connection is not idle.
    pub fn touch(&self) {
        if let Some(e) = self.watch.entries.borrow_mut()[self.slot].as_mut() {
            e.last_epoch = self.watch.epoch.get();
        }
    }

    /// Whether the sweeper shut the connection down for idleness.
    pub fn timed_out(&self) -> bool {
        self.watch.entries.borrow()[self.slot]
            .as_ref()
            .is_some_and(|e| e.swept)
    }
}

impl Drop for IdleGuard {
    fn drop(&mut self) {
        self.watch.entries.borrow_mut()[self.slot] = None;
        self.watch.free.borrow_mut().push(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn idle_sockets_are_shut_down_after_the_limit_and_busy_ones_are_not() {
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(512 << 10)
            .make()
            .unwrap();
        ex.run(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let a = std::net::TcpStream::connect(addr).unwrap();
            let (a_srv, _) = listener.accept().unwrap();
            let b = std::net::TcpStream::connect(addr).unwrap();
            let (b_srv, _) = listener.accept().unwrap();
            let watch = Rc::new(IdleWatch::new(Duration::from_secs(2)));
            let ga = watch.register(a_srv.as_raw_fd());
            let gb = watch.register(b_srv.as_raw_fd());
            for _ in 0..2 {
                gb.touch();
                watch.sweep();
            }
            assert!(
                !ga.timed_out() && !gb.timed_out(),
                "silent for 2 ticks: not more than the limit"
            );
            gb.touch();
            watch.sweep();
            assert!(ga.timed_out(), "a: silent for 3 ticks");
            assert!(!gb.timed_out(), "b: touched a tick ago");
            // The shut-down socket reads end-of-file on the client side.
            let mut buf = [0u8; 1];
            a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(std::io::Read::read(&mut &a, &mut buf).unwrap(), 0);
            drop(ga);
            // The freed slot is reused.
            let gc = watch.register(a_srv.as_raw_fd());
            assert_eq!(gc.slot, 0);
            drop((gb, gc, b, b_srv, a_srv));
        });
    }
}
