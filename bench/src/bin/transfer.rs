//! One-seeder-to-one-leecher transfer on 127.0.0.1, for three pairs in the same run: cyclone→cyclone,
//! python3-libtorrent→python3-libtorrent and aria2c→aria2c, all through one Debian opentracker.
//!
//! Usage:
//!   transfer --cyclone-bin PATH [--size-mib N (1024)] [--runs N (1, max 9)] [--limit-secs S (120)]
//!            [--pairs cyclone,libtorrent,aria2] [--keep-logs] [--perf-dir DIR] [--cyclone-shards N (0)]
//!
//! `--cyclone-shards N` passes `--shards N` to both cyclone processes (0: cyclone's default, one per CPU).
//!
//! `--perf-dir DIR` runs the cyclone seeder and leecher under `perf record -g -o DIR/<run>-<role>.data` (diagnosis
//! only: the CPU figures then include perf's own process).
//!
//! The payload (pseudo-random, one file) is generated once under /tmp and deleted at the end with everything else.
//! Every transfer gets its own torrent (same file, same 256 KiB pieces, a different `source` key in the info dict),
//! so swarms of earlier transfers, whose killed seeders never announced `stopped`, cannot leak peers into later ones.
//! opentracker (whitelist mode, every info-hash listed up front) runs for the whole benchmark.
//!
//! Per transfer: the seeder starts on the complete file without re-hashing it (cyclone `--check_hashes 0`;
//! libtorrent `seed_mode`, which hashes each piece the first time it is requested, while serving; aria2
//! `--bt-seed-unverified=true`), the benchmark waits until the tracker lists it as a seed, then starts the leecher
//! in an empty directory and times it until it exits (cyclone `--exit-on-complete`, libtorrent script exit, aria2
//! `--seed-time=0`). "done" is when the leecher itself printed completion (cyclone's first `seeding` status line,
//! the libtorrent script's `done` line) as seen by this process. CPU: the leecher's whole life (wait4 rusage), the
//! seeder's utime+stime from /proc/<pid>/stat over the leecher's life. The copy is checked with SHA-1 against the
//! original. A transfer over its time limit is killed and reported as failed; children are killed on drop.
//!
//! Loopback only. Not pinned: seeder and leecher share the machine's cores with whatever else runs.
//!
//! Measured 2026-11-21 (2 shared cores, other agents compiling: load average 1.8 → 4.5 during the run, so noisy;
//! cyclone varied 5.5–10 s between runs, libtorrent 4.3–4.6 s):
//! `target/release/transfer --cyclone-bin target/release/cyclone --size-mib 1024 --runs 3`
//!
//! | pair (medians of 3)      | wall s | done s | MB/s wall | seeder CPU s | leecher CPU s |
//! |--------------------------|--------|--------|-----------|--------------|---------------|
//! | cyclone → cyclone        | 7.33   | 6.77   | 146.4     | 4.07         | 5.01          |
//! | libtorrent → libtorrent  | 4.34   | 4.23   | 247.4     | 2.65         | 2.64          |
//! | aria2c → aria2c          | 8.40   | 7.39   | 127.8     | 1.17         | 1.92          |
//!
//! cyclone / best other: 0.59x (target ≥ 2x); runs at load ~2 and ~5 gave 0.72x (194 vs 270 MB/s) and 0.55x
//! (112 vs 204 MB/s).
//! Where cyclone's time goes (perf, perf stat, sock:inet_sock_set_state): a seeding torrent re-announces
//! `completed` in a tight loop (session/tracker.rs calls `schedule.completed()` whenever `complete_announced` is
//! set, so every success re-arms it: ~2,600 announces/s, and a re-dial of the leecher after each); the leecher
//! reads at most 16 KiB per recv (wire.rs `READ_CHUNK`), awaits each 16 KiB block's io_uring buffered write (ext4
//! punts it to an io-wq worker: ~20 % of the leecher's CPU, 2 context switches per block) before reading on, and
//! sends each REQUEST in its own send (65k sendto per GiB; the seeder then does 65k recvs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

const PIECE_LENGTH: usize = 256 * 1024;
const PAYLOAD_NAME: &str = "payload.bin";
/// How long a seeder may take to appear at the tracker.
const SEEDER_READY_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Cyclone,
    Libtorrent,
    Aria2,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::Cyclone => "cyclone -> cyclone",
            Client::Libtorrent => "libtorrent -> libtorrent",
            Client::Aria2 => "aria2c -> aria2c",
        }
    }
}

struct Opts {
    cyclone_bin: PathBuf,
    size_mib: usize,
    runs: usize,
    limit: Duration,
    pairs: Vec<Client>,
    keep_logs: bool,
    /// Profile the cyclone seeder and leecher with `perf record -g`, data files in this directory.
    perf_dir: Option<PathBuf>,
    /// `--shards` for both cyclone processes (0: cyclone's default, one per CPU).
    cyclone_shards: usize,
}

fn usage() -> String {
    "usage: transfer --cyclone-bin PATH [--size-mib N] [--runs N] [--limit-secs S] \
     [--pairs cyclone,libtorrent,aria2] [--keep-logs] [--perf-dir DIR] [--cyclone-shards N]"
        .to_string()
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut cyclone_bin = None;
    let mut o = Opts {
        cyclone_bin: PathBuf::new(),
        size_mib: 1024,
        runs: 1,
        limit: Duration::from_secs(120),
        pairs: vec![Client::Cyclone, Client::Libtorrent, Client::Aria2],
        keep_logs: false,
        perf_dir: None,
        cyclone_shards: 0,
    };
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--keep-logs" {
            o.keep_logs = true;
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value\n{}", args[i], usage()))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{}: {e}", args[i]));
        match args[i].as_str() {
            "--cyclone-bin" => cyclone_bin = Some(PathBuf::from(v)),
            "--size-mib" => o.size_mib = num(v)? as usize,
            "--runs" => o.runs = num(v)? as usize,
            "--cyclone-shards" => o.cyclone_shards = num(v)? as usize,
            "--perf-dir" => o.perf_dir = Some(PathBuf::from(v)),
            "--limit-secs" => o.limit = Duration::from_secs(num(v)?),
            "--pairs" => {
                o.pairs = v
                    .split(',')
                    .map(|p| match p {
                        "cyclone" => Ok(Client::Cyclone),
                        "libtorrent" => Ok(Client::Libtorrent),
                        "aria2" => Ok(Client::Aria2),
                        other => Err(format!("unknown pair {other:?}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown option {other}\n{}", usage())),
        }
        i += 2;
    }
    // Absolute: the cyclone processes run in their own directories.
    let bin = cyclone_bin.ok_or_else(usage)?;
    o.cyclone_bin = std::fs::canonicalize(&bin).map_err(|e| {
        format!(
            "{}: {e} (build it with `cargo build --release -p cyclone-tools`)",
            bin.display()
        )
    })?;
    if !(1..=16384).contains(&o.size_mib) {
        return Err("--size-mib must be in 1..=16384".into());
    }
    if !(1..=9).contains(&o.runs) {
        return Err("--runs must be in 1..=9".into());
    }
    if !(1..=1800).contains(&o.limit.as_secs()) {
        return Err("--limit-secs must be in 1..=1800".into());
    }
    if o.pairs.is_empty() {
        return Err("--pairs is empty".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------------------------
// Payload and torrents

/// Writes `len` bytes of xorshift data to `path` in 1 MiB chunks; returns the piece hashes and the file's SHA-1.
fn write_payload(path: &Path, len: usize) -> std::io::Result<(Vec<[u8; 20]>, [u8; 20])> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut whole = Sha1::new();
    let mut pieces = Vec::with_capacity(len.div_ceil(PIECE_LENGTH));
    let mut piece = vec![0u8; PIECE_LENGTH];
    let mut written = 0;
    while written < len {
        let n = PIECE_LENGTH.min(len - written);
        for chunk in piece[..n].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        pieces.push(Sha1::digest(&piece[..n]).into());
        whole.update(&piece[..n]);
        file.write_all(&piece[..n])?;
        written += n;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((pieces, whole.finalize().into()))
}

/// A single-file torrent, encoded by hand (canonical key order) so its info-hash is the SHA-1 of exactly these
/// info bytes. `source` makes the info-hash unique per transfer.
fn torrent_bytes(
    announce: &str,
    len: usize,
    pieces: &[[u8; 20]],
    source: &str,
) -> (Vec<u8>, [u8; 20]) {
    let mut info = Vec::new();
    info.extend_from_slice(
        format!(
            "d6:lengthi{len}e4:name{}:{PAYLOAD_NAME}",
            PAYLOAD_NAME.len()
        )
        .as_bytes(),
    );
    info.extend_from_slice(
        format!(
            "12:piece lengthi{PIECE_LENGTH}e6:pieces{}:",
            pieces.len() * 20
        )
        .as_bytes(),
    );
    for p in pieces {
        info.extend_from_slice(p);
    }
    info.extend_from_slice(format!("6:source{}:{source}e", source.len()).as_bytes());
    let hash: [u8; 20] = Sha1::digest(&info).into();
    let mut t = format!("d8:announce{}:{announce}4:info", announce.len()).into_bytes();
    t.extend_from_slice(&info);
    t.push(b'e');
    (t, hash)
}

fn sha1_file(path: &Path) -> std::io::Result<[u8; 20]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn percent(b: &[u8]) -> String {
    b.iter().map(|x| format!("%{x:02X}")).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/// A child process, killed and reaped on drop unless it was already reaped.
struct Proc {
    child: Child,
    reaped: bool,
}

impl Proc {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Non-blocking wait4: the exit status and the child's rusage CPU seconds once it has exited.
    fn try_reap(&mut self) -> Option<(i32, f64)> {
        if self.reaped {
            return None;
        }
        let mut status = 0;
        // SAFETY: plain syscall on our own child; rusage is a plain C struct, zero is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pointers to live locals.
        let r = unsafe { libc::wait4(self.pid(), &mut status, libc::WNOHANG, &mut usage) };
        if r != self.pid() {
            return None;
        }
        self.reaped = true;
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        };
        Some((code, secs(usage.ru_utime) + secs(usage.ru_stime)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `cmd` with stderr to `log`; stdout is read by a thread that appends to `log` and records when the first
/// line containing `done_marker` arrived.
fn spawn(
    cmd: &mut Command,
    log: &Path,
    done_marker: Option<&'static str>,
) -> Result<Spawned, String> {
    let err = std::fs::File::create(log.with_extension("stderr")).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let done: DoneAt = Arc::default();
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let d = done.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(marker) = done_marker {
                if line.contains(marker) {
                    let mut at = d.lock().unwrap();
                    if at.is_none() {
                        *at = Some(Instant::now());
                    }
                }
            }
            let _ = writeln!(out, "{line}");
        }
    });
    Ok(Spawned {
        proc: Proc {
            child,
            reaped: false,
        },
        done,
        reader,
    })
}

type DoneAt = Arc<Mutex<Option<Instant>>>;

struct Spawned {
    proc: Proc,
    /// When the first stdout line with the done marker arrived.
    done: DoneAt,
    /// Ends at stdout's EOF.
    reader: std::thread::JoinHandle<()>,
}

fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / hz)
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

// ---------------------------------------------------------------------------------------------------------------
// Tracker

struct Tracker {
    /// Held only to kill opentracker on drop.
    _proc: Proc,
    port: u16,
}

impl Tracker {
    /// opentracker on 127.0.0.1 with `hashes` whitelisted; returns once the first one is accepted.
    fn start(dir: &Path, hashes: &[[u8; 20]]) -> Result<Tracker, String> {
        let list: String = hashes.iter().map(|h| hex(h) + "\n").collect();
        std::fs::write(dir.join("whitelist.txt"), list).map_err(|e| e.to_string())?;
        for _ in 0..5 {
            let port = free_tcp_udp_port()?;
            let child = Command::new("opentracker")
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
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!("cannot start opentracker (apt-get install opentracker): {e}")
                })?;
            let mut proc = Proc {
                child,
                reaped: false,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if proc.try_reap().is_some() {
                    break; // lost a race for the port
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    let t = Tracker { _proc: proc, port };
                    t.wait_until_whitelisted(&hashes[0])?;
                    return Ok(t);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err("opentracker did not start on 127.0.0.1".into())
    }

    fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    fn get(&self, target: &str) -> Vec<u8> {
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(s, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut out = Vec::new();
        let _ = s.take(1 << 20).read_to_end(&mut out);
        out
    }

    /// opentracker loads its whitelist about a second after it listens: announce `started` until accepted, then
    /// withdraw the probe with `stopped`.
    fn wait_until_whitelisted(&self, hash: &[u8; 20]) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = |event: &str| {
            self.get(&format!(
                "/announce?info_hash={}&peer_id=-PROBE-0000000000000&port=1&left=0&numwant=0&compact=1&event={event}",
                percent(hash)
            ))
        };
        while Instant::now() < deadline {
            let reply = probe("started");
            if reply.starts_with(b"HTTP/1") && !reply.windows(7).any(|w| w == b"failure") {
                probe("stopped");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("opentracker never accepted the whitelisted info-hash".into())
    }

    /// Seeds listed for `hash` (scrape).
    fn seeders(&self, hash: &[u8; 20]) -> u64 {
        let reply = self.get(&format!("/scrape?info_hash={}", percent(hash)));
        let key = b"8:completei";
        let Some(at) = reply.windows(key.len()).position(|w| w == key) else {
            return 0;
        };
        reply[at + key.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |n, &b| {
                n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
            })
    }
}

fn free_tcp_udp_port() -> Result<u16, String> {
    for _ in 0..50 {
        let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no port free for both TCP and UDP on 127.0.0.1".into())
}

// ---------------------------------------------------------------------------------------------------------------
// Clients

/// The python3-libtorrent peer (one script with the tests; see its header).
const LT_CLIENT: &str = include_str!("../../../tests/src/libtorrent_client.py");

struct Launch {
    cmd: Command,
    done_marker: Option<&'static str>,
}

/// `resume` is an empty directory of this transfer: `cyclone download` refuses `--resume_dir=` (empty) although its
/// help says empty disables resume records.
fn seeder_cmd(
    o: &Opts,
    client: Client,
    torrent: &Path,
    seed_dir: &Path,
    script: &Path,
    resume: &Path,
) -> Launch {
    let port = free_port().to_string();
    let cmd = match client {
        Client::Cyclone => {
            let mut c = cyclone_command(o, resume, "seeder");
            c.current_dir(seed_dir)
                .arg("download")
                .arg(torrent)
                .args(["--shards", &o.cyclone_shards.to_string()])
                .args(["--bind", "127.0.0.1", "--minport", "0", "--json"])
                .args([
                    "--display_interval",
                    "1",
                    "--check_hashes",
                    "0",
                    "--resume_dir",
                ])
                .arg(resume);
            c
        }
        Client::Libtorrent => {
            let mut c = Command::new("/usr/bin/python3");
            c.arg(script)
                .arg("seed")
                .arg(torrent)
                .arg(seed_dir)
                .arg(&port)
                .arg("3600");
            c
        }
        Client::Aria2 => {
            let mut c = Command::new("aria2c");
            c.arg(format!("--dir={}", seed_dir.display()))
                .args(aria2_common())
                .args([
                    "--seed-ratio=0.0",
                    "--bt-seed-unverified=true",
                    "--bt-tracker-interval=3",
                ])
                .arg(format!("--listen-port={port}"))
                .arg(torrent);
            c
        }
    };
    Launch {
        cmd,
        done_marker: None,
    }
}

fn leecher_cmd(
    o: &Opts,
    client: Client,
    torrent: &Path,
    dir: &Path,
    script: &Path,
    resume: &Path,
) -> Launch {
    let port = free_port().to_string();
    match client {
        Client::Cyclone => {
            let mut c = cyclone_command(o, resume, "leecher");
            c.current_dir(dir)
                .arg("download")
                .arg(torrent)
                .args(["--shards", &o.cyclone_shards.to_string()])
                .args(["--bind", "127.0.0.1", "--minport", "0", "--json"])
                .args([
                    "--display_interval",
                    "0.1",
                    "--exit-on-complete",
                    "--resume_dir",
                ])
                .arg(resume);
            Launch {
                cmd: c,
                done_marker: Some("\"activity\":\"seeding\""),
            }
        }
        Client::Libtorrent => {
            let mut c = Command::new("/usr/bin/python3");
            c.arg(script)
                .arg("download")
                .arg(torrent)
                .arg(dir)
                .arg(&port)
                .arg(o.limit.as_secs().to_string());
            Launch {
                cmd: c,
                done_marker: Some("done"),
            }
        }
        Client::Aria2 => {
            let mut c = Command::new("aria2c");
            c.arg(format!("--dir={}", dir.display()))
                .args(aria2_common())
                .arg("--seed-time=0")
                .arg(format!("--listen-port={port}"))
                .arg(torrent);
            Launch {
                cmd: c,
                done_marker: Some("Download complete"),
            }
        }
    }
}

/// The cyclone binary, or `perf record` running it when `--perf-dir` is given (named after the resume directory,
/// which is unique per transfer).
fn cyclone_command(o: &Opts, resume: &Path, role: &str) -> Command {
    match &o.perf_dir {
        None => Command::new(&o.cyclone_bin),
        Some(dir) => {
            let unique = resume
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut c = Command::new("perf");
            c.args(["record", "-g", "-q", "-o"])
                .arg(dir.join(format!("{unique}-{role}.data")))
                .arg("--")
                .arg(&o.cyclone_bin);
            c
        }
    }
}

/// aria2c flags of the reference loopback recipe shared by seeder and leecher.
fn aria2_common() -> [&'static str; 8] {
    [
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--bt-external-ip=127.0.0.1",
        "--disable-ipv6=true",
        "--summary-interval=0",
        "--console-log-level=notice",
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// One transfer

#[derive(Debug, Clone)]
struct Outcome {
    wall: f64,
    done: Option<f64>,
    leecher_cpu: f64,
    seeder_cpu: f64,
}

struct Transfer<'a> {
    o: &'a Opts,
    client: Client,
    torrent: &'a Path,
    hash: [u8; 20],
    seed_dir: &'a Path,
    work: &'a Path,
    script: &'a Path,
    tracker: &'a Tracker,
    payload_sha1: [u8; 20],
}

impl Transfer<'_> {
    fn run(&self, tag: &str) -> Result<Outcome, String> {
        let logs = self.work.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
        let leech_dir = self.work.join(format!("leech-{tag}"));
        let _ = std::fs::remove_dir_all(&leech_dir);
        std::fs::create_dir_all(&leech_dir).map_err(|e| e.to_string())?;
        let result = self.run_in(tag, &logs, &leech_dir);
        let _ = std::fs::remove_dir_all(&leech_dir);
        result.map_err(|e| format!("{e} (logs: {}/{tag}-*.log)", logs.display()))
    }

    fn run_in(&self, tag: &str, logs: &Path, leech_dir: &Path) -> Result<Outcome, String> {
        let resume_seed = self.work.join(format!("resume-{tag}")).join("seeder");
        let resume_leech = leech_dir.join(".resume");
        for d in [&resume_seed, &resume_leech] {
            let _ = std::fs::remove_dir_all(d);
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        let mut seed = seeder_cmd(
            self.o,
            self.client,
            self.torrent,
            self.seed_dir,
            self.script,
            &resume_seed,
        );
        let mut seeder = spawn(&mut seed.cmd, &logs.join(format!("{tag}-seeder.log")), None)?.proc;
        let ready_by = Instant::now() + SEEDER_READY_LIMIT;
        while self.tracker.seeders(&self.hash) == 0 {
            if let Some((code, _)) = seeder.try_reap() {
                return Err(format!("seeder exited early with {code}"));
            }
            if Instant::now() > ready_by {
                return Err(format!(
                    "seeder not listed by the tracker within {SEEDER_READY_LIMIT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut leech = leecher_cmd(
            self.o,
            self.client,
            self.torrent,
            leech_dir,
            self.script,
            &resume_leech,
        );
        let seeder_cpu_before = cpu_seconds(seeder.pid()).unwrap_or(0.0);
        let start = Instant::now();
        let Spawned {
            proc: mut leecher,
            done: done_at,
            reader,
        } = spawn(
            &mut leech.cmd,
            &logs.join(format!("{tag}-leecher.log")),
            leech.done_marker,
        )?;
        let (code, leecher_cpu) = loop {
            if let Some(r) = leecher.try_reap() {
                break r;
            }
            if start.elapsed() > self.o.limit {
                return Err(format!(
                    "leecher did not finish within {:?}; killed",
                    self.o.limit
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let wall = start.elapsed().as_secs_f64();
        let seeder_cpu = cpu_seconds(seeder.pid()).unwrap_or(f64::NAN) - seeder_cpu_before;
        if self.o.perf_dir.is_some() {
            // perf writes a usable file only when stopped by a signal it handles.
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(seeder.pid(), libc::SIGINT) };
            let by = Instant::now() + Duration::from_secs(20);
            while seeder.try_reap().is_none() && Instant::now() < by {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(seeder);
        if code != 0 {
            return Err(format!("leecher exited with {code}"));
        }
        // stdout reaches EOF at the exit: the reader has seen every line once it ends.
        let _ = reader.join();
        let done = done_at
            .lock()
            .unwrap()
            .map(|at| at.duration_since(start).as_secs_f64());
        let copy = leech_dir.join(PAYLOAD_NAME);
        let got = sha1_file(&copy).map_err(|e| format!("{}: {e}", copy.display()))?;
        if got != self.payload_sha1 {
            return Err(format!(
                "SHA-1 mismatch: leecher's file {} vs original {}",
                hex(&got),
                hex(&self.payload_sha1)
            ));
        }
        Ok(Outcome {
            wall,
            done,
            leecher_cpu,
            seeder_cpu,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn fmt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.prec$}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(&o) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("transfer: {e}");
            std::process::exit(1);
        }
    }
}

/// Removes the work directory (payload included) when dropped, unless logs are kept.
struct WorkDir {
    path: PathBuf,
    keep_logs: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep_logs {
            let _ = std::fs::remove_dir_all(self.path.join("seed"));
            eprintln!("logs kept in {}", self.path.join("logs").display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn run(o: &Opts) -> Result<(), String> {
    if !o.cyclone_bin.exists() {
        return Err(format!(
            "{} does not exist: build it with `cargo build --release -p cyclone-tools`",
            o.cyclone_bin.display()
        ));
    }
    let work = WorkDir {
        path: std::env::temp_dir().join(format!("cyclone-transfer-{}", std::process::id())),
        keep_logs: o.keep_logs,
    };
    let seed_dir = work.path.join("seed");
    let tracker_dir = work.path.join("tracker");
    for d in [&seed_dir, &tracker_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // opentracker chroots into its directory and drops to nobody: it must be able to read it.
    use std::os::unix::fs::PermissionsExt;
    for d in [&work.path, &tracker_dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let len = o.size_mib << 20;
    let t0 = Instant::now();
    let (pieces, payload_sha1) = write_payload(&seed_dir.join(PAYLOAD_NAME), len)
        .map_err(|e| format!("writing the payload: {e}"))?;
    println!(
        "payload: {} MiB, {} pieces of {} KiB, SHA-1 {}, generated in {:.1} s",
        o.size_mib,
        pieces.len(),
        PIECE_LENGTH / 1024,
        hex(&payload_sha1),
        t0.elapsed().as_secs_f64()
    );
    let script = work.path.join("lt_client.py");
    std::fs::write(&script, LT_CLIENT).map_err(|e| e.to_string())?;

    // One torrent per transfer, all whitelisted before opentracker starts; the announce URL needs the tracker's
    // port, which is fixed before it starts.
    let sources: Vec<(usize, Client, String)> = (0..o.runs)
        .flat_map(|r| {
            o.pairs
                .iter()
                .map(move |&c| (r, c, format!("cyclone-bench-{c:?}-{r}")))
        })
        .collect();
    let probe_hashes: Vec<[u8; 20]> = sources
        .iter()
        .map(|(_, _, s)| torrent_bytes("x", len, &pieces, s).1)
        .collect();
    let tracker = Tracker::start(&tracker_dir, &probe_hashes)?;
    println!(
        "tracker: opentracker on 127.0.0.1:{} (whitelist of {})",
        tracker.port,
        sources.len()
    );
    println!(
        "seeders: cyclone --check_hashes 0 (no re-hash), libtorrent seed_mode (hashes each piece on first request), \
         aria2c --bt-seed-unverified (no re-hash); leechers start in an empty directory each time"
    );
    println!("load average at start: {}", load_average());

    let mut results: Vec<(Client, Result<Outcome, String>)> = Vec::new();
    for (run, client, source) in &sources {
        let (bytes, hash) = torrent_bytes(&tracker.announce_url(), len, &pieces, source);
        let torrent = work.path.join(format!("{source}.torrent"));
        std::fs::write(&torrent, bytes).map_err(|e| e.to_string())?;
        let t = Transfer {
            o,
            client: *client,
            torrent: &torrent,
            hash,
            seed_dir: &seed_dir,
            work: &work.path,
            script: &script,
            tracker: &tracker,
            payload_sha1,
        };
        let tag = format!("{client:?}-{run}").to_lowercase();
        let r = t.run(&tag);
        match &r {
            Ok(x) => println!(
                "run {} {:<26} wall {:>7.2} s  done {:>7} s  {:>8.1} MB/s  CPU seeder {:>6.2} s leecher {:>6.2} s  SHA-1 ok  (load {})",
                run + 1,
                client.label(),
                x.wall,
                fmt(x.done, 2),
                len as f64 / 1e6 / x.wall,
                x.seeder_cpu,
                x.leecher_cpu,
                load_average()
            ),
            Err(e) => println!("run {} {:<26} FAILED: {e}", run + 1, client.label()),
        }
        results.push((*client, r));
    }
    drop(tracker);

    println!();
    println!(
        "medians over {} run(s), {} MiB, loopback, MB = 10^6 bytes (wall: leecher start to leecher exit; done: leecher's own completion report):",
        o.runs, o.size_mib
    );
    println!(
        "{:<26} {:>4} {:>9} {:>9} {:>10} {:>10} {:>11} {:>11}",
        "pair", "ok", "wall s", "done s", "MB/s wall", "MB/s done", "seeder CPU", "leecher CPU"
    );
    let mut mbps = Vec::new();
    for &client in &o.pairs {
        let ok: Vec<&Outcome> = results
            .iter()
            .filter(|(c, _)| *c == client)
            .filter_map(|(_, r)| r.as_ref().ok())
            .collect();
        let wall = median(ok.iter().map(|x| x.wall).collect());
        let done = median(ok.iter().filter_map(|x| x.done).collect());
        let rate = wall.map(|w| len as f64 / 1e6 / w);
        let rate_done = done.map(|w| len as f64 / 1e6 / w);
        println!(
            "{:<26} {:>4} {:>9} {:>9} {:>10} {:>10} {:>11} {:>11}",
            client.label(),
            format!("{}/{}", ok.len(), o.runs),
            fmt(wall, 2),
            fmt(done, 2),
            fmt(rate, 1),
            fmt(rate_done, 1),
            fmt(median(ok.iter().map(|x| x.seeder_cpu).collect()), 2),
            fmt(median(ok.iter().map(|x| x.leecher_cpu).collect()), 2),
        );
        mbps.push((client, rate));
    }
    let cyclone = mbps
        .iter()
        .find(|(c, _)| *c == Client::Cyclone)
        .and_then(|(_, r)| *r);
    let best_other = mbps
        .iter()
        .filter(|(c, _)| *c != Client::Cyclone)
        .filter_map(|(c, r)| r.map(|r| (*c, r)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match (cyclone, best_other) {
        (Some(c), Some((other, r))) => println!(
            "ratio cyclone / best other ({}) MB/s (wall): {:.2}x (target >= 2x)",
            other.label(),
            c / r
        ),
        _ => println!("ratio cyclone / best other: n/a (a pair failed or was not run)"),
    }
    println!("load average at end: {}", load_average());
    Ok(())
}
