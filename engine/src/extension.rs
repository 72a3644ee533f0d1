//! The BEP 10 extension handshake (extended message id 0): decode the peer's, encode ours.
//!
//! The payload is a bencoded dictionary decoded with `cyclone_metainfo::bencode` in lenient mode
//! (clients do not all sort their keys) under [`Limits::small_message`]. Only the top level must be a
//! dictionary; a known key with an unexpected type is ignored rather than fatal, because clients
//! disagree about optional fields and none of them is worth a disconnect. Hard limits still apply:
//! the number of extension names in `m` is bounded.

use cyclone_metainfo::bencode::{self, DecodeOptions, Limits, Mode, Owned};
use std::net::IpAddr;
use thiserror::Error;

/// Most entries accepted in the `m` dictionary.
pub const MAX_EXTENSION_NAMES: usize = 64;
/// Longest extension name accepted.
const MAX_EXTENSION_NAME_BYTES: usize = 64;
/// Longest client name (`v`) kept.
const MAX_CLIENT_NAME_BYTES: usize = 128;

/// Why an extension handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtensionError {
    #[error("extension handshake: {0}")]
    Bencode(#[from] bencode::DecodeError),
    #[error("extension handshake is not a dictionary")]
    NotADict,
    #[error("extension handshake lists more than {MAX_EXTENSION_NAMES} extensions")]
    TooManyExtensions,
}

/// A decoded (or to-be-sent) extension handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionHandshake {
    /// `m`: extension name -> extended message id the sender wants for it (0 = disabled).
    pub messages: Vec<(String, u8)>,
    /// `p`: the sender's listening port.
    pub port: Option<u16>,
    /// `v`: client name and version.
    pub client: Option<String>,
    /// `reqq`: how many outstanding requests the sender accepts.
    pub request_queue: Option<u32>,
    /// `yourip`: our address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `metadata_size` (BEP 9).
    pub metadata_size: Option<u64>,
}

impl ExtensionHandshake {
    /// Decodes the payload of extended message 0.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtensionError> {
        let options = DecodeOptions {
            mode: Mode::Lenient,
            limits: Limits::small_message(),
        };
        let top = bencode::decode_with(payload, &options)?;
        if top.as_dict().is_none() {
            return Err(ExtensionError::NotADict);
        }
        let mut h = ExtensionHandshake::default();
        if let Some(m) = top.get(b"m").and_then(|m| m.as_dict()) {
            if m.len() > MAX_EXTENSION_NAMES {
                return Err(ExtensionError::TooManyExtensions);
            }
            for (name, id) in m {
                let (Ok(name), Some(id)) = (std::str::from_utf8(name), id.as_int()) else {
                    continue;
                };
                if name.len() > MAX_EXTENSION_NAME_BYTES {
                    continue;
                }
                if let Ok(id) = u8::try_from(id) {
                    h.messages.push((name.to_owned(), id));
                }
            }
        }
        h.port = top
            .get(b"p")
            .and_then(|v| v.as_int())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        h.client = top
            .get(b"v")
            .and_then(|v| v.as_bytes())
            .filter(|b| b.len() <= MAX_CLIENT_NAME_BYTES)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        h.request_queue = top
            .get(b"reqq")
            .and_then(|v| v.as_int())
            .and_then(|q| u32::try_from(q).ok());
        h.your_ip = top
            .get(b"yourip")
            .and_then(|v| v.as_bytes())
            .and_then(|b| match b.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
                _ => None,
            });
        h.metadata_size = top
            .get(b"metadata_size")
            .and_then(|v| v.as_int())
            .and_then(|s| u64::try_from(s).ok());
        Ok(h)
    }

    /// The id the sender wants for extension `name`, if it supports it (non-zero).
    pub fn message_id(&self, name: &str) -> Option<u8> {
        self.messages
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .filter(|&id| id != 0)
    }

    /// The canonical bencoded payload (for extended message 0).
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Owned::dict();
        for (name, id) in &self.messages {
            m.insert(name.as_bytes(), i64::from(*id));
        }
        let mut d = Owned::dict();
        d.insert("m", m);
        if let Some(p) = self.port {
            d.insert("p", i64::from(p));
        }
        if let Some(v) = &self.client {
            d.insert("v", v.as_str());
        }
        if let Some(q) = self.request_queue {
            d.insert("reqq", i64::from(q));
        }
        if let Some(ip) = self.your_ip {
            let bytes = match ip {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            d.insert("yourip", bytes);
        }
        if let Some(s) = self.metadata_size {
            d.insert("metadata_size", i64::try_from(s).unwrap_or(i64::MAX));
        }
        d.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn round_trip() {
        let h = ExtensionHandshake {
            messages: vec![("ut_metadata".into(), 3), ("ut_pex".into(), 1)],
            port: Some(6881),
            client: Some("cyclone 0.1.0".into()),
            request_queue: Some(500),
            your_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            metadata_size: Some(31_235),
        };
        let bytes = h.encode();
        assert!(bytes.starts_with(b"d1:md11:ut_metadatai3e6:ut_pexi1ee"));
        let mut back = ExtensionHandshake::decode(&bytes).unwrap();
        back.messages.sort();
        let mut want = h.clone();
        want.messages.sort();
        assert_eq!(back, want);
        assert_eq!(back.message_id("ut_pex"), Some(1));
        assert_eq!(back.message_id("lt_donthave"), None);
    }

    #[test]
    fn libtorrent_style_unsorted_and_odd_types() {
        // Unsorted keys (lenient), a disabled extension, a bad port, a string reqq.
        let raw = b"d1:pi70000e1:md6:ut_pexi0e11:ut_metadatai2ee4:reqq3:abc1:v4:lt20e";
        let h = ExtensionHandshake::decode(raw).unwrap();
        assert_eq!(h.port, None);
        assert_eq!(h.request_queue, None);
        assert_eq!(h.message_id("ut_pex"), None);
        assert_eq!(h.message_id("ut_metadata"), Some(2));
        assert_eq!(h.client.as_deref(), Some("lt20"));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            ExtensionHandshake::decode(b"li1ee"),
            Err(ExtensionError::NotADict)
        );
        assert!(matches!(
            ExtensionHandshake::decode(b"d1:m"),
            Err(ExtensionError::Bencode(_))
        ));
        let mut m = Owned::dict();
        for i in 0..=MAX_EXTENSION_NAMES {
            m.insert(format!("x{i:03}").into_bytes(), 1i64);
        }
        let mut d = Owned::dict();
        d.insert("m", m);
        assert_eq!(
            ExtensionHandshake::decode(&d.encode()),
            Err(ExtensionError::TooManyExtensions)
        );
        // Empty dict is fine: a client supporting no extensions.
        assert_eq!(
            ExtensionHandshake::decode(b"de").unwrap(),
            ExtensionHandshake::default()
        );
    }
}
