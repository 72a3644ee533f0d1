//! Cross-tool check: for the same files, order and piece size, our torrents have the
//! same info-hash as the real `mktorrent` binary's (tools-anchors.md §5 A).

use std::path::{Path, PathBuf};
use std::process::Command;

use cyclone_metainfo::create::{collect_files, make_torrent, MakeOptions, PieceSize, WalkOptions};
use cyclone_metainfo::Metainfo;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "cyclone-mktorrent-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn random_file(path: &Path, len: usize, rng: &mut fastrand::Rng) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut data = vec![0u8; len];
    rng.fill(&mut data);
    std::fs::write(path, data).unwrap();
}

fn mktorrent(target: &Path, out: &Path, pow2: u32, extra: &[&str]) -> Metainfo {
    let _ = std::fs::remove_file(out);
    let status = Command::new("mktorrent")
        .args([
            "-a",
            "http://127.0.0.1:6969/announce",
            "-l",
            &pow2.to_string(),
            "-t",
            "2",
        ])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(target)
        .output()
        .expect("mktorrent is installed");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    Metainfo::from_bytes(&std::fs::read(out).unwrap()).unwrap()
}

fn ours(target: &Path, pow2: u32, private: bool, source: Option<&str>) -> Metainfo {
    let list = collect_files(target, &WalkOptions::default()).unwrap();
    let made = make_torrent(
        &list,
        &MakeOptions {
            announce: Some("http://127.0.0.1:6969/announce".into()),
            piece_size: Some(PieceSize::Exact(1 << pow2)),
            private,
            source: source.map(str::to_string),
            ..MakeOptions::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let m = Metainfo::from_bytes(&made.bytes).unwrap();
    assert_eq!(m.info_hash, made.info_hash);
    m
}

#[test]
fn single_file_and_tree_match_mktorrent() {
    let d = tempdir("match");
    let mut rng = fastrand::Rng::with_seed(99);
    let single = d.join("single.bin");
    random_file(&single, 3_000_017, &mut rng);
    // Lowercase names without `-`/`.` siblings: mktorrent's whole-path strcmp order
    // equals BitTornado's per-directory order there.
    let tree = d.join("tree");
    for (i, p) in [
        "b/y", "a/z/deep", "a/x", "c", "zz/q", "m/n/o/p", "empty", "a/last",
    ]
    .iter()
    .enumerate()
    {
        let len = if *p == "empty" { 0 } else { 1000 + i * 77_777 };
        random_file(&tree.join(p), len, &mut rng);
    }
    for pow2 in [15u32, 16, 18, 20] {
        let theirs = mktorrent(&single, &d.join("mk1.torrent"), pow2, &[]);
        assert_eq!(
            ours(&single, pow2, false, None).info_hash,
            theirs.info_hash,
            "single, 2^{pow2}"
        );
        let theirs = mktorrent(&tree, &d.join("mk2.torrent"), pow2, &[]);
        let mine = ours(&tree, pow2, false, None);
        assert_eq!(
            mine.info.files, theirs.info.files,
            "file list and order, 2^{pow2}"
        );
        assert_eq!(mine.info_hash, theirs.info_hash, "tree, 2^{pow2}");
    }
    let theirs = mktorrent(&tree, &d.join("mk3.torrent"), 16, &["-p", "-s", "SRC"]);
    assert_eq!(
        ours(&tree, 16, true, Some("SRC")).info_hash,
        theirs.info_hash,
        "private + source"
    );
    std::fs::remove_dir_all(d).unwrap();
}
