//! The session-wide upload limit across torrents and shards, and a per-torrent limit under it, through the library
//! API (`cyclone download` runs one torrent per process, so this is where a session with two torrents is tested).
//!
//! One in-process session on two shards seeds two torrents that live on different shards, with
//! `SessionConfig::max_upload_rate` = 200 kB/s for the session and `TorrentConfig::max_upload_rate` = 100 kB/s for
//! the second torrent. Each torrent announces to its own `cyclone tracker`; a `cyclone download` leecher per torrent
//! downloads it. From the session's status reports (stamped when received): both torrents together stay under the
//! global limit, the second under its own, and both copies are byte-identical.
//!
//! A functional check that the limits are enforced, not a performance measurement: the bounds are loose (limit ×
//! 1.5) for a loaded 2-core machine; unlimited, these transfers take well under a second on loopback.
//!
//! Needs the `cyclone` binary (`cargo test --workspace` builds it, or `cargo build -p cyclone-tools` first).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cyclone_engine::session::{Activity, Session, SessionConfig, TorrentConfig};
use cyclone_metainfo::Metainfo;
use cyclone_tests::swarm::*;
use cyclone_tests::ChildGuard;

const GLOBAL_LIMIT: u64 = 200_000;
const TORRENT_B_LIMIT: u64 = 100_000;
const SHARDS: usize = 2;
/// Per torrent: about 12 s for both together at the global limit.
const LENGTH: usize = 1_200_000;
/// Shortest measuring window accepted.
const MIN_WINDOW: Duration = Duration::from_secs(4);

/// A one-file fixture (its own payload, torrent and `cyclone tracker`) and its metainfo.
fn torrent_fixture(file: &'static str) -> Option<(Fixture, Metainfo)> {
    let f = fixture_with(&[(file, LENGTH)])?;
    let metainfo = Metainfo::from_bytes(&std::fs::read(&f.torrent).unwrap()).unwrap();
    Some((f, metainfo))
}

fn shard_of(m: &Metainfo) -> usize {
    cyclone_shard::shard_for_key(m.info_hash.as_bytes(), SHARDS)
}

/// The rate of `samples` (time, bytes) between the first at or above `from` bytes and the last below `to`.
fn rate_between(samples: &[(Instant, u64)], from: u64, to: u64, what: &str) -> f64 {
    let first = samples.iter().find(|(_, b)| *b >= from);
    let last = samples.iter().rev().find(|(_, b)| *b < to);
    let (Some(&(t0, b0)), Some(&(t1, b1))) = (first, last) else {
        panic!("{what}: no reports while uploading: {samples:?}");
    };
    let window = t1.saturating_duration_since(t0);
    assert!(
        window >= MIN_WINDOW,
        "{what}: the upload was seen in progress for only {window:?}: the limit is not applied ({samples:?})"
    );
    let rate = (b1 - b0) as f64 / window.as_secs_f64();
    eprintln!("{what}: {rate:.0} B/s over {window:?}");
    rate
}

#[test]
fn two_torrents_on_two_shards_share_the_global_upload_limit() {
    let Some((fa, ma)) = torrent_fixture("a.bin") else {
        return;
    };
    // A second torrent on the other shard (the file name changes the info-hash).
    let mut b = None;
    for name in [
        "b.bin", "c.bin", "d.bin", "e.bin", "f.bin", "g.bin", "h.bin", "i.bin",
    ] {
        let (f, m) = torrent_fixture(name).expect("mktorrent was there a moment ago");
        if shard_of(&m) != shard_of(&ma) {
            b = Some((f, m, name));
            break;
        }
    }
    let (fb, mb, b_name) = b.expect("eight info-hashes all on one shard of two");
    let (hash_a, hash_b) = (*ma.info_hash.as_bytes(), *mb.info_hash.as_bytes());

    let config = SessionConfig {
        bind: Ipv4Addr::LOCALHOST.into(),
        minport: 0,
        shards: SHARDS,
        max_upload_rate: GLOBAL_LIMIT,
        display_interval: Duration::from_millis(250),
        min_announce_interval: Duration::from_secs(2),
        ..Default::default()
    };
    let seed_torrent = |f: &Fixture, m: Metainfo, rate: u64| TorrentConfig {
        layout: TorrentConfig::layout_for(&m, &f.root.join("seed"), None).unwrap(),
        metainfo: m,
        resume_path: None,
        file_priorities: None,
        max_upload_rate: rate,
        max_download_rate: 0,
    };
    let handle = Session::start(
        config,
        vec![
            seed_torrent(&fa, ma, 0),
            seed_torrent(&fb, mb, TORRENT_B_LIMIT),
        ],
    )
    .unwrap();
    fa.tracker.wait_for_peers(1, DOWNLOAD_LIMIT);
    fb.tracker.wait_for_peers(1, DOWNLOAD_LIMIT);

    let leech = |f: &Fixture, name: &str| {
        let work = f.root.join("leecher");
        let log = f.root.join(format!("leecher-{name}.log"));
        let child = ChildGuard::spawn(
            &mut cyclone_download(f, &work, &["--exit-on-complete"]),
            &log,
        );
        (child, work, log)
    };
    let (mut leecher_a, work_a, log_a) = leech(&fa, "a");
    let (mut leecher_b, work_b, log_b) = leech(&fb, "b");

    // Uploaded bytes per torrent as last reported; (when received, bytes) samples of both torrents together while
    // neither is fully sent, and of torrent b alone.
    let mut uploaded: HashMap<[u8; 20], u64> = HashMap::new();
    let (mut both, mut only_b) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while leecher_a.0.try_wait().unwrap().is_none() || leecher_b.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < DOWNLOAD_LIMIT,
            "the leechers did not finish; logs:\n{}\n{}",
            log_of(&log_a),
            log_of(&log_b)
        );
        let Ok(s) = handle.status.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        assert!(
            s.error.is_none() && s.activity != Activity::Failed,
            "{:?}",
            s.error
        );
        let now = Instant::now();
        uploaded.insert(s.info_hash, s.uploaded);
        if uploaded.len() == 2 && uploaded.values().all(|&u| u < LENGTH as u64) {
            both.push((now, uploaded.values().sum::<u64>()));
        }
        if s.info_hash == hash_b {
            only_b.push((now, s.uploaded));
        }
    }
    wait_ok(&mut leecher_a, "leecher a", &log_a);
    wait_ok(&mut leecher_b, "leecher b", &log_b);
    assert_same_files(
        &fa.root.join("seed/payload"),
        &work_a.join("payload"),
        &[("a.bin", LENGTH)],
    );
    assert_same_files(
        &fb.root.join("seed/payload"),
        &work_b.join("payload"),
        &[(b_name, LENGTH)],
    );
    assert!(uploaded.get(&hash_a).is_some_and(|&u| u >= LENGTH as u64));

    // Past the one-second bursts, until a torrent was fully sent.
    let rate = rate_between(&both, 2 * GLOBAL_LIMIT, u64::MAX, "both torrents");
    assert!(
        rate <= GLOBAL_LIMIT as f64 * 1.5,
        "both torrents together uploaded at {rate:.0} B/s, global limit {GLOBAL_LIMIT} B/s"
    );
    let rate_b = rate_between(&only_b, 2 * TORRENT_B_LIMIT, LENGTH as u64, "torrent b");
    assert!(
        rate_b <= TORRENT_B_LIMIT as f64 * 1.5,
        "torrent b uploaded at {rate_b:.0} B/s, its limit {TORRENT_B_LIMIT} B/s"
    );

    handle.stop();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle.is_finished() {
        let _ = handle.status.recv_timeout(Duration::from_millis(100));
        assert!(Instant::now() < deadline, "the session did not stop");
    }
    handle.join().unwrap();
}
