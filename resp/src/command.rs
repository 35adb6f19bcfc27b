//! Typed commands parsed from a request's arguments, with Redis 7's error replies.
//!
//! Parsing checks, in Redis's order: known command (else `unknown command`), known
//! subcommand of a container (else `unknown subcommand`), arity, then each command's
//! own options and numbers. Then Shoal's own limits: key length (`MAX_KEY_LEN`), keys per
//! command (`MAX_BATCH_KEYS`), value length (`MAX_VALUE_LEN`).
//!
//! Invariant: a parsed `Command` is fully validated except for checks that need the
//! clock (absolute expiry overflow), which `action::plan` does with `now_ms`.

use bytes::Bytes;
use shoal_proto::limits::{MAX_BATCH_KEYS, MAX_KEY_LEN, MAX_VALUE_LEN};

use crate::command_table::{CommandSpec, lookup, lookup_subcommand};
use crate::errors::ErrorReply;
use crate::info::InfoSections;
use crate::num::parse_i64;
use crate::set_options::{
    ExpireCondition, SetName, SetOptions, parse_expire_amount, parse_expire_options,
    parse_set_options, parse_setex,
};

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Requested protocol version (2 or 3); `None` keeps the current one.
    pub protover: Option<u8>,
    /// `AUTH username password`.
    pub auth: Option<(Bytes, Bytes)>,
    /// `SETNAME clientname` (validated).
    pub setname: Option<Bytes>,
}

/// `CLIENT SETINFO` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAttr {
    /// `LIB-NAME`
    LibName,
    /// `LIB-VER`
    LibVer,
}

/// Unit of a TTL reply or of an EXPIRE amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// TTL, EXPIRE
    Seconds,
    /// PTTL, PEXPIRE
    Millis,
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PING [message]`
    Ping(Option<Bytes>),
    /// `ECHO message`
    Echo(Bytes),
    /// `HELLO ...`
    Hello(Hello),
    /// `AUTH [username] password`: the username (`default` when omitted) and password.
    Auth(Option<Bytes>, Bytes),
    /// `GET key`
    Get(Bytes),
    /// `SET`, `SETEX`, `PSETEX`
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// Validated options.
        options: SetOptions,
    },
    /// `MGET key [key ...]`
    MGet(Vec<Bytes>),
    /// `DEL key [key ...]`
    Del(Vec<Bytes>),
    /// `EXISTS key [key ...]`
    Exists(Vec<Bytes>),
    /// `TTL key` / `PTTL key`
    Ttl(Bytes, TimeUnit),
    /// `EXPIRE key seconds [NX|XX|GT|LT]` / `PEXPIRE key ms [...]`
    Expire {
        /// Key.
        key: Bytes,
        /// Relative amount in milliseconds; may be zero or negative (already expired).
        amount_ms: i64,
        /// NX/XX/GT/LT.
        condition: ExpireCondition,
        /// EXPIRE or PEXPIRE (for error texts).
        unit: TimeUnit,
    },
    /// `PERSIST key`
    Persist(Bytes),
    /// `DBSIZE`
    DbSize,
    /// `INFO [section ...]`
    Info(InfoSections),
    /// `SELECT index` (any integer; the connection accepts only 0).
    Select(i64),
    /// `QUIT`
    Quit,
    /// `COMMAND` (all command infos)
    CommandList,
    /// `COMMAND COUNT`
    CommandCount,
    /// `COMMAND INFO [name ...]` (empty: all)
    CommandInfo(Vec<Bytes>),
    /// `COMMAND DOCS [name ...]` (empty: all)
    CommandDocs(Vec<Bytes>),
    /// `CLIENT SETNAME name` (validated; empty clears)
    ClientSetName(Bytes),
    /// `CLIENT GETNAME`
    ClientGetName,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (validated)
    ClientSetInfo(ClientAttr, Bytes),
    /// `CLIENT ID`
    ClientId,
    /// `CONFIG GET pattern [pattern ...]`
    ConfigGet(Vec<Bytes>),
}

/// Redis's `validateClientName`/`validateClientAttr`: printable ASCII without spaces.
pub fn valid_client_attr(value: &[u8]) -> bool {
    value.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn check_key(key: &Bytes) -> Result<(), ErrorReply> {
    if key.len() > MAX_KEY_LEN {
        return Err(ErrorReply::key_too_long(key.len()));
    }
    Ok(())
}

fn check_keys(keys: &[Bytes]) -> Result<(), ErrorReply> {
    if keys.len() > MAX_BATCH_KEYS {
        return Err(ErrorReply::too_many_keys(keys.len()));
    }
    keys.iter().try_for_each(check_key)
}

fn check_value(value: &Bytes) -> Result<(), ErrorReply> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ErrorReply::new(format!(
            "value is {} bytes, longer than Shoal's limit of {MAX_VALUE_LEN} (MAX_VALUE_LEN)",
            value.len()
        )));
    }
    Ok(())
}

/// Finds the command (or subcommand) `args` names and checks its arity.
pub fn resolve(args: &[Bytes]) -> Result<&'static CommandSpec, ErrorReply> {
    let Some(name) = args.first() else {
        return Err(ErrorReply::unknown_command(b"", &args[..0]));
    };
    let spec = lookup(name).ok_or_else(|| ErrorReply::unknown_command(name, &args[1..]))?;
    let spec = match args.get(1) {
        Some(sub) if !spec.subcommands.is_empty() => lookup_subcommand(spec, sub)
            .ok_or_else(|| ErrorReply::unknown_subcommand(spec.name, sub))?,
        _ => spec,
    };
    if !spec.arity_ok(args.len()) {
        return Err(ErrorReply::wrong_arity(spec.name));
    }
    Ok(spec)
}

impl Command {
    /// Parses one request (`args[0]` is the command name).
    pub fn parse(mut args: Vec<Bytes>) -> Result<Command, ErrorReply> {
        let spec = resolve(&args)?;
        // Arity is checked: indexing below stays within what the arity guarantees.
        let command = match spec.name {
            // PING's table arity is -1 but pingCommand refuses more than one message.
            "ping" if args.len() > 2 => return Err(ErrorReply::wrong_arity("ping")),
            "ping" => Command::Ping(args.get(1).cloned()),
            "echo" => Command::Echo(args.swap_remove(1)),
            "hello" => Command::Hello(parse_hello(&args)?),
            "auth" => match args.len() {
                2 => Command::Auth(None, args.swap_remove(1)),
                3 => Command::Auth(Some(args[1].clone()), args.swap_remove(2)),
                _ => return Err(ErrorReply::syntax()),
            },
            "get" => {
                check_key(&args[1])?;
                Command::Get(args.swap_remove(1))
            }
            "set" => {
                let options = parse_set_options(&args[3..])?;
                check_key(&args[1])?;
                check_value(&args[2])?;
                Command::Set {
                    key: args[1].clone(),
                    value: args[2].clone(),
                    options,
                }
            }
            "setex" | "psetex" => {
                let name = if spec.name == "setex" {
                    SetName::SetEx
                } else {
                    SetName::PSetEx
                };
                let options = parse_setex(&args[2], name)?;
                check_key(&args[1])?;
                check_value(&args[3])?;
                Command::Set {
                    key: args[1].clone(),
                    value: args[3].clone(),
                    options,
                }
            }
            "mget" | "del" | "exists" => {
                args.remove(0);
                check_keys(&args)?;
                match spec.name {
                    "mget" => Command::MGet(args),
                    "del" => Command::Del(args),
                    _ => Command::Exists(args),
                }
            }
            "ttl" | "pttl" => {
                check_key(&args[1])?;
                let unit = if spec.name == "ttl" {
                    TimeUnit::Seconds
                } else {
                    TimeUnit::Millis
                };
                Command::Ttl(args.swap_remove(1), unit)
            }
            "expire" | "pexpire" => {
                let condition = parse_expire_options(&args[3..])?;
                let unit = if spec.name == "expire" {
                    TimeUnit::Seconds
                } else {
                    TimeUnit::Millis
                };
                let amount_ms = parse_expire_amount(&args[2], unit == TimeUnit::Millis)?;
                check_key(&args[1])?;
                Command::Expire {
                    key: args[1].clone(),
                    amount_ms,
                    condition,
                    unit,
                }
            }
            "persist" => {
                check_key(&args[1])?;
                Command::Persist(args.swap_remove(1))
            }
            "dbsize" => Command::DbSize,
            "info" => Command::Info(InfoSections::parse(&args[1..])),
            "select" => Command::Select(parse_select(&args[1])?),
            "quit" => Command::Quit,
            "command" => Command::CommandList,
            "command|count" => Command::CommandCount,
            "command|info" => Command::CommandInfo(args.split_off(2)),
            "command|docs" => Command::CommandDocs(args.split_off(2)),
            "client|setname" => {
                if !valid_client_attr(&args[2]) {
                    return Err(ErrorReply::bad_client_name());
                }
                Command::ClientSetName(args.swap_remove(2))
            }
            "client|getname" => Command::ClientGetName,
            "client|id" => Command::ClientId,
            "client|setinfo" => {
                let attr = if args[2].eq_ignore_ascii_case(b"lib-name") {
                    ClientAttr::LibName
                } else if args[2].eq_ignore_ascii_case(b"lib-ver") {
                    ClientAttr::LibVer
                } else {
                    return Err(ErrorReply::with_arg("Unrecognized option '", &args[2], "'"));
                };
                if !valid_client_attr(&args[3]) {
                    return Err(ErrorReply::with_arg(
                        "",
                        &args[2],
                        " cannot contain spaces, newlines or special characters.",
                    ));
                }
                Command::ClientSetInfo(attr, args.swap_remove(3))
            }
            "config|get" => Command::ConfigGet(args.split_off(2)),
            // A container named without a subcommand fails its arity check above, so
            // only names missing from this match can land here: a table/parser mismatch.
            other => {
                debug_assert!(false, "command {other} is in the table but not parsed");
                return Err(ErrorReply::unknown_command(other.as_bytes(), &args[1..]));
            }
        };
        Ok(command)
    }
}

/// `SELECT`'s index: Redis's `getIntFromObjectOrReply` (an `int`), with its two texts.
fn parse_select(raw: &[u8]) -> Result<i64, ErrorReply> {
    let value = parse_i64(raw).ok_or_else(ErrorReply::not_integer)?;
    if i32::try_from(value).is_err() {
        return Err(ErrorReply::new(format!(
            "value is out of range, value must between {} and {}",
            i32::MIN,
            i32::MAX
        )));
    }
    Ok(value)
}

/// Redis 7's `helloCommand` argument handling.
fn parse_hello(args: &[Bytes]) -> Result<Hello, ErrorReply> {
    let mut hello = Hello {
        protover: None,
        auth: None,
        setname: None,
    };
    let mut j = 1;
    if let Some(raw) = args.get(1) {
        let version = parse_i64(raw)
            .ok_or_else(|| ErrorReply::new("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&version) {
            return Err(ErrorReply::noproto());
        }
        hello.protover = Some(version as u8);
        j = 2;
    }
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
            hello.auth = Some((args[j + 1].clone(), args[j + 2].clone()));
            j += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
            if !valid_client_attr(&args[j + 1]) {
                return Err(ErrorReply::bad_client_name());
            }
            hello.setname = Some(args[j + 1].clone());
            j += 2;
        } else {
            return Err(ErrorReply::with_arg(
                "Syntax error in HELLO option '",
                opt,
                "'",
            ));
        }
    }
    Ok(hello)
}
