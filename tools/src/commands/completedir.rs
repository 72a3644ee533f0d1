//! `cyclone completedir` and `btcompletedir`: one torrent for each entry of each directory.
//!
//! Entries are made one after the other, each hashed on every core; entries that already
//! have `<entry>.torrent`, `*.torrent` files, dot-files, `core` and `CVS` are skipped
//! (BitTornado's rules). A failing entry is reported and the others still made.

use std::path::PathBuf;

use cyclone_metainfo::create;

use crate::commands::make::{torrent_file_name, Job, MakeFlags};
use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub struct CompletedirArgs {
    /// Tracker announce URL (`""` for trackerless torrents).
    pub tracker: String,
    /// Directories whose entries each get a torrent.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Directory for the torrents (default: next to each entry).
    #[arg(short = 'o', long = "target", value_name = "DIR")]
    pub target: Option<PathBuf>,
    #[command(flatten)]
    pub flags: MakeFlags,
}

pub fn run(args: &CompletedirArgs) -> Result<(), CliError> {
    let job = Job::from_flags(&args.tracker, &args.flags, None)?;
    run_job(
        &job,
        &args.dirs,
        args.target.as_deref(),
        "cyclone completedir",
    )
}

/// Makes every entry's torrent; returns an error naming how many failed.
pub fn run_job(
    job: &Job,
    dirs: &[PathBuf],
    target_dir: Option<&std::path::Path>,
    program: &str,
) -> Result<(), CliError> {
    let mut made = 0usize;
    let mut failed = 0usize;
    for dir in dirs {
        let entries = create::completedir_entries(dir, job.walk.include_hidden)
            .map_err(|e| CliError::Failed(e.to_string()))?;
        for entry in entries {
            let target = match target_dir {
                Some(d) => d.join(torrent_file_name(&entry)),
                None => create::default_target(&entry),
            };
            match job.make_one(&entry, &target) {
                Ok(_) => made += 1,
                Err(e) => {
                    eprintln!("{program}: {}: {e}", entry.display());
                    failed += 1;
                }
            }
        }
    }
    if !job.quiet {
        eprintln!(
            "{program}: made {made} torrent{}",
            if made == 1 { "" } else { "s" }
        );
    }
    if failed > 0 {
        return Err(CliError::Failed(format!("{failed} entries failed")));
    }
    Ok(())
}
