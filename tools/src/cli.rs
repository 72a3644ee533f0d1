//! The `cyclone` command line (clap). One subcommand per application.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands;

/// cyclone: a thread-per-core BitTorrent seedbox engine, tracker and toolset.
///
/// BitTornado's program names (btshowmetainfo, ...) also work, with BitTornado's own options: run
/// `cyclone btshowmetainfo FILE`, or install links with `cyclone aliases --install DIR`.
#[derive(Debug, Parser)]
#[command(name = "cyclone", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download (or seed, when complete) one torrent (btdownloadheadless).
    Download(commands::download::DownloadArgs),
    /// Download and seed every .torrent in a directory, watching it for new, changed and removed files
    /// (btlaunchmany).
    Launchmany(commands::launchmany::LaunchmanyArgs),
    /// Run the HTTP tracker (port 6969, state in ./cyclone-tracker.dfile, unless bttrack options say otherwise).
    Tracker(commands::tracker::TrackerArgs),
    /// Describe torrent files: info-hash, files, sizes, trackers (BitTornado's btshowmetainfo layout, or --json).
    Show(commands::show::ShowArgs),
    /// Print the magnet link of each torrent file.
    Magnet(commands::magnet::MagnetArgs),
    /// Make a .torrent for each file or directory (btmakemetafile).
    Make(commands::make::MakeArgs),
    /// Make a .torrent for every entry of each directory (btcompletedir).
    Completedir(commands::completedir::CompletedirArgs),
    /// Check data against a torrent, per piece and per file (exit 0 ok, 3 corrupt, 4 incomplete).
    Verify(commands::verify::VerifyArgs),
    /// Edit torrents: trackers, web seeds, comment, private, source, name.
    Edit(commands::edit::EditArgs),
    /// Set the tracker (and tiers, or none) of torrents (btreannounce).
    Reannounce(commands::reannounce::ReannounceArgs),
    /// Copy announce and announce-list from one torrent to others (btcopyannounce).
    Copyannounce(commands::copyannounce::CopyannounceArgs),
    /// Change a torrent's suggested name; changes the info-hash (btrename).
    Rename(commands::rename::RenameArgs),
    /// Set or strip (`0`) the BEP 17 http seeds of torrents (btsethttpseeds).
    Sethttpseeds(commands::sethttpseeds::SethttpseedsArgs),
    /// List BitTornado's program names this binary answers to, or install them as symlinks.
    Aliases(AliasesArgs),
}

#[derive(Debug, clap::Args)]
pub struct AliasesArgs {
    /// Create a symlink named after each BitTornado program in this directory.
    #[arg(long, value_name = "DIR")]
    pub install: Option<PathBuf>,
}
