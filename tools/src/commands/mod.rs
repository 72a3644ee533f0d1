//! One module per subcommand. Each exposes a clap `Args` struct and a `run` function; the BitTornado aliases in
//! [`crate::aliases`] reuse the same `run` functions with BitTornado's option syntax.

pub mod magnet;
pub mod show;
