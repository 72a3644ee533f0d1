//! Storage on real files through glommio: lazy creation, sparse length, padding files, blocks across file
//! boundaries, the open-file LRU, read-only seeding, missing data, confinement to the download root, and piece
//! verification.

mod storage_support;

use cyclone_engine::piece_map::BLOCK_SIZE;
use cyclone_engine::storage::{FileLayout, FilePool, FileSpec, StorageError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use storage_support::{file, pad, run, storage, torrent, tree, write_files, TestFile};

const PIECE: u64 = 32 * 1024;

/// Zero-length files, a padding file, nested directories, files smaller than a block and files that end inside
/// a block: most blocks cross a file boundary somewhere.
const FILES: &[TestFile] = &[
    file(&["a.bin"], 30_000),
    file(&["empty"], 0),
    pad(&[".pad", "2768"], 2_768),
    file(&["d", "e", "c.bin"], 50_000),
    file(&["one"], 1),
    file(&["d", "empty2"], 0),
    file(&["f.bin"], 3 * 16_384 + 5),
];

#[test]
fn blocks_round_trip_across_files_with_lazy_creation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dl");
    let (m, content) = torrent("t", FILES, PIECE, 1);
    run(move || async move {
        let pool = FilePool::new(50);
        let st = storage(&m, &root, &pool);
        let map = st.piece_map().clone();
        assert!(!root.exists(), "nothing is created before the first write");

        // Blocks crossing a file boundary exist in this torrent.
        let crossing = (0..map.piece_count())
            .flat_map(|p| (0..map.block_count(p)).map(move |b| (p, b)))
            .filter(|&(p, b)| {
                let r = map.block(p, b);
                map.spans(p, r.begin, r.length).unwrap().count() > 1
            })
            .count();
        assert!(crossing >= 2, "only {crossing} crossing blocks");

        // Write every block, in a shuffled order.
        let mut blocks: Vec<(u32, u32)> = (0..map.piece_count())
            .flat_map(|p| (0..map.block_count(p)).map(move |b| (p, b)))
            .collect();
        fastrand::Rng::with_seed(7).shuffle(&mut blocks);
        let (first_p, first_b) = blocks[0];
        for (i, &(p, b)) in blocks.iter().enumerate() {
            let r = map.block(p, b);
            let at = (map.piece_offset(p) + r.begin as u64) as usize;
            st.write_block(p, r.begin, content[at..at + r.length as usize].to_vec())
                .await
                .unwrap();
            if i == 0 {
                // The first write created the zero-length files and the files this block touches, no others.
                assert!(root.join("t/empty").is_file());
                assert!(root.join("t/d/empty2").is_file());
                let touched: Vec<usize> = map
                    .spans(first_p, map.block(first_p, first_b).begin, r.length)
                    .unwrap()
                    .map(|s| s.file_index)
                    .collect();
                for (index, f) in FILES.iter().enumerate() {
                    if f.length > 0 && !f.padding {
                        let path = st.layout().path(index);
                        assert_eq!(
                            path.exists(),
                            touched.contains(&index),
                            "{}",
                            path.display()
                        );
                    }
                }
            }
        }

        // Read back: every block, every piece, and a few odd ranges.
        for &(p, b) in &blocks {
            let r = map.block(p, b);
            let at = (map.piece_offset(p) + r.begin as u64) as usize;
            let got = st.read_block(p, r.begin, r.length).await.unwrap();
            assert_eq!(got, &content[at..at + r.length as usize], "block {p}/{b}");
        }
        for p in 0..map.piece_count() {
            let at = map.piece_offset(p) as usize;
            let got = st.read_piece(p).await.unwrap();
            assert_eq!(
                got,
                &content[at..at + map.piece_size(p) as usize],
                "piece {p}"
            );
        }
        let mut out = b"header".to_vec();
        st.read_into(0, 29_990, 20, &mut out).await.unwrap();
        assert_eq!(&out[..6], b"header");
        assert_eq!(&out[6..], &content[29_990..30_010]);

        // On disk: exact contents, no padding file, nothing else.
        st.sync().await.unwrap();
        st.close().await;
        let mut at = 0usize;
        for (index, f) in FILES.iter().enumerate() {
            let path = st.layout().path(index);
            if f.padding {
                assert!(!path.exists(), "padding file written");
            } else {
                assert_eq!(
                    std::fs::read(path).unwrap(),
                    &content[at..at + f.length as usize]
                );
            }
            at += f.length as usize;
        }
        assert_eq!(
            tree(&root),
            [
                "t/a.bin",
                "t/d/e/c.bin",
                "t/d/empty2",
                "t/empty",
                "t/f.bin",
                "t/one"
            ]
        );
    });
}

#[test]
fn files_are_created_sparse_at_full_length() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    const BIG: &[TestFile] = &[file(&["big"], 64 << 20)];
    let (m, content) = torrent("s", BIG, 1 << 20, 2);
    run(move || async move {
        let pool = FilePool::new(4);
        let st = storage(&m, &root, &pool);
        let at = 40 << 20;
        st.write_block(40, 0, content[at..at + BLOCK_SIZE as usize].to_vec())
            .await
            .unwrap();
        st.sync().await.unwrap();
        let md = std::fs::metadata(root.join("s/big")).unwrap();
        assert_eq!(md.len(), 64 << 20, "length set at creation");
        assert!(
            md.blocks() * 512 < 4 << 20,
            "not zero-filled: {} blocks",
            md.blocks()
        );
        // A never-written range of a file we created reads as the zeros of a hole; only verified pieces are ever
        // served, and this one fails its hash.
        assert!(!st.verify_piece(0, &m.info.pieces[0]).await.unwrap());
        assert!(!st.verify_piece(40, &m.info.pieces[40]).await.unwrap());
    });
}

#[test]
fn lru_keeps_at_most_max_files_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    const MANY: &[TestFile] = &[
        file(&["f00"], 5000),
        file(&["f01"], 7000),
        file(&["f02"], 100),
        file(&["f03"], 20000),
        file(&["f04"], 3),
        file(&["f05"], 9000),
        file(&["f06"], 16384),
        file(&["f07"], 1),
        file(&["f08"], 30000),
        file(&["f09"], 4444),
        file(&["f10"], 12345),
        file(&["f11"], 999),
    ];
    let (m, content) = torrent("many", MANY, 16384, 3);
    run(move || async move {
        let pool = FilePool::new(3);
        let st = storage(&m, &root, &pool);
        let map = st.piece_map().clone();
        for p in 0..map.piece_count() {
            let at = map.piece_offset(p) as usize;
            st.write_piece(p, &content[at..at + map.piece_size(p) as usize])
                .await
                .unwrap();
            assert!(pool.stats().open <= 3, "{:?}", pool.stats());
        }
        let after_write = pool.stats();
        assert!(after_write.evictions >= 9, "{after_write:?}");
        // Everything reads back, through reopened (read-only) handles, still within the cap.
        for p in (0..map.piece_count()).rev() {
            let at = map.piece_offset(p) as usize;
            assert_eq!(
                st.read_piece(p).await.unwrap(),
                &content[at..at + map.piece_size(p) as usize]
            );
            assert!(pool.stats().open <= 3);
        }
        assert!(pool.stats().opens > after_write.opens);
        // Data written through evicted (closed) handles is synced by reopening them.
        st.sync().await.unwrap();
        // Two torrents share one pool and its cap.
        let other_root = root.join("other");
        let st2 = storage(&m, &other_root, &pool);
        st2.write_piece(0, &content[..16384]).await.unwrap();
        assert!(pool.stats().open <= 3);
        assert_eq!(st.read_piece(0).await.unwrap(), &content[..16384]);
        drop(st2);
        st.close().await;
        assert_eq!(pool.stats().open, 0);
    });
}

/// The open mode of the descriptors this process holds on `path` (from /proc/self/fdinfo).
fn open_modes(path: &Path) -> Vec<i32> {
    let mut modes = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if std::fs::read_link(e.path()).ok().as_deref() == Some(path) {
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                e.file_name().to_str().unwrap()
            ));
            if let Ok(info) = info {
                let flags = info
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .unwrap()
                    .trim();
                modes.push(i32::from_str_radix(flags, 8).unwrap() & libc::O_ACCMODE);
            }
        }
    }
    modes
}

#[test]
fn seeding_existing_data_opens_read_only_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (m, content) = torrent("t", FILES, PIECE, 4);
    write_files(&m, &root, &content);
    let before: Vec<_> = tree(&root)
        .iter()
        .map(|p| std::fs::metadata(root.join(p)).unwrap().modified().unwrap())
        .collect();
    let r = root.clone();
    run(move || async move {
        let pool = FilePool::new(50);
        let st = storage(&m, &r, &pool);
        let map = st.piece_map().clone();
        for p in 0..map.piece_count() {
            let at = map.piece_offset(p) as usize;
            assert_eq!(
                st.read_piece(p).await.unwrap(),
                &content[at..at + map.piece_size(p) as usize]
            );
        }
        let path = std::fs::canonicalize(r.join("t/d/e/c.bin")).unwrap();
        let modes = open_modes(&path);
        assert_eq!(modes, [libc::O_RDONLY], "seeding opens read-only");
        assert_eq!(pool.stats().open, 4, "the four non-empty data files");
        // A write reopens read-write; after seal, reads go back to read-only handles.
        let at = map.piece_offset(1) as usize;
        st.write_piece(1, &content[at..at + PIECE as usize])
            .await
            .unwrap();
        assert!(open_modes(&path).contains(&libc::O_RDWR));
        st.sync().await.unwrap();
        st.seal().await;
        st.read_piece(1).await.unwrap();
        assert!(open_modes(&path).iter().all(|&m| m == libc::O_RDONLY));
        st.close().await;
    });
    let after: Vec<_> = tree(&root)
        .iter()
        .map(|p| std::fs::metadata(root.join(p)).unwrap().modified().unwrap())
        .collect();
    assert_eq!(before.len(), after.len());
}

#[test]
fn missing_or_short_files_are_errors_never_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (m, content) = torrent("t", FILES, PIECE, 5);
    write_files(&m, &root, &content);
    // c.bin (torrent bytes 32768..82768) cut to 10000 bytes; f.bin removed.
    std::fs::write(root.join("t/d/e/c.bin"), &content[32_768..42_768]).unwrap();
    std::fs::remove_file(root.join("t/f.bin")).unwrap();
    run(move || async move {
        let pool = FilePool::new(50);
        let st = storage(&m, &root, &pool);
        // Piece 0 is a.bin + padding: intact.
        assert_eq!(st.read_piece(0).await.unwrap(), &content[..PIECE as usize]);
        // Inside the short file's existing part: fine; past it: MissingData at the right file offset.
        assert_eq!(
            st.read_block(1, 0, 10_000).await.unwrap(),
            &content[32_768..42_768]
        );
        match st.read_block(1, 9_000, 2_000).await {
            Err(StorageError::MissingData {
                path,
                offset,
                length,
            }) => {
                assert!(path.ends_with("t/d/e/c.bin"));
                assert_eq!((offset, length), (10_000, 1_000));
            }
            other => panic!("expected MissingData, got {other:?}"),
        }
        // A missing file.
        let last = st.piece_map().piece_count() - 1;
        let mut out = vec![1, 2, 3];
        let err = st.read_into(last, 0, 100, &mut out).await.unwrap_err();
        assert!(err.is_missing_data(), "{err}");
        assert_eq!(out, [1, 2, 3], "the buffer is left as it was");
        // Reading never created anything.
        assert!(!root.join("t/f.bin").exists());
        assert_eq!(
            st.verify_pieces(&[0], &m.info.pieces).await.unwrap(),
            [true]
        );
    });
}

#[test]
fn nothing_is_written_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inside");
    for bad in [
        &["..", "x"][..],
        &["/abs"],
        &["a", "..", "..", "b"],
        &["a/../../b"],
        &["."],
    ] {
        let spec = FileSpec {
            path: bad.iter().map(|c| c.as_bytes().to_vec()).collect(),
            length: 10,
            padding: false,
        };
        let err = FileLayout::new(&root, vec![spec]).unwrap_err();
        assert!(matches!(err, StorageError::UnsafePath { .. }), "{bad:?}");
    }
    // The metainfo parser refuses such torrents before storage sees them, too.
    let (m, content) = torrent("t", FILES, PIECE, 6);
    let mut raw = Vec::new();
    {
        use cyclone_metainfo::bencode::Owned;
        let mut f = Owned::dict();
        f.insert("length", 1i64);
        f.insert("path", Owned::List(vec!["..".into(), "x".into()]));
        let mut info = Owned::dict();
        info.insert("files", Owned::List(vec![f]));
        info.insert("name", "t");
        info.insert("piece length", 16384i64);
        info.insert("pieces", vec![0u8; 20]);
        let mut top = Owned::dict();
        top.insert("info", info);
        top.encode_into(&mut raw);
    }
    assert!(cyclone_metainfo::Metainfo::from_bytes(&raw).is_err());
    // A full download writes only under the root.
    let r = root.clone();
    run(move || async move {
        let pool = FilePool::new(50);
        let st = storage(&m, &r, &pool);
        let map = st.piece_map().clone();
        for p in 0..map.piece_count() {
            let at = map.piece_offset(p) as usize;
            st.write_piece(p, &content[at..at + map.piece_size(p) as usize])
                .await
                .unwrap();
        }
        st.close().await;
    });
    let outside: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|p| !p.starts_with("inside/"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn verify_detects_corruption_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (m, content) = torrent("t", FILES, PIECE, 8);
    run(move || async move {
        let pool = FilePool::new(2);
        let st = storage(&m, &root, &pool);
        let map = st.piece_map().clone();
        let n = map.piece_count();
        for p in 0..n {
            let at = map.piece_offset(p) as usize;
            st.write_piece(p, &content[at..at + map.piece_size(p) as usize])
                .await
                .unwrap();
            assert!(st
                .verify_piece(p, &m.info.pieces[p as usize])
                .await
                .unwrap());
        }
        // Wrong data for piece 1 (written through storage), then corrupt one byte of piece 2 behind its back.
        let mut bad = content[PIECE as usize..2 * PIECE as usize].to_vec();
        bad[100] ^= 0x40;
        st.write_piece(1, &bad).await.unwrap();
        st.sync().await.unwrap();
        st.close().await;
        let c = root.join("t/d/e/c.bin");
        let mut bytes = std::fs::read(&c).unwrap();
        // Torrent offset 2*PIECE + 5 lies in c.bin at 2*32768 + 5 - 32768.
        bytes[PIECE as usize + 5] ^= 1;
        std::fs::write(&c, bytes).unwrap();
        let all: Vec<u32> = (0..n).collect();
        let verdicts = st.verify_pieces(&all, &m.info.pieces).await.unwrap();
        let expected: Vec<bool> = (0..n).map(|p| p != 1 && p != 2).collect();
        assert_eq!(verdicts, expected);
        // Piece hashes out of range are an error, not a panic.
        assert!(st.verify_pieces(&[n], &m.info.pieces).await.is_err());
        // A wrong-size buffer is refused.
        assert!(matches!(
            st.write_piece(0, &[0; 10]).await,
            Err(StorageError::BufferLength { .. })
        ));
        assert!(st.write_block(0, 32_760, vec![0; 16]).await.is_err());
    });
}

/// Paths of the files this process has open under `dir`.
fn open_paths(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap();
    let mut out: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|p| p.strip_prefix(&dir).ok().map(|r| r.display().to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn the_least_recently_used_file_is_closed_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    const FOUR: &[TestFile] = &[
        file(&["a"], 16384),
        file(&["b"], 16384),
        file(&["c"], 16384),
        file(&["d"], 16384),
    ];
    let (m, content) = torrent("lru", FOUR, 16384, 9);
    write_files(&m, &root, &content);
    run(move || async move {
        let pool = FilePool::new(3);
        let st = storage(&m, &root, &pool);
        for p in [0, 1, 2, 0, 3] {
            let got = st.read_block(p, 100, 10).await.unwrap();
            let at = p as usize * 16384 + 100;
            assert_eq!(got, &content[at..at + 10]);
        }
        // `b` was used least recently when `d` needed a slot.
        assert_eq!(open_paths(&root), ["lru/a", "lru/c", "lru/d"]);
        assert_eq!(pool.stats().evictions, 1);
        st.close().await;
        assert!(
            open_paths(&root).is_empty(),
            "close() closes the descriptors"
        );
    });
}

#[test]
fn single_file_torrent_lives_at_root_slash_name() {
    use cyclone_metainfo::bencode::Owned;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let content: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let pieces: Vec<u8> = content
        .chunks(16384)
        .flat_map(cyclone_engine::storage::piece_digest)
        .collect();
    let mut info = Owned::dict();
    info.insert("length", 40_000i64);
    info.insert("name", "movie.mkv");
    info.insert("piece length", 16384i64);
    info.insert("pieces", pieces);
    let mut top = Owned::dict();
    top.insert("info", info);
    let m = cyclone_metainfo::Metainfo::from_bytes(&top.encode()).unwrap();
    let r = root.clone();
    run(move || async move {
        let pool = FilePool::new(0);
        assert_eq!(
            pool.capacity(),
            cyclone_engine::storage::files::MAX_FILES_OPEN_CEILING
        );
        let st = storage(&m, &r, &pool);
        for p in 0..3u32 {
            let at = p as usize * 16384;
            let end = (at + 16384).min(content.len());
            st.write_piece(p, &content[at..end]).await.unwrap();
        }
        let all: Vec<u32> = (0..3).collect();
        assert_eq!(
            st.verify_pieces(&all, &m.info.pieces).await.unwrap(),
            [true; 3]
        );
        st.close().await;
    });
    assert_eq!(tree(&root), ["movie.mkv"]);
    assert_eq!(std::fs::read(root.join("movie.mkv")).unwrap().len(), 40_000);
}

/// Connection tasks write and read concurrently while the pool is far smaller than the file count: concurrent
/// opens of the same file, evictions of files with I/O in flight, reads of blocks being written elsewhere.
#[test]
fn concurrent_tasks_with_a_tiny_pool() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    const TWELVE: &[TestFile] = &[
        file(&["00"], 21_000),
        file(&["01"], 9_000),
        file(&["02"], 0),
        file(&["03"], 40_000),
        file(&["04"], 1),
        file(&["05"], 33_333),
        pad(&[".pad", "x"], 1_000),
        file(&["06"], 16_384),
        file(&["07"], 70_000),
        file(&["08"], 5),
        file(&["09"], 12_000),
        file(&["10"], 47_000),
    ];
    let (m, content) = torrent("c", TWELVE, 32_768, 10);
    run(move || async move {
        let pool = FilePool::new(2);
        let st = storage(&m, &root, &pool);
        let map = st.piece_map().clone();
        let content = std::rc::Rc::new(content);
        let mut blocks: Vec<(u32, u32)> = (0..map.piece_count())
            .flat_map(|p| (0..map.block_count(p)).map(move |b| (p, b)))
            .collect();
        fastrand::Rng::with_seed(11).shuffle(&mut blocks);
        let lanes = 8;
        let mut tasks = Vec::new();
        for lane in 0..lanes {
            let mine: Vec<(u32, u32)> = blocks.iter().copied().skip(lane).step_by(lanes).collect();
            let (st, map, content, pool) = (st.clone(), map.clone(), content.clone(), pool.clone());
            tasks.push(glommio::spawn_local(async move {
                for (p, b) in mine {
                    let r = map.block(p, b);
                    let at = (map.piece_offset(p) + r.begin as u64) as usize;
                    let want = &content[at..at + r.length as usize];
                    st.write_block(p, r.begin, want.to_vec()).await.unwrap();
                    assert_eq!(st.read_block(p, r.begin, r.length).await.unwrap(), want);
                    assert!(pool.stats().open <= 2, "{:?}", pool.stats());
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        let all: Vec<u32> = (0..map.piece_count()).collect();
        let verdicts = st.verify_pieces(&all, &m.info.pieces).await.unwrap();
        assert!(verdicts.iter().all(|&v| v), "{verdicts:?}");
        st.sync().await.unwrap();
        st.close().await;
    });
}

#[test]
fn a_file_where_a_directory_must_go_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("t"), b"not a directory").unwrap();
    let (m, content) = torrent("t", FILES, PIECE, 12);
    run(move || async move {
        let pool = FilePool::new(4);
        let st = storage(&m, &root, &pool);
        let err = st
            .write_piece(0, &content[..PIECE as usize])
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        assert!(
            err.to_string().contains("/t/"),
            "the message names the file: {err}"
        );
        let err = st.read_piece(0).await.unwrap_err();
        assert!(!err.to_string().is_empty());
    });
}

/// Pieces above 4 MiB are verified in parts (bounded memory), alone or in a batch with small ones.
#[test]
fn large_pieces_verify_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    const LARGE: &[TestFile] = &[file(&["x"], 5 << 20), file(&["y"], 6 << 20)];
    let (m, content) = torrent("big", LARGE, 8 << 20, 13);
    run(move || async move {
        let pool = FilePool::new(4);
        let st = storage(&m, &root, &pool);
        st.write_piece(0, &content[..8 << 20]).await.unwrap();
        st.write_piece(1, &content[8 << 20..]).await.unwrap();
        assert!(st.verify_piece(0, &m.info.pieces[0]).await.unwrap());
        assert!(st.verify_piece(1, &m.info.pieces[1]).await.unwrap());
        assert!(!st.verify_piece(0, &m.info.pieces[1]).await.unwrap());
        // Corrupt piece 0 at 7 MiB (inside y, in its second part).
        let mut block = content[7 << 20..(7 << 20) + 16384].to_vec();
        block[3] ^= 0x10;
        st.write_block(0, 7 << 20, block).await.unwrap();
        assert!(!st.verify_piece(0, &m.info.pieces[0]).await.unwrap());
        assert_eq!(
            st.verify_pieces(&[1, 0, 1], &m.info.pieces).await.unwrap(),
            [true, false, true]
        );
        st.close().await;
    });
}

/// Whole pieces go around the page cache with O_DIRECT where the file system takes it (ext4 here) and the span is
/// aligned; unaligned spans of a multi-file torrent are written buffered. On tmpfs glommio opens its DMA files
/// without O_DIRECT (there is no device), so the same path is a plain write. Either way every byte reads back.
#[test]
fn whole_pieces_use_o_direct_where_possible_and_fall_back_elsewhere() {
    const ALIGNED: &[TestFile] = &[file(&["big.bin"], 1 << 20)];
    const UNALIGNED: &[TestFile] = &[file(&["a"], 70_000), file(&["b"], 200_000)];
    let disk = tempfile::tempdir().unwrap();
    let shm = Path::new("/dev/shm");
    let mut roots = vec![(disk.path().join("dl"), true)];
    let shm_dir = shm.is_dir().then(|| tempfile::tempdir_in(shm).unwrap());
    if let Some(d) = &shm_dir {
        roots.push((d.path().join("dl"), false));
    }
    for (root, may_be_direct) in roots {
        let on_tmpfs = fs_is_tmpfs(root.parent().unwrap());
        for (name, files, piece) in [
            ("aligned", ALIGNED, 64 << 10),
            ("unaligned", UNALIGNED, 64 << 10),
        ] {
            let (m, content) = torrent(name, files, piece, 5);
            let root = root.join(name);
            let direct = run(move || async move {
                let pool = FilePool::new(8);
                let st = storage(&m, &root, &pool);
                let map = st.piece_map().clone();
                for p in 0..map.piece_count() {
                    let at = map.piece_offset(p) as usize;
                    st.write_piece(p, &content[at..at + map.piece_size(p) as usize])
                        .await
                        .unwrap();
                }
                st.sync().await.unwrap();
                for p in 0..map.piece_count() {
                    let at = map.piece_offset(p) as usize;
                    assert_eq!(
                        st.read_piece(p).await.unwrap(),
                        &content[at..at + map.piece_size(p) as usize],
                        "piece {p}"
                    );
                }
                let n = st.direct_writes();
                st.close().await;
                n
            });
            // On tmpfs only the data matters (checked above): glommio's tmpfs DMA writes are plain writes.
            if may_be_direct && !on_tmpfs {
                if name == "aligned" {
                    assert_eq!(
                        direct, 16,
                        "{name}: every piece of a single file is aligned"
                    );
                } else {
                    // 70 000 and 200 000 bytes: only spans starting and ending on 512-byte boundaries qualify.
                    assert!(direct < 6, "{name}: {direct} direct spans");
                }
            }
        }
        assert!(
            std::fs::read_dir(root.join("aligned"))
                .unwrap()
                .flatten()
                .all(|e| !e
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".cyclone-dma-probe")),
            "the DMA probe file is removed"
        );
    }
}

fn fs_is_tmpfs(path: &Path) -> bool {
    std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs")
        .unwrap_or(false)
}
