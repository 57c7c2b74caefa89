//! One check round: ping every known server and the broadcast addresses, then try a TCP
//! connect to `port_alive` on whoever answered.
//!
//! A round is a state machine (`Round`) that the prober's poll loop drives: it sends and
//! connects without waiting, and the loop wakes it when a socket is ready or a phase's
//! deadline comes, so worker links and the master are served while checks are in flight.

use super::echo_packet::EchoTag;
use super::icmp::{EchoOutcome, EchoTarget, Echoes};
use super::local::local_addresses;
use super::sockets::ProbeSockets;
use super::tcp_connect::{ConnectOutcome, Connects};
use loaded_proto::balancing::IpNet;
use loaded_proto::roles::ProberPart;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundPlan {
    /// Checked one by one: the configured servers and those discovered so far.
    pub servers: Vec<IpAddr>,
    pub broadcast4: Option<Ipv4Addr>,
    pub broadcast6: Option<Ipv6Addr>,
    pub rip4: Option<IpNet>,
    pub rip6: Option<IpNet>,
    /// Servers a reload removed: never hot-plugged again, whatever they answer.
    pub withdrawn: HashSet<IpAddr>,
    pub port: u16,
    /// For each of the two phases (echo, connect).
    pub timeout: Duration,
}

impl RoundPlan {
    pub fn from_part(part: &ProberPart) -> Self {
        RoundPlan {
            servers: part.health.servers.iter().map(|b| b.addr).collect(),
            broadcast4: part.health.broadcast,
            broadcast6: part.health.broadcast6,
            rip4: part.rip4,
            rip6: part.rip6,
            withdrawn: HashSet::new(),
            port: part.health.port_alive,
            timeout: part.health.check_timeout,
        }
    }

    pub(super) fn in_rip(&self, addr: IpAddr) -> bool {
        let rip = if addr.is_ipv4() { self.rip4 } else { self.rip6 };
        rip.is_some_and(|net| net.contains(addr))
    }
}

/// Why a server failed a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    NoReply,
    ConnectRefused,
    Timeout,
    Error(String),
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::NoReply => f.write_str("no reply to ping"),
            FailReason::ConnectRefused => f.write_str("connection refused"),
            FailReason::Timeout => f.write_str("connect timed out"),
            FailReason::Error(text) => f.write_str(text),
        }
    }
}

impl From<ConnectOutcome> for Result<(), FailReason> {
    fn from(outcome: ConnectOutcome) -> Self {
        match outcome {
            ConnectOutcome::Connected => Ok(()),
            ConnectOutcome::Refused => Err(FailReason::ConnectRefused),
            ConnectOutcome::TimedOut => Err(FailReason::Timeout),
            ConnectOutcome::Failed(text) => Err(FailReason::Error(format!("connect: {text}"))),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// One result per `plan.servers`, in that order.
    pub servers: Vec<(IpAddr, Result<(), FailReason>)>,
    /// Answered a broadcast, not in the plan, inside RIP4/RIP6, accepted the connect.
    pub discovered: Vec<IpAddr>,
    /// Answered a broadcast, not in the plan, outside RIP4/RIP6: never checked further.
    pub ignored: Vec<IpAddr>,
    /// Broadcast addresses an echo could not be sent to, with the error.
    pub broadcast_errors: Vec<(IpAddr, String)>,
}

/// A round in flight. It takes at most about 2 * `plan.timeout`: one for the echoes, one
/// for the connects.
pub struct Round {
    /// The servers in the plan when the round started, in order (the report follows it).
    servers: Vec<IpAddr>,
    phase: Phase,
}

enum Phase {
    Echo {
        echoes: Echoes,
        deadline: Instant,
    },
    Connect {
        echo: EchoOutcome,
        answered: HashSet<IpAddr>,
        candidates: Vec<SocketAddr>,
        ignored: Vec<IpAddr>,
        connects: Connects,
        deadline: Instant,
    },
}

/// What `Round::advance` left.
pub enum Progress {
    Running(Round),
    Done(RoundReport),
}

impl Round {
    /// Sends the echoes; returns at once.
    pub fn start(plan: &RoundPlan, sockets: &mut ProbeSockets) -> Round {
        let tag = sockets.next_tag();
        Round {
            servers: plan.servers.clone(),
            phase: Phase::Echo {
                echoes: send_echoes(plan, sockets, tag),
                deadline: Instant::now() + plan.timeout,
            },
        }
    }

    /// When the current phase ends at the latest: the caller's poll timeout.
    pub fn deadline(&self) -> Instant {
        match &self.phase {
            Phase::Echo { deadline, .. } | Phase::Connect { deadline, .. } => *deadline,
        }
    }

    /// The sockets whose readiness moves the round on, for the caller's poll: the echo
    /// sockets are always watched; these are the connects in flight.
    pub fn connect_fds(&self) -> Vec<RawFd> {
        match &self.phase {
            Phase::Echo { .. } => Vec::new(),
            Phase::Connect { connects, .. } => connects.pending_fds(),
        }
    }

    /// Takes in what arrived, without waiting, and moves to the next phase when this one
    /// is complete or past its deadline at `now`.
    pub fn advance(self, plan: &RoundPlan, sockets: &ProbeSockets, now: Instant) -> Progress {
        let Round { servers, phase } = self;
        match phase {
            Phase::Echo {
                mut echoes,
                deadline,
            } => {
                let open: Vec<_> = [sockets.v4.as_ref(), sockets.v6.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
                echoes.collect(&open);
                if !echoes.complete() && now < deadline {
                    return Progress::Running(Round {
                        servers,
                        phase: Phase::Echo { echoes, deadline },
                    });
                }
                let echo = echoes.outcome();
                let answered: HashSet<IpAddr> = echo.replies.iter().map(SocketAddr::ip).collect();
                let planned: HashSet<IpAddr> = servers.iter().copied().collect();
                let (candidates, ignored) = strangers(plan, &echo, &planned);
                // Servers first, then candidates; the outcomes follow the same order.
                let mut connect_to: Vec<SocketAddr> = servers
                    .iter()
                    .filter(|addr| answered.contains(addr))
                    .map(|addr| SocketAddr::new(*addr, plan.port))
                    .collect();
                connect_to.extend(candidates.iter().map(|from| with_port(*from, plan.port)));
                let round = Round {
                    servers,
                    phase: Phase::Connect {
                        echo,
                        answered,
                        candidates,
                        ignored,
                        connects: Connects::start(&connect_to),
                        deadline: Instant::now() + plan.timeout,
                    },
                };
                // Connects that finished at once (refused on loopback) may be all of them.
                round.advance(plan, sockets, now)
            }
            Phase::Connect {
                echo,
                answered,
                candidates,
                ignored,
                mut connects,
                deadline,
            } => {
                connects.collect();
                if !connects.complete() && now < deadline {
                    return Progress::Running(Round {
                        servers,
                        phase: Phase::Connect {
                            echo,
                            answered,
                            candidates,
                            ignored,
                            connects,
                            deadline,
                        },
                    });
                }
                Progress::Done(report(
                    &servers,
                    &echo,
                    &answered,
                    candidates,
                    ignored,
                    connects.outcomes(),
                ))
            }
        }
    }
}

fn report(
    servers: &[IpAddr],
    echo: &EchoOutcome,
    answered: &HashSet<IpAddr>,
    candidates: Vec<SocketAddr>,
    ignored: Vec<IpAddr>,
    outcomes: Vec<ConnectOutcome>,
) -> RoundReport {
    let mut outcomes = outcomes.into_iter();
    let servers: Vec<(IpAddr, Result<(), FailReason>)> = servers
        .iter()
        .map(|addr| {
            let result = if answered.contains(addr) {
                outcomes.next().map_or(Err(FailReason::Timeout), Into::into)
            } else {
                Err(no_reply_reason(echo, *addr))
            };
            (*addr, result)
        })
        .collect();
    debug_assert_eq!(outcomes.len(), candidates.len());
    let discovered = candidates
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| *outcome == ConnectOutcome::Connected)
        .map(|(from, _)| from.ip())
        .collect();
    let planned: HashSet<IpAddr> = servers.iter().map(|(addr, _)| *addr).collect();
    let broadcast_errors = echo
        .send_errors
        .iter()
        .filter(|(dest, _)| !planned.contains(&dest.ip()))
        .map(|(dest, error)| (dest.ip(), error.to_string()))
        .collect();
    RoundReport {
        servers,
        discovered,
        ignored,
        broadcast_errors,
    }
}

/// A whole round, waited out in place (for tests: the prober drives `Round` from its loop).
#[cfg(test)]
pub fn run_round(plan: &RoundPlan, sockets: &mut ProbeSockets) -> RoundReport {
    let mut round = Round::start(plan, sockets);
    loop {
        match round.advance(plan, sockets, Instant::now()) {
            Progress::Done(report) => return report,
            Progress::Running(next) => round = next,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn send_echoes(plan: &RoundPlan, sockets: &ProbeSockets, tag: EchoTag) -> Echoes {
    let unicast = plan.servers.iter().map(|addr| EchoTarget {
        dest: SocketAddr::new(*addr, 0),
        group: false,
    });
    let broadcast4 = plan.broadcast4.map(|addr| EchoTarget {
        dest: SocketAddr::from((addr, 0)),
        group: true,
    });
    let broadcast6 = plan.broadcast6.map(|addr| EchoTarget {
        dest: SocketAddr::V6(SocketAddrV6::new(addr, 0, 0, sockets.broadcast6_scope)),
        group: true,
    });
    let targets: Vec<EchoTarget> = unicast.chain(broadcast4).chain(broadcast6).collect();
    Echoes::send(sockets.v4.as_ref(), sockets.v6.as_ref(), &targets, tag)
}

/// Responders the plan does not know, split into those worth a connect (inside RIP) and
/// those to ignore. The host's own addresses are neither.
fn strangers(
    plan: &RoundPlan,
    echo: &EchoOutcome,
    planned: &HashSet<IpAddr>,
) -> (Vec<SocketAddr>, Vec<IpAddr>) {
    let unknown: Vec<SocketAddr> = echo
        .replies
        .iter()
        .filter(|from| !planned.contains(&from.ip()) && !plan.withdrawn.contains(&from.ip()))
        .copied()
        .collect();
    if unknown.is_empty() {
        return (Vec::new(), Vec::new());
    }
    // Not knowing our own addresses, we could add ourselves; better to find no one this
    // round (a candidate only loses its streak) than to loop traffic through the balancer.
    let Ok(local) = local_addresses() else {
        return (Vec::new(), Vec::new());
    };
    let (inside, outside): (Vec<SocketAddr>, Vec<SocketAddr>) = unknown
        .into_iter()
        .filter(|from| !local.contains(&from.ip()))
        .partition(|from| plan.in_rip(from.ip()));
    (inside, outside.iter().map(SocketAddr::ip).collect())
}

fn with_port(mut addr: SocketAddr, port: u16) -> SocketAddr {
    addr.set_port(port);
    addr
}

fn no_reply_reason(echo: &EchoOutcome, addr: IpAddr) -> FailReason {
    match echo.send_errors.iter().find(|(dest, _)| dest.ip() == addr) {
        Some((_, error)) => FailReason::Error(format!("ping: {error}")),
        None => FailReason::NoReply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn connect_outcomes_map_to_reasons() {
        let map = |outcome: ConnectOutcome| -> Result<(), FailReason> { outcome.into() };
        assert_eq!(map(ConnectOutcome::Connected), Ok(()));
        assert_eq!(
            map(ConnectOutcome::Refused),
            Err(FailReason::ConnectRefused)
        );
        assert_eq!(map(ConnectOutcome::TimedOut), Err(FailReason::Timeout));
        assert_eq!(
            map(ConnectOutcome::Failed("No route to host".into())),
            Err(FailReason::Error("connect: No route to host".into()))
        );
    }

    #[test]
    fn a_send_error_is_reported_instead_of_no_reply() {
        let failing: IpAddr = "198.19.0.2".parse().unwrap();
        let echo = EchoOutcome {
            replies: Vec::new(),
            send_errors: vec![(
                SocketAddr::new(failing, 0),
                io::Error::from_raw_os_error(libc::ENETUNREACH),
            )],
        };
        assert_eq!(
            no_reply_reason(&echo, "198.19.0.1".parse().unwrap()),
            FailReason::NoReply
        );
        let FailReason::Error(text) = no_reply_reason(&echo, failing) else {
            panic!("expected an error");
        };
        assert!(text.starts_with("ping: Network is unreachable"), "{text}");
    }

    #[test]
    fn reasons_read_well_in_a_log_line() {
        assert_eq!(FailReason::NoReply.to_string(), "no reply to ping");
        assert_eq!(FailReason::ConnectRefused.to_string(), "connection refused");
        assert_eq!(FailReason::Timeout.to_string(), "connect timed out");
        assert_eq!(FailReason::Error("x".into()).to_string(), "x");
    }

    #[test]
    fn rip_membership_follows_the_family() {
        let plan = RoundPlan {
            rip4: Some(IpNet {
                addr: "198.19.0.0".parse().unwrap(),
                prefix_len: 24,
            }),
            ..RoundPlan::from_part(&ProberPart::of(
                &loaded_proto::config::Config::default(),
                Vec::new(),
            ))
        };
        assert!(plan.in_rip("198.19.0.77".parse().unwrap()));
        assert!(!plan.in_rip("198.20.0.77".parse().unwrap()));
        assert!(!plan.in_rip("fd00:19::77".parse().unwrap()), "no RIP6");
    }
}
