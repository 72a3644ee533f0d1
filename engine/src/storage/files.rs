//! Where a torrent's files live, and the shard's bounded pool of open files.
//!
//! [`FileLayout`] resolves each metainfo file to a path under the download root. The metainfo parser already
//! refuses `..`, absolute paths, separators and NUL inside components (`cyclone_metainfo::path_rules`); the layout
//! checks the same rules again and then checks the joined path lexically (every component after the root is a
//! plain name), so no metainfo can make us write outside the root. Symlinks that the operator placed under the root
//! are followed on purpose: cross-seeding tools link existing data into a torrent's tree.
//!
//! [`FilePool`] is one per shard: an LRU of open glommio `BufferedFile`s shared by all the shard's torrents, capped
//! at `--max_files_open` (BitTornado's default 50; libtorrent's `file_pool_size`, Transmission's `open-files`), so a
//! shard seeding thousands of torrents holds a bounded number of descriptors (rqbit#63 opens every file and runs
//! out). Files are opened lazily: for reading, read-only (seeding never needs write access, and a read-only
//! seed cannot damage the data); for writing, read-write, created on first write with their parent directories,
//! and set to their torrent length at once (sparse: `ftruncate`, no zero fill; a longer existing file is cut to
//! its torrent length as BitTornado does). An entry evicted while an I/O still holds it is closed when that I/O
//! ends, so the true number of descriptors may exceed the cap by the number of I/Os in flight.
//! Zero-length files are created by [`crate::storage::Storage::create_empty_files`]; BEP 47 padding files are
//! never created, opened, read or written.

use super::StorageError;
use cyclone_metainfo::path_rules;
use glommio::io::{BufferedFile, OpenOptions};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// BitTornado's `max_files_open` default.
pub const DEFAULT_MAX_FILES_OPEN: usize = 50;
/// What `max_files_open = 0` ("unlimited" in BitTornado) means here: still a bound, far above any sane setting.
/// The binary must raise `RLIMIT_NOFILE` accordingly.
pub const MAX_FILES_OPEN_CEILING: usize = 65_536;

/// One file of a torrent as storage sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path components relative to the download root (raw bytes, as in the metainfo).
    pub path: Vec<Vec<u8>>,
    pub length: u64,
    /// BEP 47 padding file (`attr` contains `p`): its bytes are zeros and never stored.
    pub padding: bool,
}

#[derive(Debug, Clone)]
struct LayoutFile {
    path: PathBuf,
    length: u64,
    padding: bool,
}

/// The absolute-or-root-relative paths of a torrent's files, in metainfo order.
#[derive(Debug, Clone)]
pub struct FileLayout {
    root: PathBuf,
    files: Vec<LayoutFile>,
}

impl FileLayout {
    /// The BitTornado layout: a single-file torrent is `root/name`, a multi-file torrent is `root/name/path...`.
    pub fn from_info(root: &Path, info: &cyclone_metainfo::Info) -> Result<Self, StorageError> {
        let specs = info
            .files
            .iter()
            .map(|f| {
                let path = if info.is_single_file {
                    vec![info.name.clone()]
                } else {
                    std::iter::once(info.name.clone())
                        .chain(f.path.iter().cloned())
                        .collect()
                };
                FileSpec {
                    path,
                    length: f.length,
                    padding: f.is_padding(),
                }
            })
            .collect();
        Self::new(root, specs)
    }

    /// A layout from explicit relative paths (for `--saveas` styles that rename the top level).
    pub fn new(root: &Path, specs: Vec<FileSpec>) -> Result<Self, StorageError> {
        let mut files = Vec::with_capacity(specs.len());
        for spec in specs {
            let shown = || {
                spec.path
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            };
            if let Some(reason) = path_rules::path_problem(&spec.path) {
                return Err(StorageError::UnsafePath {
                    path: shown(),
                    reason,
                });
            }
            let mut path = root.to_path_buf();
            for component in &spec.path {
                path.push(OsStr::from_bytes(component));
            }
            if !confined(root, &path) {
                return Err(StorageError::UnsafePath {
                    path: shown(),
                    reason: "the joined path leaves the download directory",
                });
            }
            files.push(LayoutFile {
                path,
                length: spec.length,
                padding: spec.padding,
            });
        }
        Ok(FileLayout {
            root: root.to_path_buf(),
            files,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
    /// Path of file `index` (a padding file has one too, but it is never created).
    pub fn path(&self, index: usize) -> &Path {
        &self.files[index].path
    }
    pub fn length(&self, index: usize) -> u64 {
        self.files[index].length
    }
    pub fn is_padding(&self, index: usize) -> bool {
        self.files[index].padding
    }
}

/// True if `path` is `root` followed only by plain components (no `..`, no root, no prefix, no `.`).
fn confined(root: &Path, path: &Path) -> bool {
    match path.strip_prefix(root) {
        Ok(rest) => {
            rest.components().next().is_some()
                && rest.components().all(|c| matches!(c, Component::Normal(_)))
        }
        Err(_) => false,
    }
}

/// Identifies one file of one torrent in the shard's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub slot: u64,
    pub file: usize,
}

#[derive(Debug)]
struct Entry {
    file: Rc<BufferedFile>,
    writable: bool,
    stamp: u64,
}

#[derive(Debug, Default)]
struct PoolInner {
    entries: HashMap<FileKey, Entry>,
    /// stamp -> key, oldest first.
    lru: BTreeMap<u64, FileKey>,
    clock: u64,
    next_slot: u64,
    opens: u64,
    evictions: u64,
}

/// Counters of a [`FilePool`] (for status output and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Files open in the pool now.
    pub open: usize,
    /// Files opened since the pool was created.
    pub opens: u64,
    /// Files closed to make room.
    pub evictions: u64,
}

/// The shard's LRU of open files, shared (through `Rc`) by every [`crate::storage::Storage`] on the shard.
#[derive(Debug)]
pub struct FilePool {
    capacity: usize,
    inner: RefCell<PoolInner>,
}

impl FilePool {
    /// A pool holding at most `max_files_open` files (0 = [`MAX_FILES_OPEN_CEILING`]).
    pub fn new(max_files_open: usize) -> Rc<FilePool> {
        let capacity = match max_files_open {
            0 => MAX_FILES_OPEN_CEILING,
            n => n.min(MAX_FILES_OPEN_CEILING),
        };
        Rc::new(FilePool {
            capacity,
            inner: RefCell::new(PoolInner::default()),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn stats(&self) -> PoolStats {
        let inner = self.inner.borrow();
        PoolStats {
            open: inner.entries.len(),
            opens: inner.opens,
            evictions: inner.evictions,
        }
    }

    /// A fresh slot number for a torrent's files.
    pub(crate) fn register(&self) -> u64 {
        let mut inner = self.inner.borrow_mut();
        inner.next_slot += 1;
        inner.next_slot
    }

    /// The open file for `key`, if it is open with enough access; marks it most recently used.
    fn lookup(&self, key: FileKey, write: bool) -> Option<Rc<BufferedFile>> {
        let mut inner = self.inner.borrow_mut();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(&key)?;
        if write && !entry.writable {
            return None;
        }
        let old = std::mem::replace(&mut entry.stamp, now);
        let file = entry.file.clone();
        inner.lru.remove(&old);
        inner.lru.insert(now, key);
        Some(file)
    }

    /// Inserts (or replaces) `key`; returns the files pushed out, to be closed by the caller.
    fn insert(
        &self,
        key: FileKey,
        file: Rc<BufferedFile>,
        writable: bool,
    ) -> Vec<Rc<BufferedFile>> {
        let mut inner = self.inner.borrow_mut();
        let mut out = Vec::new();
        inner.clock += 1;
        let now = inner.clock;
        inner.opens += 1;
        if let Some(old) = inner.entries.remove(&key) {
            inner.lru.remove(&old.stamp);
            out.push(old.file);
        }
        while inner.entries.len() >= self.capacity {
            let Some((_, victim)) = inner.lru.pop_first() else {
                break;
            };
            let entry = inner
                .entries
                .remove(&victim)
                .expect("lru and entries agree");
            inner.evictions += 1;
            out.push(entry.file);
        }
        inner.entries.insert(
            key,
            Entry {
                file,
                writable,
                stamp: now,
            },
        );
        inner.lru.insert(now, key);
        debug_assert_eq!(inner.entries.len(), inner.lru.len());
        assert!(inner.entries.len() <= self.capacity);
        out
    }

    /// Removes every file of torrent `slot`; returns them to be closed.
    pub(crate) fn remove_slot(&self, slot: u64) -> Vec<Rc<BufferedFile>> {
        let mut inner = self.inner.borrow_mut();
        let keys: Vec<FileKey> = inner
            .entries
            .keys()
            .filter(|k| k.slot == slot)
            .copied()
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let entry = inner.entries.remove(&key).expect("key just listed");
            inner.lru.remove(&entry.stamp);
            out.push(entry.file);
        }
        out
    }

    /// Removes the writable handles of torrent `slot` (after completion: later reads reopen read-only).
    pub(crate) fn remove_writable(&self, slot: u64) -> Vec<Rc<BufferedFile>> {
        let mut inner = self.inner.borrow_mut();
        let keys: Vec<FileKey> = inner
            .entries
            .iter()
            .filter(|(k, e)| k.slot == slot && e.writable)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let entry = inner.entries.remove(&key).expect("key just listed");
            inner.lru.remove(&entry.stamp);
            out.push(entry.file);
        }
        out
    }

    /// The file `path` (torrent length `length`) for reading, or for writing when `write` (creating it and its
    /// parent directories if needed and setting its length). A missing file opened for reading is an
    /// `io::ErrorKind::NotFound` error.
    pub(crate) async fn get(
        &self,
        key: FileKey,
        path: &Path,
        length: u64,
        write: bool,
    ) -> Result<Rc<BufferedFile>, StorageError> {
        if let Some(file) = self.lookup(key, write) {
            return Ok(file);
        }
        let file = if write {
            open_for_write(path, length).await?
        } else {
            OpenOptions::new()
                .read(true)
                .buffered_open(path)
                .await
                .map_err(|e| StorageError::io("opening", path, e.into()))?
        };
        let file = Rc::new(file);
        let evicted = self.insert(key, file.clone(), write);
        close_files(evicted).await;
        Ok(file)
    }
}

/// Opens `path` read-write, creating it (and its parents) if needed, and sets its length to `length`.
pub(crate) async fn open_for_write(path: &Path, length: u64) -> Result<BufferedFile, StorageError> {
    let open = || async {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(path)
            .await
            .map_err(std::io::Error::from)
    };
    let file = match open().await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let p = parent.clone();
            glommio::executor()
                .spawn_blocking(move || std::fs::create_dir_all(&p))
                .await
                .map_err(|e| StorageError::io("creating directory", &parent, e))?;
            open()
                .await
                .map_err(|e| StorageError::io("creating", path, e))?
        }
        Err(e) => return Err(StorageError::io("opening for writing", path, e)),
    };
    let size = file
        .file_size()
        .await
        .map_err(|e| StorageError::io("reading the size of", path, e.into()))?;
    if size != length {
        file.truncate(length)
            .await
            .map_err(|e| StorageError::io("setting the length of", path, e.into()))?;
    }
    Ok(file)
}

/// Closes files no longer in the pool. A file still held by an I/O in flight is closed by glommio when that
/// I/O drops its handle.
pub(crate) async fn close_files(files: Vec<Rc<BufferedFile>>) {
    for file in files {
        if let Ok(file) = Rc::try_unwrap(file) {
            let shown = file.path().map(|p| p.display().to_string());
            if let Err(e) = file.close().await {
                log::warn!("closing {shown:?}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(parts: &[&str]) -> FileSpec {
        FileSpec {
            path: parts.iter().map(|p| p.as_bytes().to_vec()).collect(),
            length: 1,
            padding: false,
        }
    }

    #[test]
    fn layout_refuses_escapes() {
        let root = Path::new("/srv/dl");
        for bad in [
            &["..", "x"][..],
            &["a", ".."],
            &["/etc"],
            &["a/b"],
            &[""],
            &["."],
            &["a\0b"],
            &[],
        ] {
            let err = FileLayout::new(root, vec![spec(bad)]).unwrap_err();
            assert!(matches!(err, StorageError::UnsafePath { .. }), "{bad:?}");
        }
        let l =
            FileLayout::new(root, vec![spec(&["t", "d", ".nfo"]), spec(&["t", "a..b"])]).unwrap();
        assert_eq!(l.path(0), Path::new("/srv/dl/t/d/.nfo"));
        assert_eq!(l.path(1), Path::new("/srv/dl/t/a..b"));
    }

    #[test]
    fn confinement_is_lexical() {
        let root = Path::new("/r");
        assert!(confined(root, Path::new("/r/a/b")));
        assert!(!confined(root, Path::new("/r")));
        assert!(!confined(root, Path::new("/r/../x")));
        assert!(!confined(root, Path::new("/other/a")));
    }
}
