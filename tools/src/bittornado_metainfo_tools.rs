//! BitTornado's metainfo tools as multicall aliases: `btmakemetafile`, `btcompletedir`,
//! `btreannounce`, `btcopyannounce`, `btrename`, `btsethttpseeds`, with BitTornado 0.3.18's
//! argument syntax, usage texts and messages. The work is done by the same functions as the
//! `cyclone` subcommands.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cyclone_metainfo::create::{AutoPieceRule, PieceSize, WalkOptions};

use crate::bittornado_args::{self, Default, OptionDef};
use crate::commands::make::{torrent_file_name, Job, MakeFlags, PieceRule};
use crate::commands::{completedir, copyannounce, reannounce, rename, sethttpseeds};
use crate::error::CliError;
use crate::url_lists;

/// `btmakemetafile`'s options (BitTornado `makemetafile.defaults`), plus master's
/// `--announce-list` spelling.
const MAKE_DEFS: &[OptionDef] = &[
    OptionDef {
        name: "announce_list",
        default: Default::Str(""),
        help: "a list of announce URLs - explained below",
    },
    OptionDef {
        name: "announce-list",
        default: Default::Str(""),
        help: "same as --announce_list (BitTornado master's spelling)",
    },
    OptionDef {
        name: "httpseeds",
        default: Default::Str(""),
        help: "a list of http seed URLs - explained below",
    },
    OptionDef {
        name: "piece_size_pow2",
        default: Default::Int(0),
        help: "which power of 2 to set the piece size to (0 = automatic)",
    },
    OptionDef {
        name: "comment",
        default: Default::Str(""),
        help: "optional human-readable comment to put in .torrent",
    },
    OptionDef {
        name: "filesystem_encoding",
        default: Default::Str(""),
        help: "optional specification for filesystem encoding (set automatically in recent Python versions)",
    },
    OptionDef {
        name: "target",
        default: Default::Str(""),
        help: "optional target file for the torrent",
    },
];

const ANNOUNCE_LIST_DETAILS: &str =
    "    announce_list = optional list of redundant/backup tracker URLs, in the format:
           url[,url...][|url[,url...]...]
                where URLs separated by commas are all tried first
                before the next group of URLs separated by the pipe is checked.
                If none is given, it is assumed you don't want one in the metafile.
                If announce_list is given, clients which support it
                will ignore the <announce> value.
           Examples:
                http://tracker1.com|http://tracker2.com|http://tracker3.com
                     (tries trackers 1-3 in order)
                http://tracker1.com,http://tracker2.com,http://tracker3.com
                     (tries trackers 1-3 in a randomly selected order)
                http://tracker1.com|http://backup1.com,http://backup2.com
                     (tries tracker 1 first, then tries between the 2 backups randomly)

    httpseeds = optional list of http-seed URLs, in the format:
            url[|url...]";

/// BitTornado's `b` in its usage lines: the base name of argv[0].
fn base(argv0: &str) -> String {
    Path::new(argv0)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| argv0.to_string())
}

/// Arguments as text (BitTornado's parser works on strings).
fn strings(args: &[OsString]) -> Result<Vec<String>, CliError> {
    args.iter()
        .map(|a| {
            a.to_str().map(str::to_string).ok_or_else(|| {
                CliError::Usage(format!(
                    "argument {a:?} is not UTF-8; use the `cyclone` subcommand for such paths"
                ))
            })
        })
        .collect()
}

/// Parses BitTornado maker options into a job (BitTornado defaults: its piece-size table,
/// its walk, creation date, no `created by`, overwrite).
fn maker_job(args: &[String]) -> Result<(Job, Vec<String>, String), CliError> {
    let parsed = match bittornado_args::parse(args, MAKE_DEFS, Some(2), None) {
        Ok(p) => p,
        Err(e) => {
            println!("error: {e}");
            println!("run with no args for parameter explanations");
            return Err(CliError::UsageShown);
        }
    };
    let tiers = match parsed.str("announce-list") {
        "" => parsed.str("announce_list").to_string(),
        s => s.to_string(),
    };
    let pow2 = parsed.int("piece_size_pow2");
    if !(0..63).contains(&pow2) {
        return Err(CliError::Usage(format!(
            "piece_size_pow2 {pow2} is out of range"
        )));
    }
    let flags = MakeFlags {
        announce_list: Some(tiers).filter(|t| !t.is_empty()),
        httpseeds: Some(parsed.str("httpseeds").to_string()).filter(|s| !s.is_empty()),
        url_list: Vec::new(),
        comment: Some(parsed.str("comment").to_string()).filter(|s| !s.is_empty()),
        private: false,
        source: None,
        no_date: false,
        no_created_by: true,
        piece_size: None,
        piece_size_pow2: Some(pow2 as u32),
        piece_rule: PieceRule::Bittornado,
        include: Vec::new(),
        exclude: Vec::new(),
        include_hidden: false,
        no_follow_symlinks: false,
        skip_empty: false,
        threads: 0,
        force: true,
        quiet: true,
    };
    let mut job = Job::from_flags(&parsed.positional[0], &flags, None)?;
    job.walk = WalkOptions::bittornado();
    // BitTornado printed `xx.x% complete`; we draw the bar (stderr, terminals only) but
    // print no summary line, so scripted output stays BitTornado's (nothing).
    job.progress = true;
    if pow2 == 0 {
        job.options.piece_size = Some(PieceSize::Auto(AutoPieceRule::BitTornado));
    }
    Ok((
        job,
        parsed.positional[1..].to_vec(),
        parsed.str("target").to_string(),
    ))
}

fn maker_usage(argv0: &str, what: &str, extra: Option<&str>) {
    println!("Usage: {} <trackerurl> {what} [params...]", base(argv0));
    if let Some(e) = extra {
        println!("{e}");
    }
    println!();
    println!("{}", bittornado_args::format_definitions(MAKE_DEFS));
    println!("{ANNOUNCE_LIST_DETAILS}");
    println!();
}

/// `btmakemetafile <trackerurl> <file> [file...] [params...]`
pub fn btmakemetafile(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    if args.len() < 2 {
        maker_usage(argv0, "<file> [file...]", None);
        return Err(CliError::UsageShown);
    }
    let (job, files, target) = maker_job(&strings(args)?)?;
    for file in &files {
        let file = PathBuf::from(file);
        let out = if target.is_empty() {
            cyclone_metainfo::create::default_target(&file)
        } else if files.len() > 1 || Path::new(&target).is_dir() {
            Path::new(&target).join(torrent_file_name(&file))
        } else {
            PathBuf::from(&target)
        };
        job.make_one(&file, &out)?;
    }
    Ok(())
}

/// `btcompletedir <trackerurl> <dir> [dir...] [params...]`
pub fn btcompletedir(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    if args.len() < 2 {
        maker_usage(
            argv0,
            "<dir> [dir...]",
            Some("makes a .torrent file for every file or directory present in each dir."),
        );
        return Err(CliError::UsageShown);
    }
    let (job, dirs, target) = maker_job(&strings(args)?)?;
    let dirs: Vec<PathBuf> = dirs.into_iter().map(PathBuf::from).collect();
    let target = (!target.is_empty()).then(|| PathBuf::from(target));
    completedir::run_job(&job, &dirs, target.as_deref(), &base(argv0))
}

/// `btreannounce <announce> [--announce_list <arg>] file1.torrent [file2.torrent...]`
pub fn btreannounce(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    let b = base(argv0);
    if args.len() < 2 {
        println!("Usage: {b} <announce> [--announce_list <arg>] file1.torrent [file2.torrent...]");
        println!();
        println!("  Where:");
        println!("    announce = tracker URL");
        println!("           Example: http://www.tracker.com:6699/announce");
        println!();
        println!("{ANNOUNCE_LIST_DETAILS}");
        println!();
        return Err(CliError::UsageShown);
    }
    let args = strings(args)?;
    let announce = &args[0];
    let (tiers, files) = if args[1] == "--announce_list" || args[1] == "--announce-list" {
        if args.len() < 4 {
            println!("error: no .torrent files given");
            println!();
            return Err(CliError::UsageShown);
        }
        (Some(url_lists::parse_tiers(&args[2])), &args[3..])
    } else {
        (None, &args[1..])
    };
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    reannounce::for_each(&files, &b, |path| {
        reannounce::set_trackers(path, Some(announce), tiers.as_deref(), false)
    })
}

/// `btcopyannounce <source.torrent> <file1.torrent> [file2.torrent...]`
pub fn btcopyannounce(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    let b = base(argv0);
    if args.len() < 2 {
        println!("Usage: {b} <source.torrent> <file1.torrent> [file2.torrent...]");
        println!("copies announce information from source to all specified torrents");
        return Err(CliError::UsageShown);
    }
    let files: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
    copyannounce::copy(Path::new(&args[0]), &files, false, &b)
}

/// `btrename file.torrent new.filename.ext`
pub fn btrename(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    println!(
        "{} 20021119 - change the suggested filename in a .torrent file",
        crate::aliases::program_name(argv0)
    );
    println!();
    if args.len() != 2 {
        println!("{argv0} file.torrent new.filename.ext");
        println!();
        return Err(CliError::UsageShown);
    }
    use std::os::unix::ffi::OsStrExt;
    rename::rename(Path::new(&args[0]), args[1].as_bytes(), false, false)?;
    println!();
    println!("done.");
    println!();
    Ok(())
}

/// `btsethttpseeds <http-seeds> file1.torrent [file2.torrent...]`
pub fn btsethttpseeds(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    let b = base(argv0);
    if args.len() < 2 {
        println!("Usage: {b} <http-seeds> file1.torrent [file2.torrent...]");
        println!();
        println!("  Where:");
        println!("    http-seeds = list of seed URLs, in the format:");
        println!("           url[|url...] or 0");
        println!("                if the list is a zero, any http seeds will be stripped.");
        println!();
        return Err(CliError::UsageShown);
    }
    let seeds = args[0].to_string_lossy();
    let files: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
    sethttpseeds::set_all(&seeds, &files, false, &b)
}
