//! allowed_list and allowed_dir (bttrack §3.8): which torrents the tracker serves, reloaded when
//! the files change. Scanning and parsing run on a blocking thread; the result is broadcast to
//! every shard through the mesh.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cyclone_metainfo::Metainfo;
use cyclone_shard::mesh::Router;

use crate::config::TrackerConfig;
use crate::dfile::{AllowedDirState, AllowedEntry};
use crate::request::InfoHash;
use crate::server::{ShardReq, ShardResp};
use crate::swarm::AllowedSet;
use crate::TrackerError;

/// Most .torrent files considered in allowed_dir (bounds a scan).
pub use cyclone_metainfo::torrent_dir::MAX_DIR_FILES;
/// Largest .torrent read from allowed_dir.
pub const MAX_TORRENT_BYTES: u64 = 64 << 20;

/// Parses an allowed_list file: 40-hex-character lines. A bad line is reported and skipped (not,
/// as in bttrack 0.3.18, replaced by the previous line's hash).
pub fn parse_list(text: &str, source: &Path) -> AllowedSet {
    let mut set = AllowedSet::default();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        match cyclone_metainfo::InfoHash::from_hex(l) {
            Ok(h) => {
                set.hashes.insert(h.0);
            }
            Err(_) => eprintln!(
                "*** WARNING *** could not parse line in torrent list {}: {l}",
                source.display()
            ),
        }
    }
    set
}

/// What the tracker keeps of an allowed .torrent.
#[derive(Debug, Clone)]
struct ParsedTorrent {
    info_hash: InfoHash,
    name: String,
    size: u64,
    /// Top-level `failure reason` and `warning message` (for allowed_controls).
    controls: (Option<String>, Option<String>),
    /// Whether it has an `announce-list` (for multitracker_allowed=autodetect).
    multitracker: bool,
    /// The `announce-list` URLs, flattened, deduplicated, bounded (for multitracker polling).
    announce_urls: Vec<String>,
    /// For the dfile's `allowed` entry: number of files and the announce-list as found.
    numfiles: u64,
    announce_tiers: Option<Vec<Vec<String>>>,
}

impl ParsedTorrent {
    /// Back from a dfile `allowed` entry (no .torrent read).
    fn from_entry(ih: InfoHash, e: &AllowedEntry) -> ParsedTorrent {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let tiers: Option<Vec<Vec<String>>> = e.announce_list.as_ref().map(|t| {
            t.iter()
                .map(|tier| tier.iter().map(|u| s(u)).collect())
                .collect()
        });
        ParsedTorrent {
            info_hash: ih,
            name: s(&e.name),
            size: e.length,
            controls: (
                e.failure_reason.as_deref().map(s),
                e.warning_message.as_deref().map(s),
            ),
            multitracker: tiers.as_ref().is_some_and(|t| !t.is_empty()),
            announce_urls: tiers.as_deref().map(announce_urls).unwrap_or_default(),
            numfiles: e.numfiles,
            announce_tiers: tiers,
        }
    }

    fn to_entry(&self, path: &Path) -> AllowedEntry {
        AllowedEntry {
            path: path.as_os_str().as_bytes().to_vec(),
            file: path
                .file_name()
                .map(|f| f.as_bytes().to_vec())
                .unwrap_or_default(),
            name: self.name.as_bytes().to_vec(),
            length: self.size,
            numfiles: self.numfiles,
            failure_reason: self.controls.0.as_ref().map(|x| x.as_bytes().to_vec()),
            warning_message: self.controls.1.as_ref().map(|x| x.as_bytes().to_vec()),
            announce_list: self.announce_tiers.as_ref().map(|t| {
                t.iter()
                    .map(|tier| tier.iter().map(|u| u.as_bytes().to_vec()).collect())
                    .collect()
            }),
        }
    }
}

/// Most announce-list URLs kept per torrent, and the longest URL kept (multitracker polling).
pub const MAX_ANNOUNCE_URLS: usize = 64;
pub const MAX_ANNOUNCE_URL_LEN: usize = 1024;

fn announce_urls(tiers: &[Vec<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for url in tiers.iter().flatten() {
        let url = url.trim();
        if url.is_empty() || url.len() > MAX_ANNOUNCE_URL_LEN || out.iter().any(|u| u == url) {
            continue;
        }
        if out.len() == MAX_ANNOUNCE_URLS {
            break;
        }
        out.push(url.to_string());
    }
    out
}

fn parse_torrent(bytes: &[u8]) -> Option<ParsedTorrent> {
    let m = Metainfo::from_bytes(bytes).ok()?;
    let text = |key: &[u8]| {
        m.raw_top_level.get(key).and_then(|raw| {
            cyclone_metainfo::bencode::decode(raw).ok().and_then(|v| {
                v.as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            })
        })
    };
    Some(ParsedTorrent {
        info_hash: *m.info_hash.as_bytes(),
        name: m.info.display_name(),
        size: m.info.total_length(),
        controls: (text(b"failure reason"), text(b"warning message")),
        multitracker: !m.announce_list.is_empty(),
        announce_urls: announce_urls(&m.announce_list),
        numfiles: m.info.files.len().max(1) as u64,
        announce_tiers: (!m.announce_list.is_empty()).then(|| m.announce_list.clone()),
    })
}

/// One parsed .torrent of allowed_dir, cached by (mtime, size).
#[derive(Debug, Clone)]
struct DirEntry {
    stamp: (SystemTime, u64),
    parsed: Option<ParsedTorrent>,
    /// Loaded from the dfile, which keeps whole seconds (bttrack's format): compare seconds.
    whole_seconds: bool,
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

impl DirEntry {
    fn unchanged(&self, stamp: (SystemTime, u64)) -> bool {
        if self.whole_seconds {
            self.stamp.1 == stamp.1 && unix_secs(self.stamp.0) == unix_secs(stamp.0)
        } else {
            self.stamp == stamp
        }
    }
}

/// The allowed_dir scan cache, kept between rescans (and across restarts through the dfile).
#[derive(Debug, Default, Clone)]
pub struct DirCache {
    entries: HashMap<PathBuf, DirEntry>,
}

impl DirCache {
    /// The cache a dfile's `allowed_dir_files` + `allowed` describe. A record whose hash has no
    /// `allowed` entry is dropped (that file is parsed again).
    pub fn from_dfile(a: &AllowedDirState) -> DirCache {
        let mut entries = HashMap::with_capacity(a.files.len().min(MAX_DIR_FILES));
        for (path, (mtime, size, ih)) in a.files.iter().take(MAX_DIR_FILES) {
            let parsed = match ih {
                None => None,
                Some(h) => match a.allowed.get(h) {
                    Some(e) => Some(ParsedTorrent::from_entry(*h, e)),
                    None => continue,
                },
            };
            let t = if *mtime >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(*mtime as u64)
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_secs(mtime.unsigned_abs())
            };
            entries.insert(
                PathBuf::from(std::ffi::OsString::from_vec(path.clone())),
                DirEntry {
                    stamp: (t, *size),
                    parsed,
                    whole_seconds: true,
                },
            );
        }
        DirCache { entries }
    }

    /// What the dfile keeps: every scanned file with its hash (0 if it did not parse), and the
    /// served torrents. Duplicates are left out (bttrack does not persist blocked files).
    pub fn to_dfile(&self) -> AllowedDirState {
        let mut out = AllowedDirState::default();
        let mut paths: Vec<&PathBuf> = self.entries.keys().collect();
        paths.sort();
        for p in paths {
            let e = &self.entries[p];
            let key = p.as_os_str().as_bytes().to_vec();
            let stamp = (unix_secs(e.stamp.0), e.stamp.1);
            match &e.parsed {
                None => {
                    out.files.insert(key, (stamp.0, stamp.1, None));
                }
                Some(t) if !out.allowed.contains_key(&t.info_hash) => {
                    out.files.insert(key, (stamp.0, stamp.1, Some(t.info_hash)));
                    out.allowed.insert(t.info_hash, t.to_entry(p));
                }
                Some(_) => {}
            }
        }
        out
    }
}

/// Rescans allowed_dir; returns the new set if anything changed (or on the first scan).
pub fn scan_dir(dir: &Path, cache: &mut DirCache, first: bool) -> Option<AllowedSet> {
    let files: Vec<(PathBuf, (SystemTime, u64))> =
        cyclone_metainfo::torrent_dir::torrent_files(dir)
            .into_iter()
            .map(|f| (f.path, (f.modified, f.size)))
            .collect();
    let mut changed = first || files.len() != cache.entries.len();
    let mut next = HashMap::with_capacity(files.len());
    for (path, stamp) in files {
        let entry = match cache.entries.get(&path) {
            Some(e) if e.unchanged(stamp) => e.clone(),
            _ => {
                changed = true;
                let parsed = if stamp.1 > MAX_TORRENT_BYTES {
                    None
                } else {
                    std::fs::read(&path).ok().and_then(|b| parse_torrent(&b))
                };
                DirEntry {
                    stamp,
                    parsed,
                    whole_seconds: false,
                }
            }
        };
        next.insert(path, entry);
    }
    cache.entries = next;
    if !changed {
        return None;
    }
    let mut set = AllowedSet::default();
    let mut paths: Vec<&PathBuf> = cache.entries.keys().collect();
    paths.sort();
    let mut first_seen: HashMap<InfoHash, &PathBuf> = HashMap::new();
    for p in paths {
        match &cache.entries[p].parsed {
            None => eprintln!("**warning** {} has errors", p.display()),
            Some(t) => {
                let ih = t.info_hash;
                if let Some(p0) = first_seen.get(&ih) {
                    eprintln!(
                        "**warning** {} is a duplicate torrent for {}",
                        p.display(),
                        p0.display()
                    );
                    continue;
                }
                first_seen.insert(ih, p);
                set.hashes.insert(ih);
                set.names.insert(ih, t.name.clone());
                set.sizes.insert(ih, t.size);
                if t.multitracker {
                    set.multitracker.insert(ih);
                    if !t.announce_urls.is_empty() {
                        set.announce_lists.insert(ih, t.announce_urls.clone());
                    }
                }
                if t.controls.0.is_some() || t.controls.1.is_some() {
                    set.controls.insert(ih, t.controls.clone());
                }
                let fname = p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                set.files.insert(ih, (p.clone(), fname));
            }
        }
    }
    Some(set)
}

/// What the dfile keeps of the allowed set (bttrack's `allowed`, `allowed_dir_files`,
/// `allowed_list` keys), updated after each load and written with every save.
#[derive(Debug, Default, Clone)]
pub struct Persisted {
    pub dir: Option<AllowedDirState>,
    pub list: Option<BTreeSet<InfoHash>>,
}

/// The allowed set at start-up (blocking; runs before the executors), and the allowed_dir scan
/// cache for the reload loop. `from_dfile` is what the dfile held: allowed_dir files unchanged
/// since (same whole-second mtime and size) are not parsed again; the dfile's `allowed_list` is
/// used when the list file cannot be read.
pub fn initial(
    config: &TrackerConfig,
    from_dfile: &Persisted,
) -> Result<(Option<Arc<AllowedSet>>, DirCache, Persisted), TrackerError> {
    if let Some(list) = &config.allowed_list {
        if config.allowed_dir.is_some() {
            eprintln!("**warning** allowed_dir and allowed_list options both specified");
            eprintln!("**warning** disregarding allowed_dir");
        }
        let set = match (std::fs::read_to_string(list), &from_dfile.list) {
            (Ok(text), _) => parse_list(&text, list),
            (Err(e), Some(saved)) => {
                eprintln!(
                    "**warning** cannot read allowed_list {} ({e}); using the {} hashes saved in the dfile",
                    list.display(),
                    saved.len()
                );
                AllowedSet {
                    hashes: saved.iter().copied().collect(),
                    ..AllowedSet::default()
                }
            }
            (Err(e), None) => {
                return Err(TrackerError::io(
                    format!("reading allowed_list {}", list.display()),
                    e,
                ))
            }
        };
        let persisted = Persisted {
            dir: None,
            list: Some(set.hashes.iter().copied().collect()),
        };
        return Ok((Some(Arc::new(set)), DirCache::default(), persisted));
    }
    if let Some(dir) = &config.allowed_dir {
        let mut cache = from_dfile
            .dir
            .as_ref()
            .map(DirCache::from_dfile)
            .unwrap_or_default();
        let set = scan_dir(dir, &mut cache, true).map(Arc::new);
        let persisted = Persisted {
            dir: Some(cache.to_dfile()),
            list: None,
        };
        return Ok((set, cache, persisted));
    }
    Ok((None, DirCache::default(), Persisted::default()))
}

/// Every `parse_dir_interval`, reloads allowed_list (if its mtime changed) or rescans allowed_dir,
/// and sends a changed set to every shard.
/// `cache` is the start-up scan's; `persisted` receives what the dfile should keep after each
/// change.
pub async fn reload_loop(
    router: Rc<Router<ShardReq, ShardResp>>,
    config: TrackerConfig,
    mut cache: DirCache,
    persisted: Arc<std::sync::Mutex<Persisted>>,
) {
    if config.allowed_list.is_none() && config.allowed_dir.is_none() {
        return;
    }
    let mut list_mtime = config
        .allowed_list
        .as_ref()
        .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    loop {
        glommio::timer::sleep(Duration::from_secs(config.parse_dir_interval)).await;
        let cfg = config.clone();
        let prev = list_mtime;
        let (set, mtime, c) = glommio::executor()
            .spawn_blocking(move || {
                if let Some(list) = &cfg.allowed_list {
                    let m = std::fs::metadata(list).and_then(|m| m.modified()).ok();
                    if m == prev {
                        return (None, m, cache);
                    }
                    let set = std::fs::read_to_string(list)
                        .ok()
                        .map(|t| parse_list(&t, list));
                    (set, m, cache)
                } else {
                    let dir = cfg.allowed_dir.clone().expect("checked above");
                    let set = scan_dir(&dir, &mut cache, false);
                    (set, prev, cache)
                }
            })
            .await;
        cache = c;
        list_mtime = mtime;
        if let Some(set) = set {
            {
                let mut p = persisted.lock().unwrap_or_else(|e| e.into_inner());
                if config.allowed_list.is_some() {
                    p.list = Some(set.hashes.iter().copied().collect());
                } else {
                    p.dir = Some(cache.to_dfile());
                }
            }
            let set = Arc::new(set);
            for s in 0..router.shards() {
                let _ = router
                    .call(s, ShardReq::SetAllowed(Some(set.clone())))
                    .await;
            }
        }
    }
}

/// Every `parse_dir_interval`, reloads allowed_ips / banned_ips if either file's mtime changed,
/// and sends the new filter to every shard.
pub async fn ip_lists_loop(router: Rc<Router<ShardReq, ShardResp>>, config: TrackerConfig) {
    if config.allowed_ips.is_none() && config.banned_ips.is_none() {
        return;
    }
    let stamp = |c: &TrackerConfig| {
        let m = |p: &Option<PathBuf>| {
            p.as_ref()
                .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        };
        (m(&c.allowed_ips), m(&c.banned_ips))
    };
    let mut last = stamp(&config);
    loop {
        glommio::timer::sleep(Duration::from_secs(config.parse_dir_interval)).await;
        let cfg = config.clone();
        let (now, filter) = glommio::executor()
            .spawn_blocking(move || {
                let now = stamp(&cfg);
                (
                    now,
                    crate::ip_filter::load(cfg.allowed_ips.as_deref(), cfg.banned_ips.as_deref()),
                )
            })
            .await;
        if now == last {
            continue;
        }
        last = now;
        let filter = filter.map(Arc::new);
        for s in 0..router.shards() {
            let _ = router.call(s, ShardReq::SetIpFilter(filter.clone())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_skips_bad_lines() {
        let s = parse_list(
            &format!("{}\nnot-a-hash\n{}\n", "ab".repeat(20), "0F".repeat(20)),
            Path::new("x"),
        );
        assert_eq!(s.hashes.len(), 2);
        assert!(s.hashes.contains(&[0xab; 20]));
        assert!(s.hashes.contains(&[0x0f; 20]));
    }
}
