//! Making a `.torrent` from files: BitTornado's `btmakemetafile` plus what users expect today.
//!
//! File order follows BitTornado (`BitTornado/Meta/BTTree.py`, 0.3.18 `subfiles` +
//! `sort`): every directory's entries sorted by name bytes, i.e. paths sorted component
//! by component. That is also imdl's and torf's order, and mktorrent's whenever no name
//! contains a byte below `/` (such as `-` or `.`) where a sibling is a prefix of it.
//!
//! The info dictionary holds exactly `files`/`length`, `name`, `piece length`, `pieces`,
//! plus `private` (only when set: we never write `private: 0`) and `source` (only when
//! given), so a torrent of the same files and piece size has mktorrent's info-hash.
//!
//! Policies, all explicit in [`WalkOptions`]: dot-files are skipped unless asked for
//! (BitTornado); symlinks are followed (BitTornado, mktorrent) with loop detection, or
//! skipped; empty files are included (BitTornado, mktorrent) unless asked not to.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::bencode::Owned;
use crate::glob::Glob;
use crate::info_hash::InfoHash;
use crate::piece_hasher::{self, HashError, HashOptions, Progress, SourceFile};

/// Smallest piece size `make` accepts (1 KiB; BitTornado allowed any power of two).
pub const PIECE_SIZE_MIN: u64 = 1 << 10;
/// Largest piece size `make` accepts (256 MiB, mktorrent's limit).
pub const PIECE_SIZE_MAX: u64 = 1 << 28;
/// Most files one torrent may hold (same bound the reader applies).
pub const FILES_MAX: usize = crate::MAX_FILES;
/// Deepest directory nesting followed.
pub const DEPTH_MAX: usize = 256;

/// How to choose the piece size when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPieceRule {
    /// Power of two between 16 KiB and 16 MiB giving at most 2048 pieces (so 1025..=2048
    /// pieces for anything above 32 MiB), in line with transmission 4, torf and libtorrent.
    Modern,
    /// BitTornado 0.3.18's table (32 KiB .. 2 MiB by total size).
    BitTornado,
}

impl AutoPieceRule {
    /// Piece size for `total` content bytes.
    pub fn piece_size(self, total: u64) -> u64 {
        match self {
            AutoPieceRule::Modern => {
                let wanted = total.div_ceil(2048).max(1);
                wanted.next_power_of_two().clamp(16 << 10, 16 << 20)
            }
            AutoPieceRule::BitTornado => {
                const GIB: u64 = 1 << 30;
                const MIB: u64 = 1 << 20;
                let exp = if total > 8 * GIB {
                    21
                } else if total > 2 * GIB {
                    20
                } else if total > 512 * MIB {
                    19
                } else if total > 64 * MIB {
                    18
                } else if total > 16 * MIB {
                    17
                } else if total > 4 * MIB {
                    16
                } else {
                    15
                };
                1 << exp
            }
        }
    }
}

/// Piece size: fixed, or chosen from the content size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceSize {
    /// Exactly this many bytes (a power of two in range; checked by [`make_torrent`]).
    Exact(u64),
    /// Chosen by the rule.
    Auto(AutoPieceRule),
}

/// Parses a piece size: `262144`, `256k`, `256KiB`, `1m`, `1MiB`, `2^20`, `4M`.
/// Units are binary (k = 1024). The result must be a power of two in range.
pub fn parse_piece_size(text: &str) -> Result<u64, MakeError> {
    let t = text.trim();
    let bad = || {
        MakeError::PieceSize(format!(
            "cannot read piece size {text:?} (try 256k, 1MiB, 2^20 or 1048576)"
        ))
    };
    let value = if let Some(exp) = t.strip_prefix("2^") {
        let e: u32 = exp.trim().parse().map_err(|_| bad())?;
        if e >= 63 {
            return Err(bad());
        }
        1u64 << e
    } else {
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).ok_or_else(bad)?
    };
    check_piece_size(value)?;
    Ok(value)
}

/// A piece size `make` will write.
pub fn check_piece_size(value: u64) -> Result<(), MakeError> {
    if !value.is_power_of_two() {
        return Err(MakeError::PieceSize(format!(
            "piece size {value} is not a power of two"
        )));
    }
    if !(PIECE_SIZE_MIN..=PIECE_SIZE_MAX).contains(&value) {
        return Err(MakeError::PieceSize(format!(
            "piece size {value} is out of range ({PIECE_SIZE_MIN} ..= {PIECE_SIZE_MAX} bytes)"
        )));
    }
    Ok(())
}

/// Which files of a directory go into the torrent.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Include names starting with `.` (BitTornado and transmission skip them).
    pub include_hidden: bool,
    /// Skip symlinks instead of following them.
    pub skip_symlinks: bool,
    /// Leave out zero-length files.
    pub skip_empty: bool,
    /// Exact names always skipped (BitTornado: `core`, `CVS`).
    pub skip_names: Vec<Vec<u8>>,
    /// If non-empty, a file must match one of these (relative path) to be included.
    pub include: Vec<Glob>,
    /// Files or directories matching any of these are left out.
    pub exclude: Vec<Glob>,
}

impl WalkOptions {
    /// BitTornado's walk: skip dot-files, `core` and `CVS`; follow symlinks; keep empty files.
    pub fn bittornado() -> WalkOptions {
        WalkOptions {
            skip_names: vec![b"core".to_vec(), b"CVS".to_vec()],
            ..WalkOptions::default()
        }
    }
}

/// One file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Components below the torrent's root (for a single file: just its name).
    pub components: Vec<Vec<u8>>,
    /// Where to read it.
    pub disk_path: PathBuf,
    /// Size at walk time.
    pub length: u64,
}

/// The content of a torrent to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileList {
    /// `info.name`: the base name of the file or directory.
    pub name: Vec<u8>,
    /// A single file (`length`) rather than a directory (`files`).
    pub single_file: bool,
    /// In torrent order.
    pub files: Vec<ListedFile>,
}

impl FileList {
    /// Sum of the file lengths.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }
}

/// Everything `make` can put into a torrent besides the content.
#[derive(Debug, Clone, Default)]
pub struct MakeOptions {
    /// `announce`; when absent but tiers are given, the first URL of the first tier.
    pub announce: Option<String>,
    /// `announce-list` tiers (BEP 12); written only when given.
    pub announce_list: Vec<Vec<String>>,
    /// `httpseeds` (BEP 17).
    pub httpseeds: Vec<String>,
    /// `url-list` web seeds (BEP 19).
    pub url_list: Vec<String>,
    /// `comment`, omitted when empty.
    pub comment: Option<String>,
    /// `info.private = 1` when true; nothing when false.
    pub private: bool,
    /// `info.source`.
    pub source: Option<String>,
    /// `creation date` (Unix seconds); `None` writes no date.
    pub creation_date: Option<i64>,
    /// `created by`; `None` writes none.
    pub created_by: Option<String>,
    /// Replaces the base name as `info.name`.
    pub name: Option<Vec<u8>>,
    /// Piece size; `None` means the modern auto rule.
    pub piece_size: Option<PieceSize>,
    /// Hashing threads and buffers.
    pub hash: HashOptions,
}

/// A finished torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeTorrent {
    /// The `.torrent` bytes.
    pub bytes: Vec<u8>,
    /// SHA-1 of the info dictionary.
    pub info_hash: InfoHash,
    /// Piece size used.
    pub piece_length: u64,
    /// Number of pieces.
    pub piece_count: usize,
    /// Content bytes.
    pub total_length: u64,
    /// Number of files.
    pub file_count: usize,
}

/// Why a torrent could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// A path could not be read while listing files.
    #[error("cannot read {}: {source}", path.display())]
    Walk {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A symlink leads back into a directory being walked.
    #[error("symlink loop at {}", path.display())]
    SymlinkLoop {
        /// Where.
        path: PathBuf,
    },
    /// Too many files or directories too deep.
    #[error("{0}")]
    Limit(String),
    /// Nothing to put in the torrent.
    #[error("no files to add under {} (hidden files and filtered names are skipped)", path.display())]
    NoFiles {
        /// The root.
        path: PathBuf,
    },
    /// The root is not a regular file or directory.
    #[error("{} is not a regular file or directory", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Bad piece size.
    #[error("{0}")]
    PieceSize(String),
    /// A name cannot be used in a torrent.
    #[error("cannot use the name {name:?}: {reason}")]
    BadName {
        /// The name (lossy).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Lists the files of `root` (a file or a directory) in torrent order.
pub fn collect_files(root: &Path, walk: &WalkOptions) -> Result<FileList, MakeError> {
    let walk_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MakeError::Walk { path, source }
    };
    let meta = std::fs::metadata(root).map_err(walk_err(root))?;
    let absolute = std::path::absolute(root).map_err(walk_err(root))?;
    // `a/.` or `a/..`-style roots: name the torrent after the real directory.
    let named = if absolute.file_name().is_some() && !root.ends_with("..") {
        absolute.clone()
    } else {
        std::fs::canonicalize(root).map_err(walk_err(root))?
    };
    let name = named
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_else(|| b"root".to_vec());
    if meta.is_file() {
        return Ok(FileList {
            name: name.clone(),
            single_file: true,
            files: vec![ListedFile {
                components: vec![name],
                disk_path: root.to_path_buf(),
                length: meta.len(),
            }],
        });
    }
    if !meta.is_dir() {
        return Err(MakeError::NotAFile {
            path: root.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    let mut active_dirs = HashSet::new();
    walk_dir(
        root,
        &mut Vec::new(),
        walk,
        &mut active_dirs,
        &mut files,
        &meta,
    )?;
    if files.is_empty() {
        return Err(MakeError::NoFiles {
            path: root.to_path_buf(),
        });
    }
    Ok(FileList {
        name,
        single_file: false,
        files,
    })
}

fn walk_dir(
    dir: &Path,
    prefix: &mut Vec<Vec<u8>>,
    walk: &WalkOptions,
    active: &mut HashSet<(u64, u64)>,
    out: &mut Vec<ListedFile>,
    dir_meta: &std::fs::Metadata,
) -> Result<(), MakeError> {
    if prefix.len() >= DEPTH_MAX {
        return Err(MakeError::Limit(format!(
            "directories nested deeper than {DEPTH_MAX} levels at {}",
            dir.display()
        )));
    }
    let id = (dir_meta.dev(), dir_meta.ino());
    if !active.insert(id) {
        return Err(MakeError::SymlinkLoop {
            path: dir.to_path_buf(),
        });
    }
    let names = sorted_names(dir)?;
    for name in names {
        if !walk.include_hidden && name.first() == Some(&b'.') {
            continue;
        }
        if walk.skip_names.contains(&name) {
            continue;
        }
        let path = dir.join(OsStr::from_bytes(&name));
        prefix.push(name);
        let relative = prefix.join(&b'/');
        if walk.exclude.iter().any(|g| g.matches_path(&relative)) {
            prefix.pop();
            continue;
        }
        let link_meta = std::fs::symlink_metadata(&path).map_err(|source| MakeError::Walk {
            path: path.clone(),
            source,
        })?;
        if link_meta.file_type().is_symlink() && walk.skip_symlinks {
            prefix.pop();
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|source| MakeError::Walk {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk_dir(&path, prefix, walk, active, out, &meta)?;
        } else if meta.is_file() {
            let included =
                walk.include.is_empty() || walk.include.iter().any(|g| g.matches_path(&relative));
            if included && !(walk.skip_empty && meta.len() == 0) {
                if out.len() >= FILES_MAX {
                    return Err(MakeError::Limit(format!(
                        "more than {FILES_MAX} files under {}",
                        dir.display()
                    )));
                }
                out.push(ListedFile {
                    components: prefix.clone(),
                    disk_path: path,
                    length: meta.len(),
                });
            }
        }
        // Sockets, FIFOs and devices are never content.
        prefix.pop();
    }
    active.remove(&id);
    Ok(())
}

/// Hashes the listed files and builds the `.torrent`.
pub fn make_torrent(
    list: &FileList,
    options: &MakeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<MadeTorrent, MakeError> {
    let name = options.name.clone().unwrap_or_else(|| list.name.clone());
    if let Some(reason) = crate::path_rules::component_problem(&name) {
        return Err(MakeError::BadName {
            name: String::from_utf8_lossy(&name).into_owned(),
            reason,
        });
    }
    let total = list.total_length();
    let piece_length = match options
        .piece_size
        .unwrap_or(PieceSize::Auto(AutoPieceRule::Modern))
    {
        PieceSize::Exact(n) => {
            check_piece_size(n)?;
            n
        }
        PieceSize::Auto(rule) => rule.piece_size(total),
    };
    let sources: Vec<SourceFile> = list
        .files
        .iter()
        .map(|f| SourceFile {
            path: f.disk_path.clone(),
            length: f.length,
            padding: false,
        })
        .collect();
    let digests = piece_hasher::hash_files(&sources, piece_length, &options.hash, progress)?;

    let mut info = Owned::dict();
    if list.single_file {
        info.insert("length", Owned::Int(total as i64));
    } else {
        let files = list
            .files
            .iter()
            .map(|f| {
                let mut d = Owned::dict();
                d.insert("length", Owned::Int(f.length as i64));
                d.insert(
                    "path",
                    Owned::List(
                        f.components
                            .iter()
                            .map(|c| Owned::Bytes(c.clone()))
                            .collect(),
                    ),
                );
                d
            })
            .collect();
        info.insert("files", Owned::List(files));
    }
    info.insert("name", Owned::Bytes(name));
    info.insert("piece length", Owned::Int(piece_length as i64));
    info.insert("pieces", Owned::Bytes(piece_hasher::pieces_bytes(&digests)));
    if options.private {
        info.insert("private", Owned::Int(1));
    }
    if let Some(source) = options.source.as_deref().filter(|s| !s.is_empty()) {
        info.insert("source", Owned::Bytes(source.as_bytes().to_vec()));
    }
    let info_bytes = info.encode();
    let info_hash = InfoHash::of_raw_info(&info_bytes);

    let mut top = Owned::dict();
    let announce = options
        .announce
        .clone()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .or_else(|| options.announce_list.iter().flatten().next().cloned());
    if let Some(a) = announce {
        top.insert("announce", Owned::Bytes(a.into_bytes()));
    }
    let tiers: Vec<Owned> = options
        .announce_list
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| Owned::List(t.iter().map(|u| Owned::from(u.as_str())).collect()))
        .collect();
    if !tiers.is_empty() {
        top.insert("announce-list", Owned::List(tiers));
    }
    if let Some(c) = options.comment.as_deref().filter(|c| !c.is_empty()) {
        top.insert("comment", Owned::from(c));
    }
    if let Some(c) = options.created_by.as_deref().filter(|c| !c.is_empty()) {
        top.insert("created by", Owned::from(c));
    }
    if let Some(d) = options.creation_date {
        top.insert("creation date", Owned::Int(d));
    }
    if !options.httpseeds.is_empty() {
        let seeds = options
            .httpseeds
            .iter()
            .map(|u| Owned::from(u.as_str()))
            .collect();
        top.insert("httpseeds", Owned::List(seeds));
    }
    top.insert("info", Owned::Raw(info_bytes));
    if !options.url_list.is_empty() {
        let seeds = options
            .url_list
            .iter()
            .map(|u| Owned::from(u.as_str()))
            .collect();
        top.insert("url-list", Owned::List(seeds));
    }
    Ok(MadeTorrent {
        bytes: top.encode(),
        info_hash,
        piece_length,
        piece_count: digests.len(),
        total_length: total,
        file_count: list.files.len(),
    })
}

/// The names of `dir`'s entries as bytes, sorted (BitTornado's walk order).
fn sorted_names(dir: &Path) -> Result<Vec<Vec<u8>>, MakeError> {
    let err = |source| MakeError::Walk {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        names.push(entry.map_err(err)?.file_name().as_bytes().to_vec());
    }
    names.sort();
    Ok(names)
}

/// `btcompletedir`: the entries of `dir` that each get their own torrent.
///
/// Skips `*.torrent`, entries that already have a sibling `<entry>.torrent`, dot-files
/// (unless `include_hidden`) and BitTornado's `core`/`CVS`.
pub fn completedir_entries(dir: &Path, include_hidden: bool) -> Result<Vec<PathBuf>, MakeError> {
    let names = sorted_names(dir)?;
    let all: HashSet<Vec<u8>> = names.iter().cloned().collect();
    Ok(names
        .into_iter()
        .filter(|n| include_hidden || n.first() != Some(&b'.'))
        .filter(|n| n != b"core" && n != b"CVS")
        .filter(|n| !n.ends_with(b".torrent"))
        .filter(|n| {
            let mut t = n.clone();
            t.extend_from_slice(b".torrent");
            !all.contains(&t)
        })
        .map(|n| dir.join(OsStr::from_bytes(&n)))
        .collect())
}

/// Default output path: `<file>.torrent` next to the source (BitTornado), for a
/// directory `<dir>.torrent` beside it.
pub fn default_target(source: &Path) -> PathBuf {
    let trimmed = source.components().as_path();
    let mut s = trimmed.as_os_str().as_bytes().to_vec();
    while s.len() > 1 && s.ends_with(b"/") {
        s.pop();
    }
    s.extend_from_slice(b".torrent");
    PathBuf::from(OsStr::from_bytes(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metainfo;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "cyclone-create-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(path: &Path, data: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn auto_rules() {
        let m = AutoPieceRule::Modern;
        assert_eq!(m.piece_size(0), 16 << 10);
        assert_eq!(m.piece_size(2 << 30), 1 << 20);
        assert_eq!(m.piece_size(200 << 20), 128 << 10);
        assert_eq!(m.piece_size(1 << 50), 16 << 20);
        for total in [40u64 << 20, 700 << 20, 3 << 30, 30 << 30] {
            let n = total.div_ceil(m.piece_size(total));
            assert!((1000..=2048).contains(&n), "{total}: {n} pieces");
        }
        let b = AutoPieceRule::BitTornado;
        assert_eq!(b.piece_size(1 << 20), 1 << 15);
        assert_eq!(b.piece_size(10 << 20), 1 << 16);
        assert_eq!(b.piece_size(100 << 20), 1 << 18);
        assert_eq!(b.piece_size(2 << 30), 1 << 19);
        assert_eq!(b.piece_size((2 << 30) + 1), 1 << 20);
        assert_eq!(b.piece_size(50 << 30), 1 << 21);
    }

    #[test]
    fn piece_size_units() {
        assert_eq!(parse_piece_size("262144").unwrap(), 1 << 18);
        assert_eq!(parse_piece_size("256k").unwrap(), 1 << 18);
        assert_eq!(parse_piece_size("256KiB").unwrap(), 1 << 18);
        assert_eq!(parse_piece_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_piece_size("4m").unwrap(), 4 << 20);
        assert_eq!(parse_piece_size("2^20").unwrap(), 1 << 20);
        let e = parse_piece_size("1000000").unwrap_err().to_string();
        assert_eq!(e, "piece size 1000000 is not a power of two");
        assert!(parse_piece_size("1G")
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert!(parse_piece_size("lots").is_err());
        assert!(parse_piece_size("2^99").is_err());
    }

    #[test]
    fn walk_order_and_policies() {
        let d = tempdir("walk");
        let root = d.join("content");
        for p in [
            "b/y", "a/z", "a-b/x", "a.b", "A", ".hidden", "sub/.dot", "core", "empty",
        ] {
            let data: &[u8] = if p == "empty" { b"" } else { p.as_bytes() };
            put(&root.join(p), data);
        }
        std::os::unix::fs::symlink(root.join("a.b"), root.join("link")).unwrap();
        let names = |l: &FileList| -> Vec<String> {
            l.files
                .iter()
                .map(|f| String::from_utf8(f.components.join(&b'/')).unwrap())
                .collect()
        };
        let bt = collect_files(&root, &WalkOptions::bittornado()).unwrap();
        assert_eq!(bt.name, b"content");
        assert!(!bt.single_file);
        // Per-component byte order: "a" < "a-b" < "a.b" (BitTornado, imdl, torf).
        assert_eq!(
            names(&bt),
            ["A", "a/z", "a-b/x", "a.b", "b/y", "empty", "link"]
        );
        let all = collect_files(
            &root,
            &WalkOptions {
                include_hidden: true,
                skip_symlinks: true,
                skip_empty: true,
                ..WalkOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            names(&all),
            [".hidden", "A", "a/z", "a-b/x", "a.b", "b/y", "core", "sub/.dot"]
        );
        let globbed = collect_files(
            &root,
            &WalkOptions {
                include: vec![Glob::new("a*").unwrap()],
                exclude: vec![Glob::new("a-b").unwrap()],
                ..WalkOptions::default()
            },
        )
        .unwrap();
        assert_eq!(names(&globbed), ["a/z", "a.b"]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let d = tempdir("loop");
        put(&d.join("c/f"), b"x");
        std::os::unix::fs::symlink(d.join("c"), d.join("c/back")).unwrap();
        let e = collect_files(&d.join("c"), &WalkOptions::default()).unwrap_err();
        assert!(matches!(e, MakeError::SymlinkLoop { .. }), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn made_torrent_reads_back_and_keeps_keys_minimal() {
        let d = tempdir("make");
        let root = d.join("pack");
        let mut rng = fastrand::Rng::with_seed(1);
        let mut big = vec![0u8; 100_000];
        rng.fill(&mut big);
        put(&root.join("one.bin"), &big);
        put(&root.join("dir/two.bin"), &big[..777]);
        let list = collect_files(&root, &WalkOptions::default()).unwrap();
        let opts = MakeOptions {
            announce: Some(" http://127.0.0.1:1/announce ".into()),
            announce_list: vec![
                vec![
                    "http://127.0.0.1:1/announce".into(),
                    "http://127.0.0.1:2/a".into(),
                ],
                vec!["udp://127.0.0.1:3".into()],
            ],
            piece_size: Some(PieceSize::Exact(1 << 14)),
            ..MakeOptions::default()
        };
        let made = make_torrent(&list, &opts, &mut |_| {}).unwrap();
        let m = Metainfo::from_bytes(&made.bytes).unwrap();
        assert_eq!(m.info_hash, made.info_hash);
        assert_eq!(m.announce.as_deref(), Some("http://127.0.0.1:1/announce"));
        assert_eq!(m.announce_list.len(), 2);
        assert_eq!(m.info.private, None, "never write private: 0");
        assert_eq!(m.info.files.len(), 2);
        assert_eq!(
            m.info.files[0].path,
            vec![b"dir".to_vec(), b"two.bin".to_vec()]
        );
        let mut all = big[..777].to_vec();
        all.extend_from_slice(&big);
        let want: Vec<[u8; 20]> = all.chunks(1 << 14).map(crate::sha1_multi::sha1).collect();
        assert_eq!(m.info.pieces, want);
        assert!(m.creation_date.is_none() && m.created_by.is_none());
        let keys: Vec<&[u8]> = m.raw_top_level.keys().map(Vec::as_slice).collect();
        assert_eq!(keys, [&b"announce"[..], b"announce-list"]);

        let private = make_torrent(
            &list,
            &MakeOptions {
                private: true,
                source: Some("SRC".into()),
                ..opts.clone()
            },
            &mut |_| {},
        )
        .unwrap();
        let p = Metainfo::from_bytes(&private.bytes).unwrap();
        assert_eq!(p.info.private, Some(true));
        assert_eq!(p.info.source.as_deref(), Some(&b"SRC"[..]));
        assert_ne!(p.info_hash, m.info_hash);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn completedir_skips_like_bittornado() {
        let d = tempdir("completedir");
        for p in [
            "a.bin",
            "b/x",
            "c.bin",
            "c.bin.torrent",
            "old.torrent",
            ".h",
            "CVS/x",
        ] {
            put(&d.join(p), b"1");
        }
        let got: Vec<PathBuf> = completedir_entries(&d, false).unwrap();
        assert_eq!(got, [d.join("a.bin"), d.join("b")]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn default_target_is_next_to_source() {
        assert_eq!(
            default_target(Path::new("x/dir/")),
            PathBuf::from("x/dir.torrent")
        );
        assert_eq!(
            default_target(Path::new("f.bin")),
            PathBuf::from("f.bin.torrent")
        );
    }
}
