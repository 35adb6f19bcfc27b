//! `loadgen`: Shoal's benchmark binary (built by the `loadgen` issue).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("loadgen {}: not built yet (needs the clients)", env!("CARGO_PKG_VERSION"));
    ExitCode::from(2)
}
