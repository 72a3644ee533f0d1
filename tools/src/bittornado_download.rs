//! `btdownloadheadless`: BitTornado's downloader options (defaults from its `download_bt1.defaults`) mapped onto
//! the engine's session. Options the engine does not implement are accepted with their defaults and ignored (the
//! list is `IGNORED` below), so BitTornado command lines keep working.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cyclone_engine::session::SessionConfig;

use crate::bittornado_args::{self, Default as D, OptionDef};
use crate::error::CliError;

macro_rules! opt {
    ($name:expr, $default:expr, $help:expr) => {
        OptionDef {
            name: $name,
            default: $default,
            help: $help,
        }
    };
}

/// BitTornado 0.3.18's downloader options, in its order.
pub fn definitions() -> Vec<OptionDef> {
    vec![
        opt!("responsefile", D::Str(""), "file the server response was stored in, alternative to url"),
        opt!("url", D::Str(""), "url to get file from, alternative to responsefile"),
        opt!("selector_enabled", D::Int(1), "whether to enable the file selector and fast resume function"),
        opt!("expire_cache_data", D::Int(10), "the number of days after which you wish to expire old cache data (0 = disabled)"),
        opt!("priority", D::Str(""), "a list of file priorities separated by commas, must be one per file, 0 = highest, 1 = normal, 2 = lowest, -1 = download disabled"),
        opt!("saveas", D::Str(""), "local file name to save the file as, null indicates query user"),
        opt!("timeout", D::Float(300.0), "time to wait between closing sockets which nothing has been received on"),
        opt!("timeout_check_interval", D::Float(60.0), "time to wait between checking if any connections have timed out"),
        opt!("max_slice_length", D::Int(1 << 17), "maximum length slice to send to peers, larger requests are ignored"),
        opt!("max_rate_period", D::Float(20.0), "maximum amount of time to guess the current rate estimate represents"),
        opt!("bind", D::Str(""), "comma-separated list of ips/hostnames to bind to locally"),
        opt!("ipv6_enabled", D::Int(0), "allow the client to connect to peers via IPv6"),
        opt!("ipv6_binds_v4", D::Int(1), "set if an IPv6 server socket won't also field IPv4 connections"),
        opt!("upnp_nat_access", D::Int(1), "attempt to autoconfigure a UPnP router to forward a server port (0 = disabled, 1 = mode 1 [fast], 2 = mode 2 [slow])"),
        opt!("upload_rate_fudge", D::Float(5.0), "time equivalent of writing to kernel-level TCP buffer, for rate adjustment"),
        opt!("tcp_ack_fudge", D::Float(0.03), "how much TCP ACK download overhead to add to upload rate calculations (0 = disabled)"),
        opt!("display_interval", D::Float(0.5), "time between updates of displayed information"),
        opt!("rerequest_interval", D::Int(300), "time to wait between requesting more peers"),
        opt!("min_peers", D::Int(20), "minimum number of peers to not do rerequesting"),
        opt!("http_timeout", D::Int(60), "number of seconds to wait before assuming that an http connection has timed out"),
        opt!("max_initiate", D::Int(40), "number of peers at which to stop initiating new connections"),
        opt!("check_hashes", D::Int(1), "whether to check hashes on disk"),
        opt!("max_upload_rate", D::Int(0), "maximum kB/s to upload at (0 = no limit, -1 = automatic)"),
        opt!("max_download_rate", D::Int(0), "maximum kB/s to download at (0 = no limit)"),
        opt!("alloc_type", D::Str("normal"), "allocation type (may be normal, background, pre-allocate or sparse)"),
        opt!("alloc_rate", D::Float(2.0), "rate (in MiB/s) to allocate space at using background allocation"),
        opt!("buffer_reads", D::Int(1), "whether to buffer disk reads"),
        opt!("write_buffer_size", D::Int(4), "the maximum amount of space to use for buffering disk writes (in megabytes, 0 = disabled)"),
        opt!("breakup_seed_bitfield", D::Int(1), "sends an incomplete bitfield and then fills with have messages, in order to get around stupid ISP manipulation"),
        opt!("snub_time", D::Float(30.0), "seconds to wait for data to come in over a connection before assuming it's semi-permanently choked"),
        opt!("spew", D::Int(0), "whether to display diagnostic info to stdout"),
        opt!("rarest_first_cutoff", D::Int(2), "number of downloads at which to switch from random to rarest first"),
        opt!("rarest_first_priority_cutoff", D::Int(5), "the number of peers which need to have a piece before other partials take priority over rarest first"),
        opt!("min_uploads", D::Int(4), "the number of uploads to fill out to with extra optimistic unchokes"),
        opt!("max_files_open", D::Int(50), "the maximum number of files to keep open at a time, 0 means no limit"),
        opt!("round_robin_period", D::Int(30), "the number of seconds between the client's switching upload targets"),
        opt!("super_seeder", D::Int(0), "whether to use special upload-efficiency-maximizing routines (only for dedicated seeds)"),
        opt!("security", D::Int(1), "whether to enable extra security features intended to prevent abuse"),
        opt!("max_connections", D::Int(0), "the absolute maximum number of peers to connect with (0 = no limit)"),
        opt!("auto_kick", D::Int(1), "whether to allow the client to automatically kick/ban peers that send bad data"),
        opt!("double_check", D::Int(1), "whether to double-check data being written to the disk for errors (may increase CPU load)"),
        opt!("triple_check", D::Int(0), "whether to thoroughly check data being written to the disk (may slow disk access)"),
        opt!("lock_files", D::Int(1), "whether to lock files the client is working with"),
        opt!("lock_while_reading", D::Int(0), "whether to lock access to files being read"),
        opt!("auto_flush", D::Int(0), "minutes between automatic flushes to disk (0 = disabled)"),
        opt!("dedicated_seed_id", D::Str(""), "code to send to tracker identifying as a dedicated seed"),
        opt!("minport", D::Int(10000), "minimum port to listen on, counts up if unavailable"),
        opt!("maxport", D::Int(60000), "maximum port to listen on"),
        opt!("random_port", D::Int(1), "whether to choose randomly inside the port range instead of counting up linearly"),
        opt!("ip", D::Str(""), "ip to report you have to the tracker."),
        opt!("keepalive_interval", D::Float(120.0), "number of seconds to pause between sending keepalives"),
        opt!("download_slice_size", D::Int(1 << 14), "How many bytes to query for per request."),
        opt!("max_message_length", D::Int(1 << 23), "maximum length prefix encoding you'll accept over the wire - larger values get the connection dropped."),
        opt!("max_uploads", D::Int(7), "the maximum number of uploads to allow at once."),
        opt!("request_backlog", D::Int(10), "maximum number of requests to keep in a single pipe at once."),
        opt!("crypto_allowed", D::Int(0), "whether to allow the client to accept encrypted connections"),
        opt!("crypto_only", D::Int(0), "whether to only create or allow encrypted connections"),
        opt!("crypto_stealth", D::Int(0), "whether to prevent all non-encrypted connection attempts"),
        opt!("save_options", D::Int(0), "whether to save the current options as the new default configuration (only for btdownloadheadless.py)"),
    ]
}

/// Options accepted for compatibility but not acted on by the engine yet.
pub const IGNORED: &[&str] = &[
    "url",
    "selector_enabled",
    "expire_cache_data",
    "priority",
    "timeout_check_interval",
    "max_slice_length",
    "max_rate_period",
    "ipv6_enabled",
    "ipv6_binds_v4",
    "upnp_nat_access",
    "upload_rate_fudge",
    "tcp_ack_fudge",
    "rerequest_interval",
    "min_peers",
    "http_timeout",
    "alloc_type",
    "alloc_rate",
    "buffer_reads",
    "write_buffer_size",
    "breakup_seed_bitfield",
    "snub_time",
    "spew",
    "rarest_first_cutoff",
    "rarest_first_priority_cutoff",
    "min_uploads",
    "round_robin_period",
    "super_seeder",
    "security",
    "auto_kick",
    "double_check",
    "triple_check",
    "lock_files",
    "lock_while_reading",
    "auto_flush",
    "dedicated_seed_id",
    "random_port",
    "ip",
    "download_slice_size",
    "max_message_length",
    "request_backlog",
    "crypto_allowed",
    "crypto_only",
    "crypto_stealth",
    "save_options",
];

/// `btdownloadheadless <torrent> [--option value ...]`
pub fn btdownloadheadless(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    let defs = definitions();
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.to_str()
                .map(str::to_string)
                .ok_or_else(|| CliError::Usage(format!("argument is not UTF-8: {a:?}")))
        })
        .collect::<Result<_, _>>()?;
    if args.is_empty() {
        println!(
            "Usage: {} <global options>\n",
            crate::aliases::program_name(argv0)
        );
        print!("{}", bittornado_args::format_definitions(&defs));
        return Err(CliError::UsageShown);
    }
    let p = bittornado_args::parse(&args, &defs, Some(0), Some(1))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let responsefile = match (p.positional.first(), p.str("responsefile")) {
        (Some(_), r) if !r.is_empty() => {
            return Err(CliError::Usage(
                "must have responsefile or url as arg or parameter, not both".into(),
            ))
        }
        (Some(f), _) => f.clone(),
        (None, r) if !r.is_empty() => r.to_string(),
        (None, _) => {
            return Err(CliError::Usage(
                "need responsefile or url, must have one, cannot have both".into(),
            ))
        }
    };
    let metainfo = crate::torrent_file::read(Path::new(&responsefile))?;
    let bind = p.str("bind").split(',').next().unwrap_or("").trim();
    let bind: IpAddr = if bind.is_empty() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        bind.parse()
            .map_err(|_| CliError::Usage(format!("--bind {bind}: not an IP address")))?
    };
    let rate = |name: &str| -> u64 {
        let v = p.int(name);
        if v > 0 {
            v as u64 * 1000
        } else {
            0
        }
    };
    let secs = |name: &str| Duration::from_secs_f64(p.float(name).clamp(0.1, 1e7));
    let config = SessionConfig {
        bind,
        minport: p.int("minport").clamp(0, 65535) as u16,
        maxport: p.int("maxport").clamp(0, 65535) as u16,
        max_upload_rate: rate("max_upload_rate"),
        max_download_rate: rate("max_download_rate"),
        max_uploads: p.int("max_uploads").clamp(0, 1 << 16) as usize,
        max_initiate: p.int("max_initiate").clamp(0, 1 << 16) as usize,
        max_connections: p.int("max_connections").clamp(0, 1 << 16) as usize,
        check_hashes: p.int("check_hashes") != 0,
        breakup_seed_bitfield: p.int("breakup_seed_bitfield") != 0,
        max_files_open: p.int("max_files_open").clamp(0, 65536) as usize,
        keepalive_interval: secs("keepalive_interval"),
        timeout: secs("timeout"),
        display_interval: secs("display_interval"),
        ..Default::default()
    };
    let saveas = p.str("saveas");
    let saveas = (!saveas.is_empty()).then(|| PathBuf::from(saveas));
    let resume_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cyclone/resume"));
    let priority = p.str("priority").to_string();
    crate::commands::download::run_session(
        config,
        metainfo,
        Some(priority.as_str()),
        saveas.as_deref(),
        resume_dir.as_deref(),
        false,
        false,
    )
}
