//! `make` against `mktorrent -t <cores>` on the same data, in the same run, warm cache.
//!
//! Workloads (tools-anchors.md §3): one 2 GiB file with 1 MiB pieces, and 2000 files
//! (~200 MiB in 100 directories, 1 B..~200 KiB) with 256 KiB pieces. Each tool runs
//! `--runs` times, alternating; we print min and median wall time and the ratio of the
//! medians (ours / mktorrent; below 1 is faster). Ours runs in-process through the library
//! the `cyclone make` command uses (walk + hash + encode); mktorrent runs as a process
//! writing its torrent to /tmp. Both results must have the same info-hash. When the
//! `cyclone` binary is built next to this one, the real CLI (`cyclone make -q`, a process
//! per run like mktorrent) is timed too.
//!
//! Run: `cargo build --release -p cyclone-tools && cargo run --release -p cyclone-bench --bin make [-- --runs 5 --big-mib 2048]`
//! Data goes under /tmp and is deleted at the end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cyclone_metainfo::create::{collect_files, make_torrent, MakeOptions, PieceSize, WalkOptions};
use cyclone_metainfo::Metainfo;

/// Deletes the data directory however the bench ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let mut runs = 5usize;
    let mut big_mib = 2048usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--runs", Some(v)) => runs = v.parse().expect("--runs N"),
            ("--big-mib", Some(v)) => big_mib = v.parse().expect("--big-mib N"),
            _ => panic!("usage: make [--runs N] [--big-mib N]"),
        }
        i += 2;
    }
    assert!((1..=50).contains(&runs), "--runs must be 1..=50");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir =
        TempDir(std::env::temp_dir().join(format!("cyclone-bench-make-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("create /tmp data dir");

    println!("# make vs mktorrent -t {cores}; {runs} runs each, warm cache");
    println!("# load average at start: {}", load_average());
    println!(
        "# SHA-1 backend: {:?}",
        cyclone_metainfo::sha1_multi::Backend::detect()
    );

    let big = dir.0.join("big.bin");
    write_random(&big, big_mib << 20, 1);
    let many = dir.0.join("many");
    let many_bytes = write_many(&many, 2000, 2);
    warm(&big);
    warm(&many);

    compare(
        &format!("{big_mib} MiB file, 1 MiB pieces"),
        &big,
        1 << 20,
        (big_mib as u64) << 20,
        runs,
        cores,
        &dir.0,
    );
    compare(
        &format!(
            "2000 files / {:.0} MiB, 256 KiB pieces",
            many_bytes as f64 / (1 << 20) as f64
        ),
        &many,
        1 << 18,
        many_bytes,
        runs,
        cores,
        &dir.0,
    );
    println!("# load average at end: {}", load_average());
}

fn compare(
    label: &str,
    target: &Path,
    piece: u64,
    bytes: u64,
    runs: usize,
    cores: usize,
    tmp: &Path,
) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut cli_times = Vec::new();
    let out = tmp.join("mk.torrent");
    let cli_out = tmp.join("cli.torrent");
    let cli = cyclone_binary();
    let mut our_hash = None;
    for _ in 0..runs {
        if let Some(cli) = &cli {
            let t = Instant::now();
            let status = Command::new(cli)
                .args(["make", "-q", "-f", "http://127.0.0.1:6969/announce"])
                .args(["--piece-size", &piece.to_string(), "-o"])
                .arg(&cli_out)
                .arg(target)
                .status()
                .expect("run cyclone");
            cli_times.push(t.elapsed());
            assert!(status.success(), "cyclone make failed");
        }

        let t = Instant::now();
        let list = collect_files(target, &WalkOptions::default()).expect("walk");
        let made = make_torrent(
            &list,
            &MakeOptions {
                announce: Some("http://127.0.0.1:6969/announce".into()),
                piece_size: Some(PieceSize::Exact(piece)),
                ..MakeOptions::default()
            },
            &mut |_| {},
        )
        .expect("make");
        ours.push(t.elapsed());
        our_hash = Some(made.info_hash);

        let _ = std::fs::remove_file(&out);
        let t = Instant::now();
        let status = Command::new("mktorrent")
            .args([
                "-a",
                "http://127.0.0.1:6969/announce",
                "-l",
                &piece.trailing_zeros().to_string(),
            ])
            .args(["-t", &cores.to_string(), "-o"])
            .arg(&out)
            .arg(target)
            .stdout(Stdio::null())
            .status()
            .expect("run mktorrent (apt install mktorrent)");
        theirs.push(t.elapsed());
        assert!(status.success(), "mktorrent failed");
    }
    let mk =
        Metainfo::from_bytes(&std::fs::read(&out).expect("read mktorrent output")).expect("parse");
    assert_eq!(Some(mk.info_hash), our_hash, "same info-hash as mktorrent");
    let (om, omed) = stats(&mut ours);
    let (tm, tmed) = stats(&mut theirs);
    if !cli_times.is_empty() {
        let cli_hash = Metainfo::from_bytes(&std::fs::read(&cli_out).expect("read cli output"))
            .expect("parse cli output")
            .info_hash;
        assert_eq!(Some(cli_hash), our_hash, "CLI and library agree");
    }
    println!("{label}:");
    println!(
        "  cyclone make   min {:.3} s  median {:.3} s  ({:.2} GB/s)",
        om.as_secs_f64(),
        omed.as_secs_f64(),
        bytes as f64 / omed.as_secs_f64() / 1e9
    );
    if !cli_times.is_empty() {
        let (cm, cmed) = stats(&mut cli_times);
        println!(
            "  cyclone CLI    min {:.3} s  median {:.3} s  ({:.2} GB/s)  ratio {:.2}",
            cm.as_secs_f64(),
            cmed.as_secs_f64(),
            bytes as f64 / cmed.as_secs_f64() / 1e9,
            cmed.as_secs_f64() / tmed.as_secs_f64()
        );
    }
    println!(
        "  mktorrent -t {cores} min {:.3} s  median {:.3} s  ({:.2} GB/s)",
        tm.as_secs_f64(),
        tmed.as_secs_f64(),
        bytes as f64 / tmed.as_secs_f64() / 1e9
    );
    println!(
        "  ratio (ours / mktorrent, median): {:.2}   same info-hash: {}",
        omed.as_secs_f64() / tmed.as_secs_f64(),
        mk.info_hash
    );
}

/// The `cyclone` binary next to this one (`cargo build --release -p cyclone-tools`), if built.
fn cyclone_binary() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let cli = me.parent()?.join("cyclone");
    cli.is_file().then_some(cli)
}

fn stats(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

fn write_random(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create data file"));
    let mut buf = vec![0u8; 8 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write data");
        left -= n;
    }
    f.flush().expect("flush data");
}

/// `count` files in 100 directories, sizes 1 B..~200 KiB; returns total bytes.
fn write_many(root: &Path, count: usize, seed: u64) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut total = 0u64;
    let mut buf = vec![0u8; 210_000];
    for i in 0..count {
        let dir = root.join(format!("d{:03}", i % 100));
        std::fs::create_dir_all(&dir).expect("create dir");
        let len = rng.usize(1..=209_700);
        rng.fill(&mut buf[..len]);
        std::fs::write(dir.join(format!("f{i:05}.bin")), &buf[..len]).expect("write file");
        total += len as u64;
    }
    total
}

/// Reads everything once so both tools start from the page cache.
fn warm(path: &Path) {
    use std::io::Read;
    if path.is_dir() {
        for e in std::fs::read_dir(path).expect("read dir") {
            warm(&e.expect("dir entry").path());
        }
        return;
    }
    let mut f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; 8 << 20];
    while f.read(&mut buf).expect("read") > 0 {}
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
