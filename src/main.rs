//! The `shoal` binary: runs a node (no subcommand), and the command-line client.

use std::process::ExitCode;

use clap::Parser;
use shoal::config::{NodeArgs, NodeConfig};

/// Shoal: a Raft-replicated key-value node.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match NodeConfig::load(&cli.node) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("shoal: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = shoal::telemetry::init(&config.log) {
        eprintln!("shoal: {e}");
        return ExitCode::from(2);
    }
    eprintln!(
        "shoal {}: configuration is valid ({} shards, data in {}); the node itself is not built yet",
        env!("CARGO_PKG_VERSION"),
        config.shards,
        config.data_dir.display()
    );
    ExitCode::from(2)
}
