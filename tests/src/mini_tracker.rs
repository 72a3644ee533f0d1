//! A minimal in-process HTTP tracker that logs every announce it receives, on 127.0.0.1 with a kernel-chosen port:
//! no whitelist, compact replies, `event=stopped` honoured, a short interval. Bounded: at most 64 torrents × 256
//! peers, requests of at most 8 KiB, one thread.
//!
//! Used only where a test needs that announce log (`tests/engine_announces.rs`: which events the engine sends and
//! how often). Every transfer test announces through our real tracker instead ([`crate::cyclone_tracker`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Swarms = HashMap<Vec<u8>, Vec<(Vec<u8>, u16)>>;

/// Every announce seen, as (peer port, `event` or "" for a periodic announce); at most [`MAX_LOGGED_ANNOUNCES`].
type AnnounceLog = Vec<(u16, String)>;

/// Bound on the announce log (a client announcing in a loop must not grow it without limit).
pub const MAX_LOGGED_ANNOUNCES: usize = 100_000;

/// A running tracker; stops when dropped.
pub struct MiniTracker {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    swarms: Arc<Mutex<Swarms>>,
    log: Arc<Mutex<AnnounceLog>>,
    thread: Option<JoinHandle<()>>,
}

impl MiniTracker {
    /// Starts a tracker telling clients to re-announce every `interval_secs`.
    pub fn start(interval_secs: u32) -> MiniTracker {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind tracker");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swarms: Arc<Mutex<Swarms>> = Arc::default();
        let log: Arc<Mutex<AnnounceLog>> = Arc::default();
        let (s, w, l) = (stop.clone(), swarms.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                        let mut req = Vec::new();
                        let mut buf = [0u8; 2048];
                        while !req.windows(4).any(|x| x == b"\r\n\r\n") && req.len() < 8192 {
                            match conn.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        let body = answer(&req, &w, &l, interval_secs);
                        let head = format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = conn.write_all(head.as_bytes());
                        let _ = conn.write_all(&body);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        MiniTracker {
            addr,
            stop,
            swarms,
            log,
            thread: Some(thread),
        }
    }

    /// The announces received from the client listening on `port`: each `event` (`started`, `completed`,
    /// `stopped`) or "" for a periodic announce, in order.
    pub fn announces_from(&self, port: u16) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The ports of every client that announced so far, in order of first announce.
    pub fn announcing_ports(&self) -> Vec<u16> {
        let log = self.log.lock().unwrap();
        let mut ports: Vec<u16> = Vec::new();
        for (p, _) in log.iter() {
            if !ports.contains(p) {
                ports.push(*p);
            }
        }
        ports
    }

    /// The announce URL.
    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }

    /// Lists a peer as if it had announced (for test peers that do not speak HTTP).
    pub fn add_peer(&self, info_hash: &[u8; 20], peer_id: &[u8; 20], port: u16) {
        let mut swarms = self.swarms.lock().unwrap();
        swarms
            .entry(info_hash.to_vec())
            .or_default()
            .push((peer_id.to_vec(), port));
    }

    /// Peers currently listed, over all torrents.
    pub fn peer_count(&self) -> usize {
        self.swarms.lock().unwrap().values().map(Vec::len).sum()
    }

    /// Waits until at least `n` peers are listed (panics after `limit`).
    pub fn wait_for_peers(&self, n: usize, limit: Duration) {
        let start = std::time::Instant::now();
        while self.peer_count() < n {
            assert!(
                start.elapsed() < limit,
                "the tracker saw {} peers, expected {n}",
                self.peer_count()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MiniTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&s[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if s[i] == b'+' { b' ' } else { s[i] });
        i += 1;
    }
    out
}

fn answer(req: &[u8], swarms: &Mutex<Swarms>, log: &Mutex<AnnounceLog>, interval: u32) -> Vec<u8> {
    let failure = |msg: &str| format!("d14:failure reason{}:{}e", msg.len(), msg).into_bytes();
    let line_end = req.iter().position(|&b| b == b'\r').unwrap_or(req.len());
    let line = &req[..line_end];
    let Some(q) = line.iter().position(|&b| b == b'?') else {
        return failure("no query");
    };
    let query_end = line[q..]
        .iter()
        .position(|&b| b == b' ')
        .map_or(line.len(), |e| q + e);
    let mut params: HashMap<&[u8], Vec<u8>> = HashMap::new();
    for pair in line[q + 1..query_end].split(|&b| b == b'&') {
        let mut kv = pair.splitn(2, |&b| b == b'=');
        let k = kv.next().unwrap_or_default();
        let v = kv.next().unwrap_or_default();
        params.insert(k, percent_decode(v));
    }
    let (Some(ih), Some(pid), Some(port)) = (
        params.get(&b"info_hash"[..]),
        params.get(&b"peer_id"[..]),
        params
            .get(&b"port"[..])
            .and_then(|p| std::str::from_utf8(p).ok()?.parse::<u16>().ok()),
    ) else {
        return failure("missing info_hash, peer_id or port");
    };
    let event = params
        .get(&b"event"[..])
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .unwrap_or_default();
    {
        let mut log = log.lock().unwrap();
        if log.len() < MAX_LOGGED_ANNOUNCES {
            log.push((port, event.clone()));
        }
    }
    let stopped = event == "stopped";
    let mut swarms = swarms.lock().unwrap();
    if swarms.len() >= 64 && !swarms.contains_key(ih) {
        return failure("too many torrents");
    }
    let peers = swarms.entry(ih.clone()).or_default();
    peers.retain(|(id, p)| id != pid && *p != port);
    let mut compact = Vec::new();
    for (_, p) in peers.iter() {
        compact.extend_from_slice(&[127, 0, 0, 1]);
        compact.extend_from_slice(&p.to_be_bytes());
    }
    if !stopped && peers.len() < 256 {
        peers.push((pid.clone(), port));
    }
    let mut out = format!(
        "d8:intervali{interval}e12:min intervali{interval}e5:peers{}:",
        compact.len()
    )
    .into_bytes();
    out.extend_from_slice(&compact);
    out.push(b'e');
    out
}
