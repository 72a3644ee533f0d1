//! The generic decoded value: a tree whose leaves borrow from the input, each node knowing its exact raw bytes.

use super::Owned;

/// The shape of a decoded value. Byte strings and keys borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Entries in input order (sorted in strict mode; possibly not in lenient mode). Keys are unique.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

/// A decoded value together with the exact bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    raw: &'a [u8],
    offset: usize,
    kind: Kind<'a>,
}

impl<'a> Value<'a> {
    pub(super) fn new(raw: &'a [u8], offset: usize, kind: Kind<'a>) -> Self {
        Value { raw, offset, kind }
    }

    /// The exact bytes of this value in the input. For a torrent's `info` dictionary, SHA-1 of this is the info-hash.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Byte offset of this value in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if it is a byte string and valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match &self.kind {
            Kind::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    /// Dictionary lookup; `None` if this is not a dictionary or the key is absent.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Int(_) => "an integer",
            Kind::Bytes(_) => "a string",
            Kind::List(_) => "a list",
            Kind::Dict(_) => "a dictionary",
        }
    }

    /// An owned, editable copy. Dictionaries become sorted maps (as every encoder writes them).
    pub fn to_owned_value(&self) -> Owned {
        match &self.kind {
            Kind::Int(i) => Owned::Int(*i),
            Kind::Bytes(b) => Owned::Bytes(b.to_vec()),
            Kind::List(items) => Owned::List(items.iter().map(Value::to_owned_value).collect()),
            Kind::Dict(entries) => Owned::Dict(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_owned_value()))
                    .collect(),
            ),
        }
    }
}
