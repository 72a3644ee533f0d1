//! Torrents added to and removed from a running session (`SessionHandle::add_torrent` / `remove_torrent`, what
//! `cyclone launchmany` drives), through the library API.
//!
//! One in-process session on two shards starts with no torrent. Two seeding torrents that live on different shards
//! are added; a duplicate add is refused. A `cyclone download` leecher fetches the first one through its
//! `cyclone tracker` (byte-identical). The second is removed: it reports a last status with `Stopped`, a second
//! removal is refused, and it can be added again (the new instance waits for the old one's shutdown, then seeds).
//! The first keeps reporting throughout.
//!
//! Needs the `cyclone` binary (`cargo test --workspace` builds it, or `cargo build -p cyclone-tools` first).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cyclone_engine::session::{
    Activity, Session, SessionConfig, SessionError, SessionHandle, TorrentConfig, TorrentStatus,
};
use cyclone_metainfo::Metainfo;
use cyclone_tests::swarm::*;
use cyclone_tests::ChildGuard;

const SHARDS: usize = 2;
const LENGTH: usize = 300_000;

fn torrent_fixture(file: &'static str) -> Option<(Fixture, Metainfo)> {
    let f = fixture_with(&[(file, LENGTH)])?;
    let metainfo = Metainfo::from_bytes(&std::fs::read(&f.torrent).unwrap()).unwrap();
    Some((f, metainfo))
}

fn seed_torrent(f: &Fixture, m: &Metainfo) -> TorrentConfig {
    TorrentConfig {
        layout: TorrentConfig::layout_for(m, &f.root.join("seed"), None).unwrap(),
        metainfo: m.clone(),
        resume_path: Some(f.root.join("seed.resume")),
        file_priorities: None,
        max_upload_rate: 0,
        max_download_rate: 0,
    }
}

/// Waits (bounded) for a status of `hash` that satisfies `want`, and returns it.
fn wait_status(
    handle: &SessionHandle,
    hash: &[u8; 20],
    what: &str,
    want: impl Fn(&TorrentStatus) -> bool,
) -> TorrentStatus {
    let deadline = Instant::now() + DOWNLOAD_LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no status: {what}");
        let Ok(s) = handle.status.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        assert!(s.activity != Activity::Failed, "{what}: {:?}", s.error);
        if &s.info_hash == hash && want(&s) {
            return s;
        }
    }
}

#[test]
fn torrents_join_and_leave_a_running_session() {
    let Some((fa, ma)) = torrent_fixture("a.bin") else {
        return;
    };
    let shard_of = |m: &Metainfo| cyclone_shard::shard_for_key(m.info_hash.as_bytes(), SHARDS);
    let (fb, mb) = [
        "b.bin", "c.bin", "d.bin", "e.bin", "f.bin", "g.bin", "h.bin",
    ]
    .into_iter()
    .map(|n| torrent_fixture(n).expect("mktorrent was there a moment ago"))
    .find(|(_, m)| shard_of(m) != shard_of(&ma))
    .expect("seven info-hashes all on one shard of two");
    let (hash_a, hash_b) = (*ma.info_hash.as_bytes(), *mb.info_hash.as_bytes());

    let config = SessionConfig {
        bind: Ipv4Addr::LOCALHOST.into(),
        minport: 0,
        shards: SHARDS,
        display_interval: Duration::from_millis(250),
        min_announce_interval: Duration::from_secs(2),
        ..Default::default()
    };
    let handle = Session::start(config, Vec::new()).unwrap();
    handle.add_torrent(seed_torrent(&fa, &ma)).unwrap();
    handle.add_torrent(seed_torrent(&fb, &mb)).unwrap();
    assert!(matches!(
        handle.add_torrent(seed_torrent(&fa, &ma)),
        Err(SessionError::Duplicate(_))
    ));
    wait_status(&handle, &hash_a, "a seeds", |s| {
        s.activity == Activity::Seeding
    });
    wait_status(&handle, &hash_b, "b seeds", |s| {
        s.activity == Activity::Seeding
    });

    // A real peer downloads the first torrent from the session.
    fa.tracker.wait_for_peers(1, DOWNLOAD_LIMIT);
    let work = fa.root.join("leecher");
    let log = fa.root.join("leecher.log");
    let mut leecher = ChildGuard::spawn(
        &mut cyclone_download(&fa, &work, &["--exit-on-complete"]),
        &log,
    );
    let deadline = Instant::now() + DOWNLOAD_LIMIT;
    while leecher.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "leecher: {}", log_of(&log));
        let _ = handle.status.recv_timeout(Duration::from_millis(100));
    }
    wait_ok(&mut leecher, "leecher", &log);
    assert_same_files(
        &fa.root.join("seed/payload"),
        &work.join("payload"),
        &[("a.bin", LENGTH)],
    );

    // Remove the second: a last status with Stopped, then it is gone.
    handle.remove_torrent(&hash_b).unwrap();
    let stopped = wait_status(&handle, &hash_b, "b stops", |s| {
        s.activity == Activity::Stopped
    });
    assert_eq!(stopped.pieces_have, stopped.piece_count);
    assert!(matches!(
        handle.remove_torrent(&hash_b),
        Err(SessionError::UnknownTorrent(_))
    ));
    // The first one still runs.
    wait_status(&handle, &hash_a, "a still seeds", |s| {
        s.activity == Activity::Seeding
    });
    // Added again: its clean resume record lets it seed without a recheck.
    handle.add_torrent(seed_torrent(&fb, &mb)).unwrap();
    let again = wait_status(&handle, &hash_b, "b seeds again", |s| {
        s.activity == Activity::Seeding
    });
    assert!(
        again.resumed,
        "the final resume write of the removal was not used"
    );

    handle.stop();
    assert!(matches!(
        handle.add_torrent(seed_torrent(&fb, &mb)),
        Err(SessionError::Duplicate(_)) | Err(SessionError::Stopped)
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut final_a = false;
    while !handle.is_finished() {
        if let Ok(s) = handle.status.recv_timeout(Duration::from_millis(100)) {
            final_a |= s.info_hash == hash_a && s.activity == Activity::Stopped;
        }
        assert!(Instant::now() < deadline, "the session did not stop");
    }
    while let Ok(s) = handle.status.try_recv() {
        final_a |= s.info_hash == hash_a && s.activity == Activity::Stopped;
    }
    assert!(final_a, "a did not report its stop");
    handle.join().unwrap();
}
