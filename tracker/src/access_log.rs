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
}

impl LogBuffer {
    /// Appends one access-log line.
    #[allow(clippy::too_many_arguments)]
    pub fn access(
        &self,
        ip: &str,
        gzip: bool,
        request_line: &str,
        code: u16,
        bytes: usize,
        referer: &[u8],
        agent: &[u8],
    ) {
        let line = format!(
            "{ip} {} - [{}] \"{}\" {code} {bytes} \"{}\" \"{}\"\n",
            if gzip { "gzip" } else { "-" },
            clf_now(),
            request_line.escape_default(),
            String::from_utf8_lossy(referer).escape_default(),
            String::from_utf8_lossy(agent).escape_default(),
        );
        self.push(line.as_bytes());
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
