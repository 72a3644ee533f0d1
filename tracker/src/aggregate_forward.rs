//! `--aggregate_forward <url>[,<password>]` (bttrack §1.3): forward the query string of every
//! announce that is not a tracker-to-tracker poll to another tracker, appending `&password=…`.
//! Fire and forget: the response is read and ignored. Runs as a task on the shard that received
//! the announce, bounded per shard; forwards beyond the bound are dropped (and counted).

use std::cell::Cell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::TrackerError;

/// Forwards in flight per shard.
pub const MAX_IN_FLIGHT: usize = 64;
/// Time allowed for one forward.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// Where to forward (resolved once at start, so no DNS lookup ever blocks an executor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    pub addr: SocketAddr,
    pub host: String,
    /// Path of the URL (e.g. `/announce`).
    pub path: String,
    pub password: Option<String>,
}

/// Parses and resolves `<http://host[:port]/path>[,<password>]`.
pub fn parse(spec: &str) -> Result<ForwardTarget, TrackerError> {
    let bad = |m: &str| {
        TrackerError::Config(crate::ConfigError::Bad(format!(
            "wrong format of --aggregate_forward - {m}"
        )))
    };
    let (url, password) = match spec.split_once(',') {
        Some((u, p)) => (u.trim(), Some(p.trim().to_string())),
        None => (spec.trim(), None),
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => {
            (h, p.parse::<u16>().map_err(|_| bad("bad port"))?)
        }
        _ => (hostport, 80),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| TrackerError::io(format!("resolving --aggregate_forward host {host}"), e))?
        .next()
        .ok_or_else(|| bad("host has no address"))?;
    Ok(ForwardTarget {
        addr,
        host,
        path,
        password,
    })
}

/// The request line and headers forwarding `query`.
pub fn request(target: &ForwardTarget, query: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(query.len() + target.path.len() + 96);
    r.extend_from_slice(b"GET ");
    r.extend_from_slice(target.path.as_bytes());
    r.push(if target.path.contains('?') {
        b'&'
    } else {
        b'?'
    });
    r.extend_from_slice(query);
    if let Some(p) = &target.password {
        r.extend_from_slice(b"&password=");
        for b in p.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                r.push(b);
            } else {
                r.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
        }
    }
    r.extend_from_slice(b" HTTP/1.0\r\nHost: ");
    r.extend_from_slice(target.host.as_bytes());
    r.extend_from_slice(b"\r\nUser-Agent: cyclone-tracker\r\nConnection: close\r\n\r\n");
    r
}

/// Starts one forward on the current shard unless `in_flight` is at the bound.
pub fn spawn(
    target: &ForwardTarget,
    query: &[u8],
    in_flight: &'static std::thread::LocalKey<Cell<usize>>,
) {
    let n = in_flight.with(Cell::get);
    if n >= MAX_IN_FLIGHT {
        return;
    }
    in_flight.with(|c| c.set(n + 1));
    let req = request(target, query);
    let addr = target.addr;
    glommio::spawn_local(async move {
        let attempt = async {
            let mut s = glommio::net::TcpStream::connect_timeout(addr, FORWARD_TIMEOUT).await?;
            s.set_write_timeout(Some(FORWARD_TIMEOUT))?;
            s.set_read_timeout(Some(FORWARD_TIMEOUT))?;
            s.write_all(&req).await?;
            let mut sink = [0u8; 1024];
            let mut total = 0usize;
            while total < 64 * 1024 {
                match s.read(&mut sink).await? {
                    0 => break,
                    n => total += n,
                }
            }
            Ok::<(), std::io::Error>(())
        };
        let _ = glommio::timer::timeout(FORWARD_TIMEOUT * 2, async {
            attempt.await.map_err(glommio::GlommioError::from)
        })
        .await;
        in_flight.with(|c| c.set(c.get().saturating_sub(1)));
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds_the_request() {
        let t = parse("http://127.0.0.1:6969/announce,pa ss").unwrap();
        assert_eq!(t.addr, "127.0.0.1:6969".parse().unwrap());
        assert_eq!(t.path, "/announce");
        let r = request(&t, b"info_hash=x&port=1");
        assert!(r.starts_with(
            b"GET /announce?info_hash=x&port=1&password=pa%20ss HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        ));
        assert!(parse("https://127.0.0.1/x").is_err());
        assert_eq!(parse("http://127.0.0.1").unwrap().path, "/");
    }
}
