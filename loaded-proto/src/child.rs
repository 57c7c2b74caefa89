//! The first steps of every child process, in the order the design requires: take the
//! control channel, set up logging through it, then jail (pin, chroot, drop to the user,
//! keep one capability, no_new_privs, then the role's seccomp allow-list), all before
//! reading a byte from the channel or the network.

use crate::channel::Channel;
use crate::child_args::{self, ChildArgs};
use crate::jail::{self, JailSpec};
use crate::roles::{Keeps, Role};
use crate::seccomp;
use std::os::fd::{FromRawFd, OwnedFd};

/// Where the master puts a child's end of the control channel.
pub const CHANNEL_FD: i32 = 3;

/// Returns the jailed child's arguments and channel, or exits the process with a logged
/// reason: a child that cannot jail itself must not run at all. The capability it keeps
/// and its seccomp allow-list (installed last) are its role's, from the proc table.
pub fn start(role: Role) -> (ChildArgs, Channel) {
    let entry = role.entry();
    let (Keeps::One(keep), Some(syscalls)) = (entry.keeps, entry.seccomp_rules()) else {
        unreachable!("the proc table jails every child");
    };
    // SAFETY: the master starts every child with its channel on CHANNEL_FD (see the
    // master's spawn module), and nothing in this process has touched that fd yet.
    let channel = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(CHANNEL_FD) });
    let args = match child_args::parse(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("this program is started by loaded-master, not by hand: {e}");
            std::process::exit(2);
        }
    };
    let level = if args.debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    if let Err(e) = crate::relay_log::init(&channel, level) {
        eprintln!("cannot set up logging: {e}");
        std::process::exit(1);
    }
    // A child's stderr is /dev/null (never the admin's terminal): a panic is logged
    // through the channel instead, and the master relays it.
    std::panic::set_hook(Box::new(|panic| log::error!("panic: {panic}")));
    let spec = JailSpec {
        core: args.core.map(usize::from),
        chroot: args.chroot.clone(),
        uid: args.uid,
        gid: args.gid,
        keep,
    };
    // Compiled before the jail (it allocates), installed after it: the jail's own calls
    // (chroot, setresuid, prctl...) are on no list.
    let filter = match seccomp::compile(syscalls) {
        Ok(filter) => filter,
        Err(e) => {
            log::error!("{e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = jail::enter(&spec) {
        log::error!("cannot drop privileges: {e}");
        std::process::exit(1);
    }
    if let Err(e) = seccomp::install(&filter) {
        log::error!("{e}");
        std::process::exit(1);
    }
    (args, channel)
}
