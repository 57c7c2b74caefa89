//! Starting a child: fork+exec of its own binary (a fresh address space, as the OpenBSD
//! privsep daemons do), with its end of a SOCK_SEQPACKET control channel as fd 3.
//!
//! The child starts as root and jails itself before it reads anything; the master passes
//! the jail's parameters on the command line, where the child can read them without
//! trusting any input.

use loaded_proto::channel::Channel;
use loaded_proto::child::CHANNEL_FD;
use loaded_proto::roles;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Worker { index: u32, core: u16, queue: u16 },
    Prober,
}

impl Role {
    /// Its row of the proc table.
    pub fn proc(&self) -> roles::Role {
        match self {
            Role::Worker { .. } => roles::Role::Worker,
            Role::Prober => roles::Role::Prober,
        }
    }

    /// How the process appears in log lines.
    pub fn name(&self) -> String {
        match self {
            Role::Worker { core, .. } => format!("worker/{core}"),
            Role::Prober => "prober".into(),
        }
    }
}

/// Who the children become.
#[derive(Clone, Debug)]
pub struct JailArgs {
    pub uid: u32,
    pub gid: u32,
    pub chroot: PathBuf,
    pub debug: bool,
}

pub struct Spawned {
    pub pid: nix::unistd::Pid,
    pub channel: Channel,
}

pub fn spawn(binary: &Path, role: &Role, jail: &JailArgs) -> io::Result<Spawned> {
    let (ours, theirs) = Channel::pair()?;
    let mut command = Command::new(binary);
    if let Role::Worker { index, core, queue } = role {
        command.args([
            "--worker",
            &index.to_string(),
            "--core",
            &core.to_string(),
            "--queue",
            &queue.to_string(),
        ]);
    }
    command
        .args([
            "--uid",
            &jail.uid.to_string(),
            "--gid",
            &jail.gid.to_string(),
        ])
        .arg("--chroot")
        .arg(&jail.chroot);
    if jail.debug {
        command.arg("--debug");
    }
    command
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Never the admin's terminal, even with -D: a compromised child could read it or
        // push input into it. Children log through their channel (panics included).
        .stderr(Stdio::null());
    let theirs: OwnedFd = theirs.into();
    let their_fd = theirs.as_raw_fd();
    // SAFETY: between fork and exec the closure only calls dup2, fcntl, setsid and
    // close_range, which are async-signal-safe, and touches no memory the parent could be
    // mutating.
    unsafe {
        command.pre_exec(move || {
            if their_fd == CHANNEL_FD {
                // dup2 onto itself would keep close-on-exec set.
                if libc::fcntl(their_fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(their_fd, CHANNEL_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            // A session of its own: no controlling terminal, and the terminal's signals
            // (Ctrl-C) reach the master only, which stops the children in order.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Whatever else the master inherited without close-on-exec (from its own parent)
            // must not cross into the jail: a directory fd would undo the chroot. Marked
            // rather than closed, because std's exec-error pipe is among them.
            if libc::close_range(
                (CHANNEL_FD + 1) as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(theirs);
    ours.set_nonblocking(true)?;
    Ok(Spawned {
        pid: nix::unistd::Pid::from_raw(child.id() as i32),
        channel: ours,
    })
}
