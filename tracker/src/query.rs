//! Query-string splitting and percent-decoding (pure, allocation-light, fuzzable).

/// Most parameters read from one query string; more is an error (bounds work per request).
pub const MAX_PARAMS: usize = 64;

/// Percent-decodes `s`, turning `+` into a space as Python's `unquote_plus` does. Malformed escapes
/// are kept literally (Python's behaviour). Returns `None` only if the result would exceed `max`.
pub fn percent_decode(s: &[u8], max: usize) -> Option<Vec<u8>> {
    // A decoded value is never longer than its encoding, so this buffer only limits by `max`.
    let mut out = vec![0u8; s.len().min(max)];
    let n = percent_decode_into(s, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// Appends `bytes` percent-encoded for a query string: RFC 3986's unreserved bytes as they are, every other byte
/// as `%XX`.
pub fn percent_encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// [`percent_encode_bytes`] onto a `String`.
pub fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    let mut encoded = Vec::with_capacity(bytes.len() * 3);
    percent_encode_bytes(&mut encoded, bytes);
    out.push_str(std::str::from_utf8(&encoded).expect("percent-encoding writes ASCII only"));
}

/// [`percent_decode`] into a fixed buffer (no allocation): the decoded length, or `None` if the
/// result does not fit in `out`.
///
/// One pass, a byte at a time, escapes decoded through a table. (Finding plain runs with `memchr2` cost a call per
/// escape: an escaped 20-byte `info_hash` or `peer_id` is 20 escapes in a row, and the calls were ~2k
/// instructions of a ~16k-instruction announce, callgrind.)
pub fn percent_decode_into(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        let decoded = match s[i] {
            b'+' => {
                i += 1;
                b' '
            }
            // A `%`: an escape only if two hex digits follow (and, as before, a byte after them
            // or not: Python keeps a malformed escape literally).
            b'%' => match (s.get(i + 1), s.get(i + 2)) {
                (Some(&h), Some(&l))
                    if HEX[h as usize] != NOT_HEX && HEX[l as usize] != NOT_HEX =>
                {
                    i += 3;
                    HEX[h as usize] << 4 | HEX[l as usize]
                }
                _ => {
                    i += 1;
                    b'%'
                }
            },
            b => {
                i += 1;
                b
            }
        };
        *out.get_mut(n)? = decoded;
        n += 1;
    }
    Some(n)
}

/// Marks a byte that is not a hex digit in [`HEX`].
const NOT_HEX: u8 = 0xff;

/// The value of each hex digit byte, [`NOT_HEX`] for every other byte.
const HEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// A `name=value` pair, both still percent-encoded.
pub type RawPair<'a> = (&'a [u8], &'a [u8]);

/// One `name=value` piece of a query split at its first `=` (no `=`: an empty value).
pub fn split_pair(piece: &[u8]) -> RawPair<'_> {
    match memchr::memchr(b'=', piece) {
        Some(i) => (&piece[..i], &piece[i + 1..]),
        None => (piece, &[][..]),
    }
}

/// The raw (still encoded) `name=value` pairs of a query, in order. A piece without `=` has an
/// empty value. Fails when there are more than [`MAX_PARAMS`] pieces. An iterator, so the caller
/// collects the pairs in the form it keeps (one allocation per query, not two).
pub fn split_query(
    query: &[u8],
) -> Result<impl ExactSizeIterator<Item = RawPair<'_>> + '_, &'static str> {
    let pieces = || query.split(|&b| b == b'&').filter(|p| !p.is_empty());
    let count = pieces().count();
    if count > MAX_PARAMS {
        return Err("too many parameters");
    }
    let pairs = pieces().map(split_pair);
    Ok(Counted {
        inner: pairs,
        left: count,
    })
}

/// An iterator whose length is known in advance (for [`split_query`]).
struct Counted<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let x = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(x)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_unquote_plus() {
        assert_eq!(percent_decode(b"a%20b+c", 100).unwrap(), b"a b c");
        assert_eq!(percent_decode(b"%zz%4", 100).unwrap(), b"%zz%4");
        assert_eq!(percent_decode(b"%ff%00", 100).unwrap(), vec![0xff, 0]);
        assert_eq!(percent_decode(b"abc", 2), None);
        assert_eq!(percent_decode(b"%41", 1).unwrap(), b"A");
    }

    #[test]
    fn decodes_into_a_fixed_buffer_like_the_vec_version() {
        for s in [&b"a%20b+c"[..], b"%zz%4", b"%ff%00", b"%41%42%43"] {
            let mut buf = [0u8; 16];
            let n = percent_decode_into(s, &mut buf).unwrap();
            assert_eq!(&buf[..n], percent_decode(s, 100).unwrap().as_slice());
        }
        assert_eq!(percent_decode_into(b"abc", &mut [0u8; 2]), None);
    }

    #[test]
    fn splits() {
        let q: Vec<RawPair<'_>> = split_query(b"a=1&&b=&c").unwrap().collect();
        assert_eq!(q, vec![(&b"a"[..], &b"1"[..]), (b"b", b""), (b"c", b"")]);
        let many = "x=1&".repeat(MAX_PARAMS + 1);
        assert!(split_query(many.as_bytes()).is_err());
    }
}
