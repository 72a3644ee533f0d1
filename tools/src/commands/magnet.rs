//! `cyclone magnet`: print the magnet link of each torrent.

use std::path::PathBuf;

use cyclone_metainfo::Magnet;

use crate::error::CliError;
use crate::torrent_file;

#[derive(Debug, clap::Args)]
pub struct MagnetArgs {
    /// Torrent files (`-` reads standard input).
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// Leave out the trackers (`tr=`).
    #[arg(long)]
    pub no_trackers: bool,
    /// Leave out the web seeds (`ws=`).
    #[arg(long)]
    pub no_web_seeds: bool,
}

pub fn run(args: &MagnetArgs) -> Result<(), CliError> {
    let mut failures = 0usize;
    let paths_len = args.torrents.len();
    for path in &args.torrents {
        match torrent_file::read(path) {
            Ok(m) => {
                let mut magnet = Magnet::from_metainfo(&m);
                if args.no_trackers {
                    magnet.trackers.clear();
                }
                if args.no_web_seeds {
                    magnet.web_seeds.clear();
                }
                println!("{magnet}");
            }
            Err(e) if paths_len == 1 => return Err(e),
            Err(e) => {
                eprintln!("cyclone magnet: {e}");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(CliError::Failed(format!(
            "{failures} of {} torrents could not be read",
            args.torrents.len()
        )));
    }
    Ok(())
}
