//! BitTornado's program names as multicall aliases of the `cyclone` binary.
//!
//! `btshowmetainfo x.torrent` (through a symlink or hard link named `btshowmetainfo`, with or without a `.py`
//! extension) and `cyclone btshowmetainfo x.torrent` both run BitTornado's program with BitTornado's own argument
//! syntax (`--name value`, see [`crate::bittornado_args`]) and output. `cyclone aliases --install DIR` creates the
//! links.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::bittornado_metainfo_tools as mt;
use crate::commands::show::{self, Style};
use crate::error::CliError;

/// An alias handler: `argv0` is the name it was invoked as (for usage lines), `args` the arguments after it.
type Handler = fn(argv0: &str, args: &[OsString]) -> Result<(), CliError>;

/// Every BitTornado program this build provides, with what it does.
pub const ALIASES: &[(&str, Handler, &str)] = &[
    (
        "btdownloadheadless",
        crate::bittornado_download::btdownloadheadless,
        "download or seed one torrent (same as `cyclone download`, BitTornado's status block)",
    ),
    (
        "btlaunchmany",
        crate::bittornado_launchmany::btlaunchmany,
        "download and seed every torrent of a watched directory (same as `cyclone launchmany`)",
    ),
    (
        "bttrack",
        crate::commands::tracker::bttrack,
        "BitTornado's tracker, with bttrack's options (same as `cyclone tracker`)",
    ),
    (
        "btshowmetainfo",
        btshowmetainfo,
        "decode BitTorrent metainfo files (same as `cyclone show`, BitTornado's exact output)",
    ),
    (
        "btmakemetafile",
        mt::btmakemetafile,
        "make .torrent files (same as `cyclone make`)",
    ),
    (
        "btcompletedir",
        mt::btcompletedir,
        "a .torrent for every entry of a directory (`cyclone completedir`)",
    ),
    (
        "btreannounce",
        mt::btreannounce,
        "change the tracker of .torrent files (`cyclone reannounce`)",
    ),
    (
        "btcopyannounce",
        mt::btcopyannounce,
        "copy trackers from one .torrent to others (`cyclone copyannounce`)",
    ),
    (
        "btrename",
        mt::btrename,
        "change the suggested name in a .torrent (`cyclone rename`)",
    ),
    (
        "btsethttpseeds",
        mt::btsethttpseeds,
        "set or strip http seeds (`cyclone sethttpseeds`)",
    ),
];

/// The handler for `name`, if `name` (a program name, extension already stripped) is a BitTornado alias.
pub fn find(name: &str) -> Option<Handler> {
    ALIASES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, h, _)| *h)
}

/// A program name from `argv[0]`: the file name without directory or extension (`/usr/bin/bttrack.py` -> `bttrack`),
/// exactly as BitTornado derives `NAME`.
pub fn program_name(argv0: &str) -> String {
    let file = Path::new(argv0)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match file.rfind('.') {
        Some(dot) if dot > 0 => file[..dot].to_string(),
        _ => file,
    }
}

/// `btshowmetainfo file1.torrent ...`: BitTornado's header, then BitTornado's block for each file.
fn btshowmetainfo(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    println!(
        "{} 20030621 - decode BitTorrent metainfo files",
        program_name(argv0)
    );
    println!();
    if args.is_empty() {
        println!("{argv0} file1.torrent file2.torrent file3.torrent ...");
        println!();
        return Err(CliError::UsageShown);
    }
    let paths: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    show::show_all(&paths, Some(Style::BitTornado), &program_name(argv0))
}

/// Creates a symlink to the running binary for every alias in `dir`. Existing links that already point at this
/// binary are left alone; any other existing file is an error (never overwritten).
pub fn install(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let exe = std::env::current_exe().map_err(|source| CliError::Io {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let mut made = Vec::new();
    for (name, _, _) in ALIASES {
        let link = dir.join(name);
        match std::fs::read_link(&link) {
            Ok(target) if target == exe => continue,
            Ok(_) | Err(_) if link.symlink_metadata().is_ok() => {
                return Err(CliError::Failed(format!(
                    "{} already exists and is not a link to {}; not overwriting it",
                    link.display(),
                    exe.display()
                )))
            }
            _ => {}
        }
        std::os::unix::fs::symlink(&exe, &link).map_err(|source| CliError::Io {
            path: link.clone(),
            source,
        })?;
        made.push(link);
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_program_names_like_bittornado() {
        assert_eq!(program_name("/usr/bin/btshowmetainfo.py"), "btshowmetainfo");
        assert_eq!(program_name("btshowmetainfo"), "btshowmetainfo");
        assert_eq!(program_name("./cyclone"), "cyclone");
        assert_eq!(program_name(".hidden"), ".hidden");
        assert!(find("btshowmetainfo").is_some());
        assert!(find("cyclone").is_none());
    }
}
