//! Privilege dropping for the child processes, one function per step, in the only order
//! that works for "keep exactly one capability across a uid change" (see FACTS.md):
//! pin -> chroot -> bounding set -> keepcaps -> groups/gid/uid -> caps -> no_new_privs.
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
    BoundingSet {
        capability: Capability,
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
            JailError::BoundingSet { capability, source } => {
                write!(
                    f,
                    "cannot drop {capability} from the bounding set: {source}"
                )
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
    if let Some(core) = spec.core {
        pin_to_core(core)?;
    }
    change_root(&spec.chroot)?;
    shrink_bounding_set(spec.keep)?;
    set_keepcaps(true)?;
    switch_user(spec.uid, spec.gid)?;
    restrict_capabilities(spec.keep)?;
    set_keepcaps(false)?;
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

pub fn shrink_bounding_set(keep: Capability) -> Result<(), JailError> {
    for capability in caps::all() {
        if capability != keep {
            caps::drop(None, CapSet::Bounding, capability).map_err(|e| JailError::BoundingSet {
                capability,
                source: caps_error(e),
            })?;
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

pub fn set_no_new_privs() -> Result<(), JailError> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| JailError::NoNewPrivs { source: e.into() })
}
