//! BitTornado's downloader options that tune the engine, in BitTornado's names, units and defaults: one struct for
//! both front ends — `cyclone download` (clap flags of the same names) and `btdownloadheadless` (BitTornado's
//! `--name value` parser, [`crate::bittornado_download`]) — and one mapping onto the engine's
//! [`SessionConfig`] ([`SessionOptions::apply`]), so the two can never disagree on what an option means.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use cyclone_engine::piece_map::BLOCK_SIZE;
use cyclone_engine::session::SessionConfig;

use crate::error::CliError;

/// Largest `--max_slice_length` accepted: each connection's receive buffer grows to hold one such block, so it is
/// the per-peer memory bound (BitTornado's `max_message_length` default).
pub const MAX_SLICE_LENGTH_LIMIT: u32 = 1 << 23;

/// Session options, as the user wrote them (rates in kB/s of 1000 bytes, times in seconds, flags 0/1).
#[derive(Debug, Clone, clap::Args)]
pub struct SessionOptions {
    /// Address to listen on and dial from (default all interfaces). btdownloadheadless takes BitTornado's
    /// comma-separated list and uses its first entry.
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// Lowest listen port (0: let the system pick one).
    #[arg(long, default_value_t = 10000)]
    pub minport: u16,
    /// Highest listen port.
    #[arg(long, default_value_t = 60000)]
    pub maxport: u16,
    /// Try 20 random ports of minport..maxport (1) or count up from minport (0).
    #[arg(long = "random_port", default_value_t = 1)]
    pub random_port: u8,
    /// Upload limit in kB/s (1 kB = 1000 bytes; 0 = unlimited), for the whole session: every shard draws from one
    /// budget. One torrent per run, so it is also the torrent's limit (as BitTornado's).
    #[arg(
        long = "max_upload_rate",
        default_value_t = 0.0,
        allow_hyphen_values = true
    )]
    pub max_upload_rate: f64,
    /// Download limit in kB/s (0 = unlimited), for the whole session, enforced by throttling requests.
    #[arg(long = "max_download_rate", default_value_t = 0.0)]
    pub max_download_rate: f64,
    /// Upload slots.
    #[arg(long = "max_uploads", default_value_t = 7)]
    pub max_uploads: usize,
    /// Stop dialling peers at this many connections (and ask trackers for none).
    #[arg(long = "max_initiate", default_value_t = 40)]
    pub max_initiate: usize,
    /// Absolute cap on connections (0 = no cap but the engine's).
    #[arg(long = "max_connections", default_value_t = 0)]
    pub max_connections: usize,
    /// Most data files kept open at once.
    #[arg(long = "max_files_open", default_value_t = 50)]
    pub max_files_open: usize,
    /// Hash-check existing data at start-up (1) or trust what is on disk (0).
    #[arg(long = "check_hashes", default_value_t = 1)]
    pub check_hashes: u8,
    /// As a seed, withhold 2-4 pieces from the bitfield and send them as HAVEs (1) or not (0).
    #[arg(long = "breakup_seed_bitfield", default_value_t = 1)]
    pub breakup_seed_bitfield: u8,
    /// Seconds between keep-alives.
    #[arg(long = "keepalive_interval", default_value_t = 120.0)]
    pub keepalive_interval: f64,
    /// Close a connection after this many seconds without receiving anything.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Seconds between status reports.
    #[arg(long = "display_interval", default_value_t = 0.5)]
    pub display_interval: f64,
    /// Seconds between optimistic-unchoke rotations (once seeding: scaled up for pieces over 200 kB).
    #[arg(long = "round_robin_period", default_value_t = 30.0)]
    pub round_robin_period: f64,
    /// Seconds without a block from a peer that unchoked us before it counts as snubbing us.
    #[arg(long = "snub_time", default_value_t = 30.0)]
    pub snub_time: f64,
    /// Complete pieces before the picker switches to rarest first.
    #[arg(long = "rarest_first_cutoff", default_value_t = 2)]
    pub rarest_first_cutoff: u32,
    /// Peers that must have a piece before the start-up rule prefers it to rarer ones.
    #[arg(long = "rarest_first_priority_cutoff", default_value_t = 5)]
    pub rarest_first_priority_cutoff: u32,
    /// Seconds of history behind every rate estimate.
    #[arg(long = "max_rate_period", default_value_t = 20.0)]
    pub max_rate_period: f64,
    /// Largest block a peer may request, bytes; a longer request closes its connection (16384..=8388608).
    #[arg(long = "max_slice_length", default_value_t = 1 << 17)]
    pub max_slice_length: u32,
    /// Largest message length prefix accepted; a longer one closes the connection.
    #[arg(long = "max_message_length", default_value_t = 1 << 23)]
    pub max_message_length: u32,
    /// Bytes per block request. cyclone's piece map works in 16384-byte blocks: only that value is accepted.
    #[arg(long = "download_slice_size", default_value_t = 1 << 14)]
    pub download_slice_size: u32,
    /// With fewer than min_peers connections, announce again every this many seconds.
    #[arg(long = "rerequest_interval", default_value_t = 300)]
    pub rerequest_interval: u64,
    /// Connections below which the tracker is asked for more peers every rerequest_interval.
    #[arg(long = "min_peers", default_value_t = 20)]
    pub min_peers: usize,
    /// Seconds to wait for a tracker.
    #[arg(long = "http_timeout", default_value_t = 60.0)]
    pub http_timeout: f64,
    /// IP address or host name to report to the tracker (`&ip=`), resolved once at start.
    #[arg(long)]
    pub ip: Option<String>,
    /// Sent to trackers as `&seed_id=` to flag this client as a dedicated seed.
    #[arg(long = "dedicated_seed_id")]
    pub dedicated_seed_id: Option<String>,
    /// One connection per IP address and IP bans enforced (1), or not (0). Loopback peers are exempt.
    #[arg(long, default_value_t = 1)]
    pub security: u8,
    /// Close and ban peers that send bad data (1), or only re-download the bad pieces (0).
    #[arg(long = "auto_kick", default_value_t = 1)]
    pub auto_kick: u8,
}

impl Default for SessionOptions {
    /// BitTornado's defaults (the same as the clap defaults above).
    fn default() -> Self {
        SessionOptions {
            bind: None,
            minport: 10000,
            maxport: 60000,
            random_port: 1,
            max_upload_rate: 0.0,
            max_download_rate: 0.0,
            max_uploads: 7,
            max_initiate: 40,
            max_connections: 0,
            max_files_open: 50,
            check_hashes: 1,
            breakup_seed_bitfield: 1,
            keepalive_interval: 120.0,
            timeout: 300.0,
            display_interval: 0.5,
            round_robin_period: 30.0,
            snub_time: 30.0,
            rarest_first_cutoff: 2,
            rarest_first_priority_cutoff: 5,
            max_rate_period: 20.0,
            max_slice_length: 1 << 17,
            max_message_length: 1 << 23,
            download_slice_size: 1 << 14,
            rerequest_interval: 300,
            min_peers: 20,
            http_timeout: 60.0,
            ip: None,
            dedicated_seed_id: None,
            security: 1,
            auto_kick: 1,
        }
    }
}

/// kB/s (BitTornado: 1000 bytes) to bytes/s; negative (BitTornado's "automatic") is treated as unlimited.
pub fn kb(rate: f64) -> u64 {
    if rate > 0.0 {
        cyclone_engine::rate::kilobytes_per_second(rate)
    } else {
        0
    }
}

/// Seconds to a duration, kept within 0.1 s..=10^7 s (a zero period would make the engine spin); every time option
/// of the tools goes through it.
pub fn secs(s: f64) -> Duration {
    let s = if s.is_finite() { s } else { 0.0 };
    Duration::from_secs_f64(s.clamp(0.1, 1e7))
}

impl SessionOptions {
    /// The one mapping onto the engine: `base` with every option of `self` applied (fields these options do not
    /// cover, such as `shards` or `piece_memory`, are kept from `base`). Values the engine cannot honour are a
    /// usage error naming the option.
    pub fn apply(&self, base: SessionConfig) -> Result<SessionConfig, CliError> {
        if self.download_slice_size != BLOCK_SIZE {
            return Err(CliError::Usage(format!(
                "--download_slice_size {}: cyclone requests {BLOCK_SIZE}-byte blocks only (its piece map and \
                 piece buffers work in them)",
                self.download_slice_size
            )));
        }
        let piece_frame = BLOCK_SIZE + 13;
        if self.max_message_length < piece_frame {
            return Err(CliError::Usage(format!(
                "--max_message_length {}: must be at least {piece_frame}, or no block could be received",
                self.max_message_length
            )));
        }
        if !(BLOCK_SIZE..=MAX_SLICE_LENGTH_LIMIT).contains(&self.max_slice_length) {
            return Err(CliError::Usage(format!(
                "--max_slice_length {}: must be {BLOCK_SIZE}..={MAX_SLICE_LENGTH_LIMIT} (the block size cyclone \
                 requests, up to the per-connection buffer bound)",
                self.max_slice_length
            )));
        }
        let announce_ip = match self.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(resolve(name)?),
        };
        Ok(SessionConfig {
            bind: self
                .bind
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            minport: self.minport,
            maxport: self.maxport,
            random_port: self.random_port != 0,
            max_upload_rate: kb(self.max_upload_rate),
            max_download_rate: kb(self.max_download_rate),
            max_uploads: self.max_uploads.min(1 << 16),
            max_initiate: self.max_initiate.min(1 << 16),
            max_connections: self.max_connections.min(1 << 16),
            max_files_open: self.max_files_open.min(1 << 16),
            check_hashes: self.check_hashes != 0,
            breakup_seed_bitfield: self.breakup_seed_bitfield != 0,
            keepalive_interval: secs(self.keepalive_interval),
            timeout: secs(self.timeout),
            display_interval: secs(self.display_interval),
            round_robin_period: secs(self.round_robin_period),
            snub_time: secs(self.snub_time),
            rarest_first_cutoff: self.rarest_first_cutoff,
            rarest_first_priority_cutoff: self.rarest_first_priority_cutoff,
            max_rate_period: secs(self.max_rate_period),
            max_slice_length: self.max_slice_length,
            max_message_length: self.max_message_length,
            rerequest_interval: Duration::from_secs(self.rerequest_interval.max(1)),
            min_peers: self.min_peers,
            http_timeout: secs(self.http_timeout),
            announce_ip,
            dedicated_seed_id: self
                .dedicated_seed_id
                .clone()
                .unwrap_or_default()
                .into_bytes(),
            security: self.security != 0,
            auto_kick: self.auto_kick != 0,
            ..base
        })
    }
}

/// `--ip`: an address as is, or a host name resolved once (BitTornado's `gethostbyname`, same error text).
fn resolve(name: &str) -> Result<IpAddr, CliError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ip);
    }
    (name, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| CliError::Usage(format!("--ip: unable to resolve: {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(o: &SessionOptions) -> SessionConfig {
        o.apply(SessionConfig::default()).unwrap()
    }

    #[test]
    fn defaults_map_to_the_engine_defaults() {
        let c = map(&SessionOptions::default());
        let d = SessionConfig::default();
        assert_eq!(c.round_robin_period, d.round_robin_period);
        assert_eq!(c.snub_time, d.snub_time);
        assert_eq!(c.rarest_first_cutoff, d.rarest_first_cutoff);
        assert_eq!(
            c.rarest_first_priority_cutoff,
            d.rarest_first_priority_cutoff
        );
        assert_eq!(c.max_rate_period, d.max_rate_period);
        assert_eq!(c.max_slice_length, d.max_slice_length);
        assert_eq!(c.max_message_length, d.max_message_length);
        assert_eq!(c.rerequest_interval, d.rerequest_interval);
        assert_eq!(c.min_peers, d.min_peers);
        assert_eq!(c.http_timeout, d.http_timeout);
        assert_eq!(c.keepalive_interval, d.keepalive_interval);
        assert_eq!(c.timeout, d.timeout);
        assert_eq!(c.max_files_open, d.max_files_open);
        assert_eq!(c.max_uploads, d.max_uploads);
        assert_eq!(c.max_initiate, d.max_initiate);
        assert_eq!(
            (c.security, c.auto_kick, c.random_port, c.check_hashes),
            (true, true, true, true)
        );
        assert_eq!(c.announce_ip, None);
        assert!(c.dedicated_seed_id.is_empty());
    }

    #[test]
    fn every_option_reaches_its_field() {
        let o = SessionOptions {
            bind: Some("127.0.0.1".parse().unwrap()),
            minport: 7000,
            maxport: 7010,
            random_port: 0,
            max_upload_rate: 12.5,
            max_download_rate: 3.0,
            max_uploads: 3,
            max_initiate: 9,
            max_connections: 11,
            max_files_open: 5,
            check_hashes: 0,
            breakup_seed_bitfield: 0,
            keepalive_interval: 60.0,
            timeout: 90.0,
            display_interval: 2.0,
            round_robin_period: 10.0,
            snub_time: 7.5,
            rarest_first_cutoff: 4,
            rarest_first_priority_cutoff: 9,
            max_rate_period: 5.0,
            max_slice_length: 1 << 15,
            max_message_length: 1 << 20,
            download_slice_size: 1 << 14,
            rerequest_interval: 120,
            min_peers: 3,
            http_timeout: 15.0,
            ip: Some("10.1.2.3".into()),
            dedicated_seed_id: Some("seed42".into()),
            security: 0,
            auto_kick: 0,
        };
        let base = SessionConfig {
            shards: 2,
            piece_memory: 1 << 20,
            ..SessionConfig::default()
        };
        let c = o.apply(base).unwrap();
        assert_eq!(c.bind, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((c.minport, c.maxport, c.random_port), (7000, 7010, false));
        assert_eq!((c.max_upload_rate, c.max_download_rate), (12_500, 3_000));
        assert_eq!(
            (
                c.max_uploads,
                c.max_initiate,
                c.max_connections,
                c.max_files_open
            ),
            (3, 9, 11, 5)
        );
        assert!(!c.check_hashes && !c.breakup_seed_bitfield);
        assert_eq!(c.keepalive_interval, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(90));
        assert_eq!(c.display_interval, Duration::from_secs(2));
        assert_eq!(c.round_robin_period, Duration::from_secs(10));
        assert_eq!(c.snub_time, Duration::from_millis(7500));
        assert_eq!(
            (c.rarest_first_cutoff, c.rarest_first_priority_cutoff),
            (4, 9)
        );
        assert_eq!(c.max_rate_period, Duration::from_secs(5));
        assert_eq!(
            (c.max_slice_length, c.max_message_length),
            (1 << 15, 1 << 20)
        );
        assert_eq!(c.rerequest_interval, Duration::from_secs(120));
        assert_eq!(c.min_peers, 3);
        assert_eq!(c.http_timeout, Duration::from_secs(15));
        assert_eq!(c.announce_ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(c.dedicated_seed_id, b"seed42");
        assert!(!c.security && !c.auto_kick);
        // Fields the options do not cover come from the base.
        assert_eq!((c.shards, c.piece_memory), (2, 1 << 20));
    }

    #[test]
    fn values_the_engine_cannot_honour_are_refused() {
        let err = |o: SessionOptions| match o.apply(SessionConfig::default()) {
            Err(CliError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        };
        let m = err(SessionOptions {
            download_slice_size: 1 << 15,
            ..SessionOptions::default()
        });
        assert!(m.starts_with("--download_slice_size 32768"), "{m}");
        let m = err(SessionOptions {
            max_slice_length: 1000,
            ..SessionOptions::default()
        });
        assert!(m.starts_with("--max_slice_length 1000"), "{m}");
        let m = err(SessionOptions {
            max_message_length: 100,
            ..SessionOptions::default()
        });
        assert!(m.starts_with("--max_message_length 100"), "{m}");
    }

    #[test]
    fn times_are_clamped_and_rates_negative_mean_unlimited() {
        let c = map(&SessionOptions {
            snub_time: 0.0,
            max_rate_period: f64::NAN,
            max_upload_rate: -1.0,
            ..SessionOptions::default()
        });
        assert_eq!(c.snub_time, Duration::from_millis(100));
        assert_eq!(c.max_rate_period, Duration::from_millis(100));
        assert_eq!(c.max_upload_rate, 0);
        assert_eq!(kb(12.5), 12_500);
    }

    #[test]
    fn ip_is_used_as_is_or_resolved() {
        let c = map(&SessionOptions {
            ip: Some("::1".into()),
            ..SessionOptions::default()
        });
        assert_eq!(c.announce_ip, Some("::1".parse().unwrap()));
        let c = map(&SessionOptions {
            ip: Some("localhost".into()),
            ..SessionOptions::default()
        });
        assert!(c.announce_ip.is_some_and(|ip| ip.is_loopback()));
        let c = map(&SessionOptions {
            ip: Some(String::new()),
            ..SessionOptions::default()
        });
        assert_eq!(c.announce_ip, None);
    }
}
