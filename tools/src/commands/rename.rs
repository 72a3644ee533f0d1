//! `cyclone rename` and `btrename`: change the suggested name (`info.name`). This is the one
//! BitTornado edit tool that changes the info-hash; every other key of `info` keeps its bytes.

use std::path::{Path, PathBuf};

use cyclone_metainfo::bencode::Owned;
use cyclone_metainfo::path_rules;

use crate::commands::reannounce::for_each;
use crate::error::CliError;
use crate::torrent_edit::Editable;

#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// The torrent, then the new name; with --from-filename, any number of torrents.
    #[arg(required = true, value_name = "TORRENT [NAME]")]
    pub args: Vec<PathBuf>,
    /// Name each torrent after its own file name without `.torrent` (BitTornado master's -m).
    #[arg(short = 'm', long)]
    pub from_filename: bool,
    /// Print what would change, write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(args: &RenameArgs) -> Result<(), CliError> {
    if args.from_filename {
        return for_each(&args.args, "cyclone rename", |path| {
            let stem = path.file_stem().unwrap_or_default();
            use std::os::unix::ffi::OsStrExt;
            rename(path, stem.as_bytes(), args.dry_run, true).map(|_| ())
        });
    }
    let [torrent, name] = args.args.as_slice() else {
        return Err(CliError::Usage(
            "expected TORRENT NAME (or --from-filename TORRENT...)".into(),
        ));
    };
    use std::os::unix::ffi::OsStrExt;
    rename(torrent, name.as_os_str().as_bytes(), args.dry_run, true).map(|_| ())
}

/// Sets `info.name`, printing BitTornado's `old filename:`/`new filename:` lines, plus the
/// info-hash change when `show_hash`.
pub fn rename(path: &Path, name: &[u8], dry_run: bool, show_hash: bool) -> Result<(), CliError> {
    if let Some(reason) = path_rules::component_problem(name) {
        return Err(CliError::Usage(format!(
            "cannot use {:?} as a name: {reason}",
            String::from_utf8_lossy(name)
        )));
    }
    let mut t = Editable::load(path)?;
    println!(
        "old filename: {}",
        String::from_utf8_lossy(&t.metainfo.info.name)
    );
    let info = t.info_mut();
    info.insert("name", Owned::Bytes(name.to_vec()));
    // A stale `name.utf-8` would win over the new name in clients that read it.
    if info.get(b"name.utf-8").is_some() {
        info.insert("name.utf-8", Owned::Bytes(name.to_vec()));
    }
    println!("new filename: {}", String::from_utf8_lossy(name));
    let saved = t.save(None, dry_run)?;
    if show_hash {
        println!("info hash: {} -> {}", saved.old_hash, saved.new_hash);
    }
    if dry_run {
        println!("dry run: {} not written", path.display());
    }
    Ok(())
}
