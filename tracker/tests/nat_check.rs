//! NAT checking with the real connect-back handshake, on loopback (`--nat_check_local 1` makes
//! the tracker check intranet peers, which bttrack would list unchecked).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use cyclone_metainfo::bencode;

const IH: [u8; 20] = [0x5a; 20];

#[test]
fn only_peers_that_answer_the_handshake_are_listed() {
    // Peer A answers the tracker's handshake with its own peer id.
    let a_id = *b"-AA0001-reachable!!!";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a_port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(8) {
            let Ok(mut c) = conn else { continue };
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut hs = [0u8; 48];
            if c.read_exact(&mut hs).is_err() {
                continue;
            }
            seen2.lock().unwrap().push(hs.to_vec());
            let mut reply = hs.to_vec();
            reply.extend_from_slice(&a_id);
            let _ = c.write_all(&reply);
        }
    });
    // Peer B announces a port where nothing listens.
    let b_id = *b"-BB0001-unreachable!";
    let b_port = free_port();

    let dir = tempdir();
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &["--nat_check_local", "1", "--nat_check", "2"],
    );
    let r = t.get(&announce_target(
        &IH,
        &a_id,
        a_port,
        10,
        "&compact=1&event=started",
    ));
    assert_eq!(r.status, 200);
    let r = t.get(&announce_target(
        &IH,
        &b_id,
        b_port,
        10,
        "&compact=1&event=started",
    ));
    assert_eq!(r.status, 200);
    let c_id = *b"-CC0001-requester!!!";
    let deadline = Instant::now() + Duration::from_secs(60);
    let ports = loop {
        let r = t.get(&announce_target(&IH, &c_id, 9, 10, "&compact=1&numwant=50"));
        let v = bencode::decode(&r.body).unwrap();
        let peers = v.get(b"peers").unwrap().as_bytes().unwrap_or(&[]).to_vec();
        let ports: Vec<u16> = peers
            .chunks(6)
            .map(|c| u16::from_be_bytes([c[4], c[5]]))
            .collect();
        if ports.contains(&a_port) {
            break ports;
        }
        assert!(Instant::now() < deadline, "peer A never became listed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !ports.contains(&b_port),
        "the unreachable peer is listed: {ports:?}"
    );
    // B gets its retry on its next announce, fails again, and stays unlisted.
    t.get(&announce_target(&IH, &b_id, b_port, 10, "&compact=1"));
    std::thread::sleep(Duration::from_millis(500));
    let r = t.get(&announce_target(&IH, &c_id, 9, 10, "&compact=1&numwant=50"));
    let v = bencode::decode(&r.body).unwrap();
    let peers = v.get(b"peers").unwrap().as_bytes().unwrap_or(&[]).to_vec();
    assert!(!peers
        .chunks(6)
        .any(|c| u16::from_be_bytes([c[4], c[5]]) == b_port));
    // Counts include every peer, checked or not (bttrack).
    assert_eq!(v.get(b"incomplete").unwrap().as_int(), Some(3));
    // The tracker sent the plaintext handshake for our torrent.
    let hs = seen.lock().unwrap()[0].clone();
    assert_eq!(&hs[..20], b"\x13BitTorrent protocol");
    assert_eq!(hs[28..48], IH);
    t.stop();
}
