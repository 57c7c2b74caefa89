//! What can go wrong with a child, as the supervisor sees it: a start that fails, a death,
//! a channel it ends, and the death that makes the master give up. Display gives the log's
//! words; the supervisor decides on the variants, never on the text.

use crate::backend_book::UntrustedServer;
use crate::queues::QueueError;
use loaded_proto::channel::ChannelError;
use loaded_proto::roles::OutOfPlace;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fmt;
use std::io;

/// A child could not be started.
#[derive(Debug)]
pub enum StartError {
    /// Its queue could not be opened and bound again (a restarted worker).
    OpenQueue(QueueError),
    /// fork+exec, or watching its channel.
    Spawn(io::Error),
    /// Its setup message did not reach it.
    SendSetup { name: String, source: ChannelError },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::OpenQueue(e) => e.fmt(f),
            StartError::Spawn(e) => e.fmt(f),
            StartError::SendSetup { name, source } => {
                write!(f, "{name}: cannot send its setup: {source}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// How a child's life ended.
#[derive(Debug)]
pub enum Death {
    Exited {
        pid: Pid,
        status: i32,
    },
    Killed {
        pid: Pid,
        signal: Signal,
    },
    /// It was dead already and could not be started again.
    NotStarted(StartError),
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Death::Exited { pid, status } => write!(f, "(pid {pid}) exited with status {status}"),
            Death::Killed { pid, signal } => write!(f, "(pid {pid}) was killed by {signal}"),
            Death::NotStarted(e) => write!(f, "could not be started again ({e})"),
        }
    }
}

/// A child never got ready, life after life: its setup is broken, and the master stops.
#[derive(Debug)]
pub struct GaveUp {
    pub name: String,
    pub last: Death,
    pub lives: u32,
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}; it never got ready in its last {} lives, so the fault is in its setup: \
             giving up",
            self.name, self.last, self.lives
        )
    }
}

impl std::error::Error for GaveUp {}

/// Why the master ends a child's channel (and the child with it).
#[derive(Debug)]
pub enum ChannelEnd {
    /// The child closed it: it is exiting, SIGCHLD follows.
    Closed,
    /// It did not decode, or came with the wrong descriptors.
    Broken(ChannelError),
    /// A message the child's role may not send to the master.
    OutOfPlace(OutOfPlace),
    /// A worker spoke of another worker's link.
    NotItsLink { worker: u32 },
    /// The prober added a server it had no business adding.
    Untrusted(UntrustedServer),
}

impl fmt::Display for ChannelEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelEnd::Closed => f.write_str("closed its channel"),
            ChannelEnd::Broken(e) => e.fmt(f),
            ChannelEnd::OutOfPlace(e) => e.fmt(f),
            ChannelEnd::NotItsLink { worker } => {
                write!(f, "LinkLost of worker {worker}'s link, not its own")
            }
            ChannelEnd::Untrusted(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_words_of_a_death_and_of_giving_up() {
        let pid = Pid::from_raw(42);
        let killed = Death::Killed {
            pid,
            signal: Signal::SIGSYS,
        };
        assert_eq!(killed.to_string(), "(pid 42) was killed by SIGSYS");
        let gave_up = GaveUp {
            name: "worker/0".into(),
            last: Death::NotStarted(StartError::Spawn(io::Error::other("no binary"))),
            lives: 5,
        };
        let text = gave_up.to_string();
        assert!(
            text.starts_with("worker/0 could not be started again (no binary); it never"),
            "{text}"
        );
        assert!(text.ends_with("in its last 5 lives, so the fault is in its setup: giving up"));
    }
}
