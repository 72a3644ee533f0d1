//! The metainfo tools (make, completedir, verify, edit and the BitTornado edit tools) at
//! the boundary a user sees, against real peer programs: mktorrent, transmission-create,
//! transmission-show and python3-libtorrent.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use cyclone_metainfo::Metainfo;

const TRACKER: &str = "http://127.0.0.1:6969/announce";

fn cyclone() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cyclone"))
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run command");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{cmd:?}\nstdout: {out}\nstderr: {err}");
    out
}

fn random_file(path: &Path, len: usize, rng: &mut fastrand::Rng) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut data = vec![0u8; len];
    rng.fill(&mut data);
    std::fs::write(path, data).unwrap();
}

/// A content tree with names mktorrent orders the same way BitTornado does.
fn tree(root: &Path, rng: &mut fastrand::Rng) {
    for (i, p) in [
        "b/y.bin",
        "a/z/deep.bin",
        "a/x.bin",
        "c.bin",
        "m/n/o.bin",
        "a/w.bin",
    ]
    .iter()
    .enumerate()
    {
        random_file(&root.join(p), 20_000 + i * 70_001, rng);
    }
}

fn metainfo(path: &Path) -> Metainfo {
    Metainfo::from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// python3-libtorrent's view: v1 info-hash and file paths.
fn libtorrent_reads(path: &Path) -> (String, Vec<String>) {
    let out = ok(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys, libtorrent as lt\n\
         ti = lt.torrent_info(sys.argv[1])\n\
         print(str(ti.info_hashes().v1))\n\
         for i in range(ti.num_files()): print(ti.files().file_path(i))",
        )
        .arg(path));
    let mut lines = out.lines().map(str::to_string);
    let hash = lines.next().unwrap();
    (hash, lines.collect())
}

fn mktorrent(target: &Path, out: &Path, pow2: u32) -> Metainfo {
    let _ = std::fs::remove_file(out);
    ok(Command::new("mktorrent")
        .args(["-a", TRACKER, "-t", "2", "-l", &pow2.to_string(), "-o"])
        .arg(out)
        .arg(target));
    metainfo(out)
}

#[test]
fn make_matches_mktorrent_and_is_read_by_libtorrent_and_transmission() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let content = d.path().join("content");
    tree(&content, &mut rng);
    let ours = d.path().join("ours.torrent");
    let out = run(cyclone()
        .args(["make", TRACKER, "--piece-size", "32k", "-o"])
        .arg(&ours)
        .arg(&content));
    assert_eq!(out.0, 0, "{out:?}");
    assert!(out.2.contains("info hash"), "summary on stderr: {}", out.2);
    let theirs = mktorrent(&content, &d.path().join("mk.torrent"), 15);
    let mine = metainfo(&ours);
    assert_eq!(mine.info_hash, theirs.info_hash);
    assert_eq!(mine.info.private, None);

    let (lt_hash, lt_files) = libtorrent_reads(&ours);
    assert_eq!(lt_hash, mine.info_hash.to_string());
    assert_eq!(
        lt_files,
        [
            "a/w.bin",
            "a/x.bin",
            "a/z/deep.bin",
            "b/y.bin",
            "c.bin",
            "m/n/o.bin"
        ]
        .map(|f| format!("content/{f}"))
    );
    let show = ok(Command::new("transmission-show").arg(&ours));
    assert!(
        show.contains(&format!("Hash: {}", mine.info_hash)),
        "{show}"
    );

    // Single file, auto piece size, everything optional, written to stdout.
    let single = d.path().join("single.bin");
    random_file(&single, 1_234_567, &mut rng);
    let (code, bytes) = {
        let o = cyclone()
            .args([
                "make",
                TRACKER,
                "-o",
                "-",
                "-q",
                "--private",
                "--source",
                "SRC",
            ])
            .args(["--comment", "hello", "--no-date", "--no-created-by"])
            .args([
                "--announce-list",
                "http://127.0.0.1:1/a,http://127.0.0.1:2/a|udp://127.0.0.1:3",
            ])
            .args([
                "--url-list",
                "http://127.0.0.1:8/ws/",
                "--httpseeds",
                "http://127.0.0.1:9/s",
            ])
            .arg(&single)
            .output()
            .unwrap();
        (o.status.code(), o.stdout)
    };
    assert_eq!(code, Some(0));
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert!(m.info.is_single_file);
    assert_eq!(m.info.private, Some(true));
    assert_eq!(m.info.source.as_deref(), Some(&b"SRC"[..]));
    assert_eq!(m.announce_list.len(), 2);
    assert_eq!(m.url_list, ["http://127.0.0.1:8/ws/"]);
    assert_eq!(m.httpseeds, ["http://127.0.0.1:9/s"]);
    assert_eq!(m.comment.as_deref(), Some("hello"));
    assert!(m.creation_date.is_none() && m.created_by.is_none());
    let stdout_torrent = d.path().join("stdout.torrent");
    std::fs::write(&stdout_torrent, &bytes).unwrap();
    assert_eq!(libtorrent_reads(&stdout_torrent).0, m.info_hash.to_string());
    ok(Command::new("transmission-show").arg(&stdout_torrent));
}

#[test]
fn btmakemetafile_uses_bittornado_defaults_and_completedir_makes_one_per_entry() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(2);
    let dir = d.path().join("dir");
    random_file(&dir.join("one.bin"), 100_000, &mut rng);
    random_file(&dir.join("two/inner.bin"), 50_000, &mut rng);
    random_file(&dir.join("two/.hidden"), 10, &mut rng);
    random_file(&dir.join("two/CVS/x"), 10, &mut rng);
    random_file(&dir.join("done.bin"), 10, &mut rng);
    std::fs::write(dir.join("done.bin.torrent"), b"not even bencode").unwrap();

    ok(cyclone()
        .args(["btmakemetafile", TRACKER])
        .arg(dir.join("two"))
        .args([
            "--comment",
            "c",
            "--announce_list",
            "http://127.0.0.1:1/a|http://127.0.0.1:2/a",
        ]));
    let m = metainfo(&dir.join("two.torrent"));
    assert_eq!(
        m.info.piece_length,
        1 << 15,
        "BitTornado table: <= 4 MiB -> 32 KiB"
    );
    assert_eq!(m.info.files.len(), 1, "dot-files and CVS skipped");
    assert!(m.creation_date.is_some() && m.created_by.is_none());
    assert_eq!(m.comment.as_deref(), Some("c"));
    assert_eq!(m.announce_list.len(), 2);
    std::fs::remove_file(dir.join("two.torrent")).unwrap();

    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    ok(cyclone()
        .args(["completedir", TRACKER, "-q", "-o"])
        .arg(&out_dir)
        .arg(&dir));
    let mut made: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, ["one.bin.torrent", "two.torrent"]);
    ok(cyclone()
        .args(["verify", "-q"])
        .arg(out_dir.join("two.torrent"))
        .arg(dir.join("two")));

    let (code, out, _) = run(cyclone().arg("btmakemetafile"));
    assert_eq!(code, 2);
    assert!(out.starts_with("Usage: btmakemetafile <trackerurl> <file> [file...] [params...]"));
    assert!(out.contains("--piece_size_pow2 <arg>"));
}

#[test]
fn verify_accepts_other_tools_torrents_and_pinpoints_damage() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let content = d.path().join("content");
    tree(&content, &mut rng);
    let mk = d.path().join("mk.torrent");
    let theirs = mktorrent(&content, &mk, 15);
    let tr = d.path().join("tr.torrent");
    ok(Command::new("transmission-create")
        .args(["-s", "64", "-t", TRACKER, "-o"])
        .arg(&tr)
        .arg(&content));
    let lt = d.path().join("lt.torrent");
    let hybrid = d.path().join("hybrid.torrent");
    ok(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys, os, libtorrent as lt\n\
             fs = lt.file_storage()\n\
             lt.add_files(fs, sys.argv[1])\n\
             for flags, out in ((lt.create_torrent.v1_only, sys.argv[2]), (0, sys.argv[3])):\n\
             \x20   ct = lt.create_torrent(fs, 65536, flags=flags)\n\
             \x20   ct.add_tracker('http://127.0.0.1:6969/announce')\n\
             \x20   lt.set_piece_hashes(ct, os.path.dirname(sys.argv[1]))\n\
             \x20   open(out, 'wb').write(lt.bencode(ct.generate()))",
        )
        .arg(&content)
        .arg(&lt)
        .arg(&hybrid));
    // The hybrid torrent has BEP 47 padding files (`.pad/N`), which are zeros, not files.
    assert!(metainfo(&hybrid).info.files.iter().any(|f| f.is_padding()));
    for t in [&mk, &tr, &lt, &hybrid] {
        let out = ok(cyclone().arg("verify").arg(t).arg(&content));
        assert!(out.contains("verify: OK"), "{out}");
    }
    // Default content location: the torrent's name next to the torrent file.
    ok(cyclone().args(["verify", "-q"]).arg(&mk));

    // Flip one byte, 5 bytes into a/x.bin: exactly the piece holding it is corrupt.
    let x = content.join("a/x.bin");
    let offset_of = |p: &[&str]| -> u64 {
        let p: Vec<Vec<u8>> = p.iter().map(|c| c.as_bytes().to_vec()).collect();
        let files = &theirs.info.files;
        files
            .iter()
            .take_while(|f| f.path != p)
            .map(|f| f.length)
            .sum()
    };
    let mut data = std::fs::read(&x).unwrap();
    data[5] ^= 0xff;
    std::fs::write(&x, &data).unwrap();
    let (code, out, err) = run(cyclone().arg("verify").arg(&mk).arg(&content));
    assert_eq!(code, 3, "{out}{err}");
    let piece = (offset_of(&["a", "x.bin"]) + 5) / 32_768;
    assert!(
        out.contains(&format!("a/x.bin: corrupt: piece {piece}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("piece {piece}: corrupt; files: ")),
        "{out}"
    );
    assert!(err.contains("1 corrupt"), "{err}");
    data[5] ^= 0xff;
    std::fs::write(&x, &data).unwrap();

    // A missing file in the middle: only its pieces are incomplete; later files still verify.
    std::fs::remove_file(content.join("b/y.bin")).unwrap();
    let (code, out, err) = run(cyclone().arg("verify").arg(&mk).arg(&content));
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("b/y.bin: missing"), "{out}");
    assert!(err.contains(" 0 corrupt"), "{err}");
    let start = offset_of(&["b", "y.bin"]);
    let end = offset_of(&["c.bin"]);
    let incomplete = end.div_ceil(32_768) - start / 32_768;
    assert!(err.contains(&format!("{incomplete} incomplete")), "{err}");
}

/// Top-level keys with their raw bytes, `info` included.
fn raw_keys(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let m = metainfo(path);
    let mut keys = m.raw_top_level;
    keys.insert(b"info".to_vec(), m.info.raw);
    keys
}

#[test]
fn edit_tools_keep_every_other_byte() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(4);
    let content = d.path().join("content");
    tree(&content, &mut rng);
    let tr = d.path().join("tr.torrent");
    ok(Command::new("transmission-create")
        .args([
            "-s",
            "32",
            "-c",
            "from transmission",
            "-t",
            TRACKER,
            "-t",
            "http://127.0.0.1:7/b",
            "-o",
        ])
        .arg(&tr)
        .arg(&content));
    let original = std::fs::read(&tr).unwrap();
    let before = raw_keys(&tr);

    // Dry runs write nothing.
    ok(cyclone()
        .args(["reannounce", "--dry-run", "http://127.0.0.1:5/new"])
        .arg(&tr));
    ok(cyclone()
        .args(["edit", "--dry-run", "--comment", "x"])
        .arg(&tr));
    assert_eq!(std::fs::read(&tr).unwrap(), original);

    // btreannounce: messages, announce set, announce-list deleted, info untouched.
    let out = ok(cyclone()
        .args(["btreannounce", "http://127.0.0.1:5/new"])
        .arg(&tr));
    assert_eq!(
        out,
        format!(
            "old announce for {0}: {TRACKER}\nold announce-list for {0}: {TRACKER}|http://127.0.0.1:7/b\n",
            tr.display()
        )
    );
    let after = raw_keys(&tr);
    assert_eq!(after[&b"info"[..]], before[&b"info"[..]]);
    assert!(!after.contains_key(&b"announce-list"[..]));
    for (k, v) in &before {
        if k != b"announce" && k != b"announce-list" {
            assert_eq!(after.get(k), Some(v), "key {}", String::from_utf8_lossy(k));
        }
    }

    // Restore the trackers with btcopyannounce from a copy of the original: byte for byte.
    let src = d.path().join("src.torrent");
    std::fs::write(&src, &original).unwrap();
    let out = ok(cyclone().args(["btcopyannounce"]).arg(&src).arg(&tr));
    assert!(
        out.starts_with(&format!(
            "new announce: {TRACKER}\nnew announce-list: {TRACKER}|http://127.0.0.1:7/b\n"
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(&tr).unwrap(), original);

    // httpseeds on and off again: byte for byte.
    ok(cyclone()
        .args([
            "btsethttpseeds",
            "http://127.0.0.1:9/s1|http://127.0.0.1:9/s2",
        ])
        .arg(&tr));
    assert_eq!(metainfo(&tr).httpseeds.len(), 2);
    let out = ok(cyclone().args(["sethttpseeds", "0"]).arg(&tr));
    assert_eq!(
        out,
        format!(
            "old http-seed list for {}: http://127.0.0.1:9/s1|http://127.0.0.1:9/s2\n",
            tr.display()
        )
    );
    assert_eq!(std::fs::read(&tr).unwrap(), original);

    // edit: comment and web seeds change only those keys; the info-hash stays.
    let hash = metainfo(&tr).info_hash;
    ok(cyclone()
        .args([
            "edit",
            "--comment",
            "new",
            "--url-list",
            "http://127.0.0.1:8/w/",
        ])
        .arg(&tr));
    let edited = raw_keys(&tr);
    assert_eq!(metainfo(&tr).info_hash, hash);
    assert_eq!(metainfo(&tr).comment.as_deref(), Some("new"));
    for (k, v) in &before {
        if k != b"comment" {
            assert_eq!(edited.get(k), Some(v), "key {}", String::from_utf8_lossy(k));
        }
    }
    // edit --private changes the info-hash; libtorrent agrees with our hash.
    let out = ok(cyclone()
        .args(["edit", "--private", "--source", "S"])
        .arg(&tr));
    let m = metainfo(&tr);
    assert!(
        out.contains(&format!("info hash {hash} -> {}", m.info_hash)),
        "{out}"
    );
    assert_eq!(m.info.private, Some(true));
    assert_eq!(libtorrent_reads(&tr).0, m.info_hash.to_string());

    // btrename: BitTornado's messages; new info-hash, readable by transmission-show.
    let out = ok(cyclone().args(["btrename"]).arg(&tr).arg("renamed"));
    assert_eq!(
        out,
        "btrename 20021119 - change the suggested filename in a .torrent file\n\nold filename: content\nnew filename: renamed\n\ndone.\n\n"
    );
    assert_eq!(metainfo(&tr).info.name, b"renamed");
    let show = ok(Command::new("transmission-show").arg(&tr));
    assert!(show.contains("Name: renamed"), "{show}");
}

#[test]
fn edits_undone_restore_other_tools_torrents_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let content = d.path().join("content");
    tree(&content, &mut rng);
    let mk = d.path().join("mk.torrent");
    mktorrent(&content, &mk, 16);
    let lt = d.path().join("lt.torrent");
    ok(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys, os, libtorrent as lt\n\
             fs = lt.file_storage()\n\
             lt.add_files(fs, sys.argv[1])\n\
             ct = lt.create_torrent(fs, 32768, flags=lt.create_torrent.v1_only)\n\
             ct.add_tracker('http://127.0.0.1:6969/announce')\n\
             lt.set_piece_hashes(ct, os.path.dirname(sys.argv[1]))\n\
             open(sys.argv[2], 'wb').write(lt.bencode(ct.generate()))",
        )
        .arg(&content)
        .arg(&lt));
    for t in [&mk, &lt] {
        let original = std::fs::read(t).unwrap();
        ok(cyclone()
            .args([
                "edit",
                "--comment",
                "temporary",
                "--url-list",
                "http://127.0.0.1:8/w/",
            ])
            .args(["--httpseeds", "http://127.0.0.1:9/s"])
            .arg(t));
        let edited = metainfo(t);
        assert_eq!(edited.comment.as_deref(), Some("temporary"));
        assert_eq!(edited.info.raw, metainfo_from(&original).info.raw);
        let (lt_hash, _) = libtorrent_reads(t);
        assert_eq!(lt_hash, edited.info_hash.to_string());
        ok(Command::new("transmission-show").arg(t));
        ok(cyclone()
            .args(["edit", "--no-comment", "--no-url-list", "--no-httpseeds"])
            .arg(t));
        assert_eq!(std::fs::read(t).unwrap(), original, "{}", t.display());
    }
}

fn metainfo_from(bytes: &[u8]) -> Metainfo {
    Metainfo::from_bytes(bytes).unwrap()
}

#[test]
fn bad_inputs_give_clear_errors_never_panics() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.torrent");
    std::fs::write(&junk, b"this is not bencode").unwrap();
    for args in [
        vec!["verify", junk.to_str().unwrap()],
        vec!["reannounce", "http://127.0.0.1:1/a", junk.to_str().unwrap()],
        vec!["edit", "--comment", "x", junk.to_str().unwrap()],
        vec!["btrename", junk.to_str().unwrap(), "x"],
    ] {
        let (code, out, err) = run(cyclone().args(&args));
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("junk.torrent"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let f = d.path().join("f.bin");
    std::fs::write(&f, [1u8; 1000]).unwrap();
    let (code, _, err) = run(cyclone().args(["make", TRACKER, "-l", "1000000"]).arg(&f));
    assert_eq!(code, 2);
    assert!(
        err.contains("piece size 1000000 is not a power of two"),
        "{err}"
    );
    let (code, _, err) = run(cyclone().args(["make", TRACKER]).arg(d.path().join("nope")));
    assert_eq!(code, 1);
    assert!(
        err.contains("nope") && err.contains("No such file"),
        "{err}"
    );
    // Refuses to overwrite without --force.
    let out = d.path().join("o.torrent");
    ok(cyclone()
        .args(["make", "-q", TRACKER, "-o"])
        .arg(&out)
        .arg(&f));
    let (code, _, err) = run(cyclone()
        .args(["make", "-q", TRACKER, "-o"])
        .arg(&out)
        .arg(&f));
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    // A FIFO is neither a file nor a directory: an error, not a hang.
    let fifo = d.path().join("fifo");
    ok(Command::new("mkfifo").arg(&fifo));
    let (code, _, err) = run(cyclone().args(["make", "-q", TRACKER]).arg(&fifo));
    assert_eq!(code, 1);
    assert!(err.contains("is not a regular file or directory"), "{err}");
    // A path through a regular file.
    let (code, _, err) = run(cyclone().args(["make", "-q", TRACKER]).arg(f.join("below")));
    assert_eq!(code, 1);
    assert!(err.contains("Not a directory"), "{err}");
    // A usage line for the BitTornado edit tools, exit 2.
    let (code, out, _) = run(cyclone().arg("btsethttpseeds"));
    assert_eq!(code, 2);
    assert!(
        out.starts_with("Usage: btsethttpseeds <http-seeds> file1.torrent"),
        "{out}"
    );
}

#[test]
fn non_utf8_names_are_kept_as_bytes() {
    let d = tempfile::tempdir().unwrap();
    let content = d.path().join("content");
    std::fs::create_dir(&content).unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.bin");
    std::fs::write(content.join(name), [7u8; 5000]).unwrap();
    std::fs::write(content.join("plain.bin"), [8u8; 5000]).unwrap();
    let t = d.path().join("t.torrent");
    ok(cyclone()
        .args(["make", "-q", TRACKER, "-o"])
        .arg(&t)
        .arg(&content));
    let m = metainfo(&t);
    assert_eq!(m.info.files[0].path, vec![b"caf\xe9.bin".to_vec()]);
    let theirs = mktorrent(&content, &d.path().join("mk.torrent"), 15);
    let ours_again = d.path().join("t2.torrent");
    ok(cyclone()
        .args(["make", "-q", TRACKER, "-l", "32k", "-o"])
        .arg(&ours_again)
        .arg(&content));
    assert_eq!(metainfo(&ours_again).info_hash, theirs.info_hash);
    ok(cyclone().args(["verify", "-q"]).arg(&t).arg(&content));
    ok(Command::new("transmission-show").arg(&t));
}
