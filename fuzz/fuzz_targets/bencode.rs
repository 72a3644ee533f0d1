//! Fuzz the bencode decoder: it must never panic, and what it accepts must be self-consistent.
#![no_main]

use cyclone_metainfo::bencode::{self, DecodeOptions, Kind, Limits, Mode, Value};
use libfuzzer_sys::fuzz_target;

/// Every value's raw span decodes again to the same value, on its own.
fn check_spans(v: &Value<'_>, opts: &DecodeOptions) {
    let again = bencode::decode_with(v.raw(), &DecodeOptions { mode: Mode::Strict, ..*opts })
        .or_else(|_| bencode::decode_with(v.raw(), opts))
        .expect("a value's raw span decodes on its own");
    assert_eq!(again.to_owned_value(), v.to_owned_value());
    match v.kind() {
        Kind::List(items) => items.iter().for_each(|i| check_spans(i, opts)),
        Kind::Dict(entries) => entries.iter().for_each(|(_, e)| check_spans(e, opts)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_input_bytes: 1 << 20,
        max_depth: 32,
        max_items: 100_000,
        max_string_bytes: 1 << 20,
    };
    let strict = DecodeOptions { mode: Mode::Strict, limits };
    let lenient = DecodeOptions { mode: Mode::Lenient, limits };
    let strict_result = bencode::decode_with(data, &strict);
    let lenient_result = bencode::decode_with(data, &lenient);
    if let Ok(v) = &strict_result {
        // Strict input is canonical: re-encoding reproduces it byte for byte, and lenient agrees.
        assert_eq!(v.to_owned_value().encode(), data);
        assert_eq!(v.raw(), data);
        assert_eq!(lenient_result.as_ref().expect("lenient accepts what strict accepts").raw(), data);
        check_spans(v, &strict);
    }
    if let Ok(v) = &lenient_result {
        check_spans(v, &lenient);
        // The skip path and the tree path agree on the span.
        let mut r = bencode::Reader::new(data, &lenient).unwrap();
        assert_eq!(r.skip().unwrap(), v.raw());
    }
});
