//! The `cyclone` binary's library half: command-line parsing and wiring. All the work lives in the library crates
//! (`cyclone-metainfo`, ...); this crate wires flags to them and turns errors into one line and an exit code.
//! `main.rs` only calls [`main_entry`].

pub mod aliases;
pub mod bittornado_args;
pub mod bittornado_download;
pub mod bittornado_launchmany;
pub mod bittornado_metainfo_tools;
pub mod cli;
pub mod commands;
pub mod download_options;
pub mod error;
pub mod output_file;
pub mod progress_bar;
pub mod torrent_dir;
pub mod torrent_edit;
pub mod torrent_file;
pub mod url_lists;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Runs the program for `std::env::args_os()` and returns its exit code.
pub fn main_entry() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let argv0 = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cyclone".into());

    // Multicall: invoked as `btshowmetainfo` (a link), or as `cyclone btshowmetainfo`.
    let name = aliases::program_name(&argv0);
    let alias = aliases::find(&name)
        .map(|h| (h, argv0.clone(), &argv[1.min(argv.len())..]))
        .or_else(|| {
            let sub = argv.get(1)?.to_str()?;
            aliases::find(sub).map(|h| (h, sub.to_string(), &argv[2..]))
        });
    let (result, program) = match alias {
        Some((handler, invoked_as, args)) => (
            handler(&invoked_as, args),
            aliases::program_name(&invoked_as),
        ),
        None => (run(Cli::parse_from(&argv)), "cyclone".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.should_print() {
                eprintln!("{program}: error: {e}");
            }
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Download(args) => commands::download::run(&args),
        Command::Launchmany(args) => commands::launchmany::run(&args),
        Command::Tracker(args) => commands::tracker::run(&args),
        Command::Show(args) => commands::show::run(&args),
        Command::Magnet(args) => commands::magnet::run(&args),
        Command::Make(args) => commands::make::run(&args),
        Command::Completedir(args) => commands::completedir::run(&args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Edit(args) => commands::edit::run(&args),
        Command::Reannounce(args) => commands::reannounce::run(&args),
        Command::Copyannounce(args) => commands::copyannounce::run(&args),
        Command::Rename(args) => commands::rename::run(&args),
        Command::Sethttpseeds(args) => commands::sethttpseeds::run(&args),
        Command::Aliases(args) => match args.install {
            Some(dir) => {
                for link in aliases::install(&dir)? {
                    println!("{}", link.display());
                }
                Ok(())
            }
            None => {
                for (name, _, what) in aliases::ALIASES {
                    println!("{name:<20} {what}");
                }
                Ok(())
            }
        },
    }
}
