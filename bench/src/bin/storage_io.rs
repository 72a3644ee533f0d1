//! Storage I/O on glommio: `BufferedFile` (io_uring through the page cache) against `DmaFile` (O_DIRECT, no page
//! cache), for the seedbox pattern, with plain `pread`/`pwrite` (what libtorrent 2.1 and Transmission do) as the
//! reference measured in the same run.
//!
//! Run: `cargo run --release -p cyclone-bench --bin storage_io [-- DIR [FILE_MIB [READS]]]`
//! (defaults: a fresh directory under the system temp dir, 256 MiB, 4000 reads per cell).
//!
//! Phases, all on one glommio `LocalExecutor` (io_memory 2 MiB):
//! 1. sequential piece writes: FILE_MIB × 1 MiB writes, 4 in flight, then `fdatasync` (timed apart);
//! 2. random 16 KiB block reads (aligned to 16 KiB, like upload requests), queue depth 1 and 16:
//!    page cache warm (file read once before), and cold (`fdatasync` + `posix_fadvise(DONTNEED)` first; the cold cells
//!    use READS reads over a file of FILE_MIB so most reads miss the cache);
//! 3. sequential 4 MiB reads, 4 in flight, cold (the recheck pattern);
//! 4. a full recheck of the file as a 1 MiB-piece torrent: cyclone's `storage::recheck` against python3-libtorrent's
//!    check of the same file (both cold), with single-stream SHA-1 over memory as the CPU ceiling.
//!
//! Reported per cell: wall time, MB/s, operations/s, CPU time per operation (getrusage of this thread), and the
//! latency p50/p99 of one operation. Every read is checked against the pattern (each 8-byte word holds its own file
//! offset), so no cell can "win" by reading garbage. DMA has no page cache, so its warm and cold cells both go to the
//! device (here: a virtio disk whose host caches, which flatters O_DIRECT compared with a real disk). Numbers are
//! noisy: other agents compile on the same two cores.

use glommio::io::{BufferedFile, DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const PIECE: usize = 1 << 20;
const BLOCK: usize = 16 << 10;
const SEQ_READ: usize = 4 << 20;

fn thread_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the struct we pass, which lives on our stack.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Fills `buf` (which starts at file offset `pos`) with the pattern: every 8-byte word holds its own offset.
fn fill(buf: &mut [u8], pos: u64) {
    for (i, w) in buf.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(pos + 8 * i as u64).to_le_bytes());
    }
}

/// Checks the pattern (every word) of bytes read at `pos`.
fn check(buf: &[u8], pos: u64, want: usize) {
    assert_eq!(buf.len(), want, "short read at {pos}");
    for (i, w) in buf.chunks_exact(8).enumerate() {
        let got = u64::from_le_bytes(w.try_into().unwrap());
        assert_eq!(got, pos + 8 * i as u64, "wrong data at {pos}+{}", 8 * i);
    }
}

fn drop_cache(path: &Path) {
    let f = std::fs::File::open(path).expect("open for fadvise");
    f.sync_all().expect("fsync");
    // SAFETY: plain syscall on a valid fd we own.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

struct Cell {
    name: String,
    ops: u64,
    bytes: u64,
    wall: Duration,
    cpu: Duration,
    hist: Histogram<u64>,
}

impl Cell {
    fn print(&self) {
        let secs = self.wall.as_secs_f64();
        println!(
            "{:<44} {:>9.1} MB/s {:>10.0} op/s {:>8.2} us CPU/op  p50 {:>7.1} us  p99 {:>8.1} us",
            self.name,
            self.bytes as f64 / secs / 1e6,
            self.ops as f64 / secs,
            self.cpu.as_secs_f64() * 1e6 / self.ops as f64,
            self.hist.value_at_quantile(0.5) as f64 / 1000.0,
            self.hist.value_at_quantile(0.99) as f64 / 1000.0,
        );
    }
}

/// Which implementation a cell uses.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Buffered,
    Dma,
    Pread,
    /// BufferedFile, but first a non-blocking `preadv2(RWF_NOWAIT)`: served from the page cache without io_uring
    /// when the data is cached, io_uring only for what is not.
    Nowait,
}

enum Handle {
    Buffered(BufferedFile),
    Dma(DmaFile),
    Pread(std::fs::File),
    Nowait(BufferedFile),
}

/// `preadv2(fd, buf, pos, RWF_NOWAIT)`: bytes read from the page cache, or 0 when it would block.
fn read_nowait(fd: i32, buf: &mut [u8], pos: u64) -> usize {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the iovec points into `buf`, which outlives the call; the kernel writes at most `buf.len()` bytes.
    let n = unsafe { libc::preadv2(fd, &iov, 1, pos as i64, libc::RWF_NOWAIT) };
    n.max(0) as usize
}

async fn open(kind: Kind, path: &Path) -> Handle {
    match kind {
        Kind::Buffered => Handle::Buffered(BufferedFile::open(path).await.expect("buffered open")),
        Kind::Dma => Handle::Dma(DmaFile::open(path).await.expect("dma open")),
        Kind::Pread => Handle::Pread(std::fs::File::open(path).expect("open")),
        Kind::Nowait => Handle::Nowait(BufferedFile::open(path).await.expect("buffered open")),
    }
}

async fn read(h: &Handle, pos: u64, len: usize) {
    match h {
        Handle::Buffered(f) => {
            let r = f.read_at(pos, len).await.expect("buffered read");
            check(&r, pos, len);
        }
        Handle::Dma(f) => {
            let r = f.read_at(pos, len).await.expect("dma read");
            check(&r, pos, len);
        }
        Handle::Nowait(f) => {
            let mut buf = vec![0u8; len];
            let mut done = read_nowait(f.as_raw_fd(), &mut buf, pos);
            while done < len {
                let r = f
                    .read_at(pos + done as u64, len - done)
                    .await
                    .expect("buffered read");
                assert!(!r.is_empty(), "EOF");
                buf[done..done + r.len()].copy_from_slice(&r);
                done += r.len();
            }
            check(&buf, pos, len);
        }
        Handle::Pread(f) => {
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, pos).expect("pread");
            check(&buf, pos, len);
        }
    }
}

/// Random aligned 16 KiB reads with `qd` tasks in flight.
async fn random_reads(
    name: String,
    kind: Kind,
    path: &Path,
    file_len: u64,
    reads: u64,
    qd: u64,
) -> Cell {
    let h = Rc::new(open(kind, path).await);
    let blocks = file_len / BLOCK as u64;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..qd {
        let h = h.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut rng = fastrand::Rng::with_seed(lane + 1);
            let mut hist = Histogram::<u64>::new(3).unwrap();
            for _ in 0..reads / qd {
                let pos = rng.u64(0..blocks) * BLOCK as u64;
                let s = Instant::now();
                read(&h, pos, BLOCK).await;
                hist.record(s.elapsed().as_nanos() as u64).unwrap();
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        hist.add(t.await).unwrap();
    }
    let ops = (reads / qd) * qd;
    Cell {
        name,
        ops,
        bytes: ops * BLOCK as u64,
        wall: t0.elapsed(),
        cpu: thread_cpu() - cpu0,
        hist,
    }
}

/// Sequential reads of `len` with `qd` in flight over the whole file.
async fn sequential_reads(name: String, kind: Kind, path: &Path, file_len: u64, qd: u64) -> Cell {
    let h = Rc::new(open(kind, path).await);
    let chunks = file_len / SEQ_READ as u64;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let next = Rc::new(std::cell::Cell::new(0u64));
    let mut tasks = Vec::new();
    for _ in 0..qd {
        let (h, next) = (h.clone(), next.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            loop {
                let i = next.get();
                if i >= chunks {
                    break;
                }
                next.set(i + 1);
                let s = Instant::now();
                read(&h, i * SEQ_READ as u64, SEQ_READ).await;
                hist.record(s.elapsed().as_nanos() as u64).unwrap();
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        hist.add(t.await).unwrap();
    }
    Cell {
        name,
        ops: chunks,
        bytes: chunks * SEQ_READ as u64,
        wall: t0.elapsed(),
        cpu: thread_cpu() - cpu0,
        hist,
    }
}

/// Sequential 1 MiB piece writes, 4 in flight; returns the write cell and the fdatasync time.
async fn sequential_writes(kind: Kind, path: &Path, pieces: u64) -> (Cell, Duration) {
    const QD: u64 = 4;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let next = Rc::new(std::cell::Cell::new(0u64));
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let sync_time;
    match kind {
        Kind::Buffered => {
            let f = Rc::new(
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .buffered_open(path)
                    .await
                    .expect("create"),
            );
            let mut tasks = Vec::new();
            for _ in 0..QD {
                let (f, next) = (f.clone(), next.clone());
                tasks.push(glommio::spawn_local(async move {
                    let mut hist = Histogram::<u64>::new(3).unwrap();
                    loop {
                        let i = next.get();
                        if i >= pieces {
                            break;
                        }
                        next.set(i + 1);
                        let pos = i * PIECE as u64;
                        let mut buf = vec![0u8; PIECE];
                        fill(&mut buf, pos);
                        let s = Instant::now();
                        let n = f.write_at(buf, pos).await.expect("write");
                        hist.record(s.elapsed().as_nanos() as u64).unwrap();
                        assert_eq!(n, PIECE, "short write");
                    }
                    hist
                }));
            }
            for t in tasks {
                hist.add(t.await).unwrap();
            }
            let s = Instant::now();
            f.fdatasync().await.expect("fdatasync");
            sync_time = s.elapsed();
        }
        Kind::Dma => {
            let f = Rc::new(DmaFile::create(path).await.expect("dma create"));
            let mut tasks = Vec::new();
            for _ in 0..QD {
                let (f, next) = (f.clone(), next.clone());
                tasks.push(glommio::spawn_local(async move {
                    let mut hist = Histogram::<u64>::new(3).unwrap();
                    loop {
                        let i = next.get();
                        if i >= pieces {
                            break;
                        }
                        next.set(i + 1);
                        let pos = i * PIECE as u64;
                        let mut buf = f.alloc_dma_buffer(PIECE);
                        fill(buf.as_bytes_mut(), pos);
                        let s = Instant::now();
                        let n = f.write_at(buf, pos).await.expect("dma write");
                        hist.record(s.elapsed().as_nanos() as u64).unwrap();
                        assert_eq!(n, PIECE, "short write");
                    }
                    hist
                }));
            }
            for t in tasks {
                hist.add(t.await).unwrap();
            }
            let s = Instant::now();
            f.fdatasync().await.expect("fdatasync");
            sync_time = s.elapsed();
        }
        Kind::Pread | Kind::Nowait => {
            let f = std::fs::File::create(path).expect("create");
            let mut buf = vec![0u8; PIECE];
            for i in 0..pieces {
                let pos = i * PIECE as u64;
                fill(&mut buf, pos);
                let s = Instant::now();
                f.write_all_at(&buf, pos).expect("pwrite");
                hist.record(s.elapsed().as_nanos() as u64).unwrap();
            }
            let s = Instant::now();
            f.sync_data().expect("fdatasync");
            sync_time = s.elapsed();
        }
    }
    let wall = t0.elapsed() - sync_time;
    (
        Cell {
            name: String::new(),
            ops: pieces,
            bytes: pieces * PIECE as u64,
            wall,
            cpu: thread_cpu() - cpu0,
            hist,
        },
        sync_time,
    )
}

fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Buffered => "BufferedFile",
        Kind::Dma => "DmaFile",
        Kind::Pread => "pread (std, blocking)",
        Kind::Nowait => "BufferedFile+RWF_NOWAIT",
    }
}

async fn run(dir: PathBuf, file_mib: u64, reads: u64) {
    let pieces = file_mib;
    let file_len = pieces * PIECE as u64;
    // The glommio DMA probe trap: the first DmaFile opened on a device must be non-empty (stack-notes 1f). Write a
    // non-empty file with std first and open it with DmaFile before any other DMA file.
    let probe = dir.join("probe.bin");
    std::fs::write(&probe, vec![1u8; 4096]).expect("probe file");
    DmaFile::open(&probe)
        .await
        .expect("probe open")
        .close()
        .await
        .expect("probe close");

    if std::env::var("STORAGE_IO_ONLY").as_deref() == Ok("recheck") {
        // Only phase 4, three times (to see the noise).
        let data = dir.join("w-BufferedFile.bin");
        if !data.exists() {
            sequential_writes(Kind::Buffered, &data, pieces).await;
        }
        for _ in 0..3 {
            recheck_phase(&dir, &data, file_len).await;
        }
        return;
    }
    println!(
        "file {file_mib} MiB, {reads} random reads per cell, dir {}",
        dir.display()
    );
    println!("-- sequential 1 MiB piece writes (4 in flight; pwrite: 1), fdatasync timed apart");
    for kind in [Kind::Buffered, Kind::Dma, Kind::Pread] {
        let path = dir.join(format!("w-{}.bin", label(kind).split(' ').next().unwrap()));
        let (mut cell, sync) = sequential_writes(kind, &path, pieces).await;
        cell.name = format!("write {}", label(kind));
        cell.print();
        println!("{:<44} fdatasync {:.1} ms", "", sync.as_secs_f64() * 1e3);
    }
    let data = dir.join("w-BufferedFile.bin");
    for (temp, qds) in [("warm", [1u64, 16]), ("cold", [1, 16])] {
        println!("-- random 16 KiB block reads, page cache {temp}");
        for kind in [Kind::Buffered, Kind::Nowait, Kind::Dma, Kind::Pread] {
            for qd in qds {
                if kind == Kind::Pread && qd > 1 {
                    continue;
                }
                if temp == "warm" {
                    let f = std::fs::File::open(&data).unwrap();
                    let mut buf = vec![0u8; PIECE];
                    for i in 0..pieces {
                        f.read_exact_at(&mut buf, i * PIECE as u64).unwrap();
                    }
                } else {
                    drop_cache(&data);
                }
                let name = format!("read16k {temp} {} qd{qd}", label(kind));
                random_reads(name, kind, &data, file_len, reads, qd)
                    .await
                    .print();
            }
        }
    }
    println!(
        "-- sequential 4 MiB reads, 4 in flight (pread: 1), page cache cold (recheck pattern)"
    );
    for kind in [Kind::Buffered, Kind::Dma, Kind::Pread] {
        drop_cache(&data);
        let qd = if kind == Kind::Pread { 1 } else { 4 };
        let name = format!("seq4m cold {} qd{qd}", label(kind));
        sequential_reads(name, kind, &data, file_len, qd)
            .await
            .print();
    }
    recheck_phase(&dir, &data, file_len).await;
}

/// libtorrent's full check of the same file: add the torrent with no resume data and time until it seeds.
const LT_CHECK: &str = r#"
import libtorrent as lt, sys, time
ti = lt.torrent_info(sys.argv[1])
ses = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
                  'enable_upnp': False, 'enable_natpmp': False})
t0 = time.monotonic()
h = ses.add_torrent({'ti': ti, 'save_path': sys.argv[2]})
while time.monotonic() - t0 < 300 and h.status().state != lt.torrent_status.seeding:
    time.sleep(0.002)
print(time.monotonic() - t0, h.status().num_pieces, ti.num_pieces())
"#;

/// Full recheck of the data file as a single-file torrent of 1 MiB pieces: cyclone's `storage::recheck` against
/// python3-libtorrent 2.0 on the same file, both with a cold page cache, and single-stream SHA-1 over memory as
/// the CPU ceiling.
async fn recheck_phase(dir: &Path, data: &Path, file_len: u64) {
    use cyclone_engine::piece_map::PieceMap;
    use cyclone_engine::storage::{recheck, FileLayout, FilePool, RecheckOptions, Storage};
    use cyclone_metainfo::bencode::Owned;
    use sha1::{Digest, Sha1};

    println!("-- full recheck, 1 MiB pieces");
    let bytes = std::fs::read(data).expect("read data");
    let t0 = Instant::now();
    let pieces: Vec<u8> = bytes
        .chunks(PIECE)
        .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let sha_rate = file_len as f64 / t0.elapsed().as_secs_f64() / 1e6;
    drop(bytes);
    println!(
        "{:<44} {:>9.1} MB/s",
        "SHA-1 single stream over memory", sha_rate
    );
    let mut info = Owned::dict();
    info.insert("length", file_len as i64);
    info.insert("name", data.file_name().unwrap().to_str().unwrap());
    info.insert("piece length", PIECE as i64);
    info.insert("pieces", pieces);
    let mut top = Owned::dict();
    top.insert("info", info);
    let torrent = top.encode();
    let m = cyclone_metainfo::Metainfo::from_bytes(&torrent).expect("torrent");

    let pool = FilePool::new(50);
    let map = PieceMap::from_info(&m.info).unwrap();
    let layout = FileLayout::from_info(dir, &m.info).unwrap();
    let st = Rc::new(Storage::new(map, layout, pool).unwrap());
    let mut wall = Duration::ZERO;
    for temp in ["cold", "warm"] {
        if temp == "cold" {
            drop_cache(data);
        } else {
            // The cold pass read with O_DIRECT and left the cache empty: fill it.
            let f = std::fs::File::open(data).unwrap();
            let mut buf = vec![0u8; PIECE];
            for i in 0..file_len / PIECE as u64 {
                f.read_exact_at(&mut buf, i * PIECE as u64).unwrap();
            }
        }
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let report = recheck(
            st.clone(),
            &m.info.pieces,
            &RecheckOptions::default(),
            |_| {},
        )
        .await
        .expect("recheck");
        let elapsed = t0.elapsed();
        if temp == "cold" {
            wall = elapsed;
        }
        assert!(report.have.is_complete(), "recheck found bad pieces");
        println!(
            "{:<44} {:>9.1} MB/s  {:.2} s CPU  ({:.0}% of SHA-1 speed)",
            format!("cyclone storage::recheck, {temp}"),
            file_len as f64 / elapsed.as_secs_f64() / 1e6,
            (thread_cpu() - cpu0).as_secs_f64(),
            file_len as f64 / elapsed.as_secs_f64() / 1e6 / sha_rate * 100.0
        );
    }
    st.close().await;

    let tpath = dir.join("check.torrent");
    let script = dir.join("lt_check.py");
    std::fs::write(&tpath, &torrent).unwrap();
    std::fs::write(&script, LT_CHECK).unwrap();
    drop_cache(data);
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(&tpath)
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let f: Vec<f64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() == 3 && f[1] == f[2] {
                let rate = file_len as f64 / f[0] / 1e6;
                println!(
                    "{:<44} {:>9.1} MB/s  (cyclone cold/libtorrent = {:.2})",
                    "python3-libtorrent 2.0 full check, cold",
                    rate,
                    file_len as f64 / wall.as_secs_f64() / 1e6 / rate
                );
            } else {
                println!("libtorrent check did not complete: {text}");
            }
        }
        Ok(o) => println!(
            "libtorrent check failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!("python3-libtorrent not runnable: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, owned) = match args.get(1) {
        Some(d) => (PathBuf::from(d), false),
        None => (
            std::env::temp_dir().join(format!("cyclone-storage-io-{}", std::process::id())),
            true,
        ),
    };
    let file_mib: u64 = args.get(2).map_or(256, |s| s.parse().expect("FILE_MIB"));
    let reads: u64 = args.get(3).map_or(4000, |s| s.parse().expect("READS"));
    assert!(
        (16..=4096).contains(&file_mib),
        "FILE_MIB must be in 16..=4096"
    );
    assert!(
        (16..=1_000_000).contains(&reads),
        "READS must be in 16..=1000000"
    );
    std::fs::create_dir_all(&dir).expect("bench dir");
    let d = dir.clone();
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .name("storage-io")
        .spawn(move || run(d, file_mib, reads))
        .expect("glommio executor (ulimit -l must be at least 512 KiB)");
    ex.join().expect("executor");
    if owned {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
