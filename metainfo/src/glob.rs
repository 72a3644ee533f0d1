//! Shell-style globs for `make --include/--exclude`.
//!
//! `*` matches within one path component, `**` across components, `?` one byte other
//! than `/`, `[abc]`, `[a-z]` and `[!x]` byte classes, `\x` a literal `x`. Matching is on
//! bytes, so non-UTF-8 file names work. A pattern without `/` is tried against every
//! component of the relative path as well as the whole path: `*.nfo` matches `a/b/c.nfo`,
//! and `extras` matches everything inside a directory named `extras`.

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<u8>,
    has_slash: bool,
}

/// Longest pattern accepted (matching is recursive on `*`).
pub const MAX_GLOB_LEN: usize = 1024;

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// Over [`MAX_GLOB_LEN`] bytes.
    #[error("glob pattern is longer than {MAX_GLOB_LEN} bytes")]
    TooLong,
    /// `[` without `]`.
    #[error("glob pattern {0:?} has an unclosed `[`")]
    UnclosedClass(String),
    /// Empty pattern.
    #[error("empty glob pattern")]
    Empty,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > MAX_GLOB_LEN {
            return Err(GlobError::TooLong);
        }
        let p = pattern.as_bytes();
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'\\' => i += 2,
                b'[' => {
                    let close =
                        class_end(p, i).ok_or_else(|| GlobError::UnclosedClass(pattern.into()))?;
                    i = close + 1;
                }
                _ => i += 1,
            }
        }
        Ok(Glob {
            pattern: p.to_vec(),
            has_slash: p.contains(&b'/'),
        })
    }

    /// Does the relative path (components joined with `/`) match?
    pub fn matches_path(&self, relative: &[u8]) -> bool {
        if glob_match(&self.pattern, relative) {
            return true;
        }
        !self.has_slash
            && relative
                .split(|&b| b == b'/')
                .any(|component| glob_match(&self.pattern, component))
    }
}

/// Index of the `]` closing the class that starts at `p[open] == b'['`.
fn class_end(p: &[u8], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if j < p.len() && (p[j] == b'!' || p[j] == b'^') {
        j += 1;
    }
    // A `]` right after `[` or `[!` is a literal member.
    if j < p.len() && p[j] == b']' {
        j += 1;
    }
    while j < p.len() {
        if p[j] == b']' {
            return Some(j);
        }
        j += 1;
    }
    None
}

fn class_matches(class: &[u8], c: u8) -> bool {
    let (negate, body) = match class.first() {
        Some(b'!') | Some(b'^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut k = 0;
    let mut hit = false;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == b'-' {
            if body[k] <= c && c <= body[k + 2] {
                hit = true;
            }
            k += 3;
        } else {
            if body[k] == c {
                hit = true;
            }
            k += 1;
        }
    }
    hit != negate
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking per level; `**` recursion is
    // bounded by the pattern length (each level consumes a `**`).
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' if p.get(pi + 1) == Some(&b'*') => {
                    let mut rest = pi + 2;
                    // `**/` also matches zero directories.
                    if p.get(rest) == Some(&b'/') {
                        if glob_match(&p[rest + 1..], &s[si..]) {
                            return true;
                        }
                        rest += 1;
                    }
                    return (si..=s.len()).any(|k| glob_match(&p[rest..], &s[k..]));
                }
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' if s[si] != b'/' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some(close) = class_end(p, pi) {
                        if s[si] != b'/' && class_matches(&p[pi + 1..close], s[si]) {
                            pi = close + 1;
                            si += 1;
                            continue;
                        }
                    }
                }
                b'\\' if pi + 1 < p.len() && p[pi + 1] == s[si] => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                b'\\' if pi + 1 < p.len() => {}
                c if c == s[si] && c != b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last `*` eat one more byte (never a `/`).
        match star {
            Some((sp, ss)) if s[ss] != b'/' => {
                star = Some((sp, ss + 1));
                pi = sp + 1;
                si = ss + 1;
            }
            _ => return false,
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches_path(s.as_bytes())
    }

    #[test]
    fn stars_questions_classes() {
        assert!(m("*.nfo", "a.nfo"));
        assert!(m("*.nfo", "dir/sub/a.nfo"));
        assert!(!m("*.nfo", "a.nfo.txt"));
        assert!(m("dir/*.txt", "dir/x.txt"));
        assert!(!m("dir/*.txt", "dir/sub/x.txt"));
        assert!(m("dir/**/x.txt", "dir/sub/deeper/x.txt"));
        assert!(m("dir/**/x.txt", "dir/x.txt"));
        assert!(m("**", "any/thing"));
        assert!(m("file?.bin", "file1.bin"));
        assert!(!m("file?.bin", "file10.bin"));
        assert!(m("[ab]*", "beta"));
        assert!(!m("[!ab]*", "beta"));
        assert!(m("[a-c]x", "bx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("Thumbs.db", "photos/Thumbs.db"));
        assert!(m("extras", "extras/a/b.bin"));
        assert!(!m("extras/x", "extras/a/b.bin"));
        assert!(m("*", ""));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert!(matches!(
            Glob::new("[abc"),
            Err(GlobError::UnclosedClass(_))
        ));
        assert_eq!(Glob::new(&"a".repeat(2000)), Err(GlobError::TooLong));
    }

    #[test]
    fn non_utf8_names_match_on_bytes() {
        let g = Glob::new("caf*.bin").unwrap();
        assert!(g.matches_path(b"caf\xe9.bin"));
    }
}
