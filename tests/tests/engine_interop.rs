//! The engine against real peers on 127.0.0.1: `cyclone download` downloading from and seeding to aria2c and
//! python3-libtorrent, and cyclone to cyclone, through a loopback tracker ([`MiniTracker`]). Every download is
//! compared byte for byte with the original files. Every process is killed when its guard drops.

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
    let work = f.root.join("cy");
    let log = f.root.join("cyclone.log");
    let mut dl = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log,
    );
    wait_ok(&mut dl, "cyclone download", &log);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
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
    let work = f.root.join("cy");
    let log = f.root.join("cyclone.log");
    let mut dl = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log,
    );
    wait_ok(&mut dl, "cyclone download", &log);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
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

#[test]
fn two_cyclone_leechers_download_from_a_cyclone_seed() {
    let Some(f) = fixture() else { return };
    let _seed = cyclone_seed(&f, &f.root.join("seed.log"));
    let mut leechers: Vec<(ChildGuard, PathBuf, PathBuf)> = (0..2)
        .map(|i| {
            let work = f.root.join(format!("leech{i}"));
            let log = f.root.join(format!("leech{i}.log"));
            let child = ChildGuard::spawn(
                &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
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
