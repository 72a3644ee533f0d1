//! A bounded HTTP/1.x response parser for tracker replies.
//!
//! Why our own: the engine talks to trackers over raw glommio TCP sockets, one request per connection
//! (`Connection: close`), and needs only the status, a few headers and the body. The parser is incremental: call
//! [`parse_response`] on everything received so far after each read; it answers [`Parsed::Incomplete`] until the
//! reply is whole. Every size is bounded by [`ResponseLimits`], so a hostile tracker cannot make us buffer more than
//! `max_head_bytes + max_body_bytes` (plus chunk framing, itself bounded).
//!
//! Supported: HTTP/1.0 and 1.1 status lines, `Content-Length`, `Transfer-Encoding: chunked`, and bodies delimited by
//! the connection closing. Not supported (an error, never a misread): `Content-Encoding` other than `identity`
//! (we never send `Accept-Encoding`), transfer codings other than chunked, obsolete header line folding.

use std::borrow::Cow;

/// Bounds on one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Status line and headers, including the blank line.
    pub max_head_bytes: usize,
    /// Header lines.
    pub max_headers: usize,
    /// Decoded body.
    pub max_body_bytes: usize,
}

impl Default for ResponseLimits {
    /// 8 KiB of head is what common servers accept in a request; tracker replies carry a handful of headers. The
    /// body limit matches [`super::ReplyLimits`].
    fn default() -> Self {
        ResponseLimits {
            max_head_bytes: 8 << 10,
            max_headers: 64,
            max_body_bytes: 512 << 10,
        }
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse<'a> {
    pub status: u16,
    /// The reason phrase (empty if absent or not UTF-8).
    pub reason: &'a str,
    /// The `Location` header, for redirects.
    pub location: Option<&'a str>,
    /// The body, de-chunked (borrowed unless it was chunked).
    pub body: Cow<'a, [u8]>,
}

impl HttpResponse<'_> {
    /// `Some(location)` for 301/302/303/307/308 with a `Location` header: the caller may follow it (BitTornado
    /// follows up to 10 redirects).
    pub fn redirect(&self) -> Option<&str> {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
            .then_some(self.location)
            .flatten()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// More bytes are needed.
    Incomplete,
    Complete(HttpResponse<'a>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("Problem connecting to tracker - response headers exceed {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("Problem connecting to tracker - more than {max} response headers")]
    TooManyHeaders { max: usize },
    #[error("Problem connecting to tracker - response body exceeds {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("Problem connecting to tracker - malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("Problem connecting to tracker - unsupported HTTP response: {0}")]
    Unsupported(String),
    #[error("Problem connecting to tracker - connection closed before the response was complete")]
    Truncated,
}

/// Parses the response in `buf` (everything received so far). `eof` says the peer has closed the connection, which
/// completes a body without a length, and turns anything still incomplete into [`HttpError::Truncated`].
pub fn parse_response<'a>(
    buf: &'a [u8],
    eof: bool,
    limits: &ResponseLimits,
) -> Result<Parsed<'a>, HttpError> {
    let Some((head_len, lines_end)) = find_head_end(buf, limits.max_head_bytes) else {
        if buf.len() >= limits.max_head_bytes {
            return Err(HttpError::HeadTooLarge {
                max: limits.max_head_bytes,
            });
        }
        return if eof {
            Err(HttpError::Truncated)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let head = &buf[..lines_end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or(HttpError::Malformed("no status line"))?;
    let (status, reason) = parse_status_line(status_line)?;

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut location = None;
    let mut count = 0usize;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        count += 1;
        if count > limits.max_headers {
            return Err(HttpError::TooManyHeaders {
                max: limits.max_headers,
            });
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HttpError::Malformed("obsolete header line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HttpError::Malformed("header line without ':'"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(HttpError::Malformed("invalid header name"));
        }
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value).ok_or(HttpError::Malformed("invalid Content-Length"))?;
            if content_length.is_some_and(|old| old != n) {
                return Err(HttpError::Malformed("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in value
                .split(|&b| b == b',')
                .map(trim)
                .filter(|c| !c.is_empty())
            {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else if !coding.eq_ignore_ascii_case(b"identity") {
                    return Err(HttpError::Unsupported(format!(
                        "Transfer-Encoding {}",
                        String::from_utf8_lossy(coding)
                    )));
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            if !value.is_empty() && !value.eq_ignore_ascii_case(b"identity") {
                return Err(HttpError::Unsupported(format!(
                    "Content-Encoding {}",
                    String::from_utf8_lossy(value)
                )));
            }
        } else if name.eq_ignore_ascii_case(b"location") {
            location = std::str::from_utf8(value).ok();
        }
    }

    let rest = &buf[head_len..];
    let body: Cow<'a, [u8]> = if (100..200).contains(&status) {
        return Err(HttpError::Unsupported(format!("status {status}")));
    } else if status == 204 || status == 304 {
        Cow::Borrowed(&[])
    } else if chunked {
        // RFC 9112: chunked wins over Content-Length.
        match dechunk(rest, limits.max_body_bytes)? {
            Some(body) => Cow::Owned(body),
            None if eof => return Err(HttpError::Truncated),
            None => return Ok(Parsed::Incomplete),
        }
    } else if let Some(n) = content_length {
        if n > limits.max_body_bytes {
            return Err(HttpError::BodyTooLarge {
                max: limits.max_body_bytes,
            });
        }
        if rest.len() < n {
            return if eof {
                Err(HttpError::Truncated)
            } else {
                Ok(Parsed::Incomplete)
            };
        }
        Cow::Borrowed(&rest[..n])
    } else {
        if rest.len() > limits.max_body_bytes {
            return Err(HttpError::BodyTooLarge {
                max: limits.max_body_bytes,
            });
        }
        if !eof {
            return Ok(Parsed::Incomplete);
        }
        Cow::Borrowed(rest)
    };
    Ok(Parsed::Complete(HttpResponse {
        status,
        reason,
        location,
        body,
    }))
}

/// `(offset after the blank line, offset of the blank line)`, searching only the first `max` bytes.
fn find_head_end(buf: &[u8], max: usize) -> Option<(usize, usize)> {
    let window = &buf[..buf.len().min(max)];
    let mut i = 0;
    while let Some(off) = window[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let next = &window[nl + 1..];
        if next.starts_with(b"\r\n") {
            return Some((nl + 3, nl + 1));
        }
        if next.starts_with(b"\n") {
            return Some((nl + 2, nl + 1));
        }
        i = nl + 1;
    }
    None
}

fn parse_status_line(line: &[u8]) -> Result<(u16, &str), HttpError> {
    let rest = line.strip_prefix(b"HTTP/1.").ok_or(HttpError::Malformed(
        "status line does not start with HTTP/1.x",
    ))?;
    let (&minor, rest) = rest
        .split_first()
        .ok_or(HttpError::Malformed("truncated status line"))?;
    if !minor.is_ascii_digit() {
        return Err(HttpError::Malformed("bad HTTP version"));
    }
    let rest = rest
        .strip_prefix(b" ")
        .ok_or(HttpError::Malformed("no space after the HTTP version"))?;
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return Err(HttpError::Malformed("status code is not three digits"));
    }
    let status = rest[..3]
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    let reason = match &rest[3..] {
        [] => "",
        [b' ', reason @ ..] => std::str::from_utf8(reason).unwrap_or(""),
        _ => return Err(HttpError::Malformed("status code is not three digits")),
    };
    Ok((status, reason))
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A decimal number of at most 18 digits (no sign, no overflow possible).
fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = s
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    usize::try_from(n).ok()
}

/// Longest chunk-size line (size, extensions) and trailer section we accept.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Decodes a chunked body; `Ok(None)` if more bytes are needed.
fn dechunk(mut input: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = input
            .iter()
            .take(MAX_CHUNK_LINE_BYTES)
            .position(|&b| b == b'\n')
        else {
            if input.len() >= MAX_CHUNK_LINE_BYTES {
                return Err(HttpError::Malformed("chunk size line too long"));
            }
            return Ok(None);
        };
        let line = input[..line_end]
            .strip_suffix(b"\r")
            .unwrap_or(&input[..line_end]);
        let size_text = trim(line.split(|&b| b == b';').next().unwrap_or(line));
        if size_text.is_empty()
            || size_text.len() > 8
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(HttpError::Malformed("invalid chunk size"));
        }
        let size = size_text.iter().fold(0usize, |acc, &d| {
            acc * 16 + usize::from((d as char).to_digit(16).unwrap_or(0) as u8)
        });
        input = &input[line_end + 1..];
        if size == 0 {
            // Trailers (ignored) up to an empty line.
            loop {
                let Some(end) = input
                    .iter()
                    .take(MAX_CHUNK_LINE_BYTES)
                    .position(|&b| b == b'\n')
                else {
                    if input.len() >= MAX_CHUNK_LINE_BYTES {
                        return Err(HttpError::Malformed("chunked trailer line too long"));
                    }
                    return Ok(None);
                };
                let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
                input = &input[end + 1..];
                if line.is_empty() {
                    return Ok(Some(body));
                }
            }
        }
        if body.len() + size > max_body {
            return Err(HttpError::BodyTooLarge { max: max_body });
        }
        if input.len() < size {
            return Ok(None);
        }
        body.extend_from_slice(&input[..size]);
        input = &input[size..];
        match input {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => input = rest,
            [] | [b'\r'] => return Ok(None),
            _ => {
                return Err(HttpError::Malformed(
                    "chunk data not followed by a line end",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> ResponseLimits {
        ResponseLimits::default()
    }

    fn complete(buf: &[u8], eof: bool) -> HttpResponse<'_> {
        match parse_response(buf, eof, &lim()).unwrap() {
            Parsed::Complete(r) => r,
            Parsed::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn content_length_body_and_every_prefix_is_incomplete() {
        let buf =
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let r = complete(buf, false);
        assert_eq!(
            (r.status, r.reason, &r.body[..]),
            (200, "OK", &b"hello"[..])
        );
        let whole = buf.len() - "EXTRA".len();
        for cut in 0..whole {
            assert_eq!(
                parse_response(&buf[..cut], false, &lim()),
                Ok(Parsed::Incomplete),
                "{cut}"
            );
            assert_eq!(
                parse_response(&buf[..cut], true, &lim()),
                Err(HttpError::Truncated),
                "{cut}"
            );
        }
    }

    #[test]
    fn body_until_close_and_bare_newlines() {
        let buf = b"HTTP/1.1 200\nServer: x\n\nd5:peers0:e";
        assert_eq!(parse_response(buf, false, &lim()), Ok(Parsed::Incomplete));
        let r = complete(buf, true);
        assert_eq!(
            (r.status, r.reason, &r.body[..]),
            (200, "", &b"d5:peers0:e"[..])
        );
    }

    #[test]
    fn chunked_body_every_prefix() {
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
4;ext=1\r\nd5:p\r\n7\r\neers0:e\r\n0\r\nX-Trailer: y\r\n\r\n";
        let r = complete(buf, false);
        assert_eq!(&r.body[..], b"d5:peers0:e");
        let head = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for cut in head..buf.len() {
            assert_eq!(
                parse_response(&buf[..cut], false, &lim()),
                Ok(Parsed::Incomplete),
                "{cut}"
            );
            assert_eq!(
                parse_response(&buf[..cut], true, &lim()),
                Err(HttpError::Truncated),
                "{cut}"
            );
        }
    }

    #[test]
    fn redirect_and_status_without_body() {
        let r = complete(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/a\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert_eq!(r.redirect(), Some("http://127.0.0.1/a"));
        let r = complete(b"HTTP/1.1 204 No Content\r\n\r\n", false);
        assert!(r.body.is_empty());
        assert_eq!(r.redirect(), None);
    }

    #[test]
    fn limits() {
        let tiny_head = ResponseLimits {
            max_head_bytes: 32,
            ..lim()
        };
        let long_head = [b"HTTP/1.0 200 OK\r\nX: ".as_slice(), &[b'a'; 40]].concat();
        assert_eq!(
            parse_response(&long_head, false, &tiny_head),
            Err(HttpError::HeadTooLarge { max: 32 })
        );
        // A complete head that ends beyond the limit is too large as well.
        let long_head = [long_head.as_slice(), b"\r\n\r\n"].concat();
        assert_eq!(
            parse_response(&long_head, true, &tiny_head),
            Err(HttpError::HeadTooLarge { max: 32 })
        );
        let small = ResponseLimits {
            max_head_bytes: 100,
            max_headers: 2,
            max_body_bytes: 4,
        };
        assert_eq!(
            parse_response(
                b"HTTP/1.0 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                false,
                &small
            ),
            Err(HttpError::TooManyHeaders { max: 2 })
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                &small
            ),
            Err(HttpError::BodyTooLarge { max: 4 })
        );
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\n12345", false, &small),
            Err(HttpError::BodyTooLarge { max: 4 })
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n",
                false,
                &small
            ),
            Err(HttpError::BodyTooLarge { max: 4 })
        );
        let long_chunk_line = [
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".as_slice(),
            &[b'x'; 2000],
        ]
        .concat();
        assert!(matches!(
            parse_response(&long_chunk_line, false, &lim()),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_and_unsupported() {
        let malformed: &[&[u8]] = &[
            b"HTTP/2 200 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1200 OK\r\n\r\n",
            b"HTTP/1.x 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n",
        ];
        for m in malformed {
            let e = parse_response(m, true, &lim()).unwrap_err();
            assert!(
                matches!(e, HttpError::Malformed(_)),
                "{:?}: {e:?}",
                String::from_utf8_lossy(m)
            );
        }
        let unsupported: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ];
        for u in unsupported {
            let e = parse_response(u, true, &lim()).unwrap_err();
            assert!(
                matches!(e, HttpError::Unsupported(_)),
                "{:?}: {e:?}",
                String::from_utf8_lossy(u)
            );
        }
        // A duplicate but equal Content-Length is fine.
        let r = complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx",
            false,
        );
        assert_eq!(&r.body[..], b"x");
    }
}
