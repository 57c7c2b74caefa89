//! The prober's `run`: jailed with only CAP_NET_RAW, it checks the real servers every
//! `check_cycle` (see `health`) and streams what changed to every worker over a direct link
//! that the master set up: a snapshot when a link is new or a worker asks, then numbered
//! changes. Every change also goes to the master (`BackendChange`, with the check result
//! behind it), which keeps the authoritative backend book and acts on changes in kernel
//! mode. The prober starts from that book (`BackendBook`), so a restart neither forgets
//! hot-plugged servers nor flaps down ones. Each change is logged once, with its reason;
//! nothing is logged per check.
//!
//! A reload (`ProberReconfigure`) changes the servers and the check settings in place
//! (see `health::reload`); a round follows at once when it added servers, so that a new
//! server that is down loses its clients within one round.
//!
//! A round never blocks the loop: the loop starts it, watches its echo sockets and
//! connects along with the master's channel and the worker links, and advances it when
//! one is ready or the phase's deadline comes. A link made or a snapshot asked for while
//! checks are in flight is served at once.

use crate::health::{Event, FailReason, HealthChecker};
use crate::serve_error::ServeError;
use loaded_proto::channel::{Channel, ChannelError};
use loaded_proto::message::{BackendState, BackendUpdate, Message, MessageKind, StateReason};
use loaded_proto::reload::HealthSettings;
use loaded_proto::roles::{self, ProberPart, Role};
use loaded_proto::setup_message::{receive, receive_book};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

const MASTER: Token = Token(usize::MAX);
/// The echo sockets: replies arrived. (Worker links use their worker index as token.)
const ECHO: Token = Token(usize::MAX - 1);
/// A connect of the round in flight finished.
const CONNECTS: Token = Token(usize::MAX - 2);

pub fn run() -> i32 {
    let (_args, channel) = loaded_proto::child::start(Role::Prober);
    let part = match receive(&channel, Role::Prober, MessageKind::ProberSetup) {
        Ok((Message::ProberSetup { part }, _)) => part,
        Ok(_) => unreachable!("`receive` checked the kind"),
        Err(e) => {
            log::error!("{e}");
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
    let book = match receive_book(&channel, Role::Prober) {
        Ok(book) => book,
        Err(e) => {
            log::error!("{e}");
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
    // After the withdrawn list: a server a reload took out is not hot-plugged back.
    checker.start_from(&book);
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
    /// When the next round starts (once the one in flight, if any, is over).
    next_round: Instant,
    /// The echo sockets registered with `poll`.
    watched_echo: Vec<RawFd>,
    /// The connects of the round in flight are registered with `poll`.
    watching_connects: bool,
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
            watched_echo: Vec::new(),
            watching_connects: false,
            unfinished_links: Vec::new(),
        }
        .watching_echo_sockets())
    }

    /// Registers the echo sockets (again after a reload opened new ones).
    fn watching_echo_sockets(mut self) -> Prober {
        self.watch_echo_sockets();
        self
    }

    fn watch_echo_sockets(&mut self) {
        let (echo, _) = self.checker.watched_fds();
        for fd in &echo {
            if self.watched_echo.contains(fd) {
                continue;
            }
            // Without it a round still ends, at its echo deadline instead of at the last
            // reply.
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut SourceFd(fd), ECHO, Interest::READABLE)
            {
                log::warn!("cannot watch an echo socket: {e}");
            }
        }
        self.watched_echo = echo;
    }

    /// Registers the connects of the round in flight once it has started them.
    fn watch_connects(&mut self) {
        if self.watching_connects {
            return;
        }
        let (_, connects) = self.checker.watched_fds();
        if connects.is_empty() {
            return;
        }
        self.watching_connects = true;
        for fd in &connects {
            // Without it the connect is seen at the connect deadline, not when it is done.
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut SourceFd(fd), CONNECTS, Interest::WRITABLE)
            {
                log::warn!("cannot watch a connect: {e}");
            }
        }
    }

    /// Moves the round in flight on; publishes its changes once it is over.
    fn advance_round(&mut self, now: Instant) {
        match self.checker.advance_round(now) {
            Some(changes) => {
                for change in changes {
                    self.publish(change);
                }
                // For `loadedctl status`; a full channel loses one round's time, no more.
                if let Err(e) = self.master.try_send(&Message::RoundDone) {
                    log::debug!("cannot tell the master the round is done: {e}");
                }
                self.next_round = Instant::now() + self.cycle;
            }
            None => self.watch_connects(),
        }
    }

    fn serve(&mut self) -> Result<(), ServeError> {
        let mut events = Events::with_capacity(16);
        loop {
            let wake_at = self.checker.round_deadline().unwrap_or(self.next_round);
            let timeout = if self.unfinished_links.is_empty() {
                wake_at.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ServeError::Poll(e)),
            }
            for event in events.iter() {
                match event.token() {
                    MASTER => {
                        if self.drain_master()? {
                            return Ok(());
                        }
                    }
                    // The round is advanced below, whatever woke the loop.
                    ECHO | CONNECTS => {}
                    link => self.drain_link(link.0 as u32),
                }
            }
            for worker in std::mem::take(&mut self.unfinished_links) {
                self.drain_link(worker);
            }
            let now = Instant::now();
            if !self.checker.round_in_flight() && now >= self.next_round {
                self.checker.start_round();
                self.watching_connects = false;
            }
            if self.checker.round_in_flight() {
                self.advance_round(now);
            }
        }
    }

    /// Returns true when the master says to stop (or is gone).
    fn drain_master(&mut self) -> Result<bool, ServeError> {
        loop {
            match self.master.recv() {
                Ok((message, fds)) => match roles::permit(Role::Master, Role::Prober, &message)
                    .map(|()| message)
                    .map_err(ServeError::OutOfPlace)?
                {
                    Message::Shutdown => return Ok(true),
                    Message::ProberLink { worker } => {
                        let fd = fds
                            .into_iter()
                            .next()
                            .expect("the channel checks the count");
                        self.add_link(worker, Channel::from_fd(fd))
                            .map_err(|error| ServeError::Link { worker, error })?;
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
                    other => return Err(ServeError::SecondSetup(other.kind())),
                },
                Err(e) if e.would_block() => return Ok(false),
                Err(ChannelError::Closed) => return Ok(true),
                Err(e) => return Err(ServeError::Control(e)),
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
        // The round in flight was dropped (a new one starts below); new sockets, if any,
        // are watched from now on.
        self.watching_connects = false;
        self.watch_echo_sockets();
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

    /// Sent as soon as a link is new: the prober started from the master's book, so it
    /// knows at least what a worker knows.
    fn send_snapshot(&mut self, worker: u32) {
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

    /// Logs a change once and sends it to every worker and to the master.
    fn publish(&mut self, event: Event) {
        let (update, reason) = match event {
            Event::Down { addr, reason } => {
                log::warn!("server {addr} is down: {reason}");
                (BackendUpdate::Down(addr), state_reason(reason))
            }
            Event::Up { addr } => {
                log::info!("server {addr} is up again");
                (BackendUpdate::Up(addr), StateReason::ChecksPassed)
            }
            Event::Confirmed { addr } => {
                // The workers have had it in service all along: only the book learns.
                self.tell_master(BackendUpdate::Up(addr), StateReason::ChecksPassed);
                return;
            }
            Event::Discovered { backend } => {
                log::info!(
                    "server {} answered on the servers' network: added (hotplug)",
                    backend.addr
                );
                (
                    BackendUpdate::Added(backend),
                    StateReason::AnsweredBroadcast,
                )
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
        let message = Message::BackendUpdate {
            seq: self.seq,
            update,
        };
        let workers: Vec<u32> = self.links.keys().copied().collect();
        for worker in workers {
            self.send(worker, &message);
        }
        // The master after the workers: kernel mode forgets a dead server's connections,
        // which the workers must then move.
        self.tell_master(update, reason);
    }

    fn tell_master(&mut self, update: BackendUpdate, reason: StateReason) {
        if let Err(e) = self
            .master
            .try_send(&Message::BackendChange { update, reason })
        {
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

/// The check result as the master's book records it.
fn state_reason(reason: FailReason) -> StateReason {
    match reason {
        FailReason::NoReply => StateReason::NoEchoReply,
        FailReason::ConnectRefused => StateReason::ConnectRefused,
        FailReason::Timeout => StateReason::ConnectTimedOut,
        FailReason::Error(text) => StateReason::Failed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::full_accept_queue;
    use loaded_proto::balancing::Backend;
    use loaded_proto::config::Config;
    use std::os::fd::AsFd;

    /// A worker link made while a round waits on a hung server gets its snapshot at once,
    /// not after the round.
    #[test]
    fn a_new_link_is_served_while_a_check_is_in_flight() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the prober opens raw ICMP sockets: run the test as root"
        );
        let (_listener, _queued, port) = full_accept_queue();
        let server = Backend {
            addr: "127.0.0.1".parse().unwrap(),
            weight: 1,
        };
        let config = Config {
            servers4: vec![server],
            port_alive: port,
            check_cycle: Duration::from_secs(30),
            check_timeout: Duration::from_secs(3),
            ..Config::default()
        };
        let part = ProberPart::of(&config, Vec::new());
        let (master, prober_end) = Channel::pair().unwrap();
        let checker = HealthChecker::new(&part).unwrap();
        let serving = std::thread::spawn(move || {
            let mut prober = Prober::new(prober_end, checker, part).unwrap();
            prober.serve()
        });
        // The first round starts at once; its echo is answered on loopback at once, and its
        // connect then hangs for check_timeout.
        std::thread::sleep(Duration::from_millis(300));
        let (ours, worker) = Channel::pair().unwrap();
        let asked = Instant::now();
        master
            .send_with_fds(&Message::ProberLink { worker: 0 }, &[ours.as_fd()])
            .unwrap();
        drop(ours);
        worker.set_nonblocking(true).unwrap();
        let snapshot = loop {
            match worker.recv() {
                Ok((message, _)) => break message,
                Err(e) if e.would_block() => {
                    assert!(asked.elapsed() < Duration::from_secs(5), "no snapshot");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        };
        let waited = asked.elapsed();
        assert!(
            waited < Duration::from_secs(1),
            "the snapshot waited for the round: {waited:?}"
        );
        assert_eq!(
            snapshot,
            Message::BackendSnapshot {
                seq: 0,
                backends: vec![BackendState {
                    backend: server,
                    up: true
                }],
            }
        );
        master.send(&Message::Shutdown).unwrap();
        serving.join().unwrap().unwrap();
    }
}
