//! `cyclone reannounce` and `btreannounce`: set `announce`, and set `announce-list` to the
//! given tiers or delete it when none are given (BitTornado 0.3.18's semantics and
//! messages). Only the top level changes: the info-hash stays the same.

use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::torrent_edit::{self, Editable};
use crate::url_lists;

#[derive(Debug, clap::Args)]
pub struct ReannounceArgs {
    /// New tracker announce URL.
    pub announce: String,
    /// Torrent files to change in place.
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// New announce-list tiers `url,url|url`; without it any announce-list is deleted.
    #[arg(
        short = 'a',
        long = "announce-list",
        alias = "announce_list",
        value_name = "TIERS"
    )]
    pub announce_list: Option<String>,
    /// Print what would change, write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(args: &ReannounceArgs) -> Result<(), CliError> {
    let tiers = args.announce_list.as_deref().map(url_lists::parse_tiers);
    for_each(&args.torrents, "cyclone reannounce", |path| {
        set_trackers(path, Some(&args.announce), tiers.as_deref(), args.dry_run)
    })
}

/// Runs `f` on every torrent; a failing file is reported and the rest still processed.
pub fn for_each(
    paths: &[PathBuf],
    program: &str,
    mut f: impl FnMut(&Path) -> Result<(), CliError>,
) -> Result<(), CliError> {
    if paths.len() == 1 {
        return f(&paths[0]);
    }
    let mut failed = 0usize;
    for path in paths {
        if let Err(e) = f(path) {
            eprintln!("{program}: {e}");
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} of {} torrents could not be changed",
            paths.len()
        )));
    }
    Ok(())
}

/// btreannounce/btcopyannounce core: print the old values, set `announce` (or remove it
/// when `None`), set or delete `announce-list`.
pub fn set_trackers(
    path: &Path,
    announce: Option<&str>,
    tiers: Option<&[Vec<String>]>,
    dry_run: bool,
) -> Result<(), CliError> {
    let mut t = Editable::load(path)?;
    let shown = path.display();
    println!(
        "old announce for {shown}: {}",
        t.metainfo.announce.as_deref().unwrap_or("")
    );
    if t.metainfo.raw_top_level.contains_key(&b"announce-list"[..]) {
        println!(
            "old announce-list for {shown}: {}",
            url_lists::format_tiers(&t.metainfo.announce_list)
        );
    }
    match announce {
        Some(a) => t.set("announce", a.as_bytes().to_vec().into()),
        None => t.remove("announce"),
    }
    match tiers.filter(|t| !t.is_empty()) {
        Some(tiers) => t.set("announce-list", torrent_edit::tier_list(tiers)),
        None => t.remove("announce-list"),
    }
    finish(&t, dry_run)
}

/// Saves (or not, for a dry run) and says so when nothing was written.
pub fn finish(t: &Editable, dry_run: bool) -> Result<(), CliError> {
    let saved = t.save(None, dry_run)?;
    if dry_run {
        println!(
            "dry run: {} {}",
            t.path.display(),
            if saved.changed {
                "would change"
            } else {
                "would not change"
            }
        );
    }
    assert_eq!(
        saved.old_hash, saved.new_hash,
        "tracker edits never touch info"
    );
    Ok(())
}
