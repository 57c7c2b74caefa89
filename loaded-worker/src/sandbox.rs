//! The worker's side of the seccomp test: its allow-list is in the proc table
//! (loaded-proto's `roles/worker.rs`), installed as the last step of its jail.

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
