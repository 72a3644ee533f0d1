//! `btdownloadheadless` (the BitTornado alias of `cyclone download`): BitTornado's options and its status block,
//! downloading from a seeding cyclone on 127.0.0.1.

use std::process::Command;
use std::time::{Duration, Instant};

use cyclone_tests::swarm::*;
use cyclone_tests::{cyclone_bin, free_port, ChildGuard};

#[test]
fn btdownloadheadless_prints_bittornado_status_block_and_downloads() {
    let Some(f) = fixture() else { return };
    let _seed = cyclone_seed(&f, &f.root.join("seed.log"));
    let work = f.root.join("headless");
    std::fs::create_dir_all(&work).unwrap();
    let port = free_port().to_string();
    let log = f.root.join("headless.log");
    let mut child = ChildGuard::spawn(
        Command::new(cyclone_bin())
            .current_dir(&work)
            // BitTornado keeps resume data under the home directory: keep the test's inside its temp dir.
            .env("HOME", &work)
            .arg("btdownloadheadless")
            .arg(&f.torrent)
            .args([
                "--minport",
                &port,
                "--maxport",
                &port,
                "--bind",
                "127.0.0.1",
            ])
            .args(["--display_interval", "0.5", "--max_upload_rate", "0"]),
        &log,
    );
    let start = Instant::now();
    while !log_of(&log).contains("Download Succeeded!") {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "btdownloadheadless exited; log:\n{}",
            log_of(&log)
        );
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "no `Download Succeeded!`; log:\n{}",
            log_of(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // It keeps seeding (BitTornado): still running.
    assert!(child.0.try_wait().unwrap().is_none());
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
    let out = log_of(&log);
    let block = out
        .split("\n\n\n\n")
        .find(|b| b.contains("Download Succeeded!"))
        .unwrap();
    let labels: Vec<&str> = block
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| &l[..15])
        .collect();
    assert_eq!(
        labels,
        [
            "saving:        ",
            "percent done:  ",
            "time left:     ",
            "download to:   ",
            "download rate: ",
            "upload rate:   ",
            "share rating:  ",
            "seed status:   ",
            "peer status:   "
        ],
        "{block}"
    );
    assert!(block.contains("saving:        payload (1.3 MB)"), "{block}");
    assert!(block.contains("percent done:  100.0"), "{block}");
    assert!(
        block.contains(&format!(
            "download to:   {}",
            work.join("payload").display()
        )),
        "{block}"
    );
}

#[test]
fn btdownloadheadless_without_arguments_lists_bittornado_options() {
    let out = Command::new(cyclone_bin())
        .arg("btdownloadheadless")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--saveas",
        "--max_upload_rate",
        "--minport",
        "--check_hashes",
        "--priority",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}
