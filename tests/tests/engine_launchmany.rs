//! `cyclone launchmany DIR` as a user runs it: a watched directory of torrents on one session.
//!
//! The directory starts with two torrents whose data is present (hash-checked at start, then seeded). A
//! `cyclone download` leecher fetches one of them from launchmany, byte-identical. A third .torrent, whose data
//! launchmany does not have, is copied in after the start: launchmany prints `added` and downloads it from a
//! `cyclone download` seed, byte-identical. Deleting the first .torrent prints `dropped` and its status ends with
//! `stopped`. SIGTERM: clean exit 0, no panic. All through a real `cyclone tracker`, with `--parse_dir_interval 1`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cyclone_metainfo::Metainfo;
use cyclone_tests::swarm::*;
use cyclone_tests::{cyclone_bin, run_ok, wait_with_limit, write_pseudo_random, ChildGuard};

fn hex_hash(torrent: &Path) -> String {
    let m = Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    m.info_hash
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Waits until a JSON line of the launchmany log satisfies `want`.
fn wait_line(log: &Path, what: &str, want: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let found = log_of(log)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| want(&v));
        if found {
            return;
        }
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "launchmany never showed {what}; log:\n{}",
            log_of(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_is(v: &serde_json::Value, hash: &str, activity: &str) -> bool {
    v["event"] == "status" && v["info_hash"] == hash && v["activity"] == activity
}

#[test]
fn launchmany_watches_a_directory() {
    let Some(f) = fixture_with(&[("one.bin", 200_000)]) else {
        return;
    };
    let root = &f.root;
    let TestTracker::Cyclone(tracker) = &f.tracker else {
        unreachable!("fixture_with runs cyclone tracker");
    };
    let make_torrent = |data: &Path, torrent: &Path| {
        run_ok(
            Command::new("mktorrent")
                .args(["-l", "15", "-a", &tracker.announce_url(), "-o"])
                .arg(torrent)
                .arg(data),
        );
    };
    // Torrent 2: data present next to the first one's. Torrent 3: data elsewhere (a separate seed has it).
    write_pseudo_random(&root.join("seed/two.bin"), 300_000, 2);
    make_torrent(&root.join("seed/two.bin"), &root.join("two.torrent"));
    write_pseudo_random(&root.join("other/three.bin"), 250_000, 3);
    make_torrent(&root.join("other/three.bin"), &root.join("three.torrent"));
    let watch = root.join("watch");
    std::fs::create_dir_all(&watch).unwrap();
    std::fs::copy(&f.torrent, watch.join("payload.torrent")).unwrap();
    std::fs::copy(root.join("two.torrent"), watch.join("two.torrent")).unwrap();
    let (h1, h2, h3) = (
        hex_hash(&f.torrent),
        hex_hash(&root.join("two.torrent")),
        hex_hash(&root.join("three.torrent")),
    );

    let log = root.join("launchmany.log");
    let mut launchmany = ChildGuard::spawn(
        Command::new(cyclone_bin())
            .current_dir(root)
            .arg("launchmany")
            .arg(&watch)
            .arg("--saveas")
            .arg(root.join("seed"))
            .args(["--saveas_style", "2", "--parse_dir_interval", "1", "--json"])
            .args(["--bind", "127.0.0.1", "--minport", "0", "--shards", "2"])
            .args(["--display_interval", "1", "--min_announce_interval", "2"])
            .args(["--check_hashes", "1", "--resume_dir"])
            .arg(root.join("launchmany-resume")),
        &log,
    );
    for (hash, name) in [(&h1, "payload.torrent"), (&h2, "two.torrent")] {
        let path = watch.join(name).display().to_string();
        wait_line(&log, "the first two added", |v| {
            v["event"] == "added" && v["path"] == path.as_str()
        });
        wait_line(&log, "the first two seeding", |v| {
            status_is(v, hash, "seeding")
        });
    }

    // A leecher fetches torrent 2 from launchmany.
    let work = root.join("leecher");
    let leecher_log = root.join("leecher.log");
    let mut leecher = ChildGuard::spawn(
        &mut cyclone_download_torrent(&root.join("two.torrent"), &work, &["--exit-on-complete"]),
        &leecher_log,
    );
    wait_ok(&mut leecher, "leecher", &leecher_log);
    assert_same_files(&root.join("seed"), &work, &[("two.bin", 300_000)]);

    // Torrent 3 appears; a seed has its data; launchmany downloads it.
    let seed_log = root.join("seed3.log");
    let _seed3 = ChildGuard::spawn(
        &mut cyclone_download_torrent(&root.join("three.torrent"), &root.join("other"), &[]),
        &seed_log,
    );
    std::fs::copy(root.join("three.torrent"), watch.join("three.torrent")).unwrap();
    let three = watch.join("three.torrent").display().to_string();
    wait_line(&log, "torrent 3 added", |v| {
        v["event"] == "added" && v["path"] == three.as_str()
    });
    wait_line(&log, "torrent 3 downloaded", |v| {
        status_is(v, &h3, "seeding")
    });
    assert_same_files(
        &root.join("other"),
        &root.join("seed"),
        &[("three.bin", 250_000)],
    );

    // The first .torrent goes away: dropped, and its torrent stops.
    std::fs::remove_file(watch.join("payload.torrent")).unwrap();
    let one = watch.join("payload.torrent").display().to_string();
    wait_line(&log, "dropped", |v| {
        v["event"] == "dropped" && v["path"] == one.as_str()
    });
    wait_line(&log, "torrent 1 stopped", |v| status_is(v, &h1, "stopped"));

    // SIGTERM: every torrent stops cleanly and the process exits 0.
    let pid = launchmany.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_with_limit(&mut launchmany.0, Duration::from_secs(60));
    let text = log_of(&log);
    assert!(
        status.success(),
        "launchmany exited with {status}; log:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains("shutting_down"), "{text}");
    for hash in [&h2, &h3] {
        assert!(
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| status_is(&v, hash, "stopped")),
            "{hash} did not report its stop; log:\n{text}"
        );
    }
}
