//! Fuzz the metainfo parser: never panic; what it accepts is safe and self-consistent.
#![no_main]

use cyclone_metainfo::bencode::DecodeOptions;
use cyclone_metainfo::{path_rules, raw_info, InfoHash, Metainfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Metainfo::from_bytes(data) else { return };
    // The info-hash is over the raw info bytes, and raw_info finds the same span.
    assert_eq!(m.info_hash, InfoHash::of_raw_info(&m.info.raw));
    assert_eq!(raw_info(data, &DecodeOptions::lenient()).unwrap(), &m.info.raw[..]);
    // Every accepted path is safe to join under a download directory.
    for f in &m.info.files {
        assert_eq!(path_rules::path_problem(&f.path), None);
    }
    // Piece arithmetic is consistent.
    let total = m.info.total_length();
    assert_eq!(total.div_ceil(m.info.piece_length), m.info.piece_count() as u64);
    if m.info.piece_count() > 0 {
        let last = m.info.piece_size(m.info.piece_count() - 1);
        assert!(last > 0 && last <= m.info.piece_length);
    }
    // Re-encoding the document keeps the info bytes, so the info-hash survives an edit round trip.
    let again = Metainfo::from_bytes(&m.to_document().encode()).expect("our own output parses");
    assert_eq!(again.info_hash, m.info_hash);
});
