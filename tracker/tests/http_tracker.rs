//! End-to-end: the real tracker binary over real sockets on 127.0.0.1.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use cyclone_metainfo::bencode;
use cyclone_tracker::dfile;

const IH: [u8; 20] =
    *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14";

fn pid(n: u8) -> [u8; 20] {
    let mut p = *b"-CY0001-000000000000";
    p[19] = b'a' + n;
    p
}

#[test]
fn announce_responses_errors_and_scrape() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--compact_reqd", "0"]);
    // A seed and a leecher.
    let r = t.get(&announce_target(
        &IH,
        &pid(0),
        7000,
        0,
        "&compact=1&event=started",
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("pragma").as_deref(), Some("no-cache"));
    let r = t.get(&announce_target(
        &IH,
        &pid(1),
        7001,
        100,
        "&compact=1&event=started",
    ));
    let v = bencode::decode(&r.body).unwrap();
    assert_eq!(
        v.get(b"peers").unwrap().as_bytes().unwrap(),
        &[127, 0, 0, 1, 0x1b, 0x58],
        "the leecher gets the seed only"
    );
    assert_eq!(v.get(b"complete").unwrap().as_int(), Some(1));
    assert_eq!(v.get(b"incomplete").unwrap().as_int(), Some(1));
    assert_eq!(v.get(b"interval").unwrap().as_int(), Some(1800));
    assert_eq!(v.get(b"min interval").unwrap().as_int(), Some(900));
    // Dict and no_peer_id forms.
    let r = t.get(&announce_target(&IH, &pid(2), 7002, 100, "&numwant=5"));
    let v = bencode::decode(&r.body).unwrap();
    let list = v.get(b"peers").unwrap().as_list().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|p| p.get(b"peer id").is_some()
            && p.get(b"ip").unwrap().as_bytes() == Some(b"127.0.0.1")));
    let r = t.get(&announce_target(&IH, &pid(3), 7003, 100, "&no_peer_id=1"));
    let v = bencode::decode(&r.body).unwrap();
    assert!(v
        .get(b"peers")
        .unwrap()
        .as_list()
        .unwrap()
        .iter()
        .all(|p| p.get(b"peer id").is_none()));
    // The seed gets only leechers (3 of them), never itself.
    let r = t.get(&announce_target(&IH, &pid(0), 7000, 0, "&compact=1"));
    let v = bencode::decode(&r.body).unwrap();
    let peers = v.get(b"peers").unwrap().as_bytes().unwrap();
    assert_eq!(peers.len(), 18);
    assert!(!peers.chunks(6).any(|c| c[4..] == 7000u16.to_be_bytes()));
    // Errors, with bttrack's statuses and texts.
    let r = t.get("/announce?peer_id=x");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (400, &b"you sent me garbage - no info hash"[..])
    );
    let r = t.get(&announce_target(&IH, &pid(4), 7004, 1, "&event=bogus"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (400, &b"you sent me garbage - invalid event"[..])
    );
    let r = t.get("/nothing");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        b"your file may exist elsewhere in the universe\nbut alas, not here\n"
    );
    // Scrape: specific and full.
    let r = t.get(&format!("/scrape?info_hash={}", enc(&IH)));
    let v = bencode::decode(&r.body).unwrap();
    let f = v.get(b"files").unwrap().get(&IH).unwrap();
    assert_eq!(f.get(b"complete").unwrap().as_int(), Some(1));
    assert_eq!(f.get(b"incomplete").unwrap().as_int(), Some(3));
    assert_eq!(f.get(b"downloaded").unwrap().as_int(), Some(0));
    let r = t.get("/scrape");
    assert_eq!(
        bencode::decode(&r.body)
            .unwrap()
            .get(b"files")
            .unwrap()
            .as_dict()
            .unwrap()
            .len(),
        1
    );
    // A completion.
    t.get(&announce_target(
        &IH,
        &pid(1),
        7001,
        0,
        "&compact=1&event=completed",
    ));
    let r = t.get(&format!("/scrape.php?info_hash={}", enc(&IH)));
    let v = bencode::decode(&r.body).unwrap();
    assert_eq!(
        v.get(b"files")
            .unwrap()
            .get(&IH)
            .unwrap()
            .get(b"downloaded")
            .unwrap()
            .as_int(),
        Some(1)
    );
    // Info page lists the torrent with totals.
    let r = t.get("/index.html");
    assert_eq!(r.status, 200);
    let page = String::from_utf8(r.body).unwrap();
    assert!(
        page.contains("0102030405060708090a0b0c0d0e0f1011121314"),
        "{page}"
    );
    assert!(page.contains("1 files"), "{page}");
    t.stop();
}

#[test]
fn compact_required_and_scrape_restrictions() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--scrape_allowed", "specific"]);
    let r = t.get(&announce_target(&IH, &pid(0), 7000, 5, ""));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (400, &b"your client is outdated, please upgrade"[..])
    );
    let r = t.get("/scrape");
    assert_eq!(r.status, 400);
    let v = bencode::decode(&r.body).unwrap();
    assert_eq!(
        v.get(b"failure reason").unwrap().as_str(),
        Some("full scrape function is not available with this tracker.")
    );
    t.stop();
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &["--scrape_allowed", "none", "--show_infopage", "0"],
    );
    let r = t.get(&format!("/scrape?info_hash={}", enc(&IH)));
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("specific scrape function is not available"));
    assert_eq!(t.get("/").status, 404);
    t.stop();
}

#[test]
fn keep_alive_pipelining_and_malformed_http() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &[]);
    let a = announce_target(&IH, &pid(0), 7000, 5, "&compact=1");
    let req = format!("GET {a} HTTP/1.1\r\nHost: x\r\n\r\nGET /scrape HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let rs = raw_request(t.port, req.as_bytes()).unwrap();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].status, 200);
    assert_eq!(rs[1].status, 200);
    let rs = raw_request(t.port, b"POST /announce HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(rs[0].status, 405);
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    let rs = raw_request(t.port, huge.as_bytes()).unwrap();
    assert_eq!(rs[0].status, 431);
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let rs = raw_request(t.port, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap();
    assert_eq!(rs[0].status, 431);
    // HEAD: headers only.
    let rs = raw_request(t.port, b"HEAD /scrape HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(rs[0].status, 200);
    assert!(rs[0].body.is_empty());
    // Gzip when asked and smaller (the info page is).
    let rs = raw_request(
        t.port,
        b"GET / HTTP/1.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(rs[0].header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(&rs[0].body[..2], &[0x1f, 0x8b]);
    t.stop();
}

/// Reads one response from a keep-alive connection (head, then Content-Length bytes of body).
fn read_one_response(s: &mut std::net::TcpStream) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, body)
}

/// Keep-alive connections are read two ways (a plain `recv` after a yield when the shard is busy, glommio's
/// stream otherwise): many connections at once, each sending its requests one after another, some right away and
/// some after a pause, all get the right answers in order; then, left idle, they are closed by the timeout.
#[test]
fn keep_alive_connections_under_load_then_idle() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--socket_timeout", "2"]);
    let port = t.port;
    let threads: Vec<_> = (0..16u8)
        .map(|c| {
            std::thread::spawn(move || {
                use std::io::Write;
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                for i in 0..300u32 {
                    let left = u64::from(i % 2);
                    let a = announce_target(&IH, &pid(c), 7000 + u16::from(c), left, "&compact=1");
                    write!(s, "GET {a} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    let (status, body) = read_one_response(&mut s);
                    assert_eq!(status, 200, "connection {c} request {i}");
                    assert!(
                        body.starts_with(b"d8:complete"),
                        "{}",
                        String::from_utf8_lossy(&body)
                    );
                    if i % 50 == 49 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                // Idle now: the server closes the connection after --socket_timeout.
                let start = std::time::Instant::now();
                let mut buf = [0u8; 16];
                let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
                assert_eq!(n, 0, "the server closes an idle keep-alive connection");
                assert!(start.elapsed() < Duration::from_secs(20));
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    // Every connection's peer is in the swarm.
    let r = t.get(&announce_target(&IH, &pid(99), 7999, 5, "&compact=1"));
    let body = String::from_utf8_lossy(&r.body).into_owned();
    let counts = |key: &str| -> u64 {
        let at = body.find(key).unwrap() + key.len() + 1;
        body[at..].split('e').next().unwrap().parse().unwrap()
    };
    assert_eq!(counts("complete") + counts("incomplete"), 17, "{body}");
    t.stop();
}

#[test]
fn idle_connections_time_out() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--socket_timeout", "1"]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes an idle connection");
    assert!(start.elapsed() < Duration::from_secs(20));
    t.stop();
}

#[test]
fn restart_from_dfile_keeps_the_swarm() {
    let dir = tempdir();
    let dpath = path_in(&dir, "dstate");
    let t = Tracker::start(&dpath, &[]);
    for i in 0..3u8 {
        let left = if i == 0 { 0 } else { 10 };
        let r = t.get(&announce_target(
            &IH,
            &pid(i),
            7000 + u16::from(i),
            left,
            "&compact=1&event=started&key=k",
        ));
        assert_eq!(r.status, 200);
    }
    t.get(&announce_target(
        &IH,
        &pid(1),
        7001,
        0,
        "&compact=1&event=completed&key=k",
    ));
    t.stop();
    let saved = dfile::decode(&std::fs::read(&dpath).unwrap(), false).unwrap();
    assert_eq!(saved.peers[&IH].len(), 3);
    assert_eq!(saved.completed[&IH], 1);
    let t = Tracker::start(&dpath, &[]);
    assert!(
        t.stderr_text().contains("1 torrents, 3 peers"),
        "{}",
        t.stderr_text()
    );
    let r = t.get(&format!("/scrape?info_hash={}", enc(&IH)));
    let v = bencode::decode(&r.body).unwrap();
    let f = v.get(b"files").unwrap().get(&IH).unwrap();
    assert_eq!(f.get(b"complete").unwrap().as_int(), Some(2));
    assert_eq!(f.get(b"incomplete").unwrap().as_int(), Some(1));
    assert_eq!(f.get(b"downloaded").unwrap().as_int(), Some(1));
    // A new leecher gets the restored seeds.
    let r = t.get(&announce_target(&IH, &pid(9), 7009, 10, "&compact=1"));
    let v = bencode::decode(&r.body).unwrap();
    assert_eq!(v.get(b"peers").unwrap().as_bytes().unwrap().len(), 18);
    t.stop();
}

#[test]
fn corrupt_dfile_is_reported_and_set_aside() {
    let dir = tempdir();
    let dpath = path_in(&dir, "dstate");
    std::fs::write(&dpath, b"d5:peersi3ee").unwrap();
    let t = Tracker::start(&dpath, &[]);
    let err = t.stderr_text();
    assert!(
        err.contains("corrupt") && err.contains("set aside"),
        "{err}"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("dstate.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), b"d5:peersi3ee");
    t.stop();
    dfile::decode(&std::fs::read(&dpath).unwrap(), false).expect("a fresh valid dfile");
}

#[test]
fn php_generated_dfile_loads() {
    let dir = tempdir();
    let dpath = path_in(&dir, "dstate");
    // generateDFile.php output: only ip/left/port per peer, every torrent in `completed`.
    let mut f = b"d9:completedd20:".to_vec();
    f.extend_from_slice(&IH);
    f.extend_from_slice(b"i7ee5:peersd20:");
    f.extend_from_slice(&IH);
    f.extend_from_slice(b"d20:");
    f.extend_from_slice(&pid(0));
    f.extend_from_slice(b"d2:ip9:127.0.0.14:lefti0e4:porti7000ee20:");
    f.extend_from_slice(&pid(1));
    f.extend_from_slice(b"d2:ip9:127.0.0.14:lefti50e4:porti7001eeeee");
    std::fs::write(&dpath, &f).unwrap();
    let t = Tracker::start(&dpath, &[]);
    let r = t.get(&format!("/scrape?info_hash={}", enc(&IH)));
    let v = bencode::decode(&r.body).unwrap();
    let s = v.get(b"files").unwrap().get(&IH).unwrap();
    assert_eq!(s.get(b"complete").unwrap().as_int(), Some(1));
    assert_eq!(s.get(b"incomplete").unwrap().as_int(), Some(1));
    assert_eq!(s.get(b"downloaded").unwrap().as_int(), Some(7));
    t.stop();
    let saved = dfile::decode(&std::fs::read(&dpath).unwrap(), false).unwrap();
    assert!(saved.peers[&IH]
        .iter()
        .all(|p| !p.supportcrypto && !p.requirecrypto));
}

#[test]
fn sigkill_during_saves_leaves_an_intact_dfile() {
    let dir = tempdir();
    let dpath = path_in(&dir, "dstate");
    let mut expected_min = 0usize;
    for round in 0..6u32 {
        let t = Tracker::start(&dpath, &["--save_dfile_interval", "1"]);
        // Grow the state so each save writes a few hundred KB, over one keep-alive connection.
        let mut req = String::new();
        for i in 0..1500u32 {
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&(round * 10_000 + i).to_be_bytes());
            req.push_str(&format!(
                "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
                announce_target(&ih, &pid(0), 7000, 1, "&compact=1")
            ));
        }
        req.push_str("GET /nothing HTTP/1.1\r\nConnection: close\r\n\r\n");
        let rs = raw_request(t.port, req.as_bytes()).unwrap();
        assert_eq!(rs.len(), 1501);
        // Kill at a different point of the 1 s save cycle each round.
        std::thread::sleep(Duration::from_millis(1000 + u64::from(round) * 170));
        t.kill9();
        let bytes = std::fs::read(&dpath).expect("a dfile exists after the first save");
        let state = dfile::decode(&bytes, false)
            .unwrap_or_else(|e| panic!("round {round}: dfile corrupt after SIGKILL: {e}"));
        assert!(
            state.peers.len() >= expected_min,
            "round {round}: state went backwards"
        );
        expected_min = state.peers.len();
    }
    assert!(
        expected_min >= 1500,
        "saves happened: {expected_min} torrents"
    );
}

#[test]
fn bttrack_command_line_as_in_the_readme() {
    let dir = tempdir();
    let dpath = path_in(&dir, "dstate");
    // Exactly `bttrack --port N --dfile F`.
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["--port", &port.to_string(), "--dfile"])
        .arg(&dpath)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let t = Tracker::spawn(cmd);
    assert_eq!(t.port, port);
    let r = t.get(&announce_target(&IH, &pid(0), 7000, 5, "&compact=1"));
    assert_eq!(r.status, 200);
    t.stop();
    assert!(dpath.exists());
    // No arguments: BitTornado prints the option list.
    let out = Command::new(BIN).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("--dfile <arg>") && text.contains("--save_dfile_interval <arg>"),
        "{text}"
    );
    // A missing required option.
    let out = Command::new(BIN).args(["--port", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Option --dfile is required."));
}

#[test]
fn ipv6_peers_are_served_in_peers6() {
    let dir = tempdir();
    let t = Tracker::start_ipv6(&path_in(&dir, "dstate"));
    assert_eq!(t.host, "::1");
    // IPv6 clients need no compact=1 to be served (compact_reqd applies to IPv4 only), but compact
    // IPv6 peers go to `peers6` (BEP 7).
    let r = t.get(&announce_target(&IH, &pid(0), 7000, 0, "&compact=1"));
    assert_eq!(r.status, 200);
    let r = t.get(&announce_target(&IH, &pid(1), 7001, 10, "&compact=1"));
    let v = bencode::decode(&r.body).unwrap();
    let p6 = v.get(b"peers6").unwrap().as_bytes().unwrap();
    let mut expected = std::net::Ipv6Addr::LOCALHOST.octets().to_vec();
    expected.extend_from_slice(&7000u16.to_be_bytes());
    assert_eq!(p6, expected.as_slice());
    let r = t.get(&announce_target(&IH, &pid(2), 7002, 10, ""));
    let v = bencode::decode(&r.body).unwrap();
    let list = v.get(b"peers").unwrap().as_list().unwrap();
    assert!(list
        .iter()
        .any(|p| p.get(b"ip").unwrap().as_str() == Some("::1")));
    t.stop();
}

#[test]
fn favicon_redirect_and_log_file_with_hup() {
    let dir = tempdir();
    let icon = path_in(&dir, "favicon.ico");
    std::fs::write(&icon, b"\x00\x00\x01\x00icon-bytes").unwrap();
    let log = path_in(&dir, "access.log");
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &[
            "--favicon",
            icon.to_str().unwrap(),
            "--access_log",
            "1",
            "--logfile",
            log.to_str().unwrap(),
            "--hupmonitor",
            "1",
            "--min_time_between_log_flushes",
            "0.1",
        ],
    );
    let r = t.get("/favicon.ico");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("image/x-icon"));
    assert_eq!(r.body, std::fs::read(&icon).unwrap());
    assert!(String::from_utf8(t.get("/").body)
        .unwrap()
        .contains("shortcut icon"));
    t.get(&announce_target(&IH, &pid(0), 7000, 5, "&compact=1"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("\"GET /announce?") && text.contains("# Log Started: ") {
            assert!(text.contains("127.0.0.1 - - ["), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Rotate: move the log away, SIGHUP, the tracker reopens the path.
    std::fs::rename(&log, path_in(&dir, "access.log.1")).unwrap();
    t.signal(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        t.get("/scrape");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("# Log reopened: ") && text.contains("GET /scrape") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "log not reopened: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.stop();
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &["--infopage_redirect", "http://127.0.0.1/elsewhere"],
    );
    let r = t.get("/");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://127.0.0.1/elsewhere")
    );
    t.stop();
}

#[test]
fn too_low_memlock_limit_is_explained() {
    let dir = tempdir();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -l 64 && exec \"{BIN}\" --port 0 --bind 127.0.0.1 --dfile \"{}\"",
            path_in(&dir, "d").display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ulimit -l") && err.contains("64 KiB") && err.contains("512"),
        "{err}"
    );
    assert!(!err.contains("listening on"), "fails before binding: {err}");
}

#[test]
fn peers_expire_and_dead_torrents_go_unless_keep_dead() {
    let dir = tempdir();
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &["--timeout_downloaders_interval", "1"],
    );
    t.get(&announce_target(&IH, &pid(0), 7000, 5, "&compact=1"));
    let scrape = || {
        let r = t.get("/scrape");
        bencode::decode(&r.body)
            .unwrap()
            .get(b"files")
            .unwrap()
            .as_dict()
            .unwrap()
            .len()
    };
    assert_eq!(scrape(), 1);
    // Not seen for a whole sweep period: gone, and the empty torrent with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while scrape() != 0 {
        assert!(std::time::Instant::now() < deadline, "peer never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    t.stop();
    let t = Tracker::start(
        &path_in(&dir, "dstate2"),
        &["--timeout_downloaders_interval", "1", "--keep_dead", "1"],
    );
    t.get(&announce_target(&IH, &pid(0), 7000, 5, "&compact=1"));
    std::thread::sleep(Duration::from_millis(3500));
    let r = t.get(&format!("/scrape?info_hash={}", enc(&IH)));
    let v = bencode::decode(&r.body).unwrap();
    let f = v
        .get(b"files")
        .unwrap()
        .get(&IH)
        .expect("keep_dead keeps the torrent");
    assert_eq!(
        f.get(b"incomplete").unwrap().as_int(),
        Some(0),
        "but its peer expired"
    );
    t.stop();
}

#[test]
fn aggregator_mode_records_and_answers_ok() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--aggregator", "s3cret"]);
    let r = t.get(&announce_target(&IH, &pid(0), 7000, 5, "&compact=1"));
    let v = bencode::decode(&r.body).unwrap();
    assert_eq!(
        v.get(b"failure reason").unwrap().as_str(),
        Some("Requested download is not authorized for use with this tracker.")
    );
    let r = t.get(&announce_target(
        &IH,
        &pid(0),
        7000,
        5,
        "&compact=1&password=s3cret",
    ));
    assert_eq!(r.body, b"d8:response2:OKe");
    let v = bencode::decode(&t.get("/scrape").body.clone())
        .unwrap()
        .get(b"files")
        .unwrap()
        .as_dict()
        .unwrap()
        .len();
    assert_eq!(v, 1, "the announce was recorded");
    t.stop();
}

#[test]
fn http09_request_gets_the_bare_body() {
    use std::io::{Read, Write};
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /scrape\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert_eq!(
        all, b"d5:filesdee",
        "no status line or headers, connection closed"
    );
    t.stop();
}

#[test]
fn aggregate_forward_sends_the_query_with_the_password() {
    let (up_port, rx) = one_request_upstream();
    let dir = tempdir();
    let fwd = format!("http://127.0.0.1:{up_port}/announce,pw");
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--aggregate_forward", &fwd]);
    let target = announce_target(&IH, &pid(0), 7000, 5, "&compact=1");
    assert_eq!(t.get(&target).status, 200);
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the announce was forwarded");
    let query = target.strip_prefix("/announce?").unwrap();
    assert!(
        got.starts_with(&format!("GET /announce?{query}&password=pw HTTP/1.0\r\n")),
        "{got}"
    );
    t.stop();
}

#[test]
fn forwarded_ip_and_ip_parameter_overrides() {
    // --nat_check 0: the overridden addresses are never dialled (only loopback traffic here).
    let dir = tempdir();
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &["--nat_check", "0", "--only_local_override_ip", "1"],
    );
    let req = |target: String, extra_header: &str| {
        let raw =
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra_header}Connection: close\r\n\r\n");
        raw_request(t.port, raw.as_bytes()).unwrap().remove(0)
    };
    // From 127.0.0.1 (local), the proxy header and the `ip` parameter are honoured.
    req(
        announce_target(&IH, &pid(0), 7000, 0, "&compact=1"),
        "X-Forwarded-For: 203.0.113.7\r\n",
    );
    req(
        announce_target(&IH, &pid(1), 7001, 0, "&compact=1&ip=198.51.100.4"),
        "",
    );
    let r = t.get(&announce_target(&IH, &pid(2), 7002, 10, "&compact=1"));
    let v = bencode::decode(&r.body).unwrap();
    let mut ips: Vec<[u8; 4]> = v
        .get(b"peers")
        .unwrap()
        .as_bytes()
        .unwrap()
        .chunks(6)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    ips.sort();
    assert_eq!(ips, vec![[198, 51, 100, 4], [203, 0, 113, 7]]);
    t.stop();
}

#[test]
fn unwritable_dfile_location_fails_at_start() {
    let dir = tempdir();
    let out = Command::new(BIN)
        .args(["--port", "0", "--bind", "127.0.0.1", "--dfile"])
        .arg(dir.path().join("no-such-dir").join("dstate"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be saved"), "{err}");
}

/// `--http_engine hyper` (kept to measure against the default loop) serves the same tracker: announces, scrapes and
/// the info page, over keep-alive and closing connections.
#[test]
fn hyper_engine_serves_announces_scrapes_and_the_info_page() {
    let dir = tempdir();
    let t = Tracker::start(&path_in(&dir, "dstate"), &["--http_engine", "hyper"]);
    let a = announce_target(&IH, &pid(1), 7001, 0, "&compact=1");
    let b = announce_target(&IH, &pid(2), 7002, 5, "&compact=1");
    let r = t.get(&a);
    assert_eq!(r.status, 200);
    let req = format!("GET {b} HTTP/1.1\r\nHost: x\r\n\r\nGET /scrape HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let rs = raw_request(t.port, req.as_bytes()).unwrap();
    assert_eq!(rs.len(), 2);
    let v = bencode::decode(&rs[0].body).unwrap();
    assert_eq!(v.get(b"complete").unwrap().as_int(), Some(1));
    assert_eq!(
        v.get(b"peers").unwrap().as_bytes().unwrap(),
        &[127, 0, 0, 1, 0x1b, 0x59]
    );
    let v = bencode::decode(&rs[1].body).unwrap();
    let f = v.get(b"files").unwrap().get(&IH).unwrap();
    assert_eq!(f.get(b"incomplete").unwrap().as_int(), Some(1));
    assert_eq!(t.get("/").status, 200);
    t.stop();
}
