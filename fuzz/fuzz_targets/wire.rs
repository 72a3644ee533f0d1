//! Fuzz the peer wire decoder: arbitrary bytes, fed in arbitrary chunk sizes, under arbitrary
//! torrent shapes and negotiated extensions, must never panic, never buffer more than the decoder's
//! capacity, and every message it yields must survive an encode/decode round trip unchanged.
#![no_main]

use cyclone_engine::extension::ExtensionHandshake;
use cyclone_engine::wire::{
    Extensions, Handshake, HandshakeHead, Message, MessageDecoder, WireLimits, HANDSHAKE_HEAD_LEN,
    HANDSHAKE_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Header bytes choose the shape: piece count (1..=65536), extensions, chunking, limits.
    if data.len() < 5 {
        return;
    }
    let piece_count = u32::from(u16::from_le_bytes([data[0], data[1]])) + 1;
    let ext = Extensions {
        fast: data[2] & 1 != 0,
        extended: data[2] & 2 != 0,
    };
    let limits = WireLimits {
        max_message_length: if data[2] & 4 != 0 {
            1 << 10
        } else {
            WireLimits::default().max_message_length
        },
        ..WireLimits::default()
    };
    let chunk = usize::from(data[3]) + 1;
    let body = &data[5..];

    // Handshakes: any 48 or 68 bytes decode or fail cleanly; a good one round-trips.
    if body.len() >= HANDSHAKE_LEN {
        let full: &[u8; HANDSHAKE_LEN] = body[..HANDSHAKE_LEN].try_into().unwrap();
        if let Ok(h) = Handshake::decode(full) {
            assert_eq!(&h.encode(), full);
        }
        let head: &[u8; HANDSHAKE_HEAD_LEN] = body[..HANDSHAKE_HEAD_LEN].try_into().unwrap();
        let _ = HandshakeHead::decode(head);
    }

    let mut decoder = MessageDecoder::new(piece_count, ext, limits);
    let mut rest = body;
    let mut first = true;
    'stream: while !rest.is_empty() {
        let take = chunk.min(rest.len());
        let fed = decoder.feed(&rest[..take]);
        assert!(decoder.buffered() <= decoder.capacity());
        rest = &rest[fed..];
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    if let Message::Extended(e) = &msg {
                        if e.id == 0 {
                            if let Ok(h) = ExtensionHandshake::decode(e.payload) {
                                // Our own encoding of what we understood must decode to the same.
                                let again = ExtensionHandshake::decode(&h.encode()).unwrap();
                                assert_eq!(again.port, h.port);
                                assert_eq!(again.request_queue, h.request_queue);
                            }
                        }
                    }
                    let mut bytes = Vec::new();
                    msg.encode_into(&mut bytes);
                    assert_eq!(bytes.len(), msg.encoded_len());
                    // Re-decode with a fresh decoder; first-only messages need a fresh stream.
                    let is_first_only = matches!(
                        msg,
                        Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
                    );
                    assert!(!is_first_only || first);
                    let mut again = MessageDecoder::new(piece_count, ext, limits);
                    assert_eq!(again.feed(&bytes), bytes.len());
                    let round = again.next_message().expect("re-encoded message decodes");
                    assert_eq!(round.as_ref(), Some(&msg));
                    // The decoder's rule: keep-alives and BEP 10 messages do not count as "the first message"
                    // (aria2 sends its extension handshake before its bitfield, which BEP 10 allows).
                    if !matches!(msg, Message::KeepAlive | Message::Extended(_)) {
                        first = false;
                    }
                }
                Ok(None) => {
                    if fed == 0 && decoder.room() == 0 {
                        panic!("decoder full without a complete message");
                    }
                    break;
                }
                Err(_) => {
                    assert!(decoder.next_message().is_err(), "decoder must stay failed");
                    break 'stream;
                }
            }
        }
    }
});
