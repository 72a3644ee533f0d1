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
            .args(["--display_interval", "0.5", "--max_upload_rate", "0"])
            // Engine options that now act (none may stop a loopback download): one connection per IP (loopback is
            // exempt), kicking, the choker's and picker's knobs, the tracker client's, the served block cap.
            .args(["--security", "1", "--auto_kick", "1", "--random_port", "0"])
            .args(["--snub_time", "10", "--round_robin_period", "10"])
            .args([
                "--rarest_first_cutoff",
                "1",
                "--rarest_first_priority_cutoff",
                "2",
            ])
            .args(["--max_rate_period", "5", "--max_slice_length", "16384"])
            .args([
                "--min_peers",
                "2",
                "--rerequest_interval",
                "30",
                "--http_timeout",
                "20",
            ])
            .args(["--ip", "127.0.0.1"]),
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

#[test]
fn btdownloadheadless_refuses_option_values_the_engine_cannot_honour() {
    let Some(f) = fixture() else { return };
    let out = Command::new(cyclone_bin())
        .current_dir(&f.root)
        .env("HOME", &f.root)
        .arg("btdownloadheadless")
        .arg(&f.torrent)
        .args(["--download_slice_size", "8192", "--minport", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "usage error expected: {stderr}");
    assert!(
        stderr.contains("--download_slice_size 8192") && stderr.contains("16384"),
        "{stderr}"
    );
}
