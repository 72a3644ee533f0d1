//! One module per subcommand. Each exposes a clap `Args` struct and a `run` function; the BitTornado aliases in
//! [`crate::aliases`] reuse the same `run` functions with BitTornado's option syntax.

pub mod completedir;
pub mod copyannounce;
pub mod download;
pub mod edit;
pub mod launchmany;
pub mod magnet;
pub mod make;
pub mod reannounce;
pub mod rename;
pub mod sethttpseeds;
pub mod show;
pub mod tracker;
pub mod verify;
