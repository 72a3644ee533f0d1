//! allowed_list, allowed_dir (names, /file, duplicates, broken files, reload), allowed_ips and
//! banned_ips (reload), with the real binary.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use cyclone_metainfo::bencode;

fn hex(h: &[u8; 20]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn failure_reason(body: &[u8]) -> Option<String> {
    bencode::decode(body)
        .ok()?
        .get(b"failure reason")?
        .as_str()
        .map(str::to_string)
}

#[test]
fn allowed_list_and_ip_lists_reload() {
    let dir = tempdir();
    let listed = [0x11u8; 20];
    let other = [0x22u8; 20];
    let list = path_in(&dir, "allowed.txt");
    std::fs::write(&list, format!("{}\nnot-a-hash\n", hex(&listed))).unwrap();
    let banned = path_in(&dir, "banned.txt");
    std::fs::write(&banned, "nobody:10.0.0.1-10.0.0.9\n").unwrap();
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &[
            "--allowed_list",
            list.to_str().unwrap(),
            "--banned_ips",
            banned.to_str().unwrap(),
            "--parse_dir_interval",
            "1",
        ],
    );
    let pid = *b"-CY0001-aaaaaaaaaaaa";
    let r = t.get(&announce_target(&listed, &pid, 7000, 5, "&compact=1"));
    assert_eq!(r.status, 200);
    let r = t.get(&announce_target(&other, &pid, 7000, 5, "&compact=1"));
    assert_eq!(r.status, 200);
    assert_eq!(
        failure_reason(&r.body).as_deref(),
        Some("Requested download is not authorized for use with this tracker.")
    );
    // Full scrape lists the allowed torrent only.
    let full = t.get("/scrape");
    let v = bencode::decode(&full.body).unwrap();
    assert_eq!(v.get(b"files").unwrap().as_dict().unwrap().len(), 1);
    // Add the other hash to the list: allowed after a reload.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&list, format!("{}\n{}\n", hex(&listed), hex(&other))).unwrap();
    wait_until("the list reload allows the second torrent", || {
        failure_reason(
            &t.get(&announce_target(&other, &pid, 7000, 5, "&compact=1"))
                .body,
        )
        .is_none()
    });
    // Ban 127.0.0.1: every request gets bttrack's 400 refusal.
    std::fs::write(&banned, "me:127.0.0.1\n").unwrap();
    wait_until("the ban reload refuses us", || {
        t.get("/scrape").status == 400
    });
    let r = t.get(&announce_target(&listed, &pid, 7000, 5, "&compact=1"));
    assert_eq!(r.status, 400);
    assert_eq!(
        failure_reason(&r.body).as_deref(),
        Some("your IP is not allowed on this tracker")
    );
    t.stop();
}

#[test]
fn allowed_dir_names_file_duplicates_and_rescan() {
    if Command::new("mktorrent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!("SKIPPED: mktorrent is not installed");
        return;
    }
    let dir = tempdir();
    let tdir = dir.path().join("torrents");
    let sub = tdir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let make = |name: &str, out: &std::path::Path, content: &[u8]| {
        let data = dir.path().join(name);
        std::fs::write(&data, content).unwrap();
        let ok = Command::new("mktorrent")
            .args(["-a", "http://127.0.0.1:1/announce", "-o"])
            .arg(out)
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let m = cyclone_metainfo::Metainfo::from_bytes(&std::fs::read(out).unwrap()).unwrap();
        *m.info_hash.as_bytes()
    };
    let a = make("alpha.bin", &tdir.join("alpha.torrent"), &[1u8; 5000]);
    // A duplicate of alpha, and a broken file: both reported, neither breaks the scan.
    std::fs::copy(tdir.join("alpha.torrent"), tdir.join("alpha-copy.torrent")).unwrap();
    std::fs::write(tdir.join("broken.torrent"), b"d4:infoi1ee").unwrap();
    // Semi-recursive: `sub` is not scanned because `torrents/` holds .torrent files.
    let hidden = make("hidden.bin", &sub.join("hidden.torrent"), &[2u8; 3000]);
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &[
            "--allowed_dir",
            tdir.to_str().unwrap(),
            "--allow_get",
            "1",
            "--parse_dir_interval",
            "1",
        ],
    );
    let err = t.stderr_text();
    assert!(err.contains("is a duplicate torrent for"), "{err}");
    assert!(err.contains("broken.torrent has errors"), "{err}");
    let pid = *b"-CY0001-bbbbbbbbbbbb";
    assert_eq!(
        failure_reason(
            &t.get(&announce_target(&a, &pid, 7000, 5, "&compact=1"))
                .body
        ),
        None
    );
    assert!(failure_reason(
        &t.get(&announce_target(&hidden, &pid, 7000, 5, "&compact=1"))
            .body
    )
    .is_some());
    // Scrape carries the name; the info page shows name and size; /file serves the .torrent.
    let scrape = t.get(&format!("/scrape?info_hash={}", enc(&a)));
    let v = bencode::decode(&scrape.body).unwrap();
    assert_eq!(
        v.get(b"files")
            .unwrap()
            .get(&a)
            .unwrap()
            .get(b"name")
            .unwrap()
            .as_str(),
        Some("alpha.bin")
    );
    let page = String::from_utf8(t.get("/").body).unwrap();
    assert!(
        page.contains("alpha.bin") && page.contains("4KiB") && page.contains("/file?info_hash="),
        "{page}"
    );
    let r = t.get(&format!("/file?info_hash={}", enc(&a)));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-bittorrent")
    );
    assert_eq!(r.body, std::fs::read(tdir.join("alpha.torrent")).unwrap());
    // A new torrent dropped in is picked up by the rescan.
    let b = make("beta.bin", &tdir.join("beta.torrent"), &[3u8; 7000]);
    wait_until("the rescan allows beta", || {
        failure_reason(
            &t.get(&announce_target(&b, &pid, 7000, 5, "&compact=1"))
                .body,
        )
        .is_none()
    });
    t.stop();
}
