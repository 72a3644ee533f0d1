//! cyclone-tracker: an HTTP and UDP (BEP 15) BitTorrent tracker compatible with BitTornado's bttrack (options,
//! dfile, responses), with swarms sharded by info-hash across cores (one pinned glommio executor
//! per core, see `cyclone-shard`).
//!
//! Entry points for the `cyclone` binary: [`run_from_args`] (bttrack's `--name value` command line)
//! and [`run`] (a ready [`TrackerConfig`]).

pub mod access_log;
pub mod aggregate_forward;
pub mod allowed;
pub mod client_ip;
pub mod config;
pub mod dfile;
pub mod error;
pub mod fast_hash;
pub mod infopage;
pub mod ip_filter;
pub mod multitracker;
pub mod nat_check;
pub mod query;
pub mod request;
pub mod server;
pub mod signals;
pub mod swarm;
pub mod udp;

pub use config::{ConfigError, ScrapeAllowed, TrackerConfig};
pub use error::TrackerError;
pub use server::{run, run_from_args};
