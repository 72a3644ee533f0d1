//! `cyclone completedir` and `btcompletedir`: one torrent for each entry of each directory.
//!
//! Entries are made in parallel (`--jobs`, default one per core), and each entry's pieces
//! are hashed on every core too, so one big entry among small ones still uses the whole
//! machine. Entries that already have `<entry>.torrent`, `*.torrent` files, dot-files,
//! `core` and `CVS` are skipped (BitTornado's rules). A failing entry is reported and the
//! others still made.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let mut todo: Vec<(PathBuf, PathBuf)> = Vec::new();
    for dir in dirs {
        let entries = create::completedir_entries(dir, job.walk.include_hidden)
            .map_err(|e| CliError::Failed(e.to_string()))?;
        for entry in entries {
            let target = match target_dir {
                Some(d) => d.join(torrent_file_name(&entry)),
                None => create::default_target(&entry),
            };
            todo.push((entry, target));
        }
    }
    let jobs = match job.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, 64)
    .min(todo.len().max(1));
    let next = AtomicUsize::new(0);
    let made = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    // Several bars on one line would garble each other.
    let job = &Job {
        progress: job.progress && jobs == 1,
        ..job.clone()
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((entry, target)) = todo.get(i) else {
                    return;
                };
                match job.make_one(entry, target) {
                    Ok(_) => made.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("{program}: {}: {e}", entry.display());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            });
        }
    });
    let made = made.into_inner();
    let failed = failed.into_inner();
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
