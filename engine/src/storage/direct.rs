//! O_DIRECT file handles (glommio `DmaFile`) for the two places that bypass the page cache: the recheck's reads
//! and whole-piece writes. See [`DirectFiles`] for why each.

use glommio::io::{DmaFile, OpenOptions};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

use super::StorageError;

/// Files read (the recheck) or written (whole pieces) with O_DIRECT through glommio `DmaFile`, at most
/// [`DIRECT_FILES_OPEN`] (reads) or [`DIRECT_WRITE_FILES_OPEN`] (writes) open at once.
///
/// Why O_DIRECT for the recheck: it reads each byte once. Buffered reads of cold data make the
/// executor thread allocate and fill page-cache pages (io_uring runs that work in the submitting thread), and that
/// thread also hashes, so the check was CPU-bound on the shard. Measured with
/// `STORAGE_IO_ONLY=recheck ./target/release/storage_io DIR 512` (512 MiB single file, 1 MiB pieces; noisy shared
/// 2-core VM), executor CPU and speed, cold cache, single-stream hashing: buffered reads 0.6–1.3 s CPU,
/// 330–530 MB/s; O_DIRECT 0.63 s CPU, 650–830 MB/s. With the 4-lane SHA-NI kernel: O_DIRECT 0.45 s CPU,
/// 700–1180 MB/s cold, and 1.65–2.9 GB/s when the data is cached (copied with RWF_NOWAIT, 0.18–0.21 s CPU);
/// python3-libtorrent 2.0's check of the same file, cold, in the same runs: 240–380 MB/s (cyclone 1.9–4.9× faster).
/// O_DIRECT also leaves the page cache to the data being seeded. Whether a span is cached is asked with
/// `cachestat` first. The glommio DMA probe
/// trap (stack-notes 1f) cannot be armed by us: the recheck opens only files holding the bytes it reads, so its
/// first DMA file is never empty; if a read fails anyway, O_DIRECT is switched off for the rest of the check.
///
/// Why O_DIRECT for piece writes: a buffered write of new data makes the kernel allocate and fill a page-cache page
/// per 4 KiB, and on this VM that costs ~2 s of CPU per GiB (`dd bs=1M count=1024` into a new file: 472–525 MB/s,
/// 2.0–2.2 s system time; with `oflag=direct`: 1.9 GB/s, 0.13 s). In a 1 GiB loopback download that copy was 60 % of
/// the leecher's CPU samples (io-wq workers in `copy_folio_from_iter_atomic`). A piece assembled in memory is
/// written once and not read again until it is served, so the page cache gains nothing from it. Only spans aligned
/// to the device's O_DIRECT granularity go this way (every piece of a single-file torrent, most of a multi-file
/// one); the rest are written buffered. Writers open the device's DMA probe with a file of real data first
/// (`cyclone_shard::dma_probe::ensure_probed`): a sparse new file would read a hole at offset 0 and arm glommio's
/// probe trap.
pub(crate) struct DirectFiles {
    enabled: Cell<bool>,
    /// Open for writing (piece writes) rather than reading (recheck).
    write: bool,
    files: RefCell<VecDeque<(usize, Rc<DmaFile>)>>,
}

/// Most O_DIRECT files a recheck keeps open (it reads sequentially, so few are ever in use).
const DIRECT_FILES_OPEN: usize = 4;

/// Most O_DIRECT write handles a downloading torrent keeps open. These are outside the shard's `FilePool` cap
/// (`--max_files_open`), so they are kept few: pieces arrive roughly in file order, and a seeding torrent holds none
/// (`Storage::seal` closes them).
const DIRECT_WRITE_FILES_OPEN: usize = 2;

impl DirectFiles {
    pub fn new(enabled: bool, write: bool) -> Self {
        DirectFiles {
            enabled: Cell::new(enabled),
            write,
            files: RefCell::new(VecDeque::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.get()
    }

    pub fn disable(&self) {
        self.enabled.set(false);
    }

    /// The O_DIRECT handle of file `index`, or `None` when O_DIRECT is off or refused for it.
    pub async fn get(&self, path: &Path, index: usize) -> Option<Rc<DmaFile>> {
        if !self.enabled.get() {
            return None;
        }
        if let Some((_, f)) = self.files.borrow().iter().find(|(i, _)| *i == index) {
            return Some(f.clone());
        }
        if self.write {
            let dir = path.parent().unwrap_or(Path::new("."));
            if !cyclone_shard::dma_probe::ensure_probed(dir).await {
                self.disable();
                return None;
            }
        }
        let opened = if self.write {
            OpenOptions::new().write(true).dma_open(path).await
        } else {
            DmaFile::open(path).await
        };
        match opened {
            Ok(f) => {
                let f = Rc::new(f);
                let mut files = self.files.borrow_mut();
                let cap = if self.write {
                    DIRECT_WRITE_FILES_OPEN
                } else {
                    DIRECT_FILES_OPEN
                };
                if files.len() >= cap {
                    files.pop_front();
                }
                files.push_back((index, f.clone()));
                Some(f)
            }
            Err(e) => {
                let e = std::io::Error::from(e);
                if e.raw_os_error() == Some(libc::EINVAL) {
                    // The file system does not do O_DIRECT (tmpfs, some FUSE): never try again.
                    self.disable();
                }
                None
            }
        }
    }

    pub async fn close(&self) {
        let files: Vec<_> = self.files.borrow_mut().drain(..).collect();
        for (_, f) in files {
            if let Ok(f) = Rc::try_unwrap(f) {
                let _ = f.close().await;
            }
        }
    }
}

impl std::fmt::Debug for DirectFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectFiles")
            .field("enabled", &self.enabled.get())
            .field("write", &self.write)
            .field("open", &self.files.borrow().len())
            .finish()
    }
}

impl DirectFiles {
    /// Writes `data` at `pos` of file `index` with O_DIRECT. `Ok(false)`: not done (O_DIRECT off or refused,
    /// or `pos`/length not aligned for the device): write it buffered instead. A refusal at write time (EINVAL,
    /// EOPNOTSUPP) switches O_DIRECT off for this torrent; any other error is a real write error.
    pub async fn write(
        &self,
        path: &Path,
        index: usize,
        data: &[u8],
        pos: u64,
    ) -> Result<bool, StorageError> {
        debug_assert!(self.write, "write on read-only DirectFiles");
        let Some(file) = self.get(path, index).await else {
            return Ok(false);
        };
        let align = file.alignment().max(512);
        if !pos.is_multiple_of(align)
            || !(data.len() as u64).is_multiple_of(align)
            || data.is_empty()
        {
            return Ok(false);
        }
        let mut buf = file.alloc_dma_buffer(data.len());
        buf.as_bytes_mut().copy_from_slice(data);
        match file.write_at(buf, pos).await {
            Ok(n) if n == data.len() => Ok(true),
            Ok(n) => Err(StorageError::io(
                "writing (O_DIRECT)",
                path,
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!(
                        "short write at offset {pos}: {n} of {} bytes (disk full?)",
                        data.len()
                    ),
                ),
            )),
            Err(e) => {
                let e = std::io::Error::from(e);
                match e.raw_os_error() {
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                        log::warn!(
                            "O_DIRECT write refused for {}: {e}; writing buffered",
                            path.display()
                        );
                        self.disable();
                        Ok(false)
                    }
                    _ => Err(StorageError::io("writing (O_DIRECT)", path, e)),
                }
            }
        }
    }
}
