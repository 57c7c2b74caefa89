//! Commands bounded in time, and stopping child processes by pid.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Bound of any command the harness runs without an explicit timeout.
pub(crate) const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a spawned process gets between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

pub(crate) fn failed_status() -> ExitStatus {
    ExitStatus::from_raw(127 << 8)
}

/// Reads `pipe` to the end on a thread; the result arrives on the returned channel.
pub(crate) fn read_in_background(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` with stdin from /dev/null, capturing its output, for at most `timeout`:
/// past it the process is killed (SIGKILL, by pid) and a note is added to its stderr.
/// Never panics; a command that cannot start gives status 127 and the reason on stderr.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Output {
                status: failed_status(),
                stdout: Vec::new(),
                stderr: format!("harness: cannot run {cmd:?}: {e}").into_bytes(),
            }
        }
    };
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Not reaped yet, so the pid is still this child's.
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| failed_status());
            }
            Err(_) => {
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| failed_status());
            }
        }
    };
    // A grandchild may still hold the pipes open: wait for the output only a little.
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
            .unwrap_or_default()
    };
    let stdout = collect(stdout);
    let mut stderr = collect(stderr);
    if timed_out {
        stderr.extend_from_slice(
            format!("\nharness: killed after {timeout:?}: {cmd:?}\n").as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Why a command run in the lab gave no usable result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// It failed (or found nothing): what it was, its status and both outputs.
    Failed {
        what: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    /// It succeeded, but its output is not what it should print.
    Unreadable { what: String, output: String },
}

impl CommandError {
    pub fn failed(what: impl Into<String>, out: &Output) -> CommandError {
        CommandError::Failed {
            what: what.into(),
            status: out.status,
            stdout: text(&out.stdout).trim().to_owned(),
            stderr: text(&out.stderr).trim().to_owned(),
        }
    }
}

/// One line when the command said little (its first line is the gist, for the tests that
/// keep only that), its outputs below when it said more.
impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Failed {
                what,
                status,
                stdout,
                stderr,
            } => {
                write!(f, "{what}: {status}: {stderr}")?;
                if !stdout.is_empty() {
                    write!(f, "\n--- stdout ---\n{stdout}")?;
                }
                Ok(())
            }
            CommandError::Unreadable { what, output } => {
                write!(f, "{what}: unreadable output: {output:?}")
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// A finished command for a failure message: what it was, its status and both outputs.
pub fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Sends SIGTERM to an unreaped child, waits up to `grace` for it, then SIGKILLs it; always
/// reaps it. Never panics.
pub(crate) fn stop_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal_term(child);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// SIGTERM by pid. The caller holds the unreaped `Child`, so the pid cannot have been
/// reused by another process.
pub(crate) fn signal_term(child: &Child) {
    // It may have exited already; it is then reaped by the caller.
    let _ = try_send_signal(child.id(), libc::SIGTERM);
}

/// Sends `signal` to `pid`, a process this test started or a child of the balancer it
/// started (never by name), and asserts that it was delivered.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    if let Err(e) = try_send_signal(pid, signal) {
        panic!("kill -{signal} {pid}: {e}");
    }
}

/// `send_signal` for where the process may be gone already (cleanup, drop).
pub fn try_send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let target = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(target, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The state letter of /proc/PID/stat (R, S, T, Z...); None when there is no such process.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ...": comm may contain anything, even ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not stop the cleanup.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
