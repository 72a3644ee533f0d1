//! The UDP tracker (BEP 15) end to end: the real `cyclone-tracker` binary on 127.0.0.1, spoken to
//! with datagrams built by hand here (not with the crate's codec, so a codec bug cannot hide).

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use cyclone_metainfo::bencode;

const PROTOCOL_ID: u64 = 0x0417_2710_1980;

struct Client {
    sock: UdpSocket,
    next_tid: u32,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

impl Client {
    fn new(port: u16) -> Client {
        Client::on("127.0.0.1", port)
    }

    fn on(host: &str, port: u16) -> Client {
        Client::on_from(host, host, port)
    }

    /// A client whose socket is bound to `local` and speaks to `host:port`.
    fn on_from(local: &str, host: &str, port: u16) -> Client {
        let sock = UdpSocket::bind((local, 0)).unwrap();
        sock.connect((host, port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client {
            sock,
            next_tid: 0x1000,
        }
    }

    /// Sends `packet` (with `tid` at bytes 12..16) and returns the answer carrying `tid`; retries
    /// a few times as a UDP client does.
    fn exchange(&self, packet: &[u8], tid: u32) -> Vec<u8> {
        for _ in 0..5 {
            self.sock.send(packet).unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match self.sock.recv(&mut buf) {
                    Ok(n) if n >= 8 && be32(&buf, 4) == tid => return buf[..n].to_vec(),
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
        }
        panic!("no answer to transaction {tid:#x}");
    }

    /// Expects no datagram within a second.
    fn silence(&self, packet: &[u8]) {
        self.sock
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        self.sock.send(packet).unwrap();
        let mut buf = [0u8; 4096];
        let r = self.sock.recv(&mut buf);
        assert!(
            r.is_err(),
            "unexpected answer {:?}",
            r.map(|n| buf[..n].to_vec())
        );
        self.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }

    fn tid(&mut self) -> u32 {
        self.next_tid += 1;
        self.next_tid
    }

    fn connect(&mut self) -> u64 {
        let tid = self.tid();
        let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&tid.to_be_bytes());
        let r = self.exchange(&p, tid);
        assert_eq!(r.len(), 16, "{r:?}");
        assert_eq!(be32(&r, 0), 0);
        u64::from_be_bytes(r[8..16].try_into().unwrap())
    }

    #[allow(clippy::too_many_arguments)]
    fn announce_packet(
        &mut self,
        cid: u64,
        ih: &[u8; 20],
        pid: &[u8; 20],
        left: u64,
        event: u32,
        port: u16,
    ) -> (Vec<u8>, u32) {
        let tid = self.tid();
        let mut p = cid.to_be_bytes().to_vec();
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&tid.to_be_bytes());
        p.extend_from_slice(ih);
        p.extend_from_slice(pid);
        p.extend_from_slice(&0u64.to_be_bytes());
        p.extend_from_slice(&left.to_be_bytes());
        p.extend_from_slice(&0u64.to_be_bytes());
        p.extend_from_slice(&event.to_be_bytes());
        p.extend_from_slice(&[0; 4]); // ip
        p.extend_from_slice(&0x1234u32.to_be_bytes()); // key
        p.extend_from_slice(&(-1i32).to_be_bytes()); // num_want
        p.extend_from_slice(&port.to_be_bytes());
        assert_eq!(p.len(), 98);
        (p, tid)
    }

    /// Announces and returns (interval, leechers, seeders, peers as (ip, port)).
    fn announce(
        &mut self,
        cid: u64,
        ih: &[u8; 20],
        pid: &[u8; 20],
        left: u64,
        event: u32,
        port: u16,
    ) -> (u32, u32, u32, Vec<([u8; 4], u16)>) {
        let (p, tid) = self.announce_packet(cid, ih, pid, left, event, port);
        let r = self.exchange(&p, tid);
        assert_eq!(be32(&r, 0), 1, "not an announce answer: {r:?}");
        assert_eq!((r.len() - 20) % 6, 0);
        let peers = r[20..]
            .chunks(6)
            .map(|c| ([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]])))
            .collect();
        (be32(&r, 8), be32(&r, 12), be32(&r, 16), peers)
    }

    fn scrape_packet(&mut self, cid: u64, hashes: &[[u8; 20]]) -> (Vec<u8>, u32) {
        let tid = self.tid();
        let mut p = cid.to_be_bytes().to_vec();
        p.extend_from_slice(&2u32.to_be_bytes());
        p.extend_from_slice(&tid.to_be_bytes());
        for h in hashes {
            p.extend_from_slice(h);
        }
        (p, tid)
    }

    /// Scrapes and returns (seeders, completed, leechers) per hash.
    fn scrape(&mut self, cid: u64, hashes: &[[u8; 20]]) -> Vec<(u32, u32, u32)> {
        let (p, tid) = self.scrape_packet(cid, hashes);
        let r = self.exchange(&p, tid);
        assert_eq!(be32(&r, 0), 2, "not a scrape answer: {r:?}");
        assert_eq!(r.len(), 8 + 12 * hashes.len());
        r[8..]
            .chunks(12)
            .map(|c| (be32(c, 0), be32(c, 4), be32(c, 8)))
            .collect()
    }
}

/// The error message of an error packet (action 3).
fn error_message(r: &[u8]) -> String {
    assert_eq!(be32(r, 0), 3, "not an error packet: {r:?}");
    String::from_utf8_lossy(&r[8..]).into_owned()
}

/// Info-hashes owned by different shards (with 2 shards, a handful of distinct first bytes covers
/// both).
fn hashes(n: usize) -> Vec<[u8; 20]> {
    (0..n)
        .map(|i| {
            let mut h = [0x5a; 20];
            h[0] = (i as u8).wrapping_mul(37);
            h[19] = i as u8;
            h
        })
        .collect()
}

#[test]
fn connect_announce_scrape_share_swarms_with_http() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--reannounce_interval", "77"]);
    let hs = hashes(8);
    for (k, ih) in hs.iter().enumerate() {
        let mut a = Client::new(t.port);
        let mut b = Client::new(t.port);
        let ca = a.connect();
        let cb = b.connect();
        assert_ne!(ca, cb, "ids are bound to the client address");
        // Leecher A first: nobody else yet.
        let (interval, leechers, seeders, peers) = a.announce(ca, ih, &[b'A'; 20], 100, 2, 7001);
        assert_eq!((interval, leechers, seeders), (77, 1, 0), "hash {k}");
        assert!(peers.is_empty());
        // Seed B sees A.
        let (_, leechers, seeders, peers) = b.announce(cb, ih, &[b'B'; 20], 0, 2, 7002);
        assert_eq!((leechers, seeders), (1, 1));
        assert_eq!(peers, vec![([127, 0, 0, 1], 7001)]);
        // A sees B.
        let (_, _, _, peers) = a.announce(ca, ih, &[b'A'; 20], 100, 0, 7001);
        assert_eq!(peers, vec![([127, 0, 0, 1], 7002)]);
        // A completes: a completion is counted.
        let (_, leechers, seeders, _) = a.announce(ca, ih, &[b'A'; 20], 0, 1, 7001);
        assert_eq!((leechers, seeders), (0, 2));
    }
    // One scrape over every hash (they span both shards) plus an unknown one, in request order.
    let mut c = Client::new(t.port);
    let cid = c.connect();
    let mut asked = hs.clone();
    asked.insert(3, [0xee; 20]);
    let counts = c.scrape(cid, &asked);
    for (i, n) in counts.iter().enumerate() {
        let want = if i == 3 { (0, 0, 0) } else { (2, 1, 0) };
        assert_eq!(*n, want, "entry {i}");
    }
    // The HTTP side sees the same swarms...
    let r = t.get(&format!("/scrape?info_hash={}", enc(&hs[0])));
    let v = bencode::decode(&r.body).unwrap();
    let f = v.get(b"files").unwrap().get(&hs[0]).unwrap();
    assert_eq!(f.get(b"complete").unwrap().as_int(), Some(2));
    assert_eq!(f.get(b"downloaded").unwrap().as_int(), Some(1));
    // ...and a peer announced over HTTP is listed to UDP clients.
    let r = t.get(&announce_target(
        &hs[1],
        &[b'H'; 20],
        7009,
        50,
        "&compact=1",
    ));
    assert_eq!(r.status, 200);
    let (_, leechers, seeders, peers) = c.announce(cid, &hs[1], &[b'C'; 20], 0, 2, 7003);
    assert_eq!((leechers, seeders), (1, 3));
    assert_eq!(peers, vec![([127, 0, 0, 1], 7009)]);
    // Stopped: removed, no peers in the answer.
    let (_, leechers, seeders, peers) = c.announce(cid, &hs[1], &[b'C'; 20], 0, 3, 7003);
    assert_eq!((leechers, seeders, peers.len()), (1, 2, 0));
    t.stop();
}

#[test]
fn bad_connection_ids_and_malformed_packets_get_error_packets() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &[]);
    let ih = [0x11; 20];
    let mut a = Client::new(t.port);
    let mut b = Client::new(t.port);
    let ca = a.connect();
    // A made-up id.
    let (p, tid) = a.announce_packet(0x0123_4567_89ab_cdef, &ih, &[1; 20], 5, 2, 7001);
    let r = a.exchange(&p, tid);
    assert!(error_message(&r).contains("connection id"), "{r:?}");
    // A's id used from another address (B's socket).
    let (p, tid) = b.announce_packet(ca, &ih, &[2; 20], 5, 2, 7002);
    let r = b.exchange(&p, tid);
    assert!(error_message(&r).contains("connection id"));
    let (p, tid) = b.scrape_packet(ca, &[ih]);
    let r = b.exchange(&p, tid);
    assert!(error_message(&r).contains("connection id"));
    // Nothing was recorded by the refused announces.
    let counts = a.scrape(ca, &[ih]);
    assert_eq!(counts, vec![(0, 0, 0)]);
    // Malformed lengths: a short announce, a scrape of 16 + 19 bytes, 75 hashes.
    let (p, tid) = a.announce_packet(ca, &ih, &[1; 20], 5, 2, 7001);
    assert!(!error_message(&a.exchange(&p[..97], tid)).is_empty());
    let (mut p, tid) = a.scrape_packet(ca, &[ih]);
    p.pop();
    assert!(error_message(&a.exchange(&p, tid)).contains("16 + 20"));
    let (p, tid) = a.scrape_packet(ca, &hashes(75));
    assert!(error_message(&a.exchange(&p, tid)).contains("74"));
    // Unknown action.
    let tid = a.tid();
    let mut p = ca.to_be_bytes().to_vec();
    p.extend_from_slice(&9u32.to_be_bytes());
    p.extend_from_slice(&tid.to_be_bytes());
    assert!(error_message(&a.exchange(&p, tid)).contains("action"));
    // Fewer than 16 bytes: no transaction id, no answer. Malformed requests without a valid
    // connection id get no answer either: a 17-byte connect, an unknown action with a made-up id.
    a.silence(&[0; 15]);
    let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 0]);
    a.silence(&p);
    let mut p = 77u64.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 9]);
    a.silence(&p);
    // The tracker still works for A.
    let (_, leechers, _, _) = a.announce(ca, &ih, &[1; 20], 5, 2, 7001);
    assert_eq!(leechers, 1);
    t.stop();
}

#[test]
fn ipv6_clients_get_18_byte_ipv6_peers() {
    let dir = tempdir();
    let t = Tracker::start_ipv6(&path_in(&dir, "dstate"));
    assert_eq!(t.host, "::1");
    let ih = [0x66; 20];
    let mut a = Client::on("::1", t.port);
    let mut b = Client::on("::1", t.port);
    let ca = a.connect();
    let cb = b.connect();
    let (p, tid) = a.announce_packet(ca, &ih, &[b'A'; 20], 10, 2, 7001);
    let r = a.exchange(&p, tid);
    assert_eq!((be32(&r, 0), r.len()), (1, 20));
    let (p, tid) = b.announce_packet(cb, &ih, &[b'B'; 20], 0, 2, 7002);
    let r = b.exchange(&p, tid);
    assert_eq!(be32(&r, 0), 1);
    let mut expected = std::net::Ipv6Addr::LOCALHOST.octets().to_vec();
    expected.extend_from_slice(&7001u16.to_be_bytes());
    assert_eq!(&r[20..], expected.as_slice());
    t.stop();
}

#[test]
fn allowed_list_banned_ips_and_scrape_policy_apply_to_udp() {
    let dir = tempdir();
    let listed = [0x11u8; 20];
    let other = [0x22u8; 20];
    let hex = |h: &[u8; 20]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let list = path_in(&dir, "allowed.txt");
    std::fs::write(&list, format!("{}\n", hex(&listed))).unwrap();
    let banned = path_in(&dir, "banned.txt");
    std::fs::write(&banned, "loopback:127.0.0.3-127.0.0.3\n").unwrap();
    // Clients bound to other loopback addresses reach the tracker on 127.0.0.1: 127.0.0.2 may
    // announce, 127.0.0.3 is banned.
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &[
            "--allowed_list",
            list.to_str().unwrap(),
            "--banned_ips",
            banned.to_str().unwrap(),
            "--scrape_allowed",
            "none",
        ],
    );
    let mut ok = Client::on_from("127.0.0.2", "127.0.0.1", t.port);
    let cid = ok.connect();
    let (_, leechers, _, _) = ok.announce(cid, &listed, &[1; 20], 5, 2, 7001);
    assert_eq!(leechers, 1);
    // A torrent outside the allowed list: the swarm's refusal, as an error packet.
    let (p, tid) = ok.announce_packet(cid, &other, &[1; 20], 5, 2, 7001);
    assert_eq!(
        error_message(&ok.exchange(&p, tid)),
        "Requested download is not authorized for use with this tracker."
    );
    // Scrapes are off.
    let (p, tid) = ok.scrape_packet(cid, &[listed]);
    assert!(error_message(&ok.exchange(&p, tid)).contains("scrape"));
    // A banned address still gets a connection id, but no announce.
    let mut banned_client = Client::on_from("127.0.0.3", "127.0.0.1", t.port);
    let cid = banned_client.connect();
    let (p, tid) = banned_client.announce_packet(cid, &listed, &[2; 20], 5, 2, 7002);
    assert!(error_message(&banned_client.exchange(&p, tid)).contains("not allowed"));
    t.stop();
}

#[test]
fn clients_repeating_bad_connection_ids_are_ignored() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &[]);
    let ih = [0x33; 20];
    // 64 bad ids in a minute are tolerated, each answered with an error packet...
    let mut guesser = Client::on_from("127.0.0.5", "127.0.0.1", t.port);
    for guess in 0..64u64 {
        let (p, tid) = guesser.announce_packet(guess, &ih, &[5; 20], 5, 2, 7005);
        assert!(error_message(&guesser.exchange(&p, tid)).contains("connection id"));
    }
    let cid = guesser.connect();
    let (_, leechers, _, _) = guesser.announce(cid, &ih, &[5; 20], 5, 2, 7005);
    assert_eq!(leechers, 1);
    // ...the 65th starts a ban: nothing from that address is answered, not even a connect.
    let (p, tid) = guesser.announce_packet(64, &ih, &[5; 20], 5, 2, 7005);
    assert!(error_message(&guesser.exchange(&p, tid)).contains("connection id"));
    let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    guesser.silence(&p);
    // Other addresses are still served.
    let mut other = Client::on_from("127.0.0.6", "127.0.0.1", t.port);
    let cid = other.connect();
    let (_, leechers, _, _) = other.announce(cid, &ih, &[6; 20], 5, 2, 7006);
    assert_eq!(leechers, 2);
    t.stop();

    // `--udp_bad_id_ban 0`: never banned.
    let t = Tracker::start(&path_in(&dir, "dstate2"), &["--udp_bad_id_ban", "0"]);
    let mut c = Client::on_from("127.0.0.5", "127.0.0.1", t.port);
    for guess in 0..100u64 {
        let (p, tid) = c.announce_packet(guess, &ih, &[5; 20], 5, 2, 7005);
        assert!(error_message(&c.exchange(&p, tid)).contains("connection id"));
    }
    c.connect();
    t.stop();
}

#[test]
fn udp_off_means_no_udp_answer() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--udp", "0"]);
    assert!(!t.stderr_text().contains("UDP"));
    let c = Client::new(t.port);
    let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    c.silence(&p);
    t.stop();
}

#[test]
fn a_burst_of_datagrams_is_answered_in_full() {
    // Sent without waiting, so the server's socket holds many at once: they are read in batches
    // (recvmmsg) and answered in batches (sendmmsg). 100 small answers fit the client's default
    // receive buffer.
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &[]);
    let c = Client::new(t.port);
    let tids: Vec<u32> = (0..100).map(|i| 0x5000 + i).collect();
    for &tid in &tids {
        let mut p = PROTOCOL_ID.to_be_bytes().to_vec();
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&tid.to_be_bytes());
        c.sock.send(&p).unwrap();
    }
    let mut answered = std::collections::BTreeSet::new();
    let mut buf = [0u8; 64];
    while answered.len() < tids.len() {
        let n = c
            .sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{} of 100 answered, then: {e}", answered.len()));
        assert_eq!((n, be32(&buf, 0)), (16, 0), "a connect answer");
        assert!(answered.insert(be32(&buf, 4)), "one answer per request");
    }
    assert_eq!(answered.into_iter().collect::<Vec<_>>(), tids);
    t.stop();
}

/// UDP announces and scrapes are access-logged in their HTTP form (protocol `UDP`, 400 for error packets, no
/// line for connects), and announces go to `--aggregate_forward` as HTTP announces, like HTTP ones.
#[test]
fn udp_requests_are_logged_and_forwarded_as_http_announces() {
    let (up_port, rx) = one_request_upstream();
    let dir = tempdir();
    let log = path_in(&dir, "access.log");
    let fwd = format!("http://127.0.0.1:{up_port}/announce");
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &[
            "--access_log",
            "1",
            "--logfile",
            log.to_str().unwrap(),
            "--min_time_between_log_flushes",
            "0.1",
            "--aggregate_forward",
            &fwd,
        ],
    );
    let ih = [0xab; 20];
    let mut c = Client::new(t.port);
    let cid = c.connect();
    // First an announce with a connection id never issued: refused, logged, and not forwarded (the upstream
    // takes only the first forward, which must be the next announce's).
    let (bad, tid) = c.announce_packet(cid ^ 1, &ih, &[b'X'; 20], 100, 0, 7999);
    assert_eq!(error_message(&c.exchange(&bad, tid)), "bad connection id");
    c.announce(cid, &ih, &[b'U'; 20], 100, 2, 7123);
    c.scrape(cid, &[ih]);

    let query = format!(
        "info_hash={}&peer_id={}&port=7123&uploaded=0&downloaded=0&left=100&compact=1&no_peer_id=1&key=00001234&event=started",
        enc(&ih),
        "UUUUUUUUUUUUUUUUUUUU"
    );
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the UDP announce was forwarded");
    assert!(
        got.starts_with(&format!("GET /announce?{query} HTTP/1.0\r\n")),
        "{got}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().filter(|l| l.contains(" UDP\" ")).count() >= 3 {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no UDP access log lines: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let udp: Vec<&str> = text.lines().filter(|l| l.contains(" UDP\" ")).collect();
    assert_eq!(udp.len(), 3, "refused announce, announce, scrape: {text}");
    assert!(udp[0].contains(" UDP\" 400 "), "{}", udp[0]);
    assert!(udp[1].starts_with("127.0.0.1 - - ["), "{}", udp[1]);
    assert!(
        udp[1].contains(&format!("\"GET /announce?{query} UDP\" 200 ")),
        "{}",
        udp[1]
    );
    assert!(
        udp[2].contains(&format!(
            "\"GET /scrape?info_hash={} UDP\" 200 20 ",
            enc(&ih)
        )),
        "{}",
        udp[2]
    );
    assert!(
        !text.contains("/connect"),
        "connects are not logged: {text}"
    );
    t.stop();
}
