//! BitTornado's `--security` connection rule: at most one connection per IP address.
//!
//! BitTornado (`Encrypter.got_id`, `start_connection`) refuses a new connection, incoming or outgoing, to an IP it is
//! already connected to, so one host cannot take several upload slots or feed several bad copies of a piece. The
//! old connection is kept.
//!
//! Decision: loopback addresses (127.0.0.0/8, ::1) are exempt. Every peer on the local machine shares 127.0.0.1, so
//! the rule would allow a single local peer — which would break a local swarm and protects against nothing (a
//! local peer already has the machine). Addresses are compared in canonical form (an IPv4-mapped IPv6 address is
//! its IPv4 address).

use std::net::IpAddr;

/// Whether a connection to or from `candidate` must be refused because `connected` (the IPs of the torrent's
/// connections and dials in flight) already holds it.
pub fn refuses(
    security: bool,
    candidate: IpAddr,
    connected: impl IntoIterator<Item = IpAddr>,
) -> bool {
    let candidate = candidate.to_canonical();
    if !security || candidate.is_loopback() {
        return false;
    }
    connected
        .into_iter()
        .any(|ip| ip.to_canonical() == candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_connection_per_ip_with_security() {
        let connected = [ip("10.0.0.1"), ip("10.0.0.2")];
        assert!(refuses(true, ip("10.0.0.1"), connected));
        assert!(!refuses(true, ip("10.0.0.3"), connected));
        assert!(!refuses(false, ip("10.0.0.1"), connected), "security 0");
        // An IPv4-mapped IPv6 address is the same host.
        assert!(refuses(true, ip("::ffff:10.0.0.2"), connected));
        assert!(refuses(true, ip("10.0.0.2"), [ip("::ffff:10.0.0.2")]));
    }

    #[test]
    fn loopback_is_exempt() {
        let connected = [ip("127.0.0.1"), ip("::1")];
        assert!(!refuses(true, ip("127.0.0.1"), connected));
        assert!(!refuses(true, ip("::1"), connected));
        assert!(!refuses(true, ip("::ffff:127.0.0.1"), connected));
    }
}
