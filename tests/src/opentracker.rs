//! Debian's opentracker on 127.0.0.1 (HTTP and UDP on one port), in whitelist mode (the only mode Debian builds).
//! It chroots into its directory, so the whitelist path is relative to it, and loads the whitelist about a second
//! after it starts listening: [`OpenTracker::wait_until_whitelisted`] waits for that.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running opentracker, killed on drop.
pub struct OpenTracker {
    child: Child,
    pub port: u16,
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_udp_port() -> u16 {
    for _ in 0..50 {
        let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on 127.0.0.1");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn percent(b: &[u8]) -> String {
    b.iter().map(|x| format!("%{x:02X}")).collect()
}

impl OpenTracker {
    /// Starts opentracker in `dir` with `info_hashes` whitelisted. `None` when it is not installed and skipping is
    /// allowed (see [`crate::require_program`]).
    pub fn start(dir: &Path, info_hashes: &[[u8; 20]]) -> Option<OpenTracker> {
        if !crate::require_program("opentracker", "opentracker") {
            return None;
        }
        let list: String = info_hashes.iter().map(|h| hex(h) + "\n").collect();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("whitelist.txt"), list).unwrap();
        for _ in 0..5 {
            let port = free_tcp_udp_port();
            let mut child = Command::new("opentracker")
                .args([
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-P",
                    &port.to_string(),
                ])
                .args(["-w", "whitelist.txt", "-d"])
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn opentracker");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost a race for the port
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Some(OpenTracker { child, port });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("opentracker did not start on loopback");
    }

    /// One HTTP GET; the raw reply.
    fn get(&self, target: &str) -> Vec<u8> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = s.take(1 << 20).read_to_end(&mut out);
        out
    }

    /// Waits until `info_hash` is accepted. opentracker answers TCP before it has loaded its whitelist and rejects
    /// every torrent until then. The probe announces `started` until accepted, then withdraws the probe peer with
    /// `stopped` (a `stopped`-only probe was measured unreliable: 1 run in 30 still met a rejection afterwards).
    pub fn wait_until_whitelisted(&self, info_hash: &[u8; 20]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = |event: &str| {
            let mut target = String::from("/announce?info_hash=");
            target += &percent(info_hash);
            target += "&peer_id=-PROBE-0000000000000&port=1&left=0&numwant=0&compact=1&event=";
            target += event;
            self.get(&target)
        };
        loop {
            let reply = probe("started");
            if !reply.windows(7).any(|w| w == b"failure") && reply.starts_with(b"HTTP/1") {
                probe("stopped");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "opentracker never loaded its whitelist"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Seeders listed for `info_hash` (from a scrape).
    pub fn seeders(&self, info_hash: &[u8; 20]) -> u64 {
        let reply = self.get(&format!("/scrape?info_hash={}", percent(info_hash)));
        let key = b"8:completei";
        let Some(at) = reply.windows(key.len()).position(|w| w == key) else {
            return 0;
        };
        let digits: String = reply[at + key.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        digits.parse().unwrap_or(0)
    }
}
