//! Standalone tracker binary taking bttrack's options (`--port N --dfile F ...`), for tests and
//! benchmarks. The `cyclone` binary wires the same entry point as `cyclone tracker` / `bttrack`.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match cyclone_tracker::run_from_args("cyclone-tracker", &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cyclone-tracker: {e}");
            ExitCode::from(2)
        }
    }
}
