//! `btlaunchmany <directory>`: BitTornado's launch-and-watch program with its option syntax (`--name value`,
//! [`crate::bittornado_args`]): the downloader options of [`crate::bittornado_download`] plus `parse_dir_interval`,
//! `saveas_style` and `display_path` (seeds-behaviour §1.1), run by [`crate::commands::launchmany`], the same code
//! as `cyclone launchmany`. The engine options go through [`crate::download_options::SessionOptions`], the one
//! mapping every downloader front end uses; the options with no effect are [`crate::bittornado_download::IGNORED`],
//! plus `responsefile`, `url` and `priority`, which name one torrent and mean nothing for a directory.

use std::ffi::OsString;
use std::path::PathBuf;

use cyclone_engine::session::SessionConfig;

use crate::bittornado_args::{self, Default as D, OptionDef};
use crate::bittornado_download::{definitions as downloader_definitions, session_options};
use crate::commands::launchmany::{default_resume_dir, launch_many, LaunchOptions, SaveasStyle};
use crate::error::CliError;

/// btlaunchmany's options: the downloader's, then its own three (btlaunchmany's defaults, not btlaunchmanycurses').
pub fn definitions() -> Vec<OptionDef> {
    let mut defs = downloader_definitions();
    defs.extend([
        OptionDef {
            name: "parse_dir_interval",
            default: D::Int(60),
            help: "how often to rescan the torrent directory, in seconds",
        },
        OptionDef {
            name: "saveas_style",
            default: D::Int(1),
            help: "How to name torrent downloads (1 = rename to torrent name, 2 = save under name in torrent, 3 = save in directory under torrent name)",
        },
        OptionDef {
            name: "display_path",
            default: D::Int(1),
            help: "whether to display the full path or the torrent contents for each torrent",
        },
    ]);
    defs
}

/// BitTornado's usage error: the message and the hint.
fn usage(message: String) -> CliError {
    CliError::Usage(format!(
        "{message}\nrun with no args for parameter explanations"
    ))
}

/// `btlaunchmany <directory> [--option value ...]`
pub fn btlaunchmany(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
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
            "Usage: {} <directory> <global options>\n  <directory> - directory to look for .torrent files (semi-recursive)",
            crate::aliases::program_name(argv0)
        );
        print!("{}", bittornado_args::format_definitions(&defs));
        return Err(CliError::UsageShown);
    }
    let p = bittornado_args::parse(&args, &defs, Some(1), Some(1)).map_err(|e| usage(e.0))?;
    let dir = PathBuf::from(&p.positional[0]);
    if !dir.is_dir() {
        return Err(usage(format!(
            "Warning: {} is not a directory",
            dir.display()
        )));
    }
    let config = session_options(&p)?.apply(SessionConfig::default())?;
    let saveas = p.str("saveas");
    let selector = p.int("selector_enabled") != 0;
    launch_many(
        config,
        LaunchOptions {
            dir,
            saveas: (!saveas.is_empty()).then(|| PathBuf::from(saveas)),
            parse_dir_interval: crate::download_options::secs(p.int("parse_dir_interval") as f64),
            saveas_style: SaveasStyle::from_number(p.int("saveas_style"))?,
            display_path: p.int("display_path") != 0,
            // `--selector_enabled 0` turns off fast resume, as in btdownloadheadless.
            resume_dir: default_resume_dir().filter(|_| selector),
            json: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_options_have_btlaunchmany_defaults() {
        let args = vec!["dir".to_string()];
        let p = bittornado_args::parse(&args, &definitions(), Some(1), Some(1)).unwrap();
        assert_eq!(p.int("parse_dir_interval"), 60);
        assert_eq!(p.int("saveas_style"), 1);
        assert_eq!(p.int("display_path"), 1);
        assert!(bittornado_args::parse(&[], &definitions(), Some(1), Some(1)).is_err());
    }
}
