//! The worker's seccomp allow-list, installed as the last step of its jail (see
//! loaded-proto's `child` and `seccomp`). Any other call kills the process: in particular
//! socket, open/openat, execve, ptrace and kill are not here, so a worker taken over
//! through a packet keeps only the descriptors it holds (its NFQUEUE netlink socket, its
//! channel to the master, its link to the prober, the mapped flow table).
//!
//! Found with `strace -f` (the demo, with `-f`) and checked by the end-to-end tests, which
//! run every worker under it; the allocator's, a panic's and abort's calls from their code.

use loaded_proto::seccomp::{self, Rules};

/// Calls with any arguments, besides what every child calls (`seccomp::EVERY_CHILD`: the
/// channel, mio, the allocator, the runtime).
#[rustfmt::skip]
const ALLOWED: &[libc::c_long] = &[
    // The NFQUEUE socket: packets in bursts (verdicts go out with sendmsg, as on the
    // channel and the prober link).
    libc::SYS_recvmmsg,
    // The send buffer size of the queue socket (QueueSocket::new).
    // No setsockopt: no netlink group or option can be changed once jailed.
    libc::SYS_getsockopt,
    // The flow table's bucket locks spin with sched_yield.
    libc::SYS_sched_yield,
    // The flow table memfd's size.
    libc::SYS_fstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_newfstatat,
];

pub fn rules() -> Rules {
    seccomp::allow_for_child(ALLOWED)
}

/// Only with the feature `seccomp-test`: what the worker does on TrySyscallForTest. A new
/// socket is what a worker must never get again once jailed.
#[cfg(feature = "seccomp-test")]
pub fn try_forbidden_syscall() {
    log::warn!("TrySyscallForTest: calling socket(), which must kill this worker");
    // SAFETY: socket() takes no memory; its result is closed if it ever succeeds.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    log::error!("socket() was allowed (fd {fd}): the seccomp filter is not live");
    if fd >= 0 {
        // SAFETY: fd is ours and used nowhere else.
        unsafe { libc::close(fd) };
    }
}
