//! `cyclone tracker` as a user runs it: embedded defaults, a real announce over HTTP, SIGTERM, state saved.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use cyclone_metainfo::bencode::{self, DecodeOptions};
use cyclone_tests::cyclone_bin;

/// Kills the child if the test fails half-way, so no tracker outlives the test.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tracker_runs_on_embedded_defaults_answers_announces_and_saves_state_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0 instead of the default 6969 so parallel test runs never collide; the dfile is the embedded default.
    let child = Command::new(cyclone_bin())
        .args([
            "tracker",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save_dfile_interval",
            "1",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cyclone tracker");
    let mut tracker = KillOnDrop(child);
    let mut stderr = BufReader::new(tracker.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .rsplit_once("listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();

    let info_hash = "%aa".repeat(20);
    let request = format!(
        "GET /announce?info_hash={info_hash}&peer_id=-CY0001-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left=1000&compact=1&event=started HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head")
        + 4;
    assert!(response.starts_with(b"HTTP/1.0 200") || response.starts_with(b"HTTP/1.1 200"));
    let body =
        bencode::decode_with(&response[split..], &DecodeOptions::lenient()).expect("bencoded body");
    assert_eq!(body.get(b"interval").and_then(|v| v.as_int()), Some(1800));
    assert_eq!(
        body.get(b"peers").and_then(|v| v.as_bytes()),
        Some(&b""[..]),
        "the only peer is the requester"
    );

    // SIGTERM: the tracker saves its state and exits 0.
    let pid = tracker.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = cyclone_tests::wait_with_limit(&mut tracker.0, Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let saved = std::fs::read(dir.path().join("cyclone-tracker.dfile"))
        .expect("dfile saved in the working directory");
    let dfile = bencode::decode_with(&saved, &DecodeOptions::lenient()).expect("dfile is bencode");
    let peers = dfile
        .get(b"peers")
        .and_then(|p| p.as_dict())
        .expect("dfile has peers");
    assert!(
        peers.iter().any(|(hash, _)| *hash == [0xaa; 20]),
        "the swarm is in the saved state"
    );
}
