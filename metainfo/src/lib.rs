//! Placeholder: bencode and metainfo.
