//! The Apache-style access log (bttrack §3.1), buffered per shard and written off the executor.
//!
//! `<ip> <ident> - [DD/Mon/YYYY:HH:MM:SS] "<request line>" <code> <bytes> "<referer>" "<user-agent>"`
//! with ident `gzip` when the body was compressed, else `-`; local time.
//!
//! Lines go into a per-shard buffer (bounded: past [`MAX_BUFFERED`] bytes lines are counted and
//! dropped); a timer hands the buffer to a blocking thread every `min_time_between_log_flushes`, so
//! a slow stdout or disk never blocks an executor.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cyclone_metainfo::bencode::write_decimal;

/// Most bytes of log lines one shard buffers between flushes.
pub const MAX_BUFFERED: usize = 4 << 20;

/// Where log lines go: stdout, or a file that can be reopened (hupmonitor).
pub struct LogSink {
    path: Option<PathBuf>,
    file: Mutex<Option<File>>,
}

impl LogSink {
    /// Opens the sink; a file gets `# Log Started: <iso time>`.
    pub fn open(path: Option<PathBuf>) -> std::io::Result<Arc<LogSink>> {
        let file = match &path {
            None => None,
            Some(p) => {
                let mut f = OpenOptions::new().create(true).append(true).open(p)?;
                writeln!(f, "# Log Started: {}", iso_now())?;
                Some(f)
            }
        };
        Ok(Arc::new(LogSink {
            path,
            file: Mutex::new(file),
        }))
    }

    /// Reopens the log file (after rotation, on SIGHUP).
    pub fn reopen(&self) -> std::io::Result<()> {
        if let Some(p) = &self.path {
            let mut f = OpenOptions::new().create(true).append(true).open(p)?;
            writeln!(f, "# Log reopened: {}", iso_now())?;
            *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        }
        Ok(())
    }

    /// Blocking write of a batch of lines.
    pub fn write(&self, bytes: &[u8]) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(f) => {
                let _ = f.write_all(bytes);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes);
                let _ = out.flush();
            }
        }
    }
}

/// One shard's buffer of log lines.
#[derive(Default)]
pub struct LogBuffer {
    buf: RefCell<Vec<u8>>,
    dropped: Cell<u64>,
    /// The CLF timestamp of the current second (`clf_now` is a `localtime_r` and a `format!`; at ~100k requests/s
    /// per shard that was measurable), with the second it was made for.
    stamp: RefCell<(i64, String)>,
}

/// The protocol named at the end of a log line's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `HTTP/1.<minor_version>`.
    Http { minor_version: u8 },
    /// `UDP`: a BEP 15 request, logged with the HTTP form of its query.
    Udp,
}

/// One access-log entry; byte strings from the request are escaped when written (a log line cannot be forged).
pub struct AccessEntry<'a> {
    pub ip: std::net::IpAddr,
    pub gzip: bool,
    pub method: &'static str,
    pub target: &'a [u8],
    pub protocol: Protocol,
    pub code: u16,
    pub bytes: usize,
    pub referer: &'a [u8],
    pub agent: &'a [u8],
}

impl LogBuffer {
    /// Appends one access-log line, written straight into the buffer (no per-line allocation: with the default
    /// `--access_log 1` this runs on every request, and formatting through `String`s and `escape_default` was ~9 %
    /// of a keep-alive tracker's CPU).
    pub fn access(&self, e: &AccessEntry<'_>) {
        let mut b = self.buf.borrow_mut();
        if b.len() + e.target.len() * 4 + e.referer.len() * 4 + e.agent.len() * 4 + 128
            > MAX_BUFFERED
        {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        match e.ip {
            // By hand: `Display` for an address went through the formatting machinery (~6 % of a tracker's
            // instructions per request with the default `--access_log 1`, callgrind).
            std::net::IpAddr::V4(a) => {
                for (i, octet) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        b.push(b'.');
                    }
                    write_decimal(&mut b, u64::from(octet));
                }
            }
            std::net::IpAddr::V6(a) => {
                let _ = write!(b, "{a}");
            }
        }
        b.extend_from_slice(if e.gzip { b" gzip - [" } else { b" - - [" });
        b.extend_from_slice(self.stamp_now().as_bytes());
        b.extend_from_slice(b"] \"");
        b.extend_from_slice(e.method.as_bytes());
        b.push(b' ');
        escape_into(&mut b, e.target);
        match e.protocol {
            Protocol::Http { minor_version } => {
                b.extend_from_slice(b" HTTP/1.");
                write_decimal(&mut b, u64::from(minor_version));
            }
            Protocol::Udp => b.extend_from_slice(b" UDP"),
        }
        b.extend_from_slice(b"\" ");
        write_decimal(&mut b, u64::from(e.code));
        b.push(b' ');
        write_decimal(&mut b, e.bytes as u64);
        b.extend_from_slice(b" \"");
        escape_into(&mut b, e.referer);
        b.extend_from_slice(b"\" \"");
        escape_into(&mut b, e.agent);
        b.extend_from_slice(b"\"\n");
    }

    /// `clf_now()`, remade once a second.
    fn stamp_now(&self) -> std::cell::Ref<'_, str> {
        // SAFETY: time(NULL) has no preconditions.
        let now = unsafe { libc::time(std::ptr::null_mut()) };
        if self.stamp.borrow().0 != now || self.stamp.borrow().1.is_empty() {
            *self.stamp.borrow_mut() = (now, clf_now());
        }
        std::cell::Ref::map(self.stamp.borrow(), |s| s.1.as_str())
    }

    /// Appends a raw line (NAT-check results, warnings).
    pub fn push(&self, line: &[u8]) {
        let mut b = self.buf.borrow_mut();
        if b.len() + line.len() > MAX_BUFFERED {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        b.extend_from_slice(line);
    }

    /// Takes the buffered lines (and a note about dropped ones) for writing.
    pub fn take(&self) -> Vec<u8> {
        let mut out = std::mem::take(&mut *self.buf.borrow_mut());
        let d = self.dropped.replace(0);
        if d > 0 {
            out.extend_from_slice(
                format!("# {d} log lines dropped (log output too slow)\n").as_bytes(),
            );
        }
        out
    }
}

/// Appends `bytes` with printable ASCII kept and everything else escaped (`\\"`, `\\\\`, `\\xHH`), so request
/// bytes cannot break a log line or forge one. Runs of plain bytes are found eight at a time and copied at once:
/// a byte-at-a-time scan of each request's target was ~10 % of a tracker's instructions per request (callgrind).
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let run = plain_prefix_len(rest);
        out.extend_from_slice(&rest[..run]);
        let Some(&c) = rest.get(run) else { break };
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            }
        }
        rest = &rest[run + 1..];
    }
}

/// Whether a byte is written to the log as itself: printable ASCII other than `"` and `\\`.
fn is_plain(c: u8) -> bool {
    (0x20..=0x7e).contains(&c) && c != b'"' && c != b'\\'
}

/// How many bytes at the start of `bytes` are [`is_plain`]: whole 8-byte words are tested at once, the rest and the
/// word that holds the first other byte one byte at a time.
fn plain_prefix_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Some byte of `x` is zero (exact: the classic test has no false positives for "any").
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut n = 0;
    for word in bytes.chunks_exact(8) {
        let x = u64::from_ne_bytes(word.try_into().expect("chunks of 8"));
        // Below 0x20: a borrow reaches the high bit only for such bytes (they are all below 0x80).
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0;
        // 0x7f and above: the high bit is set once one is added (a carry out of 0xff comes from a byte that is
        // itself flagged).
        let high = (x | x.wrapping_add(ONES)) & HIGHS != 0;
        if control
            || high
            || has_zero(x ^ (ONES * u64::from(b'"')))
            || has_zero(x ^ (ONES * u64::from(b'\\')))
        {
            break;
        }
        n += 8;
    }
    n + bytes[n..]
        .iter()
        .position(|&c| !is_plain(c))
        .unwrap_or(bytes.len() - n)
}

fn local_tm() -> libc::tm {
    // SAFETY: time(NULL) has no preconditions.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: tm is plain data; localtime_r writes only into `tm` and reads `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    unsafe { libc::localtime_r(&t, &mut tm) };
    tm
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `DD/Mon/YYYY:HH:MM:SS`, local time.
pub fn clf_now() -> String {
    let tm = local_tm();
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `YYYY-MM-DD HH:MM:SS`, local time.
pub fn iso_now() -> String {
    let tm = local_tm();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_clf_with_request_bytes_escaped() {
        let log = LogBuffer::default();
        log.access(&AccessEntry {
            ip: "10.1.2.3".parse().unwrap(),
            gzip: true,
            method: "GET",
            target: b"/announce?info_hash=%12\"x\\y\n\xff",
            protocol: Protocol::Http { minor_version: 1 },
            code: 200,
            bytes: 57,
            referer: b"-",
            agent: b"aria2/1.36",
        });
        let text = String::from_utf8(log.take()).unwrap();
        let (head, rest) = text.split_once(" [").unwrap();
        assert_eq!(head, "10.1.2.3 gzip -");
        let (stamp, rest) = rest.split_once("] ").unwrap();
        assert_eq!(stamp.len(), "21/Nov/2026:12:00:00".len(), "{stamp}");
        assert_eq!(
            rest,
            "\"GET /announce?info_hash=%12\\\"x\\\\y\\x0a\\xff HTTP/1.1\" 200 57 \"-\" \"aria2/1.36\"\n"
        );
        assert_eq!(
            text.lines().count(),
            1,
            "an escaped newline cannot start a forged line"
        );
    }

    #[test]
    fn plain_runs_match_a_byte_at_a_time_scan() {
        let mut rng = fastrand::Rng::with_seed(5);
        for len in 0..40 {
            for _ in 0..2000 {
                // Mostly plain bytes, sometimes one of every other kind, at every position.
                let bytes: Vec<u8> = (0..len)
                    .map(|_| match rng.u8(..40) {
                        0 => rng.u8(..0x20),
                        1 => b'"',
                        2 => b'\\',
                        3 => rng.u8(0x7f..),
                        _ => rng.u8(0x20..0x7f),
                    })
                    .collect();
                let want = bytes.iter().position(|&c| !is_plain(c)).unwrap_or(len);
                assert_eq!(plain_prefix_len(&bytes), want, "{bytes:?}");
            }
        }
        for c in 0..=255u8 {
            let mut word = *b"abcdefghij";
            word[3] = c;
            assert_eq!(
                plain_prefix_len(&word),
                if is_plain(c) { 10 } else { 3 },
                "byte {c:#x}"
            );
        }
    }

    #[test]
    fn a_full_buffer_counts_dropped_lines() {
        let log = LogBuffer::default();
        log.push(&vec![b'x'; MAX_BUFFERED - 10]);
        log.access(&AccessEntry {
            ip: "::1".parse().unwrap(),
            gzip: false,
            method: "HEAD",
            target: b"/",
            protocol: Protocol::Http { minor_version: 0 },
            code: 200,
            bytes: 0,
            referer: b"-",
            agent: b"-",
        });
        let out = log.take();
        assert!(out.ends_with(b"# 1 log lines dropped (log output too slow)\n"));
    }
}
