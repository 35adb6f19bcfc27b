//! Replies about the server itself: `HELLO`'s map, `COMMAND COUNT/INFO/DOCS`, and
//! `CONFIG GET` over a fixed parameter table, with Redis's glob matching.
//!
//! Invariants: everything is derived from `command_table::COMMANDS` and `CONFIG` below,
//! so what Shoal claims to support is exactly what it parses. Glob matching runs in
//! O(pattern × text) with no recursion, whatever the pattern (Redis's recursive matcher
//! was once exponential on hostile patterns).

use bytes::Bytes;

use crate::command_table::{COMMANDS, CommandSpec, lookup, lookup_subcommand};
use crate::connection::ConnectionState;
use crate::limits::MAX_ARG_LEN;
use crate::reply::Reply;

/// The `HELLO` reply for the connection (after any protocol switch).
pub fn hello_reply(state: &ConnectionState) -> Reply {
    let b = Reply::bulk_static;
    Reply::Map(vec![
        (b("server"), b("shoal")),
        (b("version"), b(crate::REDIS_COMPAT_VERSION)),
        (b("proto"), Reply::Integer(state.protocol.version())),
        (
            b("id"),
            Reply::Integer(i64::try_from(state.id).unwrap_or(i64::MAX)),
        ),
        (b("mode"), b("standalone")),
        (b("role"), b("master")),
        (b("modules"), Reply::Array(vec![])),
    ])
}

fn status_set(items: &[&'static str]) -> Reply {
    Reply::Set(items.iter().map(|s| Reply::Simple(s)).collect())
}

/// One command's `COMMAND INFO` entry: Redis 7.0's 10-element array (key specs and
/// tips left empty).
pub fn command_info(spec: &CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::bulk_static(spec.name),
        Reply::Integer(spec.arity),
        status_set(spec.flags),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.step),
        status_set(spec.acl_categories),
        // Tips, then key specs: Redis 7.0 sends both as sets. Shoal sends none (the
        // legacy first/last/step positions above describe every supported command).
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        // Redis 7.0 sends an empty *set* when there are no subcommands, else an array.
        if spec.subcommands.is_empty() {
            Reply::Set(vec![])
        } else {
            Reply::Array(spec.subcommands.iter().map(command_info).collect())
        },
    ])
}

/// One command's `COMMAND DOCS` entry.
fn command_docs(spec: &CommandSpec) -> Reply {
    let b = Reply::bulk_static;
    let mut fields = vec![
        (b("summary"), b(spec.summary)),
        (b("since"), b(spec.since)),
        (b("group"), b(spec.group)),
    ];
    if !spec.subcommands.is_empty() {
        fields.push((
            b("subcommands"),
            Reply::Map(
                spec.subcommands
                    .iter()
                    .map(|s| (b(s.name), command_docs(s)))
                    .collect(),
            ),
        ));
    }
    Reply::Map(fields)
}

/// A command by full name: `get`, `client|setname` (case-insensitive).
fn lookup_full(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&c| c == b'|') {
        None => lookup(name),
        Some(bar) => lookup(&name[..bar]).and_then(|c| lookup_subcommand(c, &name[bar + 1..])),
    }
}

/// `COMMAND`: every command's info.
pub fn command_list() -> Reply {
    Reply::Array(COMMANDS.iter().map(command_info).collect())
}

/// `COMMAND COUNT`.
pub fn command_count() -> Reply {
    Reply::Integer(COMMANDS.len() as i64)
}

/// `COMMAND INFO [name ...]`: all with no names, else one entry or null per name.
pub fn command_info_reply(names: &[Bytes]) -> Reply {
    if names.is_empty() {
        return command_list();
    }
    Reply::Array(
        names
            .iter()
            .map(|n| lookup_full(n).map_or(Reply::Null, command_info))
            .collect(),
    )
}

/// `COMMAND DOCS [name ...]`: a map from full name to docs; unknown names are left out.
pub fn command_docs_reply(names: &[Bytes]) -> Reply {
    let specs: Vec<&CommandSpec> = if names.is_empty() {
        COMMANDS.iter().collect()
    } else {
        let mut found: Vec<&CommandSpec> = Vec::new();
        for spec in names.iter().filter_map(|n| lookup_full(n)) {
            // Map keys are unique: a name asked twice is listed once.
            if !found.iter().any(|s| std::ptr::eq(*s, spec)) {
                found.push(spec);
            }
        }
        found
    };
    Reply::Map(
        specs
            .into_iter()
            .map(|s| (Reply::bulk_static(s.name), command_docs(s)))
            .collect(),
    )
}

/// The parameters `CONFIG GET` knows, with Shoal's effective values.
pub const CONFIG: &[(&str, ConfigValue)] = &[
    // Shoal makes every write durable in its WAL before acknowledging it (like Redis's
    // appendonly with appendfsync always); it takes no RDB-style snapshots on a timer.
    ("appendfsync", ConfigValue::Static("always")),
    ("appendonly", ConfigValue::Static("yes")),
    ("databases", ConfigValue::Static("1")),
    ("maxmemory", ConfigValue::Static("0")),
    ("proto-max-bulk-len", ConfigValue::MaxArgLen),
    ("save", ConfigValue::Static("")),
];

/// A `CONFIG GET` value.
#[derive(Debug, Clone, Copy)]
pub enum ConfigValue {
    /// Fixed text.
    Static(&'static str),
    /// `limits::MAX_ARG_LEN` in decimal.
    MaxArgLen,
}

/// `CONFIG GET pattern [pattern ...]`: a map of every known parameter matching any
/// pattern (Redis glob, case-insensitive), each listed once.
pub fn config_get_reply(patterns: &[Bytes]) -> Reply {
    let pairs = CONFIG
        .iter()
        .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
        .map(|(name, value)| {
            let value = match value {
                ConfigValue::Static(text) => Reply::bulk_static(text),
                ConfigValue::MaxArgLen => Reply::Bulk(Bytes::from(MAX_ARG_LEN.to_string())),
            };
            (Reply::bulk_static(name), value)
        })
        .collect();
    Reply::Map(pairs)
}

/// Whether `c` matches the bracket class starting at `pattern[open]` (`[`); returns the
/// answer and the index just past the class.
fn class_match(pattern: &[u8], open: usize, c: u8) -> (bool, usize) {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1].eq_ignore_ascii_case(&c);
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (mut lo, mut hi) = (
                pattern[i].to_ascii_lowercase(),
                pattern[i + 2].to_ascii_lowercase(),
            );
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            matched |= (lo..=hi).contains(&c.to_ascii_lowercase());
            i += 3;
        } else {
            matched |= pattern[i].eq_ignore_ascii_case(&c);
            i += 1;
        }
    }
    // An unterminated class runs to the end of the pattern, as in Redis.
    (matched != negate, (i + 1).min(pattern.len()))
}

/// Redis's `stringmatchlen(..., nocase=1)`: `*`, `?`, `[...]` classes with ranges and
/// `^`, and `\` escapes, ASCII case-insensitive.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => match class_match(pattern, p, text[t]) {
                (true, next) => Some(next),
                (false, _) => None,
            },
            Some(b'\\') if p + 1 < pattern.len() => pattern[p + 1]
                .eq_ignore_ascii_case(&text[t])
                .then_some(p + 2),
            Some(c) => c.eq_ignore_ascii_case(&text[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((after_star, from))) => {
                p = after_star;
                t = from + 1;
                star = Some((after_star, from + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"SAVE", b"save"));
        assert!(glob_match(b"app*", b"appendonly"));
        assert!(glob_match(b"*only", b"appendonly"));
        assert!(glob_match(b"a?pend*", b"appendfsync"));
        assert!(glob_match(b"[abc]ppend*", b"appendonly"));
        assert!(glob_match(b"[a-c]ppend*", b"appendonly"));
        assert!(!glob_match(b"[^a]ppend*", b"appendonly"));
        assert!(glob_match(b"s\\ave", b"save"));
        assert!(!glob_match(b"sav", b"save"));
        assert!(!glob_match(b"save?", b"save"));
        assert!(glob_match(
            b"*a*a*a*a*a*a*a*a*a*a*b",
            &[b'a'; 40].iter().copied().chain([b'b']).collect::<Vec<_>>()
        ));
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*a*b", &[b'a'; 40]));
    }
}
