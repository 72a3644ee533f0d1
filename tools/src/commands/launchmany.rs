//! `cyclone launchmany DIR`: download and seed every `.torrent` in a directory, watching it for new, changed and
//! removed files (BitTornado's btlaunchmany, seeds-behaviour §4.11), on one engine [`Session`]: one listening port,
//! one session-wide rate budget, torrents added and removed while it runs. Also the implementation behind the
//! `btlaunchmany` alias ([`crate::bittornado_launchmany`]).
//!
//! Every `parse_dir_interval` the directory is rescanned ([`TorrentDir`]); every `display_interval` one line per
//! torrent is printed in btlaunchmany's headless format, or (`--json`) every status report is a JSON line. Messages
//! are btlaunchmany's (`### added "path"`, `### dropped "path"`, `### DIED: "path"`, `### **warning** ...`,
//! `### shutting down`, `### no torrents`). SIGINT/SIGTERM stop every torrent cleanly (`stopped` announced, final
//! resume write) and exit 0.
//!
//! Differences from BitTornado: one peer id for the session (BitTornado gave each torrent its own 3-character
//! counter); start-up hash checks run one at a time per shard (BitTornado: one at a time in the process).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use cyclone_engine::session::{Activity, Session, SessionConfig, TorrentConfig, TorrentStatus};
use cyclone_metainfo::Metainfo;

use crate::commands::download::{install_stop_signals, status_json, STOP_REQUESTED};
use crate::download_options::{secs, SessionOptions};
use crate::error::CliError;
use crate::torrent_dir::{DirEvent, TorrentDir};

#[derive(Debug, clap::Args)]
pub struct LaunchmanyArgs {
    /// The directory to watch for .torrent files (semi-recursive: subdirectories are looked at only in
    /// directories without any .torrent).
    pub dir: PathBuf,
    /// Parent directory for all downloads (default: the directory each .torrent is in).
    #[arg(long)]
    pub saveas: Option<PathBuf>,
    /// Seconds between rescans of the directory.
    #[arg(long = "parse_dir_interval", default_value_t = 60.0)]
    pub parse_dir_interval: f64,
    /// Where each torrent is saved, in the parent directory D: 1 = D/<torrent file name without .torrent>,
    /// 2 = D/<name in the torrent>, 3 = D/<torrent file name>/<name in the torrent> (multi-file: D/<torrent file
    /// name>).
    #[arg(long = "saveas_style", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub saveas_style: u8,
    /// Show each torrent's .torrent path (1) or the name in the torrent (0).
    #[arg(long = "display_path", default_value_t = 1)]
    pub display_path: u8,
    /// Where resume records are kept (default ~/.cyclone/resume; `--resume_dir ""` = none).
    #[arg(long = "resume_dir")]
    pub resume_dir: Option<String>,
    /// Executors (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub shards: usize,
    /// Floor under tracker announce intervals, seconds (lower it for fast loopback trackers).
    #[arg(long = "min_announce_interval", default_value_t = 30, hide = true)]
    pub min_announce_interval: u64,
    /// MiB of memory per shard for pieces being downloaded.
    #[arg(long = "piece_memory", default_value_t = 256)]
    pub piece_memory: u64,
    /// Print one JSON object per status report and per message instead of btlaunchmany's lines.
    #[arg(long)]
    pub json: bool,
    /// BitTornado's engine options, with its names and defaults.
    #[command(flatten)]
    pub session: SessionOptions,
}

/// btlaunchmany's `saveas_style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveasStyle {
    /// 1: `D/x` for `x.torrent`.
    TorrentFileName,
    /// 2: `D/<info.name>`.
    NameInTorrent,
    /// 3: `D/x/<info.name>` (single-file; the directory `D/x` is created), `D/x` (multi-file).
    DirectoryPerTorrent,
}

impl SaveasStyle {
    pub fn from_number(n: i64) -> Result<SaveasStyle, CliError> {
        match n {
            1 => Ok(SaveasStyle::TorrentFileName),
            2 => Ok(SaveasStyle::NameInTorrent),
            3 => Ok(SaveasStyle::DirectoryPerTorrent),
            _ => Err(CliError::Usage(format!(
                "--saveas_style {n}: must be 1, 2 or 3"
            ))),
        }
    }
}

/// What launchmany does besides the engine options.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub dir: PathBuf,
    pub saveas: Option<PathBuf>,
    pub parse_dir_interval: Duration,
    pub saveas_style: SaveasStyle,
    pub display_path: bool,
    pub resume_dir: Option<PathBuf>,
    pub json: bool,
}

pub fn run(args: &LaunchmanyArgs) -> Result<(), CliError> {
    let config = args.session.apply(SessionConfig {
        shards: args.shards,
        min_announce_interval: Duration::from_secs(args.min_announce_interval),
        piece_memory: args.piece_memory.min(1 << 20) << 20,
        ..Default::default()
    })?;
    let resume_dir = match &args.resume_dir {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => default_resume_dir(),
    };
    launch_many(
        config,
        LaunchOptions {
            dir: args.dir.clone(),
            saveas: args.saveas.clone(),
            parse_dir_interval: secs(args.parse_dir_interval),
            saveas_style: SaveasStyle::from_number(i64::from(args.saveas_style))?,
            display_path: args.display_path != 0,
            resume_dir,
            json: args.json,
        },
    )
}

/// `~/.cyclone/resume`, as `cyclone download`.
pub fn default_resume_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cyclone/resume"))
}

/// Where `metainfo` (from `torrent_path`) is saved: the path given to [`TorrentConfig::layout_for`] as `saveas`
/// (a file for a single-file torrent, a directory for a multi-file one). Style 3 creates its directory.
pub fn save_location(
    style: SaveasStyle,
    torrent_path: &Path,
    parent: Option<&Path>,
    metainfo: &Metainfo,
) -> Result<PathBuf, String> {
    let d = parent
        .or_else(|| torrent_path.parent())
        .unwrap_or(Path::new("."));
    let x = torrent_path
        .file_stem()
        .ok_or_else(|| format!("{} has no file name", torrent_path.display()))?;
    let name = String::from_utf8_lossy(&metainfo.info.name).into_owned();
    // The name comes from the torrent: one ordinary path component, never `..` or a path.
    let mut parts = Path::new(&name).components();
    if !matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    ) {
        return Err(format!("unsafe name in the torrent: {name:?}"));
    }
    Ok(match style {
        SaveasStyle::TorrentFileName => d.join(x),
        SaveasStyle::NameInTorrent => d.join(&name),
        SaveasStyle::DirectoryPerTorrent if metainfo.info.is_single_file => {
            let dir = d.join(x);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            dir.join(&name)
        }
        SaveasStyle::DirectoryPerTorrent => d.join(x),
    })
}

/// Dropped torrents whose last (Stopped) status is still awaited, at most. A last report the engine had to give up
/// (status channel full) would otherwise keep its entry for the life of the process; beyond the bound a dropped
/// torrent's last JSON status is simply not printed.
const MAX_LEAVING: usize = 1024;

/// A torrent of the directory, as the display shows it.
struct Shown {
    path: PathBuf,
    info_hash: [u8; 20],
    name: String,
    last: Option<TorrentStatus>,
    died: bool,
}

/// Runs until SIGINT/SIGTERM.
pub fn launch_many(config: SessionConfig, opts: LaunchOptions) -> Result<(), CliError> {
    if !opts.dir.is_dir() {
        return Err(CliError::Usage(format!(
            "Warning: {} is not a directory",
            opts.dir.display()
        )));
    }
    let display_interval = config.display_interval;
    install_stop_signals();
    let handle = Session::start(config, Vec::new())
        .map_err(|e| CliError::Failed(format!("couldn't start: {e}")))?;
    let out = Output { json: opts.json };
    if opts.json {
        println!(
            "{}",
            serde_json::json!({"event": "listening", "port": handle.listen_port()})
        );
    }
    let mut dir = TorrentDir::default();
    let mut shown: Vec<Shown> = Vec::new();
    // Dropped torrents still shutting down, for their last (Stopped) JSON status.
    let mut leaving: HashMap<[u8; 20], PathBuf> = HashMap::new();
    let mut next_scan = Instant::now();
    let mut next_display = Instant::now() + display_interval;
    let mut stopping = false;
    loop {
        let now = Instant::now();
        if !stopping && STOP_REQUESTED.load(Ordering::SeqCst) {
            out.message("shutting down", "shutting_down", None);
            handle.stop();
            stopping = true;
        }
        if !stopping && now >= next_scan {
            next_scan = now + opts.parse_dir_interval;
            for event in dir.rescan(&opts.dir) {
                apply(
                    &handle,
                    &opts,
                    &out,
                    &mut dir,
                    &mut shown,
                    &mut leaving,
                    event,
                );
            }
        }
        if !stopping && now >= next_display {
            next_display = now + display_interval;
            if !opts.json {
                println!();
                if shown.is_empty() {
                    out.message("no torrents", "no_torrents", None);
                }
                for t in &shown {
                    println!("{}", headless_line(&t.name, t.last.as_ref()));
                }
            }
        }
        let wait = if stopping {
            Duration::from_millis(10)
        } else {
            next_scan
                .min(next_display)
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(10), Duration::from_millis(200))
        };
        match handle.status.recv_timeout(wait) {
            Ok(status) => on_status(&handle, &out, &mut dir, &mut shown, &mut leaving, status),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if stopping && handle.is_finished() {
            while let Ok(status) = handle.status.try_recv() {
                on_status(&handle, &out, &mut dir, &mut shown, &mut leaving, status);
            }
            break;
        }
    }
    handle.join().map_err(|e| CliError::Failed(e.to_string()))
}

/// One change of the directory.
fn apply(
    handle: &cyclone_engine::session::SessionHandle,
    opts: &LaunchOptions,
    out: &Output,
    dir: &mut TorrentDir,
    shown: &mut Vec<Shown>,
    leaving: &mut HashMap<[u8; 20], PathBuf>,
    event: DirEvent,
) {
    match event {
        DirEvent::Broken { path } => out.message(
            &format!("**warning** {} has errors", path.display()),
            "warning",
            Some(&path),
        ),
        DirEvent::Duplicate { path, original } => out.message(
            &format!(
                "**warning** {} is a duplicate torrent for {}",
                path.display(),
                original.display()
            ),
            "warning",
            Some(&path),
        ),
        DirEvent::Dropped { path, info_hash } => {
            out.message(
                &format!("dropped \"{}\"", path.display()),
                "dropped",
                Some(&path),
            );
            let Some(i) = shown.iter().position(|t| t.path == path) else {
                return;
            };
            let t = shown.remove(i);
            if !t.died {
                match handle.remove_torrent(&info_hash) {
                    Ok(()) => {
                        if leaving.len() < MAX_LEAVING {
                            leaving.insert(info_hash, path);
                        }
                    }
                    Err(e) => out.message(&format!("FAILURE: {e}"), "failure", Some(&path)),
                }
            }
        }
        DirEvent::Added { path, metainfo } => {
            out.message(
                &format!("added \"{}\"", path.display()),
                "added",
                Some(&path),
            );
            let name = if opts.display_path {
                path.display().to_string()
            } else {
                metainfo.info.display_name()
            };
            let info_hash = *metainfo.info_hash.as_bytes();
            let started = torrent_config(opts, &path, *metainfo)
                .and_then(|t| handle.add_torrent(t).map_err(|e| e.to_string()));
            let died = match started {
                Ok(()) => false,
                Err(e) => {
                    out.message(&format!("FAILURE: {e}"), "failure", Some(&path));
                    out.message(
                        &format!("DIED: \"{}\"", path.display()),
                        "died",
                        Some(&path),
                    );
                    dir.block(&path);
                    true
                }
            };
            leaving.remove(&info_hash);
            shown.push(Shown {
                path,
                info_hash,
                name,
                last: None,
                died,
            });
        }
    }
}

fn torrent_config(
    opts: &LaunchOptions,
    path: &Path,
    metainfo: Metainfo,
) -> Result<TorrentConfig, String> {
    let saveas = save_location(opts.saveas_style, path, opts.saveas.as_deref(), &metainfo)?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let layout =
        TorrentConfig::layout_for(&metainfo, &cwd, Some(&saveas)).map_err(|e| e.to_string())?;
    let resume_path = opts
        .resume_dir
        .as_ref()
        .map(|d| d.join(format!("{}.resume", metainfo.info_hash)));
    Ok(TorrentConfig {
        metainfo,
        layout,
        resume_path,
        file_priorities: None,
        // BitTornado's launchmany had per-torrent download limits from the same option; here the session-wide
        // budgets (`--max_upload_rate`, `--max_download_rate`) cover every torrent together.
        max_upload_rate: 0,
        max_download_rate: 0,
    })
}

/// A status report from the session.
fn on_status(
    handle: &cyclone_engine::session::SessionHandle,
    out: &Output,
    dir: &mut TorrentDir,
    shown: &mut [Shown],
    leaving: &mut HashMap<[u8; 20], PathBuf>,
    status: TorrentStatus,
) {
    let current = shown
        .iter_mut()
        .find(|t| t.info_hash == status.info_hash && !t.died);
    let path = match current {
        Some(t) => {
            if status.activity == Activity::Failed {
                t.died = true;
                out.message(
                    &format!("DIED: \"{}\"", t.path.display()),
                    "died",
                    Some(&t.path),
                );
                dir.block(&t.path);
                let _ = handle.remove_torrent(&t.info_hash);
            }
            t.last = Some(status.clone());
            t.path.clone()
        }
        None => match leaving.get(&status.info_hash) {
            Some(p) => {
                let p = p.clone();
                if status.activity == Activity::Stopped {
                    leaving.remove(&status.info_hash);
                }
                p
            }
            None => return,
        },
    };
    if out.json {
        let mut v = status_json(&status);
        v["path"] = serde_json::json!(path.display().to_string());
        println!("{v}");
    }
}

/// btlaunchmany's messages (`### text`) or JSON events.
struct Output {
    json: bool,
}

impl Output {
    fn message(&self, text: &str, event: &str, path: Option<&Path>) {
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "event": event,
                    "message": text,
                    "path": path.map(|p| p.display().to_string()),
                })
            );
        } else {
            println!("### {text}");
        }
    }
}

/// btlaunchmany's headless line for one torrent (`HeadlessDisplayer.display`, values from `LaunchMany.stats`).
pub fn headless_line(name: &str, s: Option<&TorrentStatus>) -> String {
    let (mut status, mut progress) = ("waiting for hash check".to_string(), "0.0%".to_string());
    let (mut peers, mut seeds, mut seedsmsg, mut dist) = (0usize, 0usize, "S", 0.0f64);
    let (mut up, mut down, mut upamt, mut dnamt) = (0.0f64, 0.0f64, 0u64, 0u64);
    let mut msg = String::new();
    if let Some(s) = s {
        match s.activity {
            Activity::Stopped | Activity::Failed => status = "stopped".into(),
            Activity::Checking(f) => {
                status = "checking existing data".into();
                progress = format!("{:.1}%", f * 100.0);
            }
            Activity::Seeding => {
                status = "seeding".into();
                progress = "100.0%".into();
                seeds = s.seeds;
                seedsmsg = "s";
                dist = s.distributed_copies;
            }
            Activity::Downloading => {
                status = if s.seeds + s.peers > 0 {
                    let left = s.total_length.saturating_sub(s.have_bytes) as f64;
                    let t = if s.download_rate > 0.0 {
                        left / s.download_rate
                    } else {
                        -1.0
                    };
                    fmttime(t)
                } else {
                    "connecting to peers".into()
                };
                let frac = if s.total_length == 0 {
                    1.0
                } else {
                    s.have_bytes as f64 / s.total_length as f64
                };
                progress = format!("{:.1}%", (frac * 1000.0).floor() / 10.0);
                seeds = s.seeds;
                dist = s.distributed_copies;
                down = s.download_rate;
            }
        }
        if !matches!(s.activity, Activity::Checking(_)) {
            peers = s.peers;
            up = s.upload_rate;
            upamt = s.uploaded;
            dnamt = s.downloaded;
        }
        msg = s
            .error
            .clone()
            .or_else(|| s.tracker_message.clone())
            .unwrap_or_default();
    }
    format!(
        "\"{name}\": \"{status}\" ({progress}) - {peers}P{seeds}{seedsmsg}{dist:.3}D u{:.1}K/s-d{:.1}K/s u{}K-d{}K \"{msg}\"",
        up / 1000.0,
        down / 1000.0,
        upamt / 1024,
        dnamt / 1024,
    )
}

/// btlaunchmany's `fmttime`: `h:mm:ss`, `<unknown>` outside 0..60 days.
fn fmttime(secs: f64) -> String {
    if !secs.is_finite() || !(0.0..5_184_000.0).contains(&secs) {
        return "<unknown>".into();
    }
    let n = secs as u64;
    format!("{}:{:02}:{:02}", n / 3600, n / 60 % 60, n % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, multi: bool) -> Metainfo {
        let mut b = b"d4:infod".to_vec();
        if multi {
            b.extend_from_slice(b"5:filesld6:lengthi5e4:pathl1:feee");
        } else {
            b.extend_from_slice(b"6:lengthi5e");
        }
        b.extend_from_slice(format!("4:name{}:{}", name.len(), name).as_bytes());
        b.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
        b.extend_from_slice(&[1u8; 20]);
        b.extend_from_slice(b"ee");
        Metainfo::from_bytes(&b).unwrap()
    }

    #[test]
    fn save_locations_follow_saveas_style() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("x.torrent");
        let single = meta("n.bin", false);
        let multi = meta("n", true);
        use SaveasStyle::*;
        let loc = |s, p: Option<&Path>, m: &Metainfo| save_location(s, &t, p, m).unwrap();
        assert_eq!(loc(TorrentFileName, None, &single), d.path().join("x"));
        assert_eq!(loc(TorrentFileName, None, &multi), d.path().join("x"));
        assert_eq!(loc(NameInTorrent, None, &single), d.path().join("n.bin"));
        assert_eq!(loc(NameInTorrent, None, &multi), d.path().join("n"));
        assert_eq!(
            loc(DirectoryPerTorrent, None, &single),
            d.path().join("x/n.bin")
        );
        assert!(d.path().join("x").is_dir());
        assert_eq!(loc(DirectoryPerTorrent, None, &multi), d.path().join("x"));
        let s = Path::new("/srv/data");
        assert_eq!(loc(NameInTorrent, Some(s), &single), s.join("n.bin"));
        assert_eq!(loc(TorrentFileName, Some(s), &multi), s.join("x"));
        // (`..` and `/` in info.name are already refused by the metainfo parser; save_location checks again.)
    }

    #[test]
    fn headless_lines_match_btlaunchmany() {
        assert_eq!(
            headless_line("a.torrent", None),
            "\"a.torrent\": \"waiting for hash check\" (0.0%) - 0P0S0.000D u0.0K/s-d0.0K/s u0K-d0K \"\""
        );
        assert_eq!(fmttime(3725.0), "1:02:05");
        assert_eq!(fmttime(-1.0), "<unknown>");
    }
}
