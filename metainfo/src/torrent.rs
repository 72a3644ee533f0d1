//! Metainfo (`.torrent`) types, parsing and validation.
//!
//! Parsing is lenient about key order (real-world torrents are not always canonical) but strict about meaning: a
//! torrent that [`Metainfo::from_bytes`] accepts has a consistent piece count, safe paths, and no duplicate files.
//! Every key we do not model is kept (in `extra`, as its original bytes), and the `info` dictionary is kept as its
//! exact raw bytes, so an edit tool can rewrite a torrent without losing anything or changing its info-hash.
//! Names that are not UTF-8 are read and kept as bytes; they are shown lossily ([`Info::display_name`]) but never
//! refused for that alone.

use std::collections::{BTreeMap, HashSet};

use crate::bencode::{DecodeOptions, Owned, Reader, ValueType};
use crate::error::MetainfoError;
use crate::info_hash::InfoHash;
use crate::path_rules;

/// Largest piece length we accept when reading: far above any real torrent (libtorrent caps at 128 MiB), and small
/// enough that one piece always fits in memory.
pub const MAX_PIECE_LENGTH: u64 = 512 << 20;

/// Most files a torrent may list (real torrents with ~100k files exist; this bounds a hostile one).
pub const MAX_FILES: usize = 1_000_000;

/// A parsed and validated metainfo file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the raw `info` bytes.
    pub info_hash: InfoHash,
    pub info: Info,
    /// `announce`, if present.
    pub announce: Option<String>,
    /// `announce-list` (BEP 12): tiers of tracker URLs. Empty when absent.
    pub announce_list: Vec<Vec<String>>,
    /// `httpseeds` (BEP 17). Empty when absent.
    pub httpseeds: Vec<String>,
    /// `url-list` (BEP 19), read from either a single string or a list. Empty when absent.
    pub url_list: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    pub encoding: Option<String>,
    /// Every top-level key except `info` (which is [`Info::raw`]) with its original encoded bytes, in sorted key
    /// order. [`Metainfo::to_document`] puts the two together for editors.
    pub raw_top_level: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The `info` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `name` as raw bytes (suggested file or directory name).
    pub name: Vec<u8>,
    /// `name.utf-8`, if present.
    pub name_utf8: Option<Vec<u8>>,
    pub piece_length: u64,
    /// `pieces`, split into 20-byte SHA-1 digests.
    pub pieces: Vec<[u8; 20]>,
    /// The files in torrent order. A single-file torrent has one entry whose path is `[name]`.
    pub files: Vec<FileEntry>,
    /// True if the torrent uses `length` (one file) rather than `files`.
    pub is_single_file: bool,
    /// `private` (BEP 27): `Some(true)` for `private=1`, `Some(false)` for any other value, `None` when absent.
    pub private: Option<bool>,
    /// `source` (used by private trackers to make cross-seeded torrents distinct).
    pub source: Option<Vec<u8>>,
    /// The exact bytes of the `info` dictionary as found in the file.
    pub raw: Vec<u8>,
    /// Keys of `info` that are not modelled above (e.g. `md5sum`, `meta version`), with their original bytes.
    pub extra: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components as raw bytes. For a single-file torrent: `[name]`.
    pub path: Vec<Vec<u8>>,
    /// `path.utf-8`, if present.
    pub path_utf8: Option<Vec<Vec<u8>>>,
    pub length: u64,
    /// BEP 47 `attr` (e.g. `p` for a padding file), if present.
    pub attr: Option<Vec<u8>>,
    /// Other keys of this file's dictionary, with their original bytes.
    pub extra: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl FileEntry {
    /// The path joined with `/`, non-UTF-8 bytes shown lossily. Prefers `path.utf-8` when present. For display only.
    pub fn display_path(&self) -> String {
        let components = self.path_utf8.as_ref().unwrap_or(&self.path);
        components
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// BEP 47 padding file.
    pub fn is_padding(&self) -> bool {
        self.attr.as_deref().is_some_and(|a| a.contains(&b'p'))
    }
}

impl Info {
    /// Sum of all file lengths.
    pub fn total_length(&self) -> u64 {
        // Validation guarantees this does not overflow.
        self.files.iter().map(|f| f.length).sum()
    }

    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// Length of piece `index` (the last one may be short). Panics if `index` is out of range.
    pub fn piece_size(&self, index: usize) -> u64 {
        assert!(index < self.pieces.len(), "piece {index} out of range");
        let start = index as u64 * self.piece_length;
        (self.total_length() - start).min(self.piece_length)
    }

    /// The name for display: `name.utf-8` if present, else `name`, non-UTF-8 bytes shown lossily.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(self.name_utf8.as_deref().unwrap_or(&self.name)).into_owned()
    }

    pub fn is_private(&self) -> bool {
        self.private == Some(true)
    }
}

impl Metainfo {
    /// Reads a `.torrent` file's bytes: lenient bencode (unsorted keys and trailing whitespace tolerated), then full
    /// validation. The info-hash is computed over the raw `info` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        Metainfo::from_bytes_with(bytes, &DecodeOptions::lenient())
    }

    /// As [`Metainfo::from_bytes`], with explicit decode options (e.g. strict mode).
    ///
    /// One pass over the input with a validating [`Reader`]: fields are read straight into [`Metainfo`], without an
    /// intermediate tree, and unknown keys are validated and kept as raw bytes.
    pub fn from_bytes_with(
        bytes: &[u8],
        options: &DecodeOptions,
    ) -> Result<Metainfo, MetainfoError> {
        let mut r = Reader::new(bytes, options)?;
        let found = r.peek_type()?;
        if found != ValueType::Dict {
            return Err(MetainfoError::NotADictionary(found.name()));
        }
        let mut info = None;
        let mut m = Metainfo {
            info_hash: InfoHash([0; 20]),
            info: Info::empty(),
            announce: None,
            announce_list: Vec::new(),
            httpseeds: Vec::new(),
            url_list: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            encoding: None,
            raw_top_level: BTreeMap::new(),
        };
        let mut dict = r.begin_dict()?;
        while let Some(key) = dict.next_key(&mut r)? {
            let start = r.position();
            match key {
                b"info" => {
                    info = Some(parse_info(&mut r)?);
                    continue; // kept in `Info::raw`, not twice
                }
                b"announce" => m.announce = Some(read_text(&mut r, || "announce".into())?),
                b"announce-list" => m.announce_list = parse_announce_list(&mut r)?,
                b"httpseeds" => m.httpseeds = read_string_list(&mut r, || "httpseeds".into())?,
                // BEP 19 allows a single URL as a plain string; an empty string means none.
                b"url-list" if r.peek_type()? == ValueType::Bytes => match r.read_bytes()? {
                    b"" => {}
                    url => m.url_list = vec![String::from_utf8_lossy(url).into_owned()],
                },
                b"url-list" => m.url_list = read_string_list(&mut r, || "url-list".into())?,
                b"comment" => m.comment = Some(read_text(&mut r, || "comment".into())?),
                b"created by" => m.created_by = Some(read_text(&mut r, || "created by".into())?),
                b"encoding" => m.encoding = Some(read_text(&mut r, || "encoding".into())?),
                b"creation date" => {
                    m.creation_date = Some(read_int(&mut r, || "creation date".into())?)
                }
                _ => {
                    r.skip()?;
                }
            }
            m.raw_top_level
                .insert(key.to_vec(), bytes[start..r.position()].to_vec());
        }
        r.finish()?;
        m.info = info.ok_or_else(|| MetainfoError::MissingKey("info".into()))?;
        m.info_hash = InfoHash::of_raw_info(&m.info.raw);
        Ok(m)
    }

    /// The whole torrent as an editable document: a dictionary whose values are the original bytes
    /// ([`Owned::Raw`]). Replace or remove keys and [`Owned::encode`] it: untouched keys, `info` included, come out
    /// byte for byte as they went in.
    pub fn to_document(&self) -> Owned {
        let mut doc: BTreeMap<Vec<u8>, Owned> = self
            .raw_top_level
            .iter()
            .map(|(k, v)| (k.clone(), Owned::Raw(v.clone())))
            .collect();
        doc.insert(b"info".to_vec(), Owned::Raw(self.info.raw.clone()));
        Owned::Dict(doc)
    }

    /// All tracker URLs, tiers first (BEP 12: if `announce-list` is present, `announce` is ignored by clients).
    pub fn trackers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.announce_list.iter().flatten().cloned().collect();
        if out.is_empty() {
            out.extend(self.announce.iter().cloned());
        }
        out
    }
}

/// The exact bytes of the `info` dictionary of a torrent file, found with a validating pass over the whole input
/// that builds nothing. SHA-1 of them is the info-hash ([`InfoHash::of_raw_info`]). Use it where only the info-hash
/// is needed (scanning a directory of torrents); it checks the bencode, not the meaning: [`Metainfo::from_bytes`]
/// does both.
pub fn raw_info<'a>(bytes: &'a [u8], options: &DecodeOptions) -> Result<&'a [u8], MetainfoError> {
    let mut r = Reader::new(bytes, options)?;
    let found = r.peek_type()?;
    if found != ValueType::Dict {
        return Err(MetainfoError::NotADictionary(found.name()));
    }
    let mut info = None;
    let mut dict = r.begin_dict()?;
    while let Some(key) = dict.next_key(&mut r)? {
        if key == b"info" {
            expect(&r, ValueType::Dict, "a dictionary", || "info".into())?;
            info = Some(r.skip()?);
        } else {
            r.skip()?;
        }
    }
    r.finish()?;
    info.ok_or_else(|| MetainfoError::MissingKey("info".into()))
}

impl Info {
    fn empty() -> Info {
        Info {
            name: Vec::new(),
            name_utf8: None,
            piece_length: 0,
            pieces: Vec::new(),
            files: Vec::new(),
            is_single_file: true,
            private: None,
            source: None,
            raw: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// Checks that the next value has type `want`; `key` names it in the error (built only on failure).
fn expect(
    r: &Reader<'_, '_>,
    want: ValueType,
    expected: &'static str,
    key: impl FnOnce() -> String,
) -> Result<(), MetainfoError> {
    let found = r.peek_type()?;
    if found == want {
        Ok(())
    } else {
        Err(MetainfoError::WrongType {
            key: key(),
            expected,
            found: found.name(),
        })
    }
}

fn read_int(r: &mut Reader<'_, '_>, key: impl FnOnce() -> String) -> Result<i64, MetainfoError> {
    expect(r, ValueType::Int, "an integer", key)?;
    Ok(r.read_int()?)
}

fn read_bytes<'a>(
    r: &mut Reader<'a, '_>,
    key: impl FnOnce() -> String,
) -> Result<&'a [u8], MetainfoError> {
    expect(r, ValueType::Bytes, "a string", key)?;
    Ok(r.read_bytes()?)
}

/// A string-valued key, decoded lossily if it is not UTF-8.
fn read_text(
    r: &mut Reader<'_, '_>,
    key: impl FnOnce() -> String,
) -> Result<String, MetainfoError> {
    Ok(String::from_utf8_lossy(read_bytes(r, key)?).into_owned())
}

fn read_string_list(
    r: &mut Reader<'_, '_>,
    key: impl Fn() -> String,
) -> Result<Vec<String>, MetainfoError> {
    expect(r, ValueType::List, "a list of strings", &key)?;
    r.begin_list()?;
    let mut out = Vec::new();
    while r.next_in_list()? {
        expect(r, ValueType::Bytes, "a list of strings", &key)?;
        out.push(String::from_utf8_lossy(r.read_bytes()?).into_owned());
    }
    Ok(out)
}

fn parse_announce_list(r: &mut Reader<'_, '_>) -> Result<Vec<Vec<String>>, MetainfoError> {
    let key = || "announce-list".to_string();
    expect(r, ValueType::List, "a list of lists", key)?;
    r.begin_list()?;
    let mut out = Vec::new();
    while r.next_in_list()? {
        let tier = read_string_list(r, key)?;
        // An empty tier carries nothing; BEP 12 clients skip it.
        if !tier.is_empty() {
            out.push(tier);
        }
    }
    Ok(out)
}

fn non_negative(value: i64, key: impl FnOnce() -> String) -> Result<u64, MetainfoError> {
    u64::try_from(value).map_err(|_| MetainfoError::invalid(key(), format!("{value} is negative")))
}

fn read_path(
    r: &mut Reader<'_, '_>,
    key: impl Fn() -> String,
) -> Result<Vec<Vec<u8>>, MetainfoError> {
    expect(r, ValueType::List, "a list of strings", &key)?;
    r.begin_list()?;
    let mut out = Vec::new();
    while r.next_in_list()? {
        expect(r, ValueType::Bytes, "a list of strings", &key)?;
        out.push(r.read_bytes()?.to_vec());
    }
    check_path(&out, key)?;
    Ok(out)
}

fn check_path(components: &[Vec<u8>], key: impl FnOnce() -> String) -> Result<(), MetainfoError> {
    match path_rules::path_problem(components) {
        None => Ok(()),
        Some(reason) => Err(MetainfoError::UnsafePath {
            key: key(),
            path: components
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("/"),
            reason,
        }),
    }
}

fn parse_info(r: &mut Reader<'_, '_>) -> Result<Info, MetainfoError> {
    expect(r, ValueType::Dict, "a dictionary", || "info".into())?;
    let start = r.position();
    let mut name = None;
    let mut name_utf8 = None;
    let mut piece_length = None;
    let mut pieces_raw: Option<&[u8]> = None;
    let mut length = None;
    let mut files = None;
    let mut private = None;
    let mut source = None;
    let mut extra = BTreeMap::new();
    let mut has_file_tree = false;

    let mut dict = r.begin_dict()?;
    while let Some(key) = dict.next_key(r)? {
        match key {
            b"name" => name = Some(read_bytes(r, || "info.name".into())?.to_vec()),
            b"name.utf-8" => name_utf8 = Some(read_bytes(r, || "info.name.utf-8".into())?.to_vec()),
            b"piece length" => piece_length = Some(read_int(r, || "info.piece length".into())?),
            b"pieces" => pieces_raw = Some(read_bytes(r, || "info.pieces".into())?),
            b"length" => length = Some(read_int(r, || "info.length".into())?),
            b"files" => files = Some(parse_files(r)?),
            b"private" => private = Some(read_int(r, || "info.private".into())? == 1),
            b"source" => source = Some(read_bytes(r, || "info.source".into())?.to_vec()),
            _ => {
                has_file_tree |= key == b"file tree";
                let raw = r.skip()?;
                extra.insert(key.to_vec(), raw.to_vec());
            }
        }
    }
    let raw = r.input()[start..r.position()].to_vec();

    let Some(pieces_raw) = pieces_raw else {
        if has_file_tree {
            return Err(MetainfoError::V2Only);
        }
        return Err(MetainfoError::MissingKey("info.pieces".into()));
    };
    let name = name.ok_or_else(|| MetainfoError::MissingKey("info.name".into()))?;
    check_path(std::slice::from_ref(&name), || "info.name".into())?;
    if let Some(n) = &name_utf8 {
        check_path(std::slice::from_ref(n), || "info.name.utf-8".into())?;
    }

    let piece_length =
        piece_length.ok_or_else(|| MetainfoError::MissingKey("info.piece length".into()))?;
    let piece_length = non_negative(piece_length, || "info.piece length".into())?;
    if piece_length == 0 {
        return Err(MetainfoError::invalid(
            "info.piece length",
            "must be greater than zero",
        ));
    }
    if piece_length > MAX_PIECE_LENGTH {
        return Err(MetainfoError::invalid(
            "info.piece length",
            format!("{piece_length} is larger than the maximum of {MAX_PIECE_LENGTH}"),
        ));
    }
    if pieces_raw.len() % 20 != 0 {
        return Err(MetainfoError::invalid(
            "info.pieces",
            format!("length {} is not a multiple of 20", pieces_raw.len()),
        ));
    }
    let pieces: Vec<[u8; 20]> = pieces_raw
        .chunks_exact(20)
        .map(|c| c.try_into().expect("chunks_exact yields 20 bytes"))
        .collect();

    let (files, is_single_file) = match (length, files) {
        (Some(_), Some(_)) => {
            return Err(MetainfoError::invalid(
                "info",
                "has both `length` (single file) and `files` (multi-file)",
            ))
        }
        (None, None) => {
            return Err(MetainfoError::MissingKey(
                "info.length or info.files".into(),
            ))
        }
        (Some(length), None) => {
            let entry = FileEntry {
                path: vec![name.clone()],
                path_utf8: name_utf8.clone().map(|n| vec![n]),
                length: non_negative(length, || "info.length".into())?,
                attr: None,
                extra: BTreeMap::new(),
            };
            (vec![entry], true)
        }
        (None, Some(files)) => (files, false),
    };

    let total = files
        .iter()
        .try_fold(0u64, |acc, f| acc.checked_add(f.length))
        .ok_or_else(|| MetainfoError::invalid("info", "total length overflows 64 bits"))?;
    let expected_pieces = total.div_ceil(piece_length);
    if expected_pieces != pieces.len() as u64 {
        return Err(MetainfoError::invalid(
            "info.pieces",
            format!(
                "has {} piece hashes, but {total} bytes in pieces of {piece_length} need {expected_pieces}",
                pieces.len()
            ),
        ));
    }

    Ok(Info {
        name,
        name_utf8,
        piece_length,
        pieces,
        files,
        is_single_file,
        private,
        source,
        raw,
        extra,
    })
}

fn parse_files(r: &mut Reader<'_, '_>) -> Result<Vec<FileEntry>, MetainfoError> {
    expect(r, ValueType::List, "a list", || "info.files".into())?;
    r.begin_list()?;
    let mut out = Vec::new();
    while r.next_in_list()? {
        let i = out.len();
        if i == MAX_FILES {
            return Err(MetainfoError::invalid(
                "info.files",
                format!("more than the maximum of {MAX_FILES} files"),
            ));
        }
        out.push(parse_file(r, i)?);
    }
    check_no_collisions(&out)?;
    Ok(out)
}

fn parse_file(r: &mut Reader<'_, '_>, i: usize) -> Result<FileEntry, MetainfoError> {
    expect(r, ValueType::Dict, "a dictionary", || {
        format!("info.files[{i}]")
    })?;
    let mut length = None;
    let mut path = None;
    let mut path_utf8 = None;
    let mut attr = None;
    let mut extra = BTreeMap::new();
    let mut dict = r.begin_dict()?;
    while let Some(key) = dict.next_key(r)? {
        match key {
            b"length" => length = Some(read_int(r, || format!("info.files[{i}].length"))?),
            b"path" => path = Some(read_path(r, || format!("info.files[{i}].path"))?),
            b"path.utf-8" => {
                path_utf8 = Some(read_path(r, || format!("info.files[{i}].path.utf-8"))?)
            }
            b"attr" => attr = Some(read_bytes(r, || format!("info.files[{i}].attr"))?.to_vec()),
            _ => {
                let raw = r.skip()?;
                extra.insert(key.to_vec(), raw.to_vec());
            }
        }
    }
    let length =
        length.ok_or_else(|| MetainfoError::MissingKey(format!("info.files[{i}].length")))?;
    Ok(FileEntry {
        path: path.ok_or_else(|| MetainfoError::MissingKey(format!("info.files[{i}].path")))?,
        path_utf8,
        length: non_negative(length, || format!("info.files[{i}].length"))?,
        attr,
        extra,
    })
}

/// Refuses two files with the same path, and a file whose path is also a directory of another file: either would
/// make two entries of the torrent share bytes on disk.
fn check_no_collisions(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut file_paths: HashSet<&[Vec<u8>]> = HashSet::with_capacity(files.len());
    for f in files {
        if !file_paths.insert(&f.path) {
            return Err(MetainfoError::invalid(
                "info.files",
                format!("duplicate path {:?}", f.display_path()),
            ));
        }
    }
    for f in files {
        for depth in 1..f.path.len() {
            if file_paths.contains(&f.path[..depth]) {
                return Err(MetainfoError::invalid(
                    "info.files",
                    format!(
                        "{:?} is both a file and a directory",
                        f.path[..depth]
                            .iter()
                            .map(|c| String::from_utf8_lossy(c).into_owned())
                            .collect::<Vec<_>>()
                            .join("/")
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal single-file torrent: 5 bytes in 4-byte pieces = 2 pieces.
    fn single(extra_info: &[u8]) -> Vec<u8> {
        let mut t = b"d8:announce13:http://t/ann/4:infod".to_vec();
        t.extend_from_slice(extra_info);
        t.extend_from_slice(b"6:lengthi5e4:name3:a.b12:piece lengthi4e6:pieces40:");
        t.extend_from_slice(&[7u8; 40]);
        t.extend_from_slice(b"ee");
        t
    }

    fn multi(files: &[u8], pieces: usize) -> Vec<u8> {
        let mut t = b"d4:infod5:files".to_vec();
        t.extend_from_slice(files);
        t.extend_from_slice(b"4:name3:dir12:piece lengthi4e6:pieces");
        t.extend_from_slice(format!("{}:", pieces * 20).as_bytes());
        t.extend(std::iter::repeat_n(9u8, pieces * 20));
        t.extend_from_slice(b"ee");
        t
    }

    #[test]
    fn parses_single_file() {
        let m = Metainfo::from_bytes(&single(b"")).unwrap();
        assert_eq!(m.announce.as_deref(), Some("http://t/ann/"));
        assert!(m.info.is_single_file);
        assert_eq!(m.info.files.len(), 1);
        assert_eq!(m.info.files[0].path, vec![b"a.b".to_vec()]);
        assert_eq!(m.info.total_length(), 5);
        assert_eq!(m.info.piece_count(), 2);
        assert_eq!(m.info.piece_size(0), 4);
        assert_eq!(m.info.piece_size(1), 1);
        assert_eq!(m.info.private, None);
    }

    #[test]
    fn info_hash_is_over_raw_bytes_even_with_unknown_keys_and_unsorted_order() {
        // Unknown key inside info, and `name` before `length` (unsorted).
        let mut t = b"d4:infod4:name1:x6:lengthi1e12:piece lengthi4e6:pieces20:".to_vec();
        t.extend_from_slice(&[1u8; 20]);
        t.extend_from_slice(b"7:x-extra3:abce3:zzzi1ee");
        let m = Metainfo::from_bytes(&t).unwrap();
        let start = t.windows(5).position(|w| w == b"infod").unwrap() + 4;
        let end = t.len() - b"3:zzzi1ee".len();
        assert_eq!(m.info.raw, &t[start..end]);
        assert_eq!(m.info_hash, InfoHash::of_raw_info(&t[start..end]));
        assert_eq!(m.info.extra.get(&b"x-extra"[..]), Some(&b"3:abc".to_vec()));
        assert!(m.raw_top_level.contains_key(&b"zzz"[..]));
        // And strict mode refuses the same file.
        assert!(Metainfo::from_bytes_with(&t, &DecodeOptions::default()).is_err());
    }

    #[test]
    fn raw_info_agrees_with_the_full_parse() {
        let t = single(b"7:privatei1e");
        let m = Metainfo::from_bytes(&t).unwrap();
        assert_eq!(
            raw_info(&t, &DecodeOptions::lenient()).unwrap(),
            &m.info.raw[..]
        );
        assert!(matches!(
            raw_info(b"d3:fooi1ee", &DecodeOptions::lenient()),
            Err(MetainfoError::MissingKey(_))
        ));
        assert!(matches!(
            raw_info(b"d4:infoi1ee", &DecodeOptions::lenient()),
            Err(MetainfoError::WrongType { .. })
        ));
    }

    #[test]
    fn document_round_trips_byte_for_byte() {
        let t = single(b"7:privatei1e6:source3:abc");
        let m = Metainfo::from_bytes(&t).unwrap();
        assert_eq!(m.to_document().encode(), t);
        assert_eq!(m.info.private, Some(true));
        assert_eq!(m.info.source.as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn parses_multi_file_with_utf8_paths_and_padding() {
        let files = b"ld6:lengthi3e4:pathl1:a1:bee\
d4:attr1:p6:lengthi1e4:pathl4:.pad1:0ee\
d6:lengthi4e4:pathl3:c\xff\xfee10:path.utf-8l4:c\xc3\xa9!eee";
        let m = Metainfo::from_bytes(&multi(files, 2)).unwrap();
        assert!(!m.info.is_single_file);
        assert_eq!(m.info.files.len(), 3);
        assert_eq!(m.info.files[0].display_path(), "a/b");
        assert!(m.info.files[1].is_padding());
        assert_eq!(m.info.files[2].display_path(), "cé!");
        assert_eq!(m.info.files[2].path, vec![b"c\xff\xfe".to_vec()]);
        assert_eq!(m.info.total_length(), 8);
    }

    fn error_of(t: &[u8]) -> String {
        Metainfo::from_bytes(t).unwrap_err().to_string()
    }

    #[test]
    fn refuses_path_traversal() {
        for (files, needle) in [
            (&b"ld6:lengthi1e4:pathl2:..1:xeee"[..], "`.` and `..`"),
            (b"ld6:lengthi1e4:pathl4:/etc6:passwdeee", "slash"),
            (b"ld6:lengthi1e4:pathl3:a\\beee", "slash"),
            (b"ld6:lengthi1e4:pathl0:1:xeee", "empty path component"),
            (b"ld6:lengthi1e4:pathleee", "empty path"),
            (b"ld6:lengthi1e4:pathl1:.eee", "`.` and `..`"),
            (
                b"ld6:lengthi1e4:pathl1:xe10:path.utf-8l2:..eee",
                "path.utf-8",
            ),
        ] {
            let msg = error_of(&multi(files, 1));
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
            assert!(msg.starts_with("unsafe path"), "{msg}");
        }
        let mut t = b"d4:infod6:lengthi1e4:name2:..12:piece lengthi4e6:pieces20:".to_vec();
        t.extend_from_slice(&[0u8; 20]);
        t.extend_from_slice(b"ee");
        assert!(error_of(&t).contains("info.name"));
    }

    #[test]
    fn refuses_inconsistent_torrents() {
        assert!(error_of(&multi(
            b"ld6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:aeee",
            1
        ))
        .contains("duplicate path"));
        assert!(error_of(&multi(
            b"ld6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:a1:beee",
            1
        ))
        .contains("both a file and a directory"));
        // 5 bytes need 2 pieces of 4.
        assert!(error_of(&multi(b"ld6:lengthi5e4:pathl1:aeee", 1)).contains("need 2"));
        assert!(error_of(&multi(b"ld6:lengthi-1e4:pathl1:aeee", 1)).contains("negative"));
        assert!(
            error_of(b"d4:infod6:lengthi1e5:filesle4:name1:a12:piece lengthi4e6:pieces0:ee")
                .contains("both")
        );
        assert!(
            error_of(b"d4:infod4:name1:a12:piece lengthi4e6:pieces0:ee").contains("missing key")
        );
        assert!(
            error_of(b"d4:infod6:lengthi0e4:name1:a12:piece lengthi0e6:pieces0:ee")
                .contains("greater than zero")
        );
        assert!(
            error_of(b"d4:infod6:lengthi0e4:name1:a12:piece lengthi4e6:pieces3:abcee")
                .contains("multiple of 20")
        );
        assert!(
            error_of(b"d4:infod9:file treede4:name1:a12:piece lengthi4eee").contains("v2-only")
        );
        assert!(error_of(b"li1ee").contains("not a dictionary"));
        assert!(error_of(b"d3:fooi1ee").contains("missing key `info`"));
        assert!(error_of(b"d4:info").starts_with("not a torrent file: invalid bencode at byte 7"));
        let wrong = error_of(&single(b"").replace_announce_with_int());
        assert_eq!(wrong, "key `announce` is an integer, expected a string");
    }

    #[test]
    fn zero_length_torrent_has_no_pieces() {
        let m = Metainfo::from_bytes(b"d4:infod6:lengthi0e4:name1:a12:piece lengthi4e6:pieces0:ee")
            .unwrap();
        assert_eq!(m.info.piece_count(), 0);
    }

    #[test]
    fn reads_announce_list_httpseeds_and_url_list_forms() {
        let t = b"d8:announce1:a13:announce-listll1:a1:bel1:cee9:httpseedsl2:h1e8:url-list2:w14:infod6:lengthi0e4:name1:a12:piece lengthi4e6:pieces0:ee";
        let m = Metainfo::from_bytes(t).unwrap();
        assert_eq!(
            m.announce_list,
            vec![
                vec!["a".to_string(), "b".to_string()],
                vec!["c".to_string()]
            ]
        );
        assert_eq!(m.httpseeds, vec!["h1".to_string()]);
        assert_eq!(m.url_list, vec!["w1".to_string()]);
        assert_eq!(m.trackers(), vec!["a", "b", "c"]);
        let t = b"d8:url-listl2:w12:w2e4:infod6:lengthi0e4:name1:a12:piece lengthi4e6:pieces0:ee";
        assert_eq!(Metainfo::from_bytes(t).unwrap().url_list, vec!["w1", "w2"]);
    }

    trait ReplaceAnnounce {
        fn replace_announce_with_int(&self) -> Vec<u8>;
    }
    impl ReplaceAnnounce for Vec<u8> {
        fn replace_announce_with_int(&self) -> Vec<u8> {
            let s = b"8:announce13:http://t/ann/";
            let pos = self.windows(s.len()).position(|w| w == s).unwrap();
            let mut out = self[..pos].to_vec();
            out.extend_from_slice(b"8:announcei1e");
            out.extend_from_slice(&self[pos + s.len()..]);
            out
        }
    }
}
