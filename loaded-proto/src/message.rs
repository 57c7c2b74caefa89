//! The one message enum that every channel between loaded's processes carries.
//!
//! Each message is one SOCK_SEQPACKET datagram holding its bincode 2 encoding; file
//! descriptors ride along as SCM_RIGHTS on the same datagram. A message that does not decode
//! exactly, or that arrives with the wrong number of descriptors, is fatal for the channel:
//! the peer is either buggy or compromised, and neither is worth talking to.

use crate::balancing::Backend;
use crate::reload::{BalancingSettings, HealthSettings};
use crate::roles::{ProberPart, WorkerPart};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Upper bound on one encoded message. A config with hundreds of servers fits easily; the
/// bound keeps a hostile length prefix from making the receiver allocate.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// master -> worker, with three descriptors: the NFQUEUE netlink socket already bound
    /// to `queue`, the shared flow table memfd, then the shared counters memfd (made for
    /// `counter_blocks` workers; this one writes block `worker`). Sent once, right after
    /// the fork. `part`: what the datapath needs of the config, nothing more.
    WorkerSetup {
        worker: u32,
        queue: u16,
        flow_table_capacity: u64,
        counter_blocks: u32,
        part: Box<WorkerPart>,
    },
    /// master -> prober, no descriptor: the servers, the check settings and servers
    /// withdrawn by reloads so far (see `HealthSettings::withdrawn`), RIP4/RIP6 and
    /// private_NIC.
    ProberSetup { part: Box<ProberPart> },
    /// child -> master: setup is complete and the child is in its jail.
    Ready,
    /// child -> master: one log line for syslog; the master adds the child's name.
    Log { level: LogLevel, text: String },
    /// master -> child: finish the work in hand and exit.
    Shutdown,
    /// master -> worker and master -> prober, with one descriptor: one end of a
    /// SOCK_SEQPACKET pair that links the prober to worker `worker`. A new link replaces the
    /// old one (after either side restarted).
    ProberLink { worker: u32 },
    /// prober -> worker: the whole backend state, when a link is new or on request. `seq`
    /// is the sequence number of the last change it includes.
    BackendSnapshot {
        seq: u64,
        backends: Vec<BackendState>,
    },
    /// prober -> worker: one change; `seq` is the previous one's plus one, so a worker can
    /// tell it missed one.
    BackendUpdate { seq: u64, update: BackendUpdate },
    /// prober -> master: the same change, unnumbered, with the check result that caused
    /// it, sent for every change including those of the first round (which reach the
    /// workers inside a snapshot instead). The master writes it into its backend book (the
    /// state that outlives a restart of the prober or a worker) and, in kernel mode, gives a
    /// hot-plugged server a directory slot and an entry in the nftables map and forgets the
    /// connections of a server that goes down. The master checks every address against the
    /// config: an `Added` outside RIP4/RIP6 ends the prober's channel.
    BackendChange {
        update: BackendUpdate,
        reason: StateReason,
    },
    /// worker -> prober: send a snapshot (the worker saw a gap in the sequence).
    SnapshotRequest,
    /// worker -> master, prober -> master: the link between the prober and worker `worker`
    /// broke (closed, or it carried a message that was not trusted); the master makes a
    /// fresh one.
    LinkLost { worker: u32 },
    /// master -> worker, after a reload (SIGHUP): the new servers, weights and strategy.
    WorkerReconfigure { settings: Box<BalancingSettings> },
    /// master -> prober, after a reload: the new servers and health-check settings.
    ProberReconfigure { settings: Box<HealthSettings> },
    /// master -> worker and master -> prober, right after its setup and before it turns
    /// Ready: the master's backend book, so that a restarted prober neither forgets the
    /// hot-plugged servers nor flaps the down ones, and a fresh worker neither sends a new
    /// client to a down server nor leaves a hot-plugged server's replies unrewritten
    /// while it waits for its prober link.
    BackendBook { backends: Vec<BookedBackend> },
    /// master -> child, every `HEARTBEAT_INTERVAL`: answer Pong from your main loop. A
    /// child that does not answer in time hangs (or is stopped) and is killed.
    Ping,
    /// child -> master: the answer to a Ping.
    Pong,
    /// master -> worker: the operator's drains and weights (`loadedctl`), whole, replacing
    /// the last: after the backend book before the worker turns Ready, after every change,
    /// and after every reload's `WorkerReconfigure`.
    ServerOverrides { overrides: Box<ServerOverrides> },
    /// prober -> master: a round of checks finished (the master notes the time for
    /// `loadedctl status`).
    RoundDone,
    /// master -> worker and master -> prober, only in test builds (feature `seccomp-test`,
    /// sent on SIGUSR2): make a system call that the child's seccomp allow-list forbids,
    /// which must kill it. Last, so that it shifts no other variant's encoding.
    #[cfg(feature = "seccomp-test")]
    TrySyscallForTest,
}

/// What the operator changed at run time, by server: drained servers get no new clients
/// (their mapped clients stay), and a weight here replaces the configured one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerOverrides {
    pub drained: Vec<IpAddr>,
    pub weights: Vec<(IpAddr, u32)>,
}

impl ServerOverrides {
    pub fn is_drained(&self, addr: IpAddr) -> bool {
        self.drained.contains(&addr)
    }

    pub fn weight_of(&self, addr: IpAddr) -> Option<u32> {
        self.weights
            .iter()
            .find(|(server, _)| *server == addr)
            .map(|(_, weight)| *weight)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendState {
    pub backend: Backend,
    pub up: bool,
}

/// One server as the master's backend book knows it (see `BackendBook`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedBackend {
    pub backend: Backend,
    pub origin: Origin,
    pub health: BookedHealth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Named in the config (at start or by a reload).
    Configured,
    /// Found by the prober's broadcast ping inside RIP4/RIP6.
    HotPlugged,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookedHealth {
    /// Configured, no check result yet: in service, and the prober's first result for it
    /// decides at once.
    Unchecked,
    Up,
    Down,
}

impl BookedHealth {
    /// Whether the server takes new clients.
    pub fn in_service(self) -> bool {
        self != BookedHealth::Down
    }
}

/// Why a server is in its state: the check result behind the prober's last change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateReason {
    /// Configured and not checked yet.
    NotChecked,
    /// Answered the ping and accepted the connect (`rise` times in a row).
    ChecksPassed,
    /// Answered the broadcast ping from inside RIP4/RIP6 and passed `rise` checks.
    AnsweredBroadcast,
    NoEchoReply,
    ConnectRefused,
    ConnectTimedOut,
    /// A ping or connect that failed otherwise, with the system's words.
    Failed(String),
}

impl std::fmt::Display for StateReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateReason::NotChecked => f.write_str("not checked yet"),
            StateReason::ChecksPassed => f.write_str("checks passed"),
            StateReason::AnsweredBroadcast => f.write_str("answered the broadcast ping"),
            StateReason::NoEchoReply => f.write_str("no reply to ping"),
            StateReason::ConnectRefused => f.write_str("connection refused"),
            StateReason::ConnectTimedOut => f.write_str("connect timed out"),
            StateReason::Failed(text) => f.write_str(text),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendUpdate {
    Up(IpAddr),
    Down(IpAddr),
    /// A host found on the servers' network (hotplug); it is up.
    Added(Backend),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

impl Message {
    /// How many descriptors must arrive with this message.
    pub fn expected_fds(&self) -> usize {
        match self {
            Message::WorkerSetup { .. } => 3,
            Message::ProberLink { .. } => 1,
            _ => 0,
        }
    }

    /// What kind of message it is: what the proc table speaks of, and what logs name (never
    /// the contents: a Log message's text could be long).
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::WorkerSetup { .. } => MessageKind::WorkerSetup,
            Message::ProberSetup { .. } => MessageKind::ProberSetup,
            Message::Ready => MessageKind::Ready,
            Message::Log { .. } => MessageKind::Log,
            Message::Shutdown => MessageKind::Shutdown,
            Message::ProberLink { .. } => MessageKind::ProberLink,
            Message::BackendSnapshot { .. } => MessageKind::BackendSnapshot,
            Message::BackendUpdate { .. } => MessageKind::BackendUpdate,
            Message::BackendChange { .. } => MessageKind::BackendChange,
            Message::SnapshotRequest => MessageKind::SnapshotRequest,
            Message::LinkLost { .. } => MessageKind::LinkLost,
            Message::WorkerReconfigure { .. } => MessageKind::WorkerReconfigure,
            Message::ProberReconfigure { .. } => MessageKind::ProberReconfigure,
            Message::BackendBook { .. } => MessageKind::BackendBook,
            Message::Ping => MessageKind::Ping,
            Message::Pong => MessageKind::Pong,
            Message::ServerOverrides { .. } => MessageKind::ServerOverrides,
            Message::RoundDone => MessageKind::RoundDone,
            #[cfg(feature = "seccomp-test")]
            Message::TrySyscallForTest => MessageKind::TrySyscallForTest,
        }
    }
}

/// A message's variant without its contents (see `roles`, which says who may send which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    WorkerSetup,
    ProberSetup,
    Ready,
    Log,
    Shutdown,
    ProberLink,
    BackendSnapshot,
    BackendUpdate,
    BackendChange,
    SnapshotRequest,
    LinkLost,
    WorkerReconfigure,
    ProberReconfigure,
    BackendBook,
    Ping,
    Pong,
    ServerOverrides,
    RoundDone,
    #[cfg(feature = "seccomp-test")]
    TrySyscallForTest,
}

impl MessageKind {
    pub const ALL: &'static [MessageKind] = &[
        MessageKind::WorkerSetup,
        MessageKind::ProberSetup,
        MessageKind::Ready,
        MessageKind::Log,
        MessageKind::Shutdown,
        MessageKind::ProberLink,
        MessageKind::BackendSnapshot,
        MessageKind::BackendUpdate,
        MessageKind::BackendChange,
        MessageKind::SnapshotRequest,
        MessageKind::LinkLost,
        MessageKind::WorkerReconfigure,
        MessageKind::ProberReconfigure,
        MessageKind::BackendBook,
        MessageKind::Ping,
        MessageKind::Pong,
        MessageKind::ServerOverrides,
        MessageKind::RoundDone,
        #[cfg(feature = "seccomp-test")]
        MessageKind::TrySyscallForTest,
    ];
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl From<log::Level> for LogLevel {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warning,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug | log::Level::Trace => LogLevel::Debug,
        }
    }
}
