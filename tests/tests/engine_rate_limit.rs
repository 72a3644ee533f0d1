//! `cyclone download --max_upload_rate`: a seed limited to 200 kB/s serves a 2.5 MB payload to a cyclone leecher on
//! 127.0.0.1, and its own JSON status shows it uploading no faster than the limit while the download still ends
//! byte-identical.
//!
//! This is a functional check that the limit is enforced, not a performance measurement: the bound is loose
//! (limit × 1.5) because the status lines are stamped when the test reads them on a loaded 2-core machine. Unlimited,
//! the same transfer on loopback runs at tens of MB/s, so a limit that is not applied fails by far.

use std::time::{Duration, Instant};

use cyclone_tests::swarm::*;
use cyclone_tests::ChildGuard;

const LIMIT_KB: u64 = 200;
const LIMIT_BYTES_PER_SECOND: f64 = LIMIT_KB as f64 * 1000.0;
/// About 12 s at the limit.
const PAYLOAD: &[(&str, usize)] = &[("big.bin", 2_500_000)];
/// Uploaded bytes from which the rate is measured: past the seed's one-second burst and first chunk.
const MEASURE_FROM_BYTES: u64 = 2 * LIMIT_KB * 1000;
/// Shortest measuring window accepted.
const MIN_WINDOW: Duration = Duration::from_secs(4);

#[test]
fn seed_upload_stays_under_max_upload_rate() {
    let Some(f) = fixture_with(PAYLOAD) else {
        return;
    };
    let total: u64 = PAYLOAD.iter().map(|(_, l)| *l as u64).sum();
    let seed_log = f.root.join("seed.log");
    let _seed = cyclone_seed_with(&f, &seed_log, &["--max_upload_rate", &LIMIT_KB.to_string()]);
    let work = f.root.join("leecher");
    let leecher_log = f.root.join("leecher.log");
    let mut leecher = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &leecher_log,
    );
    // (when seen, seed's uploaded bytes) for every status line while the leecher runs.
    let mut follower = StatusFollower::new(&seed_log);
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let start = Instant::now();
    while leecher.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "the leecher did not finish; seed log:\n{}\nleecher log:\n{}",
            log_of(&seed_log),
            log_of(&leecher_log)
        );
        for s in follower.poll() {
            samples.push((s.seen, s.status["uploaded"].as_u64().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_ok(&mut leecher, "the leecher", &leecher_log);
    assert_same_files(&f.root.join("seed/payload"), &work.join("payload"), PAYLOAD);

    // The window: from the first line past the burst to the last line before everything was sent.
    let first = samples.iter().find(|(_, up)| *up >= MEASURE_FROM_BYTES);
    let last = samples.iter().rev().find(|(_, up)| *up < total);
    let (Some(&(t0, up0)), Some(&(t1, up1))) = (first, last) else {
        panic!(
            "no status lines while uploading: {samples:?}; seed log:\n{}",
            log_of(&seed_log)
        );
    };
    let window = t1.saturating_duration_since(t0);
    assert!(
        window >= MIN_WINDOW,
        "the upload was seen in progress (from {MEASURE_FROM_BYTES} bytes sent to the last line below \
         {total}) for only {window:?}: the limit is not applied ({samples:?})"
    );
    let rate = (up1 - up0) as f64 / window.as_secs_f64();
    eprintln!(
        "seed upload rate {rate:.0} B/s over {window:?} (limit {LIMIT_BYTES_PER_SECOND} B/s)"
    );
    assert!(
        rate <= LIMIT_BYTES_PER_SECOND * 1.5,
        "seed uploaded at {rate:.0} B/s over {window:?}, limit {LIMIT_BYTES_PER_SECOND} B/s ({samples:?})"
    );
}
