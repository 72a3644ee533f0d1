//! cyclone's BitTorrent engine.
//!
//! So far: the socket-free halves of the tracker client ([`announce`]) and the fast-resume record ([`resume`]).

pub mod announce;
pub mod resume;
