//! Placeholder: bencode and metainfo.

pub mod sha1_multi;
