//! The binary's error type: every failure becomes one clear line on stderr and a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for usage errors (as BitTornado's tools and most Unix programs use).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for an operation that failed (unreadable file, invalid torrent, ...).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Metainfo {
        path: PathBuf,
        #[source]
        source: cyclone_metainfo::MetainfoError,
    },
    #[error("{0}")]
    Failed(String),
    /// The command ran and found a mismatch (e.g. `verify` on bad data): its own exit code.
    #[error("{message}")]
    Mismatch { message: String, code: u8 },
    /// A usage error whose explanation was already printed (BitTornado-style usage text): exit 2, print nothing more.
    #[error("usage shown")]
    UsageShown,
}

impl CliError {
    /// Whether `main` should print this error (it already was, for [`CliError::UsageShown`]).
    pub fn should_print(&self) -> bool {
        !matches!(self, CliError::UsageShown)
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) | CliError::UsageShown => ExitCode::from(EXIT_USAGE),
            CliError::Mismatch { code, .. } => ExitCode::from(*code),
            _ => ExitCode::from(EXIT_FAILURE),
        }
    }
}

impl From<crate::bittornado_args::UsageError> for CliError {
    fn from(e: crate::bittornado_args::UsageError) -> Self {
        CliError::Usage(e.0)
    }
}
