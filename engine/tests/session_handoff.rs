//! The session on two shards, through its public API and real loopback sockets: every incoming connection, whichever
//! shard's `SO_REUSEPORT` listener the kernel gives it to, reaches the shard that owns the torrent (through the mesh
//! hand-off) and gets a handshake and our bitfield back; a clean stop reports `Stopped`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use cyclone_engine::session::{Activity, Session, SessionConfig, TorrentConfig};
use cyclone_metainfo::Metainfo;
use sha1::{Digest, Sha1};

const PIECE: usize = 32 * 1024;

/// A single-file torrent for `data` named `name` (no tracker), bencoded by hand.
fn torrent(name: &str, data: &[u8]) -> Vec<u8> {
    let pieces: Vec<u8> = data
        .chunks(PIECE)
        .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let mut t = Vec::new();
    t.extend_from_slice(b"d4:infod");
    t.extend_from_slice(format!("6:lengthi{}e", data.len()).as_bytes());
    t.extend_from_slice(format!("4:name{}:{name}", name.len()).as_bytes());
    t.extend_from_slice(format!("12:piece lengthi{PIECE}e").as_bytes());
    t.extend_from_slice(format!("6:pieces{}:", pieces.len()).as_bytes());
    t.extend_from_slice(&pieces);
    t.extend_from_slice(b"ee");
    t
}

#[test]
fn connections_accepted_on_any_shard_reach_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("data.bin");
    cyclone_tests::write_pseudo_random(&data_path, 300_000, 7);
    let data = std::fs::read(&data_path).unwrap();
    let metainfo = Metainfo::from_bytes(&torrent("data.bin", &data)).unwrap();
    let info_hash = *metainfo.info_hash.as_bytes();
    let layout = TorrentConfig::layout_for(&metainfo, dir.path(), None).unwrap();
    let config = SessionConfig {
        bind: Ipv4Addr::LOCALHOST.into(),
        minport: 0,
        shards: 2,
        display_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let handle = Session::start(
        config,
        vec![TorrentConfig {
            metainfo,
            layout,
            resume_path: None,
            file_priorities: None,
            max_upload_rate: 0,
            max_download_rate: 0,
        }],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = handle
            .status
            .recv_timeout(Duration::from_secs(60))
            .expect("status reports");
        if s.activity == Activity::Seeding {
            break;
        }
        assert!(s.error.is_none(), "{:?}", s.error);
        assert!(Instant::now() < deadline, "never started seeding");
    }
    let port = handle.listen_port();
    // Kept open together so each lands on its own 4-tuple (the kernel spreads them over both listeners).
    let mut conns = Vec::new();
    for i in 0..16u8 {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut hs = vec![19];
        hs.extend_from_slice(b"BitTorrent protocol");
        hs.extend_from_slice(&[0; 8]);
        hs.extend_from_slice(&info_hash);
        hs.extend_from_slice(format!("-TT0000-handoff{i:05}").as_bytes());
        s.write_all(&hs).unwrap();
        let mut answer = [0u8; 68];
        s.read_exact(&mut answer)
            .unwrap_or_else(|e| panic!("connection {i}: no handshake: {e}"));
        assert_eq!(answer[28..48], info_hash);
        // No fast extension on our side: the seed sends a BITFIELD with every piece.
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[4], 5, "connection {i}: expected a bitfield");
        conns.push(s);
    }
    handle.stop();
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle.is_finished() || last.is_none() {
        if let Ok(s) = handle.status.recv_timeout(Duration::from_millis(100)) {
            last = Some(s.activity);
        }
        assert!(Instant::now() < deadline, "the session did not stop");
    }
    while let Ok(s) = handle.status.try_recv() {
        last = Some(s.activity);
    }
    handle.join().unwrap();
    assert_eq!(last, Some(Activity::Stopped));
}
