//! The validating pull parser every decode goes through.
//!
//! [`Reader`] walks the input once, front to back, checking every rule of the chosen [`Mode`] and every [`Limits`]
//! bound as it goes. Callers pull what they expect (`read_int`, `read_bytes`, `begin_list`, `begin_dict` + keys) and
//! can capture any value's raw bytes with [`Reader::skip`]. The generic [`Value`] tree ([`Reader::value`]) is built
//! on it, and so is the typed, tree-free torrent parser in `torrent.rs`: one set of rules, no second validator.

use std::collections::HashSet;

use super::{DecodeError, DecodeErrorKind, DecodeOptions, Kind, Mode, Value};

/// What the next value is, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Int,
    Bytes,
    List,
    Dict,
}

impl ValueType {
    /// "an integer", "a string", ...: for error messages.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int => "an integer",
            ValueType::Bytes => "a string",
            ValueType::List => "a list",
            ValueType::Dict => "a dictionary",
        }
    }
}

/// A validating, zero-copy pull parser over one input.
pub struct Reader<'a, 'o> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    /// Containers currently open.
    depth: usize,
    options: &'o DecodeOptions,
}

/// Per-dictionary state for key order and uniqueness checks. Get one from [`Reader::begin_dict`].
pub struct DictReader<'a> {
    /// Offset just after the dictionary's `d`.
    body_start: usize,
    last_key: Option<&'a [u8]>,
    /// Every key so far, kept only once a lenient dictionary turned out to be unsorted (sorted dictionaries need only
    /// the last key to detect duplicates).
    seen: Option<HashSet<&'a [u8]>>,
}

impl<'a, 'o> Reader<'a, 'o> {
    /// A reader over `input`. Fails at once on an empty input or one over [`super::Limits::max_input_bytes`].
    pub fn new(input: &'a [u8], options: &'o DecodeOptions) -> Result<Self, DecodeError> {
        if input.len() > options.limits.max_input_bytes {
            return Err(DecodeError {
                offset: 0,
                kind: DecodeErrorKind::InputTooLarge {
                    length: input.len(),
                    max: options.limits.max_input_bytes,
                },
            });
        }
        if input.is_empty() {
            return Err(DecodeError {
                offset: 0,
                kind: DecodeErrorKind::Empty,
            });
        }
        Ok(Reader {
            input,
            pos: 0,
            items: 0,
            depth: 0,
            options,
        })
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The whole input.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// An error at the current position.
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.pos,
            kind,
        }
    }

    fn error_at(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    fn peek_byte(&self, expected: &'static str) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error(DecodeErrorKind::UnexpectedEnd { expected }))
    }

    fn count_item(&mut self) -> Result<(), DecodeError> {
        self.items += 1;
        if self.items > self.options.limits.max_items {
            return Err(self.error(DecodeErrorKind::TooManyItems {
                max: self.options.limits.max_items,
            }));
        }
        Ok(())
    }

    /// The type of the next value, without consuming it.
    pub fn peek_type(&self) -> Result<ValueType, DecodeError> {
        match self.peek_byte("a value")? {
            b'i' => Ok(ValueType::Int),
            b'0'..=b'9' => Ok(ValueType::Bytes),
            b'l' => Ok(ValueType::List),
            b'd' => Ok(ValueType::Dict),
            found => Err(self.error(DecodeErrorKind::UnexpectedByte {
                found,
                expected: "'i', 'l', 'd' or a digit",
            })),
        }
    }

    /// Reads `i<digits>e` (canonical: no leading zero, no `-0`, fits in 64 bits).
    pub fn read_int(&mut self) -> Result<i64, DecodeError> {
        match self.peek_byte("an integer")? {
            b'i' => {}
            found => {
                return Err(self.error(DecodeErrorKind::UnexpectedByte {
                    found,
                    expected: "'i'",
                }))
            }
        }
        self.count_item()?;
        self.pos += 1;
        let negative = self.peek_byte("an integer")? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut magnitude: u64 = 0;
        loop {
            match self.peek_byte("a digit or 'e'")? {
                b @ b'0'..=b'9' => {
                    if self.pos > digits_start && self.input[digits_start] == b'0' {
                        return Err(self.error_at(digits_start, DecodeErrorKind::LeadingZero));
                    }
                    magnitude = magnitude
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(u64::from(b - b'0')))
                        .ok_or_else(|| {
                            self.error_at(digits_start, DecodeErrorKind::IntegerOverflow)
                        })?;
                    self.pos += 1;
                }
                b'e' => break,
                found => {
                    return Err(self.error(DecodeErrorKind::UnexpectedByte {
                        found,
                        expected: "a digit or 'e'",
                    }))
                }
            }
        }
        if self.pos == digits_start {
            return Err(self.error(DecodeErrorKind::EmptyInteger));
        }
        self.pos += 1; // the 'e'
        if negative {
            if magnitude == 0 {
                return Err(self.error_at(digits_start - 1, DecodeErrorKind::NegativeZero));
            }
            // i64::MIN has a magnitude one larger than i64::MAX.
            if magnitude > i64::MAX as u64 + 1 {
                return Err(self.error_at(digits_start, DecodeErrorKind::IntegerOverflow));
            }
            Ok((magnitude as i128).wrapping_neg() as i64)
        } else {
            i64::try_from(magnitude)
                .map_err(|_| self.error_at(digits_start, DecodeErrorKind::IntegerOverflow))
        }
    }

    /// Reads `<length>:<bytes>` (no leading zero in the length) and returns the bytes, borrowed from the input.
    pub fn read_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        match self.peek_byte("a string")? {
            b'0'..=b'9' => {}
            found => {
                return Err(self.error(DecodeErrorKind::UnexpectedByte {
                    found,
                    expected: "a digit",
                }))
            }
        }
        self.count_item()?;
        let mut length: u64 = 0;
        loop {
            match self.peek_byte("a digit or ':'")? {
                b @ b'0'..=b'9' => {
                    if self.pos > start && self.input[start] == b'0' {
                        return Err(self.error_at(start, DecodeErrorKind::LeadingZero));
                    }
                    length = length
                        .saturating_mul(10)
                        .saturating_add(u64::from(b - b'0'));
                    self.pos += 1;
                }
                b':' => break,
                found => {
                    return Err(self.error(DecodeErrorKind::UnexpectedByte {
                        found,
                        expected: "a digit or ':'",
                    }))
                }
            }
        }
        self.pos += 1; // the ':'
        let max = self.options.limits.max_string_bytes;
        let length_usize = usize::try_from(length)
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| self.error_at(start, DecodeErrorKind::StringTooLong { length, max }))?;
        let end = self
            .pos
            .checked_add(length_usize)
            .filter(|&end| end <= self.input.len())
            .ok_or_else(|| {
                self.error_at(
                    self.input.len(),
                    DecodeErrorKind::UnexpectedEnd {
                        expected: "the rest of a string",
                    },
                )
            })?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn open_container(&mut self, marker: u8, expected: &'static str) -> Result<(), DecodeError> {
        let found = self.peek_byte(expected)?;
        if found != marker {
            return Err(self.error(DecodeErrorKind::UnexpectedByte { found, expected }));
        }
        if self.depth + 1 > self.options.limits.max_depth {
            return Err(self.error(DecodeErrorKind::TooDeep {
                max: self.options.limits.max_depth,
            }));
        }
        self.count_item()?;
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// Consumes a list's `l`. Then call [`Reader::next_in_list`] before each item.
    pub fn begin_list(&mut self) -> Result<(), DecodeError> {
        self.open_container(b'l', "'l'")
    }

    /// True if another list item follows; false (after consuming the closing `e`) at the end of the list.
    pub fn next_in_list(&mut self) -> Result<bool, DecodeError> {
        if self.peek_byte("a list item or 'e'")? == b'e' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// Consumes a dictionary's `d`. Then call [`DictReader::next_key`] and read each value.
    pub fn begin_dict(&mut self) -> Result<DictReader<'a>, DecodeError> {
        self.open_container(b'd', "'d'")?;
        Ok(DictReader {
            body_start: self.pos,
            last_key: None,
            seen: None,
        })
    }

    /// Checks what follows the top-level value: nothing (strict mode), or only ASCII whitespace and NUL bytes
    /// (lenient mode).
    pub fn finish(&self) -> Result<(), DecodeError> {
        let rest = &self.input[self.pos..];
        let tolerated = self.options.mode == Mode::Lenient
            && rest.iter().all(|&b| b == 0 || b.is_ascii_whitespace());
        if rest.is_empty() || tolerated {
            Ok(())
        } else {
            Err(self.error(DecodeErrorKind::TrailingData { count: rest.len() }))
        }
    }

    /// Validates the next value without building anything, and returns its raw bytes.
    pub fn skip(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        match self.peek_type()? {
            ValueType::Int => {
                self.read_int()?;
            }
            ValueType::Bytes => {
                self.read_bytes()?;
            }
            ValueType::List => {
                self.begin_list()?;
                while self.next_in_list()? {
                    self.skip()?;
                }
            }
            ValueType::Dict => {
                let mut dict = self.begin_dict()?;
                while dict.next_key(self)?.is_some() {
                    self.skip()?;
                }
            }
        }
        Ok(&self.input[start..self.pos])
    }

    /// Decodes the next value into a [`Value`] tree.
    pub fn value(&mut self) -> Result<Value<'a>, DecodeError> {
        let start = self.pos;
        let kind = match self.peek_type()? {
            ValueType::Int => Kind::Int(self.read_int()?),
            ValueType::Bytes => Kind::Bytes(self.read_bytes()?),
            ValueType::List => {
                self.begin_list()?;
                let mut items = Vec::new();
                while self.next_in_list()? {
                    items.push(self.value()?);
                }
                Kind::List(items)
            }
            ValueType::Dict => {
                let mut dict = self.begin_dict()?;
                let mut entries = Vec::new();
                while let Some(key) = dict.next_key(self)? {
                    entries.push((key, self.value()?));
                }
                Kind::Dict(entries)
            }
        };
        Ok(Value::new(&self.input[start..self.pos], start, kind))
    }
}

impl<'a> DictReader<'a> {
    /// The next key, checked for order (strict mode) and uniqueness (always); `None` after consuming the closing `e`.
    /// After a key, the caller must read or skip exactly one value.
    pub fn next_key(
        &mut self,
        reader: &mut Reader<'a, '_>,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        let key_start = reader.pos;
        match reader.peek_byte("a dictionary key or 'e'")? {
            b'e' => {
                reader.pos += 1;
                reader.depth -= 1;
                return Ok(None);
            }
            b'0'..=b'9' => {}
            _ => return Err(reader.error(DecodeErrorKind::NonStringKey)),
        }
        let key = reader.read_bytes()?;
        if let Some(seen) = &mut self.seen {
            if !seen.insert(key) {
                return Err(reader.error_at(key_start, DecodeErrorKind::DuplicateKey));
            }
        } else if let Some(previous) = self.last_key {
            if key == previous {
                return Err(reader.error_at(key_start, DecodeErrorKind::DuplicateKey));
            }
            if key < previous {
                if reader.options.mode == Mode::Strict {
                    return Err(reader.error_at(key_start, DecodeErrorKind::UnsortedKey));
                }
                // From here on a duplicate may be any earlier key: collect them all once.
                let mut seen = earlier_keys(reader.input, self.body_start, key_start);
                if !seen.insert(key) {
                    return Err(reader.error_at(key_start, DecodeErrorKind::DuplicateKey));
                }
                self.seen = Some(seen);
            }
        }
        self.last_key = Some(key);
        Ok(Some(key))
    }
}

/// The keys of a dictionary body `input[from..to]` that the reader has already validated. Walks the validated bytes
/// without re-checking them; on anything unexpected it stops (it cannot happen on validated input, and stopping
/// early only weakens a duplicate check that strict readers do not need).
fn earlier_keys(input: &[u8], from: usize, to: usize) -> HashSet<&[u8]> {
    let mut keys = HashSet::new();
    let mut pos = from;
    while pos < to {
        let Some((key, after_key)) = trusted_bytes(input, pos) else {
            break;
        };
        keys.insert(key);
        let Some(after_value) = trusted_end(input, after_key) else {
            break;
        };
        pos = after_value;
    }
    keys
}

/// `<len>:<bytes>` at `pos` of already-validated input: the bytes and the offset after them.
fn trusted_bytes(input: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let colon = pos + input.get(pos..)?.iter().position(|&b| b == b':')?;
    let length: usize = std::str::from_utf8(&input[pos..colon]).ok()?.parse().ok()?;
    let end = colon.checked_add(1)?.checked_add(length)?;
    Some((input.get(colon + 1..end)?, end))
}

/// The offset just after the value at `pos` of already-validated input.
fn trusted_end(input: &[u8], pos: usize) -> Option<usize> {
    match *input.get(pos)? {
        b'i' => Some(pos + input.get(pos..)?.iter().position(|&b| b == b'e')? + 1),
        b'0'..=b'9' => trusted_bytes(input, pos).map(|(_, end)| end),
        b'l' | b'd' => {
            let mut p = pos + 1;
            while *input.get(p)? != b'e' {
                p = trusted_end(input, p)?;
            }
            Some(p + 1)
        }
        _ => None,
    }
}
