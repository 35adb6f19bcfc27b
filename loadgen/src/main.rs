//! `loadgen`: parses the flags, builds the tokio runtime, hands over to [`loadgen::app`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use loadgen::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.resolve() {
        Ok(cfg) => cfg,
        Err(msg) => Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, msg)
            .exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the tokio runtime: {e}");
            return ExitCode::from(loadgen::app::EXIT_RUN);
        }
    };
    runtime.block_on(loadgen::app::main(&cli, cfg))
}
