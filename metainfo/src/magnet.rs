//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&ws=<web seed>`.

use crate::info_hash::InfoHash;
use crate::torrent::Metainfo;

/// The parts of a magnet link cyclone writes and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: display name.
    pub display_name: Option<String>,
    /// `tr`: trackers, in order.
    pub trackers: Vec<String>,
    /// `ws`: web seeds (BEP 19).
    pub web_seeds: Vec<String>,
}

impl Magnet {
    /// The magnet link of a torrent: its info-hash, name, every tracker (announce-list tiers flattened, else
    /// announce) and its `url-list` web seeds.
    pub fn from_metainfo(m: &Metainfo) -> Magnet {
        Magnet {
            info_hash: m.info_hash,
            display_name: Some(m.info.display_name()),
            trackers: m.trackers(),
            web_seeds: m.url_list.clone(),
        }
    }

    /// Parses a magnet link. Unknown parameters are ignored; a missing or malformed `xt` is an error.
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        let query = link
            .strip_prefix("magnet:?")
            .ok_or(MagnetError::NotAMagnet)?;
        let mut info_hash = None;
        let mut display_name = None;
        let mut trackers = Vec::new();
        let mut web_seeds = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value =
                percent_decode(value).ok_or_else(|| MagnetError::BadEncoding(key.to_string()))?;
            match key {
                "xt" => {
                    if let Some(hash) = value.strip_prefix("urn:btih:") {
                        let parsed = if hash.len() == 32 {
                            InfoHash::from_base32(hash)
                        } else {
                            InfoHash::from_hex(hash)
                        };
                        info_hash =
                            Some(parsed.map_err(|e| MagnetError::BadInfoHash(e.to_string()))?);
                    }
                }
                "dn" => display_name = Some(value),
                "tr" => trackers.push(value),
                "ws" => web_seeds.push(value),
                _ => {}
            }
        }
        Ok(Magnet {
            info_hash: info_hash.ok_or(MagnetError::MissingInfoHash)?,
            display_name,
            trackers,
            web_seeds,
        })
    }
}

impl std::fmt::Display for Magnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "magnet:?xt=urn:btih:{}", self.info_hash)?;
        if let Some(name) = &self.display_name {
            write!(f, "&dn={}", percent_encode(name))?;
        }
        for tr in &self.trackers {
            write!(f, "&tr={}", percent_encode(tr))?;
        }
        for ws in &self.web_seeds {
            write!(f, "&ws={}", percent_encode(ws))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet link (it must start with `magnet:?`)")]
    NotAMagnet,
    #[error("magnet link has no `xt=urn:btih:` info-hash")]
    MissingInfoHash,
    #[error("magnet link info-hash is invalid: {0}")]
    BadInfoHash(String),
    #[error("magnet link parameter `{0}` is not valid percent-encoded UTF-8")]
    BadEncoding(String),
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (as a space, as form encoding and many magnet writers use it).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let m = Magnet {
            info_hash: InfoHash([0xab; 20]),
            display_name: Some("my file & co.iso".into()),
            trackers: vec!["http://t.example/announce?x=1".into(), "udp://u:80".into()],
            web_seeds: vec!["http://w/é".into()],
        };
        let link = m.to_string();
        assert_eq!(
            link,
            "magnet:?xt=urn:btih:abababababababababababababababababababab&dn=my%20file%20%26%20co.iso\
&tr=http%3A%2F%2Ft.example%2Fannounce%3Fx%3D1&tr=udp%3A%2F%2Fu%3A80&ws=http%3A%2F%2Fw%2F%C3%A9"
        );
        assert_eq!(Magnet::parse(&link).unwrap(), m);
    }

    #[test]
    fn parse_errors_and_base32() {
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotAMagnet));
        assert_eq!(
            Magnet::parse("magnet:?dn=x"),
            Err(MagnetError::MissingInfoHash)
        );
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:zz"),
            Err(MagnetError::BadInfoHash(_))
        ));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:%zz"),
            Err(MagnetError::BadEncoding(_))
        ));
        let m =
            Magnet::parse("magnet:?xt=urn:btih:VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5&dn=a+b").unwrap();
        assert_eq!(
            m.info_hash.to_string(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(m.display_name.as_deref(), Some("a b"));
    }
}
