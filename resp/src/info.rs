//! The `INFO` reply text, built from figures the node passes in.
//!
//! Shoal reports four of Redis's sections, in Redis's order: `server`, `clients`,
//! `stats`, `keyspace`. `INFO`, `INFO default`, `INFO all` and `INFO everything` give all
//! four; named sections give those (case-insensitive); unknown names add nothing, as in
//! Redis. The format is Redis's: `# Section` headers, `field:value` lines ending in CRLF,
//! a blank line between sections. Nothing here reads a clock or the process: every
//! figure is an argument.

use bytes::Bytes;
use std::fmt::Write;

/// Which sections an `INFO` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InfoSections {
    /// `# Server`
    pub server: bool,
    /// `# Clients`
    pub clients: bool,
    /// `# Stats`
    pub stats: bool,
    /// `# Keyspace`
    pub keyspace: bool,
}

impl InfoSections {
    /// All four sections.
    pub const ALL: InfoSections = InfoSections {
        server: true,
        clients: true,
        stats: true,
        keyspace: true,
    };

    /// Sections named by `INFO`'s arguments.
    pub fn parse(args: &[Bytes]) -> InfoSections {
        if args.is_empty() {
            return Self::ALL;
        }
        let mut s = InfoSections::default();
        for arg in args {
            let is = |name: &str| arg.eq_ignore_ascii_case(name.as_bytes());
            if is("default") || is("all") || is("everything") {
                s = Self::ALL;
            } else if is("server") {
                s.server = true;
            } else if is("clients") {
                s.clients = true;
            } else if is("stats") {
                s.stats = true;
            } else if is("keyspace") {
                s.keyspace = true;
            }
        }
        s
    }
}

/// The figures INFO reports, gathered by the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoFigures {
    /// Shoal's version (`shoal_version`).
    pub shoal_version: String,
    /// This node's id in its cluster.
    pub node_id: u64,
    /// Shards (Raft groups) per node.
    pub shards: u64,
    /// Nodes in the cluster.
    pub cluster_nodes: u64,
    /// Process id.
    pub process_id: u32,
    /// Port of the RESP listener.
    pub tcp_port: u16,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// Open RESP connections.
    pub connected_clients: u64,
    /// Most connections accepted.
    pub max_clients: u64,
    /// RESP connections accepted since start.
    pub total_connections_received: u64,
    /// Connections refused because of `max_clients`.
    pub rejected_connections: u64,
    /// RESP commands processed since start.
    pub total_commands_processed: u64,
    /// Reads that found their key.
    pub keyspace_hits: u64,
    /// Reads that did not.
    pub keyspace_misses: u64,
    /// Keys removed because their TTL passed.
    pub expired_keys: u64,
    /// Bytes read from RESP clients since start.
    pub total_net_input_bytes: u64,
    /// Bytes written to RESP clients since start.
    pub total_net_output_bytes: u64,
    /// Keys on this node (see `DBSIZE`).
    pub keys: u64,
    /// Of those, keys with a TTL.
    pub keys_with_expiry: u64,
}

/// Renders the INFO text for `sections` from `figures`.
pub fn render(sections: InfoSections, f: &InfoFigures) -> String {
    let mut out = String::new();
    let begin = |out: &mut String, title: &str| {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        out.push_str("# ");
        out.push_str(title);
        out.push_str("\r\n");
    };
    // Writing to a String cannot fail; the results are ignored for that reason.
    if sections.server {
        begin(&mut out, "Server");
        let _ = write!(
            out,
            "redis_version:{}\r\nshoal_version:{}\r\nredis_mode:standalone\r\n\
             os:Linux\r\narch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{}\r\nuptime_in_days:{}\r\nshoal_node_id:{}\r\n\
             shoal_shards:{}\r\nshoal_cluster_nodes:{}\r\n",
            crate::REDIS_COMPAT_VERSION,
            f.shoal_version,
            usize::BITS,
            f.process_id,
            f.tcp_port,
            f.uptime_ms / 1000,
            f.uptime_ms / 86_400_000,
            f.node_id,
            f.shards,
            f.cluster_nodes,
        );
    }
    if sections.clients {
        begin(&mut out, "Clients");
        let _ = write!(
            out,
            "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
            f.connected_clients, f.max_clients,
        );
    }
    if sections.stats {
        begin(&mut out, "Stats");
        let _ = write!(
            out,
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             total_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\n\
             keyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
            f.total_connections_received,
            f.total_commands_processed,
            f.total_net_input_bytes,
            f.total_net_output_bytes,
            f.rejected_connections,
            f.expired_keys,
            f.keyspace_hits,
            f.keyspace_misses,
        );
    }
    if sections.keyspace {
        begin(&mut out, "Keyspace");
        // Redis lists only non-empty databases. Its `avg_ttl` estimate is left out:
        // Shoal does not compute one, and clients parse the fields by name.
        if f.keys > 0 {
            let _ = write!(
                out,
                "db0:keys={},expires={}\r\n",
                f.keys, f.keys_with_expiry
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> InfoFigures {
        InfoFigures {
            shoal_version: "0.1.0".into(),
            node_id: 1,
            shards: 2,
            cluster_nodes: 3,
            process_id: 42,
            tcp_port: 6379,
            uptime_ms: 90_061_000,
            connected_clients: 5,
            max_clients: 4096,
            total_connections_received: 9,
            rejected_connections: 0,
            total_commands_processed: 100,
            keyspace_hits: 7,
            keyspace_misses: 3,
            expired_keys: 1,
            total_net_input_bytes: 300,
            total_net_output_bytes: 200,
            keys: 10,
            keys_with_expiry: 4,
        }
    }

    #[test]
    fn section_selection() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(InfoSections::parse(&[]), InfoSections::ALL);
        assert_eq!(InfoSections::parse(&[b("EVERYTHING")]), InfoSections::ALL);
        let s = InfoSections::parse(&[b("Keyspace"), b("nosuch")]);
        assert!(s.keyspace && !s.server && !s.clients && !s.stats);
        assert_eq!(InfoSections::parse(&[b("memory")]), InfoSections::default());
    }

    #[test]
    fn renders_redis_format() {
        let text = render(
            InfoSections {
                clients: true,
                keyspace: true,
                ..InfoSections::default()
            },
            &figures(),
        );
        assert_eq!(
            text,
            "# Clients\r\nconnected_clients:5\r\nmaxclients:4096\r\nblocked_clients:0\r\n\
             \r\n# Keyspace\r\ndb0:keys=10,expires=4\r\n"
        );
        let all = render(InfoSections::ALL, &figures());
        assert!(all.starts_with("# Server\r\nredis_version:7.0.0\r\n"));
        assert!(all.contains("uptime_in_seconds:90061\r\nuptime_in_days:1\r\n"));
        assert!(all.contains("\r\n\r\n# Stats\r\n"));
        assert!(all.contains("\r\nexpired_keys:1\r\nevicted_keys:0\r\n"));
        assert!(all.contains("total_net_input_bytes:300\r\ntotal_net_output_bytes:200\r\n"));
        assert_eq!(render(InfoSections::default(), &figures()), "");
    }

    #[test]
    fn empty_keyspace_lists_no_database() {
        let f = InfoFigures {
            keys: 0,
            ..figures()
        };
        let s = InfoSections {
            keyspace: true,
            ..InfoSections::default()
        };
        assert_eq!(render(s, &f), "# Keyspace\r\n");
    }
}
