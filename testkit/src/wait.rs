//! Waiting for a condition with a deadline, instead of sleeping a guessed time.

use std::time::{Duration, Instant};

/// The condition did not hold before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}")]
pub struct TimedOut {
    pub what: String,
    pub waited: Duration,
}

/// Polls `check` every `poll` until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(TimedOut {
                what: what.to_owned(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(poll.min(timeout.saturating_sub(start.elapsed())));
    }
}

/// Async twin of [`wait_for`], for tokio tests.
pub async fn wait_for_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(TimedOut {
                what: what.to_owned(),
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(poll.min(timeout.saturating_sub(start.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let v = wait_for(
            "third call",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                (calls == 3).then_some(calls)
            },
        );
        assert_eq!(v.unwrap(), 3);
    }

    #[test]
    fn times_out_naming_the_condition() {
        let err = wait_for::<()>(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("never"));
        assert!(err.waited >= Duration::from_millis(20));
    }
}
