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

/// [`percent_decode`] into a fixed buffer (no allocation): the decoded length, or `None` if the
/// result does not fit in `out`.
pub fn percent_decode_into(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let decoded = if b == b'%' && i + 2 < s.len() {
            match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    i += 3;
                    h << 4 | l
                }
                _ => {
                    i += 1;
                    b
                }
            }
        } else if b == b'+' {
            i += 1;
            b' '
        } else {
            i += 1;
            b
        };
        *out.get_mut(n)? = decoded;
        n += 1;
    }
    Some(n)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A `name=value` pair, both still percent-encoded.
pub type RawPair<'a> = (&'a [u8], &'a [u8]);

/// One `name=value` piece of a query split at its first `=` (no `=`: an empty value).
pub fn split_pair(piece: &[u8]) -> RawPair<'_> {
    match piece.iter().position(|&b| b == b'=') {
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
