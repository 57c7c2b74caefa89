//! The health checks of failover: each round pings the real servers and the broadcast
//! addresses, tries a TCP connect to `port_alive` on whoever answered, and feeds the results
//! through rise/fall hysteresis. Only changes come out; the caller logs and forwards them.
//! A round never blocks: the caller starts it, then advances it from its poll loop whenever
//! one of `watched_fds` is ready or `round_deadline` comes.

mod book;
mod deadline;
mod echo_packet;
mod hysteresis;
mod icmp;
mod local;
mod reload;
mod round;
mod sockets;
mod tcp_connect;
#[cfg(test)]
pub(crate) mod tests;

pub use round::FailReason;

use hysteresis::{ServerHealth, Transition};
use round::{Progress, Round, RoundPlan};
use sockets::ProbeSockets;

use loaded_proto::balancing::Backend;
use loaded_proto::roles::ProberPart;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::Instant;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A server in service failed `fall` rounds in a row; `reason` is the last failure's.
    Down { addr: IpAddr, reason: FailReason },
    /// A server out of service passed `rise` rounds in a row.
    Up { addr: IpAddr },
    /// A configured server not checked yet (in service all along) passed its first check:
    /// only the master's book learns of it.
    Confirmed { addr: IpAddr },
    /// A host inside RIP4/RIP6 answered the broadcast and passed `rise` rounds; it is in
    /// service from now on and checked like a configured server.
    Discovered { backend: Backend },
    /// A host outside RIP4/RIP6 answered the broadcast; reported once per address.
    IgnoredOutsideRip { addr: IpAddr },
    /// An echo to a broadcast address could not be sent; reported again only after the
    /// error changed or the send worked in between.
    BroadcastFailed { addr: IpAddr, error: String },
}

pub struct HealthChecker {
    sockets: ProbeSockets,
    /// The families `sockets` was opened for (see `reload::wanted_families`).
    sockets_families: (bool, bool),
    /// `plan.servers` always lists the addresses of `servers`, in the same order.
    plan: RoundPlan,
    rise: u32,
    fall: u32,
    servers: Vec<(Backend, ServerHealth)>,
    /// The addresses of the configured servers among `servers` (the rest were discovered).
    configured: HashSet<IpAddr>,
    /// Hosts on their way to `rise` successes. A failure drops one: starting over from a
    /// broken streak is the same as starting fresh, and the map stays small.
    candidates: HashMap<IpAddr, ServerHealth>,
    ignored: HashSet<IpAddr>,
    broadcast_errors: HashMap<IpAddr, String>,
    /// The round in flight, if any.
    round: Option<Round>,
}

impl HealthChecker {
    pub fn new(part: &ProberPart) -> io::Result<Self> {
        let servers: Vec<(Backend, ServerHealth)> = part
            .health
            .servers
            .iter()
            .map(|&backend| (backend, ServerHealth::in_service()))
            .collect();
        let configured = servers.iter().map(|(backend, _)| backend.addr).collect();
        Ok(HealthChecker {
            sockets: ProbeSockets::open(part)?,
            sockets_families: reload::wanted_families(part),
            plan: RoundPlan::from_part(part),
            rise: part.health.rise,
            fall: part.health.fall,
            servers,
            configured,
            candidates: HashMap::new(),
            ignored: HashSet::new(),
            broadcast_errors: HashMap::new(),
            round: None,
        })
    }

    /// Starts a round (sends its echoes) unless one is in flight; returns at once.
    pub fn start_round(&mut self) {
        if self.round.is_none() {
            self.round = Some(Round::start(&self.plan, &mut self.sockets));
        }
    }

    pub fn round_in_flight(&self) -> bool {
        self.round.is_some()
    }

    /// When the round in flight must be advanced at the latest.
    pub fn round_deadline(&self) -> Option<Instant> {
        self.round.as_ref().map(Round::deadline)
    }

    /// The echo sockets (readable when replies arrive) and the connects in flight
    /// (writable when done): what the caller's poll watches to advance the round.
    pub fn watched_fds(&self) -> (Vec<RawFd>, Vec<RawFd>) {
        let echo = [self.sockets.v4.as_ref(), self.sockets.v6.as_ref()]
            .into_iter()
            .flatten()
            .map(icmp::IcmpSocket::raw_fd)
            .collect();
        let connects = self
            .round
            .as_ref()
            .map_or_else(Vec::new, Round::connect_fds);
        (echo, connects)
    }

    /// Takes in what arrived for the round in flight, without waiting; once the round is
    /// over (its phases complete or past their deadlines at `now`), what changed.
    pub fn advance_round(&mut self, now: Instant) -> Option<Vec<Event>> {
        let round = self.round.take()?;
        match round.advance(&self.plan, &self.sockets, now) {
            Progress::Running(round) => {
                self.round = Some(round);
                None
            }
            Progress::Done(report) => Some(self.record(report)),
        }
    }

    /// Runs one round in place (at most about 2 * check_timeout) and returns what changed.
    #[cfg(test)]
    pub fn check(&mut self) -> Vec<Event> {
        self.start_round();
        loop {
            if let Some(events) = self.advance_round(Instant::now()) {
                return events;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn record(&mut self, report: round::RoundReport) -> Vec<Event> {
        let mut events = Vec::new();
        self.record_servers(report.servers, &mut events);
        self.record_candidates(&report.discovered, &mut events);
        for addr in report.ignored {
            if self.ignored.insert(addr) {
                events.push(Event::IgnoredOutsideRip { addr });
            }
        }
        self.record_broadcast_errors(report.broadcast_errors, &mut events);
        events
    }

    /// Configured servers in config order, then discovered ones in discovery order.
    pub fn states(&self) -> Vec<(Backend, bool)> {
        self.servers
            .iter()
            .map(|(backend, health)| (*backend, health.is_up()))
            .collect()
    }

    fn record_servers(
        &mut self,
        results: Vec<(IpAddr, Result<(), FailReason>)>,
        events: &mut Vec<Event>,
    ) {
        for ((backend, health), (addr, result)) in self.servers.iter_mut().zip(results) {
            debug_assert_eq!(backend.addr, addr);
            match (health.record(result.is_ok(), self.rise, self.fall), result) {
                (Some(Transition::WentDown), Err(reason)) => {
                    events.push(Event::Down { addr, reason });
                }
                (Some(Transition::WentUp), _) => events.push(Event::Up { addr }),
                (Some(Transition::Confirmed), _) => events.push(Event::Confirmed { addr }),
                _ => {}
            }
        }
    }

    fn record_candidates(&mut self, discovered: &[IpAddr], events: &mut Vec<Event>) {
        let mut previous = std::mem::take(&mut self.candidates);
        for &addr in discovered {
            let mut health = previous
                .remove(&addr)
                .unwrap_or_else(ServerHealth::candidate);
            if health.record(true, self.rise, self.fall) == Some(Transition::WentUp) {
                let backend = Backend { addr, weight: 1 };
                self.servers.push((backend, health));
                self.plan.servers.push(addr);
                events.push(Event::Discovered { backend });
            } else {
                self.candidates.insert(addr, health);
            }
        }
    }

    fn record_broadcast_errors(&mut self, errors: Vec<(IpAddr, String)>, events: &mut Vec<Event>) {
        let previous = std::mem::take(&mut self.broadcast_errors);
        for (addr, error) in errors {
            if previous.get(&addr) != Some(&error) {
                events.push(Event::BroadcastFailed {
                    addr,
                    error: error.clone(),
                });
            }
            self.broadcast_errors.insert(addr, error);
        }
    }
}
