//! Fuzz the resume record: arbitrary bytes must decode to a typed error or a record that round-trips; records built
//! from the input must round-trip exactly; `trusted_have` and `decide` must never panic or trust a piece the record
//! lacks, and a clean record is never trusted beyond its stamps.
#![no_main]

use cyclone_engine::piece_map::PieceMap;
use cyclone_engine::resume::{Expected, FileStamp, ResumeDecision, ResumeRecord};
use cyclone_metainfo::InfoHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // 1. Raw bytes against a fixed torrent shape.
    let expected = Expected {
        info_hash: InfoHash([7; 20]),
        piece_length: 16384,
        piece_count: 13,
        file_count: 3,
    };
    if let Ok(r) = ResumeRecord::decode(data, &expected) {
        assert_eq!(ResumeRecord::decode(&r.encode(), &expected).unwrap(), r);
    }

    // 2. A record shaped by the input: byte 0 picks the shape, the rest sets pieces and file stamps.
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let piece_count = u32::from(shape % 64);
    let file_count = usize::from(shape / 64) + 1;
    let expected = Expected {
        info_hash: InfoHash([9; 20]),
        piece_length: 4,
        piece_count,
        file_count,
    };
    let mut r = ResumeRecord::empty(&expected).unwrap();
    for p in 0..piece_count {
        if rest
            .get(p as usize / 8)
            .is_some_and(|b| b & (0x80 >> (p % 8)) != 0)
        {
            r.have.set(p);
        }
    }
    let mut stamps = rest.chunks(3).map(|c| match c {
        [a, b, c] if a % 4 != 0 => Some(FileStamp {
            size: u64::from(*a),
            mtime_secs: i64::from(*b) - 128,
            mtime_nanos: u32::from(*c) * 3_000_000,
        }),
        _ => None,
    });
    for f in r.files.iter_mut() {
        *f = stamps.next().flatten();
    }
    r.clean = rest.last().is_some_and(|b| b & 0x80 != 0);
    let bytes = r.encode();
    assert_eq!(ResumeRecord::decode(&bytes, &expected).unwrap(), r);

    // A layout from the input (it may or may not fit the record), current stamps from the input too.
    let lengths: Vec<u64> = (0..file_count)
        .map(|i| u64::from(rest.get(i).copied().unwrap_or(0)))
        .collect();
    let Ok(map) = PieceMap::new(4, &lengths) else {
        return;
    };
    let current: Vec<Option<FileStamp>> = r
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if rest.get(i).is_some_and(|b| b & 1 == 1) {
                None
            } else {
                *f
            }
        })
        .collect();
    let trusted = r.trusted_have(&map, &current);
    assert_eq!(trusted.len(), r.have.len());
    assert!(
        trusted.iter_ones().all(|p| r.have.get(p)),
        "trusted pieces are pieces we had"
    );
    let (ResumeDecision::Trust(decided) | ResumeDecision::Recheck(decided)) =
        r.decide(&map, &current);
    assert_eq!(decided.len(), r.have.len());
    assert!(
        decided.iter_ones().all(|p| r.have.get(p)),
        "decided pieces are pieces we had"
    );
    if r.clean {
        assert_eq!(decided, trusted, "a clean record is held to its stamps");
    }
});
