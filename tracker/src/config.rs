//! The tracker's configuration: BitTornado bttrack's options, names and defaults
//! (`reference/seeds-behaviour.md` §1.3), plus a few cyclone extensions, and BitTornado's
//! `--name value` command-line syntax.

use std::ffi::OsString;
use std::path::PathBuf;

/// An option's default; its type fixes the type of the value.
#[derive(Debug, Clone, Copy)]
enum Def {
    Int(i64),
    Float(f64),
    Str(&'static str),
    Required,
}

/// (name, default, help). bttrack's list first, in its order; cyclone extensions after.
const OPTIONS: &[(&str, Def, &str)] = &[
    ("port", Def::Int(80), "Port to listen on."),
    ("dfile", Def::Required, "file to store recent downloader info in"),
    ("bind", Def::Str(""), "comma-separated list of ips/hostnames to bind to locally"),
    ("ipv6_enabled", Def::Int(0), "allow the client to connect to peers via IPv6"),
    ("ipv6_binds_v4", Def::Int(1), "set if an IPv6 server socket will also field IPv4 connections"),
    ("socket_timeout", Def::Int(15), "timeout for closing connections"),
    ("save_dfile_interval", Def::Int(300), "seconds between saving dfile"),
    ("timeout_downloaders_interval", Def::Int(2700), "seconds between expiring downloaders"),
    ("reannounce_interval", Def::Int(1800), "seconds downloaders should wait between reannouncements"),
    ("response_size", Def::Int(50), "number of peers to send in an info message"),
    ("timeout_check_interval", Def::Int(5), "time to wait between checking if any connections have timed out (accepted, no effect in cyclone: idle connections are swept every second)"),
    ("nat_check", Def::Int(3), "how many times to check if a downloader is behind a NAT (0 = don't check)"),
    ("log_nat_checks", Def::Int(0), "whether to add entries to the log for nat-check results"),
    ("min_time_between_log_flushes", Def::Float(3.0), "minimum time it must have been since the last flush to do another one"),
    ("min_time_between_cache_refreshes", Def::Float(600.0), "minimum time in seconds before a cache is considered stale and is flushed (accepted, no effect in cyclone: peer lists are drawn from the live swarm on every announce, never cached)"),
    ("allowed_dir", Def::Str(""), "only allow downloads for .torrents in this dir"),
    ("allowed_list", Def::Str(""), "only allow downloads for hashes in this list (hex format, one per line)"),
    ("allowed_controls", Def::Int(0), "allow special keys in torrents in the allowed_dir to affect tracker access"),
    ("multitracker_enabled", Def::Int(0), "whether to enable multitracker operation (with allowed_dir: poll the other http:// trackers in allowed torrents' announce-lists and list their peers to our clients)"),
    ("multitracker_allowed", Def::Str("autodetect"), "whether to allow incoming tracker announces (can be none, autodetect or all)"),
    ("multitracker_reannounce_interval", Def::Int(120), "seconds between outgoing tracker announces (also the interval told to polling trackers)"),
    ("multitracker_maxpeers", Def::Int(20), "number of peers to get in a tracker announce (numwant of our polls)"),
    ("aggregate_forward", Def::Str(""), "format: <url>[,<password>] - if set, forwards all non-multitracker to this url with this optional password"),
    ("aggregator", Def::Str("0"), "whether to act as a data aggregator rather than a tracker. If enabled, may be 1, or <password>"),
    ("hupmonitor", Def::Int(0), "whether to reopen the log file upon receipt of HUP signal"),
    ("http_timeout", Def::Int(60), "number of seconds to wait before assuming that an http connection has timed out (our outgoing multitracker polls)"),
    ("parse_dir_interval", Def::Int(60), "seconds between reloading of allowed_dir or allowed_file and allowed_ips and banned_ips lists"),
    ("show_infopage", Def::Int(1), "whether to display an info page when the tracker's root dir is loaded"),
    ("infopage_redirect", Def::Str(""), "a URL to redirect the info page to"),
    ("show_names", Def::Int(1), "whether to display names from allowed dir"),
    ("favicon", Def::Str(""), "file containing x-icon data to return when browser requests favicon.ico"),
    ("allowed_ips", Def::Str(""), "only allow connections from IPs specified in the given file; file contains subnet data in the format: aa.bb.cc.dd/len"),
    ("banned_ips", Def::Str(""), "don't allow connections from IPs specified in the given file; file contains IP range data in the format: xxx:xxx:ip1-ip2"),
    ("only_local_override_ip", Def::Int(2), "ignore the ip GET parameter from machines which aren't on local network IPs (0 = never, 1 = always, 2 = ignore if NAT checking is not enabled)"),
    ("logfile", Def::Str(""), "file to write the tracker logs, use - for stdout (default)"),
    ("allow_get", Def::Int(0), "use with allowed_dir; adds a /file?hash={hash} url that allows users to download the torrent file"),
    ("keep_dead", Def::Int(0), "keep dead torrents after they expire (so they still show up on your /scrape and web page)"),
    ("scrape_allowed", Def::Str("full"), "scrape access allowed (can be none, specific or full)"),
    ("dedicated_seed_id", Def::Str(""), "allows tracker to monitor dedicated seed(s) and flag torrents as seeded"),
    ("compact_reqd", Def::Int(1), "only allow peers that accept a compact response"),
    // cyclone extensions (not in BitTornado).
    ("min_interval", Def::Int(900), "cyclone: value of `min interval` sent to clients (0 = don't send it)"),
    ("shards", Def::Int(0), "cyclone: number of shards (executors pinned one per core); 0 = one per CPU"),
    ("max_connections", Def::Int(16384), "cyclone: most HTTP connections open at once per shard"),
    ("access_log", Def::Int(1), "cyclone: write the Apache-style access log (0 = off, for benchmarks); UDP announces and scrapes are logged in their HTTP form with protocol UDP"),
    ("nat_check_local", Def::Int(0), "cyclone: also NAT-check peers on intranet addresses (bttrack never does; for tests on loopback)"),
    ("udp", Def::Int(1), "cyclone: also serve the UDP tracker protocol (BEP 15) on the same port (0 = off)"),
    ("udp_bad_id_ban", Def::Int(3600), "cyclone: seconds a UDP client is ignored after more than 64 bad connection ids in a minute (0 = never)"),
    ("http_engine", Def::Str("httparse"), "cyclone: HTTP implementation, httparse or hyper (kept for measuring; httparse is faster)"),
];

/// The `scrape_allowed` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeAllowed {
    None,
    Specific,
    Full,
}

/// Everything the tracker is configured with. Field names are bttrack's option names.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    pub port: u16,
    pub dfile: PathBuf,
    pub bind: Vec<String>,
    pub ipv6_enabled: bool,
    pub ipv6_binds_v4: bool,
    pub socket_timeout: u64,
    pub save_dfile_interval: u64,
    pub timeout_downloaders_interval: u64,
    pub reannounce_interval: u64,
    pub response_size: usize,
    pub timeout_check_interval: u64,
    pub nat_check: u32,
    pub log_nat_checks: bool,
    pub min_time_between_log_flushes: f64,
    pub min_time_between_cache_refreshes: f64,
    pub allowed_dir: Option<PathBuf>,
    pub allowed_list: Option<PathBuf>,
    pub allowed_controls: bool,
    pub multitracker_enabled: bool,
    pub multitracker_allowed: String,
    pub multitracker_reannounce_interval: u64,
    pub multitracker_maxpeers: u64,
    pub aggregate_forward: String,
    pub aggregator: String,
    pub hupmonitor: bool,
    pub http_timeout: u64,
    pub parse_dir_interval: u64,
    pub show_infopage: bool,
    pub infopage_redirect: String,
    pub show_names: bool,
    pub favicon: Option<PathBuf>,
    pub allowed_ips: Option<PathBuf>,
    pub banned_ips: Option<PathBuf>,
    pub only_local_override_ip: u8,
    pub logfile: Option<PathBuf>,
    pub allow_get: bool,
    pub keep_dead: bool,
    pub scrape_allowed: ScrapeAllowed,
    pub dedicated_seed_id: String,
    pub compact_reqd: bool,
    pub min_interval: u64,
    pub shards: usize,
    pub max_connections: usize,
    pub access_log: bool,
    pub nat_check_local: bool,
    /// `true` = hyper, `false` = the httparse loop.
    pub http_engine_hyper: bool,
    /// Serve BEP 15 (UDP) on the same port as HTTP.
    pub udp: bool,
    /// Seconds a UDP client repeating bad connection ids is ignored (0 = never).
    pub udp_bad_id_ban: u64,
}

/// A usage error, worded as BitTornado's `parseargs` words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No arguments at all: BitTornado prints the option list.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Bad(String),
}

impl TrackerConfig {
    /// A configuration with every default and the given dfile.
    pub fn with_dfile(dfile: impl Into<PathBuf>) -> Self {
        let args = vec![OsString::from("--dfile"), dfile.into().into_os_string()];
        Self::from_bittornado_args(&args).expect("defaults are valid")
    }

    /// The option list BitTornado prints when run without arguments.
    pub fn usage() -> String {
        let mut s = String::from("arguments are:\n");
        for (name, def, help) in OPTIONS {
            let dflt = match def {
                Def::Int(i) => format!(" (defaults to {i})"),
                Def::Float(f) => format!(" (defaults to {f:?})"),
                Def::Str("") | Def::Required => String::new(),
                Def::Str(v) => format!(" (defaults to '{v}')"),
            };
            s.push_str(&format!("--{name} <arg>\n          {help}{dflt}\n"));
        }
        s
    }

    /// Parses bttrack's command line (`--name value` pairs; no positional arguments).
    pub fn from_bittornado_args(args: &[OsString]) -> Result<TrackerConfig, ConfigError> {
        if args.is_empty() {
            return Err(ConfigError::Usage(Self::usage()));
        }
        let mut values: Vec<Option<String>> = vec![None; OPTIONS.len()];
        let mut i = 0;
        while i < args.len() {
            let a = args[i].to_string_lossy();
            let Some(name) = a.strip_prefix("--") else {
                return Err(ConfigError::Bad("Too many args - 0 max.".to_string()));
            };
            let Some(idx) = OPTIONS.iter().position(|(n, _, _)| *n == name) else {
                return Err(ConfigError::Bad(format!("unknown key --{name}")));
            };
            let Some(v) = args.get(i + 1) else {
                return Err(ConfigError::Bad(
                    "parameter passed in at end with no value".to_string(),
                ));
            };
            values[idx] = Some(v.to_string_lossy().into_owned());
            i += 2;
        }
        let get = |name: &str| -> (Def, Option<&String>) {
            let idx = OPTIONS
                .iter()
                .position(|(n, _, _)| *n == name)
                .expect("declared option");
            (OPTIONS[idx].1, values[idx].as_ref())
        };
        let int = |name: &str| -> Result<i64, ConfigError> {
            match get(name) {
                (Def::Int(d), None) => Ok(d),
                (_, Some(v)) => v.trim().parse::<i64>().map_err(|_| {
                    ConfigError::Bad(format!(
                        "wrong format of --{name} - invalid literal for int(): {v}"
                    ))
                }),
                _ => unreachable!("--{name} is declared as an int"),
            }
        };
        let uint = |name: &str, max: u64| -> Result<u64, ConfigError> {
            let v = int(name)?;
            if v < 0 || v as u64 > max {
                return Err(ConfigError::Bad(format!(
                    "wrong format of --{name} - must be between 0 and {max}"
                )));
            }
            Ok(v as u64)
        };
        let float = |name: &str| -> Result<f64, ConfigError> {
            match get(name) {
                (Def::Float(d), None) => Ok(d),
                (_, Some(v)) => v.trim().parse::<f64>().map_err(|_| {
                    ConfigError::Bad(format!(
                        "wrong format of --{name} - invalid literal for float(): {v}"
                    ))
                }),
                _ => unreachable!("--{name} is declared as a float"),
            }
        };
        let string = |name: &str| -> Result<String, ConfigError> {
            match get(name) {
                (_, Some(v)) => Ok(v.clone()),
                (Def::Str(d), None) => Ok(d.to_string()),
                (Def::Required, None) => {
                    Err(ConfigError::Bad(format!("Option --{name} is required.")))
                }
                _ => unreachable!("--{name} is declared as a string"),
            }
        };
        let path = |name: &str| -> Result<Option<PathBuf>, ConfigError> {
            let s = string(name)?;
            Ok(if s.is_empty() {
                None
            } else {
                Some(PathBuf::from(s))
            })
        };
        let flag = |name: &str| -> Result<bool, ConfigError> { Ok(int(name)? != 0) };
        let scrape_allowed = match string("scrape_allowed")?.as_str() {
            "none" => ScrapeAllowed::None,
            "specific" => ScrapeAllowed::Specific,
            "full" => ScrapeAllowed::Full,
            other => {
                return Err(ConfigError::Bad(format!(
                    "wrong format of --scrape_allowed - must be none, specific or full, not {other}"
                )))
            }
        };
        let logfile = match string("logfile")?.as_str() {
            "" | "-" => None,
            p => Some(PathBuf::from(p)),
        };
        let config = TrackerConfig {
            port: uint("port", 65535)? as u16,
            dfile: PathBuf::from(string("dfile")?),
            bind: string("bind")?
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            ipv6_enabled: flag("ipv6_enabled")?,
            ipv6_binds_v4: flag("ipv6_binds_v4")?,
            socket_timeout: uint("socket_timeout", 86_400)?.max(1),
            save_dfile_interval: uint("save_dfile_interval", 1 << 31)?.max(1),
            timeout_downloaders_interval: uint("timeout_downloaders_interval", 1 << 31)?.max(1),
            reannounce_interval: uint("reannounce_interval", 1 << 31)?,
            response_size: uint("response_size", 10_000)? as usize,
            timeout_check_interval: uint("timeout_check_interval", 86_400)?,
            nat_check: uint("nat_check", 1000)? as u32,
            log_nat_checks: flag("log_nat_checks")?,
            min_time_between_log_flushes: float("min_time_between_log_flushes")?,
            min_time_between_cache_refreshes: float("min_time_between_cache_refreshes")?,
            allowed_dir: path("allowed_dir")?,
            allowed_list: path("allowed_list")?,
            allowed_controls: flag("allowed_controls")?,
            multitracker_enabled: flag("multitracker_enabled")?,
            multitracker_allowed: match string("multitracker_allowed")?.as_str() {
                m @ ("none" | "autodetect" | "all") => m.to_string(),
                other => {
                    return Err(ConfigError::Bad(format!(
                        "wrong format of --multitracker_allowed - must be none, autodetect or all, not {other}"
                    )))
                }
            },
            multitracker_reannounce_interval: uint("multitracker_reannounce_interval", 1 << 31)?,
            multitracker_maxpeers: uint("multitracker_maxpeers", 10_000)?,
            aggregate_forward: string("aggregate_forward")?,
            aggregator: string("aggregator")?,
            hupmonitor: flag("hupmonitor")?,
            http_timeout: uint("http_timeout", 86_400)?,
            parse_dir_interval: uint("parse_dir_interval", 1 << 31)?.max(1),
            show_infopage: flag("show_infopage")?,
            infopage_redirect: string("infopage_redirect")?,
            show_names: flag("show_names")?,
            favicon: path("favicon")?,
            allowed_ips: path("allowed_ips")?,
            banned_ips: path("banned_ips")?,
            only_local_override_ip: uint("only_local_override_ip", 2)? as u8,
            logfile,
            allow_get: flag("allow_get")?,
            keep_dead: flag("keep_dead")?,
            scrape_allowed,
            dedicated_seed_id: string("dedicated_seed_id")?,
            compact_reqd: flag("compact_reqd")?,
            min_interval: uint("min_interval", 1 << 31)?,
            shards: uint("shards", 1024)? as usize,
            max_connections: uint("max_connections", 1 << 20)?.max(1) as usize,
            access_log: flag("access_log")?,
            nat_check_local: flag("nat_check_local")?,
            udp: flag("udp")?,
            udp_bad_id_ban: uint("udp_bad_id_ban", 1 << 31)?,
            http_engine_hyper: match string("http_engine")?.as_str() {
                "httparse" => false,
                "hyper" => true,
                other => {
                    return Err(ConfigError::Bad(format!(
                        "wrong format of --http_engine - must be httparse or hyper, not {other}"
                    )))
                }
            },
        };
        Ok(config)
    }

    /// Whether a client may override its IP (the `ip` parameter or forwarding headers): bttrack's
    /// `only_local_override_ip` resolved (2 = like 1 when NAT checking is off, else anyone).
    pub fn anyone_may_override_ip(&self) -> bool {
        match self.only_local_override_ip {
            0 => true,
            1 => false,
            _ => self.nat_check > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn bttrack_defaults() {
        let c = TrackerConfig::from_bittornado_args(&args(&["--dfile", "x"])).unwrap();
        assert_eq!(c.port, 80);
        assert_eq!(c.save_dfile_interval, 300);
        assert_eq!(c.timeout_downloaders_interval, 2700);
        assert_eq!(c.reannounce_interval, 1800);
        assert_eq!(c.response_size, 50);
        assert_eq!(c.nat_check, 3);
        assert!(c.compact_reqd);
        assert_eq!(c.scrape_allowed, ScrapeAllowed::Full);
        assert_eq!(c.only_local_override_ip, 2);
        assert!(c.anyone_may_override_ip());
        assert!(c.show_infopage && c.show_names && !c.keep_dead && !c.allow_get);
    }

    #[test]
    fn bittornado_errors() {
        let e = |v: &[&str]| {
            TrackerConfig::from_bittornado_args(&args(v))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(e(&["--port", "1"]), "Option --dfile is required.");
        assert_eq!(e(&["--bogus", "1"]), "unknown key --bogus");
        assert_eq!(e(&["--dfile"]), "parameter passed in at end with no value");
        assert_eq!(e(&["pos"]), "Too many args - 0 max.");
        assert!(e(&["--dfile", "x", "--port", "1.5"]).starts_with("wrong format of --port"));
        assert!(e(&["--dfile", "x", "--scrape_allowed", "some"])
            .starts_with("wrong format of --scrape_allowed"));
        assert!(
            matches!(TrackerConfig::from_bittornado_args(&[]), Err(ConfigError::Usage(u)) if u.contains("--dfile <arg>"))
        );
    }

    #[test]
    fn last_value_wins() {
        let c = TrackerConfig::from_bittornado_args(&args(&[
            "--dfile", "x", "--port", "1", "--port", "2",
        ]))
        .unwrap();
        assert_eq!(c.port, 2);
    }
}
