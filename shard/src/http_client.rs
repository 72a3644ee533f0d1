//! A small, bounded HTTP/1.0 GET client for a service's own outgoing requests (the tracker's
//! multitracker polls). It knows no BitTorrent.
//!
//! Why not a library: the tracker must not depend on the engine's client, and what it needs is
//! one `GET` with `Connection: close`, a size cap and a deadline. `http://` only; a `https://` URL
//! is refused with [`HttpClientError::Unsupported`] so the caller can say so in its log.
//!
//! Bounds: the whole exchange (DNS, connect, write, read) runs under one deadline; the answer
//! (head and body) is read up to `max_bytes` and refused beyond; at most 64 headers. Name
//! resolution runs on glommio's blocking pool, never on the executor.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Most response headers parsed.
const MAX_HEADERS: usize = 64;

/// Why a GET failed; each a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("bad URL {url:?}: {why}")]
    BadUrl { url: String, why: &'static str },
    #[error("unsupported URL scheme in {0:?} (only http:// is supported)")]
    Unsupported(String),
    #[error("resolving {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed HTTP answer: {0}")]
    Malformed(&'static str),
}

/// A parsed `http://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl HttpUrl {
    /// Parses `url`. Only `http://` (case-insensitive scheme); userinfo and fragments are refused.
    pub fn parse(url: &str) -> Result<HttpUrl, HttpClientError> {
        let bad = |why| HttpClientError::BadUrl {
            url: url.to_string(),
            why,
        };
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("no scheme"));
        };
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(HttpClientError::Unsupported(url.to_string()));
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') || target.contains('#') {
            return Err(bad("userinfo and fragments are not supported"));
        }
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("spaces or control characters in the path"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(bad("junk after ]")),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
                None => (authority, 80),
            }
        };
        if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == b'/' || b == 0x7f) {
            return Err(bad("bad host"));
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            target,
        })
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// An answer: status code and body (the body is everything after the head, cut to
/// `Content-Length` when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The request bytes for `url` (HTTP/1.0, `Connection: close`, no compression asked).
pub fn request_bytes(url: &HttpUrl, user_agent: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n",
        url.target,
        url.host_header()
    )
    .into_bytes()
}

/// Parses a complete answer (the server closed the connection). Pure.
pub fn parse_answer(bytes: &[u8]) -> Result<HttpAnswer, HttpClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HttpClientError::Malformed("truncated head")),
        Err(_) => return Err(HttpClientError::Malformed("bad status line or headers")),
    };
    let status = resp.code.ok_or(HttpClientError::Malformed("no status"))?;
    let mut body = &bytes[head_len..];
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // We sent HTTP/1.0: a server must not answer chunked.
            return Err(HttpClientError::Malformed("chunked answer to HTTP/1.0"));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or(HttpClientError::Malformed("bad Content-Length"))?;
            if n > body.len() {
                return Err(HttpClientError::Malformed(
                    "body shorter than Content-Length",
                ));
            }
            body = &body[..n];
        }
    }
    Ok(HttpAnswer {
        status,
        body: body.to_vec(),
    })
}

/// Resolves `host:port` on glommio's blocking pool (the first address).
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, HttpClientError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let h = host.to_string();
    let r = glommio::executor()
        .spawn_blocking(move || (h.as_str(), port).to_socket_addrs().map(|mut a| a.next()))
        .await;
    match r {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(HttpClientError::NoAddress {
            host: host.to_string(),
        }),
        Err(source) => Err(HttpClientError::Resolve {
            host: host.to_string(),
            source,
        }),
    }
}

/// GETs `url` to `addr` (already resolved), reading at most `max_bytes`, all within `timeout`.
pub async fn get_addr(
    addr: SocketAddr,
    url: &HttpUrl,
    user_agent: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<HttpAnswer, HttpClientError> {
    let req = request_bytes(url, user_agent);
    let exchange = async {
        let mut s = glommio::net::TcpStream::connect_timeout(addr, timeout).await?;
        s.set_write_timeout(Some(timeout))?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(&req).await?;
        let mut buf = Vec::with_capacity(4096.min(max_bytes + 1));
        let mut chunk = [0u8; 8192];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            if buf.len() + n > max_bytes {
                return Ok(Err(HttpClientError::TooLarge(max_bytes)));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(Ok(buf))
    };
    let bytes = glommio::timer::timeout(timeout, async {
        exchange.await.map_err(glommio::GlommioError::from)
    })
    .await;
    match bytes {
        Ok(Ok(b)) => parse_answer(&b),
        Ok(Err(e)) => Err(e),
        Err(glommio::GlommioError::TimedOut(_)) => Err(HttpClientError::Timeout(timeout)),
        Err(glommio::GlommioError::IoError(e)) => Err(HttpClientError::Io(e)),
        Err(e) => Err(HttpClientError::Io(std::io::Error::other(e.to_string()))),
    }
}

/// Resolves and GETs `url` within `timeout` (resolution included), reading at most `max_bytes`.
pub async fn get(
    url: &HttpUrl,
    user_agent: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<HttpAnswer, HttpClientError> {
    let (addr, left) = resolve_within(&url.host, url.port, timeout).await?;
    get_addr(addr, url, user_agent, left, max_bytes).await
}

/// [`resolve`] under a deadline: the address and the time left of `timeout` (never zero), so a
/// caller that looks at the address before connecting keeps one deadline for the whole exchange.
pub async fn resolve_within(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(SocketAddr, Duration), HttpClientError> {
    let start = std::time::Instant::now();
    let addr = glommio::timer::timeout(timeout, async {
        Ok::<_, glommio::GlommioError<()>>(resolve(host, port).await)
    })
    .await
    .map_err(|_| HttpClientError::Timeout(timeout))??;
    let left = timeout.saturating_sub(start.elapsed());
    if left.is_zero() {
        return Err(HttpClientError::Timeout(timeout));
    }
    Ok((addr, left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:6969/announce").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 6969, "/announce")
        );
        let u = HttpUrl::parse("HTTP://[::1]/a?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 80, "/a?x=1")
        );
        assert_eq!(u.host_header(), "[::1]");
        let u = HttpUrl::parse("http://tracker.example:81?x").unwrap();
        assert_eq!(u.target, "/?x");
        assert_eq!(u.host_header(), "tracker.example:81");
        assert!(matches!(
            HttpUrl::parse("https://127.0.0.1/announce"),
            Err(HttpClientError::Unsupported(_))
        ));
        assert!(matches!(
            HttpUrl::parse("udp://127.0.0.1:1/announce"),
            Err(HttpClientError::Unsupported(_))
        ));
        for bad in [
            "127.0.0.1/x",
            "http://:80/",
            "http://a:99999/",
            "http://u@h/",
            "http://h/a b",
            "http://[::1/",
        ] {
            assert!(
                matches!(HttpUrl::parse(bad), Err(HttpClientError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn request_and_answers() {
        let u = HttpUrl::parse("http://127.0.0.1:6969/announce?a=1").unwrap();
        let r = String::from_utf8(request_bytes(&u, "t")).unwrap();
        assert!(r.starts_with(
            "GET /announce?a=1 HTTP/1.0\r\nHost: 127.0.0.1:6969\r\nUser-Agent: t\r\n"
        ));
        let a = parse_answer(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"abc"[..]));
        let a = parse_answer(b"HTTP/1.1 404 Not Found\r\n\r\nzz").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (404, &b"zz"[..]));
        assert!(parse_answer(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
        assert!(parse_answer(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_answer(b"garbage").is_err());
    }
}
