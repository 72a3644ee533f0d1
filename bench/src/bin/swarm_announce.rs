//! CPU time of the tracker's swarm work per announce (`cyclone_tracker::swarm::ShardState::announce`: record the
//! peer, choose up to 50 others, encode the compact answer), without sockets or HTTP, on `tracker_load`'s workload:
//! 10,000 torrents with skewed popularity (index = N * u^4: the hottest torrent gets ~10 % of announces), 25 %
//! seeders, a new random peer id and port per announce, so swarms grow as in a load run.
//!
//! `cargo run --release -p cyclone-bench --bin swarm_announce`
//!
//! Prints the median of 5 measurements of 100,000 announces each, taken after 300,000 announces of warm-up (about
//! what one 6-10 s `tracker_load` run sends, so the swarms are of that size: ~30,000 peers in the hottest).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use cyclone_tracker::request::{AnnounceRequest, Event};
use cyclone_tracker::swarm::{AnnounceWork, ReplyFormat, ShardState, SwarmConfig};

const TORRENTS: usize = 10_000;
const WARM_UP: usize = 300_000;
const PER_MEASUREMENT: usize = 100_000;

fn config() -> SwarmConfig {
    SwarmConfig {
        response_size: 50,
        reannounce_interval: 1800,
        min_interval: 900,
        multitracker_reannounce_interval: 120,
        nat_check: 0,
        keep_dead: false,
        allowed_controls: false,
        dedicated_seed_id: None,
    }
}

fn work(rng: &mut fastrand::Rng, hashes: &[[u8; 20]]) -> AnnounceWork {
    let u = rng.f64();
    let idx = ((hashes.len() as f64) * u.powi(4)) as usize;
    let mut peer_id = *b"-LT0001-000000000000";
    for b in &mut peer_id[8..] {
        *b = b'a' + rng.u8(..26);
    }
    let ip = IpAddr::V4(Ipv4Addr::from(rng.u32(..)));
    AnnounceWork {
        req: AnnounceRequest {
            info_hash: hashes[idx.min(hashes.len() - 1)],
            peer_id,
            port: rng.u16(1024..),
            left: if rng.f64() < 0.25 {
                0
            } else {
                rng.u64(1..1 << 30)
            },
            event: Event::Started,
            compact: true,
            ..AnnounceRequest::default()
        },
        conn_ip: ip,
        listed_ip: ip,
        local: true,
        now: 1,
        reply: ReplyFormat::Http,
    }
}

fn main() {
    let mut rng = fastrand::Rng::with_seed(1);
    let hashes: Vec<[u8; 20]> = (0..TORRENTS)
        .map(|_| {
            let mut h = [0u8; 20];
            rng.fill(&mut h);
            h
        })
        .collect();
    let mut state = ShardState::new(config(), 1);
    for _ in 0..WARM_UP {
        let w = work(&mut rng, &hashes);
        black_box(state.announce(&w).expect("announce"));
    }
    // The request is built outside the timed part (its random peer id is not the swarm's work).
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let works: Vec<AnnounceWork> = (0..PER_MEASUREMENT)
                .map(|_| work(&mut rng, &hashes))
                .collect();
            let start = Instant::now();
            for w in &works {
                black_box(state.announce(black_box(w)).expect("announce"));
            }
            start.elapsed().as_nanos() as f64 / PER_MEASUREMENT as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    println!(
        "swarm work per announce ({TORRENTS} torrents, u^4 skew, 25 % seeders, new peer each): {:.0} ns (median of 5; min {:.0}, max {:.0})",
        samples[2], samples[0], samples[4]
    );
}
