//! Shared set-up for the engine's end-to-end tests: our tracker (`cyclone tracker`) on loopback, a multi-file payload
//! and its torrent (made by mktorrent), and launchers for `cyclone download`, aria2c and python3-libtorrent on
//! 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cyclone_tracker::CycloneTracker;
use crate::mini_tracker::MiniTracker;
use crate::{cyclone_bin, free_port, require_program, run_ok, write_pseudo_random, ChildGuard};

/// Generous: the box is shared with compiling agents.
pub const DOWNLOAD_LIMIT: Duration = Duration::from_secs(180);

/// The multi-file payload: files of awkward sizes (crossing piece boundaries), nested, one tiny.
pub const FILES: &[(&str, usize)] = &[
    ("a.bin", 300_001),
    ("sub/b.bin", 1_000_000),
    ("sub/deeper/c.bin", 7),
    ("z.bin", 65_536),
];

/// Seconds between announces that the test trackers ask for.
const TRACKER_INTERVAL: u32 = 2;

/// The tracker a fixture's torrent announces to.
pub enum TestTracker {
    /// `cyclone tracker` (every test but those below).
    Cyclone(CycloneTracker),
    /// The in-process fixture tracker, only for a test that reads its announce log.
    Mini(MiniTracker),
    /// Another tracker the test runs itself (the torrent's announce URL was given).
    External,
}

impl TestTracker {
    /// Waits until the tracker lists at least `n` peers (panics after `limit`).
    pub fn wait_for_peers(&self, n: usize, limit: Duration) {
        match self {
            TestTracker::Cyclone(t) => t.wait_for_peers(n, limit),
            TestTracker::Mini(t) => t.wait_for_peers(n, limit),
            TestTracker::External => panic!("the test runs its own tracker: ask it"),
        }
    }

    /// Lists a test peer that does not speak HTTP as a seed of `info_hash`.
    pub fn add_peer(&self, info_hash: &[u8; 20], peer_id: &[u8; 20], port: u16) {
        match self {
            TestTracker::Cyclone(t) => t.add_peer(info_hash, peer_id, port),
            TestTracker::Mini(t) => t.add_peer(info_hash, peer_id, port),
            TestTracker::External => panic!("the test runs its own tracker: ask it"),
        }
    }

    /// The fixture tracker with its announce log ([`fixture_with_announce_log`]).
    pub fn mini(&self) -> &MiniTracker {
        match self {
            TestTracker::Mini(t) => t,
            _ => panic!("only fixture_with_announce_log() runs the fixture tracker"),
        }
    }
}

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub tracker: TestTracker,
    pub torrent: PathBuf,
}

/// `cyclone tracker`, the payload under `root/seed/payload`, and its torrent (made by mktorrent, 32 KiB pieces).
pub fn fixture() -> Option<Fixture> {
    fixture_with(FILES)
}

/// [`fixture`] with other files.
pub fn fixture_with(files: &[(&str, usize)]) -> Option<Fixture> {
    fixture_impl(files, Announce::Cyclone)
}

/// [`fixture`] announcing to `announce`, a tracker the test runs itself (no tracker is started).
pub fn fixture_full(files: &[(&str, usize)], announce: &str) -> Option<Fixture> {
    fixture_impl(files, Announce::Url(announce))
}

/// [`fixture`] with the in-process fixture tracker ([`MiniTracker`]), whose announce log a test can read. Only for
/// tests about what the engine tells the tracker; transfers go through `cyclone tracker` ([`fixture`]).
pub fn fixture_with_announce_log() -> Option<Fixture> {
    fixture_impl(FILES, Announce::Mini)
}

enum Announce<'a> {
    Cyclone,
    Mini,
    Url(&'a str),
}

fn fixture_impl(files: &[(&str, usize)], announce: Announce<'_>) -> Option<Fixture> {
    if !require_program("mktorrent", "mktorrent") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for (i, (name, len)) in files.iter().enumerate() {
        write_pseudo_random(&root.join("seed/payload").join(name), *len, i as u64 + 11);
    }
    let (tracker, url) = match announce {
        Announce::Cyclone => {
            let t = CycloneTracker::start(&root.join("tracker"), TRACKER_INTERVAL);
            let url = t.announce_url();
            (TestTracker::Cyclone(t), url)
        }
        Announce::Mini => {
            let t = MiniTracker::start(TRACKER_INTERVAL);
            let url = t.announce_url();
            (TestTracker::Mini(t), url)
        }
        Announce::Url(url) => (TestTracker::External, url.to_string()),
    };
    let torrent = root.join("payload.torrent");
    run_ok(
        Command::new("mktorrent")
            .args(["-l", "15", "-a"])
            .arg(url)
            .arg("-o")
            .arg(&torrent)
            .arg(root.join("seed/payload")),
    );
    Some(Fixture {
        _dir: dir,
        root,
        tracker,
        torrent,
    })
}

pub fn assert_same_payload(original: &Path, copy: &Path) {
    assert_same_files(original, copy, FILES);
}

pub fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The listening port a `cyclone download --json` printed (`{"event":"listening","port":N}`), once it has.
pub fn listening_port(log: &Path) -> u16 {
    let start = std::time::Instant::now();
    loop {
        let port = log_of(log)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "listening")
            .and_then(|v| v["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        if let Some(p) = port {
            return p;
        }
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "no listening line; log:\n{}",
            log_of(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cyclone download` with loopback settings, in `workdir` (the payload lands in `workdir/payload`).
pub fn cyclone_download(f: &Fixture, workdir: &Path, extra: &[&str]) -> Command {
    cyclone_download_torrent(&f.torrent, workdir, extra)
}

/// [`cyclone_download`] for another torrent than the fixture's.
pub fn cyclone_download_torrent(torrent: &Path, workdir: &Path, extra: &[&str]) -> Command {
    std::fs::create_dir_all(workdir).unwrap();
    let mut cmd = Command::new(cyclone_bin());
    cmd.current_dir(workdir)
        .arg("download")
        .arg(torrent)
        .args(["--bind", "127.0.0.1", "--minport", "0", "--json"])
        .args(["--display_interval", "1", "--min_announce_interval", "2"])
        .arg("--resume_dir")
        .arg(workdir.join("resume"))
        .args(extra);
    cmd
}

pub fn aria2_seed(f: &Fixture, log: &Path) -> ChildGuard {
    let port = free_port();
    ChildGuard::spawn(
        Command::new("aria2c")
            .arg(format!("--dir={}", f.root.join("seed").display()))
            .args([
                "--seed-ratio=0.0",
                "--bt-seed-unverified=true",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--bt-external-ip=127.0.0.1",
                "--disable-ipv6=true",
                "--bt-tracker-interval=2",
                "--summary-interval=0",
            ])
            .arg(format!("--listen-port={port}"))
            .arg(&f.torrent),
        log,
    )
}

/// Runs a cyclone leecher (`--exit-on-complete`) into `root/<name>`, logging to `root/<name>.log`, waits for it to
/// finish cleanly and checks its copy of the payload against the seed's. Returns the log path (for more checks).
pub fn cyclone_leech(f: &Fixture, name: &str, what: &str) -> PathBuf {
    let work = f.root.join(name);
    let log = f.root.join(format!("{name}.log"));
    let mut dl = ChildGuard::spawn(
        &mut cyclone_download(f, &work, &["--exit-on-complete"]),
        &log,
    );
    wait_ok(&mut dl, what, &log);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
    log
}

/// Waits for a process to exit successfully, and without a panic message in its log (glommio's blocking pool used
/// to panic at exit with status 0).
pub fn wait_ok(child: &mut ChildGuard, what: &str, log: &Path) {
    match child.wait_for(DOWNLOAD_LIMIT) {
        Some(s) if s.success() => assert!(
            !log_of(log).contains("panicked"),
            "{what} exited with {s} but panicked; log:\n{}",
            log_of(log)
        ),
        Some(s) => panic!("{what} failed with {s}; log:\n{}", log_of(log)),
        None => panic!(
            "{what} did not finish within {DOWNLOAD_LIMIT:?}; log:\n{}",
            log_of(log)
        ),
    }
}

/// python3-libtorrent as seed or leecher (`mode` = "seed" | "download"), listening on `port`, for at most `secs`.
pub fn libtorrent(f: &Fixture, mode: &str, dir: &Path, log: &Path) -> ChildGuard {
    let script = f.root.join("lt_client.py");
    std::fs::write(&script, LT_CLIENT).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    ChildGuard::spawn(
        Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(mode)
            .arg(&f.torrent)
            .arg(dir)
            .arg(free_port().to_string())
            .arg(DOWNLOAD_LIMIT.as_secs().to_string()),
        log,
    )
}

/// The python3-libtorrent peer (one script with bench/src/bin/transfer.rs; see its header).
const LT_CLIENT: &str = include_str!("libtorrent_client.py");

/// A seeding `cyclone download` in `root/seed` (the original data, hash-checked at start); returns once the tracker
/// lists it.
pub fn cyclone_seed(f: &Fixture, log: &Path) -> ChildGuard {
    cyclone_seed_with(f, log, &[])
}

/// [`cyclone_seed`] with extra `cyclone download` options.
pub fn cyclone_seed_with(f: &Fixture, log: &Path, extra: &[&str]) -> ChildGuard {
    let mut cmd = cyclone_download(f, &f.root.join("seed"), extra);
    let seed = ChildGuard::spawn(&mut cmd, log);
    f.tracker.wait_for_peers(1, DOWNLOAD_LIMIT);
    seed
}

/// Byte-for-byte comparison of `files` under two roots.
pub fn assert_same_files(original: &Path, copy: &Path, files: &[(&str, usize)]) {
    for (name, _) in files {
        let a = std::fs::read(original.join(name)).unwrap();
        let b = std::fs::read(copy.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", copy.join(name).display()));
        assert!(a == b, "{name} differs after the download");
    }
}

/// A `--json` status line and when the test saw it.
pub struct TimedStatus {
    pub seen: std::time::Instant,
    pub status: serde_json::Value,
}

/// Follows a `cyclone download --json` log while the process runs: each [`StatusFollower::poll`] returns the status
/// lines written since the last one, stamped with the time they were read (the status has no clock of its own;
/// polling often keeps the stamps within a poll period of the truth).
pub struct StatusFollower {
    log: PathBuf,
    lines_read: usize,
}

impl StatusFollower {
    pub fn new(log: &Path) -> StatusFollower {
        StatusFollower {
            log: log.to_path_buf(),
            lines_read: 0,
        }
    }

    pub fn poll(&mut self) -> Vec<TimedStatus> {
        let seen = std::time::Instant::now();
        let text = log_of(&self.log);
        // Only whole lines: the last one may still be being written.
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let lines: Vec<&str> = whole.lines().collect();
        let new = lines.get(self.lines_read..).unwrap_or_default();
        self.lines_read = lines.len();
        new.iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "status")
            .map(|status| TimedStatus { seen, status })
            .collect()
    }
}
