//! The proc table: every process of loaded, what it is and what it may say, in one place
//! (as OpenBSD's relayd and ntpd keep theirs). For each role: its binary, the one
//! capability it keeps, the messages it may send to each peer (what it may receive is what
//! its peers may send it), the part of the config it gets, and its seccomp allow-list.
//!
//! The master spawns from it, `child::start` jails from it, and every dispatcher checks a
//! message with [`permit`] before it looks inside: a message a role may not send to that
//! peer ends the channel.

mod master;
mod prober;
#[cfg(test)]
mod tests;
mod worker;

pub use prober::ProberPart;
pub use worker::WorkerPart;

use crate::message::{Message, MessageKind};
use crate::seccomp::{self, Rules};
use std::fmt;

/// One of loaded's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Master,
    Worker,
    Prober,
}

/// What a role keeps of root's powers once jailed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeps {
    /// The master stays root: it installs rules and binds queues for its children.
    Everything,
    /// A child keeps this one capability (see `jail`).
    One(caps::Capability),
}

/// What a role is told of the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigPart {
    /// The master reads the file itself.
    Whole,
    /// `WorkerSetup` and `WorkerReconfigure`: what the datapath needs.
    Datapath,
    /// `ProberSetup` and `ProberReconfigure`: the servers and the health-check settings.
    Health,
}

/// The messages a role may send to one peer.
#[derive(Debug)]
pub struct Sends {
    pub to: Role,
    pub kinds: &'static [MessageKind],
}

/// A role's seccomp allow-list, on top of what every child calls (`seccomp::EVERY_CHILD`).
#[derive(Debug)]
pub struct Syscalls {
    /// Allowed with any arguments.
    pub any_arguments: &'static [libc::c_long],
    /// Adds the calls allowed with some arguments only.
    pub restricted: fn(&mut Rules),
}

/// One row of the proc table.
#[derive(Debug)]
pub struct Entry {
    pub role: Role,
    /// The executable's file name (the children are installed next to the master).
    pub binary: &'static str,
    pub keeps: Keeps,
    pub sends: &'static [Sends],
    pub config: ConfigPart,
    /// None: no seccomp filter (the master).
    pub syscalls: Option<Syscalls>,
}

pub const TABLE: [&Entry; 3] = [&master::ENTRY, &worker::ENTRY, &prober::ENTRY];

impl Role {
    pub fn entry(self) -> &'static Entry {
        match self {
            Role::Master => &master::ENTRY,
            Role::Worker => &worker::ENTRY,
            Role::Prober => &prober::ENTRY,
        }
    }

    /// The messages this role may send to `to` (empty: they have no channel).
    pub fn sends_to(self, to: Role) -> &'static [MessageKind] {
        self.entry()
            .sends
            .iter()
            .find(|sends| sends.to == to)
            .map_or(&[], |sends| sends.kinds)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Prober => "prober",
        })
    }
}

impl Entry {
    /// The seccomp rules to install, or None for a role that runs without a filter.
    pub fn seccomp_rules(&self) -> Option<Rules> {
        let syscalls = self.syscalls.as_ref()?;
        let mut rules = seccomp::allow_for_child(syscalls.any_arguments);
        (syscalls.restricted)(&mut rules);
        Some(rules)
    }
}

/// A message its sender's role may not send to this peer: fatal for the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfPlace {
    pub from: Role,
    pub to: Role,
    pub kind: MessageKind,
}

impl fmt::Display for OutOfPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} may not send {} to the {}",
            self.from, self.kind, self.to
        )
    }
}

impl std::error::Error for OutOfPlace {}

/// Whether `from` may send `message` to `to`, by the table.
pub fn permit(from: Role, to: Role, message: &Message) -> Result<(), OutOfPlace> {
    let kind = message.kind();
    if from.sends_to(to).contains(&kind) {
        Ok(())
    } else {
        Err(OutOfPlace { from, to, kind })
    }
}
