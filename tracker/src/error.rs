//! The tracker's error type: one line each, saying what failed and where.

use std::path::PathBuf;

use cyclone_shard::ShardError;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Shard(#[from] ShardError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dfile {path}: {message}")]
    Dfile { path: PathBuf, message: String },
}

impl TrackerError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TrackerError::Io {
            context: context.into(),
            source,
        }
    }
}
