//! The worker's side of an NFQUEUE socket (bound by the master, received by SCM_RIGHTS):
//! packets are read in bursts and their verdicts sent back in one system call per burst.
//!
//! The nfq crate reads one packet per recv and sends one verdict per sendto; at a few
//! hundred thousand packets a second those system calls, and the scheduling they cause, are
//! nearly the whole cost (a profile put our own parsing and rewrite under 3%), so this
//! module talks netlink itself. The master still uses nfq to open, bind and configure the
//! queue.

mod burst;
mod verdicts;
pub mod wire;

pub use burst::{BURST, DATAGRAM_BUFFER_LEN};
pub use wire::{QueuedPacket, Verdict};

use burst::{Burst, ReceiveError};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use verdicts::Verdicts;
use wire::VerdictSpec;

/// What the datapath decided for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// A mark for the packet (kernel-assisted forwarding names the server with it).
    pub mark: Option<u32>,
    /// The packet's bytes were changed in place and must go back with the verdict.
    pub rewritten: bool,
}

impl Decision {
    pub const ACCEPT: Decision = Decision {
        verdict: Verdict::Accept,
        mark: None,
        rewritten: false,
    };
    pub const DROP: Decision = Decision {
        verdict: Verdict::Drop,
        mark: None,
        rewritten: false,
    };
}

/// What one burst did, for the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstSummary {
    /// Datagrams read (packets and kernel messages).
    pub datagrams: usize,
    pub packets: usize,
    /// Verdicts the kernel refused (ENOENT: it dropped the packet already, e.g. because an
    /// interface went down while we held it).
    pub verdicts_refused: u64,
    /// Datagrams we could not read as netlink messages (dropped when an id was readable).
    pub unreadable: u64,
    /// Times the kernel could not deliver to us because our receive buffer was full.
    pub overruns: u64,
}

#[derive(Debug)]
pub enum QueueError {
    Receive(io::Error),
    /// The kernel refuses our verdicts with EPERM: the worker lacks CAP_NET_ADMIN, and every
    /// packet would stay queued.
    VerdictsNotPermitted,
    /// Verdicts could not be sent, even after retries. Their packets would stay queued for
    /// as long as the socket lives (the kernel never times them out), so the socket must
    /// go: the kernel drops them when it closes, and the master binds a fresh one for the
    /// worker it restarts.
    VerdictsUnsent {
        count: usize,
        error: io::Error,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Receive(e) => write!(f, "NFQUEUE receive: {e}"),
            QueueError::VerdictsNotPermitted => write!(
                f,
                "the kernel refuses our verdicts (EPERM): CAP_NET_ADMIN missing?"
            ),
            QueueError::VerdictsUnsent { count, error } => write!(
                f,
                "cannot send {count} verdicts ({error}): ending the queue so that the kernel \
                 drops their packets"
            ),
        }
    }
}

impl std::error::Error for QueueError {}

pub struct QueueSocket {
    socket: OwnedFd,
    queue: u16,
    burst: Burst,
    verdicts: Verdicts,
    /// The packets of one datagram, kept to reuse its allocation.
    scratch: Vec<QueuedPacket>,
}

impl QueueSocket {
    /// Wraps a netlink socket bound to `queue` (with copy mode packet) by the master.
    pub fn new(socket: OwnedFd, queue: u16) -> io::Result<QueueSocket> {
        // The master sized the send buffer for a burst of large packets; one send must stay
        // below it, with room for the kernel's own overhead.
        let send_buffer = nix::sys::socket::getsockopt(&socket, nix::sys::socket::sockopt::SndBuf)
            .map_err(io::Error::from)?;
        Ok(QueueSocket {
            socket,
            queue,
            burst: Burst::default(),
            verdicts: Verdicts::new(send_buffer.saturating_sub(4096)),
            scratch: Vec::with_capacity(4),
        })
    }

    /// Reads one burst of waiting packets, asks `decide` about each (it may rewrite the
    /// packet's bytes in place, never their length), and sends every verdict in one go.
    /// `Ok(summary)` with `datagrams == 0`: nothing was waiting.
    pub fn serve_burst(
        &mut self,
        mut decide: impl FnMut(&mut [u8], &QueuedPacket) -> Decision,
    ) -> Result<BurstSummary, QueueError> {
        let mut summary = BurstSummary::default();
        match self.burst.receive(self.socket.as_fd()) {
            Ok(count) => summary.datagrams = count,
            Err(ReceiveError::Empty) => return Ok(summary),
            Err(ReceiveError::Overrun) => {
                summary.overruns = 1;
                return Ok(summary);
            }
            Err(ReceiveError::Other(e)) => return Err(QueueError::Receive(e)),
        }
        let mut not_permitted = false;
        for datagram in 0..self.burst.len() {
            let (bytes, truncated) = self.burst.datagram(datagram);
            let mut packets = std::mem::take(&mut self.scratch);
            for message in wire::messages(bytes) {
                let Ok((offset, message)) = message else {
                    summary.unreadable += 1;
                    break;
                };
                if message.message_type() == wire::nlmsg::ERROR {
                    match message.error_code() {
                        Ok(0) => {}
                        Ok(libc::EPERM) => not_permitted = true,
                        _ => summary.verdicts_refused += 1,
                    }
                    continue;
                }
                match message.queued_packet() {
                    None => {}
                    Some(Ok(mut packet)) => {
                        // From the message's start to the datagram's.
                        packet.payload = offset + packet.payload.start..offset + packet.payload.end;
                        packets.push(packet)
                    }
                    Some(Err(_)) => summary.unreadable += 1,
                }
            }
            for packet in packets.drain(..) {
                summary.packets += 1;
                let decision = if truncated || !packet.is_whole() {
                    // A partial copy cannot be rewritten: returning it would cut the
                    // packet short. (The copy range covers any packet the kernel queues,
                    // so this takes a datagram larger than our buffer.)
                    summary.unreadable += 1;
                    Decision::DROP
                } else {
                    let payload = packet.payload.clone();
                    decide(&mut self.burst.datagram_mut(datagram)[payload], &packet)
                };
                let payload = (decision.rewritten && decision.verdict == Verdict::Accept)
                    .then(|| (datagram, packet.payload.clone()));
                self.verdicts.push(
                    VerdictSpec {
                        queue: self.queue,
                        id: packet.id,
                        verdict: decision.verdict,
                        mark: decision.mark,
                        payload_len: payload.as_ref().map(|(_, range)| range.len()),
                    },
                    payload,
                );
            }
            self.scratch = packets;
        }
        let pending = self.verdicts.len();
        if let Err(error) = self.verdicts.send(self.socket.as_fd(), &self.burst) {
            return Err(QueueError::VerdictsUnsent {
                count: pending,
                error,
            });
        }
        if not_permitted {
            return Err(QueueError::VerdictsNotPermitted);
        }
        Ok(summary)
    }
}

impl AsRawFd for QueueSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for QueueSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
