//! `cyclone verify`: check data on disk against a torrent, per piece and per file.
//!
//! Missing and short files are read as zeros, so every other file keeps its offset and
//! only the pieces that really lack bytes are reported (not everything after a gap).
//! BEP 47 padding files (`attr` contains `p`) are zeros that are never on disk.
//!
//! Exit codes for scripts: 0 all pieces and files match; 3 corrupt data (a piece with all
//! its bytes present fails its hash, or a file is longer than listed); 4 incomplete
//! (missing or short files, nothing corrupt); 1 could not check (unreadable torrent...);
//! 2 usage.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cyclone_metainfo::piece_hasher::{
    self, FileState, HashOptions, PieceStatus, SourceFile, VerifyReport,
};
use cyclone_metainfo::piece_layout::PieceLayout;
use cyclone_metainfo::Metainfo;

use crate::error::CliError;
use crate::progress_bar::ProgressBar;
use crate::torrent_file;

/// Exit code: data differs from the torrent.
pub const EXIT_CORRUPT: u8 = 3;
/// Exit code: data incomplete (missing or short files), nothing corrupt.
pub const EXIT_INCOMPLETE: u8 = 4;
/// Bad-piece lines printed before summarising the rest.
const PIECE_LINES_MAX: usize = 50;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The torrent file.
    pub torrent: PathBuf,
    /// The content: the file itself (single-file torrent) or the directory named after the
    /// torrent. Default: the torrent's name next to the torrent file.
    pub content: Option<PathBuf>,
    /// Hashing threads (0 = one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Only the summary line (and the exit code).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    let m = torrent_file::read(&args.torrent)?;
    let content = match &args.content {
        Some(c) => c.clone(),
        None => args
            .torrent
            .parent()
            .unwrap_or(Path::new("."))
            .join(OsStr::from_bytes(&m.info.name)),
    };
    let files = source_files(&m, &content);
    let mut bar = ProgressBar::new(format!("verify {}", content.display()), args.quiet);
    let report = piece_hasher::verify_files(
        &files,
        m.info.piece_length,
        &m.info.pieces,
        &HashOptions {
            threads: args.threads,
            ..HashOptions::default()
        },
        &mut |p| bar.update(p),
    );
    bar.finish();
    let report = report.map_err(|e| CliError::Failed(e.to_string()))?;
    if !args.quiet {
        print!("{}", describe(&m, &report));
    }
    let summary = summary(&report);
    if report.is_ok() {
        println!("{summary}");
        return Ok(());
    }
    let corrupt = report.count(PieceStatus::Corrupt) > 0
        || report
            .files
            .iter()
            .any(|f| matches!(f.state, FileState::Long { .. }));
    Err(CliError::Mismatch {
        message: summary,
        code: if corrupt {
            EXIT_CORRUPT
        } else {
            EXIT_INCOMPLETE
        },
    })
}

/// Where each file of the torrent is on disk.
pub fn source_files(m: &Metainfo, content: &Path) -> Vec<SourceFile> {
    if m.info.is_single_file {
        return vec![SourceFile {
            path: content.to_path_buf(),
            length: m.info.total_length(),
            padding: false,
        }];
    }
    m.info
        .files
        .iter()
        .map(|f| {
            let mut path = content.to_path_buf();
            for c in &f.path {
                path.push(OsStr::from_bytes(c));
            }
            SourceFile {
                path,
                length: f.length,
                padding: f.is_padding(),
            }
        })
        .collect()
}

/// Per-file problems, then the bad pieces (runs of consecutive pieces with the same status
/// and the same files are merged), at most [`PIECE_LINES_MAX`] lines of them.
pub fn describe(m: &Metainfo, r: &VerifyReport) -> String {
    let mut out = String::new();
    let name = |f: usize| m.info.files[f].display_path();
    for (f, file) in r.files.iter().enumerate() {
        let listed = m.info.files[f].length;
        let state = match &file.state {
            FileState::Ok => None,
            FileState::Missing => Some("missing".to_string()),
            FileState::Short { actual } => Some(format!("short: {actual} of {listed} bytes")),
            FileState::Long { actual } => {
                Some(format!("too long: {actual} bytes, expected {listed}"))
            }
            FileState::Unreadable { reason } => Some(format!("unreadable: {reason}")),
        };
        if let Some(s) = state {
            out.push_str(&format!("{}: {s}\n", name(f)));
        }
        if !file.corrupt_pieces.is_empty() {
            out.push_str(&format!(
                "{}: corrupt: piece{} {}\n",
                name(f),
                if file.corrupt_pieces.len() == 1 {
                    ""
                } else {
                    "s"
                },
                ranges(&file.corrupt_pieces)
            ));
        }
    }
    let layout = PieceLayout::new(m.info.files.iter().map(|f| f.length), m.info.piece_length);
    let layout_files = |p: usize| -> Vec<usize> {
        match &layout {
            Ok(l) => l
                .files_of_piece(p)
                .filter(|&f| m.info.files[f].length > 0)
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    let mut lines = 0usize;
    let mut skipped = 0usize;
    let mut p = 0usize;
    while p < r.pieces.len() {
        let status = r.pieces[p];
        if status == PieceStatus::Good {
            p += 1;
            continue;
        }
        let files = layout_files(p);
        let mut end = p + 1;
        while end < r.pieces.len() && r.pieces[end] == status && layout_files(end) == files {
            end += 1;
        }
        if lines < PIECE_LINES_MAX {
            let what = match status {
                PieceStatus::Corrupt => "corrupt",
                _ => "incomplete (missing data)",
            };
            let span = if end - p == 1 {
                format!("piece {p}")
            } else {
                format!("pieces {p}-{}", end - 1)
            };
            let names: Vec<String> = files.iter().map(|&f| name(f)).collect();
            out.push_str(&format!("{span}: {what}; files: {}\n", names.join(", ")));
            lines += 1;
        } else {
            skipped += 1;
        }
        p = end;
    }
    if skipped > 0 {
        out.push_str(&format!("... and {skipped} more runs of bad pieces\n"));
    }
    out
}

/// `piece` / `pieces` by count.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

fn summary(r: &VerifyReport) -> String {
    let total = r.pieces.len();
    let good = r.count(PieceStatus::Good);
    let bad_files = r.files.iter().filter(|f| !f.is_ok()).count();
    if r.is_ok() {
        let files = r.files.len();
        let (pieces_word, files_word) = (plural(total, "piece"), plural(files, "file"));
        return format!("verify: OK, all {total} {pieces_word} and {files} {files_word} match");
    }
    format!(
        "verify: FAILED, {good} of {total} pieces OK, {} corrupt, {} incomplete; {bad_files} of {} files have problems",
        r.count(PieceStatus::Corrupt),
        r.count(PieceStatus::Incomplete),
        r.files.len()
    )
}

/// `1, 3-5, 9`.
fn ranges(v: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}
