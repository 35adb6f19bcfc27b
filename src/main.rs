//! The `shoal` binary: runs a node, and (later) the command-line client.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") | Some("version") => {
            println!("shoal {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("shoal: `{other}` is not built yet");
            ExitCode::from(2)
        }
        None => {
            eprintln!("shoal {}: the node is not built yet", env!("CARGO_PKG_VERSION"));
            ExitCode::from(2)
        }
    }
}
