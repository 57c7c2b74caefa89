//! The prober's `run`: jailed with only CAP_NET_RAW, it checks the real servers every
//! `check_cycle` (see `health`) and streams what changed to every worker over a direct link
//! that the master set up: a snapshot when a link is new or a worker asks, then numbered
//! changes. Every change also goes to the master (`BackendChange`), which needs it in
//! kernel mode. Each change is logged once, with its reason; nothing is logged per check.
//!
//! A reload (`ProberReconfigure`) changes the servers and the check settings in place
//! (see `health::reload`); a round follows at once when it added servers, so that a new
//! server that is down loses its clients within one round.

use crate::health::{Event, HealthChecker};
use loaded_proto::channel::{Channel, ChannelError};
use loaded_proto::message::{BackendState, BackendUpdate, Message};
use loaded_proto::reload::HealthSettings;
use loaded_proto::roles::{self, ProberPart, Role};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const MASTER: Token = Token(usize::MAX);

pub fn run() -> i32 {
    let (_args, channel) = loaded_proto::child::start(Role::Prober);
    let part = match channel.recv() {
        Ok((Message::ProberSetup { part }, _)) => part,
        Ok((other, _)) => {
            match roles::permit(Role::Master, Role::Prober, &other) {
                Err(e) => log::error!("{e}; ending the channel"),
                Ok(()) => log::error!("expected ProberSetup, got {}", other.kind()),
            }
            return 1;
        }
        Err(e) => {
            log::error!("no setup from the master: {e}");
            return 1;
        }
    };
    let mut checker = match HealthChecker::new(&part) {
        Ok(checker) => checker,
        Err(e) => {
            log::error!("cannot open the probe sockets: {e}");
            return 1;
        }
    };
    if !part.health.withdrawn.is_empty() {
        // Only the list of withdrawn servers: the part is the reloaded one already.
        let (_, sockets) = checker.reconfigure(&part, &part.health.withdrawn);
        if let Err(e) = sockets {
            log::error!("{e}");
        }
    }
    let mut prober = match Prober::new(channel, checker, *part) {
        Ok(prober) => prober,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    if prober.master.send(&Message::Ready).is_err() {
        return 1;
    }
    match prober.serve() {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// Requests read from one worker's link before the loop looks at everything else again.
const MESSAGES_PER_WAKEUP: usize = 64;

struct Prober {
    master: Channel,
    /// Worker index -> its link.
    links: HashMap<u32, Channel>,
    checker: HealthChecker,
    /// The part of the config the checks follow, reloads applied.
    part: ProberPart,
    /// The number of the last change sent.
    seq: u64,
    poll: Poll,
    cycle: Duration,
    next_round: Instant,
    /// No snapshot goes out before the first round: until then the prober knows less than
    /// the workers (after a prober restart, they know which servers are down).
    first_round_done: bool,
    /// Links read up to the per-wakeup cap that may hold more (their readiness edge is
    /// spent, so the loop comes back to them without waiting).
    unfinished_links: Vec<u32>,
}

impl Prober {
    fn new(master: Channel, checker: HealthChecker, part: ProberPart) -> io::Result<Prober> {
        let poll = Poll::new()?;
        master.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&master.as_raw_fd()),
            MASTER,
            Interest::READABLE,
        )?;
        Ok(Prober {
            master,
            links: HashMap::new(),
            checker,
            seq: 0,
            poll,
            cycle: part.health.check_cycle,
            part,
            // The first round at once: a server that is down at start is found within
            // `fall` rounds, not `fall + 1`.
            next_round: Instant::now(),
            first_round_done: false,
            unfinished_links: Vec::new(),
        })
    }

    fn serve(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = if self.unfinished_links.is_empty() {
                self.next_round.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            for event in events.iter() {
                if event.token() == MASTER {
                    if self.drain_master()? {
                        return Ok(());
                    }
                } else {
                    self.drain_link(event.token().0 as u32);
                }
            }
            for worker in std::mem::take(&mut self.unfinished_links) {
                self.drain_link(worker);
            }
            if Instant::now() >= self.next_round {
                let changes = self.checker.check();
                for change in changes {
                    self.publish(change);
                }
                if !self.first_round_done {
                    self.first_round_done = true;
                    let workers: Vec<u32> = self.links.keys().copied().collect();
                    for worker in workers {
                        self.send_snapshot(worker);
                    }
                }
                self.next_round = Instant::now() + self.cycle;
            }
        }
    }

    /// Returns true when the master says to stop (or is gone).
    fn drain_master(&mut self) -> Result<bool, String> {
        loop {
            match self.master.recv() {
                Ok((message, fds)) => match roles::permit(Role::Master, Role::Prober, &message)
                    .map(|()| message)
                    .map_err(|refused| format!("{refused}; ending the channel"))?
                {
                    Message::Shutdown => return Ok(true),
                    Message::ProberLink { worker } => {
                        let fd = fds
                            .into_iter()
                            .next()
                            .expect("the channel checks the count");
                        self.add_link(worker, Channel::from_fd(fd))
                            .map_err(|e| format!("cannot use the link to worker {worker}: {e}"))?;
                    }
                    Message::ProberReconfigure { settings } => self.reconfigure(&settings),
                    // From the main loop: an answer proves the loop turns (a round that
                    // hangs is a prober that hangs).
                    Message::Ping => {
                        if let Err(e) = self.master.try_send(&Message::Pong) {
                            log::warn!("cannot answer the heartbeat: {e}");
                        }
                    }
                    #[cfg(feature = "seccomp-test")]
                    Message::TrySyscallForTest => crate::sandbox::try_forbidden_syscall(),
                    // The setup came first and only once.
                    other => {
                        return Err(format!(
                            "a second {} from the master; ending the channel",
                            other.kind()
                        ))
                    }
                },
                Err(e) if e.would_block() => return Ok(false),
                Err(ChannelError::Closed) => return Ok(true),
                Err(e) => return Err(format!("control channel: {e}")),
            }
        }
    }

    /// A reload. The workers hear of it from the master; each asks us for a snapshot once
    /// it has applied it, which brings the health of its new servers.
    fn reconfigure(&mut self, settings: &HealthSettings) {
        self.part.health = settings.clone();
        let (done, sockets) = self.checker.reconfigure(&self.part, &settings.withdrawn);
        if let Err(e) = sockets {
            log::error!("{e}");
        }
        log::info!(
            "reloaded: checking {} server(s) every {} s, {} added{}, {} removed{}",
            self.checker.states().len(),
            self.part.health.check_cycle.as_secs(),
            done.added.len(),
            list(&done.added),
            done.removed.len(),
            list(&done.removed)
        );
        self.cycle = self.part.health.check_cycle;
        let now = Instant::now();
        self.next_round = if done.added.is_empty() {
            self.next_round.min(now + self.cycle)
        } else {
            now
        };
    }

    fn add_link(&mut self, worker: u32, link: Channel) -> io::Result<()> {
        self.drop_link(worker);
        link.set_nonblocking(true)?;
        self.poll.registry().register(
            &mut SourceFd(&link.as_raw_fd()),
            Token(worker as usize),
            Interest::READABLE,
        )?;
        self.links.insert(worker, link);
        self.send_snapshot(worker);
        Ok(())
    }

    /// Drops a link that can no longer be trusted or used and asks the master for a new one.
    fn lose_link(&mut self, worker: u32) {
        self.drop_link(worker);
        let _ = self.master.try_send(&Message::LinkLost { worker });
    }

    fn drop_link(&mut self, worker: u32) {
        if let Some(old) = self.links.remove(&worker) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&old.as_raw_fd()));
        }
    }

    /// What a worker may say to the prober: only ask for a snapshot. At most
    /// MESSAGES_PER_WAKEUP requests are read at a time and answered with one snapshot, so
    /// a worker that asks without end neither starves the checks nor makes us send more.
    fn drain_link(&mut self, worker: u32) {
        let mut snapshot_asked = false;
        let mut more = true;
        for _ in 0..MESSAGES_PER_WAKEUP {
            let Some(link) = self.links.get(&worker) else {
                return;
            };
            match link.recv() {
                Ok((message, _)) => {
                    if let Err(refused) = roles::permit(Role::Worker, Role::Prober, &message) {
                        log::error!("worker {worker}: {refused}; closing its link");
                        self.lose_link(worker);
                        return;
                    }
                    // All a worker may send us.
                    snapshot_asked |= message == Message::SnapshotRequest;
                }
                Err(e) if e.would_block() => {
                    more = false;
                    break;
                }
                // The worker died; the master links its successor.
                Err(ChannelError::Closed) => {
                    self.drop_link(worker);
                    return;
                }
                Err(e) => {
                    log::error!("link to worker {worker}: {e}; closing it");
                    self.lose_link(worker);
                    return;
                }
            }
        }
        if snapshot_asked {
            self.send_snapshot(worker);
        }
        if more && !self.unfinished_links.contains(&worker) {
            self.unfinished_links.push(worker);
        }
    }

    fn send_snapshot(&mut self, worker: u32) {
        if !self.first_round_done {
            return;
        }
        let backends = self
            .checker
            .states()
            .into_iter()
            .map(|(backend, up)| BackendState { backend, up })
            .collect();
        let snapshot = Message::BackendSnapshot {
            seq: self.seq,
            backends,
        };
        self.send(worker, &snapshot);
    }

    fn send(&mut self, worker: u32, message: &Message) {
        let Some(link) = self.links.get(&worker) else {
            return;
        };
        if let Err(e) = link.try_send(message) {
            // The worker will see a gap at the next change, or a new link, and resync.
            log::warn!("cannot send {} to worker {worker}: {e}", message.kind());
        }
    }

    /// Logs a change once and sends it to every worker.
    fn publish(&mut self, event: Event) {
        let update = match event {
            Event::Down { addr, reason } => {
                log::warn!("server {addr} is down: {reason}");
                BackendUpdate::Down(addr)
            }
            Event::Up { addr } => {
                log::info!("server {addr} is up again");
                BackendUpdate::Up(addr)
            }
            Event::Discovered { backend } => {
                log::info!(
                    "server {} answered on the servers' network: added (hotplug)",
                    backend.addr
                );
                BackendUpdate::Added(backend)
            }
            Event::IgnoredOutsideRip { addr } => {
                log::warn!("host {addr} answered the broadcast ping but lies outside RIP: ignored");
                return;
            }
            Event::BroadcastFailed { addr, error } => {
                log::warn!("cannot ping the broadcast address {addr}: {error}");
                return;
            }
        };
        self.seq += 1;
        if self.first_round_done {
            let message = Message::BackendUpdate {
                seq: self.seq,
                update,
            };
            let workers: Vec<u32> = self.links.keys().copied().collect();
            for worker in workers {
                self.send(worker, &message);
            }
        }
        // (Before the first round ends, the snapshot after it carries the change.)
        // The master too, after the workers (kernel mode forgets a dead server's
        // connections, which the workers must then move), for every change: it gets no
        // snapshot, so first-round changes must reach it as well.
        if let Err(e) = self.master.try_send(&Message::BackendChange { update }) {
            log::warn!("cannot send a backend change to the master: {e}");
        }
    }
}

/// ` (a, b)` for a log line, or nothing for an empty list.
fn list(addrs: &[IpAddr]) -> String {
    if addrs.is_empty() {
        return String::new();
    }
    let names: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    format!(" ({})", names.join(", "))
}
