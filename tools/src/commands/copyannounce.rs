//! `cyclone copyannounce` and `btcopyannounce`: copy `announce` and `announce-list` from
//! one torrent to others (an absent announce-list in the source deletes the targets').

use std::path::PathBuf;

use crate::commands::reannounce::{for_each, set_trackers};
use crate::error::CliError;
use crate::torrent_file;
use crate::url_lists;

#[derive(Debug, clap::Args)]
pub struct CopyannounceArgs {
    /// Torrent to copy the trackers from.
    pub source: PathBuf,
    /// Torrents to change in place.
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// Print what would change, write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(args: &CopyannounceArgs) -> Result<(), CliError> {
    copy(
        &args.source,
        &args.torrents,
        args.dry_run,
        "cyclone copyannounce",
    )
}

pub fn copy(
    source: &std::path::Path,
    torrents: &[PathBuf],
    dry_run: bool,
    program: &str,
) -> Result<(), CliError> {
    let src = torrent_file::read(source)?;
    println!("new announce: {}", src.announce.as_deref().unwrap_or(""));
    let has_list = src.raw_top_level.contains_key(&b"announce-list"[..]);
    if has_list {
        println!(
            "new announce-list: {}",
            url_lists::format_tiers(&src.announce_list)
        );
    }
    let tiers = has_list.then_some(src.announce_list.as_slice());
    for_each(torrents, program, |path| {
        set_trackers(path, src.announce.as_deref(), tiers, dry_run)
    })
}
