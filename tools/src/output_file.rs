//! Writing a `.torrent` without ever leaving a half-written file: write a sibling temporary
//! file, then rename it over the target. `-` writes to standard output.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Writes `bytes` to `path` (or stdout for `-`). With `overwrite` false an existing file is
/// an error, never replaced.
pub fn write(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), CliError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io { path, source }
    };
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|_| out.flush())
            .map_err(io(path));
    }
    if !overwrite && path.symlink_metadata().is_ok() {
        return Err(CliError::Failed(format!(
            "{} already exists (use --force to overwrite)",
            path.display()
        )));
    }
    let tmp = temporary_sibling(path);
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

fn temporary_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".cyclone-tmp-{}", std::process::id()));
    path.with_file_name(name)
}
