//! Errors of the shard runtime: one enum, each variant a clear one-line message.

use std::io;

/// Everything that can go wrong while starting or running the shard runtime.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `RLIMIT_MEMLOCK` is below what glommio needs to start an executor.
    #[error(
        "locked-memory limit (ulimit -l) is {limit_kib} KiB but glommio needs at least {needed_kib} KiB; \
         raise it: `ulimit -l {needed_kib}` in the launching shell (needs privilege to raise the hard limit), \
         `LimitMEMLOCK={needed_kib}K` in a systemd unit, or `<user> - memlock {needed_kib}` in /etc/security/limits.conf"
    )]
    MemlockTooLow { limit_kib: u64, needed_kib: u64 },
    /// The number of shards asked for is not usable on this machine.
    #[error("cannot run {asked} shards: this machine has {online} online CPUs")]
    BadShardCount { asked: usize, online: usize },
    /// An executor could not be created or its thread panicked.
    #[error("executor for shard {shard}: {message}")]
    Executor { shard: usize, message: String },
    /// A socket operation failed (bind, listen, accept...).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The other shard's side of the mesh is gone (it stopped or panicked).
    #[error("shard {0} is not answering (its executor stopped)")]
    ShardGone(usize),
}

impl ShardError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        ShardError::Io {
            context: context.into(),
            source,
        }
    }
}
