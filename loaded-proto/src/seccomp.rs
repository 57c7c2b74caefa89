//! The last step of every child's jail: a seccomp allow-list. Each role's own list is in
//! the proc table (`roles/worker.rs`, `roles/prober.rs`); this module holds what
//! every child needs whatever its role (the Rust runtime, the allocator, mio, its channel),
//! turns the lists into a BPF program and installs it.
//!
//! Any system call that is not on the list kills the whole process
//! (SECCOMP_RET_KILL_PROCESS): the master sees it die of SIGSYS, logs it and restarts it.
//! No call is answered with EPERM instead: a child that tries something its list does not
//! hold is either buggy or compromised, and neither should go on.

use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};
use std::collections::BTreeMap;
use std::fmt;

/// System call number -> the argument rules of which one must match (none: any arguments).
pub type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// What every child calls, whatever its role.
#[rustfmt::skip]
pub const EVERY_CHILD: &[libc::c_long] = &[
    // The channel to the master (SOCK_SEQPACKET, descriptors as SCM_RIGHTS), made
    // nonblocking with fcntl.
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_fcntl,
    // mio.
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    // Time (the vDSO answers it without a call, mostly). No sleep: loops wait in epoll.
    libc::SYS_clock_gettime,
    // The allocator (and, in a worker, mapping the shared flow table).
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // std's locks park on futex.
    libc::SYS_futex,
    // HashMap's random keys.
    libc::SYS_getrandom,
    libc::SYS_close,
    // A runtime's last resort message to stderr (/dev/null).
    libc::SYS_write,
    // Rust's runtime: signal return, the stack-overflow handler's alternate stack, abort
    // (with tgkill to itself, see `tgkill_self`).
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

/// Allows every call of `role` and of EVERY_CHILD with any arguments, and tgkill to this
/// process only.
pub fn allow_for_child(role: &[libc::c_long]) -> Rules {
    let mut rules = allow(EVERY_CHILD);
    rules.extend(allow(role));
    tgkill_self(&mut rules);
    rules
}

/// Allows every call of `list` with any arguments.
pub fn allow(list: &[libc::c_long]) -> Rules {
    list.iter().map(|&number| (number, Vec::new())).collect()
}

/// One rule: every `(argument index, mask, value)` must hold, `argument & mask == value`.
pub fn rule(conditions: &[(u8, u64, u64)]) -> SeccompRule {
    let conditions = conditions
        .iter()
        .map(|&(index, mask, value)| {
            SeccompCondition::new(
                index,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(mask),
                value,
            )
            .expect("argument index below 6")
        })
        .collect();
    SeccompRule::new(conditions).expect("at least one condition")
}

/// tgkill to this process only: what abort() does to raise SIGABRT (a panic in a child is
/// logged, then the process exits; an abort must still end it with its own signal).
pub fn tgkill_self(rules: &mut Rules) {
    let pid = std::process::id() as u64;
    rules.insert(libc::SYS_tgkill, vec![rule(&[(0, u64::MAX, pid)])]);
}

/// Why a child's allow-list could not be made or installed.
#[derive(Debug)]
pub enum SeccompError {
    /// seccompiler has no BPF for this machine's architecture.
    Architecture(BackendError),
    /// The rules do not make a filter (e.g. a call listed with conflicting rules).
    Filter(BackendError),
    /// The filter does not compile to BPF.
    Compile(BackendError),
    /// The kernel refused the program (prctl or seccomp failed).
    Install(seccompiler::Error),
}

impl fmt::Display for SeccompError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeccompError::Architecture(e) => write!(f, "seccomp: {e}"),
            SeccompError::Filter(e) => write!(f, "seccomp: {e}"),
            SeccompError::Compile(e) => write!(f, "seccomp: {e}"),
            SeccompError::Install(e) => write!(f, "cannot install seccomp filter: {e}"),
        }
    }
}

impl std::error::Error for SeccompError {}

/// Compiles `rules` for this machine's architecture; everything else kills the process.
pub fn compile(rules: Rules) -> Result<BpfProgram, SeccompError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(SeccompError::Architecture)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(SeccompError::Filter)?;
    filter.try_into().map_err(SeccompError::Compile)
}

/// Installs `program` on the calling thread (the child has no other). Needs no_new_privs.
pub fn install(program: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(program).map_err(SeccompError::Install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_compiles_for_this_architecture() {
        let mut rules = allow(&[libc::SYS_read, libc::SYS_exit_group]);
        tgkill_self(&mut rules);
        rules.insert(
            libc::SYS_socket,
            vec![rule(&[(0, u64::MAX, libc::AF_INET as u64), (1, 0xf, 3)])],
        );
        let program = compile(rules).unwrap();
        assert!(!program.is_empty());
    }
}
