//! The command-line client of the `shoal` binary: `shoal put|get|del|ping` against a
//! running node, over the remote client, and `shoal cluster ...` operator commands
//! (`cluster` submodule).
//!
//! Exit codes scripts can rely on: 0 success; 1 a key read by `get` does not exist (the
//! other keys are still printed); 2 bad usage (clap) or bad input; 3 the node could not be
//! reached or answered with an error.
//!
//! Output: `get` of one key writes the value's bytes exactly, followed by a newline when
//! stdout is a terminal (`--raw` never adds one); several keys print `key<TAB>value` lines
//! with values escaped (`\xNN` for non-printable bytes). Errors go to stderr.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use shoal_client::{KvClient, KvClientError, ReadConsistency, RemoteKvClient, RemoteOptions};

mod cluster;

/// Exit code: a key was not found.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit code: bad usage or input.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the node could not be reached or refused the request.
pub const EXIT_FAILED: u8 = 3;

/// Options shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Address of any node's client port.
    #[arg(long, default_value = "127.0.0.1:7400", value_name = "HOST:PORT")]
    pub addr: String,
    /// Give up after this many milliseconds (retries included).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub timeout_ms: u64,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Consistency {
    /// Sees every write acknowledged before the read (the default).
    Linearizable,
    /// Served under the leader's lease, without a quorum round.
    Lease,
    /// Whatever the answering replica applied; may be stale.
    Stale,
}

/// The client commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Write a value (durable on a quorum when this returns).
    Put {
        /// The key.
        key: String,
        /// The value; `-` reads it from stdin (binary-safe).
        value: String,
        /// Expire the key after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        #[command(flatten)]
        conn: ClientArgs,
    },
    /// Read one or more keys.
    Get {
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Read consistency.
        #[arg(long, value_enum, default_value = "linearizable")]
        consistency: Consistency,
        /// Write a single value's bytes exactly, without a trailing newline.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        conn: ClientArgs,
    },
    /// Delete keys (deleting a missing key succeeds).
    Del {
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        conn: ClientArgs,
    },
    /// Measure one round trip to the node.
    Ping {
        #[command(flatten)]
        conn: ClientArgs,
    },
    /// Operator commands on a cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// `shoal cluster ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// Every node, and every group's leader, term, commit and applied index, lag and
    /// state digest, as each node sees it. Exits 3 when a node does not answer, a group
    /// has no leader, or two replicas at the same applied index differ.
    Status {
        /// Skip the state digests (each one visits every key of the group on the node).
        #[arg(long)]
        no_digest: bool,
        #[command(flatten)]
        conn: ClientArgs,
    },
    /// Add a node as a learner of every group (it must run with --join); answers once it
    /// caught up in every group. Give --timeout-ms room for a snapshot transfer.
    AddLearner {
        /// The new node's id.
        #[arg(long)]
        node_id: u64,
        /// Its peer address (shard 0; shard s at port + s).
        #[arg(long, value_name = "IP:PORT")]
        peer_addr: String,
        /// Its client address (shard 0; shard s at port + s).
        #[arg(long, value_name = "IP:PORT")]
        client_addr: String,
        #[command(flatten)]
        conn: ClientArgs,
    },
    /// Set the voters of every group: promotes learners, removes voters left out.
    #[command(alias = "promote")]
    ChangeMembership {
        /// The complete new voter set, e.g. 1,2,3.
        #[arg(long, value_delimiter = ',', required = true)]
        voters: Vec<u64>,
        /// Keep removed voters as learners instead of removing them.
        #[arg(long)]
        retain: bool,
        #[command(flatten)]
        conn: ClientArgs,
    },
}

impl Command {
    fn conn(&self) -> &ClientArgs {
        match self {
            Command::Put { conn, .. }
            | Command::Get { conn, .. }
            | Command::Del { conn, .. }
            | Command::Ping { conn }
            | Command::Cluster {
                command:
                    ClusterCommand::Status { conn, .. }
                    | ClusterCommand::AddLearner { conn, .. }
                    | ClusterCommand::ChangeMembership { conn, .. },
            } => conn,
        }
    }
}

/// Runs `command` and returns the process exit code.
pub fn run(command: Command) -> ExitCode {
    let args = command.conn().clone();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal: cannot start the client runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    rt.block_on(async {
        match execute(command, &args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("shoal: {e}");
                ExitCode::from(code_of(&e))
            }
        }
    })
}

fn code_of(e: &KvClientError) -> u8 {
    match e {
        KvClientError::InvalidArgument { .. } | KvClientError::TooLarge { .. } => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

async fn execute(command: Command, args: &ClientArgs) -> Result<ExitCode, KvClientError> {
    let opts = RemoteOptions {
        request_timeout: Duration::from_millis(args.timeout_ms),
        connect_timeout: Duration::from_millis(args.timeout_ms),
        connections_per_shard: 1,
        ..RemoteOptions::default()
    };
    // Read stdin before connecting, so a slow pipe does not eat the request timeout.
    let stdin_value = match &command {
        Command::Put { value, .. } if value == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| KvClientError::InvalidArgument {
                    reason: format!("cannot read the value from stdin: {e}"),
                })?;
            Some(buf)
        }
        _ => None,
    };
    let client = RemoteKvClient::connect([args.addr.as_str()], opts).await?;
    match command {
        Command::Put {
            key, value, ttl, ..
        } => {
            let value = stdin_value.unwrap_or_else(|| value.into_bytes());
            match ttl {
                Some(ttl) => client.put_with_ttl(key, value, ttl).await?,
                None => client.put(key, value).await?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get {
            keys,
            consistency,
            raw,
            ..
        } => {
            let level = match consistency {
                Consistency::Linearizable => ReadConsistency::Linearizable,
                Consistency::Lease => ReadConsistency::Lease,
                Consistency::Stale => ReadConsistency::Stale,
            };
            let keys: Vec<Bytes> = keys.into_iter().map(Bytes::from).collect();
            let values = client.get_multi_with(&keys, level).await?;
            print_values(&keys, &values, raw);
            if values.iter().any(Option::is_none) {
                Ok(ExitCode::from(EXIT_NOT_FOUND))
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Del { keys, .. } => {
            for key in keys {
                client.delete(key).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ping { .. } => {
            let rtt = client.ping().await?;
            println!("pong from {} in {} us", args.addr, rtt.as_micros());
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster {
            command: ClusterCommand::Status { no_digest, .. },
        } => cluster::status(&client, !no_digest).await,
        Command::Cluster {
            command:
                ClusterCommand::AddLearner {
                    node_id,
                    peer_addr,
                    client_addr,
                    ..
                },
        } => cluster::add_learner(&client, node_id, &peer_addr, &client_addr).await,
        Command::Cluster {
            command: ClusterCommand::ChangeMembership { voters, retain, .. },
        } => cluster::change_membership(&client, &voters, retain).await,
    }
}

fn print_values(keys: &[Bytes], values: &[Option<Bytes>], raw: bool) {
    let mut out = std::io::stdout().lock();
    if let ([key], [value]) = (keys, values) {
        match value {
            Some(v) => {
                let _ = out.write_all(v);
                if !raw && std::io::stdout().is_terminal() {
                    let _ = out.write_all(b"\n");
                }
            }
            None => eprintln!("(not found) {}", escape(key)),
        }
        return;
    }
    for (k, v) in keys.iter().zip(values) {
        let _ = match v {
            Some(v) => writeln!(out, "{}\t{}", escape(k), escape(v)),
            None => writeln!(out, "{}\t(not found)", escape(k)),
        };
    }
}

/// Printable ASCII as is, everything else as `\xNN` (and `\\` for a backslash).
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_keeps_printables_and_hexes_the_rest() {
        assert_eq!(escape(b"a b~"), "a b~");
        assert_eq!(escape(b"\x00\n\\\xff"), "\\x00\\x0a\\\\\\xff");
    }
}
