//! cyclone-engine: the BitTorrent client engine.
//!
//! This crate holds the engine's *pure core*: everything that decides what to do with a peer, a
//! piece or a byte, without sockets, files or an executor. Every module but [`storage`] (and
//! [`resume`]'s file write) takes its inputs (bytes, snapshots, a clock reading, a seeded RNG) as
//! arguments and returns decisions, so it is unit-tested and fuzzed without I/O. [`storage`] is the
//! disk edge (glommio files on the shard's executor). The shard runtime drives these modules; see
//! `engine/ARCHITECTURE.md` for the whole design.
//!
//! Module map:
//! - [`bitfield`]: the have-bitfield (MSB-first, strict spare bits).
//! - [`wire`]: peer wire protocol codec (BEP 3, BEP 6 fast, BEP 10 envelope), incremental decoder.
//! - [`extension`]: the BEP 10 extension handshake dictionary.
//! - [`piece_map`]: piece/offset -> file spans; piece and block geometry.
//! - [`blocks`]: per-piece 16 KiB block accounting for partially downloaded pieces.
//! - [`picker`]: BitTornado's piece picker (random first, rarest first within priority classes).
//! - [`requester`]: per-peer request pipelines, endgame and the cancels it implies.
//! - [`upload`]: per-peer queue of blocks requested from us, with BitTornado's and BEP 6's rules.
//! - [`allowed_fast`]: the BEP 6 canonical allowed-fast set.
//! - [`choker`]: BitTornado's choker (rechoke, optimistic rotation, snubbing, seeding order).
//! - [`connection_timers`]: handshake/idle deadlines, keep-alives, the half-open dial limit.
//! - [`rate`]: rate measurement and token-bucket limiting with an injected clock.
//! - [`global_rate`]: the session-wide limit shared by all shards (atomics drawn in chunks, no lock).
//! - [`bad_data`]: blame for pieces failing their hash check; BitTornado's kick and ban rules.
//! - [`announce`]: the tracker client protocol (HTTP and UDP codecs, BEP 12 tiers, announce schedule).
//! - [`resume`]: the fast-resume record (bitfield + per-file stamps) and its crash-safe write.
//! - [`storage`]: the disk edge: a torrent's files on glommio (io_uring), block reads and writes,
//!   piece hash checks and recheck. It runs on the shard's executor.
//! - [`session`]: the shard driver: torrents on the shard pool, peer connections over real sockets, tracker
//!   announces, resume records; the runtime that turns the pure core into a client.

pub mod allowed_fast;
pub mod announce;
pub mod bad_data;
pub mod bitfield;
pub mod blocks;
pub mod choker;
pub mod connection_timers;
pub mod extension;
pub mod global_rate;
pub mod one_per_ip;
pub mod picker;
pub mod piece_map;
pub mod rate;
pub mod requester;
pub mod resume;
pub mod session;
pub mod storage;
pub mod upload;
pub mod wire;
