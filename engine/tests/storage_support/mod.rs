//! Shared by the storage tests: a glommio executor sized for an 8 MiB `ulimit -l`, and torrents built through the
//! real metainfo parser (so padding `attr`, paths and piece hashes take the same road as in production).

#![allow(dead_code)]

use cyclone_engine::piece_map::PieceMap;
use cyclone_engine::storage::{FileLayout, FilePool, Storage};
use cyclone_metainfo::bencode::Owned;
use cyclone_metainfo::Metainfo;
use glommio::{LocalExecutorBuilder, Placement};
use sha1::{Digest, Sha1};
use std::future::Future;
use std::path::Path;
use std::rc::Rc;

/// Runs `make()` on a fresh glommio executor (io_memory 2 MiB) and returns its output.
pub fn run<T, F, Fut>(make: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .name("storage-test")
        .spawn(make)
        .unwrap_or_else(|e| {
            panic!(
                "cannot start a glommio executor: {e}. If it says MemLockLimit, raise the locked-memory limit: \
                 `ulimit -l 4096` (KiB) or more"
            )
        })
        .join()
        .expect("executor thread")
}

/// One file of a test torrent: path components under the torrent name, length, BEP 47 padding.
pub struct TestFile {
    pub path: &'static [&'static str],
    pub length: u64,
    pub padding: bool,
}

pub const fn file(path: &'static [&'static str], length: u64) -> TestFile {
    TestFile {
        path,
        length,
        padding: false,
    }
}

pub const fn pad(path: &'static [&'static str], length: u64) -> TestFile {
    TestFile {
        path,
        length,
        padding: true,
    }
}

/// A multi-file torrent named `name` with deterministic content (padding files are zeros) and its real piece
/// hashes. Returns the parsed metainfo and the whole torrent's bytes.
pub fn torrent(
    name: &str,
    files: &[TestFile],
    piece_length: u64,
    seed: u64,
) -> (Metainfo, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut content = Vec::new();
    let mut list = Vec::new();
    for f in files {
        if f.padding {
            content.resize(content.len() + f.length as usize, 0);
        } else {
            content.extend((0..f.length).map(|_| rng.u8(..)));
        }
        let mut d = Owned::dict();
        d.insert("length", f.length as i64);
        d.insert(
            "path",
            Owned::List(f.path.iter().map(|&c| Owned::from(c)).collect()),
        );
        if f.padding {
            d.insert("attr", "p");
        }
        list.push(d);
    }
    let pieces: Vec<u8> = content
        .chunks(piece_length as usize)
        .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let mut info = Owned::dict();
    info.insert("files", Owned::List(list));
    info.insert("name", name);
    info.insert("piece length", piece_length as i64);
    info.insert("pieces", pieces);
    let mut top = Owned::dict();
    top.insert("info", info);
    let m = Metainfo::from_bytes(&top.encode()).expect("test torrent parses");
    (m, content)
}

/// Storage for `m` under `root` with a pool of `max_open` files.
pub fn storage(m: &Metainfo, root: &Path, pool: &Rc<FilePool>) -> Rc<Storage> {
    let map = PieceMap::from_info(&m.info).expect("geometry");
    let layout = FileLayout::from_info(root, &m.info).expect("layout");
    Rc::new(Storage::new(map, layout, pool.clone()).expect("storage"))
}

/// Writes the torrent's files under `root` with std (existing data for seeding/recheck tests); padding skipped.
pub fn write_files(m: &Metainfo, root: &Path, content: &[u8]) {
    let layout = FileLayout::from_info(root, &m.info).unwrap();
    let mut at = 0usize;
    for i in 0..layout.file_count() {
        let len = layout.length(i) as usize;
        if !layout.is_padding(i) {
            std::fs::create_dir_all(layout.path(i).parent().unwrap()).unwrap();
            std::fs::write(layout.path(i), &content[at..at + len]).unwrap();
        }
        at += len;
    }
}

/// Every regular file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// Pushes every file under `dir` out of the page cache (fsync, then `POSIX_FADV_DONTNEED`), so the next read is
/// cold and the recheck takes its O_DIRECT path.
pub fn evict(dir: &Path) {
    use std::os::unix::io::AsRawFd;
    for rel in tree(dir) {
        let f = std::fs::File::open(dir.join(rel)).unwrap();
        f.sync_all().unwrap();
        // SAFETY: plain system call on a descriptor we own.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
    }
}

/// Bytes of `path` in the page cache (mmap + mincore).
pub fn cached_bytes(path: &Path) -> u64 {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    if len == 0 {
        return 0;
    }
    let page = 4096usize;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: a private read-only mapping of a file we hold open, unmapped before returning; mincore writes one
    // byte per page into `vec`, which has exactly that many bytes.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let rc = libc::mincore(p, len, vec.as_mut_ptr());
        libc::munmap(p, len);
        assert_eq!(rc, 0);
    }
    vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * page as u64
}
