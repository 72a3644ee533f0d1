//! The executor pool: one glommio executor per shard, each pinned to its own CPU.

use std::future::Future;

use glommio::{LocalExecutorBuilder, Placement};

use crate::memlock;
use crate::ShardError;

/// How long a shard runs ready tasks before glommio looks at its rings again (completions, timers, accepts) even
/// though tasks are still ready. glommio's default is 100 ms; tasks that yield to be retried (the HTTP keep-alive
/// read, `http::read_next`) keep the run queue non-empty under load, and connections waiting on the ring waited
/// that long: p99 latency 51 ms at `wrk -c64` keep-alive. Shorter is not free: glommio re-arms this timer on every
/// pass through its rings, and a timer due before the kernel's next tick (4 ms at HZ=250) reprograms the CPU's
/// timer each time, which in a VM is a trap to the hypervisor: at 1-2 ms a lightly loaded keep-alive tracker
/// (`wrk -c4`) used ~15 % more CPU per request. Measured here: 5 ms gives p99 1-3.6 ms at `-c64` and no measurable
/// cost at `-c4`.
pub const PREEMPT_TIMER: std::time::Duration = std::time::Duration::from_millis(5);

/// How to start the pool.
#[derive(Debug, Clone)]
pub struct ShardPoolConfig {
    /// Number of shards (executors). 0 means one per CPU this process may run on.
    pub shards: usize,
    /// Thread name prefix (`<name>-<shard>`).
    pub name: String,
    /// io_memory per executor; `None` sizes it from `ulimit -l` ([`memlock::io_memory_for`]).
    pub io_memory: Option<usize>,
    /// Pin shard i to the i-th CPU of the process's affinity mask. Off only for tests that share a
    /// busy machine with other pinned work.
    pub pin: bool,
}

impl Default for ShardPoolConfig {
    fn default() -> Self {
        ShardPoolConfig {
            shards: 0,
            name: "shard".to_string(),
            io_memory: None,
            pin: true,
        }
    }
}

/// What a shard knows about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardContext {
    /// This shard's index, 0..shards.
    pub shard: usize,
    /// Total number of shards.
    pub shards: usize,
    /// The CPU this shard is pinned to, if pinned.
    pub cpu: Option<usize>,
}

/// Starts executors and waits for them.
pub struct ShardPool;

/// CPUs this process may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = this thread; the pointer and size describe `set` exactly.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE, so CPU_ISSET stays inside `set`.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

impl ShardPool {
    /// The number of shards `config` resolves to.
    pub fn shard_count(config: &ShardPoolConfig) -> Result<usize, ShardError> {
        let online = allowed_cpus().len().max(1);
        match config.shards {
            0 => Ok(online),
            n if n > 1024 => Err(ShardError::BadShardCount { asked: n, online }),
            n => Ok(n),
        }
    }

    /// Runs one executor per element of `inputs` (its length must equal the shard count), calling
    /// `body(ctx, input)` on each, and returns their results in shard order once all have finished.
    ///
    /// `inputs` carries what each shard owns from the start (its listener, its mesh endpoint, its
    /// part of the loaded state): it is moved into that shard's thread and never shared.
    pub fn run<S, T, F, Fut>(
        config: &ShardPoolConfig,
        inputs: Vec<S>,
        body: F,
    ) -> Result<Vec<T>, ShardError>
    where
        S: Send + 'static,
        T: Send + 'static,
        F: Fn(ShardContext, S) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let shards = inputs.len();
        assert!(shards > 0, "ShardPool::run needs at least one shard input");
        // Check the limit ourselves first: glommio's own error is an opaque `MemLockLimit(a/b)`.
        let sized = memlock::io_memory_for(memlock::memlock_limit()?, shards)?;
        let io_memory = config.io_memory.unwrap_or(sized);
        let cpus = allowed_cpus();
        let mut handles = Vec::with_capacity(shards);
        for (shard, input) in inputs.into_iter().enumerate() {
            let cpu = if config.pin && !cpus.is_empty() {
                Some(cpus[shard % cpus.len()])
            } else {
                None
            };
            let placement = match cpu {
                Some(c) => Placement::Fixed(c),
                None => Placement::Unbound,
            };
            let ctx = ShardContext { shard, shards, cpu };
            let body = body.clone();
            let handle = LocalExecutorBuilder::new(placement)
                .name(&format!("{}-{shard}", config.name))
                .io_memory(io_memory)
                .preempt_timer(PREEMPT_TIMER)
                .spawn(move || body(ctx, input))
                .map_err(|e| ShardError::Executor {
                    shard,
                    message: explain_glommio_error(&e.to_string()),
                })?;
            handles.push(handle);
        }
        let mut out = Vec::with_capacity(shards);
        for (shard, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(v) => out.push(v),
                Err(e) => {
                    return Err(ShardError::Executor {
                        shard,
                        message: explain_glommio_error(&e.to_string()),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// Turns glommio's terse memlock error into one that says what to do.
fn explain_glommio_error(msg: &str) -> String {
    if msg.contains("MemLockLimit") {
        format!(
            "{msg}: the locked-memory limit (ulimit -l) is too low for glommio; raise it to at least 512 KiB \
             (`ulimit -l 8192`)"
        )
    } else {
        msg.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_each_shard_with_its_input() {
        let config = ShardPoolConfig {
            shards: 2,
            pin: false,
            ..Default::default()
        };
        let out = ShardPool::run(&config, vec![10u32, 20u32], |ctx, input| async move {
            (ctx.shard, ctx.shards, input)
        })
        .unwrap();
        assert_eq!(out, vec![(0, 2, 10), (1, 2, 20)]);
    }

    #[test]
    fn allowed_cpus_is_not_empty() {
        assert!(!allowed_cpus().is_empty());
    }
}
