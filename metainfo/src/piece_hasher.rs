//! Hashing files into torrent pieces, and verifying files against piece hashes.
//!
//! Shape: the content is cut into chunks of a few MiB (a multiple of 4 whole pieces;
//! pieces span file boundaries). `threads` workers claim chunks in content order, read
//! each with positional reads into their own buffer and hash it at once with the
//! multi-buffer SHA-1 kernel ([`crate::sha1_multi`]), while the data is still in cache.
//! Each worker also asks the kernel to read ahead the chunk it will likely take next
//! (`posix_fadvise(WILLNEED)`), so disk reads overlap hashing on a cold cache.
//!
//! Measured here (warm cache, 2 cores, 1 GiB, 1 MiB pieces): one reader thread feeding
//! hasher threads through big buffers reached 2.8–3.9 GB/s, because the copy out of the
//! page cache went to memory and was read back; per-worker reads of 4 MiB reached 5.8 GB/s.
//! `mmap` would save the copy but a file truncated while mapped kills the process with
//! SIGBUS, and "a file that changes size while hashing" must be a clean error.
//!
//! The arithmetic ([`PieceLayout`]) and the kernel know nothing of files, so the
//! engine's recheck can reuse them with its own I/O; this module is the std-file
//! front end used by `make` and `verify`. No async, no sockets.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;

use crate::piece_layout::{LayoutError, PieceLayout};
use crate::sha1_multi::{self, Digest};

/// One file of the content, in content order, with the length it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where the bytes are on disk.
    pub path: PathBuf,
    /// Bytes this file contributes to the content.
    pub length: u64,
    /// A BEP 47 padding file: `length` zero bytes that are never on disk.
    pub padding: bool,
}

/// Progress reported after each hashed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Pieces hashed so far.
    pub pieces_done: usize,
    /// Pieces in total.
    pub pieces_total: usize,
    /// Content bytes hashed so far.
    pub bytes_done: u64,
    /// Content bytes in total.
    pub bytes_total: u64,
}

/// Tuning for [`hash_files`] and [`verify_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashOptions {
    /// Hasher threads; 0 = one per available core.
    pub threads: usize,
    /// Approximate bytes each thread reads and hashes at a time (rounded to a multiple of
    /// 4 pieces, at least 4 pieces): a few MiB keeps the data in cache between the copy
    /// out of the page cache and the hashing.
    pub buffer_bytes: usize,
    /// Upper bound on the memory all buffers may take together (at least 4 pieces per
    /// thread are always allowed).
    pub memory_bytes_max: usize,
}

impl Default for HashOptions {
    fn default() -> Self {
        HashOptions {
            threads: 0,
            buffer_bytes: 4 << 20,
            memory_bytes_max: 1 << 30,
        }
    }
}

/// Why hashing stopped.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Piece length or piece count out of range.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A read failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A path is a directory, device or other non-regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file's size differs from the one recorded when the file list was made.
    #[error("{} changed size while hashing (expected {expected} bytes, found {actual})", path.display())]
    ChangedSize {
        /// The file.
        path: PathBuf,
        /// Size when the list was made.
        expected: u64,
        /// Size now.
        actual: u64,
    },
    /// `verify` was given a digest list that does not match the content size.
    #[error("the torrent lists {listed} pieces but its files need {needed}")]
    PieceCount {
        /// Digests given.
        listed: usize,
        /// Pieces the files make.
        needed: usize,
    },
    /// A thread could not be started.
    #[error("cannot start a hashing thread: {0}")]
    Spawn(io::Error),
}

/// Hashes the concatenation of `files` into pieces of `piece_length` bytes.
///
/// Every file must have exactly its listed length from start to end of hashing;
/// otherwise [`HashError::ChangedSize`] names it. `progress` runs on the calling
/// thread after each buffer.
pub fn hash_files(
    files: &[SourceFile],
    piece_length: u64,
    options: &HashOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Digest>, HashError> {
    let layout = PieceLayout::new(files.iter().map(|f| f.length), piece_length)?;
    let out = run(files, &layout, Mode::Strict, options, progress)?;
    Ok(out.digests)
}

/// What `verify` found for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Present with the right size.
    Ok,
    /// Not found; its bytes count as missing (later files keep their offsets).
    Missing,
    /// Smaller than listed; the bytes past `actual` count as missing.
    Short {
        /// Size on disk.
        actual: u64,
    },
    /// Larger than listed; the extra bytes are ignored.
    Long {
        /// Size on disk.
        actual: u64,
    },
    /// Could not be opened or read (the reason is the OS message).
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// What `verify` found for one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceStatus {
    /// Hash matches.
    Good,
    /// All its bytes were read and the hash differs.
    Corrupt,
    /// Some of its bytes are missing (missing, short or unreadable file).
    Incomplete,
}

/// Per-file verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// Size/presence check.
    pub state: FileState,
    /// Pieces holding bytes of this file.
    pub pieces: Range<usize>,
    /// Pieces of this file whose hash failed with all bytes present (such a piece may
    /// also touch neighbouring files; each of them lists it).
    pub corrupt_pieces: Vec<usize>,
    /// Pieces of this file that could not be checked because bytes are missing.
    pub incomplete_pieces: usize,
}

impl FileReport {
    /// True when the file is present, has its size and all its pieces match.
    pub fn is_ok(&self) -> bool {
        matches!(self.state, FileState::Ok)
            && self.corrupt_pieces.is_empty()
            && self.incomplete_pieces == 0
    }
}

/// The result of [`verify_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// One entry per piece, in order.
    pub pieces: Vec<PieceStatus>,
    /// One entry per file, in content order.
    pub files: Vec<FileReport>,
}

impl VerifyReport {
    /// True when every file is present with its size and every piece matches.
    pub fn is_ok(&self) -> bool {
        self.files.iter().all(FileReport::is_ok)
            && self.pieces.iter().all(|p| *p == PieceStatus::Good)
    }

    /// Number of pieces with the given status.
    pub fn count(&self, status: PieceStatus) -> usize {
        self.pieces.iter().filter(|p| **p == status).count()
    }
}

/// Checks `files` against `expected` piece hashes.
///
/// Missing, short and unreadable files are read as zeros so every other file keeps its
/// offset; pieces touching such bytes are [`PieceStatus::Incomplete`], not corrupt.
pub fn verify_files(
    files: &[SourceFile],
    piece_length: u64,
    expected: &[Digest],
    options: &HashOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifyReport, HashError> {
    let layout = PieceLayout::new(files.iter().map(|f| f.length), piece_length)?;
    if layout.piece_count() != expected.len() {
        return Err(HashError::PieceCount {
            listed: expected.len(),
            needed: layout.piece_count(),
        });
    }
    let out = run(files, &layout, Mode::Lenient, options, progress)?;
    let pieces: Vec<PieceStatus> = (0..layout.piece_count())
        .map(|p| {
            if out.incomplete[p] {
                PieceStatus::Incomplete
            } else if out.digests[p] == expected[p] {
                PieceStatus::Good
            } else {
                PieceStatus::Corrupt
            }
        })
        .collect();
    let files = out
        .states
        .into_iter()
        .enumerate()
        .map(|(f, state)| {
            let range = layout.pieces_of_file(f);
            let corrupt_pieces = range
                .clone()
                .filter(|&p| pieces[p] == PieceStatus::Corrupt)
                .collect();
            let incomplete_pieces = range
                .clone()
                .filter(|&p| pieces[p] == PieceStatus::Incomplete)
                .count();
            FileReport {
                state,
                pieces: range,
                corrupt_pieces,
                incomplete_pieces,
            }
        })
        .collect();
    Ok(VerifyReport { pieces, files })
}

/// Create (every deviation is an error) or verify (deviations are recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    Lenient,
}

struct RunOutput {
    digests: Vec<Digest>,
    /// Pieces with missing bytes (always false in strict mode).
    incomplete: Vec<bool>,
    states: Vec<FileState>,
}

/// A hashed chunk on its way back to the caller's thread.
struct Done {
    first_piece: usize,
    bytes: u64,
    digests: Vec<Digest>,
    incomplete: Vec<usize>,
}

/// Files a worker keeps open (positional reads need no shared cursor, so every worker
/// has its own handles).
const OPEN_FILES_PER_WORKER: usize = 16;

/// Files at least this big get a read-ahead hint for the chunks after the current ones.
const ADVISE_MIN_FILE_BYTES: u64 = 1 << 20;

fn run(
    files: &[SourceFile],
    layout: &PieceLayout,
    mode: Mode,
    options: &HashOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunOutput, HashError> {
    let piece_count = layout.piece_count();
    let piece_length = layout.piece_length() as usize;
    let mut workers = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, 256);

    // Whole pieces per chunk, a multiple of 4 (the kernel's lane count), small enough that
    // every worker gets several chunks and all buffers fit the memory bound.
    let per_worker_bytes = options
        .buffer_bytes
        .min(options.memory_bytes_max / workers)
        .max(1);
    let mut per_chunk = per_worker_bytes.div_ceil(piece_length).max(4);
    let fair_share = piece_count.div_ceil(workers * 2).max(1);
    per_chunk = per_chunk.min(fair_share).div_ceil(4) * 4;
    // Huge pieces (hundreds of MiB): fewer pieces per chunk and fewer workers rather than
    // buffers past the memory bound; one piece per worker is the floor.
    let affordable = options.memory_bytes_max / workers / piece_length;
    if affordable < per_chunk {
        per_chunk = affordable.clamp(1, per_chunk);
        workers = (options.memory_bytes_max / (per_chunk * piece_length)).clamp(1, workers);
    }
    let chunk_count = piece_count.div_ceil(per_chunk);

    let survey = Survey::take(files, mode)?;
    let total = layout.total_length();
    let shared = Shared {
        files,
        layout,
        mode,
        readable: &survey.readable,
        states: Mutex::new(survey.states),
        per_chunk,
        chunk_count,
        next_chunk: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        ahead: workers,
    };
    let mut digests = vec![[0u8; 20]; piece_count];
    let mut incomplete = vec![false; piece_count];
    let result = std::thread::scope(|scope| -> Result<(), HashError> {
        // Created inside the scope so that returning early drops the receiver before the
        // scope joins the workers: a worker blocked sending then fails and exits.
        let (done_tx, done_rx) = sync_channel::<Result<Done, HashError>>(workers * 4);
        for i in 0..workers.min(chunk_count) {
            let done_tx = done_tx.clone();
            let shared = &shared;
            std::thread::Builder::new()
                .name(format!("piece-hasher-{i}"))
                .spawn_scoped(scope, move || shared.work(&done_tx))
                .map_err(|e| {
                    shared.stop.store(true, Ordering::Relaxed);
                    HashError::Spawn(e)
                })?;
        }
        drop(done_tx);
        let mut p = Progress {
            pieces_done: 0,
            pieces_total: piece_count,
            bytes_done: 0,
            bytes_total: total,
        };
        for msg in done_rx.iter() {
            let done = match msg {
                Ok(done) => done,
                Err(e) => {
                    shared.stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            };
            let n = done.digests.len();
            digests[done.first_piece..done.first_piece + n].copy_from_slice(&done.digests);
            for piece in done.incomplete {
                incomplete[piece] = true;
            }
            p.pieces_done += n;
            p.bytes_done += done.bytes;
            progress(p);
        }
        assert_eq!(
            p.pieces_done, piece_count,
            "every piece hashed exactly once"
        );
        Ok(())
    });
    result?;
    let states = shared
        .states
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if mode == Mode::Strict {
        // A file that grew (or shrank and grew back) after we read it.
        for f in files.iter().filter(|f| !f.padding) {
            let now = std::fs::metadata(&f.path).map_err(|source| HashError::Read {
                path: f.path.clone(),
                source,
            })?;
            if now.len() != f.length {
                return Err(changed(&f.path, f.length, now.len()));
            }
        }
    }
    Ok(RunOutput {
        digests,
        incomplete,
        states,
    })
}

/// What each file looked like before hashing.
struct Survey {
    states: Vec<FileState>,
    /// Bytes of each file that can be read (less than listed for short/missing files).
    readable: Vec<u64>,
}

impl Survey {
    fn take(files: &[SourceFile], mode: Mode) -> Result<Survey, HashError> {
        let mut states = Vec::with_capacity(files.len());
        let mut readable = Vec::with_capacity(files.len());
        for f in files {
            if f.padding {
                states.push(FileState::Ok);
                readable.push(0);
                continue;
            }
            let (state, can_read) = match (mode, std::fs::metadata(&f.path)) {
                (Mode::Strict, Err(source)) => {
                    return Err(HashError::Open {
                        path: f.path.clone(),
                        source,
                    })
                }
                (Mode::Strict, Ok(meta)) => {
                    if !meta.is_file() {
                        return Err(HashError::NotAFile {
                            path: f.path.clone(),
                        });
                    }
                    if meta.len() != f.length {
                        return Err(changed(&f.path, f.length, meta.len()));
                    }
                    (FileState::Ok, f.length)
                }
                (Mode::Lenient, Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                    (FileState::Missing, 0)
                }
                (Mode::Lenient, Err(e)) => (
                    FileState::Unreadable {
                        reason: e.to_string(),
                    },
                    0,
                ),
                (Mode::Lenient, Ok(meta)) if !meta.is_file() => (
                    FileState::Unreadable {
                        reason: "not a regular file".into(),
                    },
                    0,
                ),
                (Mode::Lenient, Ok(meta)) => {
                    let actual = meta.len();
                    let state = match actual.cmp(&f.length) {
                        std::cmp::Ordering::Less => FileState::Short { actual },
                        std::cmp::Ordering::Greater => FileState::Long { actual },
                        std::cmp::Ordering::Equal => FileState::Ok,
                    };
                    (state, actual.min(f.length))
                }
            };
            states.push(state);
            readable.push(can_read);
        }
        Ok(Survey { states, readable })
    }
}

/// State every worker shares.
struct Shared<'a> {
    files: &'a [SourceFile],
    layout: &'a PieceLayout,
    mode: Mode,
    readable: &'a [u64],
    /// Written only when a file turns out worse than the survey said (rare).
    states: Mutex<Vec<FileState>>,
    per_chunk: usize,
    chunk_count: usize,
    next_chunk: AtomicUsize,
    stop: AtomicBool,
    /// How many chunks past its own a worker asks the kernel to read ahead.
    ahead: usize,
}

impl Shared<'_> {
    /// One worker: claim chunks in order, read each with positional reads into its own
    /// buffer, hash it, report it.
    fn work(&self, done_tx: &SyncSender<Result<Done, HashError>>) {
        let piece_length = self.layout.piece_length() as usize;
        let mut buf = Vec::new();
        let mut bounce = Vec::new();
        let mut open = OpenFiles::default();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let c = self.next_chunk.fetch_add(1, Ordering::Relaxed);
            if c >= self.chunk_count {
                return;
            }
            self.advise(c + self.ahead, &mut open);
            let first_piece = c * self.per_chunk;
            let start = first_piece as u64 * piece_length as u64;
            let end =
                (start + (self.per_chunk * piece_length) as u64).min(self.layout.total_length());
            let len = (end - start) as usize;
            // The chunk starts on a COPY_ALIGN boundary, like (almost always) its file offset.
            if buf.len() < len + COPY_ALIGN {
                buf.resize(len + COPY_ALIGN, 0);
            }
            let pad = (COPY_ALIGN - buf.as_ptr() as usize % COPY_ALIGN) % COPY_ALIGN;
            let chunk = &mut buf[pad..pad + len];
            let mut holes = Vec::new();
            let msg = self
                .read_range(start, chunk, &mut holes, &mut open, &mut bounce)
                .map(|()| {
                    let mut digests = vec![[0u8; 20]; len.div_ceil(piece_length)];
                    sha1_multi::hash_chunks_into(chunk, piece_length, &mut digests);
                    let mut incomplete = Vec::new();
                    for hole in holes {
                        incomplete.extend(self.layout.pieces_overlapping(hole));
                    }
                    Done {
                        first_piece,
                        bytes: len as u64,
                        digests,
                        incomplete,
                    }
                });
            let failed = msg.is_err();
            if done_tx.send(msg).is_err() || failed {
                self.stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Hints the kernel to start reading chunk `c` (read-ahead overlapping our hashing).
    fn advise(&self, c: usize, open: &mut OpenFiles) {
        if c >= self.chunk_count {
            return;
        }
        let piece_length = self.layout.piece_length();
        let start = (c * self.per_chunk) as u64 * piece_length;
        let end = (start + self.per_chunk as u64 * piece_length).min(self.layout.total_length());
        for f in self.layout.files_overlapping(start..end) {
            let range = self.layout.file_range(f);
            if range.end - range.start < ADVISE_MIN_FILE_BYTES || self.readable[f] == 0 {
                continue;
            }
            if let Some(file) = open.get(f, &self.files[f].path) {
                let from = start.max(range.start) - range.start;
                let to = end.min(range.end) - range.start;
                read_ahead::will_need(file, from, to - from);
            }
        }
    }

    /// Fills `dst` with the content bytes starting at `start`. Strict mode fails on any
    /// shortfall; lenient mode reads what is there, zero-fills the rest and records holes.
    fn read_range(
        &self,
        start: u64,
        dst: &mut [u8],
        holes: &mut Vec<Range<u64>>,
        open: &mut OpenFiles,
        bounce: &mut Vec<u8>,
    ) -> Result<(), HashError> {
        let end = start + dst.len() as u64;
        for f in self.layout.files_overlapping(start..end) {
            let range = self.layout.file_range(f);
            let a = start.max(range.start);
            let b = end.min(range.end);
            if a >= b {
                continue; // an empty file inside the range
            }
            let out = &mut dst[(a - start) as usize..(b - start) as usize];
            if self.files[f].padding {
                out.fill(0);
                continue;
            }
            let in_file = a - range.start;
            let can = self.readable[f].saturating_sub(in_file).min(b - a) as usize;
            let got = if can == 0 {
                0
            } else {
                self.read_file(f, in_file, &mut out[..can], open, bounce)?
            };
            if got < out.len() {
                out[got..].fill(0);
                push_hole(holes, a + got as u64..b);
            }
        }
        Ok(())
    }

    /// Reads `out.len()` bytes of file `f` at `offset`; returns how many were read (fewer
    /// only in lenient mode).
    fn read_file(
        &self,
        f: usize,
        offset: u64,
        out: &mut [u8],
        open: &mut OpenFiles,
        bounce: &mut Vec<u8>,
    ) -> Result<usize, HashError> {
        let src = &self.files[f];
        let Some(file) = open.get(f, &src.path) else {
            return match self.mode {
                Mode::Strict => Err(HashError::Open {
                    path: src.path.clone(),
                    source: open.last_error(),
                }),
                Mode::Lenient => {
                    self.mark(
                        f,
                        FileState::Unreadable {
                            reason: open.last_error().to_string(),
                        },
                    );
                    Ok(0)
                }
            };
        };
        let got = match read_full_at(file, out, offset, bounce) {
            Ok(got) => got,
            Err((got, source)) => {
                return match self.mode {
                    Mode::Strict => Err(HashError::Read {
                        path: src.path.clone(),
                        source,
                    }),
                    Mode::Lenient => {
                        self.mark(
                            f,
                            FileState::Unreadable {
                                reason: source.to_string(),
                            },
                        );
                        Ok(got)
                    }
                };
            }
        };
        if got < out.len() {
            // End of file before the listed length: it shrank after the survey.
            let actual = file.metadata().map_or(offset + got as u64, |m| m.len());
            match self.mode {
                Mode::Strict => return Err(changed(&src.path, src.length, actual)),
                Mode::Lenient => self.mark(f, FileState::Short { actual }),
            }
        }
        Ok(got)
    }

    fn mark(&self, f: usize, state: FileState) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the first problem found: it is the one a user can act on.
        if matches!(states[f], FileState::Ok | FileState::Long { .. }) {
            states[f] = state;
        }
    }
}

/// Copies out of the page cache run at ~8 GB/s here when the destination address and the
/// file offset agree modulo 64, and at ~2 GB/s when they differ by 16 (measured with
/// 4 MiB `pread`s, warm cache): the kernel copies page by page, so the misalignment repeats
/// on every page. Reads whose destination cannot be aligned go through a bounce buffer.
const COPY_ALIGN: usize = 64;

/// Size of the per-worker bounce buffer (cache-sized: the second copy is from L2).
const BOUNCE_BYTES: usize = 256 << 10;

/// Reads `out.len()` bytes at `offset`, stopping early only at end of file. On an error,
/// returns how many bytes were read before it.
fn read_full_at(
    file: &File,
    out: &mut [u8],
    offset: u64,
    bounce: &mut Vec<u8>,
) -> Result<usize, (usize, io::Error)> {
    let aligned = (out.as_ptr() as usize)
        .wrapping_sub(offset as usize)
        .is_multiple_of(COPY_ALIGN);
    let mut got = 0usize;
    while got < out.len() {
        let pos = offset + got as u64;
        let left = out.len() - got;
        let result = if aligned || left < 4096 {
            file.read_at(&mut out[got..], pos)
        } else {
            if bounce.len() < BOUNCE_BYTES + COPY_ALIGN {
                bounce.resize(BOUNCE_BYTES + COPY_ALIGN, 0);
            }
            // Start where the bounce address agrees with the file offset modulo 64.
            let s = (pos as usize).wrapping_sub(bounce.as_ptr() as usize) % COPY_ALIGN;
            let want = left.min(BOUNCE_BYTES);
            file.read_at(&mut bounce[s..s + want], pos).inspect(|&n| {
                out[got..got + n].copy_from_slice(&bounce[s..s + n]);
            })
        };
        match result {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((got, e)),
        }
    }
    Ok(got)
}

/// A worker's small cache of open files (most recently used last).
#[derive(Default)]
struct OpenFiles {
    entries: Vec<(usize, Option<File>)>,
    error: Option<io::Error>,
}

impl OpenFiles {
    /// File `f`, opened on first use; `None` if it cannot be opened (see `last_error`).
    fn get(&mut self, f: usize, path: &Path) -> Option<&File> {
        let pos = match self.entries.iter().position(|(i, _)| *i == f) {
            Some(pos) => pos,
            None => {
                if self.entries.len() >= OPEN_FILES_PER_WORKER {
                    self.entries.remove(0);
                }
                let file = match File::open(path) {
                    Ok(file) => Some(file),
                    Err(e) => {
                        self.error = Some(e);
                        None
                    }
                };
                self.entries.push((f, file));
                self.entries.len() - 1
            }
        };
        self.entries[pos].1.as_ref()
    }

    fn last_error(&self) -> io::Error {
        match &self.error {
            Some(e) => io::Error::new(e.kind(), e.to_string()),
            None => io::Error::other("cannot open"),
        }
    }
}

/// Kernel read-ahead hints.
mod read_ahead {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// Asks the kernel to start reading `len` bytes at `offset` into the page cache now,
    /// so the read that follows finds them there. A hint: failures are ignored.
    pub fn will_need(file: &File, offset: u64, len: u64) {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is owned
        // by `file`, which is alive for the duration of the call.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED);
        }
    }
}

fn changed(path: &Path, expected: u64, actual: u64) -> HashError {
    HashError::ChangedSize {
        path: path.to_path_buf(),
        expected,
        actual,
    }
}

/// Appends a hole, merging it with the previous one when they touch.
fn push_hole(holes: &mut Vec<Range<u64>>, r: Range<u64>) {
    if let Some(last) = holes.last_mut() {
        if last.end == r.start {
            last.end = r.end;
            return;
        }
    }
    holes.push(r);
}

/// Concatenates digests into the metainfo `pieces` string.
pub fn pieces_bytes(digests: &[Digest]) -> Vec<u8> {
    digests.concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, data: &[u8]) -> SourceFile {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(data)
            .unwrap();
        SourceFile {
            path,
            length: data.len() as u64,
            padding: false,
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "cyclone-piece-hasher-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// 3 workers, 4 pieces per chunk: many chunks even for small files.
    fn small_opts() -> HashOptions {
        HashOptions {
            threads: 3,
            buffer_bytes: 1,
            ..HashOptions::default()
        }
    }

    #[test]
    fn pieces_span_files_like_plain_concatenation() {
        let dir = tempdir("span");
        let mut rng = fastrand::Rng::with_seed(11);
        let mut all = Vec::new();
        let mut files = Vec::new();
        for (i, len) in [0usize, 1000, 0, 77, 65536, 3, 0, 40_000, 0]
            .iter()
            .enumerate()
        {
            let mut data = vec![0u8; *len];
            rng.fill(&mut data);
            all.extend_from_slice(&data);
            files.push(write(&dir, &format!("f{i}"), &data));
        }
        for pl in [16384u64, 1 << 15, 1000, 64] {
            for opts in [small_opts(), HashOptions::default()] {
                let mut calls = 0;
                let got = hash_files(&files, pl, &opts, &mut |_| calls += 1).unwrap();
                let want: Vec<Digest> = all.chunks(pl as usize).map(sha1_multi::sha1).collect();
                assert_eq!(got, want, "piece length {pl}");
                assert!(calls >= 1);
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn empty_content_has_no_pieces_but_checks_files() {
        let dir = tempdir("empty");
        let files = vec![write(&dir, "a", b""), write(&dir, "b", b"")];
        assert!(hash_files(&files, 1 << 14, &small_opts(), &mut |_| {})
            .unwrap()
            .is_empty());
        let gone = vec![SourceFile {
            path: dir.join("missing"),
            length: 0,
            padding: false,
        }];
        let err = hash_files(&gone, 1 << 14, &small_opts(), &mut |_| {}).unwrap_err();
        assert!(matches!(err, HashError::Open { .. }), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn size_change_is_a_clear_error() {
        let dir = tempdir("changed");
        let mut f = write(&dir, "a", &[1u8; 5000]);
        f.length = 4000; // listed smaller than on disk: the file "grew"
        let err = hash_files(&[f.clone()], 1024, &small_opts(), &mut |_| {}).unwrap_err();
        assert!(
            err.to_string()
                .contains("changed size while hashing (expected 4000 bytes, found 5000)"),
            "{err}"
        );
        f.length = 6000;
        let err = hash_files(&[f], 1024, &small_opts(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, HashError::ChangedSize { actual: 5000, .. }),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn file_changing_size_during_hashing_is_caught() {
        // The progress callback runs on the caller's thread after each chunk, so it can
        // change the file while the workers are still reading later chunks.
        let dir = tempdir("during");
        let data = vec![3u8; 400 * 1024];
        let f = write(&dir, "a", &data);
        let opts = HashOptions {
            threads: 1,
            buffer_bytes: 1,
            ..HashOptions::default()
        };
        let path = f.path.clone();
        let mut first = true;
        let err = hash_files(std::slice::from_ref(&f), 1024, &opts, &mut |_| {
            if std::mem::take(&mut first) {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap()
                    .write_all(b"grown")
                    .unwrap();
            }
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                HashError::ChangedSize {
                    expected: 409600,
                    actual: 409605,
                    ..
                }
            ),
            "{err}"
        );

        write(&dir, "a", &data);
        let mut first = true;
        // Several workers: the others are still sending when the error arrives.
        let opts = HashOptions { threads: 4, ..opts };
        let err = hash_files(std::slice::from_ref(&f), 1024, &opts, &mut |_| {
            if std::mem::take(&mut first) {
                // One ftruncate: the file is never seen at any other size.
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(1000)
                    .unwrap();
            }
        })
        .unwrap_err();
        assert!(
            matches!(err, HashError::ChangedSize { actual: 1000, .. }),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn huge_pieces_under_a_small_memory_bound_still_hash_correctly() {
        let dir = tempdir("huge");
        let mut rng = fastrand::Rng::with_seed(21);
        let mut data = vec![0u8; 300_000];
        rng.fill(&mut data);
        let f = write(&dir, "a", &data);
        // 64 KiB of buffers for 4 workers and 32 KiB pieces: one piece per chunk, 2 workers.
        let opts = HashOptions {
            threads: 4,
            buffer_bytes: 1 << 20,
            memory_bytes_max: 64 << 10,
        };
        let got = hash_files(&[f], 32 << 10, &opts, &mut |_| {}).unwrap();
        let want: Vec<Digest> = data.chunks(32 << 10).map(sha1_multi::sha1).collect();
        assert_eq!(got, want);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn directory_in_place_of_file_is_an_error_not_a_panic() {
        let dir = tempdir("notfile");
        let f = SourceFile {
            path: dir.clone(),
            length: 10,
            padding: false,
        };
        let err = hash_files(&[f], 1024, &small_opts(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, HashError::NotAFile { .. } | HashError::Open { .. }),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn verify_pinpoints_missing_short_long_and_corrupt_without_shifting() {
        let dir = tempdir("verify");
        let mut rng = fastrand::Rng::with_seed(5);
        let lens = [3000usize, 5000, 2048, 4096, 1000, 0];
        let mut files = Vec::new();
        let mut datas = Vec::new();
        for (i, len) in lens.iter().enumerate() {
            let mut data = vec![0u8; *len];
            rng.fill(&mut data);
            files.push(write(&dir, &format!("f{i}"), &data));
            datas.push(data);
        }
        let pl = 1024u64;
        let pieces = hash_files(&files, pl, &small_opts(), &mut |_| {}).unwrap();
        let clean = verify_files(&files, pl, &pieces, &small_opts(), &mut |_| {}).unwrap();
        assert!(clean.is_ok());

        // f1 missing, f2 corrupt at byte 100, f3 short by 1, f4 long by 10, f5 missing (empty).
        std::fs::remove_file(&files[1].path).unwrap();
        let mut d2 = datas[2].clone();
        d2[1000] ^= 1;
        write(&dir, "f2", &d2);
        write(&dir, "f3", &datas[3][..4095]);
        let mut d4 = datas[4].clone();
        d4.extend_from_slice(&[9u8; 10]);
        write(&dir, "f4", &d4);
        std::fs::remove_file(&files[5].path).unwrap();

        let r = verify_files(&files, pl, &pieces, &small_opts(), &mut |_| {}).unwrap();
        assert!(!r.is_ok());
        let layout = PieceLayout::new(lens.iter().map(|&l| l as u64), pl).unwrap();
        assert_eq!(r.files[0].state, FileState::Ok);
        assert_eq!(r.files[1].state, FileState::Missing);
        assert_eq!(r.files[2].state, FileState::Ok);
        assert_eq!(r.files[3].state, FileState::Short { actual: 4095 });
        assert_eq!(r.files[4].state, FileState::Long { actual: 1010 });
        assert_eq!(r.files[5].state, FileState::Missing);
        // f2 starts at 8000; its byte 1000 → content 9000 → piece 8 (8192..9216).
        assert_eq!(r.pieces[8], PieceStatus::Corrupt);
        assert_eq!(r.files[2].corrupt_pieces, vec![8]);
        assert_eq!(r.pieces[9], PieceStatus::Good);
        // f1 = bytes 3000..8000 → pieces 2..=7 lack bytes (7 also holds f2's first bytes).
        assert_eq!(layout.pieces_of_file(1), 2..8);
        for p in layout.pieces_of_file(1) {
            assert_eq!(r.pieces[p], PieceStatus::Incomplete, "piece {p}");
        }
        // Offsets are kept: pieces wholly inside f0 and f4 are still good.
        assert_eq!(r.pieces[0], PieceStatus::Good);
        assert_eq!(r.pieces[1], PieceStatus::Good);
        // f3 = 10048..14144; last byte missing → piece 13 incomplete; f4 ends at 15144.
        assert_eq!(r.pieces[13], PieceStatus::Incomplete);
        assert_eq!(r.pieces[14], PieceStatus::Good);
        assert_eq!(r.files[4].corrupt_pieces, Vec::<usize>::new());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn verify_rejects_wrong_piece_count() {
        let dir = tempdir("count");
        let files = vec![write(&dir, "a", &[0u8; 3000])];
        let err =
            verify_files(&files, 1024, &[[0u8; 20]; 2], &small_opts(), &mut |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the torrent lists 2 pieces but its files need 3"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
