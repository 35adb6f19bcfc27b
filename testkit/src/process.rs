//! A child process that a test controls by pid and never leaves behind.
//!
//! Its stdout and stderr go to a log file, printed by the test on failure. Dropping the
//! handle SIGKILLs the process if it still runs, so a panicking test cannot leak nodes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running (or exited) child process.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl ChildProcess {
    /// Starts `cmd` with stdout and stderr appended to `log_path`.
    pub fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> std::io::Result<Self> {
        let log = File::options().create(true).append(true).open(log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        Ok(ChildProcess {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
            exited: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process (no-op once it has been reaped).
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        if self.exited.is_some() {
            return Ok(());
        }
        let pid = i32::try_from(self.pid()).map_err(std::io::Error::other)?;
        kill(Pid::from_raw(pid), signal).map_err(std::io::Error::from)
    }

    /// SIGKILL, then reap: a crash, as far as the process can tell.
    pub fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.signal(Signal::SIGKILL)?;
        self.wait_timeout(Duration::from_secs(10))
    }

    /// SIGINT (Ctrl-C), then wait up to `timeout` for a graceful exit.
    pub fn interrupt(&mut self, timeout: Duration) -> std::io::Result<ExitStatus> {
        self.signal(Signal::SIGINT)?;
        self.wait_timeout(timeout)
    }

    /// SIGSTOP: the process freezes, its sockets stay open (a long GC pause, say).
    pub fn pause(&self) -> std::io::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// SIGCONT: resumes a paused process.
    pub fn resume(&self) -> std::io::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// The exit status if the process has exited, without blocking.
    pub fn try_status(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if start.elapsed() >= timeout {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "{} (pid {}) still running after {timeout:?}",
                        self.name,
                        self.pid()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Waits (bounded by `timeout`) until the process prints `ready_line`. `Err` with its
    /// exit status and log if it exited first (a caller may retry, e.g. on a port taken
    /// between picking and binding); panics with the log at the timeout.
    pub fn wait_ready(&mut self, ready_line: &str, timeout: Duration) -> Result<(), String> {
        crate::wait::wait_for(
            "the process is ready",
            timeout,
            Duration::from_millis(20),
            || {
                if let Ok(Some(status)) = self.try_status() {
                    return Some(Err(format!("({status})\n{}", self.log())));
                }
                self.log().contains(ready_line).then_some(Ok(()))
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}:\n{}", self.name, self.log()))
    }

    /// Waits (bounded by `timeout`) for a process that must refuse to start: it has to
    /// exit with a failure status and never print `ready_line`. Returns its log; panics
    /// with the log if it started, succeeded or was still running at the timeout.
    pub fn expect_refusal(&mut self, ready_line: &str, timeout: Duration) -> String {
        let status = crate::wait::wait_for(
            "the process refuses to start",
            timeout,
            Duration::from_millis(20),
            || {
                let log = self.log();
                assert!(
                    !log.contains(ready_line),
                    "{} started (printed `{ready_line}`) where it had to refuse:\n{log}",
                    self.name
                );
                self.try_status().ok().flatten()
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}:\n{}", self.name, self.log()));
        let log = self.log();
        assert!(
            !status.success(),
            "{}: expected a failed start ({status}):\n{log}",
            self.name
        );
        log
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.try_status(), Ok(None)) {
            let _ = self.signal(Signal::SIGCONT);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path) -> ChildProcess {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        ChildProcess::spawn("sleeper", cmd, &dir.join("sleep.log")).unwrap()
    }

    #[test]
    fn kill_reaps_the_process() {
        let dir = std::env::temp_dir();
        let mut p = sleeper(&dir);
        assert!(p.try_status().unwrap().is_none());
        let status = p.kill().unwrap();
        assert!(!status.success());
        assert!(p.try_status().unwrap().is_some());
    }

    #[test]
    fn pause_and_resume_keep_it_alive_and_drop_kills_it() {
        let dir = std::env::temp_dir();
        let p = sleeper(&dir);
        let pid = p.pid();
        p.pause().unwrap();
        p.resume().unwrap();
        drop(p);
        // Reaped by drop: the pid no longer names our child.
        let gone = kill(Pid::from_raw(pid as i32), None).is_err();
        assert!(gone, "pid {pid} still alive after drop");
    }

    #[test]
    fn wait_timeout_reports_a_process_that_keeps_running() {
        let dir = std::env::temp_dir();
        let mut p = sleeper(&dir);
        let err = p.wait_timeout(Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
