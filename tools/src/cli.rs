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
    /// Describe torrent files: info-hash, files, sizes, trackers (BitTornado's btshowmetainfo layout, or --json).
    Show(commands::show::ShowArgs),
    /// Print the magnet link of each torrent file.
    Magnet(commands::magnet::MagnetArgs),
    /// List BitTornado's program names this binary answers to, or install them as symlinks.
    Aliases(AliasesArgs),
}

#[derive(Debug, clap::Args)]
pub struct AliasesArgs {
    /// Create a symlink named after each BitTornado program in this directory.
    #[arg(long, value_name = "DIR")]
    pub install: Option<PathBuf>,
}
