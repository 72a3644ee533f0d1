//! cyclone-tracker: an HTTP BitTorrent tracker compatible with BitTornado's bttrack (options,
//! dfile, responses), with swarms sharded by info-hash across cores (one pinned glommio executor
//! per core, see `cyclone-shard`).

pub mod config;
pub mod query;
pub mod request;
pub mod swarm;

pub use config::{ConfigError, ScrapeAllowed, TrackerConfig};
