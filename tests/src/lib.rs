//! Helpers for cyclone's end-to-end tests: locate the built `cyclone` binary, require third-party programs, run
//! commands with a time limit.
//!
//! Third-party peers (mktorrent, transmission-cli, aria2, python3-libtorrent, opentracker) are installed by `.ci/run`.
//! A test that needs one and does not find it FAILS with the install command, unless `CYCLONE_SKIP_MISSING_PEERS=1`
//! is set, in which case it prints why and returns early. A missing peer never makes a test pass silently.

pub mod cyclone_tracker;
pub mod mini_tracker;
pub mod opentracker;
pub mod swarm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the `cyclone` binary built by the same `cargo test` run. `cargo test --workspace` builds it because the
/// `cyclone-tools` package has integration tests of its own.
pub fn cyclone_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>  ->  target/<profile>/cyclone
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("cyclone");
    assert!(
        bin.exists(),
        "{} does not exist: run the tests with `cargo test --workspace` (which builds it), or `cargo build -p cyclone-tools` first",
        bin.display()
    );
    bin
}

/// Whether `program` is on PATH (or is an existing path).
pub fn have_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Checks that a third-party program is installed. Returns `false` (after printing why) only when the environment
/// explicitly allows skipping; otherwise a missing program fails the test with the command that installs it.
#[must_use]
pub fn require_program(program: &str, debian_package: &str) -> bool {
    if have_program(program) {
        return true;
    }
    let hint = format!("`{program}` is not installed: run `apt-get install {debian_package}` (or `bash .ci/run`, which installs every test peer)");
    if std::env::var_os("CYCLONE_SKIP_MISSING_PEERS").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED (CYCLONE_SKIP_MISSING_PEERS=1): {hint}");
        return false;
    }
    panic!("{hint}");
}

/// Checks that Debian's python3 can import libtorrent.
#[must_use]
pub fn require_python_libtorrent() -> bool {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    require_program("/nonexistent/python3-libtorrent", "python3-libtorrent")
}

/// Runs a command to completion, killing it after `limit`. Panics (with the command line) if it cannot start or
/// overruns: a test must never hang.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    let description = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let start = Instant::now();
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("wait_with_output"),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait_with_output");
                panic!(
                    "{description} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Waits for a child for at most `limit`, killing it (and panicking) if it overruns.
pub fn wait_with_limit(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command that must succeed; returns its stdout as text.
pub fn run_ok(cmd: &mut Command) -> String {
    let description = format!("{cmd:?}");
    let out = run_with_limit(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{description} failed with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `len` bytes of deterministic pseudo-random data (xorshift) to `path`.
pub fn write_pseudo_random(path: &Path, len: usize, seed: u64) {
    let mut state = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create_dir_all");
    }
    std::fs::write(path, data).expect("write test data");
}

/// A child process killed (and reaped) when dropped, so a failing test never leaves peers running.
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    /// Starts `cmd` with stdout/stderr sent to `log` (a file, for the failure message).
    pub fn spawn(cmd: &mut Command, log: &Path) -> ChildGuard {
        let out = std::fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        ChildGuard(child)
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now (for peers that cannot be told to pick their own).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
