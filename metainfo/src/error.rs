//! Errors for reading a metainfo file. Each names the key it is about, so a user can find the problem.

use crate::bencode::DecodeError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    #[error("not a torrent file: {0}")]
    Bencode(#[from] DecodeError),
    #[error("not a torrent file: the top level is {0}, not a dictionary")]
    NotADictionary(&'static str),
    #[error("missing key `{0}`")]
    MissingKey(String),
    #[error("key `{key}` is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("invalid `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("unsafe path {path:?} in `{key}`: {reason}")]
    UnsafePath {
        key: String,
        path: String,
        reason: &'static str,
    },
    #[error("this is a BitTorrent v2-only torrent (no v1 `pieces`); only v1 and hybrid torrents are supported")]
    V2Only,
}

impl MetainfoError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        MetainfoError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
