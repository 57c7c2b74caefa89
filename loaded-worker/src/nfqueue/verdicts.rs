//! Sending the verdicts of a burst in one sendmsg. Netlink processes every message of a send
//! in order, so the verdicts go in the order their packets came (the kernel looks each id up
//! in its list of queued packets). A rewritten packet's bytes are not copied: an iovec
//! points at them in the burst's receive buffer.

use super::burst::Burst;
use super::wire::{align, VerdictSpec, VERDICT_HEADER_MAX};
use nix::sys::socket::{sendmsg, MsgFlags, NetlinkAddr};
use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};

const PADDING: [u8; 3] = [0; 3];

/// One packet's verdict, with where its replacement bytes are in the burst.
#[derive(Clone, Debug)]
struct Pending {
    header: [u8; VERDICT_HEADER_MAX],
    header_len: usize,
    /// The datagram of the burst and the range in it that replaces the packet.
    payload: Option<(usize, Range<usize>)>,
    message_len: usize,
}

pub struct Verdicts {
    pending: Vec<Pending>,
    /// The most bytes one sendmsg may carry: the kernel refuses a netlink send larger than
    /// the socket's send buffer (EMSGSIZE).
    send_limit: usize,
}

impl Verdicts {
    pub fn new(send_limit: usize) -> Verdicts {
        Verdicts {
            pending: Vec::with_capacity(super::burst::BURST),
            send_limit: send_limit.max(64 * 1024),
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Adds a verdict. `payload`: the bytes of datagram `.0` of the burst, in range `.1`,
    /// replace the packet.
    pub fn push(&mut self, spec: VerdictSpec, payload: Option<(usize, Range<usize>)>) {
        debug_assert_eq!(
            spec.payload_len,
            payload.as_ref().map(|(_, range)| range.len())
        );
        let mut header = [0u8; VERDICT_HEADER_MAX];
        let header_len = spec.encode_header(&mut header);
        self.pending.push(Pending {
            header,
            header_len,
            payload,
            message_len: spec.message_len(),
        });
    }

    /// Sends every pending verdict, in as few sends as the send buffer allows. On an error
    /// the rest is not tried: the caller ends the queue.
    pub fn send(&mut self, socket: BorrowedFd<'_>, burst: &Burst) -> io::Result<()> {
        self.send_to(socket, burst, Some(&NetlinkAddr::new(0, 0)))
    }

    /// `send`, to `destination` (the kernel; None for a connected socket in tests).
    fn send_to(
        &mut self,
        socket: BorrowedFd<'_>,
        burst: &Burst,
        destination: Option<&NetlinkAddr>,
    ) -> io::Result<()> {
        let mut start = 0;
        let mut result = Ok(());
        while start < self.pending.len() && result.is_ok() {
            let mut end = start;
            let mut bytes = 0;
            while end < self.pending.len()
                && (end == start || bytes + self.pending[end].message_len <= self.send_limit)
            {
                bytes += self.pending[end].message_len;
                end += 1;
            }
            result = send_messages(socket, &self.pending[start..end], burst, destination);
            start = end;
        }
        self.pending.clear();
        result
    }
}

fn send_messages(
    socket: BorrowedFd<'_>,
    pending: &[Pending],
    burst: &Burst,
    destination: Option<&NetlinkAddr>,
) -> io::Result<()> {
    let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(pending.len() * 3);
    for verdict in pending {
        iov.push(IoSlice::new(&verdict.header[..verdict.header_len]));
        if let Some((datagram, range)) = &verdict.payload {
            let (bytes, _) = burst.datagram(*datagram);
            let payload = &bytes[range.clone()];
            iov.push(IoSlice::new(payload));
            let pad = align(payload.len()) - payload.len();
            if pad > 0 {
                iov.push(IoSlice::new(&PADDING[..pad]));
            }
        }
    }
    // A send fails as a whole or not at all. Out of memory is worth a second try: the
    // packets would otherwise stay queued until the socket closes.
    let mut memory_retries = 3;
    loop {
        match sendmsg(
            socket.as_raw_fd(),
            &iov,
            &[],
            MsgFlags::empty(),
            destination,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ENOBUFS | nix::errno::Errno::ENOMEM) if memory_retries > 0 => {
                memory_retries -= 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfqueue::wire::Verdict;
    use nix::sys::socket::{recv, socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    fn spec(id: u32, payload_len: Option<usize>) -> VerdictSpec {
        VerdictSpec {
            queue: 1,
            id,
            verdict: Verdict::Accept,
            mark: None,
            payload_len,
        }
    }

    #[test]
    fn one_send_carries_every_verdict_with_its_payload_and_padding() {
        let mut burst = Burst::default();
        burst.fill_for_test(0, b"..abcde..");
        let mut verdicts = Verdicts::new(1 << 20);
        verdicts.push(spec(1, None), None);
        verdicts.push(spec(2, Some(5)), Some((0, 2..7)));
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::empty(),
        )
        .unwrap();
        verdicts.send_to(ours.as_fd(), &burst, None).expect("sent");
        let mut received = [0u8; 256];
        let len = recv(theirs.as_raw_fd(), &mut received, MsgFlags::empty()).unwrap();

        let mut expected = Vec::new();
        let mut header = [0u8; VERDICT_HEADER_MAX];
        let len1 = spec(1, None).encode_header(&mut header);
        expected.extend_from_slice(&header[..len1]);
        let len2 = spec(2, Some(5)).encode_header(&mut header);
        expected.extend_from_slice(&header[..len2]);
        expected.extend_from_slice(b"abcde\0\0\0");
        assert_eq!(&received[..len], &expected[..], "one datagram, in order");
        assert_eq!(verdicts.len(), 0, "sent verdicts are forgotten");
    }

    #[test]
    fn a_failed_send_is_reported_and_forgotten() {
        let burst = Burst::default();
        let mut verdicts = Verdicts::new(1 << 20);
        verdicts.push(spec(1, None), None);
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::empty(),
        )
        .unwrap();
        drop(theirs);
        assert!(verdicts.send_to(ours.as_fd(), &burst, None).is_err());
        assert_eq!(verdicts.len(), 0);
    }
}
