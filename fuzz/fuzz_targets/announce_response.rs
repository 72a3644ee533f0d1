//! Fuzz the tracker reply path: HTTP/1.x response parsing, then the bencoded announce and scrape bodies, plus the
//! tracker URL parser and the scrape-URL rule. Nothing may panic, and every bound must hold.
#![no_main]

use cyclone_engine::announce::http::{self, AnnounceError};
use cyclone_engine::announce::http_response::{parse_response, Parsed, ResponseLimits};
use cyclone_engine::announce::url::TrackerUrl;
use cyclone_engine::announce::ReplyLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReplyLimits {
        max_peers: 50,
        max_scrape_files: 20,
        ..ReplyLimits::default()
    };
    let response_limits = ResponseLimits {
        max_head_bytes: 4096,
        max_headers: 32,
        max_body_bytes: 32 << 10,
    };

    // The whole input as a response. A response complete before EOF is complete, and the same, at EOF.
    let open = parse_response(data, false, &response_limits);
    let closed = parse_response(data, true, &response_limits);
    if let Ok(Parsed::Complete(r)) = &open {
        assert_eq!(closed.as_ref().ok(), Some(&Parsed::Complete(r.clone())));
    }
    assert!(
        !matches!(closed, Ok(Parsed::Incomplete)),
        "at EOF a response is complete or an error"
    );
    if let Ok(Parsed::Complete(r)) = &closed {
        assert!(r.body.len() <= response_limits.max_body_bytes);
        let _ = http::announce_from_http(r, &limits);
        let _ = http::scrape_from_http(r, &limits);
        let _ = r.redirect();
    }

    // The whole input as a body.
    match http::parse_announce(data, &limits) {
        Ok(reply) => {
            let peers: Vec<_> = reply.peers().collect();
            assert_eq!(peers.len(), reply.peer_count());
            assert!(peers.len() <= limits.max_peers);
            assert!(peers.iter().all(|p| p.addr.port() != 0));
            assert!(reply.interval.is_none_or(|i| i > 0));
            assert!(reply.min_interval.is_none_or(|i| i > 0));
            assert!(reply
                .tracker_id
                .is_none_or(|t| t.len() <= http::MAX_TRACKER_ID_BYTES));
        }
        Err(AnnounceError::Rejected(reason)) => assert!(reason.len() <= limits.max_message_bytes),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(s) = http::parse_scrape(data, &limits) {
        assert!(s.files.len() <= limits.max_scrape_files);
    }

    // The input as a tracker URL.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(u) = TrackerUrl::parse(text) {
            assert!(u.url.len() <= text.len());
            let _ = u.host_header();
        }
        if let Some(scrape) = http::scrape_base(text) {
            assert!(scrape.contains("scrape"));
        }
    }
});
