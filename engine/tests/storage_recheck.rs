//! Recheck of existing data on real files: complete, partial, missing, short, corrupted and oversized files,
//! padding, pieces larger than one read, `check_hashes 0`, and progress reporting.

mod storage_support;

use cyclone_engine::storage::{recheck, FilePool, FileStatus, RecheckOptions, RecheckReport};
use cyclone_metainfo::Metainfo;
use std::path::PathBuf;
use storage_support::{
    cached_bytes, evict, file, pad, run, storage, torrent, write_files, TestFile,
};

const PIECE: u64 = 32 * 1024;

/// File boundaries fall inside pieces. Torrent offsets: a 0..70000, b 70000..110000, padding 110000..130304,
/// c 130304..230304, d 230304..263304; 9 pieces, the last of 1160 bytes.
const FILES: &[TestFile] = &[
    file(&["a.bin"], 70_000),
    file(&["b.bin"], 40_000),
    pad(&[".pad", "1"], 20_304),
    file(&["sub", "c.bin"], 100_000),
    file(&["empty"], 0),
    file(&["d.bin"], 33_000),
];

fn check(
    m: Metainfo,
    root: PathBuf,
    options: RecheckOptions,
) -> (RecheckReport, Vec<cyclone_engine::storage::RecheckProgress>) {
    run(move || async move {
        let pool = FilePool::new(3);
        let st = storage(&m, &root, &pool);
        let mut seen = Vec::new();
        let report = recheck(st.clone(), &m.info.pieces, &options, |p| seen.push(*p))
            .await
            .unwrap();
        st.close().await;
        (report, seen)
    })
}

/// Pieces holding any byte of torrent range `start..end`.
fn pieces_of(start: u64, end: u64) -> std::ops::Range<u32> {
    (start / PIECE) as u32..end.div_ceil(PIECE) as u32
}

fn have_list(r: &RecheckReport) -> Vec<u32> {
    r.have.iter_ones().collect()
}

fn setup(seed: u64) -> (tempfile::TempDir, PathBuf, Metainfo, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (m, content) = torrent("t", FILES, PIECE, seed);
    write_files(&m, &root, &content);
    evict(&root);
    (dir, root, m, content)
}

fn count(m: &Metainfo) -> u32 {
    m.info.pieces.len() as u32
}

#[test]
fn complete_data_is_all_had() {
    let (_d, root, m, _) = setup(1);
    let n = count(&m);
    // Cold data is read with O_DIRECT: the check leaves the page cache as it found it.
    let (cold, _) = check(m.clone(), root.clone(), RecheckOptions::default());
    assert!(cold.have.is_complete());
    assert_eq!(cached_bytes(&root.join("t/sub/c.bin")), 0);
    // Warm data (read once) is copied from the cache.
    std::fs::read(root.join("t/sub/c.bin")).unwrap();
    assert!(cached_bytes(&root.join("t/sub/c.bin")) > 0);
    let (r, progress) = check(m, root, RecheckOptions::default());
    assert!(r.have.is_complete(), "{:?}", have_list(&r));
    assert_eq!(r.hash_failures, 0);
    assert_eq!(
        r.files,
        [
            FileStatus::Complete,
            FileStatus::Complete,
            FileStatus::Padding,
            FileStatus::Complete,
            FileStatus::Complete,
            FileStatus::Complete
        ]
    );
    // Every byte was checked once (padding counts, as zeros that are never read from disk).
    assert_eq!(r.bytes_read, 263_304);
    assert_eq!(r.file_pieces[0], (3, 3));
    assert_eq!(
        r.file_pieces[4],
        (0, 0),
        "a zero-length file touches no piece"
    );
    let last = progress.last().unwrap();
    assert_eq!((last.pieces_done, last.piece_count), (n, n));
    assert!(progress
        .windows(2)
        .all(|w| w[0].pieces_done <= w[1].pieces_done && w[0].bytes_read <= w[1].bytes_read));
}

#[test]
fn missing_file_does_not_shift_later_files() {
    let (_d, root, m, _) = setup(2);
    let n = count(&m);
    std::fs::remove_file(root.join("t/b.bin")).unwrap();
    let (r, _) = check(m, root, RecheckOptions::default());
    assert_eq!(r.files[1], FileStatus::Missing);
    let lost = pieces_of(70_000, 110_000);
    let want: Vec<u32> = (0..n).filter(|p| !lost.contains(p)).collect();
    assert_eq!(
        have_list(&r),
        want,
        "pieces of the files after the gap are still found"
    );
    assert_eq!(
        r.hash_failures, 0,
        "absent pieces are not read, so they do not fail"
    );
    assert!(r.read_errors.is_empty());
}

#[test]
fn short_and_corrupted_and_oversized_files() {
    let (_d, root, m, content) = setup(3);
    let n = count(&m);
    // a.bin: one byte flipped at 40000 (piece 1). c.bin: cut to 50000 bytes. d.bin: 500 extra bytes.
    let mut a = content[..70_000].to_vec();
    a[40_000] ^= 0x80;
    std::fs::write(root.join("t/a.bin"), a).unwrap();
    std::fs::write(root.join("t/sub/c.bin"), &content[130_304..180_304]).unwrap();
    let mut d = content[230_304..].to_vec();
    d.extend_from_slice(&[7; 500]);
    std::fs::write(root.join("t/d.bin"), d).unwrap();
    evict(&root);
    let (r, _) = check(m, root.clone(), RecheckOptions::default());
    assert_eq!(r.files[0], FileStatus::Complete);
    assert_eq!(r.files[3], FileStatus::Short { size: 50_000 });
    assert_eq!(r.files[5], FileStatus::Oversized { size: 33_500 });
    let cut = pieces_of(130_304 + 50_000, 230_304);
    let want: Vec<u32> = (0..n).filter(|&p| p != 1 && !cut.contains(&p)).collect();
    assert_eq!(have_list(&r), want);
    assert_eq!(r.hash_failures, 1);
    // Nothing was modified by the check: the oversized file keeps its extra bytes.
    assert_eq!(
        std::fs::metadata(root.join("t/d.bin")).unwrap().len(),
        33_500
    );
}

#[test]
fn nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = torrent("t", FILES, PIECE, 4);
    let (r, progress) = check(m, dir.path().to_path_buf(), RecheckOptions::default());
    assert_eq!(r.have.count_ones(), 0);
    assert_eq!(r.bytes_read, 0);
    assert!(r
        .files
        .iter()
        .all(|s| matches!(s, FileStatus::Missing | FileStatus::Padding)));
    assert_eq!(
        progress.last().unwrap().pieces_done,
        progress.last().unwrap().piece_count
    );
    assert!(!dir.path().join("t").exists(), "a recheck creates nothing");
}

#[test]
fn check_hashes_off_trusts_present_bytes() {
    let (_d, root, m, content) = setup(5);
    let n = count(&m);
    let mut a = content[..70_000].to_vec();
    a[40_000] ^= 0x80;
    std::fs::write(root.join("t/a.bin"), a).unwrap();
    std::fs::remove_file(root.join("t/d.bin")).unwrap();
    let options = RecheckOptions {
        check_hashes: false,
        ..RecheckOptions::default()
    };
    let (r, _) = check(m, root, options);
    // The corrupted piece is trusted (BitTornado --check_hashes 0); the missing file's pieces are not.
    let lost = pieces_of(230_304, 263_304);
    let want: Vec<u32> = (0..n).filter(|p| !lost.contains(p)).collect();
    assert_eq!(have_list(&r), want);
    assert_eq!(r.bytes_read, 0, "nothing is read");
}

/// Pieces of 256 KiB read 64 KiB at a time, with a budget of two reads in flight; and tiny pieces many per read;
/// each with O_DIRECT and with buffered reads.
#[test]
fn large_pieces_in_parts_and_small_pieces_in_groups() {
    const BIG: &[TestFile] = &[
        file(&["x"], 300_000),
        file(&["y"], 0),
        file(&["z"], 500_001),
        file(&["w"], 70_000),
    ];
    for (piece, read_size, budget, direct_io) in [
        (256 << 10, 64 << 10, 128 << 10, true),
        (16 << 10, 64 << 10, 64 << 10, true),
        (256 << 10, 64 << 10, 128 << 10, false),
        (16 << 10, 64 << 10, 64 << 10, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (m, content) = torrent("big", BIG, piece, 6);
        write_files(&m, &root, &content);
        let mut z = content[300_000..800_001].to_vec();
        z[250_000] ^= 1; // torrent offset 550000
        std::fs::write(root.join("big/z"), z).unwrap();
        std::fs::remove_file(root.join("big/w")).unwrap();
        evict(&root);
        let n = m.info.pieces.len() as u32;
        let options = RecheckOptions {
            check_hashes: true,
            read_size,
            memory_budget: budget,
            direct_io,
        };
        let (r, progress) = check(m, root, options);
        let bad = 550_000 / piece as u32;
        let lost = (800_001 / piece) as u32..n;
        let want: Vec<u32> = (0..n).filter(|&p| p != bad && !lost.contains(&p)).collect();
        assert_eq!(have_list(&r), want, "piece {piece}");
        assert_eq!(r.hash_failures, 1);
        assert_eq!(progress.last().unwrap().pieces_done, n);
        assert!(progress.len() > 3, "progress after every read");
    }
}

#[test]
fn a_directory_where_a_file_should_be_is_missing() {
    let (_d, root, m, _) = setup(7);
    std::fs::remove_file(root.join("t/a.bin")).unwrap();
    std::fs::create_dir(root.join("t/a.bin")).unwrap();
    let (r, _) = check(m, root, RecheckOptions::default());
    assert_eq!(r.files[0], FileStatus::Missing);
    assert!(!r.have.get(0) && r.have.get(4));
}

/// After a resume record: trusted pieces are kept unread (even if corrupted behind our back, which the record's
/// file stamps exist to catch), untrusted ones are hashed, and a trusted piece whose bytes are gone is dropped.
#[test]
fn trusted_pieces_from_a_resume_record_are_not_read() {
    use cyclone_engine::bitfield::Bitfield;
    use cyclone_engine::storage::recheck_untrusted;
    let (_d, root, m, content) = setup(8);
    let n = count(&m);
    // Piece 1 corrupted (a.bin), piece 5 corrupted (c.bin), d.bin (pieces 7, 8) removed.
    let mut a = content[..70_000].to_vec();
    a[40_000] ^= 1;
    std::fs::write(root.join("t/a.bin"), a).unwrap();
    let mut c = content[130_304..230_304].to_vec();
    c[5 * 32_768 - 130_304 + 10] ^= 1;
    std::fs::write(root.join("t/sub/c.bin"), c).unwrap();
    std::fs::remove_file(root.join("t/d.bin")).unwrap();
    evict(&root);
    let mut trusted = Bitfield::new(n).unwrap();
    for p in [0, 1, 2, 8] {
        trusted.set(p);
    }
    let (report, progress) = run(move || async move {
        let pool = FilePool::new(3);
        let st = storage(&m, &root, &pool);
        let mut seen = Vec::new();
        let report = recheck_untrusted(
            st.clone(),
            &m.info.pieces,
            Some(&trusted),
            &RecheckOptions::default(),
            |p| seen.push(*p),
        )
        .await
        .unwrap();
        st.close().await;
        (report, seen)
    });
    // 1 is trusted (not read); 5 is read and fails; 7 and 8 have no data; the rest are read and pass.
    assert_eq!(have_list(&report), [0, 1, 2, 3, 4, 6]);
    assert_eq!(report.hash_failures, 1);
    let last = progress.last().unwrap();
    assert_eq!(last.pieces_done, n);
    // Only the untrusted pieces with data, 3..=6, were read.
    assert_eq!(last.bytes_to_read, 4 * 32_768);
    assert_eq!(report.bytes_read, 4 * 32_768);
}
