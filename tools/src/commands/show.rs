//! `cyclone show` and `btshowmetainfo`: describe torrent files.
//!
//! The text format is BitTornado's `btshowmetainfo` line for line (the same labels, order and number formats), so
//! scripts that scrape it keep working. `cyclone show` adds the lines BitTornado never printed (web seeds, private,
//! source, creator, date, piece count) after BitTornado's block; `btshowmetainfo` prints exactly BitTornado's block.
//! `--json` prints one JSON object per torrent, one per line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cyclone_metainfo::{Magnet, Metainfo};
use serde_json::json;

use crate::error::CliError;
use crate::torrent_file;

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Torrent files (`-` reads standard input).
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// One JSON object per torrent (JSON Lines), for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Which text layout to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Exactly BitTornado's block.
    BitTornado,
    /// BitTornado's block plus the modern fields.
    Extended,
}

pub fn run(args: &ShowArgs) -> Result<(), CliError> {
    show_all(
        &args.torrents,
        if args.json {
            None
        } else {
            Some(Style::Extended)
        },
        "cyclone show",
    )
}

/// Shows each torrent (`style` `None` = JSON). Unreadable torrents are reported on stderr and the others still shown.
pub fn show_all(paths: &[PathBuf], style: Option<Style>, program: &str) -> Result<(), CliError> {
    let mut failures = 0usize;
    let paths_len = paths.len();
    for path in paths {
        match torrent_file::read(path) {
            Ok(m) => match style {
                Some(style) => print!("{}", text_block(&m, path, style)),
                None => println!("{}", json_object(&m, path)),
            },
            Err(e) if paths_len == 1 => return Err(e),
            Err(e) => {
                eprintln!("{program}: {e}");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(CliError::Failed(format!(
            "{failures} of {} torrents could not be read",
            paths.len()
        )));
    }
    Ok(())
}

fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The text description of one torrent.
pub fn text_block(m: &Metainfo, path: &Path, style: Style) -> String {
    let info = &m.info;
    let mut out = String::new();
    // `writeln!` into a String cannot fail.
    let _ = writeln!(out, "metainfo file.: {}", base_name(path));
    let _ = writeln!(out, "info hash.....: {}", m.info_hash);
    let size_label = if info.is_single_file {
        let _ = writeln!(out, "file name.....: {}", info.display_name());
        "file size.....:"
    } else {
        let _ = writeln!(out, "directory name: {}", info.display_name());
        let _ = writeln!(out, "files.........: ");
        for f in &info.files {
            let _ = writeln!(out, "   {} ({})", f.display_path(), f.length);
        }
        "archive size..:"
    };
    let total = info.total_length();
    let _ = writeln!(
        out,
        "{size_label} {total} ({} * {} + {})",
        total / info.piece_length,
        info.piece_length,
        total % info.piece_length
    );
    match &m.announce {
        Some(url) => {
            let _ = writeln!(out, "announce url..: {url}");
        }
        None => {
            let _ = writeln!(out, "announce url..: ***WARNING*** - no announce key");
        }
    }
    if !m.announce_list.is_empty() {
        let tiers: Vec<String> = m.announce_list.iter().map(|t| t.join(",")).collect();
        let _ = writeln!(out, "announce-list.: {}", tiers.join("|"));
    }
    if !m.httpseeds.is_empty() {
        let _ = writeln!(out, "http seeds....: {}", m.httpseeds.join("|"));
    }
    if let Some(comment) = &m.comment {
        let _ = writeln!(out, "comment.......: {comment}");
    }
    if style == Style::Extended {
        if !m.url_list.is_empty() {
            let _ = writeln!(out, "web seeds.....: {}", m.url_list.join("|"));
        }
        let _ = writeln!(
            out,
            "private.......: {}",
            if info.is_private() { "yes" } else { "no" }
        );
        if let Some(source) = &info.source {
            let _ = writeln!(out, "source........: {}", String::from_utf8_lossy(source));
        }
        if let Some(by) = &m.created_by {
            let _ = writeln!(out, "created by....: {by}");
        }
        if let Some(date) = m.creation_date {
            let _ = writeln!(out, "creation date.: {date} ({})", format_unix_utc(date));
        }
        let _ = writeln!(out, "pieces........: {}", info.piece_count());
    }
    out
}

/// The JSON description of one torrent.
pub fn json_object(m: &Metainfo, path: &Path) -> serde_json::Value {
    let info = &m.info;
    let files: Vec<serde_json::Value> = info
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.display_path(),
                "length": f.length,
                "padding": f.is_padding(),
            })
        })
        .collect();
    json!({
        "metainfo_file": path.display().to_string(),
        "info_hash": m.info_hash.to_string(),
        "name": info.display_name(),
        "single_file": info.is_single_file,
        "files": files,
        "total_length": info.total_length(),
        "piece_length": info.piece_length,
        "piece_count": info.piece_count(),
        "private": info.is_private(),
        "source": info.source.as_ref().map(|s| String::from_utf8_lossy(s).into_owned()),
        "announce": m.announce,
        "announce_list": m.announce_list,
        "httpseeds": m.httpseeds,
        "url_list": m.url_list,
        "comment": m.comment,
        "created_by": m.created_by,
        "creation_date": m.creation_date,
        "encoding": m.encoding,
        "magnet": Magnet::from_metainfo(m).to_string(),
    })
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix timestamp, without a date library (civil-from-days, proleptic Gregorian).
fn format_unix_utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_unix_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_unix_utc(-1), "1969-12-31 23:59:59 UTC");
    }
}
