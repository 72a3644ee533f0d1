//! Fuzz the UDP tracker (BEP 15) decoder and the exchange state machine: any datagram, with its transaction id
//! patched to match so the fuzzer reaches the reply handling. Nothing may panic; bounds must hold.
#![no_main]

use std::time::{Duration, Instant};

use cyclone_engine::announce::udp::{
    decode_response, ConnectionId, Family, Request, Response, RetransmitPolicy, Step, UdpAnnounce,
    UdpExchange,
};
use cyclone_engine::announce::Key;
use libfuzzer_sys::fuzz_target;

const MAX_PEERS: usize = 20;

fn exchange(request: Request, family: Family, connection: Option<ConnectionId>) -> UdpExchange {
    UdpExchange::new(
        request,
        b"/announce?k=1",
        family,
        RetransmitPolicy::default(),
        MAX_PEERS,
        connection,
    )
    .expect("valid exchange")
}

fuzz_target!(|data: &[u8]| {
    for family in [Family::V4, Family::V6] {
        if let Ok(r) = decode_response(data, family) {
            match r {
                Response::Announce(a) => {
                    assert!(a.peers().count() <= a.entry_count());
                }
                Response::Scrape(s) => assert_eq!(s.entries().count(), s.len()),
                Response::Connect { .. } => assert_eq!(data.len(), 16),
                Response::Error { message, .. } => assert_eq!(message.len(), data.len() - 8),
            }
        }
    }

    let now = Instant::now();
    let announce = UdpAnnounce {
        info_hash: [1; 20],
        peer_id: [2; 20],
        downloaded: 0,
        left: 1,
        uploaded: 0,
        event: None,
        ip: None,
        key: Key(3),
        numwant: Some(50),
        port: 6881,
    };
    let fresh = Some(ConnectionId {
        id: 9,
        received_at: now,
    });
    let requests = [
        (Request::Announce(announce), None),
        (Request::Announce(announce), fresh),
        (Request::Scrape(vec![[4; 20], [5; 20]]), fresh),
    ];
    for (request, connection) in requests {
        for family in [Family::V4, Family::V6] {
            let mut rng = fastrand::Rng::with_seed(data.len() as u64);
            let mut x = exchange(request.clone(), family, connection);
            let mut step = x.start(now, &mut rng);
            // Feed the datagram up to three times (connect, then request), each time as a reply to the current id.
            for round in 0..3 {
                if !matches!(step, Step::Send { .. }) {
                    break;
                }
                let mut packet = data.to_vec();
                if packet.len() >= 8 {
                    packet[4..8].copy_from_slice(&x.transaction_id().to_be_bytes());
                }
                step = x.on_packet(now + Duration::from_secs(round), &packet, &mut rng);
                if let Step::Announced(out) = &step {
                    assert!(out.peers.len() <= MAX_PEERS);
                    assert!(out.peers.iter().all(|p| p.addr.port() != 0));
                }
                if let Step::Scraped(s) = &step {
                    assert_eq!(s.len(), 2);
                }
                if step == Step::Ignored {
                    step = x.on_timeout(now + Duration::from_secs(15), &mut rng);
                }
            }
        }
    }
});
