//! Nonblocking TCP connects to many servers at once, all bounded by one timeout: a dead
//! server must not delay the verdict on the others.

use super::deadline::poll_timeout;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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

/// One outcome per target, in the targets' order. Each connection is closed as soon as it
/// is established: reaching `accept`'s queue is all the check asks of the server.
pub fn connect_all(targets: &[SocketAddr], timeout: Duration) -> Vec<ConnectOutcome> {
    let deadline = Instant::now() + timeout;
    let mut outcomes = vec![ConnectOutcome::TimedOut; targets.len()];
    let mut pending: Vec<(usize, OwnedFd)> = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        match start_connect(*target) {
            Ok(Some(fd)) => pending.push((index, fd)),
            Ok(None) => outcomes[index] = ConnectOutcome::Connected,
            Err(errno) => outcomes[index] = ConnectOutcome::from_errno(errno),
        }
    }

    while !pending.is_empty() {
        let Some(timeout) = poll_timeout(deadline) else {
            break;
        };
        let mut fds: Vec<PollFd> = pending
            .iter()
            .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLOUT))
            .collect();
        if let Err(errno) = poll(&mut fds, timeout) {
            if errno == Errno::EINTR {
                continue;
            }
            for (index, _) in pending.drain(..) {
                outcomes[index] = ConnectOutcome::Failed(format!("poll: {}", errno.desc()));
            }
            break;
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(true)).collect();
        drop(fds);
        let mut ready = ready.into_iter();
        // Dropping a finished entry closes its socket right away.
        pending.retain(|(index, fd)| {
            if !ready.next().unwrap_or(false) {
                return true;
            }
            outcomes[*index] = finished_connect(fd);
            false
        });
    }
    outcomes
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
