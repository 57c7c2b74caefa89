//! Runs a system tool (nft, conntrack, ip) with a time limit, so that a tool that hangs (a
//! netlink socket stuck on a busy kernel, a lock) can never stall the master's loop.
//!
//! The child is waited for by its own pid; its exit status cannot be taken by the
//! supervisor's `waitpid(-1)`, which runs only between our calls in the same thread.

use std::fmt;
use std::io::{self, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished tool said. nft and conntrack report on stderr; stdout is kept only
/// when asked for (`run_capturing`), and empty otherwise.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A tool that could not be run to its end.
#[derive(Debug)]
pub enum CommandError {
    /// It could not be started (not installed, not executable).
    Spawn { program: String, source: io::Error },
    /// Its input could not be written (it exited early; its status says why).
    Stdin { program: String, source: io::Error },
    /// It was still running at the limit and was killed.
    TimedOut { program: String, limit: Duration },
    /// Waiting for it failed.
    Wait { program: String, source: io::Error },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Spawn { program, source } => write!(f, "cannot run {program}: {source}"),
            CommandError::Stdin { program, source } => {
                write!(f, "cannot write the input of {program}: {source}")
            }
            CommandError::TimedOut { program, limit } => write!(
                f,
                "{program} did not finish within {} s and was killed",
                limit.as_secs_f32()
            ),
            CommandError::Wait { program, source } => {
                write!(f, "cannot wait for {program}: {source}")
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// Runs `program args`, writing `input` (if any) to its stdin, for at most `limit`.
/// The tools we run print little, so their stderr is read once they have exited.
pub fn run(
    program: &str,
    args: &[String],
    input: Option<&str>,
    limit: Duration,
) -> Result<Finished, CommandError> {
    run_with(program, args, input, Stdio::null(), limit)
}

/// Runs `program args` for at most `limit` and keeps what it prints on stdout too. Only
/// for tools that print a line or two: their stdout is read once they have exited, and
/// one that fills the pipe would wait until it is killed at the limit.
pub fn run_capturing(
    program: &str,
    args: &[String],
    limit: Duration,
) -> Result<Finished, CommandError> {
    run_with(program, args, None, Stdio::piped(), limit)
}

fn run_with(
    program: &str,
    args: &[String],
    input: Option<&str>,
    stdout: Stdio,
    limit: Duration,
) -> Result<Finished, CommandError> {
    let name = || program.to_owned();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CommandError::Spawn {
            program: name(),
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // Dropping stdin at the end of this block closes it: the tool sees end of input.
        if let Err(source) = stdin.write_all(text.as_bytes()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CommandError::Stdin {
                program: name(),
                source,
            });
        }
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Not reaped yet, so the pid is still this child's.
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut {
                    program: name(),
                    limit,
                });
            }
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Wait {
                    program: name(),
                    source,
                });
            }
        }
    };
    let mut stdout = String::new();
    if let Some(pipe) = child.stdout.as_mut() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.as_mut() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn output_and_status_of_a_finished_tool() {
        let done = run(
            "sh",
            &words(&["-c", "cat >&2; echo oops >&2; exit 3"]),
            Some("hello\n"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stderr, "hello\noops\n", "the input arrived");
    }

    #[test]
    fn stdout_is_kept_when_asked_for() {
        let done = run_capturing(
            "sh",
            &words(&["-c", "echo out; echo err >&2"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(done.status.success());
        assert_eq!(
            (done.stdout.as_str(), done.stderr.as_str()),
            ("out\n", "err\n")
        );
        let quiet = run(
            "sh",
            &words(&["-c", "echo out"]),
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(quiet.stdout, "");
    }

    #[test]
    fn a_tool_past_its_limit_is_killed() {
        let started = Instant::now();
        let error = run("sleep", &words(&["30"]), None, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, CommandError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_tool_is_named() {
        let error = run("/nonexistent/tool", &[], None, Duration::from_secs(1)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot run /nonexistent/tool"),
            "{error}"
        );
    }
}
