//! A worker: one per core, pinned, serves its NFQUEUE. It keeps CAP_NET_ADMIN because the
//! kernel checks it on every verdict message.
//!
//! Its seccomp allow-list was found with `strace -f` (the demo, with `-f`) and is checked by
//! the end-to-end tests, which run every worker under it. In particular socket,
//! open/openat, execve, ptrace and kill are not on it, so a worker taken over through a
//! packet keeps only the descriptors it holds (its NFQUEUE netlink socket, its channel to
//! the master, its link to the prober, the mapped flow table and counters).

use super::{ConfigPart, Entry, Keeps, Role, Sends, Syscalls};
use crate::balancing::{IpNet, Stickiness};
use crate::config::Config;
use crate::forwarding::Forward;
use crate::message::MessageKind;
use crate::reload::BalancingSettings;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const ENTRY: Entry = Entry {
    role: Role::Worker,
    binary: "loaded-worker",
    keeps: Keeps::One(caps::Capability::CAP_NET_ADMIN),
    sends: &[
        Sends {
            to: Role::Master,
            kinds: &[
                MessageKind::Ready,
                MessageKind::Log,
                // Only of its own link: the master checks the index.
                MessageKind::LinkLost,
                MessageKind::Pong,
            ],
        },
        Sends {
            to: Role::Prober,
            kinds: &[MessageKind::SnapshotRequest],
        },
    ],
    config: ConfigPart::Datapath,
    syscalls: Some(Syscalls {
        any_arguments: ALLOWED,
        restricted: |_| {},
    }),
};

/// Besides what every child calls (`seccomp::EVERY_CHILD`: the channel, mio, the
/// allocator, the runtime).
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
    // The size of the flow table's and the counters' memfds.
    libc::SYS_fstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_newfstatat,
];

/// What a worker is told of the config (`WorkerSetup`): what its datapath needs, nothing
/// else (no user, chroot, pidfile, log socket, health settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPart {
    pub vip4: Option<Ipv4Addr>,
    pub vip6: Option<Ipv6Addr>,
    pub forward: Forward,
    pub stickiness: Stickiness,
    /// Resolved: the configured one, or the one derived from the VIPs.
    pub maglev_seed: u128,
    /// RIP4 and RIP6: the only networks a worker hot-plugs servers from.
    pub hotplug_nets: Vec<IpNet>,
    /// The servers, strategy and flow timeout, as a reload sends them (nothing removed).
    pub balancing: BalancingSettings,
}

impl WorkerPart {
    pub fn of(config: &Config) -> WorkerPart {
        WorkerPart {
            vip4: config.vip4,
            vip6: config.vip6,
            forward: config.forward,
            stickiness: config.stickiness,
            maglev_seed: config.maglev_seed(),
            hotplug_nets: config.rip4.into_iter().chain(config.rip6).collect(),
            balancing: BalancingSettings::new(config, Vec::new()),
        }
    }
}
