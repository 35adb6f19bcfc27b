//! The Redis-protocol target (Redis, Valkey, KeyDB, ...), through the `redis` crate's
//! multiplexed async connections on tokio.
//!
//! Owns: connecting (bounded by the connect timeout, then a `PING` preflight), spreading
//! requests over `connections` multiplexed connections by key, and mapping Redis errors to
//! the report's classes.
//!
//! Invariants: `put` is `SET`, `put_with_ttl` is `SET .. EX ttl`, `get` is `GET`, `get_multi`
//! is `MGET`, `delete` is `DEL`. Durability of writes is whatever the server's
//! `appendonly`/`appendfsync` settings give (the report's `--label` states it); reads are
//! served by the one server, so they see every acknowledged write.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};

use super::{ConnectError, ErrorKind, OpError, Target};

/// Redis target settings.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port[/db]` URL.
    pub url: String,
    /// Number of multiplexed TCP connections (each pipelines all requests sent on it).
    pub connections: usize,
    /// Bound on establishing each connection and on the preflight.
    pub connect_timeout: Duration,
    /// Bound on each request's answer.
    pub op_timeout: Duration,
}

/// A Redis server reached through `connections` multiplexed connections.
pub struct RedisTarget {
    url: String,
    conns: Vec<MultiplexedConnection>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &self.url)
            .field("connections", &self.conns.len())
            .finish()
    }
}

impl RedisTarget {
    /// Opens the connections and checks each with `PING`; fails with the reason otherwise.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, ConnectError> {
        assert!(settings.connections >= 1, "at least one connection");
        let failed = |reason: String| ConnectError::Failed {
            target: "redis",
            endpoint: settings.url.clone(),
            reason,
        };
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| failed(format!("bad URL: {e}")))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.op_timeout));
        let mut conns = Vec::with_capacity(settings.connections);
        for _ in 0..settings.connections {
            let attempt = async {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok::<_, RedisError>((conn, pong))
            };
            match tokio::time::timeout(settings.connect_timeout, attempt).await {
                Err(_) => {
                    return Err(ConnectError::Timeout {
                        target: "redis",
                        endpoint: settings.url.clone(),
                        timeout_ms: settings.connect_timeout.as_millis(),
                    });
                }
                Ok(Err(e)) => return Err(failed(e.to_string())),
                Ok(Ok((_, pong))) if pong != "PONG" => {
                    return Err(failed(format!("PING answered {pong:?}")));
                }
                Ok(Ok((conn, _))) => conns.push(conn),
            }
        }
        Ok(Self {
            url: settings.url.clone(),
            conns,
        })
    }

    /// The connection for `key`: a cheap hash spreads keys evenly, and keeps one key on one
    /// connection so a lane's requests to it stay ordered.
    fn conn_for(&self, key: &[u8]) -> MultiplexedConnection {
        let n = self.conns.len();
        let i = if n == 1 {
            0
        } else {
            let h = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            (h % n as u64) as usize
        };
        // Cloning a multiplexed connection is a handle clone (no new socket).
        self.conns[i].clone()
    }
}

fn classify(e: RedisError) -> OpError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        ErrorKind::Connection
    } else if matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    ) {
        ErrorKind::Server
    } else {
        ErrorKind::Other
    };
    OpError::new(kind, e)
}

fn expect_ok(v: Value) -> Result<(), OpError> {
    match v {
        Value::Okay => Ok(()),
        Value::SimpleString(s) if s == "OK" => Ok(()),
        other => Err(OpError::new(
            ErrorKind::Other,
            format!("unexpected reply {other:?}"),
        )),
    }
}

impl Target for RedisTarget {
    fn describe(&self) -> String {
        format!(
            "redis {} ({} multiplexed connection(s))",
            self.url,
            self.conns.len()
        )
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        let mut conn = self.conn_for(key);
        let v: Value = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut conn)
            .await
            .map_err(classify)?;
        expect_ok(v)
    }

    async fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl_secs: u64) -> Result<(), OpError> {
        let mut conn = self.conn_for(key);
        let v: Value = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl_secs)
            .query_async(&mut conn)
            .await
            .map_err(classify)?;
        expect_ok(v)
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        let mut conn = self.conn_for(key);
        let v: Value = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(classify)?;
        match v {
            Value::Nil => Ok(false),
            Value::BulkString(_) => Ok(true),
            other => Err(OpError::new(
                ErrorKind::Other,
                format!("unexpected GET reply {other:?}"),
            )),
        }
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        let Some(first) = keys.first() else {
            return Ok(0);
        };
        let mut conn = self.conn_for(first);
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(k.as_ref());
        }
        let v: Value = cmd.query_async(&mut conn).await.map_err(classify)?;
        match v {
            Value::Array(items) if items.len() == keys.len() => {
                Ok(items.iter().filter(|i| !matches!(i, Value::Nil)).count())
            }
            other => Err(OpError::new(
                ErrorKind::Other,
                format!("unexpected MGET reply {other:?}"),
            )),
        }
    }

    async fn delete(&self, key: &[u8]) -> Result<(), OpError> {
        let mut conn = self.conn_for(key);
        let _removed: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(classify)?;
        Ok(())
    }
}
