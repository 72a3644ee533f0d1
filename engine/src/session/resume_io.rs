//! The torrent's resume record on disk: loaded at start-up (valid record = no recheck), saved after the data it
//! lists has been fsynced. File access runs on glommio's blocking pool, never on the executor.

use std::path::PathBuf;

use crate::bitfield::Bitfield;
use crate::resume::{self, Expected, FileStamp, ResumeRecord};

use super::torrent::Torrent;

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

fn file_paths(torrent: &Torrent) -> Vec<Option<PathBuf>> {
    let layout = torrent.storage.layout();
    (0..layout.file_count())
        .map(|i| (!layout.is_padding(i)).then(|| layout.path(i).to_path_buf()))
        .collect()
}

/// What the resume record allows at start-up.
pub(super) enum Resume {
    /// No usable record: recheck everything.
    None,
    /// Every file matches its stamp: these pieces, no recheck.
    Valid(Bitfield),
    /// Some files changed since the record (e.g. a crash mid-download): trust these pieces, recheck the rest.
    Partial(Bitfield),
}

/// Loads the torrent's resume record and checks it against the files on disk.
pub(super) async fn load(torrent: &Torrent) -> Resume {
    load_inner(torrent).await.unwrap_or(Resume::None)
}

async fn load_inner(torrent: &Torrent) -> Option<Resume> {
    let path = torrent.config.resume_path.clone()?;
    let expected = Expected::new(torrent.config.metainfo.info_hash, &torrent.map);
    let paths = file_paths(torrent);
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
    let trusted = record.trusted_have(&torrent.map, &current);
    // Only a record that still holds entirely skips the recheck.
    Some(if trusted == record.have {
        Resume::Valid(trusted)
    } else {
        Resume::Partial(trusted)
    })
}

/// Writes the record: snapshot the bitfield, fsync the data, then stamp the files and replace the record atomically.
pub(super) async fn save(torrent: &Torrent) {
    let Some(path) = torrent.config.resume_path.clone() else {
        return;
    };
    let have = {
        let st = torrent.st.borrow();
        if !st.ready {
            return;
        }
        st.have.clone()
    };
    if let Err(e) = torrent.storage.sync().await {
        log::warn!("not saving resume data: {e}");
        return;
    }
    let info_hash = torrent.config.metainfo.info_hash;
    let piece_length = torrent.map.piece_length();
    let paths = file_paths(torrent);
    let result = glommio::executor()
        .spawn_blocking(move || {
            let record = ResumeRecord {
                info_hash,
                piece_length,
                have,
                files: stamps(&paths),
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
