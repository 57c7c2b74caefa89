//! The NFQUEUE loop: every packet read gets exactly one verdict, whatever the rewrite
//! decides, and the control channel and the flow table's housekeeping are served in between.

use crate::counters::Counters;
use crate::datapath::balancer::Balancer;
use crate::datapath::flow::Vips;
use crate::datapath::kernel_forward::{self, KernelDecision};
use crate::datapath::nat::{self, Outcome};
use crate::prober_link::ProberLink;
use loaded_proto::channel::{Channel, ChannelError};
use loaded_proto::forwarding::Forward;
use loaded_proto::message::Message;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const QUEUE: Token = Token(0);
const CONTROL: Token = Token(1);
const PROBER: Token = Token(2);

/// Packets handled before the loop looks at the channel again, so a flood cannot starve it.
const BURST: usize = 1024;
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// The flow table is swept in this many slices, one per second. Every worker sweeps all of
/// them in turn, so mappings expire even when only one worker is alive.
const SWEEP_SHARDS: usize = 16;

pub enum Stop {
    Shutdown,
    MasterGone,
}

pub struct PacketLoop {
    queue: nfq::Queue,
    channel: Channel,
    balancer: Balancer,
    vips: Vips,
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
        queue: nfq::Queue,
        channel: Channel,
        balancer: Balancer,
        vips: Vips,
        worker_index: u32,
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
            counters: Counters::default(),
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

    pub fn run(&mut self) -> Result<Stop, String> {
        let mut events = Events::with_capacity(8);
        let mut last_housekeeping = Instant::now();
        loop {
            match self.poll.poll(&mut events, Some(HOUSEKEEPING_INTERVAL)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            for event in events.iter() {
                match event.token() {
                    QUEUE => self.drain_queue()?,
                    PROBER => self.drain_prober_link(),
                    _ => self.drain_channel()?,
                }
            }
            if let Some(stop) = self.stop.take() {
                return Ok(stop);
            }
            let now = Instant::now();
            if now.duration_since(last_housekeeping) >= HOUSEKEEPING_INTERVAL {
                last_housekeeping = now;
                self.balancer.expire_idle(self.sweep_shard, SWEEP_SHARDS);
                self.sweep_shard = (self.sweep_shard + 1) % SWEEP_SHARDS;
                self.counters.report_if_due(now);
            }
        }
    }

    /// Reads until the socket is empty. Edge-triggered polling needs that; a burst limit
    /// would need a re-arm, so instead the channel is checked every BURST packets.
    fn drain_queue(&mut self) -> Result<(), String> {
        let mut handled = 0usize;
        loop {
            let mut message = match self.queue.recv() {
                Ok(message) => message,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Counted and reported with the drops, not logged per occurrence.
                    self.counters.totals.receive_overruns += 1;
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    return Err(
                        "the kernel refuses our verdicts (EPERM): CAP_NET_ADMIN missing?".into(),
                    )
                }
                Err(e) => return Err(format!("NFQUEUE receive: {e}")),
            };
            let outcome = if self.forward == Forward::Kernel {
                self.decide_kernel(&mut message)
            } else {
                nat::rewrite(message.get_payload_mut(), &self.vips, &mut self.balancer)
            };
            message.set_verdict(match outcome {
                Outcome::Rewritten | Outcome::NotOurs => nfq::Verdict::Accept,
                Outcome::Drop(_) => nfq::Verdict::Drop,
            });
            self.counters.count(&outcome);
            if let Err(e) = self.queue.verdict(message) {
                self.counters.totals.verdict_errors += 1;
                log::debug!("verdict: {e}");
            }
            handled += 1;
            if handled.is_multiple_of(BURST) {
                self.drain_channel()?;
                if self.stop.is_some() {
                    // Every packet read so far has its verdict; the rest stay queued in
                    // the kernel, which drops them when the socket closes.
                    return Ok(());
                }
            }
        }
    }

    /// Kernel mode: a mark and no payload. Only `get_payload` is used, never
    /// `get_payload_mut`, which would make nfq send the packet back as a payload. A decided
    /// packet is counted as rewritten: the kernel rewrites it on our word.
    fn decide_kernel(&mut self, message: &mut nfq::Message) -> Outcome {
        match kernel_forward::decide(message.get_payload(), &self.vips, &mut self.balancer) {
            KernelDecision::Mark(mark) => {
                message.set_nfmark(mark);
                Outcome::Rewritten
            }
            KernelDecision::NotOurs => Outcome::NotOurs,
            KernelDecision::Drop(reason) => Outcome::Drop(reason),
        }
    }

    fn drain_channel(&mut self) -> Result<(), String> {
        while self.stop.is_none() {
            match self.channel.recv() {
                Ok((message, fds)) => self.dispatch_master(message, fds)?,
                Err(e) if e.would_block() => break,
                // Without a master nobody supervises us or can restart us cleanly.
                Err(ChannelError::Closed) => self.stop = Some(Stop::MasterGone),
                Err(e) => return Err(format!("control channel: {e}")),
            }
        }
        Ok(())
    }

    /// What the master may say to a worker once it runs.
    fn dispatch_master(&mut self, message: Message, fds: Vec<OwnedFd>) -> Result<(), String> {
        match message {
            Message::Shutdown => self.stop = Some(Stop::Shutdown),
            Message::ProberLink { .. } => {
                let fd = fds
                    .into_iter()
                    .next()
                    .expect("the channel checks the count");
                self.replace_prober_link(Channel::from_fd(fd))
                    .map_err(|e| format!("cannot use the prober link: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unexpected {} message from the master",
                    other.kind()
                ))
            }
        }
        Ok(())
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
                        break (e, false);
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
