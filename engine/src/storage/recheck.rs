//! Full recheck of existing data: which pieces are on disk and correct, at disk/SHA speed, in bounded memory.
//!
//! 1. Every file is `stat`ed once (one blocking-pool call for the whole torrent): missing, shorter, exact or
//!    longer than its torrent length ([`FileStatus`]). A piece is *present* when every non-padding byte of it lies
//!    inside the existing part of its files; each file is read at its own offsets, so a missing or short file never
//!    shifts the data of the files after it.
//! 2. With `check_hashes` off (BitTornado `--check_hashes 0`), present pieces are trusted without reading. If the
//!    data turns out to be missing later, reads fail with [`StorageError::MissingData`] (BitTornado: "told file
//!    complete on start-up, but data is missing") and the torrent must stop.
//! 3. Otherwise present pieces are read in large sequential reads (several small pieces per read, adjacent spans
//!    of one file merged; a piece larger than the read size is read and hashed in parts), with several reads in
//!    flight on io_uring while the previous ones are hashed ([`super::digest_batch`]: the pieces of one read in
//!    lock-step, four lanes of SHA-NI).
//!    Cold data is read with O_DIRECT, cached data copied from the page cache (`DirectFiles` says why).
//!    Memory is bounded whatever the piece size: `memory_budget` of our read buffers in flight, as much again in
//!    glommio's O_DIRECT buffers of those reads, the read being hashed (`read_size`), and at most
//!    `memory_budget / read_size + 1` idle buffers kept for reuse: at most 56 MiB with the defaults.
//!    Measured: 1.9–4.9× python3-libtorrent's check of the same file, cold (see `DirectFiles`).
//!
//! Nothing is written: a longer file is reported ([`FileStatus::Oversized`]) and cut to its torrent length only
//! when the torrent first writes to it. A read error in the middle of a file (bad sector, file shrinking under us)
//! makes the pieces it touches absent and is reported, but does not abort the check of the other pieces.

use super::direct::DirectFiles;
use super::io::{read_cached, read_exact_at, Storage};
use super::verify::{digest_batch, PieceHash};
use super::StorageError;
use crate::bitfield::Bitfield;
use crate::piece_map::FileSpan;
use glommio::io::DmaFile;
use sha1::{Digest, Sha1};
use std::collections::VecDeque;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Most read errors kept in a report (the rest are counted only).
pub const MAX_REPORTED_ERRORS: usize = 16;
/// Most reads in flight, whatever the memory budget.
const MAX_READS_IN_FLIGHT: usize = 16;
/// Bounds of [`RecheckOptions::read_size`] and [`RecheckOptions::memory_budget`] (values outside are clamped).
pub const MIN_READ_SIZE: usize = 64 << 10;
pub const MAX_READ_SIZE: usize = 64 << 20;
pub const MAX_MEMORY_BUDGET: usize = 1 << 30;

/// How to recheck.
#[derive(Debug, Clone, Copy)]
pub struct RecheckOptions {
    /// BitTornado `check_hashes` (default on). Off: trust every piece whose bytes exist on disk.
    pub check_hashes: bool,
    /// Bytes per read (default 4 MiB; clamped to 64 KiB..=64 MiB).
    pub read_size: usize,
    /// Bytes of reads in flight at most (default 16 MiB; clamped to `read_size`..=1 GiB).
    pub memory_budget: usize,
    /// Read what the page cache does not hold with O_DIRECT (default on; falls back to buffered reads where the
    /// file system refuses O_DIRECT). See `DirectFiles` (module source) for why.
    pub direct_io: bool,
}

impl Default for RecheckOptions {
    fn default() -> Self {
        RecheckOptions {
            check_hashes: true,
            read_size: 4 << 20,
            memory_budget: 16 << 20,
            direct_io: true,
        }
    }
}

/// What the stat of a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// BEP 47 padding: zeros by definition, never on disk.
    Padding,
    /// No file at its path (or something that is not a regular file).
    Missing,
    /// Shorter than its torrent length: only its first `size` bytes can hold data.
    Short { size: u64 },
    /// Exactly its torrent length (whether the data is right is what the bitfield says).
    Complete,
    /// Longer than its torrent length: the extra bytes are ignored (and cut on the first write).
    Oversized { size: u64 },
}

/// Progress of a running recheck (passed to the progress callback after every read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecheckProgress {
    /// Pieces decided so far (checked, trusted or found absent).
    pub pieces_done: u32,
    pub piece_count: u32,
    /// Torrent bytes checked so far (padding included).
    pub bytes_read: u64,
    /// Bytes that will be checked in total (the present pieces).
    pub bytes_to_read: u64,
}

/// The result of a recheck.
#[derive(Debug, Clone)]
pub struct RecheckReport {
    /// Pieces present and (with `check_hashes`) matching their hash.
    pub have: Bitfield,
    /// One status per file of the torrent.
    pub files: Vec<FileStatus>,
    /// Per file: how many of the pieces touching it we have, and how many touch it.
    pub file_pieces: Vec<(u32, u32)>,
    /// Pieces that were read and failed their hash.
    pub hash_failures: u32,
    /// Torrent bytes checked (padding included: its zeros are hashed but never read from disk).
    pub bytes_read: u64,
    /// Read errors (file, message), at most [`MAX_REPORTED_ERRORS`].
    pub read_errors: Vec<(PathBuf, String)>,
    /// Read errors in total.
    pub read_error_count: u32,
}

/// One read of the recheck.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// Whole pieces `first..first+count`, contiguous.
    Pieces { first: u32, count: u32 },
    /// `length` bytes at `begin` of one large piece; `last` is its final part.
    Part {
        piece: u32,
        begin: u32,
        length: u32,
        last: bool,
    },
}

struct JobData {
    job: Job,
    data: Vec<u8>,
    /// Job-relative byte ranges that could not be read.
    failed: Vec<(u64, u64)>,
    errors: Vec<(PathBuf, String)>,
}

/// Checks the torrent's existing data against `hashes` (its piece-hash list) and returns what we have.
/// `progress` is called after every read (and once at the end).
pub async fn recheck(
    storage: Rc<Storage>,
    hashes: &[PieceHash],
    options: &RecheckOptions,
    progress: impl FnMut(&RecheckProgress),
) -> Result<RecheckReport, StorageError> {
    recheck_untrusted(storage, hashes, None, options, progress).await
}

/// [`recheck`] after a resume record: pieces in `trusted` (`ResumeRecord::trusted_have`) are kept without being
/// read, provided their bytes still exist on disk; only the other present pieces are read and hashed.
pub async fn recheck_untrusted(
    storage: Rc<Storage>,
    hashes: &[PieceHash],
    trusted: Option<&Bitfield>,
    options: &RecheckOptions,
    mut progress: impl FnMut(&RecheckProgress),
) -> Result<RecheckReport, StorageError> {
    let map = storage.piece_map();
    let piece_count = map.piece_count();
    if hashes.len() != piece_count as usize {
        return Err(StorageError::Geometry(
            crate::piece_map::PieceMapError::PieceHashCount {
                listed: hashes.len(),
                needed: piece_count,
            },
        ));
    }
    if let Some(t) = trusted {
        if t.len() != piece_count {
            return Err(StorageError::Geometry(
                crate::piece_map::PieceMapError::PieceHashCount {
                    listed: t.len() as usize,
                    needed: piece_count,
                },
            ));
        }
    }
    let is_trusted = |p: u32| trusted.is_some_and(|t| t.get(p));
    // Out-of-range settings are brought into range rather than refused (they only tune speed and memory).
    let read_size = options.read_size.clamp(MIN_READ_SIZE, MAX_READ_SIZE);
    let memory_budget = options.memory_budget.clamp(read_size, MAX_MEMORY_BUDGET);

    let files = stat_files(&storage).await?;
    let layout = storage.layout();
    let available: Vec<u64> = files
        .iter()
        .enumerate()
        .map(|(i, s)| match *s {
            FileStatus::Padding | FileStatus::Complete | FileStatus::Oversized { .. } => {
                layout.length(i)
            }
            FileStatus::Short { size } => size,
            FileStatus::Missing => 0,
        })
        .collect();
    let present: Vec<bool> = (0..piece_count)
        .map(|p| {
            map.piece_spans(p)
                .expect("piece in range")
                .all(|s| s.file_offset + s.length <= available[s.file_index])
        })
        .collect();

    let mut have = Bitfield::new(piece_count).expect("piece count checked by the piece map");
    // Trusted pieces whose bytes exist are had without reading; they are then no longer "to read".
    let mut to_read = present.clone();
    for p in 0..piece_count {
        if present[p as usize] && is_trusted(p) {
            have.set(p);
            to_read[p as usize] = false;
        }
    }
    let mut report = RecheckReport {
        have: have.clone(),
        files,
        file_pieces: Vec::new(),
        hash_failures: 0,
        bytes_read: 0,
        read_errors: Vec::new(),
        read_error_count: 0,
    };
    let bytes_to_read: u64 = (0..piece_count)
        .filter(|&p| to_read[p as usize])
        .map(|p| map.piece_size(p) as u64)
        .sum();
    let mut state = RecheckProgress {
        pieces_done: 0,
        piece_count,
        bytes_read: 0,
        bytes_to_read: if options.check_hashes {
            bytes_to_read
        } else {
            0
        },
    };

    if !options.check_hashes {
        for p in 0..piece_count {
            if present[p as usize] {
                have.set(p);
            }
        }
        state.pieces_done = piece_count;
    } else {
        let jobs = plan_jobs(&storage, &to_read, read_size);
        let mut jobs = jobs.into_iter().peekable();
        let mut in_flight: VecDeque<(u64, glommio::Task<JobData>)> = VecDeque::new();
        let mut in_flight_bytes = 0u64;
        // Read buffers come back here after hashing; at most as many as the budget holds are kept.
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let spare_limit = memory_budget / read_size + 1;
        let direct = Rc::new(DirectFiles::new(options.direct_io, false));
        // The large piece being hashed in parts: piece, hash state, no part failed to read.
        let mut big_piece: Option<(u32, Sha1, bool)> = None;
        // Absent and trusted pieces are decided without reading.
        let mut decided = to_read.iter().filter(|p| !**p).count() as u32;
        loop {
            while let Some(job) = jobs.peek().copied() {
                // What the read holds in memory: its length, or more if it reuses a larger buffer.
                let len = job_len(&storage, job).max(spare.last().map_or(0, Vec::capacity) as u64);
                if in_flight.len() >= MAX_READS_IN_FLIGHT
                    || (!in_flight.is_empty() && in_flight_bytes + len > memory_budget as u64)
                {
                    break;
                }
                jobs.next();
                in_flight_bytes += len;
                let s = storage.clone();
                let buffer = spare.pop().unwrap_or_default();
                let task = glommio::spawn_local(read_job(s, direct.clone(), job, buffer));
                in_flight.push_back((len, task));
            }
            let Some((len, task)) = in_flight.pop_front() else {
                break;
            };
            let done = task.await;
            in_flight_bytes -= len;
            report.bytes_read += done.data.len() as u64 - failed_bytes(&done.failed);
            for e in done.errors {
                report.read_error_count += 1;
                if report.read_errors.len() < MAX_REPORTED_ERRORS {
                    report.read_errors.push(e);
                }
            }
            match done.job {
                Job::Pieces { first, count } => {
                    let mut offsets = Vec::with_capacity(count as usize);
                    let mut at = 0u64;
                    for p in first..first + count {
                        let size = map.piece_size(p) as u64;
                        offsets.push((p, at, size));
                        at += size;
                    }
                    let views: Vec<&[u8]> = offsets
                        .iter()
                        .map(|&(_, at, size)| &done.data[at as usize..(at + size) as usize])
                        .collect();
                    let digests = digest_batch(&views);
                    for (&(p, at, size), digest) in offsets.iter().zip(digests) {
                        let readable = !overlaps(&done.failed, at, size);
                        if readable && digest == hashes[p as usize] {
                            have.set(p);
                        } else if readable {
                            report.hash_failures += 1;
                        }
                        decided += 1;
                    }
                }
                Job::Part {
                    piece,
                    begin,
                    length,
                    last,
                } => {
                    if begin == 0 {
                        big_piece = Some((piece, Sha1::new(), true));
                    }
                    let (p, hasher, readable) = big_piece.as_mut().expect("parts arrive in order");
                    assert_eq!(*p, piece, "parts of one piece arrive in order");
                    if overlaps(&done.failed, 0, length as u64) {
                        *readable = false;
                    }
                    hasher.update(&done.data);
                    if last {
                        let (p, hasher, readable) = big_piece.take().expect("just used");
                        let digest: PieceHash = hasher.finalize().into();
                        if readable && digest == hashes[p as usize] {
                            have.set(p);
                        } else if readable {
                            report.hash_failures += 1;
                        }
                        decided += 1;
                    }
                }
            }
            if spare.len() < spare_limit {
                spare.push(done.data);
            }
            state.bytes_read = report.bytes_read;
            state.pieces_done = decided;
            progress(&state);
            glommio::yield_if_needed().await;
        }
        state.pieces_done = piece_count;
        drop(in_flight);
        direct.close().await;
    }
    progress(&state);
    report.file_pieces = (0..map.file_count())
        .map(|f| {
            let range = map.file_pieces(f);
            let total = range.len() as u32;
            (range.filter(|&p| have.get(p)).count() as u32, total)
        })
        .collect();
    report.have = have;
    Ok(report)
}

fn failed_bytes(failed: &[(u64, u64)]) -> u64 {
    failed.iter().map(|&(_, len)| len).sum()
}

/// True if any failed range overlaps `at..at+len`.
fn overlaps(failed: &[(u64, u64)], at: u64, len: u64) -> bool {
    failed
        .iter()
        .any(|&(start, flen)| start < at + len && at < start + flen)
}

/// The reads of the recheck, in torrent order, covering exactly the present pieces.
fn plan_jobs(storage: &Storage, present: &[bool], read_size: usize) -> Vec<Job> {
    let map = storage.piece_map();
    let read_size = read_size as u64;
    let mut jobs = Vec::new();
    if map.piece_length() > read_size {
        for p in 0..map.piece_count() {
            if !present[p as usize] {
                continue;
            }
            let size = map.piece_size(p) as u64;
            let mut begin = 0u64;
            while begin < size {
                let length = (size - begin).min(read_size);
                jobs.push(Job::Part {
                    piece: p,
                    begin: begin as u32,
                    length: length as u32,
                    last: begin + length == size,
                });
                begin += length;
            }
        }
    } else {
        let per_read = (read_size / map.piece_length()).max(1) as u32;
        let mut p = 0u32;
        while p < map.piece_count() {
            if !present[p as usize] {
                p += 1;
                continue;
            }
            let first = p;
            while p < map.piece_count() && present[p as usize] && p - first < per_read {
                p += 1;
            }
            jobs.push(Job::Pieces {
                first,
                count: p - first,
            });
        }
    }
    jobs
}

fn job_len(storage: &Storage, job: Job) -> u64 {
    match job {
        Job::Pieces { first, count } => (first..first + count)
            .map(|p| storage.piece_map().piece_size(p) as u64)
            .sum(),
        Job::Part { length, .. } => length as u64,
    }
}

/// The spans of a job, adjacent spans of one file merged, with job-relative `range_offset`s.
fn job_spans(storage: &Storage, job: Job) -> Vec<FileSpan> {
    let map = storage.piece_map();
    let mut spans: Vec<FileSpan> = Vec::new();
    let mut push = |s: FileSpan| match spans.last_mut() {
        Some(last)
            if last.file_index == s.file_index
                && last.file_offset + last.length == s.file_offset
                && last.range_offset + last.length == s.range_offset =>
        {
            last.length += s.length
        }
        _ => spans.push(s),
    };
    match job {
        Job::Pieces { first, count } => {
            let mut at = 0u64;
            for p in first..first + count {
                for mut s in map.piece_spans(p).expect("planned piece in range") {
                    s.range_offset += at;
                    push(s);
                }
                at += map.piece_size(p) as u64;
            }
        }
        Job::Part {
            piece,
            begin,
            length,
            ..
        } => {
            for s in map
                .spans(piece, begin, length)
                .expect("planned part in range")
            {
                push(s);
            }
        }
    }
    spans
}

/// Reads one job; unreadable spans are zero-filled and listed in `failed`.
/// `buffer` is a recycled read buffer (cleared here): reusing the few buffers in flight saves faulting in fresh
/// pages for every read.
async fn read_job(
    storage: Rc<Storage>,
    direct: Rc<DirectFiles>,
    job: Job,
    mut buffer: Vec<u8>,
) -> JobData {
    let spans = job_spans(&storage, job);
    buffer.clear();
    buffer.reserve_exact(job_len(&storage, job) as usize);
    let mut out = JobData {
        job,
        data: buffer,
        failed: Vec::new(),
        errors: Vec::new(),
    };
    for span in spans {
        debug_assert_eq!(out.data.len() as u64, span.range_offset);
        if let Err(e) = read_span_for_check(&storage, &direct, span, &mut out.data).await {
            out.data
                .resize((span.range_offset + span.length) as usize, 0);
            out.failed.push((span.range_offset, span.length));
            out.errors.push((
                storage.layout().path(span.file_index).to_path_buf(),
                e.to_string(),
            ));
        }
    }
    out
}

/// Appends the bytes of `span` to `out`: a span wholly in the page cache is copied with `preadv2(RWF_NOWAIT)` (no
/// I/O, no io_uring); any other span is read with O_DIRECT when available, else with a buffered io_uring read.
/// (A NOWAIT attempt on uncached data is not free: it starts page-cache readahead from this thread, which then
/// races the O_DIRECT read; so the cache is asked first, with `cachestat`.)
async fn read_span_for_check(
    storage: &Storage,
    direct: &DirectFiles,
    span: FileSpan,
    out: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let layout = storage.layout();
    if layout.is_padding(span.file_index) {
        out.resize(out.len() + span.length as usize, 0);
        return Ok(());
    }
    let path = layout.path(span.file_index);
    let file = storage.file_for_span(span).await?;
    let start = out.len();
    let length = span.length as usize;
    let fd = file.as_raw_fd();
    if direct.enabled() && !fully_cached(fd, span.file_offset, span.length) {
        if let Some(dma) = direct.get(path, span.file_index).await {
            match read_direct(&dma, path, span.file_offset, length, out).await {
                Ok(()) => return Ok(()),
                Err(e @ StorageError::MissingData { .. }) => return Err(e),
                Err(e) => {
                    // O_DIRECT refused at read time (e.g. the glommio iopoll probe trap, stack-notes 1f): stop
                    // using it and read buffered.
                    log::warn!("direct read failed, using buffered reads: {e}");
                    direct.disable();
                    out.truncate(start);
                }
            }
        }
    }
    out.resize(start + length, 0);
    let cached = read_cached(fd, &mut out[start..], span.file_offset);
    out.truncate(start + cached);
    let pos = span.file_offset + cached as u64;
    read_exact_at(&file, path, pos, length - cached, out, false).await
}

/// Appends exactly `length` bytes of `file` at `pos` to `out` (O_DIRECT; glommio aligns the request and slices
/// the result), or `MissingData` at end of file.
async fn read_direct(
    file: &DmaFile,
    path: &Path,
    pos: u64,
    length: usize,
    out: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let mut done = 0usize;
    while done < length {
        let chunk = file
            .read_at(pos + done as u64, length - done)
            .await
            .map_err(|e| StorageError::io("reading (O_DIRECT)", path, e.into()))?;
        if chunk.is_empty() {
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

/// `cachestat(2)` (Linux 6.5): the system call number, the same on x86-64 and arm64.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// True if every page of `fd` in `off..off+len` is in the page cache. False when unsure (older kernel, other
/// architecture, error): the caller then reads with O_DIRECT, which is right for cold data and merely slower for
/// warm data.
fn fully_cached(fd: i32, off: u64, len: u64) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        const PAGE: u64 = 4096;
        let range = CachestatRange { off, len };
        let mut stat = Cachestat::default();
        // SAFETY: cachestat reads `range` and writes one `struct cachestat` into `stat`; both are live, properly
        // laid out (#[repr(C)], the kernel's field order) and outlive the call. `fd` is held open by the caller.
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                fd,
                &range as *const CachestatRange,
                &mut stat as *mut Cachestat,
                0u32,
            )
        };
        let pages = (off + len).div_ceil(PAGE) - off / PAGE;
        rc == 0 && stat.nr_cache >= pages
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (fd, off, len);
        false
    }
}

/// Stats every file of the torrent in one call on glommio's blocking pool.
async fn stat_files(storage: &Storage) -> Result<Vec<FileStatus>, StorageError> {
    let layout = storage.layout();
    let entries: Vec<(PathBuf, u64, bool)> = (0..layout.file_count())
        .map(|i| {
            (
                layout.path(i).to_path_buf(),
                layout.length(i),
                layout.is_padding(i),
            )
        })
        .collect();
    glommio::executor()
        .spawn_blocking(move || {
            entries
                .iter()
                .map(|(path, length, padding)| {
                    if *padding {
                        return Ok(FileStatus::Padding);
                    }
                    match std::fs::metadata(path) {
                        Ok(md) if md.is_file() => Ok(match md.len() {
                            n if n == *length => FileStatus::Complete,
                            n if n < *length => FileStatus::Short { size: n },
                            n => FileStatus::Oversized { size: n },
                        }),
                        Ok(_) => Ok(FileStatus::Missing),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            Ok(FileStatus::Missing)
                        }
                        // A parent that is a file, or a name too long: nothing can be there.
                        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                            Ok(FileStatus::Missing)
                        }
                        Err(e) => Err(StorageError::io("checking", path, e)),
                    }
                })
                .collect()
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_ranges() {
        let failed = [(10, 5)];
        assert!(overlaps(&failed, 0, 11));
        assert!(overlaps(&failed, 14, 1));
        assert!(!overlaps(&failed, 0, 10));
        assert!(!overlaps(&failed, 15, 100));
        assert_eq!(failed_bytes(&failed), 5);
    }
}
