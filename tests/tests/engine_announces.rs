//! What cyclone tells the tracker: a seeding torrent announces at the tracker's pace (never in a loop, never
//! `completed`), and a download that finishes sends `completed` exactly once. Regression test for a loop that
//! re-armed `completed` on every pass of the announce task (thousands of tracker connections per second).

use std::time::{Duration, Instant};

use cyclone_tests::swarm::*;
use cyclone_tests::ChildGuard;

#[test]
fn seeding_announces_at_the_trackers_pace_and_a_finished_download_sends_completed_once() {
    // The fixture tracker, not `cyclone tracker`: this test reads its announce log.
    let Some(f) = fixture_with_announce_log() else {
        return;
    };
    let test_start = Instant::now();
    let _seed = cyclone_seed(&f, &f.root.join("seed.log"));
    let seed_port = *f
        .tracker
        .mini()
        .announcing_ports()
        .first()
        .expect("the seed announced");
    let leech_dir = f.root.join("leech");
    let log = f.root.join("leech.log");
    let mut leech = ChildGuard::spawn(
        &mut cyclone_download(&f, &leech_dir, &["--exit-on-complete"]),
        &log,
    );
    wait_ok(&mut leech, "cyclone download from a cyclone seed", &log);
    assert_same_payload(&f.root.join("seed/payload"), &leech_dir.join("payload"));

    // Give a looping seeder time to show itself: the fixture tracker asks for an announce every 2 s and the
    // command's minimum announce interval is 2 s, so ~6 s allow at most a handful of announces.
    std::thread::sleep(Duration::from_secs(6));
    let seed_events = f.tracker.mini().announces_from(seed_port);
    // One announce per 2 s interval over the whole test, plus slack; the loop this guards against made thousands.
    let allowed = 4 + test_start.elapsed().as_secs() as usize / 2;
    assert!(
        seed_events.len() <= allowed,
        "the seed announced {} times (at most {allowed} expected): {:?}",
        seed_events.len(),
        &seed_events[..seed_events.len().min(20)]
    );
    assert_eq!(seed_events.first().map(String::as_str), Some("started"));
    assert!(
        !seed_events.iter().any(|e| e == "completed"),
        "a torrent complete at start never sends `completed`: {seed_events:?}"
    );

    let leech_port = listening_port(&log);
    let leech_events = f.tracker.mini().announces_from(leech_port);
    assert_eq!(
        leech_events.iter().filter(|e| *e == "completed").count(),
        1,
        "the leecher sends `completed` exactly once: {leech_events:?}"
    );
}
