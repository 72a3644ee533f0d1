//! Hashing files into torrent pieces, and verifying files against piece hashes.
//!
//! Shape: one reader thread streams the files (in content order, so the disk sees one
//! sequential read) into a small pool of big buffers; `threads` hasher threads take
//! whole buffers and hash their pieces with the multi-buffer SHA-1 kernel
//! ([`crate::sha1_multi`]). The pool is the read-ahead: while hashers work on some
//! buffers the reader is already filling the next. Pieces span file boundaries, so a
//! buffer always holds whole pieces of the concatenated content.
//!
//! The arithmetic ([`PieceLayout`]) and the kernel know nothing of files, so the
//! engine's recheck can reuse them with its own I/O; this module is the std-file
//! front end used by `make` and `verify`. No async, no sockets.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
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
    /// Approximate bytes per read buffer (rounded to a whole number of pieces, at least 4).
    pub buffer_bytes: usize,
    /// Upper bound on the memory all read buffers may take together.
    pub memory_bytes_max: usize,
}

impl Default for HashOptions {
    fn default() -> Self {
        HashOptions {
            threads: 0,
            buffer_bytes: 8 << 20,
            memory_bytes_max: 512 << 20,
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

/// A buffer of whole pieces on its way to a hasher.
struct Chunk {
    first_piece: usize,
    buf: Vec<u8>,
    len: usize,
    holes: Vec<Range<u64>>,
}

/// A hashed buffer on its way back to the caller's thread.
struct Done {
    first_piece: usize,
    bytes: u64,
    digests: Vec<Digest>,
    incomplete: Vec<usize>,
}

fn run(
    files: &[SourceFile],
    layout: &PieceLayout,
    mode: Mode,
    options: &HashOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunOutput, HashError> {
    let piece_count = layout.piece_count();
    let piece_length = layout.piece_length() as usize;
    let workers = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, 256);

    // Whole pieces per buffer, a multiple of 4 (the kernel's lane count), no more than
    // needed to give every worker a couple of buffers.
    let mut per_chunk = options.buffer_bytes.div_ceil(piece_length).max(4);
    let fair_share = piece_count.div_ceil(workers * 2).max(1);
    per_chunk = per_chunk.min(fair_share).div_ceil(4) * 4;
    let chunk_bytes = per_chunk * piece_length;
    let chunk_count = piece_count.div_ceil(per_chunk);
    let buffers = (options.memory_bytes_max / chunk_bytes.max(1)).clamp(2, workers + 2);

    let stop = AtomicBool::new(false);
    let (work_tx, work_rx) = sync_channel::<Chunk>(buffers);
    let work_rx = Mutex::new(work_rx);
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(buffers);
    let (done_tx, done_rx) = sync_channel::<Result<Done, HashError>>(buffers * 2);

    let mut digests = vec![[0u8; 20]; piece_count];
    let mut incomplete = vec![false; piece_count];
    let total = layout.total_length();

    std::thread::scope(|scope| -> Result<RunOutput, HashError> {
        let reader_done = done_tx.clone();
        let stop_ref = &stop;
        let reader = std::thread::Builder::new()
            .name("piece-reader".into())
            .spawn_scoped(scope, move || {
                let mut reader = ContentReader::new(files, mode);
                let mut allocated = 0usize;
                for c in 0..chunk_count {
                    if stop_ref.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut buf = if allocated < buffers {
                        allocated += 1;
                        vec![0u8; chunk_bytes]
                    } else {
                        match free_rx.recv() {
                            Ok(b) => b,
                            Err(_) => break,
                        }
                    };
                    let first_piece = c * per_chunk;
                    let start = first_piece as u64 * piece_length as u64;
                    let end = (start + chunk_bytes as u64).min(total);
                    let len = (end - start) as usize;
                    let mut holes = Vec::new();
                    if let Err(e) = reader.fill(&mut buf[..len], start, &mut holes) {
                        let _ = reader_done.send(Err(e));
                        return reader.states;
                    }
                    let chunk = Chunk {
                        first_piece,
                        buf,
                        len,
                        holes,
                    };
                    if work_tx.send(chunk).is_err() {
                        break;
                    }
                }
                drop(work_tx);
                if !stop_ref.load(Ordering::Relaxed) {
                    if let Err(e) = reader.finish() {
                        let _ = reader_done.send(Err(e));
                    }
                }
                reader.states
            })
            .map_err(HashError::Spawn)?;

        for i in 0..workers {
            let work_rx = &work_rx;
            let free_tx = free_tx.clone();
            let done_tx = done_tx.clone();
            let stop = &stop;
            std::thread::Builder::new()
                .name(format!("piece-hasher-{i}"))
                .spawn_scoped(scope, move || loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(chunk)) = next else { return };
                    if !stop.load(Ordering::Relaxed) {
                        let data = &chunk.buf[..chunk.len];
                        let mut out = vec![[0u8; 20]; chunk.len.div_ceil(piece_length)];
                        sha1_multi::hash_chunks_into(data, piece_length, &mut out);
                        let mut bad = Vec::new();
                        for hole in &chunk.holes {
                            bad.extend(layout.pieces_overlapping(hole.clone()));
                        }
                        let done = Done {
                            first_piece: chunk.first_piece,
                            bytes: chunk.len as u64,
                            digests: out,
                            incomplete: bad,
                        };
                        if done_tx.send(Ok(done)).is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    // The reader may have finished; a closed pool is fine.
                    let _ = free_tx.try_send(chunk.buf);
                })
                .map_err(|e| {
                    stop.store(true, Ordering::Relaxed);
                    HashError::Spawn(e)
                })?;
        }
        drop(free_tx);
        drop(done_tx);

        let mut result = Ok(());
        let mut p = Progress {
            pieces_done: 0,
            pieces_total: piece_count,
            bytes_done: 0,
            bytes_total: total,
        };
        for msg in done_rx.iter() {
            match msg {
                Ok(done) => {
                    let n = done.digests.len();
                    digests[done.first_piece..done.first_piece + n].copy_from_slice(&done.digests);
                    for piece in done.incomplete {
                        incomplete[piece] = true;
                    }
                    p.pieces_done += n;
                    p.bytes_done += done.bytes;
                    progress(p);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    result = Err(e);
                    break;
                }
            }
        }
        drop(done_rx);
        let states = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        result?;
        assert_eq!(
            p.pieces_done, piece_count,
            "every piece hashed exactly once"
        );
        Ok(RunOutput {
            digests,
            incomplete,
            states,
        })
    })
}

/// The file currently being read.
struct OpenFile {
    index: usize,
    /// None when the file is missing or unreadable (lenient mode reads zeros).
    file: Option<File>,
    /// Bytes of this file consumed so far.
    pos: u64,
    /// Bytes that can really be read (less than the listed length for a short file).
    readable: u64,
}

/// Streams the concatenated content of the files, sequentially.
struct ContentReader<'a> {
    files: &'a [SourceFile],
    mode: Mode,
    next_file: usize,
    current: Option<OpenFile>,
    states: Vec<FileState>,
}

impl<'a> ContentReader<'a> {
    fn new(files: &'a [SourceFile], mode: Mode) -> Self {
        ContentReader {
            files,
            mode,
            next_file: 0,
            current: None,
            states: vec![FileState::Ok; files.len()],
        }
    }

    /// Fills `buf` with the content bytes starting at `offset` (which must be where the
    /// previous fill ended), recording missing byte ranges in `holes` (lenient mode).
    fn fill(
        &mut self,
        buf: &mut [u8],
        offset: u64,
        holes: &mut Vec<Range<u64>>,
    ) -> Result<(), HashError> {
        let mut filled = 0usize;
        while filled < buf.len() {
            let cur = match self.current.take() {
                Some(c) => c,
                None => {
                    assert!(self.next_file < self.files.len(), "read past the content");
                    let c = self.open(self.next_file)?;
                    self.next_file += 1;
                    c
                }
            };
            let mut cur = cur;
            let length = self.files[cur.index].length;
            let want = (length - cur.pos).min((buf.len() - filled) as u64) as usize;
            let dst = &mut buf[filled..filled + want];
            let got = self.read_into(&mut cur, dst)?;
            if got < want {
                dst[got..].fill(0);
                let at = offset + (filled + got) as u64;
                push_hole(holes, at..at + (want - got) as u64);
            }
            filled += want;
            cur.pos += want as u64;
            if cur.pos == length {
                self.close(cur)?;
            } else {
                self.current = Some(cur);
            }
        }
        Ok(())
    }

    /// Opens and checks the files after the last byte of content (empty files at the end).
    fn finish(&mut self) -> Result<(), HashError> {
        if let Some(cur) = self.current.take() {
            self.close(cur)?;
        }
        while self.next_file < self.files.len() {
            let cur = self.open(self.next_file)?;
            self.next_file += 1;
            let length = self.files[cur.index].length;
            if length != 0 {
                // Only reachable if the caller stopped early; nothing to check then.
                return Ok(());
            }
            self.close(cur)?;
        }
        Ok(())
    }

    fn open(&mut self, index: usize) -> Result<OpenFile, HashError> {
        let src = &self.files[index];
        let opened = File::open(&src.path).and_then(|f| {
            let meta = f.metadata()?;
            Ok((f, meta))
        });
        match (self.mode, opened) {
            (Mode::Strict, Err(source)) => Err(HashError::Open {
                path: src.path.clone(),
                source,
            }),
            (Mode::Strict, Ok((f, meta))) => {
                if !meta.is_file() {
                    return Err(HashError::NotAFile {
                        path: src.path.clone(),
                    });
                }
                if meta.len() != src.length {
                    return Err(changed(&src.path, src.length, meta.len()));
                }
                Ok(OpenFile {
                    index,
                    file: Some(f),
                    pos: 0,
                    readable: src.length,
                })
            }
            (Mode::Lenient, Err(e)) => {
                self.states[index] = if e.kind() == io::ErrorKind::NotFound {
                    FileState::Missing
                } else {
                    FileState::Unreadable {
                        reason: e.to_string(),
                    }
                };
                Ok(OpenFile {
                    index,
                    file: None,
                    pos: 0,
                    readable: 0,
                })
            }
            (Mode::Lenient, Ok((f, meta))) => {
                if !meta.is_file() {
                    self.states[index] = FileState::Unreadable {
                        reason: "not a regular file".into(),
                    };
                    return Ok(OpenFile {
                        index,
                        file: None,
                        pos: 0,
                        readable: 0,
                    });
                }
                let actual = meta.len();
                self.states[index] = match actual.cmp(&src.length) {
                    std::cmp::Ordering::Less => FileState::Short { actual },
                    std::cmp::Ordering::Greater => FileState::Long { actual },
                    std::cmp::Ordering::Equal => FileState::Ok,
                };
                Ok(OpenFile {
                    index,
                    file: Some(f),
                    pos: 0,
                    readable: actual.min(src.length),
                })
            }
        }
    }

    /// Reads up to `dst.len()` bytes of the current file; returns how many were read
    /// (fewer only in lenient mode, where the rest counts as missing).
    fn read_into(&mut self, cur: &mut OpenFile, dst: &mut [u8]) -> Result<usize, HashError> {
        let path = &self.files[cur.index].path;
        let readable = cur.readable.saturating_sub(cur.pos).min(dst.len() as u64) as usize;
        let Some(file) = cur.file.as_mut() else {
            return Ok(0);
        };
        let mut got = 0usize;
        while got < readable {
            match file.read(&mut dst[got..readable]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => match self.mode {
                    Mode::Strict => {
                        return Err(HashError::Read {
                            path: path.clone(),
                            source,
                        })
                    }
                    Mode::Lenient => {
                        self.states[cur.index] = FileState::Unreadable {
                            reason: source.to_string(),
                        };
                        cur.file = None;
                        return Ok(got);
                    }
                },
            }
        }
        if got < dst.len() {
            match self.mode {
                Mode::Strict => {
                    // End of file before the listed length: the file shrank.
                    let actual = file.metadata().map_or(cur.pos + got as u64, |m| m.len());
                    return Err(changed(path, self.files[cur.index].length, actual));
                }
                Mode::Lenient => {
                    if got < readable {
                        // Shrank while we read it.
                        let actual = cur.pos + got as u64;
                        self.states[cur.index] = FileState::Short { actual };
                        cur.readable = actual;
                    }
                }
            }
        }
        Ok(got)
    }

    /// Done with a file: in strict mode, check it still has its listed size.
    fn close(&mut self, cur: OpenFile) -> Result<(), HashError> {
        if self.mode == Mode::Strict {
            let src = &self.files[cur.index];
            if let Some(f) = &cur.file {
                let now = f.metadata().map_err(|source| HashError::Read {
                    path: src.path.clone(),
                    source,
                })?;
                if now.len() != src.length {
                    return Err(changed(&src.path, src.length, now.len()));
                }
            }
        }
        Ok(())
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

    fn small_opts() -> HashOptions {
        HashOptions {
            threads: 3,
            buffer_bytes: 1,
            memory_bytes_max: 1,
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
    fn directory_in_place_of_file_is_an_error_not_a_panic() {
        let dir = tempdir("notfile");
        let f = SourceFile {
            path: dir.clone(),
            length: 10,
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
