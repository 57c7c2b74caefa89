//! Receiving queued packets in bursts: one recvmmsg reads as many datagrams as are waiting,
//! up to the burst size, each into a buffer of its own, where the rewrite then works in
//! place and from where the verdicts send the rewritten bytes back.

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Datagrams read per system call, and so verdicts sent per system call at most.
pub const BURST: usize = 64;

/// Room for one datagram: a whole packet (the kernel clamps the copy range to 65531 bytes,
/// GSO packets included) and the attributes before it.
pub const DATAGRAM_BUFFER_LEN: usize = 65536 + 4096;

/// Why a receive returned nothing.
#[derive(Debug)]
pub enum ReceiveError {
    /// Nothing is waiting.
    Empty,
    /// The kernel could not deliver some messages to us (our receive buffer was full): the
    /// packets they carried are lost to us; the kernel counts them per queue.
    Overrun,
    Other(io::Error),
}

pub struct Burst {
    buffers: Vec<Box<[u8]>>,
    /// Bytes received in each buffer; 0 past `count`.
    lengths: [usize; BURST],
    /// Datagrams that did not fit their buffer (MSG_TRUNC).
    truncated: [bool; BURST],
    count: usize,
    headers: MultiHeaders<()>,
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            buffers: (0..BURST)
                .map(|_| vec![0u8; DATAGRAM_BUFFER_LEN].into_boxed_slice())
                .collect(),
            lengths: [0; BURST],
            truncated: [false; BURST],
            count: 0,
            headers: MultiHeaders::preallocate(BURST, None),
        }
    }
}

impl Burst {
    /// Reads the datagrams waiting on `socket`, without blocking; returns how many.
    pub fn receive(&mut self, socket: BorrowedFd<'_>) -> Result<usize, ReceiveError> {
        loop {
            match self.receive_once(socket) {
                Ok(count) => return Ok(count),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Err(ReceiveError::Empty),
                Err(nix::errno::Errno::ENOBUFS) => return Err(ReceiveError::Overrun),
                Err(e) => return Err(ReceiveError::Other(e.into())),
            }
        }
    }

    fn receive_once(&mut self, socket: BorrowedFd<'_>) -> nix::Result<usize> {
        self.count = 0;
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for (i, message) in received.enumerate() {
            self.lengths[i] = message.bytes;
            self.truncated[i] = message.flags.contains(MsgFlags::MSG_TRUNC);
            self.count = i + 1;
        }
        Ok(self.count)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// The `i`-th datagram received, and whether the kernel had more bytes for it than fit.
    pub fn datagram(&self, i: usize) -> (&[u8], bool) {
        let len = self.lengths[i].min(DATAGRAM_BUFFER_LEN);
        (&self.buffers[i][..len], self.truncated[i])
    }

    /// Puts `bytes` in buffer `i` as if received.
    #[cfg(test)]
    pub fn fill_for_test(&mut self, i: usize, bytes: &[u8]) {
        self.buffers[i][..bytes.len()].copy_from_slice(bytes);
        self.lengths[i] = bytes.len();
        self.count = self.count.max(i + 1);
    }

    pub fn datagram_mut(&mut self, i: usize) -> &mut [u8] {
        let len = self.lengths[i].min(DATAGRAM_BUFFER_LEN);
        &mut self.buffers[i][..len]
    }
}
