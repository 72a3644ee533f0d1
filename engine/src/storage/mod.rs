//! The engine's storage layer: a torrent's files on disk, read and written through glommio (io_uring) on the
//! shard that owns the torrent.
//!
//! Unlike the pure core, this module does I/O, so it must run inside a glommio `LocalExecutor` (one per shard).
//! Nothing here is `Send`: a [`Storage`] and the shard's [`FilePool`] live on one executor and are shared with
//! `Rc`. Errors are typed ([`StorageError`]) and say which file and offset; nothing panics on what is on disk.
//!
//! - [`files`]: where a torrent's files live under the download root ([`FileLayout`], lexically confined to the
//!   root), and the per-shard LRU of open files ([`FilePool`], `--max_files_open`), with lazy creation (parents
//!   too), sparse length, read-only opens for seeding, and BEP 47 padding files that never touch the disk.
//! - [`io`]: [`Storage`], a torrent's read/write of blocks and pieces through [`crate::piece_map::PieceMap::spans`], short reads and
//!   writes, missing data as errors (never zeros or garbage), and `fdatasync` of what was written.
//! - [`verify`]: SHA-1 of pieces (one, or a batch through the multi-buffer kernel) against the metainfo.
//! - [`mod@recheck`]: the full check of existing data at disk/SHA speed, producing the have-bitfield and per-file
//!   status, and BitTornado's `--check_hashes 0`.
//!
//! - [`direct`]: O_DIRECT handles (glommio `DmaFile`) for the recheck's cold reads and whole-piece writes.
//!
//! Why `BufferedFile` for reads and blocks, and `DmaFile` for the recheck and whole-piece writes: measured in
//! `bench/src/bin/storage_io.rs` (figures in [`io`] and [`mod@recheck`]) and `bench/src/bin/transfer.rs`. A seedbox
//! serves the same popular blocks many times, and only the page cache makes that cheap; O_DIRECT also needs
//! 512/4096-byte alignment that multi-file torrents do not always have (unaligned spans are written buffered). A
//! recheck reads everything once, where O_DIRECT halves the shard's CPU and keeps the cache for seeding; a piece
//! just downloaded is written once, and filling new page-cache pages with it cost more CPU than everything else in
//! a download. The glommio DMA probe trap (stack-notes 1f): the recheck's DMA files hold the data being read, so the
//! first one is never empty; writers call `cyclone_shard::dma_probe::ensure_probed` first (a new sparse file reads a hole at offset 0).

pub(crate) mod direct;
pub mod files;
pub mod io;
pub mod recheck;
pub mod verify;

pub use files::{FileLayout, FilePool, FileSpec};
pub use io::Storage;
pub use recheck::{
    recheck, recheck_untrusted, FileStatus, RecheckOptions, RecheckProgress, RecheckReport,
};
pub use verify::{digest_batch, piece_digest};

use crate::piece_map::PieceMapError;
use std::path::PathBuf;
use thiserror::Error;

/// Why a storage operation failed. Every variant names the file it concerns.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes the torrent needs are not on disk: the file is missing or shorter than the data asked for. Reading a
    /// piece we claimed to have that hits this is BitTornado's "told file complete on start-up, but data is
    /// missing": the torrent must stop, not serve zeros.
    #[error("data missing: {} has no bytes at offset {offset} (wanted {length} bytes)", path.display())]
    MissingData {
        path: PathBuf,
        offset: u64,
        length: u64,
    },
    /// A path from the metainfo that does not stay inside the download root (the metainfo parser already refuses
    /// these; this is the second lock on the door).
    #[error("refusing path {path:?}: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// The layout does not describe the same files as the piece map.
    #[error("layout has {layout} files but the piece map has {map}")]
    LayoutMismatch { layout: usize, map: usize },
    /// File `index` has different lengths in the layout and the piece map.
    #[error("file {index}: layout length {layout} differs from the piece map's {map}")]
    LengthMismatch { index: usize, layout: u64, map: u64 },
    /// A block or piece address outside the torrent.
    #[error(transparent)]
    Geometry(#[from] PieceMapError),
    /// A data buffer whose length differs from the block it is written to.
    #[error("buffer of {got} bytes for a block of {want} bytes")]
    BufferLength { got: usize, want: u64 },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the error means "the data is not there" (as opposed to a failing disk or a bug).
    pub fn is_missing_data(&self) -> bool {
        matches!(self, StorageError::MissingData { .. })
    }
}
