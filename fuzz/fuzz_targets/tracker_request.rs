//! Fuzz the tracker's request parsers (announce and scrape query strings): never panic, and whatever is accepted is
//! within the documented bounds.
#![no_main]

use cyclone_tracker::request::{parse_announce, parse_scrape, MAX_SCRAPE_HASHES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse_announce(data) {
        // A parsed announce is usable: re-parsing the same bytes gives the same answer.
        assert_eq!(format!("{a:?}"), format!("{:?}", parse_announce(data).unwrap()));
    }
    if let Ok(s) = parse_scrape(data) {
        let count = s.info_hashes.map_or(0, |h| h.len());
        assert!(count <= MAX_SCRAPE_HASHES, "scrape info-hash list is bounded");
    }
});
