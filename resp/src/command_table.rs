//! The table of supported commands: names, arities, key positions, flags and docs.
//!
//! One table drives arity checks, `COMMAND COUNT/INFO/DOCS` and the unknown-command
//! decision, so they cannot disagree. Entries mirror Redis 7's metadata for the same
//! commands (arity, flags, ACL categories, key positions, summary, since, group),
//! checked against redis-server 7.0.15 (CLIENT SETINFO is from 7.2).
//!
//! Invariants: names are lowercase; subcommand full names are `container|sub`; a
//! container (an entry with subcommands) has negative arity.

/// Metadata of one command or subcommand.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lowercase full name (`get`, `client|setname`).
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i64,
    /// Redis command flags.
    pub flags: &'static [&'static str],
    /// Position of the first key (0: no keys).
    pub first_key: i64,
    /// Position of the last key (-1: the last argument).
    pub last_key: i64,
    /// Step between keys.
    pub step: i64,
    /// ACL categories.
    pub acl_categories: &'static [&'static str],
    /// One-line summary (COMMAND DOCS).
    pub summary: &'static str,
    /// Redis version that introduced the command.
    pub since: &'static str,
    /// Redis command group.
    pub group: &'static str,
    /// Subcommands of a container command.
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// Whether `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// The name after the `|`, for subcommands.
    pub fn short_name(&self) -> &'static str {
        self.name.rsplit('|').next().unwrap_or(self.name)
    }
}

const FAST_CONN: &[&str] = &["@fast", "@connection"];
const READ_STRING: &[&str] = &["@read", "@string", "@fast"];
const WRITE_STRING: &[&str] = &["@write", "@string", "@slow"];
const KEYSPACE_READ: &[&str] = &["@keyspace", "@read", "@fast"];
const KEYSPACE_WRITE_FAST: &[&str] = &["@keyspace", "@write", "@fast"];
const SLOW_CONN: &[&str] = &["@slow", "@connection"];

macro_rules! spec {
    ($name:expr, $arity:expr, $flags:expr, $keys:expr, $acl:expr, $summary:expr, $since:expr,
     $group:expr) => {
        spec!(
            $name,
            $arity,
            $flags,
            $keys,
            $acl,
            $summary,
            $since,
            $group,
            &[]
        )
    };
    ($name:expr, $arity:expr, $flags:expr, $keys:expr, $acl:expr, $summary:expr, $since:expr,
     $group:expr, $subs:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $keys.0,
            last_key: $keys.1,
            step: $keys.2,
            acl_categories: $acl,
            summary: $summary,
            since: $since,
            group: $group,
            subcommands: $subs,
        }
    };
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);

const CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    spec!(
        "client|getname",
        2,
        &["noscript", "loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Get the current connection name",
        "2.6.9",
        "connection"
    ),
    spec!(
        "client|id",
        2,
        &["noscript", "loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Returns the client ID for the current connection",
        "5.0.0",
        "connection"
    ),
    spec!(
        "client|setinfo",
        4,
        &["noscript", "loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Set client or connection specific info",
        "7.2.0",
        "connection"
    ),
    spec!(
        "client|setname",
        3,
        &["noscript", "loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Set the current connection name",
        "2.6.9",
        "connection"
    ),
];

const COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    spec!(
        "command|count",
        2,
        &["loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Get total number of Redis commands",
        "2.8.13",
        "server"
    ),
    spec!(
        "command|docs",
        -2,
        &["loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Get array of specific Redis command documentation",
        "7.0.0",
        "server"
    ),
    spec!(
        "command|info",
        -2,
        &["loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Get array of specific Redis command details, or all when no argument is given.",
        "2.8.13",
        "server"
    ),
];

const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[spec!(
    "config|get",
    -3,
    &["admin", "noscript", "loading", "stale"],
    NO_KEYS,
    &["@admin", "@slow", "@dangerous"],
    "Get the values of configuration parameters",
    "2.0.0",
    "server"
)];

/// Every supported top-level command, sorted by name.
pub const COMMANDS: &[CommandSpec] = &[
    spec!(
        "auth",
        -2,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy"
        ],
        NO_KEYS,
        FAST_CONN,
        "Authenticate to the server",
        "1.0.0",
        "connection"
    ),
    spec!(
        "client",
        -2,
        &[],
        NO_KEYS,
        &["@slow"],
        "A container for client connection commands",
        "2.4.0",
        "connection",
        CLIENT_SUBCOMMANDS
    ),
    spec!(
        "command",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        SLOW_CONN,
        "Get array of Redis command details",
        "2.8.13",
        "server",
        COMMAND_SUBCOMMANDS
    ),
    spec!(
        "config",
        -2,
        &[],
        NO_KEYS,
        &["@slow"],
        "A container for server configuration commands",
        "2.0.0",
        "server",
        CONFIG_SUBCOMMANDS
    ),
    spec!(
        "dbsize",
        1,
        &["readonly", "fast"],
        NO_KEYS,
        KEYSPACE_READ,
        "Return the number of keys in the selected database",
        "1.0.0",
        "server"
    ),
    spec!(
        "del",
        -2,
        &["write"],
        ALL_KEYS,
        &["@keyspace", "@write", "@slow"],
        "Delete a key",
        "1.0.0",
        "generic"
    ),
    spec!(
        "echo",
        2,
        &["loading", "stale", "fast"],
        NO_KEYS,
        FAST_CONN,
        "Echo the given string",
        "1.0.0",
        "connection"
    ),
    spec!(
        "exists",
        -2,
        &["readonly", "fast"],
        ALL_KEYS,
        KEYSPACE_READ,
        "Determine if a key exists",
        "1.0.0",
        "generic"
    ),
    spec!(
        "expire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        KEYSPACE_WRITE_FAST,
        "Set a key's time to live in seconds",
        "1.0.0",
        "generic"
    ),
    spec!(
        "get",
        2,
        &["readonly", "fast"],
        ONE_KEY,
        READ_STRING,
        "Get the value of a key",
        "1.0.0",
        "string"
    ),
    spec!(
        "hello",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy"
        ],
        NO_KEYS,
        FAST_CONN,
        "Handshake with Redis",
        "6.0.0",
        "connection"
    ),
    spec!(
        "info",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        &["@slow", "@dangerous"],
        "Get information and statistics about the server",
        "1.0.0",
        "server"
    ),
    spec!(
        "mget",
        -2,
        &["readonly", "fast"],
        ALL_KEYS,
        READ_STRING,
        "Get the values of all the given keys",
        "1.0.0",
        "string"
    ),
    spec!(
        "persist",
        2,
        &["write", "fast"],
        ONE_KEY,
        KEYSPACE_WRITE_FAST,
        "Remove the expiration from a key",
        "2.2.0",
        "generic"
    ),
    spec!(
        "pexpire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        KEYSPACE_WRITE_FAST,
        "Set a key's time to live in milliseconds",
        "2.6.0",
        "generic"
    ),
    spec!(
        "ping",
        -1,
        &["fast"],
        NO_KEYS,
        FAST_CONN,
        "Ping the server",
        "1.0.0",
        "connection"
    ),
    spec!(
        "psetex",
        4,
        &["write", "denyoom"],
        ONE_KEY,
        WRITE_STRING,
        "Set the value and expiration in milliseconds of a key",
        "2.6.0",
        "string"
    ),
    spec!(
        "pttl",
        2,
        &["readonly", "fast"],
        ONE_KEY,
        KEYSPACE_READ,
        "Get the time to live for a key in milliseconds",
        "2.6.0",
        "generic"
    ),
    spec!(
        "quit",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy"
        ],
        NO_KEYS,
        FAST_CONN,
        "Close the connection",
        "1.0.0",
        "connection"
    ),
    spec!(
        "select",
        2,
        &["loading", "stale", "fast"],
        NO_KEYS,
        &["@fast", "@connection"],
        "Change the selected database for the current connection",
        "1.0.0",
        "connection"
    ),
    spec!(
        "set",
        -3,
        &["write", "denyoom"],
        ONE_KEY,
        WRITE_STRING,
        "Set the string value of a key",
        "1.0.0",
        "string"
    ),
    spec!(
        "setex",
        4,
        &["write", "denyoom"],
        ONE_KEY,
        WRITE_STRING,
        "Set the value and expiration of a key",
        "2.0.0",
        "string"
    ),
    spec!(
        "ttl",
        2,
        &["readonly", "fast"],
        ONE_KEY,
        KEYSPACE_READ,
        "Get the time to live for a key in seconds",
        "1.0.0",
        "generic"
    ),
];

/// The top-level command named `name` (ASCII case-insensitive).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// The subcommand `sub` of container `spec` (ASCII case-insensitive).
pub fn lookup_subcommand(spec: &'static CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    spec.subcommands
        .iter()
        .find(|s| s.short_name().as_bytes().eq_ignore_ascii_case(sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_lowercase_and_containers_are_variadic() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            if !spec.subcommands.is_empty() {
                assert!(spec.arity < 0);
                for sub in spec.subcommands {
                    assert_eq!(sub.name, format!("{}|{}", spec.name, sub.short_name()));
                }
            }
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").map(|s| s.name), Some("get"));
        assert!(lookup(b"getx").is_none());
        let client = lookup(b"CLIENT").unwrap();
        assert_eq!(
            lookup_subcommand(client, b"SetName").map(|s| s.name),
            Some("client|setname")
        );
    }

    #[test]
    fn arity_rules() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
    }
}
