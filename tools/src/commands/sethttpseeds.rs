//! `cyclone sethttpseeds` and `btsethttpseeds`: replace the BEP 17 `httpseeds` list, or
//! strip it with `0` (BitTornado's semantics and messages). The info-hash is unchanged.

use std::path::{Path, PathBuf};

use crate::commands::reannounce::{finish, for_each};
use crate::error::CliError;
use crate::torrent_edit::{self, Editable};
use crate::url_lists;

#[derive(Debug, clap::Args)]
pub struct SethttpseedsArgs {
    /// Seed URLs `url|url`, or `0` to remove them.
    pub seeds: String,
    /// Torrents to change in place.
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// Print what would change, write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(args: &SethttpseedsArgs) -> Result<(), CliError> {
    set_all(
        &args.seeds,
        &args.torrents,
        args.dry_run,
        "cyclone sethttpseeds",
    )
}

pub fn set_all(
    seeds: &str,
    torrents: &[PathBuf],
    dry_run: bool,
    program: &str,
) -> Result<(), CliError> {
    let list = if seeds == "0" {
        Vec::new()
    } else {
        url_lists::parse_pipe_list(seeds)
    };
    for_each(torrents, program, |path| set_one(path, &list, dry_run))
}

fn set_one(path: &Path, seeds: &[String], dry_run: bool) -> Result<(), CliError> {
    let mut t = Editable::load(path)?;
    if t.metainfo.raw_top_level.contains_key(&b"httpseeds"[..]) {
        println!(
            "old http-seed list for {}: {}",
            path.display(),
            t.metainfo.httpseeds.join("|")
        );
    }
    if seeds.is_empty() {
        t.remove("httpseeds");
    } else {
        t.set("httpseeds", torrent_edit::string_list(seeds));
    }
    finish(&t, dry_run)
}
