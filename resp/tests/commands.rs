#![allow(clippy::unwrap_used)]
//! Command parsing: successful parses, and every error reply's exact text. The Redis
//! texts below were checked against a real redis-server 7.0.15 on this machine.

use bytes::Bytes;
use shoal_proto::limits::{MAX_BATCH_KEYS, MAX_KEY_LEN};
use shoal_resp::set_options::MAX_TTL_MS;
use shoal_resp::{
    ClientAttr, Command, ExpireCondition, Hello, InfoSections, SetCondition, SetExpiry, SetName,
    TimeUnit,
};

fn args(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn parse(line: &str) -> Result<Command, String> {
    Command::parse(args(line)).map_err(|e| e.text().to_owned())
}

fn err(line: &str) -> String {
    match parse(line) {
        Ok(c) => panic!("{line:?} parsed as {c:?}"),
        Err(e) => e,
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Error replies exactly as redis-server 7.0.15 answered them.
#[test]
fn redis_error_texts() {
    let cases: &[(&str, &str)] = &[
        (
            "foo",
            "ERR unknown command 'foo', with args beginning with: ",
        ),
        (
            "foo a b",
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' ",
        ),
        ("get", "ERR wrong number of arguments for 'get' command"),
        ("GET a b", "ERR wrong number of arguments for 'get' command"),
        ("set k", "ERR wrong number of arguments for 'set' command"),
        ("set k v nx xx", "ERR syntax error"),
        ("set k v xx nx", "ERR syntax error"),
        ("set k v keepttl ex 10", "ERR syntax error"),
        ("set k v ex 10 keepttl", "ERR syntax error"),
        ("set k v ex 10 px 100", "ERR syntax error"),
        ("set k v exat 10 pxat 100", "ERR syntax error"),
        ("set k v ex", "ERR syntax error"),
        ("set k v foo", "ERR syntax error"),
        (
            "set k v ex abc",
            "ERR value is not an integer or out of range",
        ),
        (
            "set k v ex 1.5",
            "ERR value is not an integer or out of range",
        ),
        ("set k v ex 0", "ERR invalid expire time in 'set' command"),
        ("set k v ex -1", "ERR invalid expire time in 'set' command"),
        ("set k v px 0", "ERR invalid expire time in 'set' command"),
        ("set k v exat 0", "ERR invalid expire time in 'set' command"),
        (
            "set k v ex 9223372036854775807",
            "ERR invalid expire time in 'set' command",
        ),
        (
            "set k v ex 9223372036854775",
            "ERR invalid expire time in 'set' command",
        ),
        ("setex k 0 v", "ERR invalid expire time in 'setex' command"),
        (
            "setex k abc v",
            "ERR value is not an integer or out of range",
        ),
        (
            "setex k 10",
            "ERR wrong number of arguments for 'setex' command",
        ),
        (
            "psetex k 0 v",
            "ERR invalid expire time in 'psetex' command",
        ),
        (
            "psetex k -5 v",
            "ERR invalid expire time in 'psetex' command",
        ),
        ("expire k 10 foo", "ERR Unsupported option foo"),
        ("expire k abc foo", "ERR Unsupported option foo"),
        (
            "expire k abc",
            "ERR value is not an integer or out of range",
        ),
        (
            "expire k 10 nx xx",
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        (
            "expire k 10 nx gt",
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        (
            "expire k 10 gt lt",
            "ERR GT and LT options at the same time are not compatible",
        ),
        (
            "expire k 9223372036854775807",
            "ERR invalid expire time in 'expire' command",
        ),
        (
            "expire k -9223372036854775807",
            "ERR invalid expire time in 'expire' command",
        ),
        (
            "pexpire k 9223372036854775807",
            "ERR invalid expire time in 'pexpire' command",
        ),
        (
            "expire k",
            "ERR wrong number of arguments for 'expire' command",
        ),
        (
            "ping a b",
            "ERR wrong number of arguments for 'ping' command",
        ),
        ("echo", "ERR wrong number of arguments for 'echo' command"),
        ("select abc", "ERR value is not an integer or out of range"),
        (
            "select 99999999999",
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ),
        ("hello 4", "NOPROTO unsupported protocol version"),
        ("hello 1", "NOPROTO unsupported protocol version"),
        (
            "hello abc",
            "ERR Protocol version is not an integer or out of range",
        ),
        ("hello 2 foo", "ERR Syntax error in HELLO option 'foo'"),
        ("hello 2 auth u", "ERR Syntax error in HELLO option 'auth'"),
        (
            "hello 2 setname",
            "ERR Syntax error in HELLO option 'setname'",
        ),
        (
            "hello 2 setname a\u{1}b",
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ),
        (
            "client foo",
            "ERR unknown subcommand 'foo'. Try CLIENT HELP.",
        ),
        (
            "client",
            "ERR wrong number of arguments for 'client' command",
        ),
        (
            "client setname",
            "ERR wrong number of arguments for 'client|setname' command",
        ),
        (
            "client setname a b",
            "ERR wrong number of arguments for 'client|setname' command",
        ),
        (
            "client setname a\u{7f}",
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ),
        (
            "config",
            "ERR wrong number of arguments for 'config' command",
        ),
        (
            "config foo",
            "ERR unknown subcommand 'foo'. Try CONFIG HELP.",
        ),
        (
            "config get",
            "ERR wrong number of arguments for 'config|get' command",
        ),
        (
            "command foo",
            "ERR unknown subcommand 'foo'. Try COMMAND HELP.",
        ),
        (
            "command count x",
            "ERR wrong number of arguments for 'command|count' command",
        ),
        (
            "dbsize x",
            "ERR wrong number of arguments for 'dbsize' command",
        ),
        ("ttl", "ERR wrong number of arguments for 'ttl' command"),
        ("mget", "ERR wrong number of arguments for 'mget' command"),
        ("del", "ERR wrong number of arguments for 'del' command"),
        (
            "exists",
            "ERR wrong number of arguments for 'exists' command",
        ),
        (
            "persist",
            "ERR wrong number of arguments for 'persist' command",
        ),
        (
            "select",
            "ERR wrong number of arguments for 'select' command",
        ),
    ];
    for (line, text) in cases {
        assert_eq!(err(line), *text, "for {line:?}");
    }
}

/// Texts of Redis 7.2 (CLIENT SETINFO) and of Shoal's own limits.
#[test]
fn other_error_texts() {
    assert_eq!(err("client setinfo foo x"), "ERR Unrecognized option 'foo'");
    assert_eq!(
        err("client setinfo LIB-NAME a\u{1}"),
        "ERR LIB-NAME cannot contain spaces, newlines or special characters."
    );
    let long_key = "k".repeat(MAX_KEY_LEN + 1);
    assert_eq!(
        err(&format!("get {long_key}")),
        format!(
            "ERR key is {} bytes, longer than Shoal's limit of {MAX_KEY_LEN} (MAX_KEY_LEN)",
            MAX_KEY_LEN + 1
        )
    );
    let many = vec!["k"; MAX_BATCH_KEYS + 1].join(" ");
    assert_eq!(
        err(&format!("mget {many}")),
        format!(
            "ERR {} keys in one command, more than Shoal's limit of {MAX_BATCH_KEYS} \
             (MAX_BATCH_KEYS)",
            MAX_BATCH_KEYS + 1
        )
    );
    let at_limit = vec!["k"; MAX_BATCH_KEYS].join(" ");
    assert!(parse(&format!("del {at_limit}")).is_ok());
    // Shoal refuses relative TTLs beyond MAX_TTL_SECS (Redis accepts up to overflow).
    let over = MAX_TTL_MS + 1;
    assert_eq!(
        err(&format!("set k v px {over}")),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err(&format!("pexpire k {over}")),
        "ERR invalid expire time in 'pexpire' command"
    );
    assert!(parse(&format!("set k v px {MAX_TTL_MS}")).is_ok());
}

#[test]
fn unknown_command_with_binary_and_long_args() {
    let request = vec![
        b("nosuch"),
        Bytes::from_static(b"a\r\nb"),
        Bytes::from(vec![b'x'; 300]),
    ];
    let text = Command::parse(request).unwrap_err().text().to_owned();
    let expected = format!(
        "ERR unknown command 'nosuch', with args beginning with: 'a  b' '{}' ",
        "x".repeat(128 - "'a  b' ".len())
    );
    assert_eq!(text, expected);
}

#[test]
fn set_options_parse() {
    let set = |line: &str| match parse(line).unwrap() {
        Command::Set {
            key,
            value,
            options,
        } => {
            assert_eq!((key, value), (b("k"), b("v")));
            options
        }
        other => panic!("{other:?}"),
    };
    let o = set("set k v");
    assert_eq!(
        (o.condition, o.get, o.expiry),
        (SetCondition::Always, false, SetExpiry::None)
    );
    let o = set("SET k v Nx gEt PX 250");
    assert_eq!(
        (o.condition, o.get, o.expiry),
        (SetCondition::IfAbsent, true, SetExpiry::Relative(250))
    );
    assert_eq!(set("set k v xx keepttl").expiry, SetExpiry::Keep);
    assert_eq!(set("set k v xx keepttl").condition, SetCondition::IfPresent);
    assert_eq!(
        set("set k v ex 10 ex 20").expiry,
        SetExpiry::Relative(20_000)
    );
    assert_eq!(
        set("set k v exat 1700000000").expiry,
        SetExpiry::Absolute(1_700_000_000_000)
    );
    assert_eq!(
        set("set k v pxat 1700000000123").expiry,
        SetExpiry::Absolute(1_700_000_000_123)
    );
    assert_eq!(set("set k v nx nx").condition, SetCondition::IfAbsent);
    assert_eq!(set("set k v keepttl keepttl").expiry, SetExpiry::Keep);
    match parse("setex k 10 v").unwrap() {
        Command::Set { value, options, .. } => {
            assert_eq!(value, b("v"));
            assert_eq!(
                (options.expiry, options.name),
                (SetExpiry::Relative(10_000), SetName::SetEx)
            );
        }
        other => panic!("{other:?}"),
    }
    match parse("psetex k 10 v").unwrap() {
        Command::Set { options, .. } => {
            assert_eq!(
                (options.expiry, options.name),
                (SetExpiry::Relative(10), SetName::PSetEx)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_commands_parse() {
    assert_eq!(parse("PING").unwrap(), Command::Ping(None));
    assert_eq!(parse("ping hi").unwrap(), Command::Ping(Some(b("hi"))));
    assert_eq!(parse("echo hi").unwrap(), Command::Echo(b("hi")));
    assert_eq!(parse("get k").unwrap(), Command::Get(b("k")));
    assert_eq!(
        parse("mget a b a").unwrap(),
        Command::MGet(vec![b("a"), b("b"), b("a")])
    );
    assert_eq!(
        parse("del a b").unwrap(),
        Command::Del(vec![b("a"), b("b")])
    );
    assert_eq!(parse("exists a").unwrap(), Command::Exists(vec![b("a")]));
    assert_eq!(
        parse("ttl k").unwrap(),
        Command::Ttl(b("k"), TimeUnit::Seconds)
    );
    assert_eq!(
        parse("pttl k").unwrap(),
        Command::Ttl(b("k"), TimeUnit::Millis)
    );
    assert_eq!(
        parse("expire k 10 xx GT").unwrap(),
        Command::Expire {
            key: b("k"),
            amount_ms: 10_000,
            condition: ExpireCondition {
                xx: true,
                gt: true,
                ..Default::default()
            },
            unit: TimeUnit::Seconds,
        }
    );
    assert_eq!(
        parse("pexpire k -5 lt").unwrap(),
        Command::Expire {
            key: b("k"),
            amount_ms: -5,
            condition: ExpireCondition {
                lt: true,
                ..Default::default()
            },
            unit: TimeUnit::Millis,
        }
    );
    assert_eq!(parse("persist k").unwrap(), Command::Persist(b("k")));
    assert_eq!(parse("dbsize").unwrap(), Command::DbSize);
    assert_eq!(parse("info").unwrap(), Command::Info(InfoSections::ALL));
    assert_eq!(
        parse("info stats").unwrap(),
        Command::Info(InfoSections {
            stats: true,
            ..Default::default()
        })
    );
    assert_eq!(parse("select 0").unwrap(), Command::Select(0));
    assert_eq!(parse("quit").unwrap(), Command::Quit);
    assert_eq!(parse("quit now").unwrap(), Command::Quit);
    assert_eq!(parse("command").unwrap(), Command::CommandList);
    assert_eq!(parse("COMMAND COUNT").unwrap(), Command::CommandCount);
    assert_eq!(parse("command docs").unwrap(), Command::CommandDocs(vec![]));
    assert_eq!(
        parse("command docs get").unwrap(),
        Command::CommandDocs(vec![b("get")])
    );
    assert_eq!(
        parse("command info get set").unwrap(),
        Command::CommandInfo(vec![b("get"), b("set")])
    );
    assert_eq!(
        parse("client setname app").unwrap(),
        Command::ClientSetName(b("app"))
    );
    assert_eq!(parse("client getname").unwrap(), Command::ClientGetName);
    assert_eq!(parse("client id").unwrap(), Command::ClientId);
    assert_eq!(
        parse("client setinfo lib-ver 1.2").unwrap(),
        Command::ClientSetInfo(ClientAttr::LibVer, b("1.2"))
    );
    assert_eq!(
        parse("CLIENT SETINFO LIB-NAME redis-py").unwrap(),
        Command::ClientSetInfo(ClientAttr::LibName, b("redis-py"))
    );
    assert_eq!(
        parse("config get save appendonly").unwrap(),
        Command::ConfigGet(vec![b("save"), b("appendonly")])
    );
    assert_eq!(
        parse("hello").unwrap(),
        Command::Hello(Hello {
            protover: None,
            auth: None,
            setname: None
        })
    );
    assert_eq!(
        parse("hello 3 AUTH default pw SETNAME me").unwrap(),
        Command::Hello(Hello {
            protover: Some(3),
            auth: Some((b("default"), b("pw"))),
            setname: Some(b("me")),
        })
    );
}
