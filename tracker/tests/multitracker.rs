//! Multitracker (bttrack §3.9) with two real trackers on loopback: tracker B polls tracker A for
//! a torrent whose announce-list names A, and lists A's peer to its own clients.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cyclone_metainfo::bencode::{self, write_bytes, write_int};

/// A small single-file .torrent with `announce-list` = one tier per URL.
fn torrent(urls: &[&str]) -> (Vec<u8>, [u8; 20]) {
    let mut t = b"d".to_vec();
    write_bytes(&mut t, b"announce");
    write_bytes(&mut t, urls[0].as_bytes());
    write_bytes(&mut t, b"announce-list");
    t.push(b'l');
    for u in urls {
        t.push(b'l');
        write_bytes(&mut t, u.as_bytes());
        t.push(b'e');
    }
    t.push(b'e');
    write_bytes(&mut t, b"info");
    t.push(b'd');
    write_bytes(&mut t, b"length");
    write_int(&mut t, 5000);
    write_bytes(&mut t, b"name");
    write_bytes(&mut t, b"t2t.bin");
    write_bytes(&mut t, b"piece length");
    write_int(&mut t, 16384);
    write_bytes(&mut t, b"pieces");
    write_bytes(&mut t, &[0x5a; 20]);
    t.extend_from_slice(b"ee");
    let m = cyclone_metainfo::Metainfo::from_bytes(&t).expect("valid torrent");
    (t, *m.info_hash.as_bytes())
}

fn counts(t: &Tracker, ih: &[u8; 20]) -> (i64, i64) {
    let r = t.get(&format!("/scrape?info_hash={}", enc(ih)));
    let v = bencode::decode(&r.body).unwrap();
    let f = v.get(b"files").unwrap().get(ih).unwrap();
    (
        f.get(b"complete").unwrap().as_int().unwrap(),
        f.get(b"incomplete").unwrap().as_int().unwrap(),
    )
}

#[test]
fn tracker_b_harvests_tracker_a_peers() {
    let dir = tempdir();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    // A answers polls (autodetect: its copy of the torrent has an announce-list).
    let (ta, ih) = torrent(&["http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"]);
    std::fs::write(dir_a.join("t.torrent"), &ta).unwrap();
    let a = Tracker::start(
        &path_in(&dir, "a.dfile"),
        &["--allowed_dir", dir_a.to_str().unwrap()],
    );
    let leecher = *b"-XX0001-aaaaaaaaaaaa";
    let r = a.get(&announce_target(
        &ih,
        &leecher,
        6881,
        10,
        "&compact=1&event=started",
    ));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // B lists A, itself, and an https tracker (reported, not polled).
    let port_b = free_port();
    let url_a = format!("http://127.0.0.1:{}/announce", a.port);
    let url_b = format!("http://127.0.0.1:{port_b}/announce");
    let (tb, ih_b) = torrent(&[&url_a, &url_b, "https://127.0.0.1:1/announce"]);
    assert_eq!(ih, ih_b, "announce-list is outside the info dict");
    std::fs::write(dir_b.join("t.torrent"), &tb).unwrap();
    let port_arg = port_b.to_string();
    let b = Tracker::start(
        &path_in(&dir, "b.dfile"),
        &[
            "--port",
            &port_arg,
            "--allowed_dir",
            dir_b.to_str().unwrap(),
            "--multitracker_enabled",
            "1",
            "--multitracker_reannounce_interval",
            "1",
            "--http_timeout",
            "10",
        ],
    );

    // A seed announcing to B soon gets A's leecher.
    let seed = *b"-XX0001-bbbbbbbbbbbb";
    let want = [127, 0, 0, 1, (6881u16 >> 8) as u8, (6881 & 0xff) as u8];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = b.get(&announce_target(&ih, &seed, 7000, 0, "&compact=1"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = bencode::decode(&r.body).unwrap();
        let peers = v.get(b"peers").unwrap().as_bytes().unwrap_or(&[]).to_vec();
        if peers.chunks(6).any(|c| c == want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never listed A's peer; B's stderr:\n{}",
            b.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Harvested peers are not B's peers: B counts only its seed; A's swarm is unchanged by the
    // polls (a poll is not a peer).
    assert_eq!(counts(&b, &ih), (1, 0));
    assert_eq!(counts(&a, &ih), (0, 1));
    // A polling tracker asking B gets only B's own peers, not what B harvested from A.
    let r = b.get(&announce_target(
        &ih,
        b"-ZZ0001-cccccccccccc",
        0,
        1,
        "&event=stopped&tracker=1&numwant=20",
    ));
    let v = bencode::decode(&r.body).unwrap();
    let peers = v.get(b"peers").unwrap().as_bytes().unwrap().to_vec();
    assert_eq!(
        peers,
        vec![127, 0, 0, 1, (7000u16 >> 8) as u8, (7000 & 0xff) as u8]
    );
    assert_eq!(v.get(b"interval").unwrap().as_int(), Some(1));
    let err = b.stop();
    assert!(
        err.contains("not polling https://127.0.0.1:1/announce"),
        "{err}"
    );
    assert!(
        !err.contains("disallowed"),
        "B never polls itself nor gets refused: {err}"
    );
    a.stop();
}
