//! BitTornado's `--security` connection rule: at most one connection per IP address.
//!
//! As seeds-behaviour §1.1 gives BitTornado's rule (`Encrypter.start_connection`, `got_id`): a dial to an IP that
//! is already connected is skipped ([`refuses`]), and a new connection from an already-connected IP closes the old
//! one ([`displaced`]): the newer connection is the one the host wants (a restarted client), and one host cannot
//! take several upload slots or feed several bad copies of a piece.
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

/// The connections a new connection from `candidate` replaces: those to the same IP (none without `security`, or on
/// loopback).
pub fn displaced<K>(
    security: bool,
    candidate: IpAddr,
    connected: impl IntoIterator<Item = (K, IpAddr)>,
) -> Vec<K> {
    let candidate = candidate.to_canonical();
    if !security || candidate.is_loopback() {
        return Vec::new();
    }
    connected
        .into_iter()
        .filter(|(_, ip)| ip.to_canonical() == candidate)
        .map(|(k, _)| k)
        .collect()
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
    fn a_new_connection_displaces_the_old_one_from_the_same_ip() {
        let connected = [
            (1, ip("10.0.0.1")),
            (2, ip("10.0.0.2")),
            (3, ip("::ffff:10.0.0.1")),
        ];
        assert_eq!(displaced(true, ip("10.0.0.1"), connected), vec![1, 3]);
        assert!(displaced(true, ip("10.0.0.9"), connected).is_empty());
        assert!(displaced(false, ip("10.0.0.1"), connected).is_empty());
        assert!(displaced(true, ip("127.0.0.1"), [(1, ip("127.0.0.1"))]).is_empty());
    }

    #[test]
    fn loopback_is_exempt() {
        let connected = [ip("127.0.0.1"), ip("::1")];
        assert!(!refuses(true, ip("127.0.0.1"), connected));
        assert!(!refuses(true, ip("::1"), connected));
        assert!(!refuses(true, ip("::ffff:127.0.0.1"), connected));
    }
}
