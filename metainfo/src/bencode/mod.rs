//! Bencode: a zero-copy, span-capturing decoder and a canonical encoder.
//!
//! Why hand-written: the info-hash of a torrent is SHA-1 over the *exact* bytes of its `info` dictionary as they
//! appear in the file. A decoder that re-encodes (serde_bencode) drops unknown keys and re-sorts dictionaries, so the
//! hash it produces is wrong for any torrent that is not canonical or carries keys the decoder does not model. Every
//! [`Value`] here remembers the slice of input it was decoded from ([`Value::raw`]); hashing `info.raw()` is always
//! right, and costs no copy.
//!
//! Two modes:
//! - [`Mode::Strict`] rejects everything BitTornado's bencode tests reject: `i-0e`, `i03e`, `02:xy`, unsorted or
//!   duplicate dictionary keys, non-string keys, truncation and trailing data.
//! - [`Mode::Lenient`] reads real-world torrents: dictionary keys may be out of order, and trailing ASCII whitespace
//!   or NUL bytes after the value (an editor's newline, a downloader's zero padding) are ignored. Everything else (malformed integers, duplicate keys, truncation) is still an error, because
//!   accepting it would make two readers disagree about what the file says.
//!
//! Hard [`Limits`] bound the work an attacker can cause: input size, nesting depth, number of values and string
//! length. Every error carries the byte offset at which it was detected.

use std::fmt;

mod owned;
mod reader;
mod value;

pub use owned::{write_bytes, write_decimal, write_int, Owned};
pub use reader::{DictReader, Reader, ValueType};
pub use value::{Kind, Value};

/// Upper bounds on what one decode may consume. Every input from the network or the disk is decoded under limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_input_bytes: usize,
    /// Deepest nesting of lists and dictionaries (the top-level value is depth 1).
    pub max_depth: usize,
    /// Most values (integers, strings, lists, dictionaries; keys included) in one input.
    pub max_items: usize,
    /// Longest single byte string.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    /// Generous enough for any real torrent (a 10,000-file torrent is ~1.4 MB and ~60,000 values; `pieces` of a
    /// 4 TiB torrent with 1 MiB pieces is 80 MiB), small enough that a hostile file cannot exhaust memory.
    fn default() -> Self {
        Limits {
            max_input_bytes: 256 << 20,
            max_depth: 64,
            max_items: 8_000_000,
            max_string_bytes: 128 << 20,
        }
    }
}

impl Limits {
    /// Tight limits for small network messages (extension handshakes, tracker responses, DHT-sized payloads).
    pub fn small_message() -> Self {
        Limits {
            max_input_bytes: 1 << 20,
            max_depth: 16,
            max_items: 16_384,
            max_string_bytes: 1 << 20,
        }
    }
}

/// How strictly to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Canonical bencode only (BitTornado's conformance rules).
    #[default]
    Strict,
    /// Also accept unsorted dictionary keys, and trailing whitespace or NUL bytes after the top-level value. Other
    /// trailing bytes are still an error: they usually mean a truncated or concatenated file.
    Lenient,
}

/// Options for [`decode_with`] and [`decode_prefix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    pub mode: Mode,
    pub limits: Limits,
}

impl DecodeOptions {
    /// Lenient mode with default limits: how cyclone reads `.torrent` files.
    pub fn lenient() -> Self {
        DecodeOptions {
            mode: Mode::Lenient,
            limits: Limits::default(),
        }
    }
}

/// What went wrong, without the position (see [`DecodeError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended in the middle of a value.
    UnexpectedEnd { expected: &'static str },
    /// A byte that cannot start or continue the current value.
    UnexpectedByte { found: u8, expected: &'static str },
    /// `ie`: an integer with no digits.
    EmptyInteger,
    /// `i03e` or `03:abc`: a leading zero.
    LeadingZero,
    /// `i-0e`.
    NegativeZero,
    /// An integer outside the signed 64-bit range.
    IntegerOverflow,
    /// A string length prefix too large for this platform or above [`Limits::max_string_bytes`].
    StringTooLong { length: u64, max: usize },
    /// A dictionary key that is not a byte string.
    NonStringKey,
    /// A dictionary key not greater than the one before it (strict mode).
    UnsortedKey,
    /// The same key twice in one dictionary.
    DuplicateKey,
    /// Bytes after the top-level value (strict mode).
    TrailingData { count: usize },
    /// Nesting deeper than [`Limits::max_depth`].
    TooDeep { max: usize },
    /// More values than [`Limits::max_items`].
    TooManyItems { max: usize },
    /// Input larger than [`Limits::max_input_bytes`].
    InputTooLarge { length: usize, max: usize },
    /// An empty input.
    Empty,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::UnexpectedEnd { expected } => {
                write!(f, "input ends where {expected} was expected")
            }
            DecodeErrorKind::UnexpectedByte { found, expected } => {
                write!(
                    f,
                    "unexpected byte {} where {expected} was expected",
                    show_byte(*found)
                )
            }
            DecodeErrorKind::EmptyInteger => write!(f, "integer has no digits"),
            DecodeErrorKind::LeadingZero => write!(f, "number has a leading zero"),
            DecodeErrorKind::NegativeZero => write!(f, "integer is negative zero (i-0e)"),
            DecodeErrorKind::IntegerOverflow => write!(f, "integer does not fit in 64 bits"),
            DecodeErrorKind::StringTooLong { length, max } => {
                write!(
                    f,
                    "string of {length} bytes exceeds the limit of {max} bytes"
                )
            }
            DecodeErrorKind::NonStringKey => write!(f, "dictionary key is not a byte string"),
            DecodeErrorKind::UnsortedKey => write!(f, "dictionary keys are not in sorted order"),
            DecodeErrorKind::DuplicateKey => write!(f, "dictionary has a duplicate key"),
            DecodeErrorKind::TrailingData { count } => {
                write!(f, "{count} bytes of trailing data after the value")
            }
            DecodeErrorKind::TooDeep { max } => write!(f, "nesting deeper than {max} levels"),
            DecodeErrorKind::TooManyItems { max } => write!(f, "more than {max} values"),
            DecodeErrorKind::InputTooLarge { length, max } => {
                write!(
                    f,
                    "input of {length} bytes exceeds the limit of {max} bytes"
                )
            }
            DecodeErrorKind::Empty => write!(f, "input is empty"),
        }
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// A decode failure: what, and at which byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bencode at byte {offset}: {kind}")]
pub struct DecodeError {
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

/// Decodes exactly one value spanning the whole input, in strict mode with default limits.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, &DecodeOptions::default())
}

/// Decodes one value that must span the whole input; lenient mode also allows trailing whitespace and NUL bytes.
pub fn decode_with<'a>(input: &'a [u8], options: &DecodeOptions) -> Result<Value<'a>, DecodeError> {
    let mut reader = Reader::new(input, options)?;
    let value = reader.value()?;
    reader.finish()?;
    Ok(value)
}

/// Decodes one value from the front of `input` and returns it with the bytes that follow it.
pub fn decode_prefix<'a>(
    input: &'a [u8],
    options: &DecodeOptions,
) -> Result<(Value<'a>, &'a [u8]), DecodeError> {
    let mut reader = Reader::new(input, options)?;
    let value = reader.value()?;
    Ok((value, &input[reader.position()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(input: &[u8]) -> Result<Value<'_>, DecodeError> {
        decode(input)
    }

    fn lenient(input: &[u8]) -> Result<Value<'_>, DecodeError> {
        decode_with(input, &DecodeOptions::lenient())
    }

    fn kind_of(input: &[u8]) -> DecodeErrorKind {
        strict(input).unwrap_err().kind
    }

    #[test]
    fn decodes_integers() {
        assert_eq!(strict(b"i0e").unwrap().as_int(), Some(0));
        assert_eq!(strict(b"i4e").unwrap().as_int(), Some(4));
        assert_eq!(strict(b"i-3e").unwrap().as_int(), Some(-3));
        assert_eq!(
            strict(b"i9223372036854775807e").unwrap().as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            strict(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(
            strict(b"i12345678901e").unwrap().as_int(),
            Some(12_345_678_901)
        );
    }

    /// The rejections of BitTornado's `test_bencode.py` / `test_bdecode`, and a few more.
    #[test]
    fn rejects_bittornado_vectors() {
        assert_eq!(kind_of(b"i-0e"), DecodeErrorKind::NegativeZero);
        assert_eq!(kind_of(b"i03e"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind_of(b"i-03e"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind_of(b"02:xy"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind_of(b"d1:b0:1:a0:e"), DecodeErrorKind::UnsortedKey);
        assert_eq!(kind_of(b"d1:a0:1:a0:e"), DecodeErrorKind::DuplicateKey);
        assert_eq!(kind_of(b"di1e0:e"), DecodeErrorKind::NonStringKey);
        assert_eq!(kind_of(b"dl1:ae0:e"), DecodeErrorKind::NonStringKey);
        assert_eq!(kind_of(b"ie"), DecodeErrorKind::EmptyInteger);
        assert_eq!(kind_of(b"i-e"), DecodeErrorKind::EmptyInteger);
        assert!(matches!(
            kind_of(b"9999:x"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"i1"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"l"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"d1:a"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"1:"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"3"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert_eq!(kind_of(b""), DecodeErrorKind::Empty);
        assert_eq!(
            kind_of(b"i1ei2e"),
            DecodeErrorKind::TrailingData { count: 3 }
        );
        assert_eq!(kind_of(b"0:0:"), DecodeErrorKind::TrailingData { count: 2 });
        assert_eq!(kind_of(b"le0:"), DecodeErrorKind::TrailingData { count: 2 });
        assert!(matches!(
            kind_of(b"x"),
            DecodeErrorKind::UnexpectedByte { found: b'x', .. }
        ));
        assert!(matches!(
            kind_of(b"i1.5e"),
            DecodeErrorKind::UnexpectedByte { found: b'.', .. }
        ));
        assert!(matches!(
            kind_of(b"i 1e"),
            DecodeErrorKind::UnexpectedByte { .. }
        ));
        assert!(matches!(
            kind_of(b"-1:x"),
            DecodeErrorKind::UnexpectedByte { .. }
        ));
        assert_eq!(
            kind_of(b"i9223372036854775808e"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            kind_of(b"i-9223372036854775809e"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            kind_of(b"i99999999999999999999999e"),
            DecodeErrorKind::IntegerOverflow
        );
    }

    #[test]
    fn errors_carry_offsets() {
        let err = strict(b"d3:abci1e3:abbi2ee").unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::UnsortedKey);
        assert_eq!(err.offset, 9);
        assert_eq!(
            err.to_string(),
            "invalid bencode at byte 9: dictionary keys are not in sorted order"
        );
        let err = strict(b"li1ei03ee").unwrap_err();
        assert_eq!((err.offset, err.kind), (5, DecodeErrorKind::LeadingZero));
        let err = strict(b"l4:spam").unwrap_err();
        assert_eq!(err.offset, 7);
    }

    #[test]
    fn decodes_nested_values_with_spans() {
        let input = b"d4:infod6:lengthi5e4:name1:ae3:keyl1:xi2eee";
        let v = strict(input).unwrap();
        let info = v.get(b"info").unwrap();
        assert_eq!(info.raw(), b"d6:lengthi5e4:name1:ae");
        assert_eq!(info.offset(), 7);
        assert_eq!(info.get(b"length").unwrap().as_int(), Some(5));
        assert_eq!(info.get(b"name").unwrap().as_str(), Some("a"));
        let list = v.get(b"key").unwrap().as_list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].as_bytes(), Some(&b"x"[..]));
        assert_eq!(list[1].raw(), b"i2e");
        assert!(v.get(b"missing").is_none());
        assert!(list[0].get(b"x").is_none());
        assert_eq!(strict(b"0:").unwrap().as_bytes(), Some(&b""[..]));
        assert_eq!(strict(b"le").unwrap().as_list().unwrap().len(), 0);
        assert_eq!(strict(b"de").unwrap().as_dict().unwrap().len(), 0);
    }

    #[test]
    fn lenient_accepts_unsorted_keys_and_trailing_data_but_keeps_raw_bytes() {
        let input = b"d4:infod4:name1:a6:lengthi5ee8:announce0:e\r\n\0";
        assert_eq!(kind_of(input), DecodeErrorKind::UnsortedKey);
        let v = lenient(input).unwrap();
        assert_eq!(v.get(b"info").unwrap().raw(), b"d4:name1:a6:lengthi5ee");
        assert_eq!(
            v.get(b"info").unwrap().get(b"length").unwrap().as_int(),
            Some(5)
        );
        // Still no duplicates, even far apart in an unsorted dictionary.
        assert_eq!(
            lenient(b"d1:b0:1:a0:1:b0:e").unwrap_err().kind,
            DecodeErrorKind::DuplicateKey
        );
        assert_eq!(
            lenient(b"d1:b0:1:c0:1:b0:e").unwrap_err().kind,
            DecodeErrorKind::DuplicateKey
        );
        // Trailing bytes other than whitespace are still refused: they mean a damaged file.
        assert_eq!(
            lenient(b"dei1e").unwrap_err().kind,
            DecodeErrorKind::TrailingData { count: 3 }
        );
        // Malformed integers are never tolerated.
        assert_eq!(
            lenient(b"i03e").unwrap_err().kind,
            DecodeErrorKind::LeadingZero
        );
    }

    #[test]
    fn decode_prefix_returns_the_rest() {
        let (v, rest) = decode_prefix(b"i1e4:spam", &DecodeOptions::default()).unwrap();
        assert_eq!(v.as_int(), Some(1));
        assert_eq!(rest, b"4:spam");
    }

    #[test]
    fn limits_are_enforced() {
        let deep = b"llllllllllee".to_vec();
        let opts = DecodeOptions {
            mode: Mode::Strict,
            limits: Limits {
                max_depth: 3,
                ..Limits::default()
            },
        };
        let err = decode_with(&deep[..], &opts).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TooDeep { max: 3 });
        assert_eq!(err.offset, 3);
        assert!(decode_with(b"llleee", &opts).is_ok());

        let opts = DecodeOptions {
            mode: Mode::Strict,
            limits: Limits {
                max_items: 3,
                ..Limits::default()
            },
        };
        assert!(decode_with(b"li1ei2ee", &opts).is_ok());
        assert_eq!(
            decode_with(b"li1ei2ei3ee", &opts).unwrap_err().kind,
            DecodeErrorKind::TooManyItems { max: 3 }
        );

        let opts = DecodeOptions {
            mode: Mode::Strict,
            limits: Limits {
                max_string_bytes: 4,
                ..Limits::default()
            },
        };
        assert!(decode_with(b"4:spam", &opts).is_ok());
        assert_eq!(
            decode_with(b"5:spams", &opts).unwrap_err().kind,
            DecodeErrorKind::StringTooLong { length: 5, max: 4 }
        );
        // A length that does not even fit in 64 bits saturates and is refused, not wrapped.
        assert!(matches!(
            decode_with(b"99999999999999999999999:x", &opts)
                .unwrap_err()
                .kind,
            DecodeErrorKind::StringTooLong { .. }
        ));

        let opts = DecodeOptions {
            mode: Mode::Strict,
            limits: Limits {
                max_input_bytes: 3,
                ..Limits::default()
            },
        };
        assert_eq!(
            decode_with(b"i10e", &opts).unwrap_err().kind,
            DecodeErrorKind::InputTooLarge { length: 4, max: 3 }
        );
    }

    #[test]
    fn deep_nesting_under_default_limits_does_not_overflow_the_stack() {
        let mut input = vec![b'l'; 100_000];
        input.extend(std::iter::repeat_n(b'e', 100_000));
        let err = decode(&input).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TooDeep { max: 64 });
    }

    #[test]
    fn encodes_canonically() {
        let mut d = Owned::dict();
        d.insert("zeta", 1i64);
        d.insert("alpha", Owned::List(vec!["x".into(), Owned::Int(-7)]));
        d.insert("mid", Owned::Raw(b"d1:ai1ee".to_vec()));
        assert_eq!(
            d.encode(),
            b"d5:alphal1:xi-7ee3:midd1:ai1ee4:zetai1ee".to_vec()
        );
        let mut out = Vec::new();
        write_int(&mut out, i64::MIN);
        write_bytes(&mut out, b"");
        assert_eq!(out, b"i-9223372036854775808e0:".to_vec());
    }

    #[test]
    fn canonical_input_round_trips_through_owned() {
        let input: &[u8] = b"d3:bar4:spam3:fooi42e4:listli1ei2eld1:x0:eeee";
        let owned = strict(input).unwrap().to_owned_value();
        assert_eq!(owned.encode(), input.to_vec());
        assert_eq!(owned.get(b"foo"), Some(&Owned::Int(42)));
    }

    /// Cross-check against serde_bencode on values it handles correctly (canonical input).
    #[test]
    fn agrees_with_serde_bencode_on_canonical_values() {
        use serde_bencode::value::Value as SValue;
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let owned = random_owned(&mut rng, 0);
            let ours = owned.encode();
            let theirs: SValue =
                serde_bencode::from_bytes(&ours).expect("serde_bencode reads our output");
            assert_eq!(serde_bencode::to_bytes(&theirs).unwrap(), ours);
            assert_eq!(decode(&ours).unwrap().to_owned_value(), owned);
        }
    }

    fn random_owned(rng: &mut fastrand::Rng, depth: usize) -> Owned {
        let choice = if depth > 3 {
            rng.u8(0..2)
        } else {
            rng.u8(0..4)
        };
        match choice {
            0 => Owned::Int(rng.i64(..)),
            1 => Owned::Bytes((0..rng.usize(0..20)).map(|_| rng.u8(..)).collect()),
            2 => Owned::List(
                (0..rng.usize(0..5))
                    .map(|_| random_owned(rng, depth + 1))
                    .collect(),
            ),
            _ => Owned::Dict(
                (0..rng.usize(0..5))
                    .map(|_| {
                        let key: Vec<u8> =
                            (0..rng.usize(0..6)).map(|_| rng.u8(b'a'..=b'z')).collect();
                        (key, random_owned(rng, depth + 1))
                    })
                    .collect(),
            ),
        }
    }
}
