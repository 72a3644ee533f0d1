//! Shared plumbing of the edit tools: load a torrent as an editable document whose untouched
//! keys are the original bytes ([`Owned::Raw`]), change keys, and write it back only if
//! something changed (atomically), or just report with `--dry-run`.
//!
//! The `info` dictionary is carried as its raw bytes, so the info-hash never changes unless
//! a tool edits `info` on purpose (rename, private, source), and then only the edited key
//! of `info` is re-encoded.

use std::path::{Path, PathBuf};

use cyclone_metainfo::bencode::{self, DecodeOptions, Owned};
use cyclone_metainfo::{InfoHash, Metainfo};

use crate::error::CliError;
use crate::output_file;

/// A torrent being edited.
pub struct Editable {
    pub path: PathBuf,
    pub metainfo: Metainfo,
    /// Top-level dictionary; values are the original bytes until replaced.
    pub doc: Owned,
    /// The `info` dictionary, split into raw values, once something asked to edit it.
    info: Option<Owned>,
    original: Vec<u8>,
}

/// What [`Editable::save`] did.
pub struct Saved {
    pub changed: bool,
    pub old_hash: InfoHash,
    pub new_hash: InfoHash,
}

impl Editable {
    pub fn load(path: &Path) -> Result<Editable, CliError> {
        let original = std::fs::read(path).map_err(|source| CliError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let metainfo = Metainfo::from_bytes(&original).map_err(|source| CliError::Metainfo {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Editable {
            path: path.to_path_buf(),
            doc: metainfo.to_document(),
            metainfo,
            info: None,
            original,
        })
    }

    pub fn set(&mut self, key: &str, value: Owned) {
        self.doc.insert(key, value);
    }

    pub fn remove(&mut self, key: &str) {
        self.doc.remove(key.as_bytes());
    }

    /// The `info` dictionary as editable entries (each value still its raw bytes).
    pub fn info_mut(&mut self) -> &mut Owned {
        let raw = &self.metainfo.info.raw;
        self.info.get_or_insert_with(|| {
            // The info bytes were already decoded once by Metainfo::from_bytes.
            let value = bencode::decode_with(raw, &DecodeOptions::lenient())
                .expect("info bytes decoded before");
            let entries = value.as_dict().expect("info is a dictionary");
            Owned::Dict(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_vec(), Owned::Raw(v.raw().to_vec())))
                    .collect(),
            )
        })
    }

    /// The new file bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut doc = self.doc.clone();
        if let Some(info) = &self.info {
            doc.insert("info", Owned::Raw(info.encode()));
        }
        doc.encode()
    }

    /// Writes the torrent back (to `output` if given) when it changed; with `dry_run`
    /// only reports.
    pub fn save(&self, output: Option<&Path>, dry_run: bool) -> Result<Saved, CliError> {
        let bytes = self.encode();
        let new = Metainfo::from_bytes(&bytes).map_err(|e| {
            CliError::Failed(format!(
                "{}: the edited torrent would be invalid: {e}",
                self.path.display()
            ))
        })?;
        let changed = bytes != self.original;
        let target = output.unwrap_or(&self.path);
        if !dry_run && (changed || output.is_some()) {
            output_file::write(target, &bytes, true)?;
        }
        Ok(Saved {
            changed,
            old_hash: self.metainfo.info_hash,
            new_hash: new.info_hash,
        })
    }
}

/// A list of strings as a bencode list.
pub fn string_list(items: &[String]) -> Owned {
    Owned::List(
        items
            .iter()
            .map(|s| Owned::Bytes(s.as_bytes().to_vec()))
            .collect(),
    )
}

/// Tiers as a bencode list of lists.
pub fn tier_list(tiers: &[Vec<String>]) -> Owned {
    Owned::List(tiers.iter().map(|t| string_list(t)).collect())
}
