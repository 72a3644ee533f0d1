//! The UDP tracker protocol (BEP 15, with BEP 41 URL data), served on the HTTP tracker's port and
//! swarms: `codec` (pure packets), `connection_id` (stateless keyed ids), `bans` (clients repeating bad ids), `server` (one socket per
//! shard, announces routed to the owning shard through the mesh).

pub mod bans;
pub mod codec;
pub mod connection_id;
pub mod server;
