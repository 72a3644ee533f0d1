//! Peer wire protocol codec: bytes in, typed message or error out; typed message in, bytes out.
//!
//! Covers the BEP 3 handshake and messages, BEP 6 fast messages (HAVE_ALL, HAVE_NONE, SUGGEST, REJECT,
//! ALLOWED_FAST), BEP 5's PORT and the BEP 10 extended-message envelope. It is deliberately strict, as
//! BitTornado was: every fixed-size message must have exactly its size, a bitfield must have exactly
//! the torrent's length with zero spare bits and must come first, a piece index must exist, a block
//! must not exceed `max_block_length`, and any length prefix above `max_message_length` ends the
//! connection. Unlike BitTornado it understands the fast and extension messages, but only when the
//! handshake negotiated them (BEP 6: receiving a fast message otherwise is a protocol error).
//!
//! [`MessageDecoder`] is incremental: feed it bytes as they arrive, pull messages out. It checks a
//! frame's declared length as soon as the 4-byte prefix (and the id byte) arrive, so it never buffers
//! more than the largest message the torrent allows ([`MessageDecoder::capacity`]), whatever the peer
//! claims. Nothing here panics on peer input; the fuzz target `fuzz/fuzz_targets/wire.rs` checks that.

use crate::bitfield::{self, Bitfield, BitfieldError};
use thiserror::Error;

/// The BEP 3 protocol string.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Length of the full handshake: pstrlen, pstr, reserved, info-hash, peer id.
pub const HANDSHAKE_LEN: usize = 68;
/// Length of the handshake up to and including the info-hash: enough to route an incoming connection
/// to the shard that owns the torrent before the peer id is read.
pub const HANDSHAKE_HEAD_LEN: usize = 48;

/// BitTornado's `max_message_length` default (2^23).
pub const DEFAULT_MAX_MESSAGE_LENGTH: u32 = 1 << 23;
/// BitTornado's `max_slice_length` default (2^17): longer requests close the connection.
pub const DEFAULT_MAX_BLOCK_LENGTH: u32 = 1 << 17;
/// Largest BEP 10 extended message we accept (payload after the extended id). BEP 9 metadata pieces are
/// 16 KiB plus a small dict; extension handshakes and PEX messages are a few hundred bytes to a few KiB.
/// Kept at the block limit so an extended message never makes a peer's buffer bigger than a PIECE does.
pub const DEFAULT_MAX_EXTENDED_LENGTH: u32 = 1 << 17;
/// The decoder never holds less than this much room, so several small messages fit one read.
const MIN_DECODER_CAPACITY: usize = 64 * 1024;
/// First read size: the buffer grows lazily, so an idle or slow peer costs little memory.
const READ_CHUNK: usize = 16 * 1024;
/// Largest read size. A read that fills the whole room doubles the next one up to this (a fast peer: ~128 KiB
/// reads mean eight times fewer receive calls than 16 KiB ones); still bounded by the decoder's capacity.
const MAX_READ_CHUNK: usize = 256 * 1024;

/// Message ids (BEP 3, BEP 5, BEP 6, BEP 10).
pub mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    pub const SUGGEST: u8 = 13;
    pub const HAVE_ALL: u8 = 14;
    pub const HAVE_NONE: u8 = 15;
    pub const REJECT: u8 = 16;
    pub const ALLOWED_FAST: u8 = 17;
    pub const EXTENDED: u8 = 20;
}

/// Why a handshake or message was refused. Every variant means: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("handshake does not start with \\x13BitTorrent protocol")]
    BadProtocolHeader,
    #[error("message length {length} exceeds max_message_length {max}")]
    MessageTooLong { length: u32, max: u32 },
    #[error("{message} message has length {length}, expected {expected}")]
    BadLength {
        message: &'static str,
        length: u32,
        expected: &'static str,
    },
    #[error("unknown message id {0}")]
    UnknownMessageId(u8),
    #[error("{message} message received but {extension} was not negotiated in the handshake")]
    NotNegotiated {
        message: &'static str,
        extension: &'static str,
    },
    #[error("{message} names piece {index}, torrent has {piece_count} pieces")]
    PieceOutOfRange {
        message: &'static str,
        index: u32,
        piece_count: u32,
    },
    #[error("{message} block length {length} not in 1..={max}")]
    BadBlockLength {
        message: &'static str,
        length: u32,
        max: u32,
    },
    #[error("{message} block begin {begin} + length {length} overflows")]
    BlockOverflow {
        message: &'static str,
        begin: u32,
        length: u32,
    },
    #[error("{message} is only allowed as the first message")]
    NotFirstMessage { message: &'static str },
    #[error("bad bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    #[error("decoder already failed; the connection must be closed")]
    Poisoned,
}

/// The 8 reserved handshake bytes, with the extension bits we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// BitTornado's handshake: no extension bits.
    pub const NONE: Reserved = Reserved([0; 8]);
    /// What cyclone advertises: BEP 6 fast and BEP 10 extension protocol.
    pub const CYCLONE: Reserved = Reserved([0, 0, 0, 0, 0, 0x10, 0, 0x04]);

    /// BEP 6 fast extension: `reserved[7] & 0x04`.
    pub fn fast(self) -> bool {
        self.0[7] & 0x04 != 0
    }
    /// BEP 10 extension protocol: `reserved[5] & 0x10`.
    pub fn extension_protocol(self) -> bool {
        self.0[5] & 0x10 != 0
    }
    /// BEP 5 DHT: `reserved[7] & 0x01`.
    pub fn dht(self) -> bool {
        self.0[7] & 0x01 != 0
    }
    /// The extensions both sides support, given ours (`self`) and the peer's.
    pub fn negotiate(self, theirs: Reserved) -> Extensions {
        Extensions {
            fast: self.fast() && theirs.fast(),
            extended: self.extension_protocol() && theirs.extension_protocol(),
        }
    }
}

/// Extensions in force on a connection (both sides set the bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    pub fast: bool,
    pub extended: bool,
}

/// The first 48 bytes of a handshake: enough to find the torrent (and its shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeHead {
    pub reserved: Reserved,
    pub info_hash: [u8; 20],
}

impl HandshakeHead {
    /// Parses the first [`HANDSHAKE_HEAD_LEN`] bytes.
    pub fn decode(bytes: &[u8; HANDSHAKE_HEAD_LEN]) -> Result<Self, WireError> {
        if bytes[0] != 19 || &bytes[1..20] != PROTOCOL {
            return Err(WireError::BadProtocolHeader);
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&bytes[28..48]);
        Ok(HandshakeHead {
            reserved: Reserved(reserved),
            info_hash,
        })
    }
}

/// A full BEP 3 handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: Reserved,
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Parses a full [`HANDSHAKE_LEN`]-byte handshake.
    pub fn decode(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        let mut head = [0u8; HANDSHAKE_HEAD_LEN];
        head.copy_from_slice(&bytes[..HANDSHAKE_HEAD_LEN]);
        let head = HandshakeHead::decode(&head)?;
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&bytes[HANDSHAKE_HEAD_LEN..]);
        Ok(Handshake {
            reserved: head.reserved,
            info_hash: head.info_hash,
            peer_id,
        })
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..].copy_from_slice(&self.peer_id);
        out
    }
}

/// A block address: REQUEST, CANCEL and REJECT carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRequest {
    pub piece: u32,
    pub begin: u32,
    pub length: u32,
}

/// A PIECE message's payload, borrowed from the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    pub piece: u32,
    pub begin: u32,
    pub data: &'a [u8],
}

impl Block<'_> {
    /// The request this block answers.
    pub fn request(&self) -> BlockRequest {
        BlockRequest {
            piece: self.piece,
            begin: self.begin,
            length: self.data.len() as u32,
        }
    }
}

/// A BEP 10 extended message: the extended id (0 = extension handshake) and its raw payload.
///
/// The payload is kept as bytes here (framing stays allocation-free); the extension handshake
/// (id 0) is decoded by [`crate::extension::ExtensionHandshake::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended<'a> {
    pub id: u8,
    pub payload: &'a [u8],
}

/// One peer wire message. Payload slices borrow from the decoder's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bitfield),
    Request(BlockRequest),
    Piece(Block<'a>),
    Cancel(BlockRequest),
    /// BEP 5: the peer's DHT port. cyclone does not run DHT and ignores it, but accepts the message
    /// because some clients send it unconditionally.
    Port(u16),
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject(BlockRequest),
    AllowedFast(u32),
    Extended(Extended<'a>),
}

impl Message<'_> {
    /// Length of the framed message including its 4-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 5,
            Message::Bitfield(b) => 1 + b.as_bytes().len(),
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 13,
            Message::Piece(b) => 9 + b.data.len(),
            Message::Port(_) => 3,
            Message::Extended(e) => 2 + e.payload.len(),
        }
    }

    /// Appends the framed wire form to `out`.
    ///
    /// Panics if the message could not be framed (a payload over 4 GiB): we only encode what we built.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = u32::try_from(self.encoded_len() - 4).expect("message payload exceeds u32");
        out.reserve(self.encoded_len());
        out.extend_from_slice(&len.to_be_bytes());
        let put_req = |out: &mut Vec<u8>, id: u8, r: &BlockRequest| {
            out.push(id);
            out.extend_from_slice(&r.piece.to_be_bytes());
            out.extend_from_slice(&r.begin.to_be_bytes());
            out.extend_from_slice(&r.length.to_be_bytes());
        };
        match self {
            Message::KeepAlive => {}
            Message::Choke => out.push(id::CHOKE),
            Message::Unchoke => out.push(id::UNCHOKE),
            Message::Interested => out.push(id::INTERESTED),
            Message::NotInterested => out.push(id::NOT_INTERESTED),
            Message::HaveAll => out.push(id::HAVE_ALL),
            Message::HaveNone => out.push(id::HAVE_NONE),
            Message::Have(i) | Message::Suggest(i) | Message::AllowedFast(i) => {
                out.push(match self {
                    Message::Have(_) => id::HAVE,
                    Message::Suggest(_) => id::SUGGEST,
                    _ => id::ALLOWED_FAST,
                });
                out.extend_from_slice(&i.to_be_bytes());
            }
            Message::Bitfield(b) => {
                out.push(id::BITFIELD);
                out.extend_from_slice(b.as_bytes());
            }
            Message::Request(r) => put_req(out, id::REQUEST, r),
            Message::Cancel(r) => put_req(out, id::CANCEL, r),
            Message::Reject(r) => put_req(out, id::REJECT, r),
            Message::Piece(b) => {
                out.extend_from_slice(&piece_header_tail(b.piece, b.begin));
                out.extend_from_slice(b.data);
            }
            Message::Port(p) => {
                out.push(id::PORT);
                out.extend_from_slice(&p.to_be_bytes());
            }
            Message::Extended(e) => {
                out.push(id::EXTENDED);
                out.push(e.id);
                out.extend_from_slice(e.payload);
            }
        }
    }
}

fn piece_header_tail(piece: u32, begin: u32) -> [u8; 9] {
    let mut h = [0u8; 9];
    h[0] = id::PIECE;
    h[1..5].copy_from_slice(&piece.to_be_bytes());
    h[5..9].copy_from_slice(&begin.to_be_bytes());
    h
}

/// The 13-byte header of a PIECE message carrying `data_len` bytes, so the block itself can be sent
/// straight from the storage buffer without copying it into a message.
pub fn encode_piece_header(piece: u32, begin: u32, data_len: u32) -> [u8; 13] {
    let mut h = [0u8; 13];
    h[..4].copy_from_slice(&(9 + data_len).to_be_bytes());
    h[4..].copy_from_slice(&piece_header_tail(piece, begin));
    h
}

/// Limits applied by the decoder. Defaults are BitTornado's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Any length prefix above this closes the connection (`max_message_length`).
    pub max_message_length: u32,
    /// REQUEST/CANCEL/REJECT lengths and PIECE data above this close the connection
    /// (`max_slice_length`).
    pub max_block_length: u32,
    /// Extended message payloads above this close the connection.
    pub max_extended_length: u32,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            max_message_length: DEFAULT_MAX_MESSAGE_LENGTH,
            max_block_length: DEFAULT_MAX_BLOCK_LENGTH,
            max_extended_length: DEFAULT_MAX_EXTENDED_LENGTH,
        }
    }
}

/// Incremental, bounded decoder for the message stream after the handshake.
///
/// Usage: `feed` (or `read_buf` + `commit`) bytes, then call `next_message` until it returns
/// `Ok(None)`; repeat. After any error the decoder is poisoned and the connection must be closed.
#[derive(Debug)]
pub struct MessageDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    /// End of valid bytes in `buf` (`buf.len()` may be larger: spare read room).
    end: usize,
    capacity: usize,
    /// Bytes the next [`read_buf`](MessageDecoder::read_buf) tries to offer (adapts to the peer's speed).
    read_chunk: usize,
    /// Length of the slice the last `read_buf` returned.
    offered: usize,
    piece_count: u32,
    limits: WireLimits,
    ext: Extensions,
    /// A non-keep-alive message has been decoded (bitfield-class messages must come first).
    seen_first: bool,
    /// Let a BITFIELD through after the first message (see [`MessageDecoder::allow_late_bitfield`]).
    late_bitfield: bool,
    poisoned: bool,
}

impl MessageDecoder {
    /// A decoder for a torrent of `piece_count` pieces with the negotiated extensions.
    pub fn new(piece_count: u32, ext: Extensions, limits: WireLimits) -> Self {
        assert!(
            piece_count <= bitfield::MAX_PIECE_COUNT,
            "piece count {piece_count} above MAX_PIECE_COUNT"
        );
        let mut d = MessageDecoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            capacity: 0,
            read_chunk: READ_CHUNK,
            offered: 0,
            piece_count,
            limits,
            ext,
            seen_first: false,
            late_bitfield: false,
            poisoned: false,
        };
        d.capacity = (4 + d.max_frame_payload() as usize).max(MIN_DECODER_CAPACITY);
        d
    }

    /// Accept a BITFIELD after the first message (still validated), leaving it to the caller to check it only adds
    /// pieces. aria2 1.36 sends its bitfield a second time after INTERESTED; BitTornado would close such a peer,
    /// which makes aria2 crawl. HAVE_ALL / HAVE_NONE stay first-only.
    pub fn allow_late_bitfield(&mut self, allow: bool) {
        self.late_bitfield = allow;
    }

    /// The most bytes this decoder will ever hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// How many more bytes `feed` accepts right now.
    pub fn room(&self) -> usize {
        self.capacity - self.buffered()
    }

    /// Largest payload (id byte included) any allowed message may have on this connection.
    fn max_frame_payload(&self) -> u32 {
        let bitfield = 1 + bitfield::byte_len(self.piece_count) as u32;
        let piece = self.limits.max_block_length.saturating_add(9);
        let extended = if self.ext.extended {
            self.limits.max_extended_length.saturating_add(2)
        } else {
            0
        };
        bitfield
            .max(piece)
            .max(extended)
            .max(13)
            .min(self.limits.max_message_length)
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Copies as much of `data` as fits; returns how many bytes were taken. Take messages out with
    /// `next_message` before feeding the rest.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        self.compact();
        let n = data.len().min(self.capacity - self.end);
        if self.buf.len() < self.end + n {
            self.buf.resize(self.end + n, 0);
        }
        self.buf[self.end..self.end + n].copy_from_slice(&data[..n]);
        self.end += n;
        n
    }

    /// Writable room at the end of the buffer, for reading from a socket without an extra copy;
    /// follow with [`commit`](Self::commit). Empty when the buffer is full: drain messages first.
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.compact();
        let want = (self.end + self.read_chunk).min(self.capacity);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let end = self.end;
        self.offered = self.buf.len() - end;
        &mut self.buf[end..]
    }

    /// Marks `n` bytes written into [`read_buf`](Self::read_buf) as received.
    pub fn commit(&mut self, n: usize) {
        assert!(
            self.end + n <= self.buf.len(),
            "commit({n}) beyond read_buf"
        );
        self.end += n;
        if n > 0 && n == self.offered {
            self.read_chunk = (self.read_chunk * 2).min(MAX_READ_CHUNK);
        }
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message<'_>>, WireError> {
        if self.poisoned {
            return Err(WireError::Poisoned);
        }
        match self.frame() {
            Ok(None) => Ok(None),
            Ok(Some((payload_start, len))) => {
                self.start = payload_start + len;
                let payload = &self.buf[payload_start..payload_start + len];
                match decode_payload(payload, self.piece_count, self.ext, &self.limits) {
                    Ok(m) => {
                        let first_only = matches!(
                            m,
                            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
                        );
                        let late_ok = self.late_bitfield && matches!(m, Message::Bitfield(_));
                        if first_only && self.seen_first && !late_ok {
                            self.poisoned = true;
                            return Err(WireError::NotFirstMessage {
                                message: name_of(payload[0]),
                            });
                        }
                        // Keep-alives and BEP 10 messages do not count: aria2 (and others) send their extension
                        // handshake before the bitfield / HAVE_ALL, which BEP 10 allows.
                        if !matches!(m, Message::KeepAlive | Message::Extended(_)) {
                            self.seen_first = true;
                        }
                        Ok(Some(m))
                    }
                    Err(e) => {
                        self.poisoned = true;
                        Err(e)
                    }
                }
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Locates the next complete frame: (payload start, payload length). Validates the declared length
    /// as early as possible so an oversized frame is refused before it is buffered.
    fn frame(&self) -> Result<Option<(usize, usize)>, WireError> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]);
        if len > self.limits.max_message_length {
            return Err(WireError::MessageTooLong {
                length: len,
                max: self.limits.max_message_length,
            });
        }
        if len > 0 && avail.len() >= 5 {
            check_declared_length(avail[4], len, self.piece_count, self.ext, &self.limits)?;
        }
        if (avail.len() - 4) < len as usize {
            return Ok(None);
        }
        Ok(Some((self.start + 4, len as usize)))
    }
}

fn name_of(message_id: u8) -> &'static str {
    match message_id {
        id::CHOKE => "choke",
        id::UNCHOKE => "unchoke",
        id::INTERESTED => "interested",
        id::NOT_INTERESTED => "not interested",
        id::HAVE => "have",
        id::BITFIELD => "bitfield",
        id::REQUEST => "request",
        id::PIECE => "piece",
        id::CANCEL => "cancel",
        id::PORT => "port",
        id::SUGGEST => "suggest",
        id::HAVE_ALL => "have all",
        id::HAVE_NONE => "have none",
        id::REJECT => "reject",
        id::ALLOWED_FAST => "allowed fast",
        id::EXTENDED => "extended",
        _ => "unknown",
    }
}

/// Checks a frame's length against what its id allows, before the body is buffered.
fn check_declared_length(
    message_id: u8,
    len: u32,
    piece_count: u32,
    ext: Extensions,
    limits: &WireLimits,
) -> Result<(), WireError> {
    let name = name_of(message_id);
    let exact = |expected: u32, text: &'static str| {
        if len == expected {
            Ok(())
        } else {
            Err(WireError::BadLength {
                message: name,
                length: len,
                expected: text,
            })
        }
    };
    let need = |on: bool, extension: &'static str| {
        if on {
            Ok(())
        } else {
            Err(WireError::NotNegotiated {
                message: name,
                extension,
            })
        }
    };
    match message_id {
        id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => exact(1, "1"),
        id::HAVE => exact(5, "5"),
        id::BITFIELD => exact(
            1 + bitfield::byte_len(piece_count) as u32,
            "1 + ceil(pieces / 8)",
        ),
        id::REQUEST | id::CANCEL => exact(13, "13"),
        id::PIECE => {
            if len <= 9 || len - 9 > limits.max_block_length {
                Err(WireError::BadLength {
                    message: name,
                    length: len,
                    expected: "10 ..= 9 + max_block_length",
                })
            } else {
                Ok(())
            }
        }
        id::PORT => exact(3, "3"),
        id::SUGGEST | id::ALLOWED_FAST => {
            need(ext.fast, "the fast extension (BEP 6)")?;
            exact(5, "5")
        }
        id::HAVE_ALL | id::HAVE_NONE => {
            need(ext.fast, "the fast extension (BEP 6)")?;
            exact(1, "1")
        }
        id::REJECT => {
            need(ext.fast, "the fast extension (BEP 6)")?;
            exact(13, "13")
        }
        id::EXTENDED => {
            need(ext.extended, "the extension protocol (BEP 10)")?;
            if len < 2 || len - 2 > limits.max_extended_length {
                Err(WireError::BadLength {
                    message: name,
                    length: len,
                    expected: "2 ..= 2 + max_extended_length",
                })
            } else {
                Ok(())
            }
        }
        other => Err(WireError::UnknownMessageId(other)),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes one message payload (the bytes after the length prefix). `payload` may be empty
/// (keep-alive). Also usable on its own for framing done elsewhere.
pub fn decode_payload<'a>(
    payload: &'a [u8],
    piece_count: u32,
    ext: Extensions,
    limits: &WireLimits,
) -> Result<Message<'a>, WireError> {
    let Some((&message_id, body)) = payload.split_first() else {
        return Ok(Message::KeepAlive);
    };
    let len = u32::try_from(payload.len()).map_err(|_| WireError::MessageTooLong {
        length: u32::MAX,
        max: limits.max_message_length,
    })?;
    if len > limits.max_message_length {
        return Err(WireError::MessageTooLong {
            length: len,
            max: limits.max_message_length,
        });
    }
    check_declared_length(message_id, len, piece_count, ext, limits)?;
    let name = name_of(message_id);
    let index = |i: u32| {
        if i < piece_count {
            Ok(i)
        } else {
            Err(WireError::PieceOutOfRange {
                message: name,
                index: i,
                piece_count,
            })
        }
    };
    let request = |b: &[u8]| -> Result<BlockRequest, WireError> {
        let r = BlockRequest {
            piece: index(be32(b))?,
            begin: be32(&b[4..]),
            length: be32(&b[8..]),
        };
        if r.length == 0 || r.length > limits.max_block_length {
            return Err(WireError::BadBlockLength {
                message: name,
                length: r.length,
                max: limits.max_block_length,
            });
        }
        if r.begin.checked_add(r.length).is_none() {
            return Err(WireError::BlockOverflow {
                message: name,
                begin: r.begin,
                length: r.length,
            });
        }
        Ok(r)
    };
    Ok(match message_id {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE => Message::Have(index(be32(body))?),
        id::BITFIELD => Message::Bitfield(Bitfield::from_bytes(piece_count, body)?),
        id::REQUEST => Message::Request(request(body)?),
        id::CANCEL => Message::Cancel(request(body)?),
        id::REJECT => Message::Reject(request(body)?),
        id::PIECE => {
            let piece = index(be32(body))?;
            let begin = be32(&body[4..]);
            let data = &body[8..];
            if begin.checked_add(data.len() as u32).is_none() {
                return Err(WireError::BlockOverflow {
                    message: name,
                    begin,
                    length: data.len() as u32,
                });
            }
            Message::Piece(Block { piece, begin, data })
        }
        id::PORT => Message::Port(u16::from_be_bytes([body[0], body[1]])),
        id::SUGGEST => Message::Suggest(index(be32(body))?),
        id::ALLOWED_FAST => Message::AllowedFast(index(be32(body))?),
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::EXTENDED => Message::Extended(Extended {
            id: body[0],
            payload: &body[1..],
        }),
        // check_declared_length refused every other id.
        other => return Err(WireError::UnknownMessageId(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Extensions = Extensions {
        fast: true,
        extended: true,
    };

    fn decoder(pieces: u32) -> MessageDecoder {
        MessageDecoder::new(pieces, ALL, WireLimits::default())
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn decode_one(d: &mut MessageDecoder, bytes: &[u8]) -> Result<Option<String>, WireError> {
        assert_eq!(d.feed(bytes), bytes.len());
        d.next_message().map(|m| m.map(|m| format!("{m:?}")))
    }

    fn sample_messages() -> Vec<Message<'static>> {
        let r = BlockRequest {
            piece: 3,
            begin: 16384,
            length: 16384,
        };
        vec![
            Message::KeepAlive,
            Message::Bitfield(Bitfield::from_bytes(10, &[0xa5, 0x40]).unwrap()),
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(9),
            Message::Request(r),
            Message::Piece(Block {
                piece: 2,
                begin: 0,
                data: b"hello",
            }),
            Message::Cancel(r),
            Message::Port(6881),
            Message::Suggest(1),
            Message::Reject(r),
            Message::AllowedFast(0),
            Message::Extended(Extended {
                id: 0,
                payload: b"d1:md6:ut_pexi1eee",
            }),
        ]
    }

    #[test]
    fn handshake_round_trip_and_bits() {
        let h = Handshake {
            reserved: Reserved::CYCLONE,
            info_hash: [7; 20],
            peer_id: *b"-CY0001-abcdefghijkl",
        };
        let bytes = h.encode();
        assert_eq!(bytes[0], 19);
        assert_eq!(&bytes[1..20], PROTOCOL);
        assert_eq!(Handshake::decode(&bytes).unwrap(), h);
        let head: [u8; 48] = bytes[..48].try_into().unwrap();
        assert_eq!(HandshakeHead::decode(&head).unwrap().info_hash, [7; 20]);
        assert!(h.reserved.fast() && h.reserved.extension_protocol() && !h.reserved.dht());
        assert_eq!(
            Reserved::CYCLONE.negotiate(Reserved::NONE),
            Extensions::default()
        );
        assert_eq!(Reserved::CYCLONE.negotiate(Reserved::CYCLONE), ALL);
        let mut bad = bytes;
        bad[5] ^= 0x20;
        assert_eq!(Handshake::decode(&bad), Err(WireError::BadProtocolHeader));
        let mut bad = bytes;
        bad[0] = 18;
        assert_eq!(Handshake::decode(&bad), Err(WireError::BadProtocolHeader));
    }

    #[test]
    fn every_message_round_trips_in_one_stream() {
        let msgs = sample_messages();
        let mut stream = Vec::new();
        for m in &msgs {
            let before = stream.len();
            m.encode_into(&mut stream);
            assert_eq!(stream.len() - before, m.encoded_len());
        }
        let mut d = decoder(10);
        assert_eq!(d.feed(&stream), stream.len());
        let mut got = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            got.push(format!("{m:?}"));
        }
        let want: Vec<_> = msgs.iter().map(|m| format!("{m:?}")).collect();
        assert_eq!(got, want);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_messages() {
        let msgs = sample_messages();
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode_into(&mut stream);
        }
        let mut d = decoder(10);
        let mut got = Vec::new();
        for b in &stream {
            assert_eq!(d.feed(std::slice::from_ref(b)), 1);
            while let Some(m) = d.next_message().unwrap() {
                got.push(format!("{m:?}"));
            }
        }
        assert_eq!(got.len(), msgs.len());
    }

    #[test]
    fn full_reads_grow_the_read_size_up_to_the_capacity() {
        let mut d = decoder(10);
        assert_eq!(d.read_buf().len(), READ_CHUNK);
        // Fill the room with keep-alives (4 zero bytes each): the next offer is bigger.
        let n = d.read_buf().len();
        d.commit(n);
        while d.next_message().unwrap().is_some() {}
        assert_eq!(d.read_buf().len(), 2 * READ_CHUNK);
        for _ in 0..10 {
            let n = d.read_buf().len();
            d.commit(n);
            while d.next_message().unwrap().is_some() {}
        }
        // (A partial keep-alive may be left over, so up to three bytes less.)
        let top = d.capacity().min(MAX_READ_CHUNK);
        assert!((top - 3..=top).contains(&d.read_buf().len()));
        // A short read does not grow it.
        let before = d.read_buf().len();
        d.commit(4);
        while d.next_message().unwrap().is_some() {}
        assert_eq!(d.read_buf().len(), before);
    }

    #[test]
    fn read_buf_and_commit() {
        let mut stream = Vec::new();
        Message::Have(4).encode_into(&mut stream);
        Message::Unchoke.encode_into(&mut stream);
        let mut d = decoder(10);
        let room = d.read_buf();
        assert!(room.len() >= stream.len());
        room[..stream.len()].copy_from_slice(&stream);
        d.commit(stream.len());
        assert_eq!(d.next_message().unwrap(), Some(Message::Have(4)));
        assert_eq!(d.next_message().unwrap(), Some(Message::Unchoke));
        assert_eq!(d.next_message().unwrap(), None);
    }

    #[test]
    fn piece_header_matches_full_encoding() {
        let mut full = Vec::new();
        Message::Piece(Block {
            piece: 5,
            begin: 32768,
            data: &[9; 100],
        })
        .encode_into(&mut full);
        assert_eq!(encode_piece_header(5, 32768, 100), full[..13]);
    }

    #[test]
    fn fixed_lengths_are_exact() {
        for (payload, what) in [
            (&[0u8, 0][..], "choke"),
            (&[1, 0][..], "unchoke"),
            (&[2, 0][..], "interested"),
            (&[3, 1][..], "not interested"),
            (&[4, 0, 0, 0][..], "have"),
            (&[4, 0, 0, 0, 0, 0][..], "have"),
            (&[6; 12][..], "request"),
            (&[8; 14][..], "cancel"),
            (&[9, 1][..], "port"),
            (&[14, 0][..], "have all"),
            (&[16; 12][..], "reject"),
        ] {
            let mut d = decoder(10);
            match decode_one(&mut d, &frame(payload)) {
                Err(WireError::BadLength { message, .. }) => assert_eq!(message, what),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn piece_needs_data_and_respects_max_block() {
        let mut d = decoder(10);
        assert!(matches!(
            decode_one(&mut d, &frame(&[7, 0, 0, 0, 0, 0, 0, 0, 0])),
            Err(WireError::BadLength { .. })
        ));
        // A frame header announcing a too-large piece is refused before its body arrives.
        let mut d = decoder(10);
        let mut hdr = (9 + DEFAULT_MAX_BLOCK_LENGTH + 1).to_be_bytes().to_vec();
        hdr.push(id::PIECE);
        assert!(matches!(
            decode_one(&mut d, &hdr),
            Err(WireError::BadLength { .. })
        ));
        // Exactly max_block_length is fine.
        let mut d = decoder(10);
        let mut m = Vec::new();
        Message::Piece(Block {
            piece: 0,
            begin: 0,
            data: &vec![1; DEFAULT_MAX_BLOCK_LENGTH as usize],
        })
        .encode_into(&mut m);
        assert!(decode_one(&mut d, &m).unwrap().is_some());
    }

    #[test]
    fn max_message_length_is_checked_on_the_prefix() {
        let limits = WireLimits {
            max_message_length: 100,
            ..WireLimits::default()
        };
        let mut d = MessageDecoder::new(10, ALL, limits);
        assert_eq!(
            decode_one(&mut d, &101u32.to_be_bytes()),
            Err(WireError::MessageTooLong {
                length: 101,
                max: 100
            })
        );
        assert_eq!(d.next_message(), Err(WireError::Poisoned));
        let mut d = decoder(10);
        assert!(matches!(
            decode_one(&mut d, &u32::MAX.to_be_bytes()),
            Err(WireError::MessageTooLong { .. })
        ));
    }

    #[test]
    fn request_limits() {
        let req = |piece: u32, begin: u32, length: u32| {
            let mut v = Vec::new();
            Message::Request(BlockRequest {
                piece,
                begin,
                length,
            })
            .encode_into(&mut v);
            decode_one(&mut decoder(10), &v)
        };
        assert!(req(9, 0, 16384).unwrap().is_some());
        assert!(matches!(
            req(10, 0, 16384),
            Err(WireError::PieceOutOfRange { index: 10, .. })
        ));
        assert!(matches!(
            req(0, 0, 0),
            Err(WireError::BadBlockLength { .. })
        ));
        assert!(matches!(
            req(0, 0, DEFAULT_MAX_BLOCK_LENGTH + 1),
            Err(WireError::BadBlockLength { .. })
        ));
        assert!(matches!(
            req(0, u32::MAX, 1),
            Err(WireError::BlockOverflow { .. })
        ));
    }

    #[test]
    fn have_index_checked() {
        assert!(matches!(
            decode_one(&mut decoder(10), &frame(&[4, 0, 0, 0, 10])),
            Err(WireError::PieceOutOfRange { index: 10, .. })
        ));
    }

    #[test]
    fn bitfield_must_be_first_and_well_formed() {
        let mut d = decoder(10);
        assert!(decode_one(&mut d, &frame(&[1])).unwrap().is_some());
        assert_eq!(
            decode_one(&mut d, &frame(&[5, 0xff, 0xc0])),
            Err(WireError::NotFirstMessage {
                message: "bitfield"
            })
        );
        // Keep-alives do not count as the first message.
        let mut d = decoder(10);
        assert_eq!(
            decode_one(&mut d, &frame(&[])).unwrap().as_deref(),
            Some("KeepAlive")
        );
        assert!(decode_one(&mut d, &frame(&[5, 0xff, 0xc0]))
            .unwrap()
            .is_some());
        // A repeated bitfield passes only when allowed.
        let mut d = decoder(10);
        d.allow_late_bitfield(true);
        assert!(decode_one(&mut d, &frame(&[5, 0x80, 0x00]))
            .unwrap()
            .is_some());
        assert!(decode_one(&mut d, &frame(&[5, 0xc0, 0x00]))
            .unwrap()
            .is_some());
        assert!(decode_one(&mut d, &frame(&[14])).is_err());
        // Nor does a BEP 10 extension handshake (aria2 sends it before HAVE_ALL).
        let mut d = decoder(10);
        assert!(decode_one(&mut d, &frame(b"\x14\x00de")).unwrap().is_some());
        assert!(decode_one(&mut d, &frame(&[14])).unwrap().is_some());
        // Spare bits set.
        assert_eq!(
            decode_one(&mut decoder(10), &frame(&[5, 0xff, 0xe0])),
            Err(WireError::Bitfield(BitfieldError::SpareBitsSet {
                piece_count: 10
            }))
        );
        // Wrong length.
        assert!(matches!(
            decode_one(&mut decoder(10), &frame(&[5, 0xff])),
            Err(WireError::BadLength { .. })
        ));
        // HAVE_NONE after HAVE_ALL.
        let mut d = decoder(10);
        assert!(decode_one(&mut d, &frame(&[14])).unwrap().is_some());
        assert!(matches!(
            decode_one(&mut d, &frame(&[15])),
            Err(WireError::NotFirstMessage { .. })
        ));
    }

    #[test]
    fn extensions_must_be_negotiated() {
        let mut d = MessageDecoder::new(10, Extensions::default(), WireLimits::default());
        assert!(matches!(
            decode_one(&mut d, &frame(&[14])),
            Err(WireError::NotNegotiated { .. })
        ));
        let mut d = MessageDecoder::new(10, Extensions::default(), WireLimits::default());
        assert!(matches!(
            decode_one(&mut d, &frame(&[20, 0, b'd', b'e'])),
            Err(WireError::NotNegotiated { .. })
        ));
        let mut d = decoder(10);
        assert!(matches!(
            decode_one(&mut d, &frame(&[20])),
            Err(WireError::BadLength { .. })
        ));
    }

    #[test]
    fn unknown_ids_close() {
        for bad in [10u8, 11, 12, 18, 19, 21, 255] {
            assert_eq!(
                decode_one(&mut decoder(10), &frame(&[bad, 1, 2])),
                Err(WireError::UnknownMessageId(bad))
            );
        }
    }

    #[test]
    fn buffering_is_bounded() {
        let mut d = decoder(10);
        let cap = d.capacity();
        assert!(cap >= 4 + 9 + DEFAULT_MAX_BLOCK_LENGTH as usize);
        assert_eq!(cap, 4 + 9 + DEFAULT_MAX_BLOCK_LENGTH as usize);
        // Feed a valid piece header claiming the biggest block, then more than capacity.
        let mut hdr = (9 + DEFAULT_MAX_BLOCK_LENGTH).to_be_bytes().to_vec();
        hdr.extend_from_slice(&[id::PIECE, 0, 0, 0, 0, 0, 0, 0, 0]);
        let junk = vec![0u8; cap * 2];
        assert_eq!(d.feed(&hdr), hdr.len());
        let took = d.feed(&junk);
        assert_eq!(d.buffered(), cap);
        assert!(took < junk.len());
        assert!(d.next_message().unwrap().is_some());
        assert!(d.room() > 0);
    }

    fn random_message(rng: &mut fastrand::Rng, pieces: u32, first: bool) -> Message<'static> {
        static DATA: [u8; 300] = [0xab; 300];
        let r = BlockRequest {
            piece: rng.u32(0..pieces),
            begin: rng.u32(0..1 << 20),
            length: rng.u32(1..=DEFAULT_MAX_BLOCK_LENGTH),
        };
        match rng.u8(0..17) {
            0 if first => {
                let mut b = Bitfield::new(pieces).unwrap();
                for i in 0..pieces {
                    if rng.bool() {
                        b.set(i);
                    }
                }
                Message::Bitfield(b)
            }
            1 if first => Message::HaveAll,
            2 if first => Message::HaveNone,
            3 => Message::Choke,
            4 => Message::Unchoke,
            5 => Message::Interested,
            6 => Message::NotInterested,
            7 => Message::Have(rng.u32(0..pieces)),
            8 => Message::Request(r),
            9 => Message::Cancel(r),
            10 => Message::Reject(r),
            11 => Message::Piece(Block {
                piece: r.piece,
                begin: r.begin,
                data: &DATA[..rng.usize(1..300)],
            }),
            12 => Message::Suggest(rng.u32(0..pieces)),
            13 => Message::AllowedFast(rng.u32(0..pieces)),
            14 => Message::Port(rng.u16(..)),
            15 => Message::Extended(Extended {
                id: rng.u8(..),
                payload: &DATA[..rng.usize(0..300)],
            }),
            _ => Message::KeepAlive,
        }
    }

    /// Random valid streams, lightly corrupted and fed in random chunk sizes: the decoder never
    /// panics, never holds more than its capacity, and yields exactly the encoded messages up to the
    /// first corrupted frame.
    #[test]
    fn corrupted_streams_never_panic() {
        let mut rng = fastrand::Rng::with_seed(42);
        let mut decoded_total = 0usize;
        let mut errors = 0usize;
        for _ in 0..3000 {
            let pieces = rng.u32(1..2000);
            let msgs: Vec<Message<'static>> = (0..rng.usize(1..20))
                .map(|i| random_message(&mut rng, pieces, i == 0))
                .collect();
            let mut stream = Vec::new();
            for m in &msgs {
                m.encode_into(&mut stream);
            }
            let corrupt = rng.u8(0..4) == 0;
            if corrupt {
                for _ in 0..rng.usize(1..4) {
                    let k = rng.usize(..stream.len());
                    stream[k] = rng.u8(..);
                }
            }
            let mut d = decoder(pieces);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            let mut failed = false;
            'feed: while !rest.is_empty() {
                let n = d.feed(&rest[..rng.usize(1..=rest.len().min(5000))]);
                assert!(d.buffered() <= d.capacity());
                rest = &rest[n..];
                loop {
                    match d.next_message() {
                        Ok(Some(m)) => got.push(format!("{m:?}")),
                        Ok(None) => break,
                        Err(_) => {
                            failed = true;
                            break 'feed;
                        }
                    }
                }
            }
            decoded_total += got.len();
            errors += failed as usize;
            if !corrupt {
                assert!(!failed);
                let want: Vec<_> = msgs.iter().map(|m| format!("{m:?}")).collect();
                assert_eq!(got, want);
            }
        }
        assert!(decoded_total > 10_000, "{decoded_total}");
        assert!(errors > 100, "{errors}");
    }

    #[test]
    fn extreme_limits_do_not_overflow() {
        let limits = WireLimits {
            max_message_length: u32::MAX,
            max_block_length: u32::MAX,
            max_extended_length: u32::MAX,
        };
        let mut d = MessageDecoder::new(10, ALL, limits);
        assert_eq!(d.capacity(), 4 + u32::MAX as usize);
        assert!(decode_one(&mut d, &frame(&[7, 0, 0, 0, 1, 0, 0, 0, 0, 9]))
            .unwrap()
            .is_some());
    }

    #[test]
    fn capacity_tracks_bitfield_size() {
        let d = decoder(1_000_000);
        assert!(d.capacity() >= 4 + 1 + 125_000);
    }
}
