use std::path::Path;

use super::args::parse_member;
use super::*;

/// A config file holding `text`, in a temporary directory (kept alive by the first value).
fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn single() -> NodeConfig {
    NodeConfig {
        shards: 2,
        ..NodeConfig::default()
    }
}

fn invalid_setting(config: &NodeConfig) -> &'static str {
    match config.validate() {
        Err(ConfigError::Invalid { setting, .. }) => setting,
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

#[test]
fn defaults_are_a_valid_single_node_on_loopback() {
    let c = NodeConfig::load(&NodeArgs::default()).unwrap();
    assert!(c.shards >= 1);
    assert!(c.client_addr.ip().is_loopback() && c.peer_addr.ip().is_loopback());
    assert_eq!(c.data_dir, Path::new(DEFAULT_DATA_DIR));
    assert!(c.members.is_empty());
    assert_eq!(c.shard_client_addr(1).port(), DEFAULT_CLIENT_PORT + 1);
}

#[test]
fn file_then_flags_override_defaults() {
    let (_dir, path) = config_file(
        r#"
        node_id = 2
        shards = 3
        client_addr = "127.0.0.1:9000"
        peer_addr = "127.0.0.1:9100"
        [timeouts]
        request_ms = 1234
        [log]
        format = "json"
        "#,
    );
    let args = NodeArgs {
        config: Some(path),
        shards: Some(4),
        request_timeout_ms: Some(99),
        ..NodeArgs::default()
    };
    let c = NodeConfig::load(&args).unwrap();
    assert_eq!(c.node_id, 2, "from the file");
    assert_eq!(c.shards, 4, "the flag wins over the file");
    assert_eq!(c.timeouts.request_ms, 99, "the flag wins over the file");
    assert_eq!(
        c.timeouts.heartbeat_ms,
        TimeoutsConfig::default().heartbeat_ms,
        "default kept"
    );
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.shard_peer_addr(3).port(), 9103);
}

#[test]
fn unknown_keys_and_bad_values_in_the_file_are_refused_with_position() {
    let err = file::parse(Path::new("x.toml"), "shard = 2\n").unwrap_err();
    assert!(
        err.to_string().contains("x.toml") && err.to_string().contains("shard"),
        "{err}"
    );
    let err = file::parse(Path::new("x.toml"), "[timeouts]\nrequest_ms = \"soon\"\n").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let args = NodeArgs {
        config: Some("/nonexistent/shoal.toml".into()),
        ..NodeArgs::default()
    };
    let err = NodeConfig::load(&args).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/shoal.toml"), "{err}");
}

#[test]
fn each_invalid_setting_is_named() {
    let mut c = single();
    c.node_id = 0;
    assert_eq!(invalid_setting(&c), "node_id");

    let mut c = single();
    c.shards = limits::MAX_SHARDS + 1;
    assert_eq!(invalid_setting(&c), "shards");

    let mut c = single();
    c.client_addr.set_port(65535);
    assert_eq!(
        invalid_setting(&c),
        "client_addr",
        "2 shards need ports 65535 and 65536"
    );

    let mut c = single();
    c.peer_addr = SocketAddr::from(([127, 0, 0, 1], DEFAULT_CLIENT_PORT + 1));
    assert_eq!(
        invalid_setting(&c),
        "peer_addr",
        "overlaps the client ports"
    );

    let mut c = single();
    c.limits.max_value_len = limits::MAX_VALUE_LEN + 1;
    assert_eq!(invalid_setting(&c), "limits.max_value_len");

    let mut c = single();
    c.timeouts.election_min_ms = c.timeouts.heartbeat_ms;
    assert_eq!(invalid_setting(&c), "timeouts.election_min_ms");

    let mut c = single();
    c.timeouts.election_max_ms = c.timeouts.election_min_ms;
    assert_eq!(invalid_setting(&c), "timeouts.election_max_ms");

    let mut c = single();
    c.wal.segment_mib = 0;
    assert_eq!(invalid_setting(&c), "wal.segment_mib");

    let mut c = single();
    c.log.level = "shoal=loud".into();
    assert_eq!(invalid_setting(&c), "log.level");

    let mut c = single();
    c.replication.append_pipeline_depth = 0;
    assert_eq!(invalid_setting(&c), "replication.append_pipeline_depth");
    c.replication.append_pipeline_depth = limits::MAX_PIPELINED_APPENDS + 1;
    assert_eq!(invalid_setting(&c), "replication.append_pipeline_depth");

    let mut c = single();
    c.replication.commit_linger_us = MAX_COMMIT_LINGER_US + 1;
    assert_eq!(invalid_setting(&c), "replication.commit_linger_us");
}

#[test]
fn members_must_include_this_node_once_at_its_own_addresses() {
    let me = Member {
        id: 1,
        client_addr: single().client_addr,
        peer_addr: single().peer_addr,
    };
    let other = parse_member("2=127.0.0.1:7410/127.0.0.1:7610").unwrap();

    let mut c = single();
    c.members = vec![me.clone(), other.clone()];
    c.validate().unwrap();

    c.members = vec![other.clone()];
    assert_eq!(invalid_setting(&c), "members", "this node missing");

    c.members = vec![me.clone(), other.clone(), other.clone()];
    assert_eq!(invalid_setting(&c), "members", "duplicate id");

    let mut moved = me.clone();
    moved.client_addr.set_port(9999);
    c.members = vec![moved, other];
    assert_eq!(invalid_setting(&c), "members", "addresses disagree");
}

#[test]
fn member_flag_parses_and_explains_its_shape() {
    let m = parse_member("3=10.0.0.3:7400/10.0.0.3:7600").unwrap();
    assert_eq!(
        (m.id, m.client_addr.port(), m.peer_addr.port()),
        (3, 7400, 7600)
    );
    for bad in [
        "3",
        "x=1.2.3.4:1/1.2.3.4:2",
        "3=1.2.3.4:1",
        "3=nope/1.2.3.4:2",
    ] {
        let err = parse_member(bad).unwrap_err();
        assert!(err.contains(bad), "{err}");
    }
}

#[test]
fn join_needs_members_and_must_not_be_one_of_them() {
    let mut c = NodeConfig {
        node_id: 4,
        shards: 1,
        join: true,
        ..NodeConfig::default()
    };
    assert_eq!(invalid_setting(&c), "join", "no members");
    c.members = vec![parse_member("1=127.0.0.1:7410/127.0.0.1:7610").unwrap()];
    c.validate().unwrap();
    c.node_id = 1;
    c.client_addr = "127.0.0.1:7410".parse().unwrap();
    c.peer_addr = "127.0.0.1:7610".parse().unwrap();
    assert_eq!(invalid_setting(&c), "join", "an initial member");
}

#[test]
fn test_only_switches_parse_and_default_off() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }
    let cli =
        Cli::try_parse_from(["shoal", "--clock-offset-ms", "-40", "--unsafe-local-reads"]).unwrap();
    let mut c = NodeConfig::default();
    cli.node.apply(&mut c);
    assert_eq!(c.clock_offset_ms, -40);
    assert!(c.unsafe_local_reads);
    let d = NodeConfig::default();
    assert_eq!((d.clock_offset_ms, d.unsafe_local_reads), (0, false));
}

#[test]
fn first_core_shifts_every_shard_and_wraps() {
    let mut e = ExecutorConfig::default();
    assert_eq!(
        (0..3).map(|s| e.core_of(s, 2)).collect::<Vec<_>>(),
        [0, 1, 0]
    );
    e.first_core = 1;
    assert_eq!(
        (0..3).map(|s| e.core_of(s, 2)).collect::<Vec<_>>(),
        [1, 0, 1]
    );
    e.first_core = 5;
    assert_eq!(
        (0..4).map(|s| e.core_of(s, 4)).collect::<Vec<_>>(),
        [1, 2, 3, 0]
    );
}

#[test]
fn wal_sync_mode_comes_from_the_file_or_the_flag_and_defaults_to_uring() {
    assert_eq!(NodeConfig::default().wal.sync_mode, WalSyncMode::Uring);
    let (_dir, path) = config_file("[wal]\nsync_mode = \"inline\"\n");
    let from_file = NodeArgs {
        config: Some(path.clone()),
        ..NodeArgs::default()
    };
    let c = NodeConfig::load(&from_file).unwrap();
    assert_eq!(c.wal.sync_mode, WalSyncMode::Inline);
    assert_eq!(c.wal.sync_mode.disk_mode(), shoal_wal::SyncMode::Inline);
    let flag = NodeArgs {
        config: Some(path.clone()),
        wal_sync_mode: Some(WalSyncMode::Thread),
        ..NodeArgs::default()
    };
    let c = NodeConfig::load(&flag).unwrap();
    assert_eq!(c.wal.sync_mode.disk_mode(), shoal_wal::SyncMode::SyncThread);
    std::fs::write(&path, "[wal]\nsync_mode = \"fast\"\n").unwrap();
    let err = NodeConfig::load(&from_file).unwrap_err().to_string();
    assert!(
        err.contains("sync_mode") || err.contains("unknown variant"),
        "{err}"
    );
}

#[test]
fn replication_settings_come_from_the_file_or_the_flags_and_default_to_the_peer_defaults() {
    let d = NodeConfig::default().replication;
    assert_eq!(
        d.append_pipeline_depth,
        crate::peer::DEFAULT_APPEND_PIPELINE_DEPTH
    );
    assert_eq!(d.commit_linger(), crate::peer::DEFAULT_COMMIT_LINGER);
    let (_dir, path) =
        config_file("[replication]\nappend_pipeline_depth = 3\ncommit_linger_us = 700\n");
    let from_file = NodeArgs {
        config: Some(path.clone()),
        ..NodeArgs::default()
    };
    let c = NodeConfig::load(&from_file).unwrap();
    assert_eq!(c.replication.append_pipeline_depth, 3);
    assert_eq!(c.replication.commit_linger(), Duration::from_micros(700));
    let flags = NodeArgs {
        config: Some(path),
        append_pipeline_depth: Some(5),
        commit_linger_us: Some(0),
        ..NodeArgs::default()
    };
    let c = NodeConfig::load(&flags).unwrap();
    assert_eq!(c.replication.append_pipeline_depth, 5);
    assert!(c.replication.commit_linger().is_zero());
}
