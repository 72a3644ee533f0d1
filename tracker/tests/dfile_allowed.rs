//! bttrack's `allowed`, `allowed_dir_files` and `allowed_list` dfile keys (§2): written, and read
//! back at the next start, with the real binary.

mod common;

use common::*;
use cyclone_metainfo::bencode::{self, write_bytes, write_int};

fn torrent(name: &str) -> (Vec<u8>, [u8; 20]) {
    let mut t = b"d".to_vec();
    write_bytes(&mut t, b"announce");
    write_bytes(&mut t, b"http://127.0.0.1:1/announce");
    write_bytes(&mut t, b"info");
    t.push(b'd');
    write_bytes(&mut t, b"length");
    write_int(&mut t, 5000);
    write_bytes(&mut t, b"name");
    write_bytes(&mut t, name.as_bytes());
    write_bytes(&mut t, b"piece length");
    write_int(&mut t, 16384);
    write_bytes(&mut t, b"pieces");
    write_bytes(&mut t, &[0x5a; 20]);
    t.extend_from_slice(b"ee");
    let m = cyclone_metainfo::Metainfo::from_bytes(&t).expect("valid torrent");
    (t, *m.info_hash.as_bytes())
}

fn scrape_name(t: &Tracker, ih: &[u8; 20]) -> Option<String> {
    let r = t.get(&format!("/scrape?info_hash={}", enc(ih)));
    let v = bencode::decode(&r.body).ok()?;
    let f = v.get(b"files")?.get(ih)?;
    f.get(b"name")?.as_str().map(str::to_string)
}

#[test]
fn allowed_dir_keys_are_saved_and_spare_the_next_parse() {
    let dir = tempdir();
    let tdir = dir.path().join("torrents");
    std::fs::create_dir_all(&tdir).unwrap();
    let (bytes, ih) = torrent("kept.bin");
    let tpath = tdir.join("kept.torrent");
    std::fs::write(&tpath, &bytes).unwrap();
    std::fs::write(tdir.join("broken.torrent"), b"d4:infoi1ee").unwrap();
    let dfile = path_in(&dir, "state");
    let args = ["--allowed_dir", tdir.to_str().unwrap()];
    let t = Tracker::start(&dfile, &args);
    assert_eq!(scrape_name(&t, &ih).as_deref(), Some("kept.bin"));
    t.stop();

    let saved = std::fs::read(&dfile).unwrap();
    let v = bencode::decode(&saved).expect("canonical dfile");
    let entry = v.get(b"allowed").unwrap().get(&ih).expect("allowed entry");
    assert_eq!(entry.get(b"name").unwrap().as_str(), Some("kept.bin"));
    assert_eq!(entry.get(b"file").unwrap().as_str(), Some("kept.torrent"));
    assert_eq!(entry.get(b"type").unwrap().as_str(), Some("torrent"));
    assert_eq!(entry.get(b"length").unwrap().as_int(), Some(5000));
    assert_eq!(entry.get(b"numfiles").unwrap().as_int(), Some(1));
    let files = v.get(b"allowed_dir_files").unwrap();
    let rec = files.get(tpath.to_str().unwrap().as_bytes()).unwrap();
    let rec = rec.as_list().unwrap();
    assert_eq!(rec[1].as_bytes(), Some(&ih[..]));
    assert_eq!(
        rec[0].as_list().unwrap()[1].as_int(),
        Some(bytes.len() as i64)
    );
    let broken = files
        .get(tdir.join("broken.torrent").to_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(broken.as_list().unwrap()[1].as_int(), Some(0));

    // Same size, same mtime, other bytes: the next start trusts the dfile and does not parse it
    // (bttrack's rule), so the torrent is still served under its name.
    let mtime = std::fs::metadata(&tpath).unwrap().modified().unwrap();
    std::fs::write(&tpath, vec![b'x'; bytes.len()]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tpath)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let t = Tracker::start(&dfile, &args);
    assert_eq!(scrape_name(&t, &ih).as_deref(), Some("kept.bin"));
    let err = t.stop();
    assert!(!err.contains("kept.torrent has errors"), "{err}");
    assert!(err.contains("broken.torrent has errors"), "{err}");
}

#[test]
fn allowed_list_key_is_saved_and_used_when_the_list_is_gone() {
    let dir = tempdir();
    let ih = [0x42u8; 20];
    let list = path_in(&dir, "list.txt");
    let hex: String = ih.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&list, format!("{hex}\n")).unwrap();
    let dfile = path_in(&dir, "state");
    let args = ["--allowed_list", list.to_str().unwrap()];
    Tracker::start(&dfile, &args).stop();
    let saved = std::fs::read(&dfile).unwrap();
    let v = bencode::decode(&saved).unwrap();
    assert_eq!(
        v.get(b"allowed_list").unwrap().get(&ih).unwrap().as_int(),
        Some(1)
    );
    std::fs::remove_file(&list).unwrap();
    let t = Tracker::start(&dfile, &args);
    let r = t.get(&announce_target(
        &ih,
        b"-XX0001-aaaaaaaaaaaa",
        6881,
        1,
        "&compact=1",
    ));
    assert_eq!(r.status, 200);
    assert!(bencode::decode(&r.body)
        .unwrap()
        .get(b"failure reason")
        .is_none());
    let other = t.get(&announce_target(
        &[1; 20],
        b"-XX0001-aaaaaaaaaaaa",
        6881,
        1,
        "&compact=1",
    ));
    assert!(bencode::decode(&other.body)
        .unwrap()
        .get(b"failure reason")
        .is_some());
    let err = t.stop();
    assert!(
        err.contains("using the 1 hashes saved in the dfile"),
        "{err}"
    );
}
