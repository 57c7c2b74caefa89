//! Opening and binding the NFQUEUE sockets, which needs CAP_NET_ADMIN: the master does it
//! for each worker and hands the socket over.

use std::fmt;

/// The kernel clamps the copy range to 65531; a rewrite needs the whole packet, because a
/// verdict payload replaces the packet (a shorter one would truncate it).
const COPY_RANGE: u16 = 0xffff;

/// Room for bursts between two reads of the worker (SO_RCVBUFFORCE ignores rmem_max).
const RECEIVE_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// The worker sends a burst's verdicts in one message, rewritten packets included: up to 64
/// whole GSO packets of 64 KiB. A netlink send larger than the send buffer fails, so the
/// buffer holds a full burst (the kernel doubles the value for its bookkeeping).
const SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct QueueError {
    pub queue: u16,
    pub step: &'static str,
    pub source: std::io::Error,
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NFQUEUE {}: cannot {}: {}",
            self.queue, self.step, self.source
        )?;
        if self.step == "bind" && self.source.raw_os_error() == Some(libc::EBUSY) {
            write!(
                f,
                " (another program, perhaps another loaded, is bound to it)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for QueueError {}

pub fn open(queue: u16, max_len: u32) -> Result<nfq::Queue, QueueError> {
    let err = |step| {
        move |source| QueueError {
            queue,
            step,
            source,
        }
    };
    let mut socket = nfq::Queue::open().map_err(err("open a netlink socket"))?;
    socket.bind(queue).map_err(err("bind"))?;
    socket
        .set_copy_range(queue, COPY_RANGE)
        .map_err(err("set the copy range"))?;
    socket
        .set_queue_max_len(queue, max_len)
        .map_err(err("set the queue length"))?;
    // Large TCP segments arrive whole instead of being cut to the MTU in front of us: one
    // verdict per 64 KiB instead of per 1500 bytes. Their checksums arrive incomplete; the
    // worker completes them when it rewrites.
    socket
        .set_recv_gso(queue, true)
        .map_err(err("ask for GSO packets whole"))?;
    // We want to know when the kernel drops packets because the worker fell behind: the
    // worker counts the ENOBUFS it then gets on its next receive (nfq turns them off).
    socket
        .set_recv_enobufs(true)
        .map_err(err("ask for overrun reports"))?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::RcvBufForce,
        &RECEIVE_BUFFER_BYTES,
    )
    .map_err(|e| err("size the receive buffer")(e.into()))?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::SndBufForce,
        &SEND_BUFFER_BYTES,
    )
    .map_err(|e| err("size the send buffer")(e.into()))?;
    Ok(socket)
}
