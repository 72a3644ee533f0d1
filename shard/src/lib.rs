//! cyclone-shard: the thread-per-core runtime shared by the tracker and (later) the engine.
//!
//! It knows nothing of BitTorrent. What it gives:
//!
//! - [`ShardPool`]: one glommio executor per core, each pinned to its CPU, with an explicitly sized
//!   io_memory so it starts under an 8 MiB `ulimit -l` ([`memlock`]).
//! - [`shard_for_key`]: the shard that owns a key (an info-hash), from the key's bytes.
//! - [`mesh`]: long-lived bounded request/response channels between every pair of shards, created once
//!   at start-up. A call to another shard never creates a channel.
//! - [`listener`]: one `SO_REUSEPORT` TCP listener per shard on the same address.
//! - [`http`]: a small HTTP/1.1 server loop (httparse fast path, bounded buffers, idle timeout,
//!   keep-alive and pipelining) that the tracker's hot path and its info page share.
//! - [`http_client`]: a bounded HTTP/1.0 GET client for a service's own outgoing requests.
//! - [`hyper_glue`]: the same server on hyper 1.x, kept to measure against the httparse loop.
//! - [`udp_batch`]: `recvmmsg`/`sendmmsg` batches for UDP request/response servers.
//! - [`dma_probe`]: the workaround for glommio 0.9's DMA iopoll probe trap.
//!
//! Invariants (see docs-tracker-architecture.md): nothing blocks an executor (blocking work goes to
//! `glommio::executor().spawn_blocking`); a shard's state is touched only by its own executor (other shards
//! ask through the mesh); every queue is bounded.

pub mod dma_probe;
pub mod error;
pub mod http;
pub mod http_client;
pub mod hyper_glue;
pub mod idle;
pub mod listener;
pub mod memlock;
pub mod mesh;
pub mod pool;
pub mod routing;
pub mod udp_batch;

pub use error::ShardError;
pub use pool::{ShardContext, ShardPool, ShardPoolConfig};
pub use routing::shard_for_key;
