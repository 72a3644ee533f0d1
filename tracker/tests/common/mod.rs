//! Helpers for the end-to-end tests: run the real `cyclone-tracker` binary on 127.0.0.1 with a
//! kernel-chosen port, talk raw HTTP/1.1 to it, stop it with signals.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cyclone-tracker");

pub struct Tracker {
    pub child: Child,
    pub port: u16,
    /// The address it listens on, without the port (`127.0.0.1` or `::1`).
    pub host: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Tracker {
    /// Starts the tracker bound to 127.0.0.1 on a free port, with `extra` bttrack options.
    pub fn start(dfile: &Path, extra: &[&str]) -> Tracker {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--shards",
            "2",
            "--access_log",
            "0",
        ])
        .arg("--dfile")
        .arg(dfile)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        Self::spawn(cmd)
    }

    /// Starts the tracker on `::1` only (IPv6, `--ipv6_binds_v4 0`) on a free port.
    pub fn start_ipv6(dfile: &Path) -> Tracker {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--port",
            "0",
            "--bind",
            "::1",
            "--ipv6_enabled",
            "1",
            "--ipv6_binds_v4",
            "0",
            "--access_log",
            "0",
        ])
        .arg("--dfile")
        .arg(dfile)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Tracker {
        let mut child = cmd.spawn().expect("spawn cyclone-tracker");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().expect("piped stderr");
        let buf = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    let addr = line[i + 13..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(addr);
                }
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "tracker did not report its address; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let (host, port) = addr.rsplit_once(':').expect("host:port");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host == "0.0.0.0" { "127.0.0.1" } else { host }.to_string();
        let port = port.parse().expect("port");
        let t = Tracker {
            child,
            port,
            host,
            stderr,
        };
        t.wait_ready();
        t
    }

    /// Waits until an HTTP request is answered (executors started).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = try_get_host(&self.host, self.port, "/nothing-here") {
                if r.status == 404 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tracker never answered; stderr:\n{}", self.stderr_text());
    }

    pub fn get(&self, target: &str) -> HttpResponse {
        try_get_host(&self.host, self.port, target).unwrap_or_else(|e| panic!("GET {target}: {e}"))
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY-free: use the kill command to avoid unsafe in tests.
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// SIGTERM and wait for a clean exit (the dfile is saved at shutdown).
    pub fn stop(mut self) -> String {
        self.signal(15);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "tracker exited with {status}; stderr:\n{}",
                    self.stderr_text()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tracker did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.stderr_text()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

pub fn try_get_host(host: &str, port: u16, target: &str) -> std::io::Result<HttpResponse> {
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw_request_host(host, port, req.as_bytes()).map(|mut v| v.remove(0))
}

/// Sends raw bytes, reads until the server closes, splits into responses by Content-Length.
pub fn raw_request(port: u16, bytes: &[u8]) -> std::io::Result<Vec<HttpResponse>> {
    raw_request_host("127.0.0.1", port, bytes)
}

pub fn raw_request_host(host: &str, port: u16, bytes: &[u8]) -> std::io::Result<Vec<HttpResponse>> {
    let mut s = TcpStream::connect((host, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(bytes)?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let mut out = Vec::new();
    let mut rest = &all[..];
    while !rest.is_empty() {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "no header end in {:?}",
                    String::from_utf8_lossy(rest)
                ))
            })?;
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let r0 = HttpResponse {
            status,
            head,
            body: Vec::new(),
        };
        let len: usize = r0
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body_start = end + 4;
        let body = rest[body_start..(body_start + len).min(rest.len())].to_vec();
        rest = &rest[(body_start + len).min(rest.len())..];
        out.push(HttpResponse { body, ..r0 });
    }
    if out.is_empty() {
        return Err(std::io::Error::other("empty response"));
    }
    Ok(out)
}

/// `%XX`-encodes every byte.
pub fn enc(b: &[u8]) -> String {
    b.iter().map(|x| format!("%{x:02X}")).collect()
}

pub fn announce_target(ih: &[u8; 20], pid: &[u8; 20], port: u16, left: u64, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        enc(ih),
        enc(pid)
    )
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn path_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// A one-shot HTTP server on 127.0.0.1: answers the first request `200 OK` and sends its head (request line and
/// headers) on the channel. Returns its port and the channel.
pub fn one_request_upstream() -> (u16, std::sync::mpsc::Receiver<String>) {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = upstream.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(Ok(mut c)) = upstream.incoming().next() {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
        }
    });
    (port, rx)
}
