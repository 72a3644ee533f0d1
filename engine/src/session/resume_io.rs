//! The torrent's resume record on disk: loaded at start-up (valid record, or a crash record with intact files = no
//! recheck), saved after the data it lists has been fsynced: unclean while the torrent runs, clean at a graceful stop. File access runs on glommio's blocking pool, never on the executor.

use std::path::PathBuf;

use crate::bitfield::Bitfield;
use crate::resume::{self, Expected, FileStamp, ResumeDecision, ResumeRecord};

use super::torrent::Torrent;
use super::ResumeRecordKind;

/// Current size/mtime of every file of the torrent (`None`: missing or padding).
fn stamps(paths: &[Option<PathBuf>]) -> Vec<Option<FileStamp>> {
    paths
        .iter()
        .map(|p| {
            p.as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .filter(|m| m.is_file())
                .and_then(|m| FileStamp::from_metadata(&m))
        })
        .collect()
}

/// What the resume record allows at start-up.
pub(super) enum Resume {
    /// No usable record: recheck everything.
    None,
    /// Take these pieces and check nothing else: every file matches its stamp (`ResumeRecordKind::Clean`), or the
    /// record is from a crashed session and its files are intact (`Crash`).
    Trust(Bitfield, ResumeRecordKind),
    /// Take these pieces and recheck every other piece (files changed after a graceful stop, or cut after a crash).
    Recheck(Bitfield, ResumeRecordKind),
}

/// Loads the torrent's resume record and checks it against the files on disk (`ResumeRecord::decide`).
pub(super) async fn load(torrent: &Torrent) -> Resume {
    load_inner(torrent).await.unwrap_or(Resume::None)
}

async fn load_inner(torrent: &Torrent) -> Option<Resume> {
    let path = torrent.config.resume_path.clone()?;
    if torrent.shared.config.ignore_resume {
        log::info!("--recheck: ignoring the resume record {}", path.display());
        return None;
    }
    let expected = Expected::new(torrent.config.metainfo.info_hash, &torrent.map);
    let paths = torrent.file_paths();
    let (record, current) = glommio::executor()
        .spawn_blocking(move || (resume::load(&path, &expected), stamps(&paths)))
        .await;
    let record = match record {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            log::warn!("{e}; rechecking");
            return None;
        }
    };
    let kind = if record.clean {
        ResumeRecordKind::Clean
    } else {
        ResumeRecordKind::Crash
    };
    Some(match record.decide(&torrent.map, &current) {
        ResumeDecision::Trust(have) => Resume::Trust(have, kind),
        ResumeDecision::Recheck(have) => Resume::Recheck(have, kind),
    })
}

/// Writes the record while the torrent runs (`clean` 0: if this is the record found at the next start, this
/// session crashed). See [`save_as`].
pub(super) async fn save(torrent: &Torrent) {
    save_as(torrent, false).await;
}

/// The last write of a graceful stop (`clean` 1): after it, nothing touches the files, so the next start can hold
/// them to their stamps.
pub(super) async fn save_final(torrent: &Torrent) {
    save_as(torrent, true).await;
}

/// Writes the record: snapshot the bitfield, fsync the data, then stamp the files and replace the record atomically.
async fn save_as(torrent: &Torrent, clean: bool) {
    let Some(path) = torrent.config.resume_path.clone() else {
        return;
    };
    // Held to the end: writes never interleave, so the final clean record is the last one written.
    let Ok(_permit) = torrent.resume_lock.acquire_permit(1).await else {
        return; // the semaphore is never closed
    };
    let have = {
        let mut st = torrent.st.borrow_mut();
        if !st.ready || st.resume_final_written {
            return;
        }
        st.resume_final_written = clean;
        st.resume_saved_pieces = st.have.count_ones();
        st.have.clone()
    };
    if let Err(e) = torrent.storage.sync().await {
        log::warn!("not saving resume data: {e}");
        return;
    }
    let info_hash = torrent.config.metainfo.info_hash;
    let piece_length = torrent.map.piece_length();
    let paths = torrent.file_paths();
    let result = glommio::executor()
        .spawn_blocking(move || {
            let record = ResumeRecord {
                info_hash,
                piece_length,
                have,
                files: stamps(&paths),
                clean,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            resume::write_atomically(&path, &record.encode())
        })
        .await;
    if let Err(e) = result {
        log::warn!("writing resume data: {e}");
    }
}
