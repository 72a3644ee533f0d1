//! BitTornado's `parsedir` walk: the `*.torrent` files of a directory, semi-recursively. Shared by the tracker's
//! `allowed_dir` and `cyclone launchmany`, which both follow it (seeds-behaviour §3.8, §4.11).
//!
//! Rule: a directory's subdirectories are scanned only if the directory itself holds no `*.torrent` file (so a
//! directory of torrents can sit next to the downloads' directories without them being walked). Symbolic links are
//! followed (operators link torrents into watched directories); depth and count are bounded.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Most `.torrent` files one scan returns.
pub const MAX_DIR_FILES: usize = 100_000;
/// Deepest subdirectory level a scan enters.
pub const MAX_DEPTH: usize = 32;

/// A `.torrent` file found by [`torrent_files`], with what tells a changed file: modification time and size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FoundTorrent {
    pub path: PathBuf,
    pub modified: SystemTime,
    pub size: u64,
}

/// The `.torrent` files under `dir` by BitTornado's semi-recursive rule, sorted by path. Unreadable entries are
/// skipped (a scan reports what it can see; a missing `dir` gives nothing).
pub fn torrent_files(dir: &Path) -> Vec<FoundTorrent> {
    let mut out = Vec::new();
    walk(dir, &mut out, 0);
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<FoundTorrent>, depth: usize) {
    if depth > MAX_DEPTH || out.len() >= MAX_DIR_FILES {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs = Vec::new();
    let mut found = false;
    for e in entries.flatten() {
        let path = e.path();
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if md.is_dir() {
            subdirs.push(path);
        } else if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("torrent"))
            && out.len() < MAX_DIR_FILES
        {
            found = true;
            out.push(FoundTorrent {
                path,
                modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                size: md.len(),
            });
        }
    }
    if !found {
        subdirs.sort();
        for s in subdirs {
            walk(&s, out, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdirectories_are_walked_only_where_no_torrent_is() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("a/deeper")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("a/x.torrent"), b"1").unwrap();
        std::fs::write(root.join("a/deeper/hidden.torrent"), b"22").unwrap();
        std::fs::write(root.join("b/y.TORRENT"), b"333").unwrap();
        std::fs::write(root.join("b/notes.txt"), b"").unwrap();
        let names: Vec<String> = torrent_files(root)
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().display().to_string())
            .collect();
        // The root has no torrent: both subdirectories are walked; `a` has one, so `a/deeper` is not.
        assert_eq!(names, ["a/x.torrent", "b/y.TORRENT"]);
        assert_eq!(torrent_files(root)[1].size, 3);
        // A torrent at the top stops the walk there.
        std::fs::write(root.join("top.torrent"), b"").unwrap();
        assert_eq!(torrent_files(root).len(), 1);
        assert!(torrent_files(&root.join("missing")).is_empty());
    }
}
