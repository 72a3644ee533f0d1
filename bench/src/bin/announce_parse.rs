//! CPU time per announce-query parse (`cyclone_tracker::request::parse_announce`), for a typical client's query
//! (14 parameters, as qBittorrent sends) and the short query the keep-alive benchmark uses.
//!
//! `cargo run --release -p cyclone-bench --bin announce_parse`
//!
//! Figure (2026-11-21, one core, quiet): 972 ns per typical query when each of ~20 names was looked up in a list of
//! pairs; 647 ns with one pass filling a slot per known name. 2026-12-07, same run against that build: typical
//! 560-582 -> 460 ns, keep-alive query 298-304 -> 193-196 ns (`&`/`=` found with memchr, plain integers without
//! the UTF-8 path, escapes decoded in one byte-at-a-time pass).

use std::hint::black_box;
use std::time::Instant;

const TYPICAL: &[u8] = b"info_hash=%12%34%56%78%9a%bc%de%f0%12%34%56%78%9a%bc%de%f0%12%34%56%78\
&peer_id=-qB4650-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=1234567&corrupt=0&key=ABCD1234\
&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0";
const SHORT: &[u8] = b"info_hash=%12%34%56%78%9a%bc%de%f0%12%34%56%78%9a%bc%de%f0%12%34%56%78\
&peer_id=ABCDEFGHIJKLMNOPQRST&port=6881&left=5&compact=1";

/// Parses per measurement; 5 measurements, the median printed.
const ROUNDS: u32 = 1_000_000;

fn ns_per_parse(query: &[u8]) -> f64 {
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                let parsed = cyclone_tracker::request::parse_announce(black_box(query));
                black_box(parsed.expect("the benchmark queries are valid"));
            }
            start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[2]
}

fn main() {
    println!(
        "typical client query ({} bytes): {:.0} ns per parse",
        TYPICAL.len(),
        ns_per_parse(TYPICAL)
    );
    println!(
        "keep-alive benchmark query ({} bytes): {:.0} ns per parse",
        SHORT.len(),
        ns_per_parse(SHORT)
    );
}
