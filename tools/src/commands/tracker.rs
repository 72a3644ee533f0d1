//! `cyclone tracker` and `bttrack`: the HTTP tracker (`cyclone-tracker`), configured with bttrack's options.
//!
//! `bttrack` behaves as BitTornado's: no arguments print the option list, `--dfile` is required. `cyclone tracker`
//! runs on embedded defaults instead — port 6969 and the state file `cyclone-tracker.dfile` in the working
//! directory — and accepts every bttrack option (`--name value`) to override them.

use std::ffi::OsString;

use cyclone_tracker::{ConfigError, TrackerError};

use crate::error::CliError;

/// Port `cyclone tracker` listens on unless `--port` is given (the customary tracker port; bttrack's own default
/// of 80 needs root).
pub const DEFAULT_PORT: &str = "6969";
/// State file `cyclone tracker` uses unless `--dfile` is given.
pub const DEFAULT_DFILE: &str = "cyclone-tracker.dfile";

#[derive(Debug, clap::Args)]
pub struct TrackerArgs {
    /// bttrack options as `--name value` pairs, e.g. `--port 6969 --dfile state.dfile --allowed_dir torrents/`.
    /// `cyclone bttrack` with no arguments lists them all with their defaults.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--OPTION VALUE"
    )]
    pub options: Vec<OsString>,
}

pub fn run(args: &TrackerArgs) -> Result<(), CliError> {
    let mut argv = args.options.clone();
    for (name, default) in [("--port", DEFAULT_PORT), ("--dfile", DEFAULT_DFILE)] {
        if !argv.iter().any(|a| a == name) {
            argv.push(name.into());
            argv.push(default.into());
        }
    }
    run_tracker("cyclone tracker", &argv)
}

/// The `bttrack` alias: BitTornado's semantics exactly (no embedded defaults).
pub fn bttrack(argv0: &str, args: &[OsString]) -> Result<(), CliError> {
    run_tracker(argv0, args)
}

fn run_tracker(program: &str, argv: &[OsString]) -> Result<(), CliError> {
    cyclone_tracker::run_from_args(program, argv).map_err(|e| match e {
        TrackerError::Config(ConfigError::Bad(msg) | ConfigError::Usage(msg)) => {
            CliError::Usage(msg)
        }
        other => CliError::Failed(other.to_string()),
    })
}
