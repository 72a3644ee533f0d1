//! Locked-memory (`RLIMIT_MEMLOCK`) checks and glommio io_memory sizing.
//!
//! glommio refuses to start an executor when `ulimit -l` is below 512 KiB, with an opaque
//! `MemLockLimit(a/b)` error. Its default io_memory (10 MiB per executor, registered in three rings)
//! is larger than the 8 MiB limit usual on desktops and CI, so a non-root process logs buffer
//! registration failures. We check the limit ourselves first (to print what to raise and how) and
//! size io_memory so all executors fit in the limit.

use crate::ShardError;

/// glommio's own minimum (`MIN_MEMLOCK_LIMIT` in glommio 0.9 `sys/uring.rs`).
pub const GLOMMIO_MIN_MEMLOCK: u64 = 512 * 1024;
/// The io_memory we want per executor when the limit allows it.
pub const PREFERRED_IO_MEMORY: usize = 2 * 1024 * 1024;
/// glommio registers the io_memory buffer in this many rings (main, poll, latency).
const RINGS_PER_EXECUTOR: u64 = 3;
/// Never go below this (glommio rounds up to 64 KiB anyway).
const MIN_IO_MEMORY: usize = 64 * 1024;

/// The soft `RLIMIT_MEMLOCK` in bytes (`u64::MAX` when unlimited).
pub fn memlock_limit() -> Result<u64, ShardError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass, which lives on our stack.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 {
        return Err(ShardError::io(
            "getrlimit(RLIMIT_MEMLOCK)",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(if lim.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        lim.rlim_cur
    })
}

/// Checks `limit` against glommio's minimum and returns the io_memory to give each of `shards`
/// executors so that all their registered buffers fit in the limit.
pub fn io_memory_for(limit: u64, shards: usize) -> Result<usize, ShardError> {
    if limit < GLOMMIO_MIN_MEMLOCK {
        return Err(ShardError::MemlockTooLow {
            limit_kib: limit / 1024,
            needed_kib: GLOMMIO_MIN_MEMLOCK / 1024,
        });
    }
    let per_exec = limit / (RINGS_PER_EXECUTOR * shards.max(1) as u64);
    let sized = (per_exec.min(PREFERRED_IO_MEMORY as u64) as usize) & !4095;
    Ok(sized.max(MIN_IO_MEMORY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_low_says_what_to_raise() {
        let e = io_memory_for(64 * 1024, 2).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("64 KiB"), "{msg}");
        assert!(msg.contains("ulimit -l 512"), "{msg}");
    }

    #[test]
    fn sizes_fit_in_eight_mib() {
        let limit = 8 * 1024 * 1024;
        for shards in 1..=8 {
            let m = io_memory_for(limit, shards).unwrap();
            assert!(m <= PREFERRED_IO_MEMORY);
            assert!(m as u64 * 3 * shards as u64 <= limit || m == MIN_IO_MEMORY);
            assert_eq!(m % 4096, 0);
        }
        assert_eq!(io_memory_for(u64::MAX, 2).unwrap(), PREFERRED_IO_MEMORY);
        assert_eq!(
            io_memory_for(512 * 1024, 1).unwrap(),
            (512 * 1024 / 3) & !4095
        );
    }
}
