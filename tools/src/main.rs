//! The `cyclone` binary. Everything is in the library half (`src/lib.rs`), so it can be tested and reused.

fn main() -> std::process::ExitCode {
    cyclone_tools::main_entry()
}
