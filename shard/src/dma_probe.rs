//! Workaround for glommio 0.9's DMA iopoll probe trap.
//!
//! glommio decides once per block device and thread whether to use its IOPOLL ring, by issuing an O_DIRECT read at
//! offset 0 of the first `DmaFile` opened on that device. If that read does not reach the device (an empty file,
//! or a sparse file with a hole at offset 0 — a download just started), it "succeeds", glommio wrongly marks the
//! device pollable, and every later DMA read or write on it fails with EOPNOTSUPP (os error 95) on devices without
//! polling (virtio-blk here). [`ensure_probed`] makes that first open a file of real data.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

thread_local! {
    /// Devices (st_dev) this thread has probed with a file of real data.
    static PROBED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Runs glommio's per-thread, per-device probe for the device of `dir` on a file of real data: writes a 4 KiB file
/// of non-zero bytes in `dir`, opens it as a `DmaFile` (the probe reads its offset 0; an O_DIRECT read first
/// flushes the dirty page, so it reaches the device), closes and removes it. Once per device and thread; call it on
/// the executor before opening other DMA files on that device. False if it could not be done (the caller should
/// then avoid O_DIRECT there). File work runs on glommio's blocking pool.
pub async fn ensure_probed(dir: &Path) -> bool {
    let d = dir.to_path_buf();
    let Ok(dev) = glommio::executor()
        .spawn_blocking(move || std::fs::metadata(&d).map(|m| m.dev()))
        .await
    else {
        return false;
    };
    if PROBED.with(|p| p.borrow().contains(&dev)) {
        return true;
    }
    // Unique per process, thread and moment: two shards may probe the same directory at once.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let probe = dir.join(format!(
        ".cyclone-dma-probe-{}-{:?}-{nanos}",
        std::process::id(),
        std::thread::current().id()
    ));
    let p = probe.clone();
    let written = glommio::executor()
        .spawn_blocking(move || std::fs::write(&p, [0xa5u8; 4096]))
        .await;
    if written.is_err() {
        return false;
    }
    let ok = match glommio::io::DmaFile::open(&probe).await {
        Ok(f) => {
            let _ = f.close().await;
            true
        }
        Err(_) => false,
    };
    let p = probe.clone();
    let _ = glommio::executor()
        .spawn_blocking(move || std::fs::remove_file(&p))
        .await;
    if ok {
        PROBED.with(|p| p.borrow_mut().insert(dev));
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_once_per_device_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(512 << 10)
            .make()
            .unwrap();
        let path = dir.path().to_path_buf();
        ex.run(async move {
            assert!(ensure_probed(&path).await);
            // The device is now known: no second probe file is written (a read-only directory would show it, but
            // tests run as root; check the set instead).
            let dev = std::fs::metadata(&path).unwrap().dev();
            assert!(PROBED.with(|p| p.borrow().contains(&dev)));
            assert!(ensure_probed(&path).await);
            assert!(!ensure_probed(&path.join("missing")).await);
        });
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe file removed"
        );
    }
}
