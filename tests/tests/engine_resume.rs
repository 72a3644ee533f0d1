//! Crash safety of `cyclone download`: SIGKILL mid-download resumes without starting over, and SIGKILL while seeding
//! restarts from the resume record without rechecking. Real processes, real files, aria2c as the seed.

use std::path::Path;
use std::time::{Duration, Instant};

use cyclone_tests::swarm::*;
use cyclone_tests::{require_program, ChildGuard};

/// The JSON status lines in a `cyclone download --json` log.
fn statuses(log: &Path) -> Vec<serde_json::Value> {
    log_of(log)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "status")
        .collect()
}

fn wait_for_status(log: &Path, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    while !statuses(log).iter().any(&pred) {
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "no status with {what}; log:\n{}",
            log_of(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first status after start-up must show a crash record trusted whole: no piece checked, none of its pieces
/// dropped, and nothing reported as "checking" on the way.
fn assert_crash_record_trusted(log: &Path, what: &str) -> serde_json::Value {
    let all = statuses(log);
    let first = all
        .iter()
        .find(|v| v["activity"] != "checking")
        .unwrap_or_else(|| panic!("{what}: no status; log:\n{}", log_of(log)))
        .clone();
    assert!(
        all.iter().all(|v| v["activity"] != "checking"),
        "{what}: a start-up check ran; log:\n{}",
        log_of(log)
    );
    assert_eq!(first["resume_record"], "crash", "{what}: {first}");
    assert_eq!(first["resumed"], true, "{what}: {first}");
    assert_eq!(first["pieces_rechecked"], 0, "{what}: {first}");
    assert_eq!(
        first["pieces_trusted"], first["pieces_have"],
        "{what}: every piece held at start must come from the record: {first}"
    );
    first
}

fn total_length() -> u64 {
    FILES.iter().map(|(_, l)| *l as u64).sum()
}

#[test]
fn sigkill_mid_download_resumes_without_starting_over() {
    if !require_program("aria2c", "aria2") {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = aria2_seed(&f, &f.root.join("aria2.log"));
    let work = f.root.join("cy");
    let total = total_length();
    // 100 kB/s: the 1.3 MB payload takes ~13 s, long enough to be killed half-way.
    let log1 = f.root.join("run1.log");
    let mut run1 = ChildGuard::spawn(
        &mut cyclone_download(
            &f,
            &work,
            &["--max_download_rate", "100", "--resume_interval", "1"],
        ),
        &log1,
    );
    wait_for_status(&log1, "40% done", |v| {
        v["have_bytes"].as_u64().unwrap_or(0) * 10 >= total * 4
    });
    std::thread::sleep(Duration::from_millis(1500)); // let a resume record be written
    run1.0.kill().unwrap(); // SIGKILL
    run1.0.wait().unwrap();
    let before: u64 = statuses(&log1)
        .last()
        .and_then(|v| v["have_bytes"].as_u64())
        .unwrap();
    assert!(before < total, "finished before it could be killed");

    let log2 = f.root.join("run2.log");
    let mut run2 = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log2,
    );
    wait_ok(&mut run2, "cyclone download after SIGKILL", &log2);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
    let first = assert_crash_record_trusted(&log2, "restart after SIGKILL");
    assert!(first["pieces_trusted"].as_u64().unwrap() > 0, "{first}");
    let last = statuses(&log2).pop().expect("status lines");
    let downloaded = last["downloaded"].as_u64().unwrap();
    assert!(
        downloaded < total,
        "the second run downloaded {downloaded} of {total} bytes: it started over; log:\n{}",
        log_of(&log2)
    );
}

/// The crash test: several SIGKILLs at random points of a download. Each restart must keep at least what
/// had been saved before the kill (a resume record is written every second) straight from the crash record, without
/// checking any piece (`pieces_rechecked` 0: the record's pieces are trusted, the others are downloaded again), and
/// the final data must be identical without the last run starting over. The schedule's seed is printed so a failure
/// can be replayed.
#[test]
fn repeated_sigkills_at_random_points_each_restart_resumes() {
    if !require_program("aria2c", "aria2") {
        return;
    }
    let Some(f) = fixture() else { return };
    let _seed = aria2_seed(&f, &f.root.join("aria2.log"));
    let work = f.root.join("cy");
    let total = total_length();
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("kill schedule seed: {rng}");
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let mut saved = 0u64;
    for round in 0..3 {
        let log = f.root.join(format!("kill-round-{round}.log"));
        let mut run = ChildGuard::spawn(
            &mut cyclone_download(
                &f,
                &work,
                &["--max_download_rate", "100", "--resume_interval", "1"],
            ),
            &log,
        );
        // Resumed: the first status past checking already holds what was saved before the last kill.
        wait_for_status(&log, "a downloading status", |v| {
            v["activity"] != "checking"
        });
        let first = if round == 0 {
            statuses(&log)
                .into_iter()
                .find(|v| v["activity"] != "checking")
                .expect("status")
        } else {
            assert_crash_record_trusted(&log, &format!("round {round}"))
        };
        let resumed_with = first["have_bytes"].as_u64().unwrap_or(0);
        assert!(
            resumed_with >= saved,
            "round {round}: restarted with {resumed_with} bytes, but {saved} were saved before the kill; log:\n{}",
            log_of(&log)
        );
        // A random point: 3–8 % more of the payload (capped at 55 % so that no round can finish: at 100 kB/s the
        // wait below adds at most ~20 %), then 1.5–2 s (past the next once-a-second resume write), then SIGKILL.
        let target = (resumed_with + total * (3 + next(6)) / 100).min(total * 55 / 100);
        wait_for_status(&log, "progress", |v| {
            v["have_bytes"].as_u64().unwrap_or(0) >= target
        });
        saved = statuses(&log)
            .last()
            .and_then(|v| v["have_bytes"].as_u64())
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(1500 + next(500)));
        run.0.kill().unwrap(); // SIGKILL
        run.0.wait().unwrap();
        let at_kill = statuses(&log)
            .last()
            .and_then(|v| v["have_bytes"].as_u64())
            .unwrap_or(0);
        assert!(
            at_kill < total,
            "round {round}: finished before it could be killed"
        );
    }
    let log = f.root.join("final.log");
    let mut last_run = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log,
    );
    wait_ok(&mut last_run, "cyclone download after three SIGKILLs", &log);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
    let first = assert_crash_record_trusted(&log, "the last run");
    assert!(first["pieces_trusted"].as_u64().unwrap() > 0, "{first}");
    let downloaded = statuses(&log)
        .pop()
        .and_then(|v| v["downloaded"].as_u64())
        .unwrap();
    assert!(
        downloaded + saved <= total + total / 10,
        "the last run downloaded {downloaded} bytes after {saved} had been saved: it did not resume; log:\n{}",
        log_of(&log)
    );
}

#[test]
fn sigkill_while_seeding_restarts_from_the_resume_record() {
    if !require_program("aria2c", "aria2") {
        return;
    }
    let Some(f) = fixture() else { return };
    let seed = aria2_seed(&f, &f.root.join("aria2.log"));
    let work = f.root.join("cy");
    let log1 = f.root.join("run1.log");
    let mut run1 = ChildGuard::spawn(&mut cyclone_download(&f, &work, &[]), &log1);
    wait_for_status(&log1, "seeding", |v| v["activity"] == "seeding");
    // The record is written right after completion (after the data is fsynced).
    let resume_dir = work.join("resume");
    let start = Instant::now();
    while std::fs::read_dir(&resume_dir).map_or(0, |d| d.count()) == 0 {
        assert!(start.elapsed() < DOWNLOAD_LIMIT, "no resume record written");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    run1.0.kill().unwrap(); // SIGKILL while seeding
    run1.0.wait().unwrap();
    drop(seed); // nobody else has the data now

    let log2 = f.root.join("run2.log");
    let mut run2 = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log2,
    );
    wait_ok(&mut run2, "cyclone restart", &log2);
    let all = statuses(&log2);
    assert!(
        all.iter().all(|v| v["activity"] != "checking"),
        "{}",
        log_of(&log2)
    );
    let first = all.first().expect("status lines");
    assert_eq!(first["resumed"], true, "{}", log_of(&log2));
    assert_eq!(first["activity"], "seeding", "{}", log_of(&log2));
    // The record written at completion is a running session's: a crash record, its pieces trusted unread.
    assert_eq!(first["resume_record"], "crash", "{first}");
    assert_eq!(first["pieces_trusted"], first["piece_count"], "{first}");
    assert_eq!(first["pieces_rechecked"], 0, "{first}");
    assert_eq!(all.last().unwrap()["downloaded"], 0);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));

    // The graceful stop (--exit-on-complete) left a clean record; --recheck ignores it and checks every piece.
    let log3 = f.root.join("run3.log");
    let mut run3 = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--recheck", "--exit-on-complete"]),
        &log3,
    );
    wait_ok(&mut run3, "cyclone --recheck", &log3);
    let first = statuses(&log3)
        .into_iter()
        .find(|v| v["activity"] != "checking")
        .expect("status lines");
    assert_eq!(first["resume_record"], "none", "{first}");
    assert_eq!(first["resumed"], false, "{first}");
    assert_eq!(first["pieces_trusted"], 0, "{first}");
    assert_eq!(first["pieces_rechecked"], first["piece_count"], "{first}");
    assert_eq!(first["activity"], "seeding", "{first}");
    // And the run after it finds the clean record that --recheck's stop wrote, files untouched: no check.
    let log4 = f.root.join("run4.log");
    let mut run4 = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log4,
    );
    wait_ok(&mut run4, "cyclone after a clean stop", &log4);
    let first = statuses(&log4).into_iter().next().expect("status lines");
    assert_eq!(first["resume_record"], "clean", "{first}");
    assert_eq!(first["resumed"], true, "{first}");
    assert_eq!(first["pieces_rechecked"], 0, "{first}");
}

/// Copies the original payload into `dir/payload` and flips one byte of `a.bin`.
fn corrupted_copy(f: &Fixture, dir: &Path) {
    for (name, _) in FILES {
        let to = dir.join("payload").join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(f.root.join("seed/payload").join(name), &to).unwrap();
    }
    let a = dir.join("payload/a.bin");
    let mut bytes = std::fs::read(&a).unwrap();
    bytes[100_000] ^= 0xff;
    std::fs::write(&a, bytes).unwrap();
}

#[test]
fn check_hashes_0_trusts_the_data_and_check_hashes_1_repairs_it() {
    if !require_program("aria2c", "aria2") {
        return;
    }
    let Some(f) = fixture() else { return };
    let work = f.root.join("cy");
    corrupted_copy(&f, &work);
    let total = total_length();

    // --check_hashes 0: every present piece is trusted, so the torrent is complete at once (BitTornado).
    let log1 = f.root.join("run1.log");
    let mut run1 = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--check_hashes", "0", "--exit-on-complete"]),
        &log1,
    );
    wait_ok(&mut run1, "cyclone --check_hashes 0", &log1);
    let first = statuses(&log1).into_iter().next().expect("status lines");
    assert_eq!(
        first["have_bytes"].as_u64(),
        Some(total),
        "{}",
        log_of(&log1)
    );
    assert_eq!(first["activity"], "seeding");

    // --check_hashes 1 (default): the bad piece is found and fetched again from a seed. (The record the first run
    // wrote lists every piece it trusted; without it the start-up check runs.)
    std::fs::remove_dir_all(work.join("resume")).unwrap();
    let _seed = aria2_seed(&f, &f.root.join("aria2.log"));
    let log2 = f.root.join("run2.log");
    let mut run2 = ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log2,
    );
    wait_ok(&mut run2, "cyclone with the hash check", &log2);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
    let last = statuses(&log2).pop().unwrap();
    let downloaded = last["downloaded"].as_u64().unwrap();
    assert!(
        downloaded > 0 && downloaded < total / 4,
        "expected only the bad piece to be fetched, got {downloaded} bytes"
    );
}
