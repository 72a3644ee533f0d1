//! allowed_ips and banned_ips (bttrack §1.3): which client IPs may use the tracker. Both files
//! are reloaded when their mtime changes (checked every `parse_dir_interval`).
//!
//! - allowed_ips: one subnet per line, `a.b.c.d/len` or `v6addr/len` (a bare address = a host);
//!   `#` starts a comment; text after a space is ignored.
//! - banned_ips: PeerGuardian style, `anything:ip1-ip2` or a single IP; text before the last `:`
//!   is ignored; IPv4 only (as bttrack).

use std::net::IpAddr;
use std::path::Path;

/// Most entries read from one list file (bounds memory for a hostile file).
pub const MAX_ENTRIES: usize = 1_000_000;

/// One allowed_ips entry: an IPv4 or IPv6 network and prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    net: u128,
    prefix: u32,
    v6: bool,
}

fn to_bits(ip: IpAddr) -> (u128, bool) {
    match crate::client_ip::normalize(ip) {
        IpAddr::V4(a) => (u128::from(u32::from(a)), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

impl Subnet {
    fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v6) = to_bits(ip);
        if v6 != self.v6 {
            return false;
        }
        let width = if v6 { 128 } else { 32 };
        if self.prefix == 0 {
            return true;
        }
        let shift = width - self.prefix;
        (bits >> shift) == (self.net >> shift)
    }
}

/// The loaded lists. An empty filter allows everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpFilter {
    allowed: Option<Vec<Subnet>>,
    banned: Vec<(u32, u32)>,
}

impl IpFilter {
    /// Whether `ip` may use the tracker.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|s| s.contains(ip)) {
                return false;
            }
        }
        if let IpAddr::V4(a) = crate::client_ip::normalize(ip) {
            let x = u32::from(a);
            if self.banned.iter().any(|&(lo, hi)| lo <= x && x <= hi) {
                return false;
            }
        }
        true
    }
}

/// Parses an allowed_ips file.
pub fn parse_allowed(text: &str) -> Vec<Subnet> {
    let mut out = Vec::new();
    for line in text.lines().take(MAX_ENTRIES) {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        let (addr, len) = match word.split_once('/') {
            Some((a, l)) => (a, l.parse::<u32>().ok()),
            None => (word, None),
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            eprintln!("**warning** allowed_ips: cannot parse {word}");
            continue;
        };
        let (net, v6) = to_bits(ip);
        let width = if v6 { 128 } else { 32 };
        let prefix = len.unwrap_or(width).min(width);
        out.push(Subnet { net, prefix, v6 });
    }
    out
}

/// Parses a banned_ips file.
pub fn parse_banned(text: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for line in text.lines().take(MAX_ENTRIES) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let range = line.rsplit(':').next().unwrap_or(line).trim();
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        match (
            a.trim().parse::<std::net::Ipv4Addr>(),
            b.trim().parse::<std::net::Ipv4Addr>(),
        ) {
            (Ok(a), Ok(b)) => {
                let (a, b) = (u32::from(a), u32::from(b));
                out.push((a.min(b), a.max(b)));
            }
            _ => eprintln!("**warning** banned_ips: cannot parse {line}"),
        }
    }
    out
}

/// Loads both lists (a missing or unreadable file is reported and treated as absent).
pub fn load(allowed: Option<&Path>, banned: Option<&Path>) -> Option<IpFilter> {
    if allowed.is_none() && banned.is_none() {
        return None;
    }
    let read = |p: &Path| match std::fs::read_to_string(p) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("**warning** cannot read {}: {e}", p.display());
            None
        }
    };
    Some(IpFilter {
        allowed: allowed.map(|p| read(p).map(|t| parse_allowed(&t)).unwrap_or_default()),
        banned: banned
            .and_then(read)
            .map(|t| parse_banned(&t))
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_subnets() {
        let f = IpFilter {
            allowed: Some(parse_allowed(
                "# c\n10.0.0.0/8 office\n192.168.1.7\n::1/128\n",
            )),
            banned: vec![],
        };
        assert!(f.permits("10.200.0.1".parse().unwrap()));
        assert!(f.permits("192.168.1.7".parse().unwrap()));
        assert!(!f.permits("192.168.1.8".parse().unwrap()));
        assert!(f.permits("::1".parse().unwrap()));
        assert!(f.permits("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!f.permits("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn banned_ranges() {
        let f = IpFilter {
            allowed: None,
            banned: parse_banned("Some org:1.2.3.0-1.2.3.255\n5.6.7.8\n"),
        };
        assert!(!f.permits("1.2.3.77".parse().unwrap()));
        assert!(!f.permits("5.6.7.8".parse().unwrap()));
        assert!(f.permits("1.2.4.0".parse().unwrap()));
    }
}
