//! The per-torrent fast-resume record: which pieces we have, and what the files looked like when we said so.
//!
//! Why: re-hashing every torrent at startup costs minutes to hours on a seedbox. The record lets the engine trust its
//! own earlier verification instead, for as long as nobody else touched the files. Each file's size and mtime are
//! saved with the bitfield; at load, pieces that overlap a file whose size or mtime (±1 s) changed are dropped from
//! the bitfield ([`ResumeRecord::trusted_have`]) and only those are re-checked.
//!
//! A stale record is safe by construction: the engine only ever writes pieces it does not have yet, so data written
//! after the record was saved can only concern pieces the record does not claim. (BitTornado deleted its resume data
//! as soon as it started writing; with per-file stamps that is unnecessary, though sampled re-verification at load,
//! rqbit-style, is still the engine's call.)
//!
//! That is also why a crash does not cost a recheck: the record says whether it was written by a running session
//! (`clean` 0: a periodic save) or by a graceful stop (`clean` 1). After a crash the files' mtimes have moved (we kept
//! writing other pieces), so the stamps cannot tell "we wrote here" from "someone else did"; but the pieces the
//! record lists were fsynced before it was written and the engine never writes into a piece it has, so they are
//! trusted as long as their files still exist and are long enough ([`ResumeRecord::decide`]). The price: a file
//! modified by someone else *after a crash* and before the restart is not detected (it is after a graceful stop).
//! `cyclone download --recheck` ignores the record for one start.
//!
//! On-disk format: one canonical bencoded dictionary, read in strict mode.
//!
//! ```text
//! d
//!   5:check        20:<SHA-1 of this dictionary encoded without the "check" entry>
//!   5:clean        i0e (written by a running session) | i1e (final save of a graceful stop); absent = i1e
//!   5:files        l <per file: l i<size>e i<mtime seconds>e i<mtime nanoseconds>e e, or le if absent> e
//!   4:have         <bitfield, piece 0 = high bit of byte 0, spare bits zero> | i1e (every piece)
//!   9:info hash    20:<info-hash>
//!   11:piece count i<n>e
//!   12:piece length i<n>e
//!   7:version      i1e
//! e
//! ```
//!
//! The checksum catches what the format cannot: a flipped bit inside the bitfield is still valid bencode and would
//! otherwise claim a piece we never verified. Decoding rejects every inconsistency with a typed [`ResumeError`] and
//! never panics.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cyclone_metainfo::bencode::{
    DecodeError, DecodeOptions, Limits, Mode, Owned, Reader, ValueType,
};
use cyclone_metainfo::InfoHash;
use sha1::{Digest, Sha1};

use crate::bitfield::{Bitfield, BitfieldError};
use crate::piece_map::PieceMap;

/// The format version written; anything else is [`ResumeError::UnsupportedVersion`].
pub const RESUME_VERSION: i64 = 1;
/// Largest record read: the largest bitfield is 512 KiB, a million file stamps about 30 MiB.
pub const MAX_RESUME_BYTES: usize = 64 << 20;
/// Most files a record may describe (the metainfo crate's limit).
pub const MAX_RESUME_FILES: usize = cyclone_metainfo::MAX_FILES;

/// A file's size and modification time, as `stat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    pub size: u64,
    /// Seconds since the Unix epoch (negative before it).
    pub mtime_secs: i64,
    /// 0..1_000_000_000.
    pub mtime_nanos: u32,
}

impl FileStamp {
    /// The stamp of a file from its metadata (`None` if the platform has no modification time).
    pub fn from_metadata(meta: &fs::Metadata) -> Option<FileStamp> {
        let modified = meta.modified().ok()?;
        let (secs, nanos) = match modified.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => (i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()),
            Err(before) => {
                let d = before.duration();
                let secs = -i64::try_from(d.as_secs()).ok()?;
                match d.subsec_nanos() {
                    0 => (secs, 0),
                    n => (secs - 1, 1_000_000_000 - n),
                }
            }
        };
        Some(FileStamp {
            size: meta.len(),
            mtime_secs: secs,
            mtime_nanos: nanos,
        })
    }

    /// Whether the file looks untouched: the same size, and an mtime within ±1 s (BitTornado's rule; it absorbs
    /// filesystems that store coarse times, such as FAT's 2 s, and copies that kept whole seconds only).
    pub fn matches(&self, now: &FileStamp) -> bool {
        let nanos =
            |s: &FileStamp| i128::from(s.mtime_secs) * 1_000_000_000 + i128::from(s.mtime_nanos);
        self.size == now.size && (nanos(self) - nanos(now)).abs() <= 1_000_000_000
    }
}

/// What the torrent says, to check a record against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub info_hash: InfoHash,
    pub piece_length: u64,
    pub piece_count: u32,
    pub file_count: usize,
}

impl Expected {
    /// The shape of the torrent `info_hash` laid out by `map`.
    pub fn new(info_hash: InfoHash, map: &PieceMap) -> Expected {
        Expected {
            info_hash,
            piece_length: map.piece_length(),
            piece_count: map.piece_count(),
            file_count: map.file_count(),
        }
    }
}

/// One torrent's resume state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRecord {
    pub info_hash: InfoHash,
    pub piece_length: u64,
    /// Verified pieces (its length is the piece count).
    pub have: Bitfield,
    /// Per file of the torrent, in order: its stamp when the record was made, or `None` if it did not exist.
    pub files: Vec<Option<FileStamp>>,
    /// Written by the final save of a graceful stop (`false`: a save while the torrent ran, so if this is the
    /// record found at start-up, that session crashed). Records written before the key existed read as clean.
    pub clean: bool,
}

/// What a record allows at start-up ([`ResumeRecord::decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeDecision {
    /// Take these pieces without reading them and check nothing else: every file matches its stamp, or the record
    /// is from a crashed session and every file it has pieces in is still there and long enough.
    Trust(Bitfield),
    /// Take these pieces (a subset of the record's) without reading them; check every other piece on disk.
    Recheck(Bitfield),
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("resume data: cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("resume data of {length} bytes exceeds the limit of {MAX_RESUME_BYTES} bytes")]
    TooLarge { length: u64 },
    #[error("resume data is not valid bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("resume data is not a dictionary")]
    NotADictionary,
    #[error("resume data has no '{0}'")]
    MissingKey(&'static str),
    #[error("resume data has an unknown key '{0}'")]
    UnknownKey(String),
    #[error("resume data: '{0}' has the wrong type or an impossible value")]
    BadValue(&'static str),
    #[error("resume data has version {0}; this cyclone reads version {RESUME_VERSION}")]
    UnsupportedVersion(i64),
    #[error("resume data is corrupt (checksum mismatch)")]
    ChecksumMismatch,
    #[error("resume data is for torrent {found}, not {expected}")]
    WrongInfoHash { expected: InfoHash, found: InfoHash },
    #[error("resume data has piece length {found}, the torrent {expected}")]
    WrongPieceLength { expected: u64, found: u64 },
    #[error("resume data has {found} pieces, the torrent {expected}")]
    WrongPieceCount { expected: u32, found: u32 },
    #[error("resume data has {found} files, the torrent {expected}")]
    WrongFileCount { expected: usize, found: usize },
    #[error("resume data: {0}")]
    Bitfield(#[from] BitfieldError),
    #[error("resume data: file entry {0} is malformed")]
    BadFileEntry(usize),
}

impl ResumeRecord {
    /// A record with no pieces, for a torrent of `expected`'s shape.
    pub fn empty(expected: &Expected) -> Result<ResumeRecord, ResumeError> {
        Ok(ResumeRecord {
            info_hash: expected.info_hash,
            piece_length: expected.piece_length,
            have: Bitfield::new(expected.piece_count)?,
            files: vec![None; expected.file_count],
            clean: true,
        })
    }

    /// The canonical encoding (see the module doc).
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Owned::dict();
        let files = self
            .files
            .iter()
            .map(|f| match f {
                None => Owned::List(Vec::new()),
                Some(s) => Owned::List(vec![
                    Owned::Int(i64::try_from(s.size).unwrap_or(i64::MAX)),
                    Owned::Int(s.mtime_secs),
                    Owned::Int(i64::from(s.mtime_nanos)),
                ]),
            })
            .collect::<Vec<_>>();
        d.insert("clean", Owned::Int(i64::from(self.clean)));
        d.insert("files", Owned::List(files));
        if !self.have.is_empty() && self.have.is_complete() {
            d.insert("have", Owned::Int(1));
        } else {
            d.insert("have", Owned::Bytes(self.have.as_bytes().to_vec()));
        }
        d.insert(
            "info hash",
            Owned::Bytes(self.info_hash.as_bytes().to_vec()),
        );
        d.insert("piece count", Owned::Int(i64::from(self.have.len())));
        d.insert(
            "piece length",
            Owned::Int(i64::try_from(self.piece_length).unwrap_or(i64::MAX)),
        );
        d.insert("version", Owned::Int(RESUME_VERSION));
        let unchecked = d.encode();
        d.insert("check", Owned::Bytes(Sha1::digest(&unchecked).to_vec()));
        d.encode()
    }

    /// Decodes and validates a record against the torrent it is meant for.
    pub fn decode(bytes: &[u8], expected: &Expected) -> Result<ResumeRecord, ResumeError> {
        if bytes.len() > MAX_RESUME_BYTES {
            return Err(ResumeError::TooLarge {
                length: bytes.len() as u64,
            });
        }
        let opts = DecodeOptions {
            mode: Mode::Strict,
            limits: Limits {
                max_input_bytes: MAX_RESUME_BYTES,
                max_depth: 4,
                max_items: MAX_RESUME_FILES.saturating_mul(4).saturating_add(64),
                max_string_bytes: MAX_RESUME_BYTES,
            },
        };
        let mut r = Reader::new(bytes, &opts)?;
        if r.peek_type()? != ValueType::Dict {
            return Err(ResumeError::NotADictionary);
        }
        let mut check: Option<(&[u8], usize, usize)> = None;
        let mut clean_raw = None;
        let mut files_raw = None;
        let mut have_raw = None;
        let mut info_hash_raw = None;
        let mut piece_count_raw = None;
        let mut piece_length_raw = None;
        let mut version_raw = None;
        let mut d = r.begin_dict()?;
        loop {
            let key_start = r.position();
            let Some(key) = d.next_key(&mut r)? else {
                break;
            };
            let raw = r.skip()?;
            let slot = match key {
                b"check" => {
                    check = Some((raw, key_start, r.position()));
                    continue;
                }
                b"clean" => &mut clean_raw,
                b"files" => &mut files_raw,
                b"have" => &mut have_raw,
                b"info hash" => &mut info_hash_raw,
                b"piece count" => &mut piece_count_raw,
                b"piece length" => &mut piece_length_raw,
                b"version" => &mut version_raw,
                other => {
                    return Err(ResumeError::UnknownKey(
                        String::from_utf8_lossy(other).into_owned(),
                    ))
                }
            };
            *slot = Some(raw);
        }
        r.finish()?;

        let version = int(
            version_raw.ok_or(ResumeError::MissingKey("version"))?,
            &opts,
        )
        .ok_or(ResumeError::BadValue("version"))?;
        if version != RESUME_VERSION {
            return Err(ResumeError::UnsupportedVersion(version));
        }
        let (check_raw, check_start, check_end) = check.ok_or(ResumeError::MissingKey("check"))?;
        let stored = bytes_of(check_raw, &opts).ok_or(ResumeError::BadValue("check"))?;
        let mut hasher = Sha1::new();
        hasher.update(&bytes[..check_start]);
        hasher.update(&bytes[check_end..]);
        if stored != hasher.finalize().as_slice() {
            return Err(ResumeError::ChecksumMismatch);
        }

        let info_hash: [u8; 20] = bytes_of(
            info_hash_raw.ok_or(ResumeError::MissingKey("info hash"))?,
            &opts,
        )
        .and_then(|b| b.try_into().ok())
        .ok_or(ResumeError::BadValue("info hash"))?;
        let info_hash = InfoHash(info_hash);
        if info_hash != expected.info_hash {
            return Err(ResumeError::WrongInfoHash {
                expected: expected.info_hash,
                found: info_hash,
            });
        }
        let piece_length = int(
            piece_length_raw.ok_or(ResumeError::MissingKey("piece length"))?,
            &opts,
        )
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .ok_or(ResumeError::BadValue("piece length"))?;
        if piece_length != expected.piece_length {
            return Err(ResumeError::WrongPieceLength {
                expected: expected.piece_length,
                found: piece_length,
            });
        }
        let piece_count = int(
            piece_count_raw.ok_or(ResumeError::MissingKey("piece count"))?,
            &opts,
        )
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(ResumeError::BadValue("piece count"))?;
        if piece_count != expected.piece_count {
            return Err(ResumeError::WrongPieceCount {
                expected: expected.piece_count,
                found: piece_count,
            });
        }
        let have_raw = have_raw.ok_or(ResumeError::MissingKey("have"))?;
        let have = match int(have_raw, &opts) {
            Some(1) if piece_count > 0 => Bitfield::full(piece_count)?,
            Some(_) => return Err(ResumeError::BadValue("have")),
            None => {
                let bits = bytes_of(have_raw, &opts).ok_or(ResumeError::BadValue("have"))?;
                Bitfield::from_bytes(piece_count, bits)?
            }
        };
        let files = decode_files(files_raw.ok_or(ResumeError::MissingKey("files"))?, &opts)?;
        if files.len() != expected.file_count {
            return Err(ResumeError::WrongFileCount {
                expected: expected.file_count,
                found: files.len(),
            });
        }
        let clean = match clean_raw {
            None => true,
            Some(raw) => match int(raw, &opts) {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(ResumeError::BadValue("clean")),
            },
        };
        Ok(ResumeRecord {
            info_hash,
            piece_length,
            have,
            files,
            clean,
        })
    }

    /// What the record allows now, given the torrent's layout `map` and the files' stamps `current`:
    /// - every file [matches](FileStamp::matches) its stamp: [`ResumeDecision::Trust`] the record;
    /// - the record is unclean (its session crashed): every piece whose files all either match their stamp or still
    ///   exist with at least the bytes the record's pieces need there is trusted unread (the engine never writes
    ///   into a piece it has, and the record was written after those pieces were fsynced). If that is all of the
    ///   record, `Trust` it: the pieces it does not list are not read at all (they are downloaded again; at most
    ///   what was verified since the last save). Otherwise `Recheck` the rest;
    /// - a clean record with changed files (modified after a graceful stop): [`ResumeDecision::Recheck`] all but
    ///   [`trusted_have`](ResumeRecord::trusted_have).
    ///
    /// If the shapes disagree with the record, nothing is trusted.
    pub fn decide(&self, map: &PieceMap, current: &[Option<FileStamp>]) -> ResumeDecision {
        let stamped = self.trusted_have(map, current);
        if !self.shape_matches(map, current) {
            return ResumeDecision::Recheck(stamped);
        }
        if self.files.iter().zip(current).all(|(a, b)| unchanged(a, b)) {
            return ResumeDecision::Trust(stamped);
        }
        if self.clean {
            return ResumeDecision::Recheck(stamped);
        }
        // Bytes of each file that the record's pieces cover (a file's pieces end where their last span ends).
        let mut needed = vec![0u64; self.files.len()];
        for piece in self.have.iter_ones() {
            if let Ok(spans) = map.piece_spans(piece) {
                for span in spans {
                    let end = span.file_offset.saturating_add(span.length);
                    if let Some(n) = needed.get_mut(span.file_index) {
                        *n = (*n).max(end);
                    }
                }
            }
        }
        let mut out = self.have.clone();
        for (index, (saved, now)) in self.files.iter().zip(current).enumerate() {
            let intact = unchanged(saved, now)
                || match now {
                    Some(b) => b.size >= needed[index],
                    None => needed[index] == 0,
                };
            if !intact {
                for piece in map.file_pieces(index) {
                    out.clear(piece);
                }
            }
        }
        if out == self.have {
            ResumeDecision::Trust(out)
        } else {
            ResumeDecision::Recheck(out)
        }
    }

    fn shape_matches(&self, map: &PieceMap, current: &[Option<FileStamp>]) -> bool {
        map.piece_count() == self.have.len()
            && map.piece_length() == self.piece_length
            && map.file_count() == self.files.len()
            && current.len() == self.files.len()
    }

    /// The pieces that can be trusted now: `have` minus every piece overlapping a file whose current stamp does not
    /// [match](FileStamp::matches) the saved one (`None` on either side: the file was or is missing). `map` is the
    /// torrent's layout, `current` the files' stamps now. If the shapes disagree with the record, nothing is trusted.
    pub fn trusted_have(&self, map: &PieceMap, current: &[Option<FileStamp>]) -> Bitfield {
        let mut out = self.have.clone();
        if !self.shape_matches(map, current) {
            for piece in self.have.iter_ones() {
                out.clear(piece);
            }
            return out;
        }
        for (index, (saved, now)) in self.files.iter().zip(current).enumerate() {
            if !unchanged(saved, now) {
                for piece in map.file_pieces(index) {
                    out.clear(piece);
                }
            }
        }
        out
    }
}

/// A file is unchanged if both stamps [match](FileStamp::matches), or it was and is missing (or padding).
fn unchanged(saved: &Option<FileStamp>, now: &Option<FileStamp>) -> bool {
    match (saved, now) {
        (Some(a), Some(b)) => a.matches(b),
        (None, None) => true,
        _ => false,
    }
}

fn int(raw: &[u8], opts: &DecodeOptions) -> Option<i64> {
    let mut r = Reader::new(raw, opts).ok()?;
    r.read_int().ok()
}

fn bytes_of<'a>(raw: &'a [u8], opts: &DecodeOptions) -> Option<&'a [u8]> {
    let mut r = Reader::new(raw, opts).ok()?;
    r.read_bytes().ok()
}

fn decode_files(raw: &[u8], opts: &DecodeOptions) -> Result<Vec<Option<FileStamp>>, ResumeError> {
    let mut r = Reader::new(raw, opts)?;
    if r.peek_type()? != ValueType::List {
        return Err(ResumeError::BadValue("files"));
    }
    r.begin_list()?;
    let mut files = Vec::new();
    while r.next_in_list()? {
        let index = files.len();
        if index == MAX_RESUME_FILES {
            return Err(ResumeError::BadValue("files"));
        }
        let bad = || ResumeError::BadFileEntry(index);
        if r.peek_type()? != ValueType::List {
            return Err(bad());
        }
        r.begin_list()?;
        let mut fields = [0i64; 3];
        let mut n = 0;
        while r.next_in_list()? {
            if n == 3 || r.peek_type()? != ValueType::Int {
                return Err(bad());
            }
            fields[n] = r.read_int()?;
            n += 1;
        }
        files.push(match n {
            0 => None,
            3 => Some(FileStamp {
                size: u64::try_from(fields[0]).map_err(|_| bad())?,
                mtime_secs: fields[1],
                mtime_nanos: u32::try_from(fields[2])
                    .ok()
                    .filter(|&n| n < 1_000_000_000)
                    .ok_or_else(bad)?,
            }),
            _ => return Err(bad()),
        });
    }
    Ok(files)
}

/// Reads and decodes the record at `path`; `Ok(None)` if there is none. Blocking (see [`write_atomically`]).
pub fn load(path: &Path, expected: &Expected) -> Result<Option<ResumeRecord>, ResumeError> {
    let io_err = |source| ResumeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mut bytes = Vec::new();
    // Read one byte past the limit to tell "at the limit" from "over it" without trusting the file's size.
    file.take(MAX_RESUME_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > MAX_RESUME_BYTES {
        return Err(ResumeError::TooLarge {
            length: bytes.len() as u64,
        });
    }
    ResumeRecord::decode(&bytes, expected).map(Some)
}

/// Replaces the file at `path` with `bytes` so that a crash at any moment leaves either the old content or the new,
/// never a mix: write a temporary file in the same directory, fsync it, rename it over `path`, fsync the directory
/// (so the rename itself is durable). On error the temporary file is removed and `path` is untouched.
///
/// This blocks on disk I/O (plain `std::fs`): call it off the executor (a blocking thread) or port it to glommio's
/// file API; never call it on a shard's event loop.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(path, |f| f.write_all(bytes))
}

/// Distinguishes temporary files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "resume path has no file name")
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: the temp file may not exist, or may already have been renamed.
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected {
            info_hash: InfoHash([7; 20]),
            piece_length: 16384,
            piece_count: 13,
            file_count: 3,
        }
    }

    fn record() -> ResumeRecord {
        let mut r = ResumeRecord::empty(&expected()).unwrap();
        for p in [0, 3, 8, 12] {
            r.have.set(p);
        }
        r.files = vec![
            Some(FileStamp {
                size: 100_000,
                mtime_secs: 1_700_000_000,
                mtime_nanos: 123,
            }),
            None,
            Some(FileStamp {
                size: 0,
                mtime_secs: -5,
                mtime_nanos: 999_999_999,
            }),
        ];
        r
    }

    #[test]
    fn round_trip_and_layout() {
        let r = record();
        let bytes = r.encode();
        assert!(bytes.starts_with(b"d5:check20:"));
        assert!(bytes.ends_with(b"7:versioni1ee"));
        let back = ResumeRecord::decode(&bytes, &expected()).unwrap();
        assert_eq!(back, r);
        assert!(back.have.get(12) && back.have.get(0) && !back.have.get(1) && !back.have.get(13));
        // Encoding is canonical and deterministic.
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn complete_record_is_compact() {
        let mut r = record();
        for p in 0..13 {
            r.have.set(p);
        }
        let bytes = r.encode();
        assert!(bytes.windows(9).any(|w| w == b"4:havei1e"));
        assert_eq!(ResumeRecord::decode(&bytes, &expected()).unwrap(), r);
        // Zero pieces: never the compact form (there is nothing to be complete).
        let e = Expected {
            piece_count: 0,
            file_count: 0,
            ..expected()
        };
        let r = ResumeRecord::empty(&e).unwrap();
        assert_eq!(ResumeRecord::decode(&r.encode(), &e).unwrap(), r);
        // More pieces than the engine supports.
        let huge = Expected {
            piece_count: crate::bitfield::MAX_PIECE_COUNT + 1,
            ..expected()
        };
        assert!(matches!(
            ResumeRecord::empty(&huge),
            Err(ResumeError::Bitfield(BitfieldError::TooManyPieces { .. }))
        ));
    }

    /// Re-encodes `d` with a fresh, valid checksum, so only the semantic check under test can fail.
    fn sealed(mut d: Owned) -> Vec<u8> {
        d.remove(b"check");
        let unchecked = d.encode();
        d.insert("check", Owned::Bytes(Sha1::digest(&unchecked).to_vec()));
        d.encode()
    }

    fn document() -> Owned {
        let bytes = record().encode();
        cyclone_metainfo::bencode::decode(&bytes)
            .unwrap()
            .to_owned_value()
    }

    fn with(key: &str, value: Owned) -> Vec<u8> {
        let mut d = document();
        d.insert(key, value);
        sealed(d)
    }

    fn without(key: &[u8]) -> Vec<u8> {
        let mut d = document();
        d.remove(key);
        sealed(d)
    }

    #[test]
    fn every_corruption_is_a_typed_error() {
        let e = expected();
        let dec = |b: &[u8]| ResumeRecord::decode(b, &e).unwrap_err();
        assert!(matches!(
            dec(&with("version", Owned::Int(2))),
            ResumeError::UnsupportedVersion(2)
        ));
        assert!(matches!(
            dec(&with("version", Owned::from("1"))),
            ResumeError::BadValue("version")
        ));
        assert!(matches!(
            dec(&with("info hash", Owned::Bytes(vec![8; 20]))),
            ResumeError::WrongInfoHash { .. }
        ));
        assert!(matches!(
            dec(&with("info hash", Owned::Bytes(vec![7; 19]))),
            ResumeError::BadValue("info hash")
        ));
        assert!(matches!(
            dec(&with("piece length", Owned::Int(32768))),
            ResumeError::WrongPieceLength {
                expected: 16384,
                found: 32768
            }
        ));
        assert!(matches!(
            dec(&with("piece length", Owned::Int(0))),
            ResumeError::BadValue("piece length")
        ));
        assert!(matches!(
            dec(&with("piece count", Owned::Int(14))),
            ResumeError::WrongPieceCount { .. }
        ));
        assert!(matches!(
            dec(&with("piece count", Owned::Int(-1))),
            ResumeError::BadValue("piece count")
        ));
        assert!(matches!(
            dec(&with("have", Owned::Bytes(vec![0; 3]))),
            ResumeError::Bitfield(BitfieldError::WrongLength {
                got: 3,
                expected: 2,
                piece_count: 13
            })
        ));
        // 13 pieces: the low 3 bits of byte 1 are spare.
        assert!(matches!(
            dec(&with("have", Owned::Bytes(vec![0, 0b0000_0100]))),
            ResumeError::Bitfield(BitfieldError::SpareBitsSet { piece_count: 13 })
        ));
        assert!(matches!(
            dec(&with("have", Owned::Int(2))),
            ResumeError::BadValue("have")
        ));
        assert!(matches!(
            dec(&with("have", Owned::List(vec![]))),
            ResumeError::BadValue("have")
        ));
        assert!(matches!(
            dec(&with("files", Owned::List(vec![]))),
            ResumeError::WrongFileCount { .. }
        ));
        assert!(matches!(
            dec(&with("files", Owned::Int(1))),
            ResumeError::BadValue("files")
        ));
        let entry = |items: Vec<Owned>| {
            Owned::List(vec![
                Owned::List(vec![]),
                Owned::List(items),
                Owned::List(vec![]),
            ])
        };
        for bad in [
            vec![Owned::Int(1)],
            vec![Owned::Int(-1), Owned::Int(0), Owned::Int(0)],
            vec![Owned::Int(1), Owned::Int(0), Owned::Int(1_000_000_000)],
            vec![Owned::Int(1), Owned::Int(0), Owned::Int(-1)],
            vec![Owned::Int(1), Owned::Int(0), Owned::Int(0), Owned::Int(0)],
            vec![Owned::Int(1), Owned::from("x"), Owned::Int(0)],
        ] {
            assert!(matches!(
                dec(&with("files", entry(bad))),
                ResumeError::BadFileEntry(1)
            ));
        }
        assert!(matches!(
            dec(&with("files", Owned::List(vec![Owned::Int(0)]))),
            ResumeError::BadFileEntry(0)
        ));
        assert!(
            matches!(dec(&with("extra", Owned::Int(0))), ResumeError::UnknownKey(k) if k == "extra")
        );
        for key in [
            "files",
            "have",
            "info hash",
            "piece count",
            "piece length",
            "version",
        ] {
            match dec(&without(key.as_bytes())) {
                ResumeError::MissingKey(k) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        let mut d = document();
        d.remove(b"check");
        assert!(matches!(dec(&d.encode()), ResumeError::MissingKey("check")));
        assert!(matches!(dec(b"le"), ResumeError::NotADictionary));
        assert!(matches!(dec(b""), ResumeError::Bencode(_)));
        assert!(matches!(dec(b"d5:checke"), ResumeError::Bencode(_)));
        // Wrong file count against a valid record of another shape.
        let other = Expected { file_count: 4, ..e };
        assert!(matches!(
            ResumeRecord::decode(&record().encode(), &other),
            Err(ResumeError::WrongFileCount {
                expected: 4,
                found: 3
            })
        ));
    }

    #[test]
    fn any_flipped_bit_or_truncation_is_rejected() {
        let good = record().encode();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    ResumeRecord::decode(&bad, &expected()).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
        for cut in 0..good.len() {
            assert!(
                ResumeRecord::decode(&good[..cut], &expected()).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(b'\n');
        assert!(matches!(
            ResumeRecord::decode(&longer, &expected()),
            Err(ResumeError::Bencode(_))
        ));
    }

    #[test]
    fn trusted_have_drops_pieces_of_changed_files() {
        // 13 pieces of 16 KiB: files of 100,000 + 100,000 + 0 bytes.
        let map = PieceMap::new(16384, &[100_000, 100_000, 0]).unwrap();
        assert_eq!(Expected::new(InfoHash([7; 20]), &map), expected());
        let mut r = record();
        for p in 0..13 {
            r.have.set(p);
        }
        r.files[1] = Some(FileStamp {
            size: 100_000,
            mtime_secs: 1,
            mtime_nanos: 0,
        });
        let current = r.files.clone();
        let kept = |t: Bitfield| t.iter_ones().collect::<Vec<u32>>();
        assert_eq!(r.trusted_have(&map, &current), r.have);
        // Within ±1 s the file counts as untouched.
        let mut close = current.clone();
        close[0] = Some(FileStamp {
            mtime_secs: 1_700_000_001,
            ..current[0].unwrap()
        });
        assert_eq!(r.trusted_have(&map, &close), r.have);
        // File 0 (bytes 0..100,000) changed: pieces 0..=6 (6 * 16384 = 98,304 < 100,000) go.
        let mut changed = current.clone();
        changed[0] = Some(FileStamp {
            mtime_secs: 1_700_000_001,
            mtime_nanos: 124,
            ..current[0].unwrap()
        });
        assert_eq!(kept(r.trusted_have(&map, &changed)), [7, 8, 9, 10, 11, 12]);
        let mut resized = current.clone();
        resized[0] = Some(FileStamp {
            size: 99_999,
            ..current[0].unwrap()
        });
        assert_eq!(kept(r.trusted_have(&map, &resized)), [7, 8, 9, 10, 11, 12]);
        // File 1 (bytes 100,000..200,000) went missing: pieces 6..=12 go.
        let mut missing = current.clone();
        missing[1] = None;
        assert_eq!(kept(r.trusted_have(&map, &missing)), [0, 1, 2, 3, 4, 5]);
        // A file that was missing and now exists is not trusted either (its pieces were not had anyway).
        let mut r2 = r.clone();
        r2.files[1] = None;
        assert_eq!(kept(r2.trusted_have(&map, &current)), [0, 1, 2, 3, 4, 5]);
        // A change to an empty file affects no piece.
        let mut empty_changed = current.clone();
        empty_changed[2] = None;
        assert_eq!(r.trusted_have(&map, &empty_changed), r.have);
        // Shape mismatches trust nothing.
        let two_files = PieceMap::new(16384, &[100_000, 112_992]).unwrap();
        assert_eq!(two_files.piece_count(), 13);
        assert_eq!(r.trusted_have(&two_files, &current[..2]).count_ones(), 0);
        let other_length = PieceMap::new(16384 * 2, &[100_000, 100_000, 300_000]).unwrap();
        assert_eq!(r.trusted_have(&other_length, &current).count_ones(), 0);
        let more_pieces = PieceMap::new(16384, &[100_000, 100_000, 1_000_000]).unwrap();
        assert_eq!(r.trusted_have(&more_pieces, &current).count_ones(), 0);
        assert_eq!(r.trusted_have(&map, &current[..1]).count_ones(), 0);
    }

    #[test]
    fn clean_flag_round_trips_and_old_records_read_as_clean() {
        let mut r = record();
        r.clean = false;
        let bytes = r.encode();
        assert!(bytes.windows(9).any(|w| w == b"5:cleani0"));
        assert_eq!(ResumeRecord::decode(&bytes, &expected()).unwrap(), r);
        // A record written before the flag existed is valid and reads as clean: it gets the stamp rule, the safe one.
        let old = ResumeRecord::decode(&without(b"clean"), &expected()).unwrap();
        assert!(old.clean);
        assert_eq!(old, record());
        for bad in [
            Owned::Int(2),
            Owned::Int(-1),
            Owned::from("1"),
            Owned::List(vec![]),
        ] {
            assert!(matches!(
                ResumeRecord::decode(&with("clean", bad), &expected()),
                Err(ResumeError::BadValue("clean"))
            ));
        }
    }

    #[test]
    fn decide_trusts_a_crash_record_unless_a_file_was_cut_or_removed() {
        // 13 pieces of 16 KiB over files of 100,000 + 100,000 + 0 bytes. The record has pieces 0..=2 (file 0, bytes
        // 0..49,152) and 8..=9 (file 1, bytes 31,072..63,840 of it).
        let map = PieceMap::new(16384, &[100_000, 100_000, 0]).unwrap();
        let mut r = record();
        r.have = Bitfield::new(13).unwrap();
        for p in [0, 1, 2, 8, 9] {
            r.have.set(p);
        }
        let stamp = |size, secs| {
            Some(FileStamp {
                size,
                mtime_secs: secs,
                mtime_nanos: 0,
            })
        };
        r.files = vec![
            stamp(100_000, 1_700_000_000),
            stamp(100_000, 1_700_000_000),
            stamp(0, 5),
        ];
        let same = r.files.clone();
        // Both files written after the save (mtimes moved by minutes), sizes intact.
        let moved = vec![
            stamp(100_000, 1_700_000_300),
            stamp(100_000, 1_700_000_400),
            stamp(0, 5),
        ];
        let ones = |d: ResumeDecision| match d {
            ResumeDecision::Trust(b) => ("trust", b.iter_ones().collect::<Vec<u32>>()),
            ResumeDecision::Recheck(b) => ("recheck", b.iter_ones().collect::<Vec<u32>>()),
        };
        let all = vec![0, 1, 2, 8, 9];

        // Clean record (graceful stop): untouched files are trusted; changed files are rechecked.
        assert!(r.clean);
        assert_eq!(ones(r.decide(&map, &same)), ("trust", all.clone()));
        assert_eq!(ones(r.decide(&map, &moved)), ("recheck", vec![]));
        let mut one_moved = same.clone();
        one_moved[1] = moved[1];
        assert_eq!(ones(r.decide(&map, &one_moved)), ("recheck", vec![0, 1, 2]));

        // Unclean record (the session that wrote it crashed): moved mtimes are expected, the pieces are trusted and
        // nothing else is checked.
        let mut crashed = r.clone();
        crashed.clean = false;
        assert_eq!(ones(crashed.decide(&map, &same)), ("trust", all.clone()));
        assert_eq!(ones(crashed.decide(&map, &moved)), ("trust", all.clone()));
        // Longer than needed is fine (file 1 only needs 63,840 bytes); one byte short drops its pieces.
        let mut cut = moved.clone();
        cut[1] = stamp(63_840, 1_700_000_400);
        assert_eq!(ones(crashed.decide(&map, &cut)), ("trust", all.clone()));
        cut[1] = stamp(63_839, 1_700_000_400);
        assert_eq!(ones(crashed.decide(&map, &cut)), ("recheck", vec![0, 1, 2]));
        // File 0 truncated to nothing: its pieces go, file 1's stay.
        let mut emptied = moved.clone();
        emptied[0] = stamp(0, 1_700_000_500);
        assert_eq!(
            ones(crashed.decide(&map, &emptied)),
            ("recheck", vec![8, 9])
        );
        // File 1 removed.
        let mut missing = moved.clone();
        missing[1] = None;
        assert_eq!(
            ones(crashed.decide(&map, &missing)),
            ("recheck", vec![0, 1, 2])
        );
        // The empty file going missing costs nothing; a file holding no recorded piece may be anything.
        let mut r2 = crashed.clone();
        r2.have = Bitfield::new(13).unwrap();
        r2.have.set(0);
        let mut other = moved.clone();
        other[1] = None;
        other[2] = None;
        assert_eq!(ones(r2.decide(&map, &other)), ("trust", vec![0]));

        // A record from before the flag reads as clean: a changed file is rechecked.
        let old = ResumeRecord::decode(
            &{
                let mut d = cyclone_metainfo::bencode::decode(&crashed.encode())
                    .unwrap()
                    .to_owned_value();
                d.remove(b"clean");
                sealed(d)
            },
            &expected(),
        )
        .unwrap();
        assert!(old.clean);
        assert_eq!(ones(old.decide(&map, &moved)), ("recheck", vec![]));

        // Shape mismatches trust nothing, clean or not.
        let two_files = PieceMap::new(16384, &[100_000, 112_992]).unwrap();
        assert_eq!(
            ones(crashed.decide(&two_files, &moved[..2])),
            ("recheck", vec![])
        );
        assert_eq!(ones(crashed.decide(&map, &moved[..2])), ("recheck", vec![]));
    }

    #[test]
    fn stamp_from_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"12345").unwrap();
        let s = FileStamp::from_metadata(&fs::metadata(&p).unwrap()).unwrap();
        assert_eq!(s.size, 5);
        assert!(s.mtime_secs > 1_600_000_000 && s.mtime_nanos < 1_000_000_000);
    }

    #[test]
    fn write_load_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resume");
        assert!(load(&path, &expected()).unwrap().is_none());
        write_atomically(&path, &record().encode()).unwrap();
        assert_eq!(load(&path, &expected()).unwrap(), Some(record()));
        let mut r2 = record();
        r2.have.set(1);
        write_atomically(&path, &r2.encode()).unwrap();
        assert_eq!(load(&path, &expected()).unwrap(), Some(r2));
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["resume"]);
        // A path without a file name is refused before anything is created.
        assert_eq!(
            write_atomically(Path::new("/"), b"x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn torn_write_never_replaces_a_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resume");
        let good = record().encode();
        write_atomically(&path, &good).unwrap();
        let new = {
            let mut r = record();
            r.have.set(2);
            r.encode()
        };
        // The write fails halfway (disk full, say): the old record stays, the partial temp file is removed.
        let err = write_atomically_with(&path, |f| {
            f.write_all(&new[..new.len() / 2])?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), good);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["resume"]);
        // A crash mid-write leaves a torn temp file beside the record: the record is still the good one, and a
        // torn file is itself rejected if anyone reads it.
        let torn = dir.path().join(".resume.tmp.1.1");
        fs::write(&torn, &new[..new.len() / 2]).unwrap();
        assert_eq!(load(&path, &expected()).unwrap(), Some(record()));
        assert!(load(&torn, &expected()).is_err());
        // The next successful write does not trip over the leftover.
        write_atomically(&path, &new).unwrap();
        assert_eq!(fs::read(&path).unwrap(), new);
    }

    #[test]
    fn load_rejects_oversized_files_and_reports_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let f = File::create(&path).unwrap();
        f.set_len(MAX_RESUME_BYTES as u64 + 10).unwrap();
        assert!(matches!(
            load(&path, &expected()),
            Err(ResumeError::TooLarge { .. })
        ));
        // A directory cannot be read as a record.
        assert!(matches!(
            load(dir.path(), &expected()),
            Err(ResumeError::Io { .. })
        ));
    }
}
