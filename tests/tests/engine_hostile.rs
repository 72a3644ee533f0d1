//! Hostile peers over real sockets against a seeding `cyclone download`: unknown info-hash, garbage handshakes,
//! oversized frames, requests outside the torrent. Each must be closed, and the seed must keep serving honest
//! peers afterwards.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use cyclone_tests::swarm::*;

/// Reads until the peer closes the connection; fails if it stays open for 30 s. Returns the bytes received.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                assert!(
                    got.len() < 1 << 20,
                    "the seed keeps sending to a hostile peer"
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("connection not closed after {:?}: {e}", start.elapsed()),
        }
    }
}

fn handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    let mut h = vec![19];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(info_hash);
    h.extend_from_slice(b"-XX0000-hostile00000");
    h
}

#[test]
fn hostile_peers_are_closed_and_the_seed_survives() {
    let Some(f) = fixture() else { return };
    let _seed = cyclone_seed(&f, &f.root.join("seed.log"));
    let meta = cyclone_metainfo::Metainfo::from_bytes(&std::fs::read(&f.torrent).unwrap()).unwrap();
    let info_hash = *meta.info_hash.as_bytes();
    let port = f.tracker.peer_ports(&info_hash)[0];
    let connect = || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();

    // Unknown info-hash: closed without an answer.
    let mut s = connect();
    s.write_all(&handshake(&[0xab; 20])).unwrap();
    assert!(read_until_closed(&mut s).is_empty());

    // Not BitTorrent at all.
    let mut s = connect();
    s.write_all(&[b'G'; 68]).unwrap();
    assert!(read_until_closed(&mut s).is_empty());

    // A valid handshake, then a frame far over the message size limit.
    let mut s = connect();
    s.write_all(&handshake(&info_hash)).unwrap();
    s.write_all(&0x7fff_fff0u32.to_be_bytes()).unwrap();
    s.write_all(&[7; 64]).unwrap();
    let got = read_until_closed(&mut s);
    assert!(
        got.len() >= 68 && got[28..48] == info_hash,
        "no handshake answer"
    );

    // Interested, then a request for a piece that does not exist.
    let mut s = connect();
    s.write_all(&handshake(&info_hash)).unwrap();
    s.write_all(&[0, 0, 0, 1, 2]).unwrap();
    let mut req = vec![0, 0, 0, 13, 6];
    req.extend_from_slice(&1_000_000u32.to_be_bytes());
    req.extend_from_slice(&0u32.to_be_bytes());
    req.extend_from_slice(&16384u32.to_be_bytes());
    s.write_all(&req).unwrap();
    read_until_closed(&mut s);

    // A HAVE_ALL (fast extension) from a peer that did not negotiate it.
    let mut s = connect();
    s.write_all(&handshake(&info_hash)).unwrap();
    s.write_all(&[0, 0, 0, 1, 14]).unwrap();
    read_until_closed(&mut s);

    // The seed still serves an honest leecher.
    let work = f.root.join("leech");
    let log = f.root.join("leech.log");
    let mut dl = cyclone_tests::ChildGuard::spawn(
        &mut cyclone_download(&f, &work, &["--exit-on-complete"]),
        &log,
    );
    wait_ok(&mut dl, "cyclone leecher after the hostile peers", &log);
    assert_same_payload(&f.root.join("seed/payload"), &work.join("payload"));
}
