//! The whole pure core driven together, over in-memory byte pipes instead of sockets: a leecher
//! downloads a multi-file torrent from two honest seeds and one hostile seed that corrupts every block
//! it sends. Everything crosses the real wire encoding in both directions. The leecher must finish with
//! exactly the original bytes, and the hostile seed must be kicked or banned by the bad-data rules.

use cyclone_engine::bad_data::{BadDataGuard, Verdict};
use cyclone_engine::bitfield::Bitfield;
use cyclone_engine::choker::{ChokeAction, Choker, ChokerConfig, PeerSnapshot};
use cyclone_engine::picker::PickerConfig;
use cyclone_engine::piece_map::PieceMap;
use cyclone_engine::requester::{pipeline_depth, Requester};
use cyclone_engine::upload::{RequestOutcome, UploadQueue};
use cyclone_engine::wire::{
    Block, Handshake, Message, MessageDecoder, Reserved, WireLimits, HANDSHAKE_LEN,
};
use sha1::{Digest, Sha1};
use std::time::Instant;

const PIECE_LENGTH: u64 = 32 * 1024;
const HOSTILE: u8 = 2;

/// A seed on the other end of the leecher's connection.
struct Seed {
    id: u8,
    to_leecher: Vec<u8>,
    from_leecher: MessageDecoder,
    queue: UploadQueue,
    choker: Choker<u8>,
    leecher_interested: bool,
    unchoked: bool,
    connected: bool,
}

fn fingerprint(data: &[u8]) -> u64 {
    let d = Sha1::digest(data);
    u64::from_be_bytes(d[..8].try_into().unwrap())
}

#[test]
fn leecher_completes_and_hostile_seed_is_kicked() {
    let mut rng = fastrand::Rng::with_seed(2026);
    let file_lengths = [100_000u64, 0, 7, 180_000, 40_000];
    let total: u64 = file_lengths.iter().sum();
    let content: Vec<u8> = (0..total).map(|_| rng.u8(..)).collect();
    let map = PieceMap::new(PIECE_LENGTH, &file_lengths).unwrap();
    let n = map.piece_count();
    let hashes: Vec<[u8; 20]> = (0..n)
        .map(|p| {
            let start = map.piece_offset(p) as usize;
            Sha1::digest(&content[start..start + map.piece_size(p) as usize]).into()
        })
        .collect();
    let full = Bitfield::full(n).unwrap();
    let info_hash = [0x5a; 20];
    let now = Instant::now();

    // Handshakes both ways; both sides advertise fast + extended.
    let leecher_hs = Handshake {
        reserved: Reserved::CYCLONE,
        info_hash,
        peer_id: *b"-CY0001-leecher00000",
    };
    let mut seeds: Vec<Seed> = (0..3u8)
        .map(|id| {
            let theirs = Handshake {
                reserved: Reserved::CYCLONE,
                info_hash,
                peer_id: [b'0' + id; 20],
            };
            let got: [u8; HANDSHAKE_LEN] = theirs.encode();
            let decoded = Handshake::decode(&got).unwrap();
            assert_eq!(decoded.info_hash, leecher_hs.info_hash);
            let ext = Reserved::CYCLONE.negotiate(decoded.reserved);
            assert!(ext.fast && ext.extended);
            let mut to_leecher = Vec::new();
            Message::HaveAll.encode_into(&mut to_leecher);
            Seed {
                id,
                to_leecher,
                from_leecher: MessageDecoder::new(n, ext, WireLimits::default()),
                queue: UploadQueue::new(ext.fast),
                choker: Choker::new(ChokerConfig::default(), now),
                leecher_interested: false,
                unchoked: false,
                connected: true,
            }
        })
        .collect();
    for s in &mut seeds {
        assert!(s.choker.peer_connected(0, &mut rng));
    }

    // Leecher state.
    let mut requester: Requester<u8> = Requester::new(map.clone(), PickerConfig::default(), 7);
    let mut guard: BadDataGuard<u8> = BadDataGuard::new();
    let mut decoders: Vec<MessageDecoder> = seeds
        .iter()
        .map(|_| {
            MessageDecoder::new(
                n,
                Reserved::CYCLONE.negotiate(Reserved::CYCLONE),
                WireLimits::default(),
            )
        })
        .collect();
    let mut to_seed: Vec<Vec<u8>> = vec![Vec::new(); seeds.len()];
    let mut files: Vec<Vec<u8>> = file_lengths
        .iter()
        .map(|&l| vec![0u8; l as usize])
        .collect();
    // Per piece: (sender, fingerprint) per block, as received.
    let mut block_log: Vec<Vec<(u8, u64)>> = (0..n)
        .map(|p| vec![(u8::MAX, 0); map.block_count(p) as usize])
        .collect();
    let mut kicked = None;
    let mut failures = 0;
    for s in &seeds {
        requester.add_peer(s.id, true).unwrap();
    }

    for _round in 0..2000 {
        if requester.picker().is_complete() {
            break;
        }
        for i in 0..seeds.len() {
            if !seeds[i].connected {
                continue;
            }
            // Seed -> leecher bytes.
            let bytes = std::mem::take(&mut seeds[i].to_leecher);
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let fed = decoders[i].feed(rest);
                rest = &rest[fed..];
                while let Some(msg) = decoders[i].next_message().unwrap() {
                    let id = seeds[i].id;
                    match msg {
                        Message::HaveAll => {
                            requester.peer_have_all(id);
                            if requester.is_interesting(id) {
                                Message::Interested.encode_into(&mut to_seed[i]);
                            }
                        }
                        Message::Unchoke => requester.peer_unchoked(id),
                        Message::Choke => {
                            requester.peer_choked(id);
                        }
                        Message::Reject(r) => {
                            requester.peer_rejected(id, &r);
                        }
                        Message::Piece(b) => {
                            let req = b.request();
                            let outcome = requester.block_received(id, &req);
                            for (other, c) in outcome.cancels {
                                Message::Cancel(c).encode_into(&mut to_seed[other as usize]);
                            }
                            if !outcome.accepted {
                                continue;
                            }
                            // Write through the file mapping, as storage will.
                            for span in map.spans(req.piece, req.begin, req.length).unwrap() {
                                let file = &mut files[span.file_index];
                                let dst = span.file_offset as usize;
                                let src = span.range_offset as usize;
                                file[dst..dst + span.length as usize]
                                    .copy_from_slice(&b.data[src..src + span.length as usize]);
                            }
                            let block = map.block_index(&req).unwrap() as usize;
                            block_log[req.piece as usize][block] = (id, fingerprint(b.data));
                            if let Some(p) = outcome.piece_complete {
                                // Read the piece back through the mapping and hash it.
                                let mut hasher = Sha1::new();
                                for span in map.piece_spans(p).unwrap() {
                                    let at = span.file_offset as usize;
                                    hasher.update(
                                        &files[span.file_index][at..at + span.length as usize],
                                    );
                                }
                                let ok = <[u8; 20]>::from(hasher.finalize()) == hashes[p as usize];
                                requester.piece_verified(p, ok);
                                let connected = seeds.iter().filter(|s| s.connected).count();
                                let log = &block_log[p as usize];
                                let verdicts = if ok {
                                    guard.piece_passed(p, log, connected)
                                } else {
                                    failures += 1;
                                    guard.piece_failed(p, log, connected)
                                };
                                for (ip, verdict) in verdicts {
                                    assert_eq!(ip, HOSTILE, "an honest seed was blamed");
                                    kicked.get_or_insert(verdict);
                                }
                            }
                        }
                        other => panic!("unexpected message from seed: {other:?}"),
                    }
                }
            }
            if let Some(verdict) = kicked {
                if seeds[HOSTILE as usize].connected {
                    assert!(matches!(verdict, Verdict::Kick | Verdict::Ban));
                    seeds[HOSTILE as usize].connected = false;
                    requester.remove_peer(HOSTILE);
                    continue;
                }
            }
            // Leecher -> seed requests.
            let depth = pipeline_depth(16384.0 * 2.0, false, None);
            for r in requester.fill(seeds[i].id, depth) {
                Message::Request(r).encode_into(&mut to_seed[i]);
            }
            let bytes = std::mem::take(&mut to_seed[i]);
            let seed = &mut seeds[i];
            assert_eq!(seed.from_leecher.feed(&bytes), bytes.len());
            while let Some(msg) = seed.from_leecher.next_message().unwrap() {
                match msg {
                    Message::Interested => seed.leecher_interested = true,
                    Message::Request(r) => {
                        match seed
                            .queue
                            .got_request(r, seed.leecher_interested, !seed.unchoked, &map, &full)
                            .unwrap()
                        {
                            RequestOutcome::Reject => {
                                Message::Reject(r).encode_into(&mut seed.to_leecher)
                            }
                            RequestOutcome::Queued | RequestOutcome::Ignored => {}
                        }
                    }
                    Message::Cancel(r) => {
                        if let Some(rej) = seed.queue.got_cancel(&r) {
                            Message::Reject(rej).encode_into(&mut seed.to_leecher);
                        }
                    }
                    other => panic!("unexpected message from leecher: {other:?}"),
                }
            }
            let snap = PeerSnapshot {
                interested: seed.leecher_interested,
                unchoked: seed.unchoked,
                ..Default::default()
            };
            for (_, action) in seed.choker.rechoke(true, |_| snap) {
                seed.unchoked = action == ChokeAction::Unchoke;
                let m = if seed.unchoked {
                    Message::Unchoke
                } else {
                    Message::Choke
                };
                m.encode_into(&mut seed.to_leecher);
            }
            // Serve a few blocks per round; the hostile seed flips a byte in each.
            for _ in 0..3 {
                let Some(r) = seed.queue.pop() else { break };
                let at = (map.piece_offset(r.piece) + r.begin as u64) as usize;
                let mut data = content[at..at + r.length as usize].to_vec();
                if seed.id == HOSTILE {
                    data[0] ^= 0xff;
                }
                Message::Piece(Block {
                    piece: r.piece,
                    begin: r.begin,
                    data: &data,
                })
                .encode_into(&mut seed.to_leecher);
            }
        }
        requester.check_invariants();
    }

    assert!(requester.picker().is_complete(), "download did not finish");
    assert!(
        files.concat() == content,
        "downloaded bytes differ from the original"
    );
    assert!(
        failures > 0,
        "the hostile seed never got to send a bad piece"
    );
    assert!(kicked.is_some(), "the hostile seed was not kicked");
    assert!(!seeds[HOSTILE as usize].connected);
}
