//! Nothing panics on hostile input: random and mutated bytes into every pure parser of the
//! tracker (announce/scrape queries, dfiles). Deterministic seeds, bounded work.

use cyclone_tracker::{dfile, request};

fn mutate(rng: &mut fastrand::Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..rng.usize(1..8) {
        match rng.u8(..4) {
            0 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] = rng.u8(..);
            }
            1 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v.truncate(i);
            }
            2 => {
                let i = rng.usize(..=v.len());
                v.insert(i, b"%&=+0e:id"[rng.usize(..9)]);
            }
            _ => v.extend_from_slice(b"&x=%"),
        }
    }
    v
}

#[test]
fn query_parsers_never_panic() {
    let mut rng = fastrand::Rng::with_seed(4);
    let base = b"info_hash=%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13%14&peer_id=-XX0001-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=5&compact=1&numwant=9&event=started&key=k&ip=1.2.3.4&cryptoport=7&supportcrypto=1";
    let mut ok = 0;
    for _ in 0..20_000 {
        let q = mutate(&mut rng, base);
        if request::parse_announce(&q).is_ok() {
            ok += 1;
        }
        let _ = request::parse_scrape(&q);
    }
    for _ in 0..5_000 {
        let len = rng.usize(..300);
        let q: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let _ = request::parse_announce(&q);
        let _ = request::parse_scrape(&q);
    }
    assert!(
        ok > 100,
        "mutations should leave some requests valid ({ok})"
    );
}

#[test]
fn dfile_decoder_never_panics() {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut base = b"d9:completedd20:".to_vec();
    base.extend_from_slice(&[7; 20]);
    base.extend_from_slice(b"i2ee5:peersd20:");
    base.extend_from_slice(&[7; 20]);
    base.extend_from_slice(b"d20:");
    base.extend_from_slice(&[8; 20]);
    base.extend_from_slice(
        b"d2:ip9:127.0.0.14:lefti0e3:nati0e4:porti6881e13:requirecryptoi0e13:supportcryptoi1eeeee",
    );
    assert!(dfile::decode(&base, false).is_ok());
    for _ in 0..20_000 {
        let d = mutate(&mut rng, &base);
        let _ = dfile::decode(&d, true);
    }
}
