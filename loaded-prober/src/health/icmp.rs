//! Raw ICMP/ICMPv6 echo sockets (the one thing CAP_NET_RAW is kept for) and one round of
//! echoes over them: sent at once, the replies collected whenever the prober's loop finds
//! the sockets readable (`Echoes`), so that the loop never waits on them.

use super::deadline::poll_timeout;
use super::echo_packet::{
    echo_request_v4, echo_request_v6, parse_reply_v4, parse_reply_v6, EchoTag,
};
use loaded_proto::wire::icmpv6;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{
    recvfrom, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
    SockType, SockaddrIn6, SockaddrStorage,
};
use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// From <linux/icmp.h> and <linux/icmpv6.h>; libc does not export them.
const ICMP_FILTER: libc::c_int = 1;
const ICMP6_FILTER: libc::c_int = 1;
const ICMP_ECHOREPLY: u32 = 0;

pub struct IcmpSocket {
    fd: OwnedFd,
    v6: bool,
}

impl IcmpSocket {
    pub fn open_v4() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Icmp,
        )?;
        // Without it the kernel refuses to send to the broadcast address (EACCES).
        setsockopt(&fd, sockopt::Broadcast, &true)?;
        // Every ICMP message reaching the host would be copied to us otherwise (bit set =
        // dropped); the filter spares us waking for errors and other hosts' requests.
        let pass_only_echo_replies: u32 = !(1 << ICMP_ECHOREPLY);
        set_option(&fd, libc::SOL_RAW, ICMP_FILTER, &pass_only_echo_replies)?;
        Ok(IcmpSocket { fd, v6: false })
    }

    /// `multicast_interface`: where multicast echoes leave when the destination names none.
    /// `source`: the address to send from. Hosts answer a multicast echo from the address
    /// that best matches our source: from a link-local source we would learn only their
    /// link-local addresses, never the ones in RIP6 that can be balanced to.
    pub fn open_v6(multicast_interface: Option<u32>, source: Option<Ipv6Addr>) -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Inet6,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::IcmpV6,
        )?;
        // struct icmp6_filter: 256 bits, one per type, set = blocked.
        let mut filter = [u32::MAX; 8];
        let reply = usize::from(icmpv6::message::ECHO_REPLY);
        filter[reply / 32] &= !(1 << (reply % 32));
        set_option(&fd, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
        if let Some(index) = multicast_interface {
            let index = libc::c_int::try_from(index).map_err(io::Error::other)?;
            set_option(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)?;
        }
        if let Some(source) = source {
            let addr = SockaddrIn6::from(std::net::SocketAddrV6::new(source, 0, 0, 0));
            nix::sys::socket::bind(fd.as_raw_fd(), &addr)?;
        }
        Ok(IcmpSocket { fd, v6: true })
    }

    /// Sends one echo request; waits (until `deadline`) only if the send buffer is full.
    pub fn send(&self, dest: SocketAddr, tag: &EchoTag, deadline: Instant) -> io::Result<()> {
        let (packet, addr) = match dest {
            SocketAddr::V4(_) if !self.v6 => (echo_request_v4(tag), SockaddrStorage::from(dest)),
            SocketAddr::V6(_) if self.v6 => (echo_request_v6(tag), SockaddrStorage::from(dest)),
            _ => return Err(io::Error::other("address family does not match the socket")),
        };
        loop {
            match sendto(self.fd.as_raw_fd(), &packet, &addr, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => self.wait(PollFlags::POLLOUT, deadline)?,
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// For the prober's poll loop: it wakes when replies arrive.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn wait(&self, events: PollFlags, deadline: Instant) -> io::Result<()> {
        let timeout = poll_timeout(deadline).ok_or(io::ErrorKind::TimedOut)?;
        let mut fds = [PollFd::new(self.fd.as_fd(), events)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Reads every queued reply and hands over those that parse; stops when none is left.
    pub fn drain(&self, mut on_reply: impl FnMut(SocketAddr, EchoTag)) -> io::Result<()> {
        // Ours are 36 bytes at most; a longer foreign reply is cut short and then rejected.
        let mut buf = [0u8; 256];
        loop {
            let (len, from) = match recvfrom::<SockaddrStorage>(self.fd.as_raw_fd(), &mut buf) {
                Ok(received) => received,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(errno) => return Err(errno.into()),
            };
            let datagram = &buf[..len];
            let parsed = if self.v6 {
                parse_reply_v6(datagram)
            } else {
                parse_reply_v4(datagram)
            };
            if let (Some(tag), Some(from)) = (parsed, from.as_ref().and_then(socket_addr)) {
                on_reply(from, tag);
            }
        }
    }
}

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), 0)));
    }
    // Keeps the scope id: a link-local responder can only be reached through it.
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(std::net::SocketAddrV6::from(*v6)))
}

/// setsockopt for the options nix has no wrapper for.
fn set_option<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `value` points to `len` readable bytes for the duration of the call, and the
    // kernel only reads them; `fd` is an open socket we own.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoTarget {
    pub dest: SocketAddr,
    /// A broadcast or multicast address: any number of hosts may answer, so the round
    /// listens until its deadline instead of stopping once every target has answered.
    pub group: bool,
}

#[derive(Debug, Default)]
pub struct EchoOutcome {
    /// Who answered, each once, in order of arrival; port 0.
    pub replies: Vec<SocketAddr>,
    /// Targets the request could not even be sent to.
    pub send_errors: Vec<(SocketAddr, io::Error)>,
}

/// The echoes of one round in flight: sent without waiting, their replies collected by
/// `collect` whenever the caller finds a socket readable (or its deadline came).
pub struct Echoes {
    tag: EchoTag,
    /// Unicast targets that have not answered yet.
    awaited: HashSet<IpAddr>,
    /// A group target was sent to: listen until the deadline.
    listen_to_deadline: bool,
    seen: HashSet<IpAddr>,
    outcome: EchoOutcome,
}

impl Echoes {
    /// Sends `tag` to every target. A send buffer that is full fails that target at once
    /// (its echo counts as a send error): waiting here would hold up the caller's loop.
    /// Replies left from before are read and dropped first, so that the sockets' readiness
    /// reports only this round's.
    pub fn send(
        v4: Option<&IcmpSocket>,
        v6: Option<&IcmpSocket>,
        targets: &[EchoTarget],
        tag: EchoTag,
    ) -> Echoes {
        for socket in [v4, v6].into_iter().flatten() {
            let _ = socket.drain(|_, _| {});
        }
        let mut echoes = Echoes {
            tag,
            awaited: HashSet::new(),
            listen_to_deadline: false,
            seen: HashSet::new(),
            outcome: EchoOutcome::default(),
        };
        let now = Instant::now();
        for target in targets {
            let socket = if target.dest.is_ipv4() { v4 } else { v6 };
            let sent = match socket {
                Some(socket) => socket.send(target.dest, &tag, now),
                None => Err(io::Error::other("no socket for this address family")),
            };
            match sent {
                Err(error) => echoes.outcome.send_errors.push((target.dest, error)),
                Ok(()) if target.group => echoes.listen_to_deadline = true,
                Ok(()) => {
                    echoes.awaited.insert(target.dest.ip());
                }
            }
        }
        echoes
    }

    /// Reads every reply queued on `sockets` and keeps those that carry our tag.
    pub fn collect(&mut self, sockets: &[&IcmpSocket]) {
        for socket in sockets {
            // A receive error (rare: ENOMEM) loses only this batch; others may still come.
            let _ = socket.drain(|from, reply| {
                if reply == self.tag && self.seen.insert(from.ip()) {
                    self.awaited.remove(&from.ip());
                    self.outcome.replies.push(from);
                }
            });
        }
    }

    /// Every unicast target answered and no group was asked: no need to wait longer.
    pub fn complete(&self) -> bool {
        !self.listen_to_deadline && self.awaited.is_empty()
    }

    pub fn outcome(self) -> EchoOutcome {
        self.outcome
    }
}

/// Sends `tag` to every target and collects the replies that carry it until `deadline`,
/// waiting (for tests: the prober's round waits in its own loop, see `Echoes`).
#[cfg(test)]
pub fn echo_round(
    v4: Option<&IcmpSocket>,
    v6: Option<&IcmpSocket>,
    targets: &[EchoTarget],
    tag: EchoTag,
    deadline: Instant,
) -> EchoOutcome {
    let mut outcome = EchoOutcome::default();
    let mut awaited: HashSet<IpAddr> = HashSet::new();
    let mut listen_to_deadline = false;
    for target in targets {
        let socket = if target.dest.is_ipv4() { v4 } else { v6 };
        let sent = match socket {
            Some(socket) => socket.send(target.dest, &tag, deadline),
            None => Err(io::Error::other("no socket for this address family")),
        };
        match sent {
            Err(error) => outcome.send_errors.push((target.dest, error)),
            Ok(()) if target.group => listen_to_deadline = true,
            Ok(()) => {
                awaited.insert(target.dest.ip());
            }
        }
    }

    let sockets: Vec<&IcmpSocket> = [v4, v6].into_iter().flatten().collect();
    outcome.replies = collect_replies(&sockets, tag, awaited, listen_to_deadline, deadline);
    outcome
}

/// Replies carrying `tag`, until `deadline` or, unless `listen_to_deadline`, until every
/// address in `awaited` has answered.
#[cfg(test)]
pub fn collect_replies(
    sockets: &[&IcmpSocket],
    tag: EchoTag,
    mut awaited: HashSet<IpAddr>,
    listen_to_deadline: bool,
    deadline: Instant,
) -> Vec<SocketAddr> {
    let mut replies = Vec::new();
    let mut seen = HashSet::new();
    while listen_to_deadline || !awaited.is_empty() {
        let Some(timeout) = poll_timeout(deadline) else {
            break;
        };
        let mut fds: Vec<PollFd> = sockets
            .iter()
            .map(|socket| PollFd::new(socket.fd.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            // Cannot happen with valid descriptors; waiting on is all that is left to do.
            Err(_) => break,
        }
        let readable: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(true)).collect();
        for (socket, _) in sockets.iter().zip(readable).filter(|(_, ready)| *ready) {
            // A receive error (rare: ENOMEM) loses only this batch; others may still come.
            let _ = socket.drain(|from, reply| {
                if reply == tag && seen.insert(from.ip()) {
                    awaited.remove(&from.ip());
                    replies.push(from);
                }
            });
        }
    }
    replies
}
