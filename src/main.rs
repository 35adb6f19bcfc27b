//! The `shoal` binary: `shoal put|get|del|ping` talk to a running node (see `shoal::cli`);
//! with no command it runs a node with the configuration given by defaults, `--config`
//! and flags, prints where it listens and a status line per shard once ready, and stops
//! gracefully on Ctrl-C or SIGTERM (a second signal exits at once).
//!
//! Exit codes: 0 after a graceful stop, 1 when the node fails, 2 for a bad configuration.

use std::process::ExitCode;

use clap::Parser;
use shoal::config::{NodeArgs, NodeConfig};
use shoal::node::Node;

/// Shoal: a Raft-replicated key-value node.
#[derive(Debug, Parser)]
#[command(version, about)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// Without a command, `shoal` runs a node.
    #[command(subcommand)]
    command: Option<shoal::cli::Command>,
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return shoal::cli::run(command);
    }
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
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(config: NodeConfig) -> Result<(), shoal::node::NodeError> {
    let shards = config.shards;
    let data_dir = config.data_dir.clone();
    let client_addr = config.client_addr;
    let mut node = Node::start(config)?;
    println!(
        "shoal {}: node {}, {shards} shards, data in {}{}",
        env!("CARGO_PKG_VERSION"),
        node.config().node_id,
        data_dir.display(),
        if node.is_fresh() {
            " (new)"
        } else {
            " (recovering)"
        },
    );
    let stopper = node.shutdown_handle();
    let signal = ctrlc::set_handler(move || {
        if stopper.shutdown() {
            eprintln!("shoal: second signal, exiting without a graceful stop");
            std::process::exit(130);
        }
        eprintln!("shoal: stopping (finishing in-flight requests; signal again to exit now)");
    });
    if let Err(e) = signal {
        eprintln!("shoal: cannot install the Ctrl-C handler ({e}); stop the node with SIGKILL");
    }
    match futures::executor::block_on(node.ready()) {
        Ok(shards) => {
            for r in shards {
                println!(
                    "shard {}: serving on {}, {:?} of its group (term {}), applied index {}, {} keys",
                    r.shard,
                    r.client_addr,
                    r.role,
                    r.term,
                    r.applied_index
                        .map_or("none".to_string(), |i| i.to_string()),
                    r.keys,
                );
            }
            println!(
                "shoal: ready; clients connect to {client_addr} (shard s at port + s); Ctrl-C stops"
            );
        }
        Err(e) => {
            node.shutdown();
            let _ = futures::executor::block_on(node.wait());
            return Err(e);
        }
    }
    futures::executor::block_on(node.wait())?;
    println!("shoal: stopped");
    Ok(())
}
