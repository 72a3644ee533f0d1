//! `btdownloadheadless`: BitTornado's downloader options (defaults from its `download_bt1.defaults`) mapped onto
//! the engine's session through [`SessionOptions`], the mapping `cyclone download` uses too. Options with no
//! effect in cyclone are accepted with their defaults and listed, with the reason, in [`IGNORED`], so BitTornado
//! command lines keep working.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cyclone_engine::session::SessionConfig;

use crate::bittornado_args::{self, Default as D, OptionDef};
use crate::download_options::SessionOptions;
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

/// Options accepted for compatibility that have no effect, each with the reason. Every other option of
/// [`definitions`] acts: the engine options through [`session_options`] and [`SessionOptions::apply`] (the mapping
/// `cyclone download` uses too), `responsefile`/`saveas`/`priority`/`selector_enabled`/`url` in
/// [`btdownloadheadless`].
pub const IGNORED: &[(&str, &str)] = &[
    (
        "expire_cache_data",
        "resume records are per torrent and replaced, never left to expire",
    ),
    (
        "timeout_check_interval",
        "connection timeouts are checked on every 250 ms torrent tick",
    ),
    (
        "ipv6_enabled",
        "the address family follows --bind and the peers' addresses",
    ),
    (
        "ipv6_binds_v4",
        "the address family follows --bind and the peers' addresses",
    ),
    (
        "upnp_nat_access",
        "no UPnP (and BitTornado did it on Windows only)",
    ),
    (
        "upload_rate_fudge",
        "upload rates count bytes as the socket accepts them; no TCP buffer estimate",
    ),
    (
        "tcp_ack_fudge",
        "received bytes are not charged to the upload limit",
    ),
    (
        "alloc_type",
        "files are always sparse and pieces written in place (no out-of-place slots to allocate)",
    ),
    ("alloc_rate", "no background allocation (see alloc_type)"),
    (
        "buffer_reads",
        "upload reads are sized to the request from the page cache; no piece read buffer",
    ),
    (
        "write_buffer_size",
        "pieces are assembled in memory and written whole (see --piece_memory)",
    ),
    (
        "auto_flush",
        "data is fsynced before every resume-record write instead",
    ),
    (
        "double_check",
        "pieces are never moved, so there is nothing to re-hash after a move",
    ),
    (
        "triple_check",
        "every piece is hashed before it is written; no extra re-read",
    ),
    ("lock_files", "no flock on the data files yet"),
    ("lock_while_reading", "no flock on the data files yet"),
    (
        "spew",
        "the status block has no per-peer table yet (btdownloadheadless ignored it too)",
    ),
    (
        "min_uploads",
        "BitTornado uses it only for super-seeding, which cyclone does not do",
    ),
    ("super_seeder", "no super-seeding yet"),
    (
        "request_backlog",
        "unused by BitTornado too: the pipeline depth follows each peer's rate",
    ),
    ("crypto_allowed", "no MSE/PE encryption yet"),
    ("crypto_only", "no MSE/PE encryption yet"),
    ("crypto_stealth", "no MSE/PE encryption yet"),
    (
        "save_options",
        "no options file: every run takes its options from the command line",
    ),
];

/// The engine options of a parsed BitTornado command line (ints and floats as BitTornado declares them; values
/// out of a field's range are clamped, not wrapped).
pub fn session_options(p: &bittornado_args::Parsed) -> Result<SessionOptions, CliError> {
    let bind = p.str("bind").split(',').next().unwrap_or("").trim();
    let bind = if bind.is_empty() {
        None
    } else {
        Some(
            bind.parse::<IpAddr>()
                .map_err(|_| CliError::Usage(format!("--bind {bind}: not an IP address")))?,
        )
    };
    let port = |name: &str| p.int(name).clamp(0, 65535) as u16;
    let count = |name: &str| p.int(name).clamp(0, 1 << 16) as usize;
    let uint = |name: &str| p.int(name).clamp(0, i64::from(u32::MAX)) as u32;
    let flag = |name: &str| u8::from(p.int(name) != 0);
    let text = |name: &str| Some(p.str(name).to_string()).filter(|s| !s.is_empty());
    Ok(SessionOptions {
        bind,
        minport: port("minport"),
        maxport: port("maxport"),
        random_port: flag("random_port"),
        max_upload_rate: p.int("max_upload_rate") as f64,
        max_download_rate: p.int("max_download_rate") as f64,
        max_uploads: count("max_uploads"),
        max_initiate: count("max_initiate"),
        max_connections: count("max_connections"),
        max_files_open: count("max_files_open"),
        check_hashes: flag("check_hashes"),
        breakup_seed_bitfield: flag("breakup_seed_bitfield"),
        keepalive_interval: p.float("keepalive_interval"),
        timeout: p.float("timeout"),
        display_interval: p.float("display_interval"),
        round_robin_period: p.int("round_robin_period") as f64,
        snub_time: p.float("snub_time"),
        rarest_first_cutoff: uint("rarest_first_cutoff"),
        rarest_first_priority_cutoff: uint("rarest_first_priority_cutoff"),
        max_rate_period: p.float("max_rate_period"),
        max_slice_length: uint("max_slice_length"),
        max_message_length: uint("max_message_length"),
        download_slice_size: uint("download_slice_size"),
        rerequest_interval: p.int("rerequest_interval").max(0) as u64,
        min_peers: count("min_peers"),
        http_timeout: p.int("http_timeout") as f64,
        ip: text("ip"),
        dedicated_seed_id: text("dedicated_seed_id"),
        security: flag("security"),
        auto_kick: flag("auto_kick"),
    })
}

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
    if !p.str("url").is_empty() {
        return Err(CliError::Usage(
            "--url: fetching the .torrent over HTTP is not supported; download it and give its path".into(),
        ));
    }
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
    let config = session_options(&p)?.apply(SessionConfig::default())?;
    let metainfo = crate::torrent_file::read(Path::new(&responsefile))?;
    let saveas = p.str("saveas");
    let saveas = (!saveas.is_empty()).then(|| PathBuf::from(saveas));
    // `--selector_enabled 0` turns off BitTornado's file selector and fast resume: no priorities, no resume data.
    let selector = p.int("selector_enabled") != 0;
    let resume_dir = std::env::var_os("HOME")
        .filter(|_| selector)
        .map(|h| PathBuf::from(h).join(".cyclone/resume"));
    let priority = if selector {
        p.str("priority").to_string()
    } else {
        String::new()
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> bittornado_args::Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        bittornado_args::parse(&args, &definitions(), Some(0), Some(1)).unwrap()
    }

    #[test]
    fn ignored_lists_declared_options_only_once() {
        let defs = definitions();
        for (name, reason) in IGNORED {
            assert!(
                defs.iter().any(|d| d.name == *name),
                "{name} is not an option"
            );
            assert!(!reason.is_empty());
            assert_eq!(
                IGNORED.iter().filter(|(n, _)| n == name).count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn options_that_act_are_not_listed_as_ignored() {
        // Handled by btdownloadheadless itself.
        let own = [
            "responsefile",
            "url",
            "saveas",
            "priority",
            "selector_enabled",
        ];
        // Everything session_options reads: a changed value must change the session options.
        let defaults = session_options(&parse(&["x.torrent"])).unwrap();
        for def in definitions() {
            let ignored = IGNORED.iter().any(|(n, _)| *n == def.name);
            if own.contains(&def.name) {
                assert!(!ignored, "{}", def.name);
                continue;
            }
            let value = match def.default {
                D::Int(i @ (0 | 1)) => (1 - i).to_string(),
                D::Int(i) => (i + 3).to_string(),
                D::Float(x) => (x + 3.0).to_string(),
                D::Str(_) | D::Required => "127.0.0.2".to_string(),
            };
            let flag = format!("--{}", def.name);
            let changed = session_options(&parse(&["x.torrent", &flag, &value])).unwrap();
            let acts = format!("{changed:?}") != format!("{defaults:?}");
            assert_eq!(
                acts, !ignored,
                "--{}: acts = {acts}, listed in IGNORED = {ignored}",
                def.name
            );
        }
    }

    #[test]
    fn bittornado_values_map_onto_the_session() {
        let p = parse(&[
            "x.torrent",
            "--snub_time",
            "12",
            "--round_robin_period",
            "9",
            "--rarest_first_cutoff",
            "7",
            "--min_peers",
            "4",
            "--rerequest_interval",
            "100",
            "--http_timeout",
            "20",
            "--security",
            "0",
            "--auto_kick",
            "0",
            "--max_slice_length",
            "32768",
            "--ip",
            "10.9.8.7",
            "--bind",
            "127.0.0.1,::1",
            "--max_upload_rate",
            "-1",
        ]);
        let c = session_options(&p)
            .unwrap()
            .apply(SessionConfig::default())
            .unwrap();
        assert_eq!(c.snub_time, std::time::Duration::from_secs(12));
        assert_eq!(c.round_robin_period, std::time::Duration::from_secs(9));
        assert_eq!(c.rarest_first_cutoff, 7);
        assert_eq!(c.min_peers, 4);
        assert_eq!(c.rerequest_interval, std::time::Duration::from_secs(100));
        assert_eq!(c.http_timeout, std::time::Duration::from_secs(20));
        assert!(!c.security && !c.auto_kick);
        assert_eq!(c.max_slice_length, 32768);
        assert_eq!(c.announce_ip, Some("10.9.8.7".parse().unwrap()));
        assert_eq!(c.bind, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.max_upload_rate, 0, "-1 (automatic) is unlimited");
        let p = parse(&["x.torrent", "--download_slice_size", "8192"]);
        assert!(session_options(&p)
            .unwrap()
            .apply(SessionConfig::default())
            .is_err());
    }
}
