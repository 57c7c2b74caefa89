//! The prober's side of the seccomp test: its allow-list is in the proc table
//! (loaded-proto's `roles/prober.rs`), installed as the last step of its jail.

/// Only with the feature `seccomp-test`: what the prober does on TrySyscallForTest. Opening
/// a file is what the prober must never do.
#[cfg(feature = "seccomp-test")]
pub fn try_forbidden_syscall() {
    log::warn!("TrySyscallForTest: calling openat(), which must kill the prober");
    // SAFETY: a NUL-terminated path; the result is closed if it ever succeeds.
    let fd = unsafe { libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    log::error!("open() was allowed (fd {fd}): the seccomp filter is not live");
    if fd >= 0 {
        // SAFETY: fd is ours and used nowhere else.
        unsafe { libc::close(fd) };
    }
}
