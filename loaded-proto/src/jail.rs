//! Privilege dropping for the child processes, one function per step, in the only order
//! that works for "keep exactly one capability across a uid change" (found by experiment
//! with the caps crate: the capability survives setresuid only with keepcaps set, and the
//! sets must be narrowed after it): pin -> chroot -> bounding set -> keepcaps ->
//! groups/gid/uid -> caps -> no core dumps -> not dumpable -> no_new_privs. The role's
//! seccomp filter comes last, in `child::start`.
//!
//! Each step has its own error variant carrying what it worked on and the OS error, so a
//! failure says exactly which step failed. Capabilities are per thread: this must run
//! before the process starts any thread.

use caps::{CapSet, Capability, CapsHashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What a child's jail is made of. The master resolves the user name to ids (the child
/// could not, once chrooted) and passes them on the command line.
#[derive(Clone, Debug)]
pub struct JailSpec {
    pub core: Option<usize>,
    pub chroot: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// The one capability the process keeps.
    pub keep: Capability,
}

#[derive(Debug)]
pub enum JailError {
    PinToCore {
        core: usize,
        source: io::Error,
    },
    Chroot {
        path: PathBuf,
        source: io::Error,
    },
    Chdir {
        path: PathBuf,
        source: io::Error,
    },
    /// `number`: the kernel's capability number (the caps crate may not know it by name).
    BoundingSet {
        number: u32,
        source: io::Error,
    },
    KeepCaps {
        source: io::Error,
    },
    SetGroups {
        gid: u32,
        source: io::Error,
    },
    SetGid {
        gid: u32,
        source: io::Error,
    },
    SetUid {
        uid: u32,
        source: io::Error,
    },
    SetCapabilities {
        set: &'static str,
        source: io::Error,
    },
    NoNewPrivs {
        source: io::Error,
    },
    StillRoot {
        uid: u32,
    },
    RootGroup {
        gid: u32,
    },
    CoreLimit {
        source: io::Error,
    },
    NotDumpable {
        source: io::Error,
    },
}

impl fmt::Display for JailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JailError::PinToCore { core, source } => {
                write!(f, "cannot pin to core {core}: {source}")
            }
            JailError::Chroot { path, source } => {
                write!(f, "cannot chroot to {}: {source}", path.display())
            }
            JailError::Chdir { path, source } => {
                write!(
                    f,
                    "cannot chdir to {} after chroot: {source}",
                    path.display()
                )
            }
            JailError::BoundingSet { number, source } => {
                let name = caps::all()
                    .into_iter()
                    .find(|capability| u32::from(capability.index()) == *number)
                    .map_or_else(|| format!("capability {number}"), |c| c.to_string());
                write!(f, "cannot drop {name} from the bounding set: {source}")
            }
            JailError::KeepCaps { source } => write!(f, "cannot set keepcaps: {source}"),
            JailError::SetGroups { gid, source } => {
                write!(f, "cannot set supplementary groups to [{gid}]: {source}")
            }
            JailError::SetGid { gid, source } => write!(f, "cannot set gid {gid}: {source}"),
            JailError::SetUid { uid, source } => write!(f, "cannot set uid {uid}: {source}"),
            JailError::SetCapabilities { set, source } => {
                write!(f, "cannot set the {set} capability set: {source}")
            }
            JailError::NoNewPrivs { source } => write!(f, "cannot set no_new_privs: {source}"),
            JailError::StillRoot { uid } => {
                write!(
                    f,
                    "refusing to run the child as uid {uid}: choose an unprivileged user"
                )
            }
            JailError::RootGroup { gid } => {
                write!(
                    f,
                    "refusing to run the child with group {gid} (root's): choose a user whose \
                     primary group is unprivileged"
                )
            }
            JailError::CoreLimit { source } => {
                write!(f, "cannot forbid core dumps (RLIMIT_CORE): {source}")
            }
            JailError::NotDumpable { source } => {
                write!(f, "cannot make the process undumpable: {source}")
            }
        }
    }
}

impl std::error::Error for JailError {}

fn caps_error(e: caps::errors::CapsError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Runs every step; on return the process is pinned, chrooted, unprivileged and holds
/// exactly `spec.keep` in its effective and permitted sets.
pub fn enter(spec: &JailSpec) -> Result<(), JailError> {
    if spec.uid == 0 {
        return Err(JailError::StillRoot { uid: spec.uid });
    }
    if spec.gid == 0 {
        return Err(JailError::RootGroup { gid: spec.gid });
    }
    if let Some(core) = spec.core {
        pin_to_core(core)?;
    }
    change_root(&spec.chroot)?;
    shrink_bounding_set(spec.keep)?;
    set_keepcaps(true)?;
    switch_user(spec.uid, spec.gid)?;
    restrict_capabilities(spec.keep)?;
    set_keepcaps(false)?;
    forbid_core_dumps()?;
    set_not_dumpable()?;
    set_no_new_privs()?;
    Ok(())
}

pub fn pin_to_core(core: usize) -> Result<(), JailError> {
    let mut set = nix::sched::CpuSet::new();
    set.set(core).map_err(|e| JailError::PinToCore {
        core,
        source: e.into(),
    })?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| {
        JailError::PinToCore {
            core,
            source: e.into(),
        }
    })
}

pub fn change_root(path: &Path) -> Result<(), JailError> {
    nix::unistd::chroot(path).map_err(|e| JailError::Chroot {
        path: path.to_owned(),
        source: e.into(),
    })?;
    nix::unistd::chdir("/").map_err(|e| JailError::Chdir {
        path: path.to_owned(),
        source: e.into(),
    })
}

/// Capability numbers fit in the 64-bit masks of /proc/PID/status.
const MAX_CAPABILITY_NUMBER: u32 = 63;

/// Drops every capability but `keep` from the bounding set, by number up to the last one
/// this kernel has: a capability newer than the caps crate would otherwise stay.
pub fn shrink_bounding_set(keep: Capability) -> Result<(), JailError> {
    for number in 0..=MAX_CAPABILITY_NUMBER {
        if number == u32::from(keep.index()) {
            continue;
        }
        // SAFETY: PR_CAPBSET_READ reads one capability number's bit; no memory is passed.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(number)) };
        match present {
            // EINVAL: past the last capability this kernel knows.
            ..=-1 => break,
            0 => continue,
            _ => {}
        }
        // SAFETY: PR_CAPBSET_DROP clears one capability number's bit; no memory is passed.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(number)) } < 0 {
            return Err(JailError::BoundingSet {
                number,
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

pub fn set_keepcaps(keep: bool) -> Result<(), JailError> {
    nix::sys::prctl::set_keepcaps(keep).map_err(|e| JailError::KeepCaps { source: e.into() })
}

pub fn switch_user(uid: u32, gid: u32) -> Result<(), JailError> {
    let gid_t = nix::unistd::Gid::from_raw(gid);
    let uid_t = nix::unistd::Uid::from_raw(uid);
    nix::unistd::setgroups(&[gid_t]).map_err(|e| JailError::SetGroups {
        gid,
        source: e.into(),
    })?;
    nix::unistd::setresgid(gid_t, gid_t, gid_t).map_err(|e| JailError::SetGid {
        gid,
        source: e.into(),
    })?;
    nix::unistd::setresuid(uid_t, uid_t, uid_t).map_err(|e| JailError::SetUid {
        uid,
        source: e.into(),
    })
}

pub fn restrict_capabilities(keep: Capability) -> Result<(), JailError> {
    let only: CapsHashSet = [keep].into_iter().collect();
    // Permitted first: effective may only hold what permitted holds.
    for (set, name) in [
        (CapSet::Permitted, "permitted"),
        (CapSet::Effective, "effective"),
    ] {
        caps::set(None, set, &only).map_err(|e| JailError::SetCapabilities {
            set: name,
            source: caps_error(e),
        })?;
    }
    caps::clear(None, CapSet::Inheritable).map_err(|e| JailError::SetCapabilities {
        set: "inheritable",
        source: caps_error(e),
    })?;
    caps::clear(None, CapSet::Ambient).map_err(|e| JailError::SetCapabilities {
        set: "ambient",
        source: caps_error(e),
    })
}

/// No core file: it would hold packets and the flow table.
pub fn forbid_core_dumps() -> Result<(), JailError> {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
        .map_err(|e| JailError::CoreLimit { source: e.into() })
}

/// Undumpable: other processes of the same user cannot ptrace us or read our memory
/// through /proc, whose files now belong to root.
pub fn set_not_dumpable() -> Result<(), JailError> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| JailError::NotDumpable { source: e.into() })
}

pub fn set_no_new_privs() -> Result<(), JailError> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| JailError::NoNewPrivs { source: e.into() })
}
