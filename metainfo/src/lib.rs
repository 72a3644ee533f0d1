//! Placeholder: bencode and metainfo.

pub mod piece_hasher;
pub mod piece_layout;
pub mod sha1_multi;
