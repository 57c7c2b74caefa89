//! The master's event loop: it watches its children (their channels and SIGCHLD), relays
//! their log lines, restarts a child that dies, reloads the config on SIGHUP, and stops
//! everything on SIGTERM/SIGINT.
//!
//! A dead worker is never left unnoticed: it is logged and restarted with a fresh queue
//! socket (the binding died with the old one). A child that keeps dying stops the whole
//! balancer rather than flapping forever.

use crate::backend_book::{BackendBook, Recorded};
use crate::child_errors::{ChannelEnd, Death, GaveUp, StartError};
use crate::control_server::{self, ControlServer};
use crate::kernel_mode::KernelForwarding;
use crate::log_budget::{self, LogBudget};
use crate::operator::OperatorState;
use crate::queue_drops::{self, DropWatch};
use crate::queues;
use crate::reload::{self, Plan, Reloader};
use crate::restart_policy::{Next, RestartPolicy};
use crate::spawn::{spawn, JailArgs, Role};
use crate::status;
use crate::syslog_sink;
use loaded_proto::channel::{Channel, ChannelError};
use loaded_proto::config::Config;
use loaded_proto::control::{ControlError, ProberStatus, Request};
use loaded_proto::counters::SharedCounters;
use loaded_proto::message::{BackendUpdate, Message, StateReason};
use loaded_proto::roles::{self, OutOfPlace, ProberPart, Role as ProcRole, WorkerPart};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const SIGNALS: Token = Token(0);

const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// A child not ready this long after its start hangs in its setup (a flow-table spin, a
/// jail step that blocks): it is killed, and its death counts as a life that never got
/// ready.
const READY_DEADLINE: Duration = Duration::from_secs(15);
/// Messages read from one child before the loop looks at everything else again.
const MESSAGES_PER_WAKEUP: usize = 64;
/// How often every ready child is sent a Ping, which its main loop answers with Pong.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// A worker that has not answered this long hangs (or is stopped): it is killed, and the
/// normal supervision restarts it. Its loop answers between two bursts, within 10 ms even
/// in a flood.
const WORKER_HEARTBEAT_LIMIT: Duration = Duration::from_secs(10);
/// How often the kernel's drop counters of our queues are read and growth is logged.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// What the supervisor needs to (re)start children.
pub struct Settings {
    pub config: Config,
    pub worker_binary: PathBuf,
    pub prober_binary: PathBuf,
    pub jail: JailArgs,
    pub queue_len: u32,
    pub flow_table: OwnedFd,
    pub flow_table_capacity: u64,
    /// The shared counters region, with one block per worker number.
    pub counters: OwnedFd,
    pub counter_blocks: u32,
}

struct Child {
    role: Role,
    pid: Pid,
    channel: Option<Channel>,
    /// It reported Ready in this life: its setup works.
    ready: bool,
    /// Until it reports Ready: when it is killed for hanging in its setup (None once ready,
    /// or once killed for it).
    ready_deadline: Option<Instant>,
    /// How many of its log lines may still be relayed.
    log_budget: LogBudget,
    /// Once ready: when it last answered (Ready or Pong); None once killed for not
    /// answering.
    last_answer: Option<Instant>,
}

pub struct Supervisor {
    settings: Settings,
    poll: Poll,
    children: HashMap<Token, Child>,
    next_token: usize,
    /// Per child name: when a dead one is started again.
    restart_policies: HashMap<String, RestartPolicy>,
    /// Children waiting out their restart delay.
    pending_restarts: Vec<(Instant, Role)>,
    /// Channels read up to the per-wakeup cap that may hold more (their readiness edge is
    /// spent, so the loop comes back to them without waiting).
    unfinished_reads: Vec<Token>,
    queue_drops: DropWatch,
    /// When the next Ping goes out.
    next_ping: Instant,
    /// forward=kernel: acts on the prober's backend changes.
    kernel: Option<KernelForwarding>,
    reloader: Reloader,
    /// The authoritative backend state, which every child starts from.
    book: BackendBook,
    /// `loadedctl`'s socket (None only in tests of the loop's other parts).
    control: Option<ControlServer>,
    /// The operator's drains and weights, which every worker starts from.
    operator: OperatorState,
    /// The master's reading view of the workers' counters.
    counters: SharedCounters,
    /// When the prober last finished a round.
    last_round: Option<SystemTime>,
}

/// The signals the master handles; registered before the master acquires anything, so that
/// a SIGTERM at any point of the start still leads to a clean stop.
pub fn handle_signals() -> io::Result<Signals> {
    #[cfg(not(feature = "seccomp-test"))]
    let signals = [signal_hook::consts::SIGCHLD, SIGTERM, SIGINT, SIGHUP];
    #[cfg(feature = "seccomp-test")]
    let signals = [
        signal_hook::consts::SIGCHLD,
        SIGTERM,
        SIGINT,
        SIGHUP,
        signal_hook::consts::SIGUSR2,
    ];
    Signals::new(signals)
}

/// Why the loop ended.
pub enum Exit {
    /// SIGTERM or SIGINT.
    Stopped,
    /// A child never got ready, life after life.
    GaveUp(GaveUp),
}

impl Supervisor {
    pub fn new(
        settings: Settings,
        kernel: Option<KernelForwarding>,
        reloader: Reloader,
        control: ControlServer,
    ) -> io::Result<Supervisor> {
        let counters =
            SharedCounters::map(settings.counters.as_fd(), settings.counter_blocks as usize)?;
        Ok(Supervisor {
            control: Some(control),
            operator: OperatorState::default(),
            counters,
            last_round: None,
            book: BackendBook::new(&settings.config, SystemTime::now()),
            settings,
            poll: Poll::new()?,
            children: HashMap::new(),
            next_token: 1,
            restart_policies: HashMap::new(),
            pending_restarts: Vec::new(),
            unfinished_reads: Vec::new(),
            queue_drops: DropWatch::default(),
            next_ping: Instant::now() + HEARTBEAT_INTERVAL,
            kernel,
            reloader,
        })
    }

    /// Starts a worker on an already bound queue socket; the master keeps no copy of it.
    pub fn start_worker(&mut self, role: Role, queue_socket: nfq::Queue) -> Result<(), StartError> {
        let Role::Worker { index, queue, .. } = role else {
            unreachable!("start_worker is for workers");
        };
        let spawned = spawn(&self.settings.worker_binary, &role, &self.settings.jail)
            .map_err(StartError::Spawn)?;
        let setup = Message::WorkerSetup {
            worker: index,
            queue,
            flow_table_capacity: self.settings.flow_table_capacity,
            counter_blocks: self.settings.counter_blocks,
            part: Box::new(WorkerPart::of(&self.settings.config)),
        };
        let sent = spawned
            .channel
            .send_with_fds(
                &setup,
                &[
                    queue_socket.as_fd(),
                    self.settings.flow_table.as_fd(),
                    self.settings.counters.as_fd(),
                ],
            )
            .and_then(|()| spawned.channel.send(&self.book_message()))
            .and_then(|()| spawned.channel.send(&self.overrides_message()));
        drop(queue_socket);
        let name = role.name();
        self.adopt(role, spawned.pid, spawned.channel)
            .map_err(StartError::Spawn)?;
        sent.map_err(|source| StartError::SendSetup { name, source })?;
        self.link_prober_to_worker(index);
        Ok(())
    }

    pub fn start_prober(&mut self) -> Result<(), StartError> {
        let role = Role::Prober;
        let spawned = spawn(&self.settings.prober_binary, &role, &self.settings.jail)
            .map_err(StartError::Spawn)?;
        let sent = spawned
            .channel
            .send(&Message::ProberSetup {
                part: Box::new(ProberPart::of(
                    &self.settings.config,
                    self.reloader.withdrawn(),
                )),
            })
            .and_then(|()| spawned.channel.send(&self.book_message()));
        let name = role.name();
        self.adopt(role, spawned.pid, spawned.channel)
            .map_err(StartError::Spawn)?;
        sent.map_err(|source| StartError::SendSetup { name, source })?;
        log::info!(
            "prober starts from the backend book: {}",
            self.book.summary()
        );
        let workers: Vec<u32> = self
            .children
            .values()
            .filter_map(|child| match child.role {
                Role::Worker { index, .. } => Some(index),
                Role::Prober => None,
            })
            .collect();
        for worker in workers {
            self.link_prober_to_worker(worker);
        }
        Ok(())
    }

    /// The operator's drains and weights, as every worker gets them.
    fn overrides_message(&self) -> Message {
        Message::ServerOverrides {
            overrides: Box::new(self.operator.overrides()),
        }
    }

    /// Tells every worker the operator's drains and weights; a worker that cannot be told
    /// is restarted (its successor starts with them).
    fn send_overrides(&self) {
        let message = self.overrides_message();
        for child in self.children.values() {
            let (Role::Worker { .. }, Some(channel)) = (&child.role, &child.channel) else {
                continue;
            };
            if let Err(e) = channel.send(&message) {
                log::error!(
                    "{}: cannot send the operator's drains and weights: {e}; restarting it",
                    child.role.name()
                );
                let _ = kill(child.pid, Signal::SIGKILL);
            }
        }
    }

    /// What a child is told of the servers before it turns Ready.
    fn book_message(&self) -> Message {
        Message::BackendBook {
            backends: self.book.booked(),
        }
    }

    /// Gives the prober and worker `worker` a fresh pair to talk over (backend updates flow
    /// from prober to worker directly, not through the master). Either side may be missing
    /// (no -f, or being restarted); the link is made when it comes back.
    fn link_prober_to_worker(&mut self, worker: u32) {
        let channel_of = |wanted: &dyn Fn(&Role) -> bool| {
            self.children
                .values()
                .find(|child| wanted(&child.role))
                .and_then(|child| child.channel.as_ref())
        };
        let Some(prober) = channel_of(&|role| *role == Role::Prober) else {
            return;
        };
        let Some(worker_channel) =
            channel_of(&|role| matches!(role, Role::Worker { index, .. } if *index == worker))
        else {
            return;
        };
        let (prober_end, worker_end) = match Channel::pair() {
            Ok(pair) => pair,
            Err(e) => {
                log::error!("cannot link the prober to worker {worker}: {e}");
                return;
            }
        };
        let link = Message::ProberLink { worker };
        let sent = worker_channel
            .send_with_fds(&link, &[worker_end.as_fd()])
            .and_then(|()| prober.send_with_fds(&link, &[prober_end.as_fd()]));
        if let Err(e) = sent {
            log::error!("cannot link the prober to worker {worker}: {e}");
        }
    }

    fn adopt(&mut self, role: Role, pid: Pid, channel: Channel) -> io::Result<()> {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.poll.registry().register(
            &mut SourceFd(&channel.as_raw_fd()),
            token,
            Interest::READABLE,
        )?;
        log::info!("started {} (pid {pid})", role.name());
        self.children.insert(
            token,
            Child {
                role,
                pid,
                channel: Some(channel),
                ready: false,
                ready_deadline: Some(Instant::now() + READY_DEADLINE),
                log_budget: LogBudget::new(Instant::now()),
                last_answer: None,
            },
        );
        Ok(())
    }

    /// `signals` were set up before any resource was acquired, so a stop asked for during
    /// the start is still in them and handled here.
    pub fn run(&mut self, signals: &mut Signals) -> io::Result<Exit> {
        self.poll
            .registry()
            .register(signals, SIGNALS, Interest::READABLE)?;
        if let Some(control) = &self.control {
            control.register(self.poll.registry())?;
        }
        // A child may have died before the handler existed.
        if let Some(exit) = self.reap_children() {
            return Ok(exit);
        }
        let mut events = Events::with_capacity(64);
        self.report_queue_drops();
        let mut next_drop_report = Instant::now() + DROP_REPORT_INTERVAL;
        loop {
            let now = Instant::now();
            if now >= next_drop_report {
                self.report_queue_drops();
                next_drop_report = now + DROP_REPORT_INTERVAL;
            }
            let wake_at = self
                .kernel
                .as_ref()
                .and_then(KernelForwarding::next_deadline)
                .map_or(next_drop_report, |at| at.min(next_drop_report));
            let wake_at = wake_at.min(self.next_ping);
            let wake_at = self
                .pending_restarts
                .iter()
                .map(|(at, _)| *at)
                .fold(wake_at, Instant::min);
            let wake_at = self
                .children
                .values()
                .filter_map(|child| child.ready_deadline)
                .fold(wake_at, Instant::min);
            let wake_at = self
                .control
                .as_ref()
                .and_then(ControlServer::next_deadline)
                .map_or(wake_at, |at| at.min(wake_at));
            let control_pending = self
                .control
                .as_ref()
                .is_some_and(ControlServer::has_pending_work);
            let wake_at = if self.unfinished_reads.is_empty() && !control_pending {
                wake_at
            } else {
                now
            };
            match self
                .poll
                .poll(&mut events, Some(wake_at.saturating_duration_since(now)))
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                if event.token() == SIGNALS {
                    for signal in signals.pending() {
                        match signal {
                            SIGTERM | SIGINT => {
                                log::info!("signal {signal}: stopping");
                                return Ok(Exit::Stopped);
                            }
                            SIGHUP => {
                                syslog_sink::reconnect();
                                log::info!("SIGHUP: syslog reopened, reloading the config");
                                self.reload();
                            }
                            #[cfg(feature = "seccomp-test")]
                            signal_hook::consts::SIGUSR2 => {
                                log::info!("SIGUSR2: children, try a forbidden system call");
                                for child in self.children.values() {
                                    if let Some(channel) = &child.channel {
                                        let _ = channel.send(&Message::TrySyscallForTest);
                                    }
                                }
                            }
                            _ => {
                                if let Some(exit) = self.reap_children() {
                                    return Ok(exit);
                                }
                            }
                        }
                    }
                } else if self
                    .control
                    .as_ref()
                    .is_some_and(|control| control.owns(event.token()))
                {
                    self.serve_control(event.token(), event.is_readable(), event.is_writable());
                } else {
                    self.drain_channel(event.token());
                }
            }
            if control_pending {
                self.serve_control(control_server::LISTENER, true, false);
            }
            for token in std::mem::take(&mut self.unfinished_reads) {
                self.drain_channel(token);
            }
            if let Some(control) = self.control.as_mut() {
                control.drop_late(self.poll.registry(), Instant::now());
            }
            if let Some(kernel) = self.kernel.as_mut() {
                kernel.run_due(Instant::now());
            }
            if let Some(exit) = self.run_due_restarts(Instant::now()) {
                return Ok(exit);
            }
            self.kill_the_unready(Instant::now());
            self.heartbeat(Instant::now());
        }
    }

    /// Kills the ready children that stopped answering the heartbeat (SIGCHLD then
    /// restarts them), and pings the others when it is time.
    fn heartbeat(&mut self, now: Instant) {
        if now < self.next_ping {
            return;
        }
        self.next_ping = now + HEARTBEAT_INTERVAL;
        let check_timeout = self.settings.config.check_timeout;
        for child in self.children.values_mut() {
            let Some(last_answer) = child.last_answer else {
                continue;
            };
            let limit = heartbeat_limit(&child.role, check_timeout);
            if now.saturating_duration_since(last_answer) >= limit {
                log::error!(
                    "{} (pid {}) did not answer the heartbeat for {} s; killing it",
                    child.role.name(),
                    child.pid,
                    limit.as_secs()
                );
                let _ = kill(child.pid, Signal::SIGKILL);
                child.last_answer = None;
            } else if let Some(channel) = &child.channel {
                // A full channel is a child that does not read: the limit catches it.
                let _ = channel.try_send(&Message::Ping);
            }
        }
    }

    /// Reads the config file again and applies what can change live (see `reload`).
    pub fn reload(&mut self) {
        let plan = match self.reloader.prepare(&self.settings.config) {
            Ok(Some(plan)) => plan,
            Ok(None) => {
                log::info!("reload: nothing to apply");
                return;
            }
            Err(e) => {
                for line in e.to_string().lines() {
                    log::error!("reload refused, the running config stays: {line}");
                }
                return;
            }
        };
        let Plan {
            config,
            diff,
            balancing,
            health,
        } = plan;
        let added: Vec<_> = diff.added.iter().map(|b| b.addr).collect();
        if let Some(kernel) = self.kernel.as_mut() {
            // A decided packet must find its server's map element.
            kernel.reload_servers(&config, &added);
        }
        self.book
            .reload(&config, &health.withdrawn, SystemTime::now());
        // From now on children started anew get the new config and book.
        self.settings.config = config;
        let worker_message = Message::WorkerReconfigure {
            settings: Box::new(balancing),
        };
        let prober_message = Message::ProberReconfigure {
            settings: Box::new(health),
        };
        for child in self.children.values() {
            let message = match child.role {
                Role::Worker { .. } => &worker_message,
                Role::Prober => &prober_message,
            };
            let sent = match &child.channel {
                Some(channel) => channel.send(message),
                None => continue,
            };
            if let Err(e) = sent {
                // A child left on the old config would disagree with the others; its
                // successor starts with the new one.
                log::error!(
                    "{}: cannot send the reload: {e}; restarting it",
                    child.role.name()
                );
                let _ = kill(child.pid, Signal::SIGKILL);
            }
        }
        if let Some(kernel) = self.kernel.as_mut() {
            kernel.forget_removed(&diff.removed);
        }
        // The operator's drains and weights stay for the servers the reload keeps; the
        // reload just gave the workers the file's weights, so they hear them again.
        let book = &self.book;
        for server in self.operator.retain(|server| book.entry(server).is_some()) {
            log::info!("reload removed server {server}: its drain and weight set by loadedctl are forgotten");
        }
        self.send_overrides();
        log::info!("reloaded: {}", reload::describe(&diff));
    }

    /// A readiness event of the control socket's listener or of one of its clients.
    fn serve_control(&mut self, token: mio::Token, readable: bool, writable: bool) {
        let Some(mut control) = self.control.take() else {
            return;
        };
        let registry = self.poll.registry().try_clone();
        match registry {
            Ok(registry) => {
                let mut answer = |request| self.answer(request);
                if token == control_server::LISTENER {
                    control.accept(&registry, &mut answer);
                } else {
                    control.serve(&registry, token, readable, writable, &mut answer);
                }
            }
            Err(e) => log::error!("control socket: {e}"),
        }
        self.control = Some(control);
    }

    /// What a `loadedctl` request gets.
    fn answer(&mut self, request: Request) -> Result<String, ControlError> {
        match request {
            Request::Status => Ok(self.status().to_text()),
            Request::StatusJson => Ok(self.status().to_json()),
            Request::Metrics => Ok(self.status().to_prometheus()),
            Request::Drain(server) => {
                self.known_server(server)?;
                if self.operator.drain(server) {
                    log::info!(
                        "loadedctl: server {server} drained: no new clients, mapped ones stay"
                    );
                    self.send_overrides();
                    Ok(format!("server {server} is draining\n"))
                } else {
                    Ok(format!("server {server} was draining already\n"))
                }
            }
            Request::Undrain(server) => {
                self.known_server(server)?;
                if self.operator.undrain(server) {
                    log::info!("loadedctl: server {server} undrained: it takes new clients again");
                    self.send_overrides();
                    Ok(format!("server {server} takes new clients again\n"))
                } else {
                    Ok(format!("server {server} was not draining\n"))
                }
            }
            Request::Weight(server, weight) => {
                self.known_server(server)?;
                self.operator.set_weight(server, weight);
                log::info!("loadedctl: server {server} weight set to {weight}");
                self.send_overrides();
                Ok(format!("server {server} weight {weight}\n"))
            }
        }
    }

    /// `Err` unless `server` is in the book (configured, or hot-plugged and not withdrawn).
    fn known_server(&self, server: std::net::IpAddr) -> Result<(), ControlError> {
        match self.book.entry(server) {
            Some(_) => Ok(()),
            None => Err(ControlError::NoSuchServer(server)),
        }
    }

    fn status(&mut self) -> loaded_proto::control::Status {
        let sources = status::Sources {
            config: &self.settings.config,
            book: &self.book,
            operator: &self.operator,
            counters: &self.counters,
            prober: ProberStatus {
                running: self.settings.config.failover,
                last_round: self.last_round.map(status::unix_seconds),
            },
        };
        status::build(&sources, self.reloader.slots_mut())
    }

    /// Logs the packets the kernel could not give our workers since the last report.
    fn report_queue_drops(&mut self) {
        let ours: BTreeSet<u16> = self
            .children
            .values()
            .filter_map(|child| match child.role {
                Role::Worker { queue, .. } => Some(queue),
                Role::Prober => None,
            })
            .collect();
        let Ok(text) = std::fs::read_to_string(queue_drops::PROC_PATH) else {
            return;
        };
        for line in self.queue_drops.update(queue_drops::parse(&text, &ours)) {
            log::warn!("{line}");
        }
    }

    fn drain_channel(&mut self, token: Token) {
        let mut relinks = Vec::new();
        if self.read_channel(token, &mut relinks) && !self.unfinished_reads.contains(&token) {
            self.unfinished_reads.push(token);
        }
        relinks.dedup();
        for worker in relinks {
            self.link_prober_to_worker(worker);
        }
    }

    /// Handles what a child sent, at most MESSAGES_PER_WAKEUP messages, so that a child
    /// that never stops talking cannot starve signals and the other children; `true` when
    /// that cap was reached and more may be waiting. Links it asks to be remade are
    /// collected in `relinks`.
    fn read_channel(&mut self, token: Token, relinks: &mut Vec<u32>) -> bool {
        let Some(child) = self.children.get_mut(&token) else {
            return false;
        };
        let name = child.role.name();
        for _ in 0..MESSAGES_PER_WAKEUP {
            let Some(channel) = child.channel.as_ref() else {
                return false;
            };
            let result = channel.recv();
            if let Ok((Message::Log { .. }, _)) = &result {
                match child.log_budget.take(Instant::now()) {
                    log_budget::Verdict::Drop => continue,
                    log_budget::Verdict::Relay { dropped_before } if dropped_before > 0 => {
                        log::warn!(
                            "{name}: {dropped_before} log lines dropped (more than {} a second)",
                            log_budget::LINES_PER_SECOND
                        );
                    }
                    log_budget::Verdict::Relay { .. } => {}
                }
            }
            match &result {
                Ok((Message::Ready, _)) if !child.ready => {
                    child.ready = true;
                    child.ready_deadline = None;
                    child.last_answer = Some(Instant::now());
                }
                Ok((Message::Pong, _)) if child.last_answer.is_some() => {
                    child.last_answer = Some(Instant::now());
                }
                _ => {}
            }
            let verdict = match result {
                Ok((message, _)) => dispatch(&child.role, &name, message),
                Err(e) if e.would_block() => return false,
                Err(ChannelError::Closed) => Err(ChannelEnd::Closed),
                Err(e) => Err(ChannelEnd::Broken(e)),
            };
            let verdict = match verdict {
                Ok(Some(Action::Relink(worker))) => {
                    relinks.push(worker);
                    Ok(())
                }
                Ok(Some(Action::BackendChange(update, reason))) => {
                    match self.book.record(update, reason, SystemTime::now()) {
                        Err(untrusted) => Err(ChannelEnd::Untrusted(untrusted)),
                        Ok(Recorded::Unknown) => {
                            log::debug!(
                                "the prober spoke of a server the book does not hold: {update:?}"
                            );
                            Ok(())
                        }
                        // The workers hear of changes directly; kernel mode acts on them.
                        Ok(Recorded::Written) => {
                            if let Some(kernel) = self.kernel.as_mut() {
                                kernel.on_change(update);
                            }
                            Ok(())
                        }
                    }
                }
                Ok(Some(Action::RoundDone)) => {
                    self.last_round = Some(SystemTime::now());
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(reason) = verdict {
                // Unknown or malformed traffic ends the channel; the child goes with it and
                // SIGCHLD brings a fresh one.
                let channel = child.channel.take();
                if let Some(channel) = channel {
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&channel.as_raw_fd()));
                }
                if !matches!(reason, ChannelEnd::Closed) {
                    log::error!("{name}: {reason}; ending it");
                }
                let _ = kill(child.pid, Signal::SIGKILL);
                return false;
            }
        }
        true
    }

    /// Reaps every dead child and restarts it; Some(exit) when one keeps dying.
    fn reap_children(&mut self) -> Option<Exit> {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return None,
                Ok(status) => status,
            };
            let (pid, death) = match status {
                WaitStatus::Exited(pid, status) => (pid, Death::Exited { pid, status }),
                WaitStatus::Signaled(pid, signal, _) => (pid, Death::Killed { pid, signal }),
                _ => continue,
            };
            let Some(token) = self
                .children
                .iter()
                .find(|(_, child)| child.pid == pid)
                .map(|(token, _)| *token)
            else {
                continue;
            };
            let child = self.children.remove(&token).expect("found above");
            if let Some(channel) = child.channel {
                let last_words = relay_remaining(&child.role.name(), &channel);
                if child.role == Role::Prober {
                    self.record_last_changes(last_words);
                }
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut SourceFd(&channel.as_raw_fd()));
            }
            let name = child.role.name();
            let next = self
                .restart_policies
                .entry(name.clone())
                .or_default()
                .died(Instant::now(), child.ready);
            if let Some(exit) = self.after_death(child.role, death, next) {
                return Some(exit);
            }
        }
    }

    /// The changes a dead prober sent just before it died: its successor starts from the
    /// book, so the book must hold them. Nothing else a dead child said matters any more.
    fn record_last_changes(&mut self, messages: Vec<Message>) {
        for message in messages {
            let Message::BackendChange { update, reason } = message else {
                continue;
            };
            let recorded = self.book.record(update, reason, SystemTime::now());
            if let (Ok(Recorded::Written), Some(kernel)) = (recorded, self.kernel.as_mut()) {
                kernel.on_change(update);
            }
        }
    }

    /// Restarts a dead child at once or later, as its policy says; Some(exit) to give up.
    fn after_death(&mut self, role: Role, what_happened: Death, next: Next) -> Option<Exit> {
        let name = role.name();
        match next {
            Next::GiveUp { lives } => Some(Exit::GaveUp(GaveUp {
                name,
                last: what_happened,
                lives,
            })),
            Next::RestartAfter(delay) if delay.is_zero() => {
                log::error!("{name} {what_happened}; restarting it");
                self.restart(role)
            }
            Next::RestartAfter(delay) => {
                log::error!(
                    "{name} {what_happened}; it keeps dying: restarting it in {} s",
                    delay.as_secs()
                );
                self.pending_restarts.push((Instant::now() + delay, role));
                None
            }
        }
    }

    /// Kills the children past their readiness deadline; SIGCHLD then restarts them.
    fn kill_the_unready(&mut self, now: Instant) {
        for child in self.children.values_mut() {
            if child.ready_deadline.is_some_and(|deadline| now >= deadline) {
                log::error!(
                    "{} (pid {}) is not ready {} s after its start; killing it",
                    child.role.name(),
                    child.pid,
                    READY_DEADLINE.as_secs()
                );
                let _ = kill(child.pid, Signal::SIGKILL);
                child.ready_deadline = None;
            }
        }
    }

    /// Starts the children whose restart delay is over.
    fn run_due_restarts(&mut self, now: Instant) -> Option<Exit> {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_restarts)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.pending_restarts = waiting;
        for (_, role) in due {
            if let Some(exit) = self.restart(role) {
                return Some(exit);
            }
        }
        None
    }

    /// Starts a dead child again. A start that fails (no queue socket, no process) counts
    /// as a life that never got ready; Some(exit) when that makes it a setup fault.
    fn restart(&mut self, role: Role) -> Option<Exit> {
        let name = role.name();
        let started = match role {
            Role::Worker { queue, .. } => queues::open(queue, self.settings.queue_len)
                .map_err(StartError::OpenQueue)
                .and_then(|socket| self.start_worker(role.clone(), socket)),
            Role::Prober => self.start_prober(),
        };
        if let Err(e) = started {
            let next = self
                .restart_policies
                .entry(name.clone())
                .or_default()
                .died(Instant::now(), false);
            return self.after_death(role, Death::NotStarted(e), next);
        }
        None
    }

    /// Asks every child to stop, then kills the ones that do not within the grace period.
    pub fn stop_children(&mut self) {
        for child in self.children.values() {
            if let Some(channel) = &child.channel {
                let _ = channel.send(&Message::Shutdown);
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while !self.children.is_empty() && Instant::now() < deadline {
            self.reap_quietly();
            std::thread::sleep(Duration::from_millis(20));
        }
        for child in self.children.values() {
            log::warn!(
                "{} (pid {}) did not stop; killing it",
                child.role.name(),
                child.pid
            );
            let _ = kill(child.pid, Signal::SIGKILL);
        }
        while !self.children.is_empty() && waitpid(Pid::from_raw(-1), None).is_ok() {
            self.reap_quietly();
        }
    }

    fn reap_quietly(&mut self) {
        self.children.retain(|_, child| {
            let exited = matches!(
                waitpid(child.pid, Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_)
            );
            if exited {
                if let Some(channel) = &child.channel {
                    relay_remaining(&child.role.name(), channel);
                }
            }
            !exited
        });
    }
}

/// Relays what a child sent before it exited (its last words, its totals): once it is gone,
/// all of it is already in the socket buffer. Returns the messages that were no log line.
fn relay_remaining(name: &str, channel: &Channel) -> Vec<Message> {
    let mut rest = Vec::new();
    // Bounded: the buffer holds a finite number of datagrams, but be sure.
    for _ in 0..1024 {
        match channel.recv() {
            Ok((message, _)) => rest.extend(handle_any_child(name, message)),
            Err(_) => break,
        }
    }
    rest
}

/// Something a child asked the master to do.
#[derive(Debug)]
enum Action {
    /// Make a fresh link between the prober and this worker.
    Relink(u32),
    /// The prober saw a backend change: the book records it, kernel mode acts on it.
    BackendChange(BackendUpdate, StateReason),
    /// The prober finished a round.
    RoundDone,
}

/// How long a child may leave the heartbeat unanswered. The prober gets the length of a
/// round's two phases (the pings, the connects: up to one `check_timeout` each) on top: its
/// loop serves the master between the steps of a round, but a slow step must not cost it
/// its life.
fn heartbeat_limit(role: &Role, check_timeout: Duration) -> Duration {
    match role {
        Role::Worker { .. } => WORKER_HEARTBEAT_LIMIT,
        Role::Prober => WORKER_HEARTBEAT_LIMIT + 2 * check_timeout,
    }
}

/// What a child said: checked against the proc table first (nothing out of place is
/// looked into), then handled by its role's dispatcher.
fn dispatch(role: &Role, name: &str, message: Message) -> Result<Option<Action>, ChannelEnd> {
    roles::permit(role.proc(), ProcRole::Master, &message).map_err(ChannelEnd::OutOfPlace)?;
    match role {
        Role::Worker { index, .. } => dispatch_worker(name, *index, message),
        Role::Prober => dispatch_prober(name, message),
    }
}

/// What a dispatcher that the table let `message` through has no arm for: the same.
fn out_of_place(from: ProcRole, message: &Message) -> ChannelEnd {
    ChannelEnd::OutOfPlace(OutOfPlace {
        from,
        to: ProcRole::Master,
        kind: message.kind(),
    })
}

/// What a worker may say to the master (the table let it through).
fn dispatch_worker(name: &str, index: u32, message: Message) -> Result<Option<Action>, ChannelEnd> {
    match handle_any_child(name, message) {
        None => Ok(None),
        // A worker may only speak of its own link.
        Some(Message::LinkLost { worker }) if worker == index => Ok(Some(Action::Relink(worker))),
        Some(Message::LinkLost { worker }) => Err(ChannelEnd::NotItsLink { worker }),
        Some(other) => Err(out_of_place(ProcRole::Worker, &other)),
    }
}

/// What the prober may say to the master (the table let it through).
fn dispatch_prober(name: &str, message: Message) -> Result<Option<Action>, ChannelEnd> {
    match handle_any_child(name, message) {
        None => Ok(None),
        Some(Message::LinkLost { worker }) => Ok(Some(Action::Relink(worker))),
        Some(Message::BackendChange { update, reason }) => {
            Ok(Some(Action::BackendChange(update, reason)))
        }
        Some(Message::RoundDone) => Ok(Some(Action::RoundDone)),
        Some(other) => Err(out_of_place(ProcRole::Prober, &other)),
    }
}

/// The messages every child may send; returns the message if it is not one of them.
fn handle_any_child(name: &str, message: Message) -> Option<Message> {
    match message {
        Message::Log { level, text } => syslog_sink::log_line(level, name, &text),
        Message::Ready => log::info!("{name} is ready"),
        // The heartbeat's time is taken where the message is read.
        Message::Pong => {}
        other => return Some(other),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use loaded_proto::message::MessageKind;

    const WORKER: Role = Role::Worker {
        index: 0,
        core: 0,
        queue: 0,
    };

    #[test]
    fn what_a_role_may_not_send_ends_its_channel_naming_role_peer_and_kind() {
        let change = Message::BackendChange {
            update: BackendUpdate::Up("198.19.0.11".parse().unwrap()),
            reason: StateReason::ChecksPassed,
        };
        assert!(matches!(
            dispatch(&Role::Prober, "prober", change.clone()),
            Ok(Some(Action::BackendChange(_, StateReason::ChecksPassed)))
        ));
        let refused = dispatch(&WORKER, "worker/0", change).unwrap_err();
        assert!(
            matches!(
                refused,
                ChannelEnd::OutOfPlace(OutOfPlace {
                    from: ProcRole::Worker,
                    to: ProcRole::Master,
                    kind: MessageKind::BackendChange
                })
            ),
            "{refused:?}"
        );
        assert_eq!(
            refused.to_string(),
            "the worker may not send BackendChange to the master"
        );
        for child in [&WORKER, &Role::Prober] {
            assert!(matches!(
                dispatch(child, "child", Message::Shutdown),
                Err(ChannelEnd::OutOfPlace(_))
            ));
            assert!(matches!(dispatch(child, "child", Message::Pong), Ok(None)));
        }
    }

    #[test]
    fn the_prober_may_take_two_check_timeouts_longer_to_answer_the_heartbeat() {
        let timeout = Duration::from_secs(3);
        assert_eq!(heartbeat_limit(&WORKER, timeout), Duration::from_secs(10));
        assert_eq!(
            heartbeat_limit(&Role::Prober, timeout),
            Duration::from_secs(16)
        );
    }

    #[test]
    fn a_worker_speaks_only_of_its_own_link() {
        assert!(matches!(
            dispatch(&WORKER, "worker/0", Message::LinkLost { worker: 0 }),
            Ok(Some(Action::Relink(0)))
        ));
        assert!(matches!(
            dispatch(&WORKER, "worker/0", Message::LinkLost { worker: 1 }),
            Err(ChannelEnd::NotItsLink { worker: 1 })
        ));
        assert!(matches!(
            dispatch(&Role::Prober, "prober", Message::LinkLost { worker: 1 }),
            Ok(Some(Action::Relink(1)))
        ));
    }
}
