//! The prober (with `-f`): health checks of the real servers, hotplug on their network,
//! backend changes streamed to the workers. It keeps CAP_NET_RAW for its echo requests.
//!
//! Its seccomp allow-list was found with `strace -f` (the demo, with `-f`) and is checked
//! by the end-to-end tests, which run the prober under it. In particular open/openat,
//! execve, ptrace and kill are not on it. It opens sockets, but only those its checks need
//! (see `restricted`).

use super::{ConfigPart, Entry, Keeps, Role, Sends, Syscalls};
use crate::balancing::IpNet;
use crate::config::Config;
use crate::message::MessageKind;
use crate::reload::HealthSettings;
use crate::seccomp::{rule, Rules};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub const ENTRY: Entry = Entry {
    role: Role::Prober,
    binary: "loaded-prober",
    keeps: Keeps::One(caps::Capability::CAP_NET_RAW),
    sends: &[
        Sends {
            to: Role::Master,
            kinds: &[
                MessageKind::Ready,
                MessageKind::Log,
                MessageKind::LinkLost,
                // The master checks every address against the config (kernel mode).
                MessageKind::BackendChange,
                // The end of each round, for the status.
                MessageKind::RoundDone,
                MessageKind::Pong,
            ],
        },
        Sends {
            to: Role::Worker,
            kinds: &[MessageKind::BackendSnapshot, MessageKind::BackendUpdate],
        },
    ],
    config: ConfigPart::Health,
    syscalls: Some(Syscalls {
        any_arguments: ALLOWED,
        restricted,
    }),
};

/// Besides what every child calls (`seccomp::EVERY_CHILD`: the channel, mio, the
/// allocator, the runtime).
#[rustfmt::skip]
const ALLOWED: &[libc::c_long] = &[
    // Echo requests and replies; TCP connects; the worker links (sendmsg and recvmsg, as
    // on the channel); getifaddrs' netlink dump.
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_getsockname,
    // SO_ERROR of a connect; ICMP_FILTER, ICMP6_FILTER, IPV6_MULTICAST_IF.
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    // poll() for the connects of one round (tcp_connect).
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_ppoll,
];

/// The type argument of socket() carries SOCK_NONBLOCK and SOCK_CLOEXEC above these bits.
const SOCK_TYPE_MASK: u64 = 0xf;

/// socket() of the kinds the checks need only, and one ioctl.
fn restricted(rules: &mut Rules) {
    rules.insert(libc::SYS_socket, socket_rules());
    // ioctl: only the one of if_nametoindex. The request number's type differs between
    // C libraries.
    #[allow(clippy::unnecessary_cast)]
    let siocgifindex = libc::SIOCGIFINDEX as u64;
    rules.insert(libc::SYS_ioctl, vec![rule(&[(1, u64::MAX, siocgifindex)])]);
}

fn socket_rules() -> Vec<seccompiler::SeccompRule> {
    let kind = |family: libc::c_int, kind: libc::c_int| {
        [
            (0, u64::MAX, family as u64),
            (1, SOCK_TYPE_MASK, kind as u64),
        ]
    };
    let with_protocol = |family, kind_, protocol: libc::c_int| {
        let [a, b] = kind(family, kind_);
        rule(&[a, b, (2, u64::MAX, protocol as u64)])
    };
    vec![
        // Echo requests (CAP_NET_RAW).
        with_protocol(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        with_protocol(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
        // TCP connects.
        rule(&kind(libc::AF_INET, libc::SOCK_STREAM)),
        rule(&kind(libc::AF_INET6, libc::SOCK_STREAM)),
        // getifaddrs (the local addresses a check must not ping): a route netlink dump.
        with_protocol(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
        // if_nametoindex (the NIC of link-local servers): glibc asks the kernel through a
        // unix datagram socket and SIOCGIFINDEX.
        rule(&kind(libc::AF_UNIX, libc::SOCK_DGRAM)),
    ]
}

/// What the prober is told of the config (`ProberSetup`): the servers and the check
/// settings, where hosts may be hot-plugged from, and the NIC of link-local discovery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProberPart {
    /// As a reload sends them; `withdrawn`: what reloads took out since the master started.
    pub health: HealthSettings,
    pub rip4: Option<IpNet>,
    pub rip6: Option<IpNet>,
    pub private_nic: Option<String>,
}

impl ProberPart {
    pub fn of(config: &Config, withdrawn: Vec<IpAddr>) -> ProberPart {
        ProberPart {
            health: HealthSettings::new(config, withdrawn),
            rip4: config.rip4,
            rip6: config.rip6,
            private_nic: config.private_nic.clone(),
        }
    }
}
