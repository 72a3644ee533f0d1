//! The engine against real peers on 127.0.0.1: `cyclone download` downloading from and seeding to aria2c and
//! python3-libtorrent and transmission-cli, and cyclone to cyclone, through our tracker (`cyclone tracker`, see
//! `cyclone_tests::cyclone_tracker`) and, over UDP, opentracker. Every download is compared byte for byte with the
//! original files. Every process is killed when its guard drops.

use std::path::PathBuf;
use std::process::Command;

use cyclone_tests::swarm::*;
use cyclone_tests::{free_port, require_program, require_python_libtorrent, ChildGuard};

#[test]
fn cyclone_downloads_multi_file_torrent_from_aria2() {
    if !require_program("aria2c", "aria2") {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = aria2_seed(&f, &f.root.join("aria2.log"));
    let log = cyclone_leech(&f, "cy", "cyclone download");
    let out = log_of(&log);
    assert!(out.contains("\"activity\":\"seeding\""), "{out}");
}

#[test]
fn aria2_downloads_from_seeding_cyclone() {
    if !require_program("aria2c", "aria2") {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = cyclone_seed(&f, &f.root.join("cyclone.log"));
    let log = f.root.join("aria2.log");
    let mut dl = ChildGuard::spawn(
        Command::new("aria2c")
            .arg(format!("--dir={}", f.root.join("aria").display()))
            .args([
                "--seed-time=0",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--bt-external-ip=127.0.0.1",
                "--disable-ipv6=true",
                "--summary-interval=0",
            ])
            .arg(format!("--listen-port={}", free_port()))
            .arg(&f.torrent),
        &log,
    );
    wait_ok(&mut dl, "aria2c", &log);
    assert_same_payload(&f.root.join("seed/payload"), &f.root.join("aria/payload"));
}

#[test]
fn cyclone_downloads_from_seeding_libtorrent() {
    if !require_python_libtorrent() {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = libtorrent(&f, "seed", &f.root.join("seed"), &f.root.join("lt.log"));
    f.tracker.wait_for_peers(1, DOWNLOAD_LIMIT);
    cyclone_leech(&f, "cy", "cyclone download");
}

#[test]
fn libtorrent_downloads_from_seeding_cyclone() {
    if !require_python_libtorrent() {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = cyclone_seed(&f, &f.root.join("cyclone.log"));
    let log = f.root.join("lt.log");
    let mut dl = libtorrent(&f, "download", &f.root.join("lt"), &log);
    wait_ok(&mut dl, "libtorrent download", &log);
    assert_same_payload(&f.root.join("seed/payload"), &f.root.join("lt/payload"));
}

/// Two leechers at once; the second with no piece memory, so every piece takes the disk path (blocks written as
/// they arrive, the piece verified from disk) instead of being assembled in memory and written whole.
#[test]
fn two_cyclone_leechers_download_from_a_cyclone_seed() {
    let Some(f) = fixture() else { return };
    let _seed = cyclone_seed(&f, &f.root.join("seed.log"));
    let mut leechers: Vec<(ChildGuard, PathBuf, PathBuf)> = (0..2)
        .map(|i| {
            let work = f.root.join(format!("leech{i}"));
            let log = f.root.join(format!("leech{i}.log"));
            let memory = if i == 0 { "256" } else { "0" };
            let child = ChildGuard::spawn(
                &mut cyclone_download(&f, &work, &["--exit-on-complete", "--piece_memory", memory]),
                &log,
            );
            (child, work, log)
        })
        .collect();
    for (child, work, log) in &mut leechers {
        wait_ok(child, "cyclone leecher", log);
        assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
    }
}

/// transmission-cli with a loopback-only configuration in `root/<name>-cfg`, data in `dir`.
fn transmission(
    f: &Fixture,
    name: &str,
    dir: &std::path::Path,
    log: &std::path::Path,
) -> ChildGuard {
    let cfg = f.root.join(format!("{name}-cfg"));
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        cfg.join("settings.json"),
        r#"{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "bind-address-ipv4": "127.0.0.1", "rpc-enabled": false,
            "speed-limit-up-enabled": false, "speed-limit-down-enabled": false}"#,
    )
    .unwrap();
    ChildGuard::spawn(
        Command::new("transmission-cli")
            .arg("-g")
            .arg(&cfg)
            .arg("-w")
            .arg(dir)
            .args(["-p", &free_port().to_string(), "-M", "-D", "-U"])
            .arg(&f.torrent),
        log,
    )
}

/// Waits until `copy` holds exactly the payload (transmission-cli does not exit by itself).
fn wait_for_payload(f: &Fixture, copy: &std::path::Path, log: &std::path::Path) {
    let start = std::time::Instant::now();
    let same = || {
        FILES.iter().all(|(name, _)| {
            let a = std::fs::read(f.root.join("seed/payload").join(name)).unwrap();
            std::fs::read(copy.join(name)).is_ok_and(|b| a == b)
        })
    };
    while !same() {
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "transmission did not get the payload within {DOWNLOAD_LIMIT:?}; log:\n{}",
            log_of(log)
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn cyclone_downloads_from_seeding_transmission() {
    if !require_program("transmission-cli", "transmission-cli") {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = transmission(&f, "tr-seed", &f.root.join("seed"), &f.root.join("tr.log"));
    f.tracker.wait_for_peers(1, DOWNLOAD_LIMIT);
    cyclone_leech(&f, "cy", "cyclone download");
}

#[test]
fn transmission_downloads_from_seeding_cyclone() {
    if !require_program("transmission-cli", "transmission-cli") {
        return;
    }
    let Some(f) = fixture() else { return };
    // Transmission will not dial a loopback peer learnt from a tracker: it announces first, and the cyclone seed,
    // told about it by the tracker, connects to it.
    let log = f.root.join("tr.log");
    let _dl = transmission(&f, "tr-dl", &f.root.join("tr"), &log);
    f.tracker.wait_for_peers(1, DOWNLOAD_LIMIT);
    let _seed = cyclone_seed(&f, &f.root.join("cyclone.log"));
    wait_for_payload(&f, &f.root.join("tr/payload"), &log);
}

#[test]
fn cyclone_skips_a_file_with_priority_minus_one() {
    if !require_program("aria2c", "aria2") {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = aria2_seed(&f, &f.root.join("aria2.log"));
    let work = f.root.join("cy");
    let log = f.root.join("cyclone.log");
    // Files in torrent order: a.bin, sub/b.bin (1 MB, skipped), sub/deeper/c.bin, z.bin.
    let mut dl = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete", "--priority", "0,-1,1,2"]),
        &log,
    );
    wait_ok(&mut dl, "cyclone download", &log);
    for name in ["a.bin", "sub/deeper/c.bin", "z.bin"] {
        let a = std::fs::read(f.root.join("seed/payload").join(name)).unwrap();
        let b = std::fs::read(work.join("payload").join(name)).unwrap();
        assert!(a == b, "{name} differs");
    }
    let last: serde_json::Value = log_of(&log)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .rfind(|v: &serde_json::Value| v["event"] == "status")
        .unwrap();
    let downloaded = last["downloaded"].as_u64().unwrap();
    assert!(
        downloaded < 500_000,
        "downloaded {downloaded} bytes: the skipped 1 MB file was fetched"
    );
}

#[test]
fn cyclone_to_cyclone_through_opentracker_over_udp() {
    // The info-hash does not depend on the announce URL: make the torrent, whitelist it, then point it at the
    // tracker's real port.
    let Some(f) = fixture_full(FILES, "udp://127.0.0.1:1/announce") else {
        return;
    };
    let info_hash = |t: &std::path::Path| {
        *cyclone_metainfo::Metainfo::from_bytes(&std::fs::read(t).unwrap())
            .unwrap()
            .info_hash
            .as_bytes()
    };
    let ih = info_hash(&f.torrent);
    let Some(ot) = cyclone_tests::opentracker::OpenTracker::start(&f.root.join("ot"), &[ih]) else {
        return;
    };
    ot.wait_until_whitelisted(&ih);
    std::fs::remove_file(&f.torrent).unwrap();
    cyclone_tests::run_ok(
        Command::new("mktorrent")
            .args(["-l", "15", "-a"])
            .arg(format!("udp://127.0.0.1:{}/announce", ot.port))
            .arg("-o")
            .arg(&f.torrent)
            .arg(f.root.join("seed/payload")),
    );
    assert_eq!(info_hash(&f.torrent), ih);
    let _seed = ChildGuard::spawn(
        &mut cyclone_download(&f, &f.root.join("seed"), &[]),
        &f.root.join("seed.log"),
    );
    let start = std::time::Instant::now();
    while ot.seeders(&ih) == 0 {
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "the seed never announced over UDP; log:\n{}",
            log_of(&f.root.join("seed.log"))
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    cyclone_leech(&f, "leech", "cyclone leecher (UDP tracker)");
}
