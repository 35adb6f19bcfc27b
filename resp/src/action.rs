//! From a parsed command to what the connection handler must do next.
//!
//! `plan` answers connection-level commands itself (PING, ECHO, HELLO, SELECT, CLIENT,
//! COMMAND, CONFIG GET), updating `ConnectionState`, and turns data commands into a
//! `Read` or a `Write` for the store, converting relative TTLs to absolute expiry times
//! with `now_ms`. Invariant: `plan` never reads a clock and never touches the store.

use bytes::Bytes;
use shoal_proto::limits::MAX_BATCH_KEYS;

use crate::command::{ClientAttr, Command};
use crate::connection::{ConnectionState, Protocol};
use crate::errors::ErrorReply;
use crate::info::InfoSections;
use crate::introspect;
use crate::reply::Reply;
use crate::set_options::{MAX_TTL_MS, SetCondition, SetExpiry, SetOptions};
use crate::write_op::{Read, ReadOp, TtlUpdate, Write, WriteOp};

/// What the connection handler does for one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this reply; nothing else to do.
    Reply(Reply),
    /// Serve this read, then send `read.reply(outcome)`.
    Read(Read),
    /// Propose this write through Raft, wait until applied (durable on a quorum), then
    /// send `shape.reply(outcome)` with `shape = write.op.reply_shape()`.
    Write(Write),
    /// Count the keys on this node (all local shards) and reply with the integer.
    DbSize,
    /// Gather `InfoFigures`, then reply `Reply::Verbatim(info::render(sections, ..))`.
    Info(InfoSections),
    /// Send this reply (`+OK`), flush, then close the connection.
    Close(Reply),
}

/// Plans `command` for the connection `state` at `now_ms` (Unix milliseconds: the
/// node's clock when the command is planned; for writes, plan on the leader so this is
/// the leader's clock at proposal time).
pub fn plan(command: Command, state: &mut ConnectionState, now_ms: u64) -> Action {
    match plan_inner(command, state, now_ms) {
        Ok(action) => action,
        Err(e) => Action::Reply(Reply::Error(e)),
    }
}

fn plan_inner(
    command: Command,
    state: &mut ConnectionState,
    now_ms: u64,
) -> Result<Action, ErrorReply> {
    let read = |op| Ok(Action::Read(Read { now_ms, op }));
    let write = |op| Ok(Action::Write(Write { now_ms, op }));
    let reply = |r| Ok(Action::Reply(r));
    match command {
        Command::Ping(None) => reply(Reply::Simple("PONG")),
        Command::Ping(Some(msg)) | Command::Echo(msg) => reply(Reply::Bulk(msg)),
        Command::Auth(None, _password) => Err(ErrorReply::new(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        )),
        Command::Auth(Some(user), _password) => {
            check_user(&user)?;
            reply(Reply::Ok)
        }
        Command::Hello(hello) => {
            if let Some((user, _password)) = &hello.auth {
                check_user(user)?;
            }
            if let Some(name) = hello.setname {
                state.set_name(name);
            }
            match hello.protover {
                Some(2) => state.protocol = Protocol::Resp2,
                Some(3) => state.protocol = Protocol::Resp3,
                _ => {}
            }
            reply(introspect::hello_reply(state))
        }
        Command::Get(key) => read(ReadOp::Get { key }),
        Command::MGet(keys) => {
            debug_assert!(keys.len() <= MAX_BATCH_KEYS);
            read(ReadOp::MGet { keys })
        }
        Command::Exists(keys) => read(ReadOp::Exists { keys }),
        Command::Ttl(key, unit) => read(ReadOp::Ttl { key, unit }),
        Command::Set {
            key,
            value,
            options,
        } => write(set_op(key, value, options, now_ms)?),
        Command::Del(keys) => write(WriteOp::Delete { keys }),
        Command::Expire {
            key,
            amount_ms,
            condition,
            unit: _,
        } => {
            // amount_ms is within [i64::MIN, MAX_TTL_MS] (parser); now fits in i64 for
            // any real clock, so the sum cannot overflow. Past times clamp to 0.
            let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
            let when = amount_ms.saturating_add(now);
            let expire_at_ms = u64::try_from(when).unwrap_or(0);
            write(WriteOp::SetExpiry {
                key,
                expire_at_ms,
                condition,
            })
        }
        Command::Persist(key) => write(WriteOp::Persist { key }),
        Command::DbSize => Ok(Action::DbSize),
        Command::Info(sections) => Ok(Action::Info(sections)),
        Command::Select(0) => {
            state.db = 0;
            reply(Reply::Ok)
        }
        Command::Select(_) => Err(ErrorReply::db_index_out_of_range()),
        Command::Quit => {
            state.closing = true;
            Ok(Action::Close(Reply::Ok))
        }
        Command::CommandList => reply(introspect::command_list()),
        Command::CommandCount => reply(introspect::command_count()),
        Command::CommandInfo(names) => reply(introspect::command_info_reply(&names)),
        Command::CommandDocs(names) => reply(introspect::command_docs_reply(&names)),
        Command::ClientSetName(name) => {
            state.set_name(name);
            reply(Reply::Ok)
        }
        Command::ClientGetName => reply(Reply::bulk_or_null(state.name.clone())),
        Command::ClientSetInfo(attr, value) => {
            let value = (!value.is_empty()).then_some(value);
            match attr {
                ClientAttr::LibName => state.lib_name = value,
                ClientAttr::LibVer => state.lib_ver = value,
            }
            reply(Reply::Ok)
        }
        Command::ClientId => reply(Reply::Integer(i64::try_from(state.id).unwrap_or(i64::MAX))),
        Command::ConfigGet(patterns) => reply(introspect::config_get_reply(&patterns)),
    }
}

/// Shoal has no users: like Redis's default configuration, the `default` user accepts
/// any password, and no other user exists.
fn check_user(user: &[u8]) -> Result<(), ErrorReply> {
    if user != b"default" {
        return Err(ErrorReply::wrongpass());
    }
    Ok(())
}

/// The state-machine op for a SET/SETEX/PSETEX.
fn set_op(key: Bytes, value: Bytes, o: SetOptions, now_ms: u64) -> Result<WriteOp, ErrorReply> {
    let expire_at = match o.expiry {
        SetExpiry::None | SetExpiry::Keep => None,
        SetExpiry::Relative(ms) => {
            debug_assert!(ms > 0 && ms <= MAX_TTL_MS);
            Some(now_ms.saturating_add(ms as u64))
        }
        SetExpiry::Absolute(at) => {
            debug_assert!(at > 0);
            let at = at as u64;
            // Shoal refuses expiries further than MAX_TTL_SECS away, so expiry times
            // stay far from overflow everywhere downstream.
            if at.saturating_sub(now_ms) > MAX_TTL_MS as u64 {
                return Err(ErrorReply::invalid_expire_time(o.name.as_str()));
            }
            Some(at)
        }
    };
    if o.condition == SetCondition::Always && !o.get && o.expiry != SetExpiry::Keep {
        return Ok(match expire_at {
            None => WriteOp::Put { key, value },
            Some(expire_at_ms) => WriteOp::PutWithExpiry {
                key,
                value,
                expire_at_ms,
            },
        });
    }
    let ttl = match (o.expiry, expire_at) {
        (SetExpiry::Keep, _) => TtlUpdate::Keep,
        (_, Some(at)) => TtlUpdate::ExpireAt(at),
        (_, None) => TtlUpdate::Clear,
    };
    Ok(WriteOp::ConditionalSet {
        key,
        value,
        condition: o.condition,
        ttl,
        return_old: o.get,
    })
}
