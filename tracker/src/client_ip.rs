//! Which IP a peer is listed under (bttrack §3.1): the connection's IP, possibly replaced by a
//! forwarding header or the `ip` parameter when the configuration allows overrides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The connection's IP, with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into IPv4.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// bttrack's intranet list: 127/8, 10/8, 172.16/12, 192.168/16, 169.254/16, ::1, fe80::/16, fec0::/16.
pub fn is_intranet(ip: IpAddr) -> bool {
    match normalize(ip) {
        IpAddr::V4(a) => is_intranet_v4(a),
        IpAddr::V6(a) => is_intranet_v6(a),
    }
}

fn is_intranet_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 127
        || o[0] == 10
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 169 && o[1] == 254)
}

fn is_intranet_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a.is_loopback() || s[0] == 0xfe80 || s[0] == 0xfec0
}

/// A header value as an IP, if it is one.
fn parse_ip(v: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(v)
        .ok()?
        .trim()
        .parse::<IpAddr>()
        .ok()
        .map(normalize)
}

/// The forwarded client IP from proxy headers (bttrack's order: X-Forwarded-For, Client-IP, Via's
/// trailing ` for a.b.c.d`, From), ignored when invalid or an intranet address.
pub fn forwarded_ip(header: impl Fn(&str) -> Option<Vec<u8>>) -> Option<IpAddr> {
    let valid = |ip: Option<IpAddr>| ip.filter(|ip| !is_intranet(*ip));
    if let Some(xff) = header("x-forwarded-for") {
        let parts: Vec<&[u8]> = xff.split(|&b| b == b',').collect();
        let ip = if parts.len() == 2 {
            valid(parse_ip(parts[0])).or_else(|| valid(parse_ip(parts[1])))
        } else {
            valid(parse_ip(parts[0]))
        };
        if ip.is_some() {
            return ip;
        }
    }
    if let Some(ip) = header("client-ip").and_then(|v| valid(parse_ip(&v))) {
        return Some(ip);
    }
    if let Some(via) = header("via") {
        let s = String::from_utf8_lossy(&via);
        if let Some(i) = s.rfind(" for ") {
            if let Some(ip) = valid(parse_ip(s[i + 5..].as_bytes())) {
                return Some(ip);
            }
        }
    }
    header("from").and_then(|v| valid(parse_ip(&v)))
}

/// The listed IP and whether it is local, given the connection IP, the headers, the `ip`
/// parameter and whether anyone may override (else only intranet clients may).
pub fn listed_ip(
    conn_ip: IpAddr,
    header: impl Fn(&str) -> Option<Vec<u8>>,
    given_ip: Option<&str>,
    anyone_may_override: bool,
) -> (IpAddr, bool) {
    let conn_ip = normalize(conn_ip);
    let may_override = anyone_may_override || is_intranet(conn_ip);
    let mut ip = conn_ip;
    if may_override {
        if let Some(f) = forwarded_ip(&header) {
            ip = f;
        }
        if let Some(g) = given_ip.and_then(|g| g.trim().parse::<IpAddr>().ok()) {
            ip = normalize(g);
        }
    }
    (ip, is_intranet(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<Vec<u8>> {
        None
    }

    #[test]
    fn intranet_list() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.1",
            "192.168.1.1",
            "169.254.0.1",
            "::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_intranet(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
            assert!(!is_intranet(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn override_rules() {
        let pub_ip: IpAddr = "203.0.113.5".parse().unwrap();
        // Not allowed for a public client when only local may override.
        assert_eq!(
            listed_ip(pub_ip, none, Some("10.0.0.7"), false),
            (pub_ip, false)
        );
        // Allowed for a local client.
        let (ip, local) = listed_ip("127.0.0.1".parse().unwrap(), none, Some("10.0.0.7"), false);
        assert_eq!(ip, "10.0.0.7".parse::<IpAddr>().unwrap());
        assert!(local);
        // Forwarded header, first of two unless it is local.
        let h = |n: &str| (n == "x-forwarded-for").then(|| b"10.0.0.1, 198.51.100.2".to_vec());
        assert_eq!(
            listed_ip("127.0.0.1".parse().unwrap(), h, None, true).0,
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
        let via = |n: &str| (n == "via").then(|| b"1.1 proxy for 198.51.100.9".to_vec());
        assert_eq!(forwarded_ip(via), Some("198.51.100.9".parse().unwrap()));
        assert_eq!(
            normalize("::ffff:1.2.3.4".parse().unwrap()),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }
}
