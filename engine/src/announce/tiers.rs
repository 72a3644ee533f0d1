//! BEP 12 multitracker state: which tracker to try next.
//!
//! Rules (BitTornado `Rerequester`, `docs/multitracker-spec.txt`):
//! - if the torrent has an `announce-list`, its `announce` is ignored;
//! - the URLs of each tier are shuffled once, when the torrent starts;
//! - each announce walks the tiers in order and, within a tier, the URLs in their current order, stopping at the first
//!   tracker that answers;
//! - the tracker that answered moves to the front of its tier, so the next announce goes to it first.
//!
//! Where cyclone differs, on purpose:
//! - BitTornado gives up on the whole round when the tracker that answered last time fails (a quirk its own comment
//!   calls "fail silently"), and tries the others only on the next round. That leaves a torrent without peers for a
//!   full interval whenever its favourite tracker blinks; cyclone goes on to the next tracker, as BEP 12 intends.
//! - URLs that cannot be used (unsupported scheme, malformed, over the size limit) and duplicates are dropped when the
//!   list is built, so a long dead list costs nothing per round (libtorrent#8888 spun a core on one).
//! - If every URL of `announce-list` is unusable, `announce` is used, rather than leaving the torrent with no tracker.
//! - Sizes are bounded: [`MAX_TIERS`] tiers, [`MAX_TRACKERS`] URLs in all.

use super::url::{TrackerUrl, UrlError};

/// Most tiers kept from one torrent.
pub const MAX_TIERS: usize = 64;
/// Most tracker URLs kept from one torrent, over all tiers.
pub const MAX_TRACKERS: usize = 256;
/// Most URL errors remembered for reporting.
pub const MAX_REPORTED_ERRORS: usize = 16;

/// Position of a tracker: tier, then index within the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackerPos {
    pub tier: usize,
    pub index: usize,
}

/// The tracker tiers of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerTiers {
    tiers: Vec<Vec<TrackerUrl>>,
    /// Why URLs were dropped (the first [`MAX_REPORTED_ERRORS`]).
    pub dropped: Vec<UrlError>,
}

impl TrackerTiers {
    /// Builds the tiers from a torrent's `announce` and `announce-list` and shuffles each tier once with `rng`
    /// (seed it in tests).
    pub fn new(
        announce: Option<&str>,
        announce_list: &[Vec<String>],
        rng: &mut fastrand::Rng,
    ) -> TrackerTiers {
        let mut t = TrackerTiers {
            tiers: Vec::new(),
            dropped: Vec::new(),
        };
        let mut total = 0usize;
        for tier in announce_list.iter().take(MAX_TIERS) {
            let mut urls = Vec::new();
            for url in tier {
                if total == MAX_TRACKERS {
                    break;
                }
                if let Some(u) = t.accept(url, &urls) {
                    urls.push(u);
                    total += 1;
                }
            }
            if !urls.is_empty() {
                rng.shuffle(&mut urls);
                t.tiers.push(urls);
            }
        }
        if t.tiers.is_empty() {
            if let Some(u) = announce.and_then(|a| t.accept(a, &[])) {
                t.tiers.push(vec![u]);
            }
        }
        t
    }

    /// Parses `url` and checks it is new; records why not otherwise.
    fn accept(&mut self, url: &str, current_tier: &[TrackerUrl]) -> Option<TrackerUrl> {
        let url = url.trim();
        if url.is_empty() {
            return None;
        }
        match TrackerUrl::parse(url) {
            Ok(u) => {
                let seen = current_tier
                    .iter()
                    .chain(self.tiers.iter().flatten())
                    .any(|o| o.url == u.url);
                (!seen).then_some(u)
            }
            Err(e) => {
                if self.dropped.len() < MAX_REPORTED_ERRORS {
                    self.dropped.push(e);
                }
                None
            }
        }
    }

    pub fn tiers(&self) -> &[Vec<TrackerUrl>] {
        &self.tiers
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    pub fn get(&self, pos: TrackerPos) -> Option<&TrackerUrl> {
        self.tiers.get(pos.tier)?.get(pos.index)
    }

    /// The first tracker of a round.
    pub fn first(&self) -> Option<TrackerPos> {
        (!self.tiers.is_empty()).then_some(TrackerPos { tier: 0, index: 0 })
    }

    /// The tracker to try after `pos` failed in this round, or `None` when the round has tried them all.
    pub fn after(&self, pos: TrackerPos) -> Option<TrackerPos> {
        let tier = self.tiers.get(pos.tier)?;
        if pos.index + 1 < tier.len() {
            return Some(TrackerPos {
                tier: pos.tier,
                index: pos.index + 1,
            });
        }
        (pos.tier + 1 < self.tiers.len()).then_some(TrackerPos {
            tier: pos.tier + 1,
            index: 0,
        })
    }

    /// The tracker at `pos` answered: move it to the front of its tier (the others keep their order). Returns its new
    /// position.
    pub fn promote(&mut self, pos: TrackerPos) -> TrackerPos {
        if let Some(tier) = self.tiers.get_mut(pos.tier) {
            if pos.index < tier.len() {
                tier[..=pos.index].rotate_right(1);
            }
        }
        TrackerPos {
            tier: pos.tier,
            index: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(t: &TrackerTiers) -> Vec<Vec<&str>> {
        t.tiers()
            .iter()
            .map(|tier| tier.iter().map(|u| u.url.as_str()).collect())
            .collect()
    }

    fn list(tiers: &[&[&str]]) -> Vec<Vec<String>> {
        tiers
            .iter()
            .map(|t| t.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn announce_list_wins_over_announce() {
        let mut rng = fastrand::Rng::with_seed(7);
        let t = TrackerTiers::new(
            Some("http://a/announce"),
            &list(&[&["http://b/announce"]]),
            &mut rng,
        );
        assert_eq!(urls(&t), [["http://b/announce"]]);
        let t = TrackerTiers::new(Some("http://a/announce"), &[], &mut rng);
        assert_eq!(urls(&t), [["http://a/announce"]]);
        // An announce-list with nothing usable falls back to announce.
        let t = TrackerTiers::new(
            Some("http://a/announce"),
            &list(&[&["", "wss://x"], &[]]),
            &mut rng,
        );
        assert_eq!(urls(&t), [["http://a/announce"]]);
        assert_eq!(t.dropped.len(), 1);
        let t = TrackerTiers::new(None, &[], &mut rng);
        assert!(t.is_empty());
        assert_eq!(t.first(), None);
    }

    #[test]
    fn shuffles_within_tiers_only_and_deterministically_with_a_seed() {
        let tier0: Vec<String> = (0..8).map(|i| format!("http://t{i}/announce")).collect();
        let input = vec![tier0.clone(), vec!["udp://u:1".to_string()]];
        let a = TrackerTiers::new(None, &input, &mut fastrand::Rng::with_seed(1));
        let b = TrackerTiers::new(None, &input, &mut fastrand::Rng::with_seed(1));
        assert_eq!(a, b);
        let mut got: Vec<String> = a.tiers()[0].iter().map(|u| u.url.clone()).collect();
        assert_ne!(
            got, tier0,
            "8 URLs shuffled by seed 1 are not in the original order"
        );
        got.sort();
        let mut want = tier0;
        want.sort();
        assert_eq!(got, want);
        assert_eq!(urls(&a)[1], ["udp://u:1"]);
    }

    #[test]
    fn drops_duplicates_and_bad_urls_and_bounds_sizes() {
        let mut rng = fastrand::Rng::with_seed(3);
        let t = TrackerTiers::new(
            None,
            &list(&[
                &["http://a/x", "http://a/x", " http://b/x "],
                &["http://a/x", "nonsense"],
            ]),
            &mut rng,
        );
        let mut tier0 = urls(&t)[0].clone();
        tier0.sort();
        assert_eq!(tier0, ["http://a/x", "http://b/x"]);
        assert_eq!(urls(&t).len(), 1, "a tier left empty is dropped");
        assert_eq!(t.dropped.len(), 1);

        let big: Vec<Vec<String>> = (0..100)
            .map(|i| {
                (0..10)
                    .map(|j| format!("http://t{i}-{j}/announce"))
                    .collect()
            })
            .collect();
        let t = TrackerTiers::new(None, &big, &mut rng);
        assert!(t.tiers().len() <= MAX_TIERS);
        assert_eq!(t.tiers().iter().map(Vec::len).sum::<usize>(), MAX_TRACKERS);
        let bad: Vec<Vec<String>> = vec![(0..100).map(|i| format!("bad{i}")).collect()];
        let t = TrackerTiers::new(None, &bad, &mut rng);
        assert_eq!(t.dropped.len(), MAX_REPORTED_ERRORS);
    }

    #[test]
    fn round_walks_tiers_in_order_and_promotion_moves_to_front() {
        let mut rng = fastrand::Rng::with_seed(9);
        let mut t = TrackerTiers::new(
            None,
            &list(&[&["http://a/1", "http://b/1", "http://c/1"], &["http://d/2"]]),
            &mut rng,
        );
        let tier0: Vec<String> = t.tiers()[0].iter().map(|u| u.url.clone()).collect();
        // A round tries every tracker, tier by tier: cyclone does not stop after the favourite fails.
        let mut pos = t.first();
        let mut order = Vec::new();
        while let Some(p) = pos {
            order.push(t.get(p).unwrap().url.clone());
            pos = t.after(p);
        }
        assert_eq!(
            order,
            [tier0.clone(), vec!["http://d/2".to_string()]].concat()
        );
        // The third of tier 0 answers: it moves to the front, the others keep their relative order.
        let new = t.promote(TrackerPos { tier: 0, index: 2 });
        assert_eq!(new, TrackerPos { tier: 0, index: 0 });
        let after: Vec<String> = t.tiers()[0].iter().map(|u| u.url.clone()).collect();
        assert_eq!(
            after,
            [tier0[2].clone(), tier0[0].clone(), tier0[1].clone()]
        );
        // Promotion in the second tier leaves the first alone; out-of-range positions are harmless.
        t.promote(TrackerPos { tier: 1, index: 0 });
        t.promote(TrackerPos { tier: 5, index: 9 });
        t.promote(TrackerPos { tier: 0, index: 9 });
        assert_eq!(
            t.tiers()[0]
                .iter()
                .map(|u| u.url.clone())
                .collect::<Vec<_>>(),
            after
        );
        assert_eq!(t.after(TrackerPos { tier: 7, index: 0 }), None);
    }
}
