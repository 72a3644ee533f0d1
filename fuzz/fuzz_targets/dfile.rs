//! Fuzz the dfile reader (bttrack's and the PHP tracker's dialects): never panic; what it accepts survives our own
//! encode/decode round trip (peers, completions, and bttrack's `allowed`,
//! `allowed_dir_files`, `allowed_list` keys).
#![no_main]

use cyclone_tracker::dfile::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for use_given_ip in [false, true] {
        if let Ok(state) = decode(data, use_given_ip) {
            let again = decode(&encode(&state), use_given_ip).expect("our own dfile decodes");
            assert_eq!(again.peers, state.peers);
            assert_eq!(again.completed, state.completed);
            assert_eq!(again.allowed_dir, state.allowed_dir);
            assert_eq!(again.allowed_list, state.allowed_list);
        }
    }
});
