//! HTTP and UDP tracker load generator, comparing cyclone's tracker with Debian's opentracker in the same run.
//!
//! Workload (aquatic's load-test defaults): announces only, an info-hash pool with skewed popularity
//! (index = N * u^4 for uniform u: the hottest 1 % of torrents get ~32 % of announces), 25 % of
//! announces from seeders (left=0), compact=1, no numwant (server default 50). Either a new TCP
//! connection per announce or keep-alive connections. Latency goes into hdrhistogram; server CPU comes
//! from /proc/<pid>/stat (utime+stime) before and after, divided by the announces answered.
//!
//! Only loopback targets are accepted, and every run is bounded in time (at most 60 s).
//!
//! Modes:
//!   tracker_load run --target 127.0.0.1:PORT [--server-pid PID] [options]
//!   tracker_load write-pool FILE [--torrents N]
//!   tracker_load compare --cyclone-bin PATH [--opentracker PATH] [options]
//!       starts `cyclone-tracker --shards 1` and `opentracker -d DIR -w FILE` each pinned to CPU 0
//!       (taskset), loads each from CPU 1, and prints both results and their ratio.
//!   tracker_load wrk --cyclone-bin PATH [--rounds R --duration S --connections C]
//!       keep-alive requests/s on one core with Debian's wrk (one fixed announce URL, default tracker options).
//!   tracker_load engines --cyclone-bin PATH [options]
//!       the same tracker with `--http_engine httparse` and `--http_engine hyper`, with and without
//!       keep-alive: the measurement behind keeping the httparse loop.
//!
//! Options: --torrents N (10000) --connections C (64) --duration S (10) --keep-alive 0|1 (0)
//!          --seed S (pool seed, 1) --server-cpu CPU (0) --client-cpu CPU (1) --rounds R (1, max 15)
//!          --protocol http|udp (http)
//!
//! `--protocol udp` (BEP 15): `connections` client tasks, each with its own UDP socket and one
//! announce in flight (same workload: pool, skew, 25 % seeders, num_want -1 = server default);
//! each gets a connection id first and a new one every 50 s (connects are not counted as
//! announces, but their server CPU is: one per task per 50 s). A request unanswered after 1 s
//! counts as an error. `compare` then loads cyclone's UDP port and opentracker's `-P` port.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_lite::AsyncWriteExt;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

#[derive(Debug, Clone)]
struct Opts {
    target: Option<SocketAddr>,
    server_pid: Option<u32>,
    torrents: usize,
    connections: usize,
    duration: u64,
    keep_alive: bool,
    seed: u64,
    cyclone_bin: Option<PathBuf>,
    opentracker: PathBuf,
    server_cpu: usize,
    client_cpu: usize,
    rounds: usize,
    udp: bool,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        target: None,
        server_pid: None,
        torrents: 10_000,
        connections: 64,
        duration: 10,
        keep_alive: false,
        seed: 1,
        cyclone_bin: None,
        opentracker: PathBuf::from("/usr/bin/opentracker"),
        server_cpu: 0,
        client_cpu: 1,
        rounds: 1,
        udp: false,
    };
    let mut i = 0;
    while i < args.len() {
        let v = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{}: {e}", args[i]));
        match args[i].as_str() {
            "--target" => o.target = Some(v.parse().map_err(|e| format!("--target: {e}"))?),
            "--server-pid" => o.server_pid = Some(num(v)? as u32),
            "--torrents" => o.torrents = num(v)?.clamp(1, 10_000_000) as usize,
            "--connections" => o.connections = num(v)?.clamp(1, 4096) as usize,
            "--duration" => o.duration = num(v)?.clamp(1, 60),
            "--keep-alive" => o.keep_alive = num(v)? != 0,
            "--seed" => o.seed = num(v)?,
            "--cyclone-bin" => o.cyclone_bin = Some(PathBuf::from(v)),
            "--opentracker" => o.opentracker = PathBuf::from(v),
            "--server-cpu" => o.server_cpu = num(v)? as usize,
            "--client-cpu" => o.client_cpu = num(v)? as usize,
            "--rounds" => o.rounds = num(v)?.clamp(1, 15) as usize,
            "--protocol" => {
                o.udp = match v.as_str() {
                    "http" => false,
                    "udp" => true,
                    other => return Err(format!("--protocol: http or udp, not {other}")),
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    if let Some(t) = o.target {
        if !t.ip().is_loopback() {
            return Err(format!("refusing non-loopback target {t}"));
        }
    }
    Ok(o)
}

/// The info-hash pool: deterministic from the seed.
fn pool(n: usize, seed: u64) -> Vec<[u8; 20]> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| {
            let mut h = [0u8; 20];
            rng.fill(&mut h);
            h
        })
        .collect()
}

/// Hex lines, the format of opentracker's whitelist (and bttrack's allowed_list).
fn write_pool(path: &Path, hashes: &[[u8; 20]]) -> std::io::Result<()> {
    let mut s = String::with_capacity(hashes.len() * 41);
    for h in hashes {
        for b in h {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
    }
    std::fs::write(path, s)
}

fn enc(b: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &x in b {
        if x.is_ascii_alphanumeric() {
            out.push(x as char);
        } else {
            out.push('%');
            out.push(HEX[(x >> 4) as usize] as char);
            out.push(HEX[(x & 15) as usize] as char);
        }
    }
}

fn announce_request(rng: &mut fastrand::Rng, hashes: &[[u8; 20]], keep_alive: bool) -> Vec<u8> {
    let u = rng.f64();
    let idx = ((hashes.len() as f64) * u.powi(4)) as usize;
    let ih = &hashes[idx.min(hashes.len() - 1)];
    let mut pid = *b"-LT0001-000000000000";
    for b in &mut pid[8..] {
        *b = b'a' + rng.u8(..26);
    }
    let left = if rng.f64() < 0.25 {
        0
    } else {
        rng.u64(1..1 << 30)
    };
    let mut s = String::with_capacity(256);
    s.push_str("GET /announce?info_hash=");
    enc(ih, &mut s);
    s.push_str("&peer_id=");
    enc(&pid, &mut s);
    s.push_str(&format!(
        "&port={}&uploaded=0&downloaded=0&left={left}&compact=1&event=started HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        rng.u16(1024..65535)
    ));
    s.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    s.into_bytes()
}

#[derive(Debug)]
struct RunResult {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
    server_cpu_us: Option<f64>,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm field.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on Linux.
    100.0
}

/// The load generator's executor (one, unpinned; small io_memory so it starts under an 8 MiB `ulimit -l`).
fn client_executor() -> glommio::LocalExecutor {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("client executor")
}

/// Request latencies in microseconds, 1 µs to 60 s, 3 significant figures.
fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Runs the load for `duration_secs`, then stops it and reads the counters; in-flight requests may finish (each
/// waited for at most 5 s) but are not counted.
async fn stop_and_drain(
    duration_secs: u64,
    stop: &Cell<bool>,
    tasks: Vec<glommio::Task<()>>,
    ok: &Cell<u64>,
    errors: &Cell<u64>,
) -> (u64, u64) {
    glommio::timer::sleep(Duration::from_secs(duration_secs)).await;
    stop.set(true);
    let counts = (ok.get(), errors.get());
    for t in tasks {
        let _ = glommio::timer::timeout(Duration::from_secs(5), async move {
            t.await;
            Ok(())
        })
        .await;
    }
    counts
}

/// Turns one run's counts into a [`RunResult`], with the server's CPU time per successful request when its pid
/// is known (`cpu0`: its CPU ticks when the run started).
fn run_result(
    o: &Opts,
    start: Instant,
    cpu0: Option<u64>,
    ok: u64,
    errors: u64,
    hist: Histogram<u64>,
) -> RunResult {
    let elapsed = start
        .elapsed()
        .min(Duration::from_secs(o.duration) + Duration::from_millis(50));
    let cpu1 = o.server_pid.and_then(cpu_ticks);
    let server_cpu_us = match (cpu0, cpu1) {
        (Some(a), Some(b)) if ok > 0 => {
            Some((b - a) as f64 / clock_ticks_per_sec() * 1e6 / ok as f64)
        }
        _ => None,
    };
    RunResult {
        ok,
        errors,
        elapsed,
        hist,
        server_cpu_us,
    }
}

fn run_load(o: &Opts, target: SocketAddr, hashes: Arc<Vec<[u8; 20]>>) -> RunResult {
    if o.udp {
        return run_load_udp(o, target, hashes);
    }
    // The client is one glommio executor (on the calling thread's CPU) running `connections`
    // concurrent connection tasks: far cheaper per request than a blocking thread per connection,
    // so one client core can saturate one server core.
    let o = o.clone();
    let cpu0 = o.server_pid.and_then(cpu_ticks);
    let start = Instant::now();
    let ex = client_executor();
    let (ok, errors, hist) = ex.run(async move {
        let ok = Rc::new(Cell::new(0u64));
        let errors = Rc::new(Cell::new(0u64));
        let hist = Rc::new(RefCell::new(latency_histogram()));
        let stop = Rc::new(Cell::new(false));
        let mut tasks = Vec::new();
        for t in 0..o.connections {
            let (ok, errors, hist, stop, hashes) = (
                ok.clone(),
                errors.clone(),
                hist.clone(),
                stop.clone(),
                hashes.clone(),
            );
            let keep_alive = o.keep_alive;
            let seed = o.seed.wrapping_mul(1000).wrapping_add(t as u64);
            tasks.push(glommio::spawn_local(async move {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut buf = Vec::with_capacity(4096);
                let mut conn: Option<glommio::net::TcpStream> = None;
                while !stop.get() {
                    let req = announce_request(&mut rng, &hashes, keep_alive);
                    let t0 = Instant::now();
                    let mut s = match conn.take() {
                        Some(s) => s,
                        None => match glommio::net::TcpStream::connect(target).await {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                s
                            }
                            Err(_) => {
                                errors.set(errors.get() + 1);
                                glommio::timer::sleep(Duration::from_millis(1)).await;
                                continue;
                            }
                        },
                    };
                    let r = match s.write_all(&req).await {
                        Ok(()) => read_response_async(&mut s, &mut buf).await,
                        Err(e) => Err(e),
                    };
                    match r {
                        Ok((200, keep)) => {
                            let _ = hist
                                .borrow_mut()
                                .record(t0.elapsed().as_micros().max(1) as u64);
                            ok.set(ok.get() + 1);
                            if keep && keep_alive {
                                conn = Some(s);
                            } else {
                                let _ = s.close().await;
                            }
                        }
                        _ => errors.set(errors.get() + 1),
                    }
                }
            }));
        }
        let (okn, errn) = stop_and_drain(o.duration, &stop, tasks, &ok, &errors).await;
        let h = hist.borrow().clone();
        (okn, errn, h)
    });
    run_result(&o, start, cpu0, ok, errors, hist)
}

/// A BEP 15 announce (98 bytes) with the HTTP workload's choices (hash skew, 25 % seeders).
fn udp_announce(rng: &mut fastrand::Rng, hashes: &[[u8; 20]], cid: u64, tid: u32) -> Vec<u8> {
    let u = rng.f64();
    let idx = ((hashes.len() as f64) * u.powi(4)) as usize;
    let ih = &hashes[idx.min(hashes.len() - 1)];
    let mut pid = *b"-LT0001-000000000000";
    for b in &mut pid[8..] {
        *b = b'a' + rng.u8(..26);
    }
    let left = if rng.f64() < 0.25 {
        0
    } else {
        rng.u64(1..1 << 30)
    };
    let mut p = Vec::with_capacity(98);
    p.extend_from_slice(&cid.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(ih);
    p.extend_from_slice(&pid);
    p.extend_from_slice(&0u64.to_be_bytes());
    p.extend_from_slice(&left.to_be_bytes());
    p.extend_from_slice(&0u64.to_be_bytes());
    p.extend_from_slice(&2u32.to_be_bytes()); // started
    p.extend_from_slice(&[0; 4]); // ip: the sender's
    p.extend_from_slice(&rng.u32(..).to_be_bytes()); // key
    p.extend_from_slice(&(-1i32).to_be_bytes()); // num_want: server default
    p.extend_from_slice(&rng.u16(1024..65535).to_be_bytes());
    p
}

/// Sends `packet` and waits (≤ 1 s, the socket's read timeout) for the answer to `tid`; returns
/// its action and length.
async fn udp_exchange(
    sock: &glommio::net::UdpSocket,
    packet: &[u8],
    tid: u32,
    buf: &mut [u8],
) -> Option<(u32, usize)> {
    sock.send(packet).await.ok()?;
    // Answers to earlier, timed-out requests may still arrive: skip them (bounded).
    for _ in 0..16 {
        let n = sock.recv(buf).await.ok()?;
        if n >= 8 && buf[4..8] == tid.to_be_bytes() {
            return Some((u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]), n));
        }
    }
    None
}

/// The UDP form of [`run_load`].
fn run_load_udp(o: &Opts, target: SocketAddr, hashes: Arc<Vec<[u8; 20]>>) -> RunResult {
    const PROTOCOL_ID: u64 = 0x0417_2710_1980;
    let o = o.clone();
    let cpu0 = o.server_pid.and_then(cpu_ticks);
    let start = Instant::now();
    let ex = client_executor();
    let (ok, errors, hist) = ex.run(async move {
        let ok = Rc::new(Cell::new(0u64));
        let errors = Rc::new(Cell::new(0u64));
        let hist = Rc::new(RefCell::new(latency_histogram()));
        let stop = Rc::new(Cell::new(false));
        let mut tasks = Vec::new();
        for t in 0..o.connections {
            let (ok, errors, hist, stop, hashes) = (
                ok.clone(),
                errors.clone(),
                hist.clone(),
                stop.clone(),
                hashes.clone(),
            );
            let seed = o.seed.wrapping_mul(1000).wrapping_add(t as u64);
            tasks.push(glommio::spawn_local(async move {
                let mut rng = fastrand::Rng::with_seed(seed);
                let Ok(sock) = glommio::net::UdpSocket::bind("127.0.0.1:0") else {
                    errors.set(errors.get() + 1);
                    return;
                };
                if sock.connect(target).await.is_err() {
                    errors.set(errors.get() + 1);
                    return;
                }
                let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 2048];
                let mut cid: Option<(u64, Instant)> = None;
                while !stop.get() {
                    let tid = rng.u32(..);
                    let id = match cid {
                        Some((id, at)) if at.elapsed() < Duration::from_secs(50) => id,
                        _ => {
                            let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
                            p.extend_from_slice(&0u32.to_be_bytes());
                            p.extend_from_slice(&tid.to_be_bytes());
                            match udp_exchange(&sock, &p, tid, &mut buf).await {
                                Some((0, 16)) => {
                                    let mut b = [0u8; 8];
                                    b.copy_from_slice(&buf[8..16]);
                                    let id = u64::from_be_bytes(b);
                                    cid = Some((id, Instant::now()));
                                    id
                                }
                                _ => {
                                    errors.set(errors.get() + 1);
                                    glommio::timer::sleep(Duration::from_millis(1)).await;
                                    continue;
                                }
                            }
                        }
                    };
                    let p = udp_announce(&mut rng, &hashes, id, tid);
                    let t0 = Instant::now();
                    match udp_exchange(&sock, &p, tid, &mut buf).await {
                        Some((1, n)) if n >= 20 => {
                            let _ = hist
                                .borrow_mut()
                                .record(t0.elapsed().as_micros().max(1) as u64);
                            ok.set(ok.get() + 1);
                        }
                        Some((3, _)) => {
                            errors.set(errors.get() + 1);
                            cid = None;
                        }
                        _ => errors.set(errors.get() + 1),
                    }
                }
            }));
        }
        let (okn, errn) = stop_and_drain(o.duration, &stop, tasks, &ok, &errors).await;
        let h = hist.borrow().clone();
        (okn, errn, h)
    });
    run_result(&o, start, cpu0, ok, errors, hist)
}

/// Reads one response; returns (status, whether the connection may be kept).
async fn read_response_async(
    s: &mut glommio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    use futures_lite::AsyncReadExt;
    buf.clear();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let len = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            let close = head.contains("connection: close")
                || head.starts_with("http/1.0") && !head.contains("keep-alive");
            let Some(len) = len else {
                while s.read(&mut tmp).await? > 0 {}
                return Ok((status, false));
            };
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    return Ok((status, false));
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return Ok((status, !close));
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return if buf.is_empty() {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            } else {
                Ok((0, false))
            };
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf.len() > 1 << 20 {
            return Err(std::io::Error::other("response too large"));
        }
    }
}

fn report(name: &str, r: &RunResult) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{name}: {} ok, {} errors in {:.1} s = {:.0} announces/s; latency us p50 {} p90 {} p99 {} max {}; server CPU per announce: {}",
        r.ok,
        r.errors,
        secs,
        r.ok as f64 / secs,
        r.hist.value_at_quantile(0.5),
        r.hist.value_at_quantile(0.9),
        r.hist.value_at_quantile(0.99),
        r.hist.max(),
        r.server_cpu_us.map_or("n/a".to_string(), |c| format!("{c:.1} us"))
    );
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
        .unwrap_or(0)
}

fn wait_listening(addr: SocketAddr, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Pins the calling thread (and so the threads it starts) to `cpu`.
fn pin_self(cpu: usize) {
    let _ = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status();
}

fn compare(o: &Opts) -> Result<(), String> {
    let bin = o.cyclone_bin.clone().ok_or("compare needs --cyclone-bin")?;
    let hashes = Arc::new(pool(o.torrents, o.seed));
    let dir = std::env::temp_dir().join(format!("tracker-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // opentracker chroots into the dir and drops to nobody: world-readable dir and whitelist.
    let _ = Command::new("chmod").arg("755").arg(&dir).status();
    write_pool(&dir.join("whitelist"), &hashes).map_err(|e| e.to_string())?;
    let _ = Command::new("chmod")
        .arg("644")
        .arg(dir.join("whitelist"))
        .status();
    pin_self(o.client_cpu);
    // Alternate the two servers `rounds` times (the machine is shared: alternating spreads the
    // noise over both) and report medians.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..o.rounds {
        let r = run_cyclone(o, &bin, &dir, hashes.clone(), "httparse")?;
        report(&format!("round {round} cyclone"), &r);
        ours.push(r);
        let r = run_opentracker(o, &dir, hashes.clone())?;
        report(&format!("round {round} opentracker"), &r);
        theirs.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    // Each round's two runs are minutes closer to each other than to other rounds, so the ratio within a round
    // is less exposed to this VM's drift than the ratio of the two medians: both are printed.
    let mut paired: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .filter_map(|(a, b)| Some(a.server_cpu_us? / b.server_cpu_us?))
        .collect();
    let mut cpu_a: Vec<f64> = ours.iter().filter_map(|r| r.server_cpu_us).collect();
    let mut cpu_b: Vec<f64> = theirs.iter().filter_map(|r| r.server_cpu_us).collect();
    let mut rps_a: Vec<f64> = ours
        .iter()
        .map(|r| r.ok as f64 / r.elapsed.as_secs_f64())
        .collect();
    let mut rps_b: Vec<f64> = theirs
        .iter()
        .map(|r| r.ok as f64 / r.elapsed.as_secs_f64())
        .collect();
    let (ca, cb, ra, rb) = (
        median(&mut cpu_a),
        median(&mut cpu_b),
        median(&mut rps_a),
        median(&mut rps_b),
    );
    println!(
        "median over {} rounds, {}: cyclone {ca:.1} us CPU/announce, {ra:.0} announces/s; opentracker {cb:.1} us CPU/announce, {rb:.0} announces/s",
        o.rounds,
        if o.udp {
            "UDP".to_string()
        } else {
            format!("HTTP keep-alive {}", o.keep_alive)
        }
    );
    println!(
        "ratio cyclone/opentracker server CPU per announce: {:.2}x",
        ca / cb
    );
    println!("ratio cyclone/opentracker announces/s: {:.2}x", ra / rb);
    if !paired.is_empty() {
        let shown: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "server CPU ratio within each round: {} (median {:.2}x)",
            shown.join(" "),
            median(&mut paired)
        );
    }
    Ok(())
}

fn run_cyclone(
    o: &Opts,
    bin: &Path,
    dir: &Path,
    hashes: Arc<Vec<[u8; 20]>>,
    engine: &str,
) -> Result<RunResult, String> {
    let (child, addr) =
        start_cyclone(o, bin, dir, &["--access_log", "0", "--http_engine", engine])?;
    // taskset execs the tracker, so the child's pid is the tracker's.
    let mut oc = o.clone();
    oc.server_pid = Some(child.0.id());
    Ok(run_load(&oc, addr, hashes))
}

/// Starts `cyclone-tracker --shards 1` on 127.0.0.1, pinned to the server CPU, with `extra` options, and waits
/// until it listens.
fn start_cyclone(
    o: &Opts,
    bin: &Path,
    dir: &Path,
    extra: &[&str],
) -> Result<(KillOnDrop, SocketAddr), String> {
    let port = free_port();
    let child = Command::new("taskset")
        .args(["-c", &o.server_cpu.to_string()])
        .arg(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--shards",
            "1",
            "--save_dfile_interval",
            "3600",
        ])
        .arg("--dfile")
        .arg(dir.join("dstate"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let child = KillOnDrop(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("literal");
    if !wait_listening(addr, 30) {
        return Err("cyclone-tracker did not start".into());
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok((child, addr))
}

/// Keep-alive requests/s on one core, the figure: `wrk -t1 -c<connections> -d<duration>s` (pinned to the
/// client CPU) against one `cyclone-tracker --shards 1` with default options (pinned to the server CPU), one fixed
/// announce URL, `rounds` runs; prints each run's requests/s and server CPU per request, then the median.
fn keep_alive_wrk(o: &Opts) -> Result<(), String> {
    let bin = o.cyclone_bin.clone().ok_or("wrk needs --cyclone-bin")?;
    let dir = std::env::temp_dir().join(format!("tracker-load-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (child, addr) = start_cyclone(o, &bin, &dir, &[])?;
    let pid = child.0.id();
    let mut url = format!("http://{addr}/announce?info_hash=");
    enc(&[0x12; 20], &mut url);
    url.push_str("&peer_id=-CY0001-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=5&compact=1&event=started");
    let mut rates = Vec::with_capacity(o.rounds);
    for round in 0..o.rounds {
        let before = cpu_ticks(pid).ok_or("server CPU time unreadable")?;
        let out = Command::new("taskset")
            .args(["-c", &o.client_cpu.to_string(), "wrk", "-t1"])
            .arg(format!("-c{}", o.connections))
            .arg(format!("-d{}s", o.duration))
            .arg(&url)
            .output()
            .map_err(|e| format!("running wrk (apt-get install wrk): {e}"))?;
        let after = cpu_ticks(pid).ok_or("server CPU time unreadable")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = |key: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        let rate = line("Requests/sec:")
            .ok_or_else(|| format!("no Requests/sec in wrk output: {text}"))?;
        let requests = rate * o.duration as f64;
        let cpu_us = (after - before) as f64 / clock_ticks_per_sec() * 1e6 / requests;
        println!(
            "round {round}: {rate:.0} requests/s, server CPU {:.0} % busy, {cpu_us:.2} us per request",
            (after - before) as f64 / clock_ticks_per_sec() / o.duration as f64 * 100.0
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median over {} rounds, keep-alive, wrk -c{}: {:.0} requests/s on one core",
        rates.len(),
        o.connections,
        rates[rates.len() / 2]
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn run_opentracker(o: &Opts, dir: &Path, hashes: Arc<Vec<[u8; 20]>>) -> Result<RunResult, String> {
    let port = free_port();
    let child = Command::new("taskset")
        .args(["-c", &o.server_cpu.to_string()])
        .arg(&o.opentracker)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
            "-d",
        ])
        .arg(dir)
        .args(["-w", "whitelist"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", o.opentracker.display()))?;
    let child = KillOnDrop(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("literal");
    if !wait_listening(addr, 30) {
        return Err("opentracker did not start".into());
    }
    // It loads the whitelist about a second after it starts listening.
    std::thread::sleep(Duration::from_millis(2500));
    let mut oo = o.clone();
    oo.server_pid = Some(child.0.id());
    Ok(run_load(&oo, addr, hashes))
}

/// hyper vs httparse inside the same tracker, alternating, with and without keep-alive.
fn engines(o: &Opts) -> Result<(), String> {
    let bin = o.cyclone_bin.clone().ok_or("engines needs --cyclone-bin")?;
    let hashes = Arc::new(pool(o.torrents, o.seed));
    let dir = std::env::temp_dir().join(format!("tracker-engines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    pin_self(o.client_cpu);
    for keep_alive in [true, false] {
        let mut oo = o.clone();
        oo.keep_alive = keep_alive;
        let mut med = Vec::new();
        for engine in ["httparse", "hyper"] {
            let mut cpu = Vec::new();
            let mut rps = Vec::new();
            for round in 0..o.rounds {
                let r = run_cyclone(&oo, &bin, &dir, hashes.clone(), engine)?;
                report(
                    &format!("keep-alive {keep_alive} {engine} round {round}"),
                    &r,
                );
                cpu.extend(r.server_cpu_us);
                rps.push(r.ok as f64 / r.elapsed.as_secs_f64());
            }
            cpu.sort_by(|a, b| a.total_cmp(b));
            rps.sort_by(|a, b| a.total_cmp(b));
            med.push((
                engine,
                cpu.get(cpu.len() / 2).copied().unwrap_or(f64::NAN),
                rps[rps.len() / 2],
            ));
        }
        for (engine, cpu, rps) in &med {
            println!("keep-alive {keep_alive}: {engine} median {cpu:.1} us server CPU/request, {rps:.0} requests/s");
        }
        println!(
            "keep-alive {keep_alive}: hyper/httparse CPU per request {:.2}x",
            med[1].1 / med[0].1
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => parse_opts(&args[1..]).and_then(|o| {
            let target = o.target.ok_or("run needs --target 127.0.0.1:PORT")?;
            let hashes = Arc::new(pool(o.torrents, o.seed));
            let r = run_load(&o, target, hashes);
            report("target", &r);
            Ok(())
        }),
        Some("write-pool") => match args.get(1) {
            Some(path) => parse_opts(&args[2..]).and_then(|o| {
                write_pool(Path::new(path), &pool(o.torrents, o.seed))
                    .map_err(|e| format!("{path}: {e}"))
            }),
            None => Err("write-pool needs a FILE".into()),
        },
        Some("compare") => parse_opts(&args[1..]).and_then(|o| compare(&o)),
        Some("engines") => parse_opts(&args[1..]).and_then(|o| engines(&o)),
        Some("wrk") => parse_opts(&args[1..]).and_then(|o| keep_alive_wrk(&o)),
        _ => Err(
            "usage: tracker_load run|write-pool|compare|engines|wrk [options] (see the file's doc comment)"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("tracker_load: {e}");
        std::process::exit(2);
    }
}
