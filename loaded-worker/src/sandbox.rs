//! The worker's seccomp allow-list, installed as the last step of its jail (see
//! loaded-proto's `child` and `seccomp`). Any other call kills the process: in particular
//! socket, open/openat, execve, ptrace and kill are not here, so a worker taken over
//! through a packet keeps only the descriptors it holds (its NFQUEUE netlink socket, its
//! channel to the master, its link to the prober, the mapped flow table).
//!
//! Found with `strace -f` (the demo, with `-f`) and checked by the end-to-end tests, which
//! run every worker under it; the allocator's, a panic's and abort's calls from their code.

use loaded_proto::seccomp::{self, Rules};

/// Calls with any arguments.
#[rustfmt::skip]
const ALLOWED: &[libc::c_long] = &[
    // The NFQUEUE socket: packets in bursts, verdicts out; the channel and the prober
    // link (SOCK_SEQPACKET, descriptors as SCM_RIGHTS).
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    // The send buffer size of the queue socket (QueueSocket::new); set_nonblocking.
    // No setsockopt: no netlink group or option can be changed once jailed.
    libc::SYS_getsockopt,
    libc::SYS_fcntl,
    // mio.
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    // Time (the vDSO answers it without a call, mostly). No sleep: the loop waits in epoll.
    libc::SYS_clock_gettime,
    // The allocator; mapping the shared flow table.
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // The flow table's bucket locks spin with sched_yield; std's locks park on futex.
    libc::SYS_futex,
    libc::SYS_sched_yield,
    // HashMap's random keys.
    libc::SYS_getrandom,
    // Closing descriptors (a replaced prober link); the flow table memfd's size.
    libc::SYS_close,
    libc::SYS_fstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_newfstatat,
    // A runtime's last resort message to stderr (/dev/null).
    libc::SYS_write,
    // Rust's runtime: signal return, the stack-overflow handler's alternate stack, abort.
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    // The end.
    libc::SYS_exit,
    libc::SYS_exit_group,
];

pub fn rules() -> Rules {
    let mut rules = seccomp::allow(ALLOWED);
    seccomp::tgkill_self(&mut rules);
    rules
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
