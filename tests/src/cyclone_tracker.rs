//! Our own tracker, `cyclone tracker`, as a real process on 127.0.0.1 for the end-to-end tests: every transfer
//! test announces through it, so the engine and the tracker are tested together the way a user runs them.
//!
//! Settings, and why:
//! - `--bind 127.0.0.1` and a port from [`free_port`] (the tracker cannot be told to pick its own and report it);
//!   if another process takes the port first, the start is retried on a new one.
//! - `--reannounce_interval 2`: peers re-announce every 2 s and learn about each other quickly. Transmission will
//!   not dial a loopback peer it learnt from a tracker, so a seed must learn about it and connect to it instead.
//! - `--nat_check 0`: bttrack's default (3) connects back to each peer before listing it. Like bttrack, cyclone
//!   never checks intranet/loopback addresses unless `--nat_check_local 1`, so the default would do nothing here;
//!   saying 0 keeps the tests independent of that rule and of a peer's listening socket being up before its first
//!   announce (a fake peer registered by [`CycloneTracker::add_peer`], for instance).
//! - No `allowed_dir`/`allowed_list`: any info-hash is tracked (bttrack refuses unknown hashes only with one).
//! - `--udp 0`: [`free_port`] only knows the TCP port is free; the UDP tracker is tested against opentracker.
//! - `--dfile` and the log inside the test's temporary directory; `--shards 1`, the box has two cores.
//!
//! The process is killed when the value drops ([`ChildGuard`]).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{cyclone_bin, free_port, ChildGuard};

/// How long the tracker may take to answer its first request (the box is shared with compiling agents).
const START_LIMIT: Duration = Duration::from_secs(60);
/// Attempts at starting on a free port (another process may take it between the check and the bind).
const START_ATTEMPTS: usize = 3;

/// A running `cyclone tracker`.
pub struct CycloneTracker {
    pub port: u16,
    log: PathBuf,
    _child: ChildGuard,
}

impl CycloneTracker {
    /// Starts the tracker with its state and log under `dir`, telling clients to re-announce every
    /// `interval_secs`, and waits until it answers a scrape. Panics (with the log) if it never does.
    pub fn start(dir: &Path, interval_secs: u32) -> CycloneTracker {
        std::fs::create_dir_all(dir).expect("tracker dir");
        let mut last_log = String::new();
        for attempt in 0..START_ATTEMPTS {
            let port = free_port();
            let log = dir.join(format!("tracker-{attempt}.log"));
            let mut child = ChildGuard::spawn(
                Command::new(cyclone_bin())
                    .current_dir(dir)
                    .arg("tracker")
                    .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                    .arg("--dfile")
                    .arg(dir.join("tracker.dfile"))
                    .args(["--reannounce_interval", &interval_secs.to_string()])
                    .args(["--nat_check", "0", "--udp", "0", "--shards", "1"]),
                &log,
            );
            let start = Instant::now();
            loop {
                if child.0.try_wait().expect("try_wait").is_some() {
                    break; // e.g. the port was taken: try another
                }
                if matches!(http_get(port, "/scrape"), Ok((200, _))) {
                    return CycloneTracker {
                        port,
                        log,
                        _child: child,
                    };
                }
                assert!(
                    start.elapsed() < START_LIMIT,
                    "cyclone tracker did not answer on port {port} within {START_LIMIT:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("cyclone tracker did not start in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// The announce URL.
    pub fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// The tracker's log (access log and messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peers listed (seeds + leechers) over every torrent, from a full scrape; 0 if the scrape fails.
    pub fn peer_count(&self) -> usize {
        let Ok((200, body)) = http_get(self.port, "/scrape") else {
            return 0;
        };
        let Ok(v) = cyclone_metainfo::bencode::decode(&body) else {
            return 0;
        };
        let count = |d: &cyclone_metainfo::bencode::Value<'_>, key: &[u8]| {
            d.get(key).and_then(|c| c.as_int()).unwrap_or(0).max(0) as usize
        };
        v.get(b"files")
            .and_then(|f| f.as_dict())
            .map_or(0, |files| {
                files
                    .iter()
                    .map(|(_, d)| count(d, b"complete") + count(d, b"incomplete"))
                    .sum()
            })
    }

    /// Waits until at least `n` peers are listed (panics after `limit`, with the tracker's log).
    pub fn wait_for_peers(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.peer_count() < n {
            assert!(
                start.elapsed() < limit,
                "the tracker lists {} peers, expected {n}; log:\n{}",
                self.peer_count(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Announces a seed on behalf of a test peer that does not speak HTTP (`event=started`, `left=0`).
    pub fn add_peer(&self, info_hash: &[u8; 20], peer_id: &[u8; 20], port: u16) {
        let path = format!(
            "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=0&compact=1&event=started",
            percent_encode(info_hash),
            percent_encode(peer_id)
        );
        match http_get(self.port, &path) {
            Ok((200, body)) if !body.windows(14).any(|w| w == b"failure reason") => {}
            other => panic!(
                "announce of a test peer failed: {other:?}; log:\n{}",
                self.log()
            ),
        }
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// One HTTP/1.0 GET to the tracker: (status, body). Bounded: 5 s to connect, 10 s per read, 1 MiB of answer.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    s.take(1 << 20).read_to_end(&mut answer)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer");
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let status = std::str::from_utf8(&answer[..head_end])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(bad)?;
    Ok((status, answer[head_end + 4..].to_vec()))
}
