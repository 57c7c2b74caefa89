//! Why the master could not start, or stopped with an error: one variant per step of
//! `master::run`, Display for the log (and for the start command, which prints it).

use crate::child_errors::{GaveUp, StartError};
use crate::kernel_mode::KernelModeError;
use crate::queues::QueueError;
use crate::rules::RuleError;
use crate::server_slots::SlotError;
use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum MasterError {
    Signals(io::Error),
    NotRoot,
    LookUpUser {
        name: String,
        source: nix::Error,
    },
    NoSuchUser {
        name: String,
    },
    UserIsRoot {
        name: String,
    },
    UserInRootGroup {
        name: String,
    },
    Chroot {
        path: PathBuf,
        problem: ChrootProblem,
    },
    OwnBinary(io::Error),
    MissingChild {
        path: PathBuf,
    },
    ReadAffinity(nix::Error),
    /// FIRST_CORE / LAST_CORE against the machine's cores.
    Cores(loaded_proto::config::CoresError),
    Queue(QueueError),
    /// The control socket for loadedctl.
    Control(crate::control_server::ControlSetupError),
    FlowTable(io::Error),
    Counters(io::Error),
    Slots(SlotError),
    KernelTable(KernelModeError),
    Rules(RuleError),
    Daemonize(io::Error),
    PidFile {
        path: PathBuf,
        source: io::Error,
    },
    /// The supervisor's poll could not be made or failed.
    Poll(io::Error),
    StartChildren(StartError),
    GaveUp(GaveUp),
}

/// What is wrong with the children's chroot directory.
#[derive(Debug)]
pub enum ChrootProblem {
    Create(io::Error),
    Inspect(io::Error),
    /// Not a directory, not root's, or writable by others.
    Unsafe,
    IsRoot,
    NotEmpty {
        holds: String,
    },
}

impl fmt::Display for MasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterError::Signals(e) => write!(f, "cannot handle signals: {e}"),
            MasterError::NotRoot => {
                f.write_str("loaded-master must run as root (it binds NFQUEUEs and installs rules)")
            }
            MasterError::LookUpUser { name, source } => {
                write!(f, "cannot look up user {name}: {source}")
            }
            MasterError::NoSuchUser { name } => {
                write!(f, "no such user: {name} (see -U and `user=`)")
            }
            MasterError::UserIsRoot { name } => write!(
                f,
                "user {name} is root: the children must run as an unprivileged user"
            ),
            MasterError::UserInRootGroup { name } => write!(
                f,
                "user {name} has group 0 (root's) as its primary group: the children must run \
                 as an unprivileged user and group"
            ),
            MasterError::Chroot { path, problem } => {
                let path = path.display();
                match problem {
                    ChrootProblem::Create(e) => {
                        write!(f, "cannot create chroot directory {path}: {e}")
                    }
                    ChrootProblem::Inspect(e) => write!(f, "chroot directory {path}: {e}"),
                    ChrootProblem::Unsafe => write!(
                        f,
                        "chroot directory {path} must be a directory owned by root and \
                         writable only by root"
                    ),
                    ChrootProblem::IsRoot => write!(
                        f,
                        "chroot directory {path} is the root directory: give the children an \
                         empty one"
                    ),
                    ChrootProblem::NotEmpty { holds } => {
                        write!(
                            f,
                            "chroot directory {path} must be empty, but holds {holds}"
                        )
                    }
                }
            }
            MasterError::OwnBinary(e) => write!(f, "cannot find my own binary: {e}"),
            MasterError::MissingChild { path } => write!(
                f,
                "{} is missing: it must be installed next to loaded-master",
                path.display()
            ),
            MasterError::ReadAffinity(e) => write!(f, "cannot read the CPU affinity: {e}"),
            MasterError::Cores(e) => e.fmt(f),
            MasterError::Queue(e) => e.fmt(f),
            MasterError::Control(e) => e.fmt(f),
            MasterError::FlowTable(e) => write!(f, "cannot create the shared flow table: {e}"),
            MasterError::Counters(e) => write!(f, "cannot create the shared counters: {e}"),
            MasterError::Slots(e) => e.fmt(f),
            MasterError::KernelTable(e) => e.fmt(f),
            MasterError::Rules(e) => write!(f, "cannot install rules: {e}"),
            MasterError::Daemonize(e) => write!(f, "cannot daemonize: {e}"),
            MasterError::PidFile { path, source } => {
                write!(f, "cannot write pidfile {}: {source}", path.display())
            }
            MasterError::Poll(e) => e.fmt(f),
            MasterError::StartChildren(e) => write!(f, "cannot start the children: {e}"),
            MasterError::GaveUp(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MasterError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chroot_problem_names_the_directory() {
        let e = MasterError::Chroot {
            path: PathBuf::from("/var/empty/loaded"),
            problem: ChrootProblem::NotEmpty {
                holds: "/var/empty/loaded/x".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "chroot directory /var/empty/loaded must be empty, but holds /var/empty/loaded/x"
        );
    }
}
