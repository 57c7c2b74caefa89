//! Nonblocking TCP connects to many servers at once, all bounded by one timeout: a dead
//! server must not delay the verdict on the others. `Connects` holds them in flight; the
//! prober's loop wakes when one finishes and looks, so it never waits on them.

#[cfg(test)]
use super::deadline::poll_timeout;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
#[cfg(test)]
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectOutcome {
    Connected,
    Refused,
    TimedOut,
    Failed(String),
}

impl ConnectOutcome {
    fn from_errno(errno: Errno) -> Self {
        match errno {
            Errno::ECONNREFUSED => ConnectOutcome::Refused,
            // The kernel gave up retransmitting the SYN before our own timeout did.
            Errno::ETIMEDOUT => ConnectOutcome::TimedOut,
            other => ConnectOutcome::Failed(other.desc().to_owned()),
        }
    }
}

/// Connects in flight. Each connection is closed as soon as it is established: reaching
/// `accept`'s queue is all the check asks of the server.
pub struct Connects {
    /// One per target, in the targets' order; `TimedOut` until known.
    outcomes: Vec<ConnectOutcome>,
    /// Target index and socket of the connects still in progress.
    pending: Vec<(usize, OwnedFd)>,
}

impl Connects {
    /// Starts a connect to every target; none waits.
    pub fn start(targets: &[SocketAddr]) -> Connects {
        let mut connects = Connects {
            outcomes: vec![ConnectOutcome::TimedOut; targets.len()],
            pending: Vec::new(),
        };
        for (index, target) in targets.iter().enumerate() {
            match start_connect(*target) {
                Ok(Some(fd)) => connects.pending.push((index, fd)),
                Ok(None) => connects.outcomes[index] = ConnectOutcome::Connected,
                Err(errno) => connects.outcomes[index] = ConnectOutcome::from_errno(errno),
            }
        }
        connects
    }

    /// The sockets still connecting, for the caller's poll (writable when done).
    pub fn pending_fds(&self) -> Vec<RawFd> {
        self.pending.iter().map(|(_, fd)| fd.as_raw_fd()).collect()
    }

    pub fn complete(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes in the connects that finished, without waiting.
    pub fn collect(&mut self) {
        self.wait_for_any(PollTimeout::ZERO);
    }

    /// Polls the pending sockets once, up to `timeout`, and takes in those that finished.
    fn wait_for_any(&mut self, timeout: PollTimeout) {
        if self.pending.is_empty() {
            return;
        }
        let mut fds: Vec<PollFd> = self
            .pending
            .iter()
            .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLOUT))
            .collect();
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return,
            Err(errno) => {
                for (index, _) in self.pending.drain(..) {
                    self.outcomes[index] =
                        ConnectOutcome::Failed(format!("poll: {}", errno.desc()));
                }
                return;
            }
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(true)).collect();
        drop(fds);
        let mut ready = ready.into_iter();
        let outcomes = &mut self.outcomes;
        // Dropping a finished entry closes its socket right away.
        self.pending.retain(|(index, fd)| {
            if !ready.next().unwrap_or(false) {
                return true;
            }
            outcomes[*index] = finished_connect(fd);
            false
        });
    }

    /// One outcome per target, in the targets' order: those still connecting timed out.
    pub fn outcomes(self) -> Vec<ConnectOutcome> {
        self.outcomes
    }
}

/// `Connects` waited out in place, up to `timeout` (for tests: the prober's round waits in
/// its own loop).
#[cfg(test)]
pub fn connect_all(targets: &[SocketAddr], timeout: Duration) -> Vec<ConnectOutcome> {
    let deadline = Instant::now() + timeout;
    let mut connects = Connects::start(targets);
    while !connects.complete() {
        let Some(timeout) = poll_timeout(deadline) else {
            break;
        };
        connects.wait_for_any(timeout);
    }
    connects.outcomes()
}

/// `Ok(None)`: connected at once (possible on loopback); `Ok(Some)`: in progress.
fn start_connect(target: SocketAddr) -> Result<Option<OwnedFd>, Errno> {
    let family = match target {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None)?;
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(target)) {
        Ok(()) => Ok(None),
        // EINTR: the connect goes on in the background, as with EINPROGRESS.
        Err(Errno::EINPROGRESS | Errno::EINTR) => Ok(Some(fd)),
        Err(errno) => Err(errno),
    }
}

fn finished_connect(fd: &OwnedFd) -> ConnectOutcome {
    match getsockopt(fd, sockopt::SocketError) {
        Ok(0) => ConnectOutcome::Connected,
        Ok(code) => ConnectOutcome::from_errno(Errno::from_raw(code)),
        Err(errno) => ConnectOutcome::Failed(format!("SO_ERROR: {}", errno.desc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert_eq!(
            ConnectOutcome::from_errno(Errno::ECONNREFUSED),
            ConnectOutcome::Refused
        );
        assert_eq!(
            ConnectOutcome::from_errno(Errno::ETIMEDOUT),
            ConnectOutcome::TimedOut
        );
        assert_eq!(
            ConnectOutcome::from_errno(Errno::EHOSTUNREACH),
            ConnectOutcome::Failed("No route to host".to_owned())
        );
    }

    #[test]
    fn no_targets_no_waiting() {
        let start = Instant::now();
        assert!(connect_all(&[], Duration::from_secs(5)).is_empty());
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
