//! `cyclone download TORRENT`: download (or seed, if the data is complete) one torrent with the engine's
//! [`Session`], printing BitTornado's btdownloadheadless status block or `--json` status lines. Also the
//! implementation behind the `btdownloadheadless` alias ([`crate::aliases`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use cyclone_engine::session::{
    Activity, ResumeRecordKind, Session, SessionConfig, TorrentConfig, TorrentStatus,
};
use cyclone_metainfo::Metainfo;

use crate::download_options::SessionOptions;
use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// Save as this file (single-file torrent) or directory (multi-file); default: the torrent's name here.
    #[arg(long)]
    pub saveas: Option<PathBuf>,
    /// File priorities, one per file: 0 highest, 1 normal, 2 lowest, -1 don't download.
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<String>,
    /// Ignore the resume record and check every piece on disk at start-up (the record is still written). Use it if
    /// the files may have been modified by another program after cyclone was killed: a record left by a crash is
    /// trusted as long as the files are still there and long enough.
    #[arg(long)]
    pub recheck: bool,
    /// Where resume records are kept (default ~/.cyclone/resume; empty, `--resume_dir ""`, = no resume records).
    /// A String, not a PathBuf: clap's path parser refuses the empty value that means "none".
    #[arg(long = "resume_dir")]
    pub resume_dir: Option<String>,
    /// Executors (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub shards: usize,
    /// Floor under tracker announce intervals, seconds (lower it for fast loopback trackers).
    #[arg(long = "min_announce_interval", default_value_t = 30, hide = true)]
    pub min_announce_interval: u64,
    /// Seconds between resume-record writes while downloading.
    #[arg(long = "resume_interval", default_value_t = 30, hide = true)]
    pub resume_interval: u64,
    /// MiB of memory per shard for pieces being downloaded (assembled, hashed and written whole). Beyond it, pieces
    /// are written block by block and verified from disk, which is slower; 0 = always that way.
    #[arg(long = "piece_memory", default_value_t = 256)]
    pub piece_memory: u64,
    /// Exit once the download is complete instead of seeding.
    #[arg(long = "exit-on-complete")]
    pub exit_on_complete: bool,
    /// Print one JSON object per status report instead of BitTornado's status block.
    #[arg(long)]
    pub json: bool,
    /// BitTornado's engine options, with its names and defaults.
    #[command(flatten)]
    pub session: SessionOptions,
}

pub fn run(args: &DownloadArgs) -> Result<(), CliError> {
    let metainfo = crate::torrent_file::read(&args.torrent)?;
    let config = args.session.apply(SessionConfig {
        shards: args.shards,
        ignore_resume: args.recheck,
        min_announce_interval: Duration::from_secs(args.min_announce_interval),
        resume_interval: Duration::from_secs(args.resume_interval.max(1)),
        piece_memory: args.piece_memory.min(1 << 20) << 20,
        ..Default::default()
    })?;
    let resume_dir = match &args.resume_dir {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cyclone/resume")),
    };
    run_session(
        config,
        metainfo,
        args.priority.as_deref(),
        args.saveas.as_deref(),
        resume_dir.as_deref(),
        args.exit_on_complete,
        args.json,
    )
}

/// Set by SIGINT/SIGTERM: stop cleanly (announce `stopped`, write the resume record).
pub(crate) static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    if STOP_REQUESTED.swap(true, Ordering::SeqCst) {
        // A second signal: the user does not want to wait for the clean stop.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

pub(crate) fn install_stop_signals() {
    let handler: extern "C" fn(libc::c_int) = on_stop_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

/// Runs one torrent until it fails, completes (with `exit_on_complete`) or the process is killed.
pub fn run_session(
    config: SessionConfig,
    metainfo: Metainfo,
    priority: Option<&str>,
    saveas: Option<&Path>,
    resume_dir: Option<&Path>,
    exit_on_complete: bool,
    json: bool,
) -> Result<(), CliError> {
    let cwd = std::env::current_dir().map_err(|source| CliError::Io {
        path: PathBuf::from("."),
        source,
    })?;
    let layout = TorrentConfig::layout_for(&metainfo, &cwd, saveas)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let name = String::from_utf8_lossy(&metainfo.info.name).into_owned();
    let dest = match saveas {
        Some(s) if s.is_absolute() => s.to_path_buf(),
        Some(s) => cwd.join(s),
        None => cwd.join(&name),
    };
    let resume_path = resume_dir.map(|d| d.join(format!("{}.resume", metainfo.info_hash)));
    let file_priorities = match priority.filter(|p| !p.is_empty()) {
        None => None,
        Some(text) => {
            match cyclone_engine::picker::parse_priority_list(text, metainfo.info.files.len()) {
                Ok(p) => Some(p),
                Err(e) => {
                    // BitTornado reports the error and downloads everything.
                    eprintln!("{e}");
                    None
                }
            }
        }
    };
    let torrent = TorrentConfig {
        metainfo,
        layout,
        resume_path,
        file_priorities,
        // One torrent: the session-wide limits (`--max_upload_rate`, `--max_download_rate`) are its limits.
        max_upload_rate: 0,
        max_download_rate: 0,
    };
    install_stop_signals();
    let handle = Session::start(config, vec![torrent])
        .map_err(|e| CliError::Failed(format!("couldn't start: {e}")))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "listening", "port": handle.listen_port()})
        );
    }
    let mut printer = Printer {
        name,
        dest,
        json,
        last_print: None,
    };
    let mut result = Ok(());
    let mut stopping = false;
    loop {
        // While stopping, look for the session's end often: the last status may be followed only by the exit.
        let wait = Duration::from_millis(if stopping { 10 } else { 200 });
        match handle.status.recv_timeout(wait) {
            Ok(status) => {
                printer.print(&status);
                match status.activity {
                    Activity::Failed => {
                        result = Err(CliError::Failed(
                            status.error.unwrap_or_else(|| "download failed".into()),
                        ));
                        handle.stop();
                        stopping = true;
                    }
                    Activity::Seeding if exit_on_complete && !stopping => {
                        handle.stop();
                        stopping = true;
                    }
                    _ => {}
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if STOP_REQUESTED.load(Ordering::SeqCst) && !stopping {
            handle.stop();
            stopping = true;
        }
        if handle.is_finished() {
            while let Ok(status) = handle.status.try_recv() {
                printer.print(&status);
            }
            break;
        }
    }
    handle.join().map_err(|e| CliError::Failed(e.to_string()))?;
    result
}

/// BitTornado's status block (btdownloadheadless) or JSON lines.
struct Printer {
    name: String,
    dest: PathBuf,
    json: bool,
    last_print: Option<Instant>,
}

impl Printer {
    fn print(&mut self, s: &TorrentStatus) {
        let fraction = if s.total_length == 0 {
            1.0
        } else {
            s.have_bytes as f64 / s.total_length as f64
        };
        // BitTornado prints at most every 0.1 s, except at 0 % and 100 %.
        let now = Instant::now();
        if let Some(last) = self.last_print {
            if now.duration_since(last) < Duration::from_millis(100)
                && fraction > 0.0
                && fraction < 1.0
            {
                return;
            }
        }
        self.last_print = Some(now);
        if self.json {
            let v = status_json(s);
            println!("{v}");
            return;
        }
        let mut out = String::from("\n\n\n\n");
        if let Some(e) = &s.error {
            out.push_str(&format!("ERROR:\n{e}\n"));
        }
        if let Some(m) = &s.tracker_message {
            out.push_str(&format!("ERROR:\n{m}\n"));
        }
        let (percent, time_left) = match s.activity {
            Activity::Checking(f) => (
                format!("{:.1}", f * 100.0),
                "checking existing data".to_string(),
            ),
            Activity::Seeding | Activity::Stopped if fraction >= 1.0 => {
                ("100.0".to_string(), "Download Succeeded!".to_string())
            }
            Activity::Failed => ("0".to_string(), "Download Failed!".to_string()),
            _ => {
                let left = s.total_length - s.have_bytes;
                let t = if s.download_rate > 0.0 {
                    fmttime(left as f64 / s.download_rate)
                } else {
                    "<unknown>".to_string()
                };
                (format!("{:.1}", fraction * 100.0), t)
            }
        };
        let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
        let share = if s.downloaded == 0 {
            if s.uploaded > 0 {
                "oo".to_string()
            } else {
                "0.000".to_string()
            }
        } else {
            format!("{:.3}", s.uploaded as f64 / s.downloaded as f64)
        };
        let seen = if fraction >= 1.0 {
            "seen recently"
        } else {
            "seen now"
        };
        out.push_str(&format!(
            "saving:        {} ({:.1} MB)\n\
             percent done:  {}\n\
             time left:     {}\n\
             download to:   {}\n\
             download rate: {:.1} kB/s\n\
             upload rate:   {:.1} kB/s\n\
             share rating:  {}  ({:.1} MB up / {:.1} MB down)\n\
             seed status:   {} {}, plus {:.3} distributed copies\n\
             peer status:   {} seen now, {:.1}% done at 0.0 kB/s",
            self.name,
            mb(s.total_length),
            percent,
            time_left,
            self.dest.display(),
            s.download_rate / 1000.0,
            s.upload_rate / 1000.0,
            share,
            mb(s.uploaded),
            mb(s.downloaded),
            s.seeds,
            seen,
            s.distributed_copies,
            s.peers,
            s.peers_done * 100.0,
        ));
        println!("{out}");
    }
}

/// One status report as the `--json` line of `cyclone download` (and `cyclone launchmany`).
pub(crate) fn status_json(s: &TorrentStatus) -> serde_json::Value {
    let fraction = if s.total_length == 0 {
        1.0
    } else {
        s.have_bytes as f64 / s.total_length as f64
    };
    serde_json::json!({
        "event": "status",
        "info_hash": hex(&s.info_hash),
        "activity": activity_name(s.activity),
        "resumed": s.resumed,
        "resume_record": resume_record_name(s.resume_record),
        "pieces_trusted": s.pieces_trusted,
        "pieces_rechecked": s.pieces_rechecked,
        "checking": match s.activity { Activity::Checking(f) => Some(f), _ => None },
        "percent_done": (fraction * 1000.0).round() / 10.0,
        "have_bytes": s.have_bytes,
        "total_bytes": s.total_length,
        "pieces_have": s.pieces_have,
        "piece_count": s.piece_count,
        "download_rate": s.download_rate,
        "upload_rate": s.upload_rate,
        "downloaded": s.downloaded,
        "uploaded": s.uploaded,
        "seeds": s.seeds,
        "distributed_copies": s.distributed_copies,
        "peers": s.peers,
        "hash_failures": s.hash_failures,
        "banned_peers": s.banned_peers,
        "tracker_message": s.tracker_message,
        "error": s.error,
    })
}

/// BitTornado's `fmttime`.
fn fmttime(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "<unknown>".into();
    }
    if secs == 0.0 {
        return "complete!".into();
    }
    let n = secs.round() as u64;
    let (m, s) = (n / 60, n % 60);
    let (h, m) = (m / 60, m % 60);
    if h > 1_000_000 {
        "<unknown>".into()
    } else if h > 0 {
        format!("{h} hour {m:02} min {s:02} sec")
    } else {
        format!("{m} min {s:02} sec")
    }
}

fn activity_name(a: Activity) -> &'static str {
    match a {
        Activity::Checking(_) => "checking",
        Activity::Downloading => "downloading",
        Activity::Seeding => "seeding",
        Activity::Failed => "failed",
        Activity::Stopped => "stopped",
    }
}

fn resume_record_name(r: ResumeRecordKind) -> &'static str {
    match r {
        ResumeRecordKind::None => "none",
        ResumeRecordKind::Clean => "clean",
        ResumeRecordKind::Crash => "crash",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmttime_matches_bittornado() {
        assert_eq!(fmttime(0.0), "complete!");
        assert_eq!(fmttime(59.4), "0 min 59 sec");
        assert_eq!(fmttime(3725.0), "1 hour 02 min 05 sec");
        assert_eq!(fmttime(f64::INFINITY), "<unknown>");
    }
}
