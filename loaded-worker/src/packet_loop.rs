//! The NFQUEUE loop: packets are served in bursts (one receive and one send of verdicts per
//! burst), every packet read gets exactly one verdict whatever the rewrite decides, and the
//! control channel, the prober's link and the flow table's housekeeping are served in
//! between, also during a flood.

use crate::counters::Counters;
use crate::datapath::balancer::Balancer;
use crate::datapath::flow::Vips;
use crate::datapath::kernel_forward::{self, KernelDecision};
use crate::datapath::nat::{self, Outcome};
use crate::nfqueue::{BurstSummary, Decision, QueueError, QueueSocket, QueuedPacket, BURST};
use crate::prober_link::ProberLink;
use loaded_proto::channel::{Channel, ChannelError};
use loaded_proto::counters::WorkerCounters;
use loaded_proto::forwarding::Forward;
use loaded_proto::message::Message;
use loaded_proto::reload::BalancingSettings;
use loaded_proto::roles::{self, OutOfPlace, Role};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const QUEUE: Token = Token(0);
const CONTROL: Token = Token(1);
const PROBER: Token = Token(2);

/// During a flood the loop never waits in poll, so it looks at the channel and the prober's
/// link this often instead: soon enough for a shutdown or a health change, rarely enough
/// that two empty receives cost nothing against the bursts in between.
const FLOOD_SERVICE_INTERVAL: Duration = Duration::from_millis(10);
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// The flow table is swept in this many slices, one per second. Every worker sweeps all of
/// them in turn, so mappings expire even when only one worker is alive.
const SWEEP_SHARDS: usize = 16;

pub enum Stop {
    Shutdown,
    MasterGone,
}

/// Why the loop ends without being told to.
#[derive(Debug)]
pub enum LoopError {
    Poll(io::Error),
    Queue(QueueError),
    /// The master's channel failed.
    Control(ChannelError),
    /// A prober link the master passed could not be watched.
    ProberLink(io::Error),
    /// The master sent what the proc table says it never sends a worker.
    OutOfPlace(OutOfPlace),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Poll(e) => write!(f, "poll: {e}"),
            LoopError::Queue(e) => e.fmt(f),
            LoopError::Control(e) => write!(f, "control channel: {e}"),
            LoopError::ProberLink(e) => {
                write!(f, "control channel: cannot use the prober link: {e}")
            }
            LoopError::OutOfPlace(e) => write!(f, "{e}; ending the channel"),
        }
    }
}

impl std::error::Error for LoopError {}

pub struct PacketLoop {
    queue: QueueSocket,
    channel: Channel,
    balancer: Balancer,
    vips: Vips,
    /// Its own block of the counters the master reads (`loadedctl`), and what it logs.
    counters: Counters,
    poll: Poll,
    /// The slice of the flow table the next sweep covers.
    sweep_shard: usize,
    /// Set by the control channel; the loop ends once the packets in hand have verdicts.
    stop: Option<Stop>,
    /// Backend health from the prober (with -f).
    prober: Option<ProberLink>,
    worker_index: u32,
    /// Rewrite every packet, or only decide first packets (see `set_forward`).
    forward: Forward,
}

impl PacketLoop {
    pub fn new(
        queue: QueueSocket,
        channel: Channel,
        balancer: Balancer,
        vips: Vips,
        worker_index: u32,
        shared_counters: WorkerCounters,
    ) -> io::Result<PacketLoop> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut SourceFd(&queue.as_raw_fd()), QUEUE, Interest::READABLE)?;
        poll.registry().register(
            &mut SourceFd(&channel.as_raw_fd()),
            CONTROL,
            Interest::READABLE,
        )?;
        channel.set_nonblocking(true)?;
        Ok(PacketLoop {
            queue,
            channel,
            balancer,
            vips,
            counters: Counters::new(shared_counters),
            poll,
            sweep_shard: worker_index as usize % SWEEP_SHARDS,
            stop: None,
            prober: None,
            worker_index,
            forward: Forward::Userspace,
        })
    }

    /// `forward=kernel`: give each queued packet a mark naming its server instead of
    /// rewriting it (see `datapath::kernel_forward`).
    pub fn set_forward(&mut self, forward: Forward) {
        self.forward = forward;
    }

    pub fn summary(&self) -> String {
        self.counters
            .describe_since(&crate::counters::Totals::default())
    }

    pub fn run(&mut self) -> Result<Stop, LoopError> {
        let mut events = Events::with_capacity(8);
        let mut last_housekeeping = Instant::now();
        let mut last_service = Instant::now();
        // Registration is edge-triggered: whatever was waiting before it must be read now.
        let mut queue_has_more = true;
        loop {
            let mut control_ready = false;
            let mut prober_ready = false;
            if !queue_has_more {
                let timeout = HOUSEKEEPING_INTERVAL
                    .saturating_sub(last_housekeeping.elapsed())
                    .max(Duration::from_millis(1));
                match self.poll.poll(&mut events, Some(timeout)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(LoopError::Poll(e)),
                }
                for event in events.iter() {
                    match event.token() {
                        QUEUE => queue_has_more = true,
                        PROBER => prober_ready = true,
                        _ => control_ready = true,
                    }
                }
            }
            if queue_has_more {
                let summary = self.serve_burst()?;
                // A short burst means the socket is empty: the next arrival raises an edge.
                queue_has_more = summary.datagrams == BURST || summary.overruns > 0;
            }
            let now = Instant::now();
            if queue_has_more && now.duration_since(last_service) >= FLOOD_SERVICE_INTERVAL {
                control_ready = true;
                prober_ready = true;
            }
            if control_ready || prober_ready {
                last_service = now;
            }
            if prober_ready {
                self.drain_prober_link();
            }
            if control_ready {
                self.drain_channel()?;
            }
            if let Some(stop) = self.stop.take() {
                // Every packet read so far has its verdict; the rest stay queued in the
                // kernel, which drops them when the socket closes.
                return Ok(stop);
            }
            if now.duration_since(last_housekeeping) >= HOUSEKEEPING_INTERVAL {
                last_housekeeping = now;
                self.balancer.expire_idle(self.sweep_shard, SWEEP_SHARDS);
                self.sweep_shard = (self.sweep_shard + 1) % SWEEP_SHARDS;
                self.counters.report_if_due(now);
            }
        }
    }

    /// Reads one burst of packets, decides each, and sends their verdicts together.
    fn serve_burst(&mut self) -> Result<BurstSummary, LoopError> {
        let vips = &self.vips;
        let balancer = &mut self.balancer;
        let counters = &mut self.counters;
        let forward = self.forward;
        let summary = self
            .queue
            .serve_burst(|packet, queued| {
                let (outcome, decision) = match forward {
                    Forward::Userspace => {
                        let outcome = rewrite(packet, queued, vips, balancer);
                        counters.count_offload(queued, outcome);
                        (outcome, userspace_decision(outcome))
                    }
                    Forward::Kernel => kernel_decision(packet, vips, balancer),
                };
                counters.count(outcome, balancer.take_traffic(), packet.len());
                decision
            })
            .map_err(LoopError::Queue)?;
        self.counters.count_burst(&summary);
        Ok(summary)
    }

    fn drain_channel(&mut self) -> Result<(), LoopError> {
        while self.stop.is_none() {
            match self.channel.recv() {
                Ok((message, fds)) => self.dispatch_master(message, fds)?,
                Err(e) if e.would_block() => break,
                // Without a master nobody supervises us or can restart us cleanly.
                Err(ChannelError::Closed) => self.stop = Some(Stop::MasterGone),
                Err(e) => return Err(LoopError::Control(e)),
            }
        }
        Ok(())
    }

    /// What the master may say to a worker once it runs.
    fn dispatch_master(&mut self, message: Message, fds: Vec<OwnedFd>) -> Result<(), LoopError> {
        roles::permit(Role::Master, Role::Worker, &message).map_err(LoopError::OutOfPlace)?;
        match message {
            Message::Shutdown => self.stop = Some(Stop::Shutdown),
            Message::ProberLink { .. } => {
                let fd = fds
                    .into_iter()
                    .next()
                    .expect("the channel checks the count");
                self.replace_prober_link(Channel::from_fd(fd))
                    .map_err(LoopError::ProberLink)?;
            }
            Message::WorkerReconfigure { settings } => self.reconfigure(&settings),
            Message::ServerOverrides { overrides } => {
                log::debug!(
                    "operator overrides: drained {:?}, weights {:?}",
                    overrides.drained,
                    overrides.weights
                );
                self.balancer.set_overrides(*overrides);
            }
            // From the main loop: an answer proves the loop turns, not only that we live.
            Message::Ping => {
                if let Err(e) = self.channel.try_send(&Message::Pong) {
                    log::warn!("cannot answer the heartbeat: {e}");
                }
            }
            #[cfg(feature = "seccomp-test")]
            Message::TrySyscallForTest => crate::sandbox::try_forbidden_syscall(),
            // The setup came first and only once; the rest are not the master's to send.
            other => {
                return Err(LoopError::OutOfPlace(OutOfPlace {
                    from: Role::Master,
                    to: Role::Worker,
                    kind: other.kind(),
                }))
            }
        }
        Ok(())
    }

    /// A reload: new servers, weights and strategy, applied between two bursts.
    fn reconfigure(&mut self, settings: &BalancingSettings) {
        let done = self.balancer.reconfigure(settings);
        log::info!(
            "reloaded: {} server(s), strategy {}, {} added, {} removed",
            done.backends,
            settings.strategy,
            done.added.len(),
            done.removed.len()
        );
        for addr in done.left_out {
            log::error!("server {addr} left out: the flow table has no directory slot left");
        }
        if let Some(link) = &self.prober {
            if let Err(e) = link.request_snapshot() {
                log::warn!("cannot ask the prober for a snapshot after the reload: {e}");
            }
        }
    }

    fn replace_prober_link(&mut self, channel: Channel) -> io::Result<()> {
        self.drop_prober_link();
        channel.set_nonblocking(true)?;
        self.poll.registry().register(
            &mut SourceFd(&channel.as_raw_fd()),
            PROBER,
            Interest::READABLE,
        )?;
        self.prober = Some(ProberLink::new(channel));
        Ok(())
    }

    fn drop_prober_link(&mut self) {
        if let Some(old) = self.prober.take() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&old.channel.as_raw_fd()));
        }
    }

    /// Backend updates. Whatever goes wrong here ends only the link, never the datapath:
    /// the last known state stays in force until the master links us again.
    fn drain_prober_link(&mut self) {
        let Some(link) = self.prober.as_mut() else {
            return;
        };
        let (failure, closed) = loop {
            match link.channel.recv() {
                Ok((message, _)) => {
                    if let Err(e) = link.dispatch_prober(message, &mut self.balancer) {
                        break (e.to_string(), false);
                    }
                }
                Err(e) if e.would_block() => return,
                Err(ChannelError::Closed) => {
                    break ("the prober closed the link".to_string(), true)
                }
                Err(e) => break (format!("prober link: {e}"), false),
            }
        };
        log::warn!("{failure}; keeping the last known backend state");
        self.drop_prober_link();
        // A closed link means the prober died (the master restarts it and links us again)
        // or dropped us and asked the master itself; anything else we report.
        if !closed {
            let _ = self.channel.try_send(&Message::LinkLost {
                worker: self.worker_index,
            });
        }
    }
}

/// The rewrite of one queued packet, its checksum completed where the sender left it to
/// offload (the kernel takes a returned payload's checksum as final).
fn rewrite(
    packet: &mut [u8],
    queued: &QueuedPacket,
    vips: &Vips,
    balancer: &mut Balancer,
) -> Outcome {
    let outcome = nat::rewrite(packet, vips, balancer);
    if outcome == Outcome::Rewritten && queued.checksum_not_ready() {
        if let Err(reason) = nat::complete_transport_checksum(packet) {
            return Outcome::Drop(reason);
        }
    }
    outcome
}

/// Kernel mode: a mark naming the server and no payload; the kernel rewrites the packet
/// (and the rest of the connection) on our word. A decided packet is counted as rewritten.
fn kernel_decision(packet: &[u8], vips: &Vips, balancer: &mut Balancer) -> (Outcome, Decision) {
    match kernel_forward::decide(packet, vips, balancer) {
        KernelDecision::Mark(mark) => (
            Outcome::Rewritten,
            Decision {
                mark: Some(mark),
                ..Decision::ACCEPT
            },
        ),
        KernelDecision::NotOurs => (Outcome::NotOurs, Decision::ACCEPT),
        KernelDecision::Drop(reason) => (Outcome::Drop(reason), Decision::DROP),
    }
}

fn userspace_decision(outcome: Outcome) -> Decision {
    match outcome {
        Outcome::Rewritten => Decision {
            rewritten: true,
            ..Decision::ACCEPT
        },
        // Unchanged bytes need not travel back.
        Outcome::NotOurs => Decision::ACCEPT,
        Outcome::Drop(_) => Decision::DROP,
    }
}
