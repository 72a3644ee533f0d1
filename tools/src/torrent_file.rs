//! Reading `.torrent` files from disk (or standard input) into [`Metainfo`], with the path in every error.

use std::io::Read;
use std::path::Path;

use cyclone_metainfo::bencode::Limits;
use cyclone_metainfo::Metainfo;

use crate::error::CliError;

/// Reads and parses one torrent file. `-` reads standard input. Files larger than the bencode input limit are refused
/// before they are read whole.
pub fn read(path: &Path) -> Result<Metainfo, CliError> {
    let max = Limits::default().max_input_bytes as u64;
    let io_err = |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
            .map_err(io_err)?;
    }
    Metainfo::from_bytes(&bytes).map_err(|source| CliError::Metainfo {
        path: path.to_path_buf(),
        source,
    })
}
