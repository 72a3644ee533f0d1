//! cyclone-metainfo: everything about `.torrent` files that needs no network and no async runtime.
//!
//! - [`bencode`]: zero-copy, span-capturing decoder (strict and lenient modes, hard limits) and canonical encoder.
//! - [`Metainfo`]: parsed, validated torrents; the info-hash is always SHA-1 over the raw `info` bytes.
//! - [`path_rules`]: what keeps a torrent's paths inside the download directory.
//! - [`Magnet`]: magnet links.
//! - [`create`] (with [`glob`]): making torrents from files (btmakemetafile, btcompletedir).
//! - [`sha1_multi`], [`piece_layout`], [`piece_hasher`]: multi-buffer SHA-NI piece hashing of files, and verify.
//!
//! Invariant: this crate performs no network I/O and knows nothing of glommio, the engine or the tracker.

pub mod bencode;
pub mod create;
mod error;
pub mod glob;
mod info_hash;
pub mod magnet;
pub mod path_rules;
pub mod piece_hasher;
pub mod piece_layout;
pub mod sha1_multi;
mod torrent;
pub mod torrent_dir;

pub use error::MetainfoError;
pub use info_hash::{InfoHash, InfoHashParseError};
pub use magnet::{Magnet, MagnetError};
pub use torrent::{raw_info, FileEntry, Info, Metainfo, MAX_FILES, MAX_PIECE_LENGTH};
