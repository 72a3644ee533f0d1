//! A watched directory of `.torrent` files (BitTornado's `parsedir.py`, used by btlaunchmany, seeds-behaviour §4.11
//! with the scan rules of §3.8): each [`TorrentDir::rescan`] lists the directory semi-recursively and returns what
//! changed since the last one, in the order to act on it (every drop before any add, so a changed file is dropped
//! and then re-added).
//!
//! The walk is the one bttrack's `allowed_dir` scan uses ([`cyclone_metainfo::torrent_dir::torrent_files`], bounded
//! by its `MAX_DIR_FILES`, which bounds the map of watched files too): a directory's subdirectories are scanned only
//! if it holds no `*.torrent`. Files are tracked by (mtime, size): a broken file or a duplicate is reported once and
//! then ignored until it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cyclone_metainfo::Metainfo;

/// What changed in the directory.
#[derive(Debug)]
pub enum DirEvent {
    /// A new (or changed) valid torrent.
    Added {
        path: PathBuf,
        metainfo: Box<Metainfo>,
    },
    /// A running torrent's file went away or changed.
    Dropped { path: PathBuf, info_hash: [u8; 20] },
    /// A new or changed file that is not a valid torrent (ignored until it changes again).
    Broken { path: PathBuf },
    /// A new or changed file whose info-hash is already running from `original` (ignored until it changes).
    Duplicate { path: PathBuf, original: PathBuf },
}

/// (mtime, size) of a file: a change of either means the file changed.
type Stamp = (SystemTime, u64);

#[derive(Debug)]
struct Watched {
    stamp: Stamp,
    /// The torrent started from this file; `None` for a broken file or a duplicate.
    info_hash: Option<[u8; 20]>,
}

/// The files seen by the last scan.
#[derive(Debug, Default)]
pub struct TorrentDir {
    files: HashMap<PathBuf, Watched>,
}

impl TorrentDir {
    /// Scans `dir` and returns the changes since the previous scan (everything, on the first).
    pub fn rescan(&mut self, dir: &Path) -> Vec<DirEvent> {
        let found: Vec<(PathBuf, Stamp)> = cyclone_metainfo::torrent_dir::torrent_files(dir)
            .into_iter()
            .map(|f| (f.path, (f.modified, f.size)))
            .collect();
        let now: HashMap<&PathBuf, Stamp> = found.iter().map(|(p, s)| (p, *s)).collect();
        let mut events = Vec::new();
        // Drops first: files gone or changed.
        let mut gone: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(p, w)| now.get(p) != Some(&w.stamp))
            .map(|(p, _)| p.clone())
            .collect();
        gone.sort();
        for path in gone {
            if let Some(Watched {
                info_hash: Some(info_hash),
                ..
            }) = self.files.remove(&path)
            {
                events.push(DirEvent::Dropped { path, info_hash });
            }
        }
        let mut running: HashMap<[u8; 20], PathBuf> = self
            .files
            .iter()
            .filter_map(|(p, w)| w.info_hash.map(|h| (h, p.clone())))
            .collect();
        for (path, stamp) in found {
            if self.files.contains_key(&path) {
                continue; // unchanged
            }
            let parsed = crate::torrent_file::read(&path).ok();
            let info_hash = match parsed {
                None => {
                    events.push(DirEvent::Broken { path: path.clone() });
                    None
                }
                Some(m) => {
                    let hash = *m.info_hash.as_bytes();
                    if let Some(original) = running.get(&hash) {
                        events.push(DirEvent::Duplicate {
                            path: path.clone(),
                            original: original.clone(),
                        });
                        None
                    } else {
                        running.insert(hash, path.clone());
                        events.push(DirEvent::Added {
                            path: path.clone(),
                            metainfo: Box::new(m),
                        });
                        Some(hash)
                    }
                }
            };
            self.files.insert(path, Watched { stamp, info_hash });
        }
        events
    }

    /// Forgets a running torrent's file until it changes (its torrent died: BitTornado keeps it out until then).
    pub fn block(&mut self, path: &Path) {
        if let Some(w) = self.files.get_mut(path) {
            w.info_hash = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid single-file torrent for `name` (one 16 KiB piece).
    fn torrent(name: &str) -> Vec<u8> {
        let mut b = b"d8:announce19:http://127.0.0.1/an4:infod6:lengthi5e4:name".to_vec();
        b.extend_from_slice(format!("{}:{}", name.len(), name).as_bytes());
        b.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
        b.extend_from_slice(&[7u8; 20]);
        b.extend_from_slice(b"ee");
        b
    }

    fn names(events: &[DirEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                DirEvent::Added { path, .. } => format!("added {}", path.display()),
                DirEvent::Dropped { path, .. } => format!("dropped {}", path.display()),
                DirEvent::Broken { path } => format!("broken {}", path.display()),
                DirEvent::Duplicate { path, original } => {
                    format!("dup {} of {}", path.display(), original.display())
                }
            })
            .collect()
    }

    #[test]
    fn follows_parsedir_rules() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let rel = |s: &str| root.join(s).display().to_string();
        std::fs::write(root.join("a.torrent"), torrent("a")).unwrap();
        std::fs::write(root.join("b.torrent"), torrent("a")).unwrap(); // same info-hash
        std::fs::write(root.join("c.torrent"), b"not bencode").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        // Not scanned: the top directory holds torrents.
        std::fs::write(root.join("sub/d.torrent"), torrent("d")).unwrap();
        let mut w = TorrentDir::default();
        assert_eq!(
            names(&w.rescan(root)),
            vec![
                format!("added {}", rel("a.torrent")),
                format!("dup {} of {}", rel("b.torrent"), rel("a.torrent")),
                format!("broken {}", rel("c.torrent")),
            ]
        );
        // Nothing changed: nothing reported, the broken file and the duplicate stay quiet.
        assert!(w.rescan(root).is_empty());
        // A change (size) drops and re-adds; a removal drops.
        std::fs::write(root.join("a.torrent"), torrent("a2")).unwrap();
        assert_eq!(
            names(&w.rescan(root)),
            vec![
                format!("dropped {}", rel("a.torrent")),
                format!("added {}", rel("a.torrent")),
            ]
        );
        std::fs::remove_file(root.join("a.torrent")).unwrap();
        std::fs::remove_file(root.join("b.torrent")).unwrap();
        std::fs::remove_file(root.join("c.torrent")).unwrap();
        // The top directory has no torrent left: its subdirectories are scanned now.
        assert_eq!(
            names(&w.rescan(root)),
            vec![
                format!("dropped {}", rel("a.torrent")),
                format!("added {}", rel("sub/d.torrent")),
            ]
        );
    }
}
