//! `cyclone show` / `btshowmetainfo` / `cyclone magnet` on torrents made by third-party tools (mktorrent,
//! transmission-create), checked against what third-party readers (transmission-show, python3-libtorrent) say.

use std::path::Path;
use std::process::Command;

use cyclone_tests::{
    cyclone_bin, require_program, require_python_libtorrent, run_ok, write_pseudo_random,
};

/// A data set with a single file and a directory tree (nested directories, an empty file, a name with spaces and a
/// non-ASCII name), under `dir`.
fn make_data(dir: &Path) {
    write_pseudo_random(&dir.join("single.bin"), 1_234_567, 1);
    let tree = dir.join("tree");
    write_pseudo_random(&tree.join("a.bin"), 100_000, 2);
    write_pseudo_random(&tree.join("sub dir/b.bin"), 333_333, 3);
    write_pseudo_random(&tree.join("sub dir/deeper/c-é.txt"), 4_097, 4);
    write_pseudo_random(&tree.join("z.bin"), 65_536, 5);
}

fn transmission_show_hash(torrent: &Path) -> String {
    let out = run_ok(Command::new("transmission-show").arg(torrent));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Hash: "))
        .unwrap_or_else(|| panic!("no `Hash:` line in transmission-show output:\n{out}"))
        .trim()
        .to_string()
}

fn libtorrent_hash(torrent: &Path) -> String {
    let script =
        "import sys, libtorrent as lt\nprint(str(lt.torrent_info(sys.argv[1]).info_hash()))";
    run_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(torrent),
    )
    .trim()
    .to_string()
}

fn show_json(torrent: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new(cyclone_bin())
            .args(["show", "--json"])
            .arg(torrent),
    );
    serde_json::from_str(out.trim()).expect("cyclone show --json prints one JSON object")
}

/// Checks our reading of `torrent` against transmission-show and libtorrent, and checks btshowmetainfo's block.
fn check_torrent(
    torrent: &Path,
    expected_files: &[(&str, u64)],
    piece_length: u64,
    announce: &str,
) {
    let json = show_json(torrent);
    let hash = json["info_hash"].as_str().unwrap().to_string();
    assert_eq!(
        hash,
        transmission_show_hash(torrent),
        "info-hash differs from transmission-show"
    );
    assert_eq!(
        hash,
        libtorrent_hash(torrent),
        "info-hash differs from libtorrent"
    );
    assert_eq!(json["piece_length"].as_u64(), Some(piece_length));

    let out = run_ok(
        Command::new(cyclone_bin())
            .arg("btshowmetainfo")
            .arg(torrent),
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("btshowmetainfo 20030621 - decode BitTorrent metainfo files")
    );
    assert_eq!(lines.next(), Some(""));
    assert_eq!(
        lines.next().map(str::to_string),
        Some(format!(
            "metainfo file.: {}",
            torrent.file_name().unwrap().to_string_lossy()
        ))
    );
    assert_eq!(
        lines.next().map(str::to_string),
        Some(format!("info hash.....: {hash}"))
    );
    let total: u64 = expected_files.iter().map(|(_, l)| l).sum();
    let size_line = format!(
        "{total} ({} * {piece_length} + {})",
        total / piece_length,
        total % piece_length
    );
    if expected_files.len() == 1 && json["single_file"] == true {
        assert_eq!(
            lines.next().map(str::to_string),
            Some(format!("file name.....: {}", expected_files[0].0))
        );
        assert_eq!(
            lines.next().map(str::to_string),
            Some(format!("file size.....: {size_line}"))
        );
    } else {
        let name = json["name"].as_str().unwrap();
        assert_eq!(
            lines.next().map(str::to_string),
            Some(format!("directory name: {name}"))
        );
        assert_eq!(lines.next(), Some("files.........: "));
        for (path, length) in expected_files {
            assert_eq!(
                lines.next().map(str::to_string),
                Some(format!("   {path} ({length})"))
            );
        }
        assert_eq!(
            lines.next().map(str::to_string),
            Some(format!("archive size..: {size_line}"))
        );
    }
    assert_eq!(
        lines.next().map(str::to_string),
        Some(format!("announce url..: {announce}"))
    );

    let magnet = run_ok(Command::new(cyclone_bin()).arg("magnet").arg(torrent));
    assert!(
        magnet.starts_with(&format!("magnet:?xt=urn:btih:{hash}&dn=")),
        "{magnet}"
    );
}

const TREE_FILES: [(&str, u64); 4] = [
    ("a.bin", 100_000),
    ("sub dir/b.bin", 333_333),
    ("sub dir/deeper/c-é.txt", 4_097),
    ("z.bin", 65_536),
];

#[test]
fn reads_mktorrent_torrents_like_transmission_and_libtorrent() {
    if !require_program("mktorrent", "mktorrent")
        || !require_program("transmission-show", "transmission-cli")
        || !require_python_libtorrent()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let announce = "http://127.0.0.1:6969/announce";

    let single = dir.path().join("single.torrent");
    run_ok(
        Command::new("mktorrent")
            .args(["-a", announce, "-l", "16", "-o"])
            .arg(&single)
            .arg(dir.path().join("single.bin")),
    );
    check_torrent(&single, &[("single.bin", 1_234_567)], 65_536, announce);

    let tree = dir.path().join("tree.torrent");
    run_ok(
        Command::new("mktorrent")
            .args([
                "-a",
                announce,
                "-a",
                "http://127.0.0.2:6969/announce",
                "-l",
                "15",
                "-w",
                "http://127.0.0.1:8080/",
                "-c",
                "made by mktorrent",
                "-p",
                "-o",
            ])
            .arg(&tree)
            .arg(dir.path().join("tree")),
    );
    check_torrent(&tree, &TREE_FILES, 32_768, announce);
    let json = show_json(&tree);
    assert_eq!(json["private"], true);
    assert_eq!(json["url_list"][0], "http://127.0.0.1:8080/");
    assert_eq!(json["comment"], "made by mktorrent");
    assert_eq!(json["announce_list"].as_array().unwrap().len(), 2);
}

#[test]
fn reads_transmission_create_torrents_like_transmission_and_libtorrent() {
    if !require_program("transmission-create", "transmission-cli")
        || !require_program("transmission-show", "transmission-cli")
        || !require_python_libtorrent()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_data(dir.path());
    let announce = "http://127.0.0.1:6969/announce";

    let single = dir.path().join("single.torrent");
    run_ok(
        Command::new("transmission-create")
            .args(["-t", announce, "-s", "64", "-o"])
            .arg(&single)
            .arg(dir.path().join("single.bin")),
    );
    check_torrent(&single, &[("single.bin", 1_234_567)], 65_536, announce);

    let tree = dir.path().join("tree.torrent");
    run_ok(
        Command::new("transmission-create")
            .args([
                "-t",
                announce,
                "-t",
                "udp://127.0.0.1:6969",
                "-s",
                "32",
                "-c",
                "made by transmission",
                "-o",
            ])
            .arg(&tree)
            .arg(dir.path().join("tree")),
    );
    check_torrent(&tree, &TREE_FILES, 32_768, announce);
    // transmission-create 3.00 always writes `private`, as 0 when not private.
    assert_eq!(show_json(&tree)["private"], false);
}
