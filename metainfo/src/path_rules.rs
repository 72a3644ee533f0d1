//! Rules that keep every path a torrent names inside the download directory.
//!
//! BitTornado's `check_info` accepts a name or path component only if it matches `^[^/\\.~][^/\\]*$`. Its intent is
//! to stop path traversal. We keep that intent and say exactly why a component is refused, but we do accept
//! components that merely *start* with `.` or `~` (`.nfo`, `~draft.txt`): cyclone never expands `~`, and modern
//! tools (mktorrent, libtorrent) write such names. What is refused, for the torrent `name` and every `path` element:
//! - an empty component (it would collapse into its parent);
//! - `.` and `..` (reserved names that point at the directory itself or above it);
//! - `/` or `\` inside a component (a component that is really several, possibly absolute or `..`);
//! - a NUL byte (it truncates the path at the system call);
//! - an empty path list, and more than [`MAX_PATH_COMPONENTS`] components.

/// Deeper than any real file tree; keeps a hostile torrent from making us build absurd paths.
pub const MAX_PATH_COMPONENTS: usize = 256;

/// Why a component was refused.
pub fn component_problem(component: &[u8]) -> Option<&'static str> {
    if component.is_empty() {
        return Some("empty path component");
    }
    if component == b"." || component == b".." {
        return Some("`.` and `..` are not allowed as path components");
    }
    if component.contains(&b'/') || component.contains(&b'\\') {
        return Some("path component contains a slash or backslash");
    }
    if component.contains(&0) {
        return Some("path component contains a NUL byte");
    }
    None
}

/// Why a path (list of components) was refused.
pub fn path_problem(components: &[Vec<u8>]) -> Option<&'static str> {
    if components.is_empty() {
        return Some("empty path");
    }
    if components.len() > MAX_PATH_COMPONENTS {
        return Some("path has too many components");
    }
    components.iter().find_map(|c| component_problem(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_and_accepts_ordinary_names() {
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b"/etc",
            b"a\\b",
            b"..\\x",
            b"a\0b",
        ] {
            assert!(component_problem(bad).is_some(), "{bad:?} must be refused");
        }
        for good in [
            &b"a"[..],
            b".nfo",
            b"~x",
            b"a..b",
            b"...",
            b"caf\xe9",
            b"name with spaces",
        ] {
            assert_eq!(component_problem(good), None, "{good:?} must be accepted");
        }
        assert!(path_problem(&[]).is_some());
        assert!(path_problem(&[b"a".to_vec(), b"..".to_vec()]).is_some());
        assert!(path_problem(&vec![b"d".to_vec(); MAX_PATH_COMPONENTS + 1]).is_some());
        assert_eq!(path_problem(&[b"a".to_vec(), b"b".to_vec()]), None);
    }
}
