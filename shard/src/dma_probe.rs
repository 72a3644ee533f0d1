//! Workaround for glommio 0.9's DMA iopoll probe trap.
//!
//! glommio decides once per block device and process whether to use its IOPOLL ring, by issuing an
//! O_DIRECT read at offset 0 of the first `DmaFile` opened on that device. If that first file is
//! readable but empty, the read returns EOF without touching the device, glommio wrongly marks the
//! device pollable, and every later DMA read on it fails with EOPNOTSUPP (os error 95) on devices
//! without polling (virtio-blk here). Opening any non-empty file on the same device first makes the
//! probe see the real answer. Call [`warm_dma_probe`] on an executor before opening DMA files in `dir`.

use std::path::{Path, PathBuf};

use crate::ShardError;

/// Name of the small file we create when `dir` holds no non-empty regular file.
const PROBE_FILE: &str = ".cyclone-dma-probe";

/// Makes glommio probe the device of `dir` with a non-empty file. Must run inside a glommio
/// executor, once per device, before any other `DmaFile` of that device is opened. Returns the
/// file used for the probe.
pub async fn warm_dma_probe(dir: &Path) -> Result<PathBuf, ShardError> {
    let path = match find_non_empty_file(dir) {
        Some(p) => p,
        None => {
            let p = dir.join(PROBE_FILE);
            std::fs::write(&p, [0u8; 4096])
                .map_err(|e| ShardError::io(format!("writing {}", p.display()), e))?;
            p
        }
    };
    let file = glommio::io::DmaFile::open(&path).await.map_err(|e| {
        ShardError::io(
            format!("opening {} for the DMA probe", path.display()),
            std::io::Error::other(e.to_string()),
        )
    })?;
    let _ = file.close().await;
    Ok(path)
}

/// A non-empty regular file directly in `dir`, if any (bounded scan: at most 64 entries).
fn find_non_empty_file(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.take(64).flatten() {
        if let Ok(md) = entry.metadata() {
            if md.is_file() && md.len() > 0 {
                return Some(entry.path());
            }
        }
    }
    None
}
