//! Forgetting a dead server's connections in kernel mode.
//!
//! In kernel mode conntrack, not the worker, keeps sending a connection's packets to its
//! server. When a server goes down, deleting the entries that carry its mark makes the
//! clients' next packets new connections again: they are queued, and the worker moves them
//! to a live server, as userspace mode moves a mapping at its next packet. Healthy servers'
//! entries carry other marks and are never touched.
//!
//! The `conntrack` tool (Debian package conntrack) does the work; it runs bounded in time,
//! and a failure is the caller's to log: it never stops the balancer.

use crate::bounded_command::{self, CommandError};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

const CONNTRACK: &str = "conntrack";
/// Deleting even a million entries takes a few seconds at most.
const LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum ConntrackError {
    /// conntrack could not be run to its end.
    Run(CommandError),
    /// It failed, or said something we do not understand.
    Refused { status: String, stderr: String },
}

impl fmt::Display for ConntrackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConntrackError::Run(source) => write!(f, "{source}"),
            ConntrackError::Refused { status, stderr } => {
                write!(f, "conntrack {status}: {}", stderr.trim())
            }
        }
    }
}

impl std::error::Error for ConntrackError {}

/// The arguments that delete every entry of `addr`'s family with exactly `mark`.
pub fn delete_args(addr: IpAddr, mark: u32) -> Vec<String> {
    let family = if addr.is_ipv4() { "ipv4" } else { "ipv6" };
    [
        "-D",
        "-f",
        family,
        "--mark",
        &format!("{mark:#x}/0xffffffff"),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Deletes the entries of the server `addr` (its `mark`); returns how many went.
pub fn forget_server(addr: IpAddr, mark: u32) -> Result<u64, ConntrackError> {
    let done = bounded_command::run(CONNTRACK, &delete_args(addr, mark), None, LIMIT)
        .map_err(ConntrackError::Run)?;
    // "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted." — with status
    // 1 when there were none, which is fine.
    match deleted_count(&done.stderr) {
        Some(count) if done.status.success() || count == 0 => Ok(count),
        _ => Err(ConntrackError::Refused {
            status: done.status.to_string(),
            stderr: done.stderr,
        }),
    }
}

/// The number in conntrack's "N flow entries have been deleted".
fn deleted_count(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|line| line.contains("flow entries have been deleted"))?;
    let before = line.split(" flow entries").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_by_the_whole_mark_in_the_servers_family() {
        assert_eq!(
            delete_args("198.19.0.12".parse().unwrap(), 0x4c44_0002).join(" "),
            "-D -f ipv4 --mark 0x4c440002/0xffffffff"
        );
        assert_eq!(
            delete_args("fd00:19::12".parse().unwrap(), 0x4c44_0005).join(" "),
            "-D -f ipv6 --mark 0x4c440005/0xffffffff"
        );
    }

    #[test]
    fn reads_how_many_were_deleted() {
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.\n"
            ),
            Some(3)
        );
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"
            ),
            Some(0)
        );
        assert_eq!(deleted_count("conntrack: Operation not permitted\n"), None);
    }
}
