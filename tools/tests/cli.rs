//! The `cyclone` binary at the boundary a user sees: arguments, output, exit codes, aliases.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cyclone_metainfo::bencode::Owned;

fn cyclone() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cyclone"))
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run cyclone");
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A hand-built torrent: 3 files, 16 KiB pieces, unknown keys at both levels, keys in non-canonical order.
fn multi_file_torrent() -> Vec<u8> {
    let files = [
        (&["docs", "readme.txt"][..], 1000i64),
        (&["video.mkv"][..], 40_000),
        (&["docs", "x\u{e9}.nfo"][..], 0),
    ];
    let total: i64 = files.iter().map(|f| f.1).sum();
    let pieces = (total as usize).div_ceil(16_384);
    let mut file_list = Vec::new();
    for (path, length) in files {
        let mut f = Owned::dict();
        f.insert("length", length);
        f.insert(
            "path",
            Owned::List(path.iter().map(|c| Owned::from(*c)).collect()),
        );
        file_list.push(f);
    }
    let mut info = Owned::dict();
    info.insert("files", Owned::List(file_list));
    info.insert("name", "My Torrent");
    info.insert("piece length", 16_384i64);
    info.insert("pieces", vec![0x5au8; pieces * 20]);
    info.insert("x-unknown", "kept");
    let mut top = Owned::dict();
    top.insert("announce", "http://127.0.0.1:6969/announce");
    top.insert(
        "announce-list",
        Owned::List(vec![
            Owned::List(vec![
                "http://127.0.0.1:6969/announce".into(),
                "http://127.0.0.2/a".into(),
            ]),
            Owned::List(vec!["udp://127.0.0.3:80".into()]),
        ]),
    );
    top.insert("comment", "hello");
    top.insert(
        "httpseeds",
        Owned::List(vec!["http://127.0.0.1:8000/seed".into()]),
    );
    top.insert("info", info);
    top.encode()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn btshowmetainfo_prints_bittornado_block_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "multi.torrent", &multi_file_torrent());
    let hash = cyclone_metainfo::Metainfo::from_bytes(&std::fs::read(&t).unwrap())
        .unwrap()
        .info_hash;
    let (code, out, err) = output(cyclone().arg("btshowmetainfo").arg(&t));
    assert_eq!(code, 0, "{err}");
    let expected_lines = [
        "btshowmetainfo 20030621 - decode BitTorrent metainfo files".to_string(),
        String::new(),
        "metainfo file.: multi.torrent".to_string(),
        format!("info hash.....: {hash}"),
        "directory name: My Torrent".to_string(),
        "files.........: ".to_string(),
        "   docs/readme.txt (1000)".to_string(),
        "   video.mkv (40000)".to_string(),
        "   docs/x\u{e9}.nfo (0)".to_string(),
        "archive size..: 41000 (2 * 16384 + 8232)".to_string(),
        "announce url..: http://127.0.0.1:6969/announce".to_string(),
        "announce-list.: http://127.0.0.1:6969/announce,http://127.0.0.2/a|udp://127.0.0.3:80"
            .to_string(),
        "http seeds....: http://127.0.0.1:8000/seed".to_string(),
        "comment.......: hello".to_string(),
    ];
    let expected = expected_lines.join("\n") + "\n";
    assert_eq!(out, expected);
}

#[test]
fn alias_works_through_a_symlink_named_like_bittornado_program() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "multi.torrent", &multi_file_torrent());
    let (code, out, _) = output(cyclone().args(["aliases", "--install"]).arg(dir.path()));
    assert_eq!(code, 0);
    assert!(out.contains("btshowmetainfo"));
    // A second install leaves the existing links alone.
    assert_eq!(
        output(cyclone().args(["aliases", "--install"]).arg(dir.path())).0,
        0
    );
    let link_py = dir.path().join("btshowmetainfo.py");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cyclone"), &link_py).unwrap();
    for link in [dir.path().join("btshowmetainfo"), link_py] {
        let (code, out, _) = output(Command::new(&link).arg(&t));
        assert_eq!(code, 0);
        assert!(out.starts_with("btshowmetainfo 20030621 - decode BitTorrent metainfo files\n\nmetainfo file.: multi.torrent\n"), "{out}");
    }
    // With no arguments: BitTornado's usage text and exit code 2, nothing else.
    let (code, out, err) = output(&mut Command::new(dir.path().join("btshowmetainfo")));
    assert_eq!(code, 2);
    assert!(
        out.ends_with("btshowmetainfo file1.torrent file2.torrent file3.torrent ...\n\n"),
        "{out}"
    );
    assert_eq!(err, "");
}

#[test]
fn show_adds_modern_fields_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "multi.torrent", &multi_file_torrent());
    let (code, out, _) = output(cyclone().arg("show").arg(&t));
    assert_eq!(code, 0);
    assert!(out.starts_with("metainfo file.: multi.torrent\n"));
    assert!(out.contains("\nprivate.......: no\n"));
    assert!(out.ends_with("pieces........: 3\n"));

    let (code, out, _) = output(cyclone().args(["show", "--json"]).arg(&t).arg(&t));
    assert_eq!(code, 0);
    let objects: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["files"][2]["path"], "docs/x\u{e9}.nfo");
    assert_eq!(objects[0]["total_length"], 41_000);
    assert_eq!(objects[0]["announce_list"][1][0], "udp://127.0.0.3:80");
}

#[test]
fn bad_input_gives_one_clear_line_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "garbage.torrent", b"this is not bencode");
    let (code, out, err) = output(cyclone().arg("show").arg(&garbage));
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("garbage.torrent: not a torrent file: invalid bencode at byte 0"),
        "{err}"
    );

    let evil = {
        let mut f = Owned::dict();
        f.insert("length", 1i64);
        f.insert(
            "path",
            Owned::List(vec![
                "..".into(),
                "..".into(),
                "etc".into(),
                "passwd".into(),
            ]),
        );
        let mut info = Owned::dict();
        info.insert("files", Owned::List(vec![f]));
        info.insert("name", "x");
        info.insert("piece length", 16_384i64);
        info.insert("pieces", vec![0u8; 20]);
        let mut top = Owned::dict();
        top.insert("info", info);
        top.encode()
    };
    let evil = write(dir.path(), "evil.torrent", &evil);
    let (code, _, err) = output(cyclone().arg("show").arg(&evil));
    assert_eq!(code, 1);
    assert!(
        err.contains("unsafe path \"../../etc/passwd\" in `info.files[0].path`"),
        "{err}"
    );

    // Several files: the good one is shown, the bad ones reported, exit 1.
    let good = write(dir.path(), "multi.torrent", &multi_file_torrent());
    let (code, out, err) = output(
        cyclone()
            .arg("show")
            .arg(&garbage)
            .arg(&good)
            .arg(dir.path().join("missing.torrent")),
    );
    assert_eq!(code, 1);
    assert!(out.contains("metainfo file.: multi.torrent"));
    assert!(
        err.contains("missing.torrent: No such file or directory"),
        "{err}"
    );
    assert!(err.contains("2 of 3 torrents could not be read"), "{err}");

    // Usage errors exit 2.
    assert_eq!(output(cyclone().arg("show")).0, 2);
    assert_eq!(output(cyclone().arg("no-such-command")).0, 2);
}

#[test]
fn magnet_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "multi.torrent", &multi_file_torrent());
    let (code, out, _) = output(cyclone().arg("magnet").arg(&t));
    assert_eq!(code, 0);
    let link = out.trim();
    let parsed = cyclone_metainfo::Magnet::parse(link).unwrap();
    assert_eq!(parsed.display_name.as_deref(), Some("My Torrent"));
    assert_eq!(
        parsed.trackers,
        vec![
            "http://127.0.0.1:6969/announce",
            "http://127.0.0.2/a",
            "udp://127.0.0.3:80"
        ]
    );
    let (_, out, _) = output(cyclone().args(["magnet", "--no-trackers"]).arg(&t));
    assert!(!out.contains("&tr="));

    let (code, out, _) = output(cyclone().arg("--help"));
    assert_eq!(code, 0);
    for sub in ["show", "magnet", "aliases"] {
        assert!(out.contains(sub), "--help lists {sub}");
    }
}

#[test]
fn non_utf8_names_are_read_and_shown_lossily() {
    let mut info = Owned::dict();
    info.insert("length", 3i64);
    info.insert("name", b"caf\xe9-latin1.txt".to_vec());
    info.insert("piece length", 16_384i64);
    info.insert("pieces", vec![1u8; 20]);
    let mut top = Owned::dict();
    top.insert("announce", "http://127.0.0.1:6969/announce");
    top.insert("info", info);
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "latin1.torrent", &top.encode());
    let (code, out, err) = output(cyclone().arg("show").arg(&t));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("file name.....: caf\u{fffd}-latin1.txt\n"),
        "{out}"
    );
    let (code, out, _) = output(cyclone().args(["show", "--json"]).arg(&t));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["name"], "caf\u{fffd}-latin1.txt");
}
