//! Fuzz the UDP tracker's (BEP 15) request decoder: no datagram makes it panic; every accepted
//! request re-encodes to a datagram that decodes to the same request (byte-exact for connect and
//! scrape; for an announce the fixed 98 bytes are exact and BEP 41 URL data survives); refusals
//! carry a transaction id exactly when the datagram has one.
#![no_main]

use cyclone_tracker::udp::codec::{
    decode_request, encode_error, encode_request, UdpRequest, ANNOUNCE_LEN, MAX_ERROR_MESSAGE,
    MAX_SCRAPE_HASHES, MAX_URL_DATA,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_request(data) {
        Ok(req) => {
            let mut again = Vec::new();
            encode_request(&req, &mut again);
            let back = decode_request(&again).expect("an encoded request decodes");
            assert_eq!(back, req);
            match &req {
                UdpRequest::Connect { .. } => assert_eq!(again, data),
                UdpRequest::Scrape { info_hashes, .. } => {
                    assert!(!info_hashes.is_empty() && info_hashes.len() <= MAX_SCRAPE_HASHES);
                    assert_eq!(again, data);
                }
                UdpRequest::Announce(a) => {
                    assert!(a.url_data.len() <= MAX_URL_DATA);
                    assert_eq!(again[..ANNOUNCE_LEN], data[..ANNOUNCE_LEN]);
                }
            }
        }
        Err(e) => {
            assert_eq!(e.transaction_id.is_some(), data.len() >= 16);
            if let Some(t) = e.transaction_id {
                let mut out = Vec::new();
                encode_error(&mut out, t, &e.to_string());
                assert!(out.len() <= 8 + MAX_ERROR_MESSAGE);
            }
        }
    }
});
