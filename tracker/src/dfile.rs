//! The dfile: bttrack's persistent state (`reference/seeds-behaviour.md` §2).
//!
//! Format: one bencoded dict `{'completed': {ih: n}, 'peers': {ih: {peer_id: peerinfo}}}`, peerinfo
//! being `{ip, port, left, supportcrypto, requirecrypto[, key][, 'given ip'][, nat]}`, plus in
//! restricted modes bttrack's `allowed` (`{ih: parsedir entry}`) and `allowed_dir_files`
//! (`{path: [[mtime, size], ih or 0]}`) with allowed_dir, or `allowed_list` (`{ih: 1}`) with
//! allowed_list. Those are read back: unchanged allowed_dir files are not re-parsed at start, and
//! the allowed_list is the fallback when its file cannot be read. Their entries are read
//! leniently (a malformed one is skipped: at worst the file is parsed again), so dfiles from before
//! they were written, or from bttrack, load.
//!
//! Reading is lenient where the intended behaviour needs it: the PHP tracker's dialect (no crypto
//! keys: read as 0) and the old flat format (no `peers` key: the whole dict is the peers map) load.
//! A file that is not a dfile is never overwritten: [`load`] renames it to `<dfile>.corrupt-<time>`
//! and reports it. Writing is atomic: temp file in the same directory, fsync, rename, fsync of the
//! directory, so a crash (even SIGKILL) mid-save leaves the old or the new file, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cyclone_metainfo::bencode::{self, write_bytes, write_int, DecodeOptions, Value};

use crate::client_ip::normalize;
use crate::request::{InfoHash, PeerId};
use crate::swarm::Peer;
use crate::TrackerError;

/// What a dfile holds, grouped by torrent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DfileState {
    pub peers: BTreeMap<InfoHash, Vec<Peer>>,
    pub completed: BTreeMap<InfoHash, u64>,
    /// Peers skipped at load because their `ip` was not an IP address (hostnames in old files).
    pub skipped_peers: usize,
    /// `allowed` + `allowed_dir_files` (allowed_dir mode).
    pub allowed_dir: Option<AllowedDirState>,
    /// `allowed_list` (allowed_list mode).
    pub allowed_list: Option<BTreeSet<InfoHash>>,
}

/// One allowed .torrent as bttrack's `allowed` entry records it (parsedir's fields; `type` is
/// always `torrent`). Bytes, not strings, so what is read is written back unchanged.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AllowedEntry {
    pub path: Vec<u8>,
    pub file: Vec<u8>,
    pub name: Vec<u8>,
    pub length: u64,
    pub numfiles: u64,
    pub failure_reason: Option<Vec<u8>>,
    pub warning_message: Option<Vec<u8>>,
    pub announce_list: Option<Vec<Vec<Vec<u8>>>>,
}

/// allowed_dir's scan state as the dfile keeps it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AllowedDirState {
    /// `allowed`: the torrents served.
    pub allowed: BTreeMap<InfoHash, AllowedEntry>,
    /// `allowed_dir_files`: path → (mtime in whole seconds, size, info-hash, or `None` for a file
    /// that did not parse).
    pub files: BTreeMap<Vec<u8>, (i64, u64, Option<InfoHash>)>,
}

fn write_allowed_dir(out: &mut Vec<u8>, a: &AllowedDirState) {
    write_bytes(out, b"allowed");
    out.push(b'd');
    for (ih, e) in &a.allowed {
        write_bytes(out, ih);
        out.push(b'd');
        if let Some(tiers) = &e.announce_list {
            write_bytes(out, b"announce-list");
            out.push(b'l');
            for tier in tiers {
                out.push(b'l');
                for u in tier {
                    write_bytes(out, u);
                }
                out.push(b'e');
            }
            out.push(b'e');
        }
        if let Some(f) = &e.failure_reason {
            write_bytes(out, b"failure reason");
            write_bytes(out, f);
        }
        write_bytes(out, b"file");
        write_bytes(out, &e.file);
        write_bytes(out, b"length");
        write_int(out, e.length.min(i64::MAX as u64) as i64);
        write_bytes(out, b"name");
        write_bytes(out, &e.name);
        write_bytes(out, b"numfiles");
        write_int(out, e.numfiles.min(i64::MAX as u64) as i64);
        write_bytes(out, b"path");
        write_bytes(out, &e.path);
        write_bytes(out, b"type");
        write_bytes(out, b"torrent");
        if let Some(w) = &e.warning_message {
            write_bytes(out, b"warning message");
            write_bytes(out, w);
        }
        out.push(b'e');
    }
    out.push(b'e');
    write_bytes(out, b"allowed_dir_files");
    out.push(b'd');
    for (path, (mtime, size, ih)) in &a.files {
        write_bytes(out, path);
        out.extend_from_slice(b"ll");
        write_int(out, *mtime);
        write_int(out, (*size).min(i64::MAX as u64) as i64);
        out.push(b'e');
        match ih {
            Some(h) => write_bytes(out, h),
            None => write_int(out, 0),
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn read_allowed_entry(v: &Value<'_>) -> Option<AllowedEntry> {
    let bytes = |k: &[u8]| v.get(k).and_then(|x| x.as_bytes()).map(<[u8]>::to_vec);
    let uint = |k: &[u8]| {
        v.get(k)
            .and_then(|x| x.as_int())
            .and_then(|i| u64::try_from(i).ok())
    };
    let announce_list = match v.get(b"announce-list") {
        None => None,
        Some(l) => {
            let mut tiers = Vec::new();
            for t in l.as_list()? {
                let mut tier = Vec::new();
                for u in t.as_list()? {
                    tier.push(u.as_bytes()?.to_vec());
                }
                tiers.push(tier);
            }
            Some(tiers)
        }
    };
    let opt_bytes = |k: &[u8]| match v.get(k) {
        None => Some(None),
        Some(x) => x.as_bytes().map(|b| Some(b.to_vec())),
    };
    Some(AllowedEntry {
        path: bytes(b"path")?,
        file: bytes(b"file")?,
        name: bytes(b"name")?,
        length: uint(b"length")?,
        numfiles: uint(b"numfiles")?,
        failure_reason: opt_bytes(b"failure reason")?,
        warning_message: opt_bytes(b"warning message")?,
        announce_list,
    })
}

fn read_file_record(v: &Value<'_>) -> Option<(i64, u64, Option<InfoHash>)> {
    let l = v.as_list()?;
    let [stamp, ih] = l else { return None };
    let [mtime, size] = stamp.as_list()? else {
        return None;
    };
    let ih = match (ih.as_bytes(), ih.as_int()) {
        (Some(b), _) => Some(<[u8; 20]>::try_from(b).ok()?),
        (_, Some(0)) => None,
        _ => return None,
    };
    Some((mtime.as_int()?, u64::try_from(size.as_int()?).ok()?, ih))
}

/// Reads `allowed`, `allowed_dir_files` and `allowed_list`, skipping malformed entries.
fn read_allowed_keys(top: &Value<'_>, state: &mut DfileState) {
    let files = top.get(b"allowed_dir_files").and_then(|v| v.as_dict());
    if let Some(files) = files {
        let mut a = AllowedDirState::default();
        for (path, rec) in files {
            if let Some(r) = read_file_record(rec) {
                a.files.insert(path.to_vec(), r);
            }
        }
        if let Some(allowed) = top.get(b"allowed").and_then(|v| v.as_dict()) {
            for (ih, e) in allowed {
                if let (Ok(ih), Some(e)) = (<[u8; 20]>::try_from(*ih), read_allowed_entry(e)) {
                    a.allowed.insert(ih, e);
                }
            }
        }
        state.allowed_dir = Some(a);
    }
    if let Some(list) = top.get(b"allowed_list").and_then(|v| v.as_dict()) {
        state.allowed_list = Some(
            list.iter()
                .filter_map(|(ih, _)| <[u8; 20]>::try_from(*ih).ok())
                .collect(),
        );
    }
}

/// Why a dfile was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CorruptDfile(pub String);

fn corrupt(m: impl Into<String>) -> CorruptDfile {
    CorruptDfile(m.into())
}

/// Encodes a state in bttrack's format (canonical bencode, keys sorted).
pub fn encode(state: &DfileState) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(64 + state.peers.values().map(|v| v.len() * 120).sum::<usize>());
    out.push(b'd');
    if let Some(a) = &state.allowed_dir {
        write_allowed_dir(&mut out, a);
    }
    if let Some(list) = &state.allowed_list {
        write_bytes(&mut out, b"allowed_list");
        out.push(b'd');
        for ih in list {
            write_bytes(&mut out, ih);
            write_int(&mut out, 1);
        }
        out.push(b'e');
    }
    write_bytes(&mut out, b"completed");
    out.push(b'd');
    for (ih, n) in &state.completed {
        write_bytes(&mut out, ih);
        write_int(&mut out, (*n).min(i64::MAX as u64) as i64);
    }
    out.push(b'e');
    write_bytes(&mut out, b"peers");
    out.push(b'd');
    for (ih, peers) in &state.peers {
        write_bytes(&mut out, ih);
        out.push(b'd');
        let mut sorted: Vec<&Peer> = peers.iter().collect();
        sorted.sort_by_key(|p| p.id);
        sorted.dedup_by(|a, b| a.id == b.id);
        for p in sorted {
            write_bytes(&mut out, &p.id);
            out.push(b'd');
            if let Some(g) = &p.given_ip {
                write_bytes(&mut out, b"given ip");
                write_bytes(&mut out, g.as_bytes());
            }
            write_bytes(&mut out, b"ip");
            write_bytes(&mut out, p.ip.to_string().as_bytes());
            if let Some(k) = &p.key {
                write_bytes(&mut out, b"key");
                write_bytes(&mut out, k);
            }
            write_bytes(&mut out, b"left");
            write_int(&mut out, p.left.min(i64::MAX as u64) as i64);
            if let Some(n) = p.nat {
                write_bytes(&mut out, b"nat");
                write_int(&mut out, i64::from(n));
            }
            write_bytes(&mut out, b"port");
            write_int(&mut out, i64::from(p.port));
            write_bytes(&mut out, b"requirecrypto");
            write_int(&mut out, i64::from(p.requirecrypto));
            write_bytes(&mut out, b"supportcrypto");
            write_int(&mut out, i64::from(p.supportcrypto));
            out.push(b'e');
        }
        out.push(b'e');
    }
    out.push(b'e');
    out.push(b'e');
    out
}

fn hash_key(k: &[u8], what: &str) -> Result<[u8; 20], CorruptDfile> {
    k.try_into()
        .map_err(|_| corrupt(format!("{what} key of {} bytes, expected 20", k.len())))
}

fn int_field(d: &Value<'_>, key: &str, required: bool) -> Result<Option<i64>, CorruptDfile> {
    match d.get(key.as_bytes()) {
        None if required => Err(corrupt(format!("peer without `{key}`"))),
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or_else(|| {
            corrupt(format!(
                "`{key}` is a {}, expected an integer",
                v.type_name()
            ))
        }),
    }
}

fn str_field<'a>(d: &Value<'a>, key: &str) -> Result<Option<&'a [u8]>, CorruptDfile> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v
            .as_bytes()
            .map(Some)
            .ok_or_else(|| corrupt(format!("`{key}` is a {}, expected a string", v.type_name()))),
    }
}

/// Decodes a dfile. `use_given_ip`: list loaded peers under their `given ip` (when overrides are
/// allowed; bttrack 0.3.18 meant to but read the wrong key).
pub fn decode(bytes: &[u8], use_given_ip: bool) -> Result<DfileState, CorruptDfile> {
    let top = bencode::decode_with(bytes, &DecodeOptions::lenient())
        .map_err(|e| corrupt(format!("not bencoded: {e}")))?;
    if top.as_dict().is_none() {
        return Err(corrupt(format!(
            "top level is a {}, expected a dict",
            top.type_name()
        )));
    }
    let peers_v = match top.get(b"peers") {
        Some(p) => p,
        // Old flat format: {infohash: {peerid: info}}.
        None => &top,
    };
    let mut state = DfileState::default();
    let peers = peers_v.as_dict().ok_or_else(|| {
        corrupt(format!(
            "`peers` is a {}, expected a dict",
            peers_v.type_name()
        ))
    })?;
    for (ih, swarm) in peers {
        let ih = hash_key(ih, "info-hash")?;
        let swarm = swarm
            .as_dict()
            .ok_or_else(|| corrupt("a torrent's peers are not a dict"))?;
        let mut list = Vec::with_capacity(swarm.len());
        for (pid, info) in swarm {
            let id: PeerId = hash_key(pid, "peer id")?;
            if info.as_dict().is_none() {
                return Err(corrupt("peer info is not a dict"));
            }
            let ip_s = str_field(info, "ip")?.ok_or_else(|| corrupt("peer without `ip`"))?;
            let port = int_field(info, "port", true)?.unwrap_or(0);
            let left = int_field(info, "left", true)?.unwrap_or(0);
            if !(0..=65535).contains(&port) {
                return Err(corrupt(format!("port {port} out of range")));
            }
            if left < 0 {
                return Err(corrupt(format!("negative left {left}")));
            }
            // The PHP tracker's generateDFile.php omits both: intended behaviour is 0.
            let supportcrypto = int_field(info, "supportcrypto", false)?.unwrap_or(0) != 0;
            let requirecrypto = int_field(info, "requirecrypto", false)?.unwrap_or(0) != 0;
            let key = str_field(info, "key")?.map(|k| k.to_vec());
            let given_ip =
                str_field(info, "given ip")?.map(|g| String::from_utf8_lossy(g).into_owned());
            let nat = match int_field(info, "nat", false)? {
                None => None,
                Some(n) if n < 0 => return Err(corrupt(format!("negative nat {n}"))),
                Some(n) => Some(n.min(i64::from(u32::MAX)) as u32),
            };
            let conn_ip = std::str::from_utf8(ip_s)
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok());
            let given = given_ip.as_deref().and_then(|g| g.parse::<IpAddr>().ok());
            let ip = match (use_given_ip, given, conn_ip) {
                (true, Some(g), _) => normalize(g),
                (_, _, Some(c)) => normalize(c),
                _ => {
                    state.skipped_peers += 1;
                    continue;
                }
            };
            list.push(Peer {
                id,
                ip,
                port: port as u16,
                left: left as u64,
                key,
                given_ip,
                supportcrypto: supportcrypto || requirecrypto,
                requirecrypto,
                nat,
                last_seen: 0,
            });
        }
        state.peers.insert(ih, list);
    }
    if peers_v.raw().as_ptr() != top.raw().as_ptr() {
        if let Some(c) = top.get(b"completed") {
            let c = c.as_dict().ok_or_else(|| {
                corrupt(format!(
                    "`completed` is a {}, expected a dict",
                    c.type_name()
                ))
            })?;
            for (ih, n) in c {
                let ih = hash_key(ih, "completed info-hash")?;
                let n = n
                    .as_int()
                    .ok_or_else(|| corrupt("a completed count is not an integer"))?;
                state.completed.insert(ih, n.max(0) as u64);
            }
        }
        read_allowed_keys(&top, &mut state);
    }
    Ok(state)
}

/// Outcome of [`load`].
#[derive(Debug)]
pub enum Loaded {
    /// No dfile yet: start empty.
    Missing,
    Ok(DfileState),
    /// The file was not a dfile; it was renamed to `set_aside` and the tracker starts empty.
    Corrupt {
        reason: String,
        set_aside: PathBuf,
    },
}

/// Reads `path`. A corrupt file is renamed aside (never silently overwritten). At most the
/// decoder's input limit (plus one byte, to see it is exceeded) is read: a larger file is corrupt
/// anyway, and reading it whole first could exhaust memory.
pub fn load(path: &Path, use_given_ip: bool) -> Result<Loaded, TrackerError> {
    let read_bounded = || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let max = bencode::Limits::default().max_input_bytes as u64;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(max + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = match read_bounded() {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => {
            return Err(TrackerError::io(
                format!("reading dfile {}", path.display()),
                e,
            ))
        }
    };
    if bytes.is_empty() {
        return Ok(Loaded::Missing);
    }
    match decode(&bytes, use_given_ip) {
        Ok(s) => Ok(Loaded::Ok(s)),
        Err(CorruptDfile(reason)) => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".corrupt-{stamp}"));
            let aside = PathBuf::from(aside);
            std::fs::rename(path, &aside).map_err(|e| {
                TrackerError::io(
                    format!(
                        "dfile {} is corrupt ({reason}) and could not be set aside",
                        path.display()
                    ),
                    e,
                )
            })?;
            Ok(Loaded::Corrupt {
                reason,
                set_aside: aside,
            })
        }
    }
}

/// Writes `bytes` to `path` atomically: `<path>.tmp` in the same directory, fsync, rename over
/// `path`, fsync the directory. Blocking: call it from a blocking thread, not an executor.
pub fn save_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrackerError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| TrackerError::io(ctx("creating"), e))?;
    f.write_all(bytes)
        .map_err(|e| TrackerError::io(ctx("writing"), e))?;
    f.sync_all()
        .map_err(|e| TrackerError::io(ctx("fsync of"), e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TrackerError::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Checks at start-up that saves will work: creates and removes the temporary file next to
/// `path`, so a missing or read-only directory is reported now rather than at the first save.
pub fn check_writable(path: &Path) -> Result<(), TrackerError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(name);
    std::fs::File::create(&tmp).map_err(|e| {
        TrackerError::io(
            format!(
                "dfile {} cannot be saved (creating {})",
                path.display(),
                tmp.display()
            ),
            e,
        )
    })?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

/// Groups loaded peers by the shard owning their torrent.
pub fn split_by_shard(state: DfileState, shards: usize) -> Vec<DfileState> {
    let mut out: Vec<DfileState> = (0..shards).map(|_| DfileState::default()).collect();
    for (ih, peers) in state.peers {
        out[cyclone_shard::shard_for_key(&ih, shards)]
            .peers
            .insert(ih, peers);
    }
    for (ih, n) in state.completed {
        out[cyclone_shard::shard_for_key(&ih, shards)]
            .completed
            .insert(ih, n);
    }
    out
}

/// Merges per-shard snapshots into one state.
pub fn merge(parts: Vec<DfileState>) -> DfileState {
    let mut out = DfileState::default();
    for p in parts {
        out.peers.extend(p.peers);
        out.completed.extend(p.completed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u8, left: u64) -> Peer {
        Peer {
            id: [id; 20],
            ip: "127.0.0.1".parse().unwrap(),
            port: 6881,
            left,
            key: Some(b"k".to_vec()),
            given_ip: Some("10.0.0.1".to_string()),
            supportcrypto: true,
            requirecrypto: false,
            nat: Some(0),
            last_seen: 0,
        }
    }

    #[test]
    fn round_trips_bttrack_format() {
        let mut s = DfileState::default();
        s.peers.insert([1; 20], vec![peer(2, 0), peer(1, 5)]);
        s.completed.insert([1; 20], 3);
        s.completed.insert([9; 20], 1);
        let bytes = encode(&s);
        // Canonical: the strict decoder accepts it.
        bencode::decode(&bytes).unwrap();
        let back = decode(&bytes, false).unwrap();
        assert_eq!(back.completed, s.completed);
        let mut ps = back.peers[&[1; 20]].clone();
        ps.sort_by_key(|p| p.id);
        assert_eq!(ps, vec![peer(1, 5), peer(2, 0)]);
    }

    #[test]
    fn reads_a_bttrack_written_file() {
        // Bytes as BitTornado 0.3.18's bencode writes its state.
        let ih = [0xab; 20];
        let pid = *b"-BT0318-abcdefghijkl";
        let mut f = b"d9:completedd20:".to_vec();
        f.extend_from_slice(&ih);
        f.extend_from_slice(b"i2ee5:peersd20:");
        f.extend_from_slice(&ih);
        f.extend_from_slice(b"d20:");
        f.extend_from_slice(&pid);
        f.extend_from_slice(b"d8:given ip8:10.0.0.92:ip9:127.0.0.13:key4:abcd4:lefti0e3:nati0e4:porti6881e13:requirecryptoi0e13:supportcryptoi1eeeee");
        let s = decode(&f, true).unwrap();
        assert_eq!(s.completed[&ih], 2);
        let p = &s.peers[&ih][0];
        assert_eq!(p.id, pid);
        assert_eq!(
            p.ip,
            "10.0.0.9".parse::<IpAddr>().unwrap(),
            "given ip is used when overrides are allowed"
        );
        assert_eq!(p.nat, Some(0));
        assert!(p.supportcrypto && !p.requirecrypto);
        assert_eq!(
            decode(&f, false).unwrap().peers[&ih][0].ip,
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn reads_the_php_dialect_and_the_flat_format() {
        let ih = [0x11; 20];
        let pid = [0x22; 20];
        let mut php = b"d9:completedd20:".to_vec();
        php.extend_from_slice(&ih);
        php.extend_from_slice(b"i4ee5:peersd20:");
        php.extend_from_slice(&ih);
        php.extend_from_slice(b"d20:");
        php.extend_from_slice(&pid);
        php.extend_from_slice(b"d2:ip9:127.0.0.24:lefti100e4:porti7000eeeee");
        let s = decode(&php, false).unwrap();
        let p = &s.peers[&ih][0];
        assert!(!p.supportcrypto && !p.requirecrypto);
        assert_eq!((p.port, p.left, p.nat), (7000, 100, None));
        assert_eq!(s.completed[&ih], 4);
        // PHP's empty-map quirk: `de` everywhere.
        assert_eq!(
            decode(b"d9:completedde5:peersdee", false).unwrap(),
            DfileState::default()
        );
        // Old flat format.
        let mut flat = b"d20:".to_vec();
        flat.extend_from_slice(&ih);
        flat.extend_from_slice(b"d20:");
        flat.extend_from_slice(&pid);
        flat.extend_from_slice(b"d2:ip9:127.0.0.24:lefti0e4:porti1eeee");
        assert_eq!(decode(&flat, false).unwrap().peers[&ih].len(), 1);
    }

    #[test]
    fn allowed_keys_round_trip_and_bad_entries_are_skipped() {
        let mut s = DfileState::default();
        let mut a = AllowedDirState::default();
        a.allowed.insert(
            [3; 20],
            AllowedEntry {
                path: b"/t/a.torrent".to_vec(),
                file: b"a.torrent".to_vec(),
                name: b"a".to_vec(),
                length: 5000,
                numfiles: 1,
                failure_reason: None,
                warning_message: Some(b"be nice".to_vec()),
                announce_list: Some(vec![vec![b"http://x/announce".to_vec()]]),
            },
        );
        a.files.insert(
            b"/t/a.torrent".to_vec(),
            (1_700_000_000, 321, Some([3; 20])),
        );
        a.files.insert(b"/t/broken.torrent".to_vec(), (5, 7, None));
        s.allowed_dir = Some(a);
        let bytes = encode(&s);
        bencode::decode(&bytes).expect("canonical");
        assert_eq!(decode(&bytes, false).unwrap(), s);
        let l = DfileState {
            allowed_list: Some([[4; 20], [5; 20]].into_iter().collect()),
            ..DfileState::default()
        };
        let bytes = encode(&l);
        bencode::decode(&bytes).expect("canonical");
        assert!(bytes.starts_with(b"d12:allowed_listd20:"));
        assert_eq!(decode(&bytes, false).unwrap(), l);
        // bttrack's layout, with one malformed record of each kind: skipped, not fatal.
        let mut f = b"d7:allowedd20:".to_vec();
        f.extend_from_slice(&[6; 20]);
        f.extend_from_slice(b"d4:file1:x6:lengthi1e4:name1:x8:numfilesi1e4:path3:/tx4:type7:torrente3:badi1ee17:allowed_dir_filesd3:/txll");
        f.extend_from_slice(b"i10ei1ee20:");
        f.extend_from_slice(&[6; 20]);
        f.extend_from_slice(b"e3:/tyi1ee9:completedde5:peersdee");
        let got = decode(&f, false).unwrap().allowed_dir.unwrap();
        assert_eq!(got.allowed.len(), 1);
        assert_eq!(got.files.len(), 1);
        assert_eq!(got.files[&b"/tx".to_vec()], (10, 1, Some([6; 20])));
    }

    #[test]
    fn rejects_corrupt_files() {
        for bad in [
            &b"garbage"[..],
            b"i1e",
            b"d5:peersi1ee",
            b"d5:peersd3:abcdeee",
            b"d5:peersdee9:completedi3ee",
        ] {
            assert!(
                decode(bad, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn corrupt_file_is_set_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dstate");
        std::fs::write(&path, b"not a dfile").unwrap();
        match load(&path, false).unwrap() {
            Loaded::Corrupt { set_aside, .. } => {
                assert_eq!(std::fs::read(&set_aside).unwrap(), b"not a dfile");
                assert!(!path.exists());
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(load(&path, false).unwrap(), Loaded::Missing));
        save_atomic(&path, b"d9:completedde5:peersdee").unwrap();
        assert!(matches!(load(&path, false).unwrap(), Loaded::Ok(_)));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
