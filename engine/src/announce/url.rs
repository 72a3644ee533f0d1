//! Tracker URLs: the three schemes an engine announces to, split into what a socket needs.
//!
//! Why not a general URL crate: tracker URLs come from `.torrent` files (untrusted input) and only three shapes matter.
//! This parser is small, bounded, and rejects what the engine could not use anyway (user info, bad ports, hosts with
//! characters no resolver accepts), with an error a user can act on.

use std::net::{IpAddr, Ipv6Addr};

/// Longest tracker URL accepted. Real announce URLs with a passkey are under 200 bytes; 2 KiB leaves room and bounds
/// every string built from one.
pub const MAX_URL_BYTES: usize = 2048;

/// Longest host name (RFC 1035).
const MAX_HOST_BYTES: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    Udp,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name, lower-cased; resolving it is the caller's job.
    Name(String),
}

/// A parsed tracker URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackerUrl {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
    /// Everything from the first `/` after the authority up to (not including) any `#fragment`: for HTTP the request
    /// target (`/` when the URL has no path); for UDP the BEP 41 URL data (may be empty).
    pub path_and_query: String,
    /// The URL as given, without its fragment. The announce and scrape URL builders work on this text.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("tracker URL is longer than {MAX_URL_BYTES} bytes")]
    TooLong,
    #[error("tracker URL '{0}' has an unsupported scheme (expected http://, https:// or udp://)")]
    UnsupportedScheme(String),
    #[error("tracker URL '{0}' has no host")]
    NoHost(String),
    #[error("tracker URL '{0}' has an invalid host")]
    BadHost(String),
    #[error("tracker URL '{0}' has an invalid port")]
    BadPort(String),
    #[error("tracker URL '{0}' has user information, which trackers do not use")]
    UserInfo(String),
    #[error("tracker URL '{0}' contains spaces or control characters")]
    BadCharacter(String),
}

impl TrackerUrl {
    pub fn parse(input: &str) -> Result<TrackerUrl, UrlError> {
        if input.len() > MAX_URL_BYTES {
            return Err(UrlError::TooLong);
        }
        let shown = || input.to_string();
        if input.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::BadCharacter(shown()));
        }
        let url = match input.find('#') {
            Some(i) => &input[..i],
            None => input,
        };
        let (scheme, rest) = if let Some(r) = strip_prefix_ignore_case(url, "http://") {
            (Scheme::Http, r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "https://") {
            (Scheme::Https, r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "udp://") {
            (Scheme::Udp, r)
        } else {
            return Err(UrlError::UnsupportedScheme(shown()));
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo(shown()));
        }
        if authority.is_empty() {
            return Err(UrlError::NoHost(shown()));
        }
        let (host_text, port_text) =
            split_host_port(authority).ok_or_else(|| UrlError::BadHost(shown()))?;
        let host = parse_host(host_text).ok_or_else(|| UrlError::BadHost(shown()))?;
        let port = match port_text {
            Some(p) => parse_port(p).ok_or_else(|| UrlError::BadPort(shown()))?,
            None => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
                // BEP 15 has no default port.
                Scheme::Udp => return Err(UrlError::BadPort(shown())),
            },
        };
        let path_and_query = match (scheme, tail) {
            (Scheme::Udp, t) => t.to_string(),
            (_, "") => "/".to_string(),
            (_, t) if t.starts_with('?') => format!("/{t}"),
            (_, t) => t.to_string(),
        };
        Ok(TrackerUrl {
            scheme,
            host,
            port,
            path_and_query,
            url: url.to_string(),
        })
    }

    /// Where a redirect's `Location` points: an absolute URL as is, an absolute path (`/x`) on this URL's scheme, host
    /// and port. Relative paths (`x/y`) are rare from trackers and resolved against this URL's directory.
    pub fn join(&self, location: &str) -> Result<TrackerUrl, UrlError> {
        let location = location.trim();
        if location.contains("://") {
            return TrackerUrl::parse(location);
        }
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Udp => "udp",
        };
        let origin = format!("{scheme}://{}:{}", self.host_without_port(), self.port);
        if location.starts_with('/') {
            return TrackerUrl::parse(&format!("{origin}{location}"));
        }
        let path = self.path_and_query.split('?').next().unwrap_or("");
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        TrackerUrl::parse(&format!("{origin}{dir}{location}"))
    }

    fn host_without_port(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(a)) => format!("[{a}]"),
            Host::Ip(IpAddr::V4(a)) => a.to_string(),
            Host::Name(n) => n.clone(),
        }
    }

    /// `host[:port]` for an HTTP `Host` header: the port is left out when it is the scheme's default, IPv6 literals
    /// are bracketed.
    pub fn host_header(&self) -> String {
        let host = self.host_without_port();
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
            Scheme::Udp => 0,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        if after.is_empty() {
            return Some((host, None));
        }
        return Some((host, Some(after.strip_prefix(':')?)));
    }
    match authority.rfind(':') {
        Some(i) => Some((&authority[..i], Some(&authority[i + 1..]))),
        None => Some((authority, None)),
    }
}

fn parse_host(text: &str) -> Option<Host> {
    if text.is_empty() || text.len() > MAX_HOST_BYTES {
        return None;
    }
    if let Ok(v6) = text.parse::<Ipv6Addr>() {
        return Some(Host::Ip(IpAddr::V6(v6)));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    let ok = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ok.then(|| Host::Name(text.to_ascii_lowercase()))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn http_defaults() {
        let u = TrackerUrl::parse("http://Tracker.Example.org/announce").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, Host::Name("tracker.example.org".into()));
        assert_eq!(u.port, 80);
        assert_eq!(u.path_and_query, "/announce");
        assert_eq!(u.host_header(), "tracker.example.org");
        let u = TrackerUrl::parse("HTTPS://t.example").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.path_and_query.as_str()),
            (Scheme::Https, 443, "/")
        );
    }

    #[test]
    fn ports_queries_and_ipv6() {
        let u = TrackerUrl::parse("http://127.0.0.1:6969/announce.php?pk=ab%20c#frag").unwrap();
        assert_eq!(u.host, Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(u.port, 6969);
        assert_eq!(u.path_and_query, "/announce.php?pk=ab%20c");
        assert_eq!(u.url, "http://127.0.0.1:6969/announce.php?pk=ab%20c");
        assert_eq!(u.host_header(), "127.0.0.1:6969");
        let u = TrackerUrl::parse("http://[::1]:8080?x=1").unwrap();
        assert_eq!(u.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(u.path_and_query, "/?x=1");
        assert_eq!(u.host_header(), "[::1]:8080");
    }

    #[test]
    fn udp_needs_a_port_and_keeps_url_data() {
        let u = TrackerUrl::parse("udp://tracker.example:1337/announce?passkey=x").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Udp, 1337));
        assert_eq!(u.path_and_query, "/announce?passkey=x");
        let u = TrackerUrl::parse("udp://tracker.example:1337").unwrap();
        assert_eq!(u.path_and_query, "");
        assert!(matches!(
            TrackerUrl::parse("udp://tracker.example"),
            Err(UrlError::BadPort(_))
        ));
    }

    #[test]
    fn redirect_targets() {
        let base = TrackerUrl::parse("http://[::1]:8080/a/announce?pk=1").unwrap();
        let abs = base.join("https://other.example/announce").unwrap();
        assert_eq!((abs.scheme, abs.port), (Scheme::Https, 443));
        let path = base.join("/b/announce?x=2").unwrap();
        assert_eq!(path.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(
            (path.port, path.path_and_query.as_str()),
            (8080, "/b/announce?x=2")
        );
        assert_eq!(path.url, "http://[::1]:8080/b/announce?x=2");
        let rel = base.join("announce2").unwrap();
        assert_eq!(rel.path_and_query, "/a/announce2");
        let root = TrackerUrl::parse("http://t").unwrap().join("x").unwrap();
        assert_eq!(root.path_and_query, "/x");
        assert!(base.join("ftp://x/").is_err());
        assert!(base.join("/a b").is_err());
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            TrackerUrl::parse("wss://x/announce"),
            Err(UrlError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http:///announce"),
            Err(UrlError::NoHost(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://u:p@x/announce"),
            Err(UrlError::UserInfo(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://x:0/"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://x:65536/"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://x:/"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://x y/"),
            Err(UrlError::BadCharacter(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://x%41/"),
            Err(UrlError::BadHost(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://[::1/"),
            Err(UrlError::BadHost(_))
        ));
        assert!(matches!(
            TrackerUrl::parse("http://[::1]x/"),
            Err(UrlError::BadHost(_))
        ));
        let long = format!("http://x/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(TrackerUrl::parse(&long), Err(UrlError::TooLong));
        // Non-ASCII must not panic on the scheme check.
        assert!(TrackerUrl::parse("ä").is_err());
        assert!(TrackerUrl::parse("httä://x").is_err());
    }
}
