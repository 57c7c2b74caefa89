//! The master: root, no jail. It reads the whole config, installs the rules, binds the
//! queues, and tells each child what it needs.

use super::{ConfigPart, Entry, Keeps, Role, Sends};
use crate::message::MessageKind;

pub const ENTRY: Entry = Entry {
    role: Role::Master,
    binary: "loaded-master",
    keeps: Keeps::Everything,
    sends: &[
        Sends {
            to: Role::Worker,
            kinds: &[
                MessageKind::WorkerSetup,
                MessageKind::BackendBook,
                MessageKind::ProberLink,
                MessageKind::WorkerReconfigure,
                MessageKind::ServerOverrides,
                MessageKind::Ping,
                MessageKind::Shutdown,
                #[cfg(feature = "seccomp-test")]
                MessageKind::TrySyscallForTest,
            ],
        },
        Sends {
            to: Role::Prober,
            kinds: &[
                MessageKind::ProberSetup,
                MessageKind::BackendBook,
                MessageKind::ProberLink,
                MessageKind::ProberReconfigure,
                MessageKind::Ping,
                MessageKind::Shutdown,
                #[cfg(feature = "seccomp-test")]
                MessageKind::TrySyscallForTest,
            ],
        },
    ],
    config: ConfigPart::Whole,
    syscalls: None,
};
