//! Real BitTorrent clients transfer a file on 127.0.0.1 with only our tracker: aria2c seeds,
//! aria2c and python3-libtorrent download.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use cyclone_metainfo::bencode;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const LT_SCRIPT: &str = r#"
import sys, time, libtorrent as lt
torrent, save, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = lt.session({'listen_interfaces': '127.0.0.1:%d' % port, 'enable_dht': False, 'enable_lsd': False,
                'enable_upnp': False, 'enable_natpmp': False, 'allow_multiple_connections_per_ip': True,
                'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.tracker_notification})
h = s.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': save})
deadline = time.time() + timeout
while time.time() < deadline:
    for a in s.pop_alerts():
        print('alert:', a.message(), flush=True)
    if h.status().is_seeding:
        print('done', h.status().total_done, flush=True)
        sys.exit(0)
    time.sleep(0.2)
st = h.status()
print('timeout: progress', st.progress, 'peers', st.num_peers, flush=True)
sys.exit(1)
"#;

fn aria2c_args(dir: &Path, port: u16) -> Vec<String> {
    vec![
        format!("--dir={}", dir.display()),
        format!("--listen-port={port}"),
        "--enable-dht=false".into(),
        "--enable-dht6=false".into(),
        "--bt-enable-lpd=false".into(),
        "--enable-peer-exchange=false".into(),
        "--summary-interval=0".into(),
        "--console-log-level=warn".into(),
    ]
}

#[test]
fn aria2c_and_libtorrent_download_through_our_tracker() {
    if !installed("aria2c", &["--version"]) {
        println!("SKIPPED: aria2c is not installed");
        return;
    }
    if !installed("mktorrent", &["-h"])
        && !installed("mktorrent", &["--help"])
        && Command::new("mktorrent").output().is_err()
    {
        println!("SKIPPED: mktorrent is not installed");
        return;
    }
    let dir = tempdir();
    let seed_dir = dir.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = payload(3 * 1024 * 1024 + 12345);
    std::fs::write(seed_dir.join("payload.bin"), &data).unwrap();
    let t = Tracker::start(
        &path_in(&dir, "dstate"),
        &["--reannounce_interval", "5", "--min_interval", "1"],
    );
    let torrent = dir.path().join("t.torrent");
    let st = Command::new("mktorrent")
        .args([
            "-a",
            &format!("http://127.0.0.1:{}/announce", t.port),
            "-l",
            "16",
            "-o",
        ])
        .arg(&torrent)
        .arg(seed_dir.join("payload.bin"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "mktorrent failed");
    let meta = cyclone_metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let ih = *meta.info_hash.as_bytes();

    // The seeder: aria2c with the complete file, checking it first (-V) so it announces left=0.
    let seed_port = free_port();
    let mut seed_cmd = Command::new("aria2c");
    seed_cmd
        .args(aria2c_args(&seed_dir, seed_port))
        .args(["-V", "--seed-ratio=0.0", "--seed-time=30"])
        .arg(&torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _seeder = KillOnDrop(seed_cmd.spawn().unwrap());
    // Wait until the tracker lists the seed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = t.get(&format!("/scrape?info_hash={}", enc(&ih)));
        let v = bencode::decode(&r.body).unwrap();
        let seeds = v
            .get(b"files")
            .and_then(|f| f.get(&ih))
            .and_then(|f| f.get(b"complete"))
            .and_then(|c| c.as_int());
        if seeds == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "aria2c seeder never announced");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Downloader 1: aria2c.
    let dl1 = dir.path().join("dl-aria2c");
    std::fs::create_dir_all(&dl1).unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg("aria2c")
        .args(aria2c_args(&dl1, free_port()))
        .args(["--seed-time=0"])
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aria2c download failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(dl1.join("payload.bin")).unwrap() == data,
        "aria2c's copy differs"
    );

    // Downloader 2: python3-libtorrent.
    let python = "/usr/bin/python3";
    if !installed(python, &["-c", "import libtorrent"]) {
        println!("SKIPPED (libtorrent part): /usr/bin/python3 cannot import libtorrent");
        return;
    }
    let script = dir.path().join("lt_dl.py");
    std::fs::write(&script, LT_SCRIPT).unwrap();
    let dl2 = dir.path().join("dl-libtorrent");
    std::fs::create_dir_all(&dl2).unwrap();
    let out = Command::new(python)
        .arg(&script)
        .arg(&torrent)
        .arg(&dl2)
        .arg(free_port().to_string())
        .arg("120")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "libtorrent download failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(dl2.join("payload.bin")).unwrap() == data,
        "libtorrent's copy differs"
    );

    // The tracker counted both completions.
    let r = t.get(&format!("/scrape?info_hash={}", enc(&ih)));
    let v = bencode::decode(&r.body).unwrap();
    let downloaded = v
        .get(b"files")
        .unwrap()
        .get(&ih)
        .unwrap()
        .get(b"downloaded")
        .unwrap()
        .as_int()
        .unwrap();
    assert!(downloaded >= 2, "downloaded = {downloaded}");
    t.stop();
}
