//! `cyclone make` and `btmakemetafile`: make a `.torrent` for each file or directory.
//!
//! The library does the work ([`cyclone_metainfo::create`]); this file maps flags to
//! [`MakeOptions`]/[`WalkOptions`], draws progress, and writes the result atomically.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cyclone_metainfo::create::{
    self, AutoPieceRule, MadeTorrent, MakeOptions, PieceSize, WalkOptions,
};
use cyclone_metainfo::glob::Glob;
use cyclone_metainfo::piece_hasher::HashOptions;

use crate::error::CliError;
use crate::output_file;
use crate::progress_bar::ProgressBar;
use crate::url_lists;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PieceRule {
    /// Power of two, 16 KiB..16 MiB, at most 2048 pieces.
    Modern,
    /// BitTornado 0.3.18's table (32 KiB..2 MiB).
    Bittornado,
}

/// Options shared by `make` and `completedir`.
#[derive(Debug, Clone, clap::Args)]
pub struct MakeFlags {
    /// Backup trackers as tiers: `url,url|url` (commas: same tier, pipes: next tier).
    #[arg(long = "announce-list", alias = "announce_list", value_name = "TIERS")]
    pub announce_list: Option<String>,
    /// BEP 17 http seeds: `url|url`.
    #[arg(long, value_name = "URLS")]
    pub httpseeds: Option<String>,
    /// BEP 19 web seed (url-list); repeat or separate with commas.
    #[arg(short = 'w', long = "url-list", alias = "web-seed", value_name = "URL")]
    pub url_list: Vec<String>,
    /// Comment stored in the torrent.
    #[arg(short = 'c', long)]
    pub comment: Option<String>,
    /// Set the private flag (BEP 27). Without it no `private` key is written at all.
    #[arg(short = 'p', long)]
    pub private: bool,
    /// `info.source` (private trackers use it to tell cross-seeded torrents apart).
    #[arg(short = 's', long)]
    pub source: Option<String>,
    /// Leave out `creation date` (reproducible output).
    #[arg(short = 'd', long)]
    pub no_date: bool,
    /// Leave out `created by`.
    #[arg(long)]
    pub no_created_by: bool,
    /// Piece size with units: 256k, 1MiB, 2^20, 1048576. Must be a power of two.
    #[arg(
        short = 'l',
        long,
        value_name = "SIZE",
        conflicts_with = "piece_size_pow2"
    )]
    pub piece_size: Option<String>,
    /// Piece size as a power of two (BitTornado's option); 0 = automatic.
    #[arg(long = "piece-size-pow2", alias = "piece_size_pow2", value_name = "N")]
    pub piece_size_pow2: Option<u32>,
    /// Rule for the automatic piece size.
    #[arg(long, value_enum, default_value = "modern")]
    pub piece_rule: PieceRule,
    /// Only files whose relative path (or any path component) matches; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files and directories that match; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Include names starting with `.` (skipped by default, as BitTornado does).
    #[arg(long)]
    pub include_hidden: bool,
    /// Skip symlinks (by default they are followed, with loop detection).
    #[arg(long)]
    pub no_follow_symlinks: bool,
    /// Leave out empty files (included by default, as BitTornado and mktorrent do).
    #[arg(long)]
    pub skip_empty: bool,
    /// Hashing threads (0 = one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Overwrite existing output files.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// No progress bar and no summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct MakeArgs {
    /// Tracker announce URL (`""` for a trackerless torrent).
    pub tracker: String,
    /// Files or directories: one torrent each.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output file (`-` = standard output); with several inputs, a directory.
    #[arg(short = 'o', long = "target", alias = "output", value_name = "PATH")]
    pub target: Option<PathBuf>,
    /// `info.name` instead of the file or directory name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub flags: MakeFlags,
}

pub fn run(args: &MakeArgs) -> Result<(), CliError> {
    if args.paths.len() > 1 && args.name.is_some() {
        return Err(CliError::Usage("--name needs exactly one input".into()));
    }
    let job = Job::from_flags(&args.tracker, &args.flags, args.name.as_deref())?;
    let stdout_target = args.target.as_deref().is_some_and(|t| t.as_os_str() == "-");
    if stdout_target && args.paths.len() > 1 {
        return Err(CliError::Usage("`-o -` needs exactly one input".into()));
    }
    for path in &args.paths {
        let target = match &args.target {
            None => create::default_target(path),
            Some(t) if args.paths.len() > 1 || t.is_dir() => t.join(torrent_file_name(path)),
            Some(t) => t.clone(),
        };
        job.make_one(path, &target)?;
    }
    Ok(())
}

/// Metainfo size past which `make` warns (several clients and sites cap at about 10 MB).
const METAINFO_BYTES_WARN: usize = 10_000_000;

/// `<name>.torrent` for an input path.
pub fn torrent_file_name(path: &Path) -> PathBuf {
    let t = create::default_target(path);
    PathBuf::from(t.file_name().unwrap_or_default())
}

/// Everything needed to make torrents, resolved from flags.
#[derive(Clone)]
pub struct Job {
    pub options: MakeOptions,
    pub walk: WalkOptions,
    pub overwrite: bool,
    pub quiet: bool,
    /// Draw the progress bar (off when several jobs share the terminal).
    pub progress: bool,
    /// Torrents made at the same time by `completedir` (0 = one per core).
    pub jobs: usize,
}

impl Job {
    pub fn from_flags(tracker: &str, f: &MakeFlags, name: Option<&str>) -> Result<Job, CliError> {
        let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
        let piece_size = match (&f.piece_size, f.piece_size_pow2) {
            (Some(text), _) => Some(PieceSize::Exact(
                create::parse_piece_size(text).map_err(|e| usage(&e))?,
            )),
            (None, Some(0)) | (None, None) => Some(PieceSize::Auto(match f.piece_rule {
                PieceRule::Modern => AutoPieceRule::Modern,
                PieceRule::Bittornado => AutoPieceRule::BitTornado,
            })),
            (None, Some(n)) if n < 63 => {
                let size = 1u64 << n;
                create::check_piece_size(size).map_err(|e| usage(&e))?;
                Some(PieceSize::Exact(size))
            }
            (None, Some(n)) => {
                return Err(CliError::Usage(format!("piece size 2^{n} is out of range")))
            }
        };
        let globs = |list: &[String]| -> Result<Vec<Glob>, CliError> {
            list.iter()
                .map(|g| Glob::new(g).map_err(|e| usage(&e)))
                .collect()
        };
        let walk = WalkOptions {
            include_hidden: f.include_hidden,
            skip_symlinks: f.no_follow_symlinks,
            skip_empty: f.skip_empty,
            skip_names: Vec::new(),
            include: globs(&f.include)?,
            exclude: globs(&f.exclude)?,
        };
        let creation_date = (!f.no_date).then(unix_now);
        let options = MakeOptions {
            announce: Some(tracker.trim().to_string()).filter(|t| !t.is_empty()),
            announce_list: f
                .announce_list
                .as_deref()
                .map(url_lists::parse_tiers)
                .unwrap_or_default(),
            httpseeds: f
                .httpseeds
                .as_deref()
                .map(url_lists::parse_pipe_list)
                .unwrap_or_default(),
            url_list: f
                .url_list
                .iter()
                .flat_map(|u| u.split(','))
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
            comment: f.comment.clone(),
            private: f.private,
            source: f.source.clone(),
            creation_date,
            created_by: (!f.no_created_by)
                .then(|| format!("cyclone {}", env!("CARGO_PKG_VERSION"))),
            name: name.map(|n| n.as_bytes().to_vec()),
            piece_size,
            hash: HashOptions {
                threads: f.threads,
                ..HashOptions::default()
            },
        };
        Ok(Job {
            options,
            walk,
            overwrite: f.force,
            quiet: f.quiet,
            progress: !f.quiet,
            jobs: 0,
        })
    }

    /// Lists, hashes and writes one torrent.
    pub fn make_one(&self, source: &Path, target: &Path) -> Result<MadeTorrent, CliError> {
        let fail = |e: create::MakeError| CliError::Failed(e.to_string());
        let list = create::collect_files(source, &self.walk).map_err(fail)?;
        let label = source.display().to_string();
        let mut bar = ProgressBar::new(label, !self.progress);
        let made = create::make_torrent(&list, &self.options, &mut |p| bar.update(p));
        bar.finish();
        let made = made.map_err(fail)?;
        output_file::write(target, &made.bytes, self.overwrite)?;
        // mktorrent #34: clients refuse very large metainfo files.
        if made.bytes.len() > METAINFO_BYTES_WARN {
            eprintln!(
                "warning: {} is {} bytes; many clients refuse torrents over {} MB, use a bigger --piece-size",
                target.display(),
                made.bytes.len(),
                METAINFO_BYTES_WARN / 1_000_000
            );
        }
        if !self.quiet {
            eprintln!(
                "{}: info hash {}, {} file{}, {} bytes, {} pieces of {} bytes",
                if target.as_os_str() == "-" {
                    "<stdout>".into()
                } else {
                    target.display().to_string()
                },
                made.info_hash,
                made.file_count,
                if made.file_count == 1 { "" } else { "s" },
                made.total_length,
                made.piece_count,
                made.piece_length
            );
        }
        Ok(made)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
