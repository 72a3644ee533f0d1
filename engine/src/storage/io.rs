//! [`Storage`]: one torrent's blocks and pieces, read and written through [`PieceMap::spans`] with glommio
//! `BufferedFile`s from the shard's [`FilePool`].
//!
//! # Why `BufferedFile` (measured)
//!
//! `cargo build --release -p cyclone-bench --bin storage_io && ./target/release/storage_io` (256 MiB file, 4000
//! random reads per cell, one glommio executor with io_memory 2 MiB; 2-core VM, ext4 on virtio-blk; other agents
//! compiling at the same time, so cells vary up to 2–10× between runs; CPU/op counts the executor thread only).
//! Final run 2026-11-21 10:18 UTC, with the range over four runs where it moved a lot:
//!
//! | pattern | BufferedFile | BufferedFile + RWF_NOWAIT | DmaFile | pread (std, blocks) |
//! |---|---|---|---|---|
//! | random 16 KiB read, warm, QD1 | 73k op/s, 13.2 µs CPU/op | **290k op/s, 3.1 µs** | 13.8k op/s, 54 µs | 306k op/s, 3.0 µs |
//! | random 16 KiB read, warm, QD16 | 196k op/s, 4.3 µs | **283k op/s, 3.4 µs** | 70k op/s, 8.3 µs | – |
//! | random 16 KiB read, cold, QD1 | 10.2k op/s, p99 190 µs | 14.1k op/s, p99 127 µs | 14.1k op/s, p99 122 µs | 15.9k op/s |
//! | random 16 KiB read, cold, QD16 | 41k op/s | 48k op/s (34k–48k) | 63k op/s | – |
//! | sequential 1 MiB writes, QD4 | 2354 MB/s (210–2354) | – | 1491 MB/s (1065–1687) | 578 MB/s (172–578) |
//! | sequential 4 MiB reads, cold, QD4 | 299 MB/s (237–850) | – | 1325 MB/s (287–1652) | 1727 MB/s (QD1) |
//!
//! DmaFile wins cold reads *here* because the virtio host cache sits behind O_DIRECT; it loses 4–20× on warm reads,
//! which is what a seedbox serving a popular torrent does all day, and it would need aligned read-modify-write at
//! every unaligned file boundary of a multi-file torrent (racing the neighbouring block's write). So blocks and
//! pieces use `BufferedFile`, and block reads first try `preadv2(RWF_NOWAIT)`, which serves cached data without an
//! io_uring round trip (4× less CPU per warm block, as cheap as a plain `pread`) and never blocks the executor
//! (uncached data returns EAGAIN and goes through io_uring). O_DIRECT wins in two places: the recheck (read once,
//! hash, forget) and whole-piece writes of a download (written once, not read again until served; a buffered
//! write of new data costs a fresh page-cache page per 4 KiB, ~2 s CPU per GiB here): see `direct::DirectFiles`.
//! The sequential-write row above overwrote cached pages, which is why it did not show that cost.
//!
//! # Buffers and ownership
//!
//! A write takes the block's `Vec<u8>` by value (glommio hands it to the kernel; the decoder's PIECE payload is
//! copied once into it). A block inside one file is written without a copy; a block straddling files is split
//! (one copy of each part). Reads append exactly the asked bytes to a caller's `Vec` ([`Storage::read_into`]), so
//! an upload can encode the 13-byte PIECE header and the block into one buffer and send it. Nothing is cached here:
//! the page cache is the cache.
//!
//! # Missing data
//!
//! A missing file or a read past the end of a short file is [`StorageError::MissingData`], never zeros. A file
//! this module created is set to its full length at once (sparse), so its unwritten ranges read as zeros; that is
//! harmless because only pieces that passed their hash check are ever served.

use super::direct::DirectFiles;
use super::files::{close_files, FileKey, FileLayout, FilePool};
use super::StorageError;
use crate::piece_map::{FileSpan, PieceMap};
use glommio::io::BufferedFile;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One torrent's data on disk, on the shard that owns the torrent.
#[derive(Debug)]
pub struct Storage {
    map: PieceMap,
    layout: FileLayout,
    pool: Rc<FilePool>,
    slot: u64,
    /// Files written since the last [`Storage::sync`] (bounded by the file count), each with the number of its
    /// latest completed write, so a sync never forgets a write that completed while it ran.
    dirty: RefCell<BTreeMap<usize, u64>>,
    writes: Cell<u64>,
    /// Directories holding files opened for writing since the last sync (their entries must be made durable),
    /// with the number of the latest open, like `dirty`.
    dirty_dirs: RefCell<BTreeMap<PathBuf, u64>>,
    empty_files_created: Cell<bool>,
    /// O_DIRECT handles for whole-piece writes (see `direct::DirectFiles` for why).
    direct: DirectFiles,
    /// Spans written with O_DIRECT so far (status and tests).
    direct_writes: Cell<u64>,
}

impl Storage {
    /// Storage for the torrent described by `map` and `layout` (which must list the same files), using the
    /// shard's `pool`. Touches no file.
    pub fn new(
        map: PieceMap,
        layout: FileLayout,
        pool: Rc<FilePool>,
    ) -> Result<Storage, StorageError> {
        if map.file_count() != layout.file_count() {
            return Err(StorageError::LayoutMismatch {
                layout: layout.file_count(),
                map: map.file_count(),
            });
        }
        for index in 0..map.file_count() {
            if map.file_length(index) != layout.length(index) {
                return Err(StorageError::LengthMismatch {
                    index,
                    layout: layout.length(index),
                    map: map.file_length(index),
                });
            }
        }
        let slot = pool.register();
        Ok(Storage {
            map,
            layout,
            pool,
            slot,
            dirty: RefCell::new(BTreeMap::new()),
            writes: Cell::new(0),
            dirty_dirs: RefCell::new(BTreeMap::new()),
            empty_files_created: Cell::new(false),
            direct: DirectFiles::new(true, true),
            direct_writes: Cell::new(0),
        })
    }

    pub fn piece_map(&self) -> &PieceMap {
        &self.map
    }

    pub fn layout(&self) -> &FileLayout {
        &self.layout
    }

    fn key(&self, file: usize) -> FileKey {
        FileKey {
            slot: self.slot,
            file,
        }
    }

    /// The open file `index` (reading, or writing when `write`).
    pub(crate) async fn file(
        &self,
        index: usize,
        write: bool,
    ) -> Result<Rc<BufferedFile>, StorageError> {
        let path = self.layout.path(index);
        debug_assert!(
            !self.layout.is_padding(index),
            "padding files are never opened"
        );
        let file = self
            .pool
            .get(self.key(index), path, self.layout.length(index), write)
            .await?;
        if write {
            if let Some(dir) = path.parent() {
                self.mark_dir(dir);
            }
        }
        Ok(file)
    }

    /// Records that `dir` holds a file created or opened for writing (after the open completed).
    fn mark_dir(&self, dir: &Path) {
        self.writes.set(self.writes.get() + 1);
        let write = self.writes.get();
        let mut dirs = self.dirty_dirs.borrow_mut();
        match dirs.get_mut(dir) {
            Some(w) => *w = write,
            None => {
                dirs.insert(dir.to_path_buf(), write);
            }
        }
    }

    /// Writes `data` as the block `begin..begin+data.len()` of `piece`. Creates files lazily (and, on the first
    /// write of the torrent, its zero-length files). Padding spans are skipped.
    pub async fn write_block(
        &self,
        piece: u32,
        begin: u32,
        data: Vec<u8>,
    ) -> Result<(), StorageError> {
        let length = u32::try_from(data.len()).map_err(|_| StorageError::BufferLength {
            got: data.len(),
            want: u32::MAX as u64,
        })?;
        let spans: Vec<FileSpan> = self.map.spans(piece, begin, length)?.collect();
        if !self.empty_files_created.get() {
            self.create_empty_files().await?;
        }
        if let [span] = spans[..] {
            return self.write_span(span, data).await;
        }
        for span in spans {
            let start = span.range_offset as usize;
            let part = data[start..start + span.length as usize].to_vec();
            self.write_span(span, part).await?;
        }
        Ok(())
    }

    /// Writes a whole piece (`data.len()` must be the piece size): spans aligned for O_DIRECT bypass the page cache
    /// (unless [`Storage::set_direct_writes`] turned that off), the rest are written buffered. Borrows the data
    /// (copied into the write's own buffer) so the caller can reuse its piece buffer.
    pub async fn write_piece(&self, piece: u32, data: &[u8]) -> Result<(), StorageError> {
        self.map.check_block(piece, 0, 1)?;
        let want = self.map.piece_size(piece) as u64;
        if data.len() as u64 != want {
            return Err(StorageError::BufferLength {
                got: data.len(),
                want,
            });
        }
        if !self.direct.enabled() {
            return self.write_block(piece, 0, data.to_vec()).await;
        }
        if !self.empty_files_created.get() {
            self.create_empty_files().await?;
        }
        let spans: Vec<FileSpan> = self.map.spans(piece, 0, want as u32)?.collect();
        for span in spans {
            if self.layout.is_padding(span.file_index) {
                continue;
            }
            let start = span.range_offset as usize;
            let part = &data[start..start + span.length as usize];
            // Opens (and creates) the file through the pool first: O_DIRECT opens never create files.
            self.file(span.file_index, true).await?;
            let path = self.layout.path(span.file_index);
            if self
                .direct
                .write(path, span.file_index, part, span.file_offset)
                .await?
            {
                self.direct_writes.set(self.direct_writes.get() + 1);
                self.mark_written(span.file_index);
            } else {
                self.write_span(span, part.to_vec()).await?;
            }
        }
        Ok(())
    }

    /// How many piece spans were written with O_DIRECT (the rest went through the page cache).
    pub fn direct_writes(&self) -> u64 {
        self.direct_writes.get()
    }

    /// Whether whole-piece writes may use O_DIRECT (on by default; off: every write goes through the page cache).
    pub fn set_direct_writes(&self, on: bool) {
        if !on {
            self.direct.disable();
        }
    }

    async fn write_span(&self, span: FileSpan, data: Vec<u8>) -> Result<(), StorageError> {
        debug_assert_eq!(span.length, data.len() as u64);
        if self.layout.is_padding(span.file_index) {
            return Ok(());
        }
        let file = self.file(span.file_index, true).await?;
        write_all_at(
            &file,
            self.layout.path(span.file_index),
            data,
            span.file_offset,
        )
        .await?;
        self.mark_written(span.file_index);
        Ok(())
    }

    /// Records a completed write of file `index` for the next [`Storage::sync`]. Called once the write is complete:
    /// a sync that started earlier must not clear it.
    fn mark_written(&self, index: usize) {
        self.writes.set(self.writes.get() + 1);
        self.dirty.borrow_mut().insert(index, self.writes.get());
    }

    /// Appends the `length` bytes at `begin` in `piece` to `out` (exactly `length` bytes on success; `out` is
    /// left as it was on error). For uploads: `out` may already hold the PIECE header.
    pub async fn read_into(
        &self,
        piece: u32,
        begin: u32,
        length: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        self.read_spans(piece, begin, length, out, true).await
    }

    /// The `length` bytes at `begin` in `piece`.
    pub async fn read_block(
        &self,
        piece: u32,
        begin: u32,
        length: u32,
    ) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::with_capacity(length as usize);
        self.read_into(piece, begin, length, &mut out).await?;
        Ok(out)
    }

    /// The whole of `piece` (hash checks). Served from the page cache without io_uring when it is there, as it
    /// is right after the piece was written.
    pub async fn read_piece(&self, piece: u32) -> Result<Vec<u8>, StorageError> {
        self.map.check_block(piece, 0, 1)?;
        let size = self.map.piece_size(piece);
        let mut out = Vec::with_capacity(size as usize);
        self.read_spans(piece, 0, size, &mut out, true).await?;
        Ok(out)
    }

    pub(crate) async fn read_spans(
        &self,
        piece: u32,
        begin: u32,
        length: u32,
        out: &mut Vec<u8>,
        nowait_first: bool,
    ) -> Result<(), StorageError> {
        let spans = self.map.spans(piece, begin, length)?;
        let start = out.len();
        for span in spans {
            if let Err(e) = self.read_span(span, out, nowait_first).await {
                out.truncate(start);
                return Err(e);
            }
        }
        debug_assert_eq!(out.len() - start, length as usize);
        Ok(())
    }

    /// Appends the bytes of one span to `out`.
    pub(crate) async fn read_span(
        &self,
        span: FileSpan,
        out: &mut Vec<u8>,
        nowait_first: bool,
    ) -> Result<(), StorageError> {
        if self.layout.is_padding(span.file_index) {
            out.resize(out.len() + span.length as usize, 0);
            return Ok(());
        }
        let path = self.layout.path(span.file_index);
        let file = self.file_for_span(span).await?;
        read_exact_at(
            &file,
            path,
            span.file_offset,
            span.length as usize,
            out,
            nowait_first,
        )
        .await
    }

    /// The file of `span` opened for reading; a missing file is `MissingData` for the span.
    pub(crate) async fn file_for_span(
        &self,
        span: FileSpan,
    ) -> Result<Rc<BufferedFile>, StorageError> {
        match self.file(span.file_index, false).await {
            Ok(f) => Ok(f),
            Err(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(StorageError::MissingData {
                    path: self.layout.path(span.file_index).to_path_buf(),
                    offset: span.file_offset,
                    length: span.length,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the torrent's zero-length files (never in a span, so never created by a write), with their
    /// directories. Done automatically before the first write; call it also when a torrent starts seeding data
    /// that was already there.
    pub async fn create_empty_files(&self) -> Result<(), StorageError> {
        let empty: Vec<PathBuf> = (0..self.layout.file_count())
            .filter(|&i| self.layout.length(i) == 0 && !self.layout.is_padding(i))
            .map(|i| self.layout.path(i).to_path_buf())
            .collect();
        if !empty.is_empty() {
            // Only a missing file is created: an existing one (even a longer one, or a symlink the operator
            // placed) is left alone rather than truncated. One blocking-pool call stats them all.
            let missing: Vec<PathBuf> = glommio::executor()
                .spawn_blocking(move || {
                    empty
                        .into_iter()
                        .filter(|p| std::fs::metadata(p).is_err())
                        .collect()
                })
                .await;
            for path in missing {
                let file = super::files::open_for_write(&path, 0).await?;
                if let Some(dir) = path.parent() {
                    self.mark_dir(dir);
                }
                if let Err(e) = file.close().await {
                    return Err(StorageError::io("closing", &path, e.into()));
                }
            }
        }
        self.empty_files_created.set(true);
        Ok(())
    }

    /// Makes durable every write that completed before this call: `fdatasync` of every file written since the
    /// last sync, then an fsync of the directories of files created or opened for writing. A resume record may
    /// list a piece only if the piece's writes completed before a sync that has returned.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let dirty: Vec<(usize, u64)> = self.dirty.borrow().iter().map(|(&i, &w)| (i, w)).collect();
        for (index, write) in dirty {
            let file = self.file(index, true).await?;
            file.fdatasync()
                .await
                .map_err(|e| StorageError::io("syncing", self.layout.path(index), e.into()))?;
            let mut marks = self.dirty.borrow_mut();
            if marks.get(&index) == Some(&write) {
                marks.remove(&index);
            }
        }
        let dirs: Vec<(PathBuf, u64)> = self
            .dirty_dirs
            .borrow()
            .iter()
            .map(|(d, &w)| (d.clone(), w))
            .collect();
        for (dir, write) in dirs {
            let d = dir.clone();
            glommio::executor()
                .spawn_blocking(move || std::fs::File::open(&d).and_then(|f| f.sync_all()))
                .await
                .map_err(|e| StorageError::io("syncing directory", &dir, e))?;
            let mut marks = self.dirty_dirs.borrow_mut();
            if marks.get(&dir) == Some(&write) {
                marks.remove(&dir);
            }
        }
        Ok(())
    }

    /// After completion: closes this torrent's writable handles, so later reads reopen read-only (BitTornado
    /// reopens everything read-only when a download finishes). Call [`Storage::sync`] first.
    pub async fn seal(&self) {
        self.direct.close().await;
        close_files(self.pool.remove_writable(self.slot)).await;
    }

    /// Closes every file of this torrent held by the pool (stopping a torrent). Does not sync.
    pub async fn close(&self) {
        self.direct.close().await;
        close_files(self.pool.remove_slot(self.slot)).await;
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // Dropping the handles lets glommio close them asynchronously; `close()` is the orderly way.
        drop(self.pool.remove_slot(self.slot));
    }
}

/// Writes all of `data` at `pos`. A short write is an error: on a regular file it happens only when the disk is
/// full or a size limit is hit (io_uring writes are not interrupted by signals), and retrying the rest would fail
/// the same way; glommio also consumed the buffer, so the tail could only be retried from a copy made up front on
/// every write. The driver treats the error as fatal for the torrent (as BitTornado does on a failed write).
async fn write_all_at(
    file: &BufferedFile,
    path: &Path,
    data: Vec<u8>,
    pos: u64,
) -> Result<(), StorageError> {
    let want = data.len();
    let n = file
        .write_at(data, pos)
        .await
        .map_err(|e| StorageError::io("writing", path, e.into()))?;
    if n == want {
        return Ok(());
    }
    Err(StorageError::io(
        "writing",
        path,
        std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write at offset {pos}: {n} of {want} bytes (disk full?)"),
        ),
    ))
}

/// Appends exactly `length` bytes of `file` at `pos` to `out`, or fails with `MissingData` at end of file. With
/// `nowait_first`, cached bytes are copied with `preadv2(RWF_NOWAIT)` and only the rest goes through io_uring.
pub(crate) async fn read_exact_at(
    file: &BufferedFile,
    path: &Path,
    pos: u64,
    length: usize,
    out: &mut Vec<u8>,
    nowait_first: bool,
) -> Result<(), StorageError> {
    let start = out.len();
    let mut done = 0usize;
    if nowait_first {
        done = append_cached(file.as_raw_fd(), out, length, pos);
    }
    while done < length {
        let chunk = file
            .read_at(pos + done as u64, length - done)
            .await
            .map_err(|e| {
                out.truncate(start);
                StorageError::io("reading", path, e.into())
            })?;
        if chunk.is_empty() {
            out.truncate(start);
            return Err(StorageError::MissingData {
                path: path.to_path_buf(),
                offset: pos + done as u64,
                length: (length - done) as u64,
            });
        }
        let take = chunk.len().min(length - done);
        out.extend_from_slice(&chunk[..take]);
        done += take;
    }
    Ok(())
}

/// Like [`read_cached`], appending up to `length` bytes to `out` without zeroing them first (a seed serves every
/// block through here; zero-filling the buffer before the copy was 6 % of a seeder's CPU).
pub(crate) fn append_cached(fd: i32, out: &mut Vec<u8>, length: usize, pos: u64) -> usize {
    out.reserve(length);
    let spare = &mut out.spare_capacity_mut()[..length];
    // SAFETY: `spare` is `length` bytes of `out`'s spare capacity, exclusively borrowed for the call.
    let done = unsafe { read_cached_raw(fd, spare.as_mut_ptr().cast(), length, pos) };
    let len = out.len() + done;
    // SAFETY: the kernel initialised the first `done` bytes of the spare capacity (preadv2 returned their count),
    // and `len` is within the capacity reserved above.
    unsafe { out.set_len(len) };
    done
}

/// Copies into `buf` what the page cache holds of `fd` at `pos`, without blocking: `preadv2(RWF_NOWAIT)` returns
/// EAGAIN instead of going to the disk. Returns the bytes copied (0 when nothing was cached, at end of file, or
/// when the file system does not support RWF_NOWAIT: the caller reads the rest through io_uring, which also
/// reports real errors).
pub(crate) fn read_cached(fd: i32, buf: &mut [u8], pos: u64) -> usize {
    // SAFETY: `buf` is a live, exclusively borrowed slice of `buf.len()` bytes.
    unsafe { read_cached_raw(fd, buf.as_mut_ptr(), buf.len(), pos) }
}

/// The `preadv2(RWF_NOWAIT)` loop of [`read_cached`] and [`append_cached`] over raw memory.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes (initialised or not) for the whole call, and not aliased.
unsafe fn read_cached_raw(fd: i32, ptr: *mut u8, len: usize, pos: u64) -> usize {
    let mut done = 0usize;
    while done < len {
        let iov = libc::iovec {
            // SAFETY: `done < len`, so the offset stays inside the caller's region.
            iov_base: unsafe { ptr.add(done) }.cast(),
            iov_len: len - done,
        };
        // SAFETY: `iov` describes the rest of the caller's region (valid for writes, per this function's
        // contract); the kernel writes at most `iov_len` bytes and keeps no reference after returning. `fd` is
        // held open by the caller for the whole call.
        let n = unsafe { libc::preadv2(fd, &iov, 1, (pos + done as u64) as i64, libc::RWF_NOWAIT) };
        if n <= 0 {
            break;
        }
        done += n as usize;
    }
    done
}
