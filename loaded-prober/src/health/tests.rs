//! Checks against the loopback interface only (127.0.0.1 and ::1): raw sockets need root
//! or CAP_NET_RAW, and nothing here may send a packet anywhere else.

use super::echo_packet::EchoTag;
use super::icmp::{collect_replies, echo_round, EchoTarget, IcmpSocket};
use super::round::run_round;
use super::tcp_connect::{connect_all, ConnectOutcome};
use super::*;
use loaded_proto::config::Config;
use loaded_proto::roles::ProberPart;
use nix::sys::socket::{
    getsockname, setsockopt, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const V4: &str = "127.0.0.1";
const V6: &str = "::1";
const SHORT: Duration = Duration::from_millis(200);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the health check tests open raw ICMP sockets: run them as root"
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A port nobody listens on and nobody else can take while the value lives: bound, never
/// listening, so connections to it are refused. SO_REUSEPORT lets the test itself listen
/// on the port (`listen_on`) and stop again without ever releasing it.
struct ClosedPort {
    _socket: OwnedFd,
    port: u16,
}

fn reuse_port_socket(addr: IpAddr, port: u16) -> OwnedFd {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let socket = nix::sys::socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .expect("a TCP socket");
    setsockopt(&socket, sockopt::ReusePort, &true).expect("SO_REUSEPORT");
    nix::sys::socket::bind(
        socket.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(addr, port)),
    )
    .unwrap_or_else(|e| panic!("bind {addr} port {port}: {e}"));
    socket
}

fn closed_port(addr: IpAddr) -> ClosedPort {
    let socket = reuse_port_socket(addr, 0);
    let bound: SockaddrStorage = getsockname(socket.as_raw_fd()).expect("getsockname");
    let port = bound
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| bound.as_sockaddr_in6().map(|a| a.port()))
        .expect("an inet address");
    ClosedPort {
        _socket: socket,
        port,
    }
}

/// A listener on a port that a `ClosedPort` holds; dropping it closes the port again.
fn listen_on(addr: IpAddr, port: &ClosedPort) -> OwnedFd {
    let socket = reuse_port_socket(addr, port.port);
    nix::sys::socket::listen(&socket, Backlog::new(8).expect("a backlog")).expect("listen");
    socket
}

/// The prober's part of `config`, nothing withdrawn.
fn part(config: &Config) -> ProberPart {
    ProberPart::of(config, Vec::new())
}

fn config_with(server: IpAddr, port: u16) -> Config {
    let backend = Backend {
        addr: server,
        weight: 1,
    };
    let (servers4, servers6) = if server.is_ipv4() {
        (vec![backend], vec![])
    } else {
        (vec![], vec![backend])
    };
    Config {
        servers4,
        servers6,
        port_alive: port,
        check_timeout: SHORT,
        rise: 2,
        fall: 2,
        ..Config::default()
    }
}

fn ping(socket: &IcmpSocket, addr: IpAddr, v4: bool) -> Vec<SocketAddr> {
    let tag = EchoTag {
        ident: 0x4c44,
        seq: 7,
        cookie: 0x0123_4567_89ab_cdef,
    };
    let target = EchoTarget {
        dest: SocketAddr::new(addr, 0),
        group: false,
    };
    let (v4, v6) = if v4 {
        (Some(socket), None)
    } else {
        (None, Some(socket))
    };
    let outcome = echo_round(
        v4,
        v6,
        &[target],
        tag,
        Instant::now() + Duration::from_secs(2),
    );
    assert!(outcome.send_errors.is_empty(), "{:?}", outcome.send_errors);
    outcome.replies
}

#[test]
fn ping_127_0_0_1_gets_a_reply() {
    require_root();
    let socket = IcmpSocket::open_v4().unwrap();
    let replies = ping(&socket, ip(V4), true);
    assert_eq!(
        replies.iter().map(SocketAddr::ip).collect::<Vec<_>>(),
        [ip(V4)]
    );
}

#[test]
fn ping_ipv6_loopback_gets_a_reply() {
    require_root();
    let socket = IcmpSocket::open_v6(None, None).unwrap();
    let replies = ping(&socket, ip(V6), false);
    assert_eq!(
        replies.iter().map(SocketAddr::ip).collect::<Vec<_>>(),
        [ip(V6)]
    );
}

#[test]
fn replies_with_another_cookie_or_sequence_are_not_ours() {
    require_root();
    let socket = IcmpSocket::open_v4().unwrap();
    let ours = EchoTag {
        ident: 0x5a5a,
        seq: 1,
        cookie: 42,
    };
    let deadline = Instant::now() + SHORT;
    let dest = SocketAddr::new(ip(V4), 0);
    for stranger in [
        EchoTag { cookie: 43, ..ours },
        EchoTag { seq: 2, ..ours },
        EchoTag {
            ident: 0x5a5b,
            ..ours
        },
    ] {
        socket.send(dest, &stranger, deadline).unwrap();
    }
    let awaited = HashSet::from([ip(V4)]);
    let replies = collect_replies(&[&socket], ours, awaited.clone(), false, deadline);
    assert!(replies.is_empty(), "{replies:?}");

    socket.send(dest, &ours, deadline).unwrap();
    let deadline = Instant::now() + SHORT;
    let replies = collect_replies(&[&socket], ours, awaited, false, deadline);
    assert_eq!(replies, [dest]);
}

#[test]
fn connect_reports_listening_and_closed_ports() {
    let listener4 = TcpListener::bind((ip(V4), 0)).unwrap();
    let listener6 = TcpListener::bind((ip(V6), 0)).unwrap();
    let (closed4, closed6) = (closed_port(ip(V4)), closed_port(ip(V6)));
    let targets = [
        listener4.local_addr().unwrap(),
        listener6.local_addr().unwrap(),
        SocketAddr::new(ip(V4), closed4.port),
        SocketAddr::new(ip(V6), closed6.port),
    ];
    let outcomes = connect_all(&targets, SHORT);
    assert_eq!(
        outcomes,
        [
            ConnectOutcome::Connected,
            ConnectOutcome::Connected,
            ConnectOutcome::Refused,
            ConnectOutcome::Refused,
        ]
    );
}

/// A port on 127.0.0.1 whose accept queue is full: it drops further SYNs, as a hung
/// server would. Keep the returned values alive while using the port.
pub(crate) fn full_accept_queue() -> (std::os::fd::OwnedFd, std::net::TcpStream, u16) {
    use nix::sys::socket::{bind, getsockname, listen, socket, SockaddrIn};
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType};
    use std::os::fd::AsRawFd;

    let listener = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(listener.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let port = getsockname::<SockaddrIn>(listener.as_raw_fd())
        .unwrap()
        .port();
    let queued = std::net::TcpStream::connect((ip(V4), port)).unwrap();
    (listener, queued, port)
}

#[test]
fn connect_to_a_full_accept_queue_times_out() {
    let (_listener, _queued, port) = full_accept_queue();
    let start = Instant::now();
    let outcomes = connect_all(&[SocketAddr::new(ip(V4), port)], SHORT);
    assert_eq!(outcomes, [ConnectOutcome::TimedOut]);
    let elapsed = start.elapsed();
    assert!(elapsed >= SHORT && elapsed < SHORT * 2, "{elapsed:?}");
}

#[test]
fn a_round_fails_a_hung_server_as_timeout_within_its_bound() {
    require_root();
    let (_listener, _queued, port) = full_accept_queue();
    let config = config_with(ip(V4), port);
    let mut sockets = ProbeSockets::open(&part(&config)).unwrap();
    let start = Instant::now();
    let report = run_round(&RoundPlan::from_part(&part(&config)), &mut sockets);
    assert_eq!(report.servers, [(ip(V4), Err(FailReason::Timeout))]);
    assert!(start.elapsed() < 2 * SHORT + Duration::from_millis(100));
}

#[test]
fn a_round_passes_a_pinging_listening_server() {
    require_root();
    for addr in [ip(V4), ip(V6)] {
        let listener = TcpListener::bind((addr, 0)).unwrap();
        let config = config_with(addr, listener.local_addr().unwrap().port());
        let mut sockets = ProbeSockets::open(&part(&config)).unwrap();
        let start = Instant::now();
        let report = run_round(&RoundPlan::from_part(&part(&config)), &mut sockets);
        assert_eq!(report.servers, [(addr, Ok(()))]);
        assert!(report.discovered.is_empty() && report.ignored.is_empty());
        assert!(start.elapsed() < 2 * SHORT + Duration::from_millis(100));
    }
}

#[test]
fn a_round_fails_a_closed_port_as_refused() {
    require_root();
    for addr in [ip(V4), ip(V6)] {
        let closed = closed_port(addr);
        let config = config_with(addr, closed.port);
        let mut sockets = ProbeSockets::open(&part(&config)).unwrap();
        let report = run_round(&RoundPlan::from_part(&part(&config)), &mut sockets);
        assert_eq!(report.servers, [(addr, Err(FailReason::ConnectRefused))]);
    }
}

#[test]
fn only_the_families_configured_get_a_socket() {
    require_root();
    let sockets = ProbeSockets::open(&part(&config_with(ip(V4), 1))).unwrap();
    assert!(sockets.v4.is_some() && sockets.v6.is_none());
    let sockets = ProbeSockets::open(&part(&config_with(ip(V6), 1))).unwrap();
    assert!(sockets.v4.is_none() && sockets.v6.is_some());
}

#[test]
fn checker_takes_a_server_out_after_fall_and_back_after_rise() {
    require_root();
    let addr = ip(V4);
    let port = closed_port(addr);
    let mut checker = HealthChecker::new(&part(&config_with(addr, port.port))).unwrap();
    let backend = Backend { addr, weight: 1 };
    assert_eq!(checker.states(), [(backend, true)]);

    let listener = listen_on(addr, &port);
    assert_eq!(
        checker.check(),
        [Event::Confirmed { addr }],
        "in service and answering"
    );
    drop(listener);
    assert_eq!(checker.check(), []);
    assert_eq!(
        checker.check(),
        [Event::Down {
            addr,
            reason: FailReason::ConnectRefused
        }]
    );
    assert_eq!(checker.check(), [], "already down: nothing new");
    assert_eq!(checker.states(), [(backend, false)]);

    let _listener = listen_on(addr, &port);
    assert_eq!(checker.check(), []);
    assert_eq!(checker.check(), [Event::Up { addr }]);
    assert_eq!(checker.check(), []);
    assert_eq!(checker.states(), [(backend, true)]);
}

/// The candidate bookkeeping, fed by hand: no broadcast may leave this host in a test.
#[test]
fn candidates_need_rise_rounds_in_a_row_to_be_discovered() {
    require_root();
    let mut checker = HealthChecker::new(&part(&config_with(ip(V4), 1))).unwrap();
    let host = ip("198.19.0.50");
    let mut events = Vec::new();

    checker.record_candidates(&[host], &mut events);
    checker.record_candidates(&[], &mut events);
    checker.record_candidates(&[host], &mut events);
    assert_eq!(events, [], "the streak was broken");

    checker.record_candidates(&[host], &mut events);
    let backend = Backend {
        addr: host,
        weight: 1,
    };
    assert_eq!(events, [Event::Discovered { backend }]);
    assert_eq!(checker.plan.servers, [ip(V4), host]);
    let states = checker.states();
    assert_eq!(states.last(), Some(&(backend, true)));

    // Once a server, it is checked as one, never discovered twice.
    events.clear();
    checker.record_servers(
        vec![(ip(V4), Ok(())), (host, Err(FailReason::NoReply))],
        &mut events,
    );
    checker.record_servers(
        vec![(ip(V4), Ok(())), (host, Err(FailReason::Timeout))],
        &mut events,
    );
    assert_eq!(
        events,
        [
            Event::Confirmed { addr: ip(V4) },
            Event::Down {
                addr: host,
                reason: FailReason::Timeout
            }
        ]
    );
}

#[test]
fn broadcast_errors_are_reported_once_until_they_change() {
    require_root();
    let mut checker = HealthChecker::new(&part(&config_with(ip(V4), 1))).unwrap();
    let addr = ip("198.19.0.255");
    let mut events = Vec::new();
    let failed = |error: &str| vec![(addr, error.to_owned())];
    checker.record_broadcast_errors(failed("Network is unreachable"), &mut events);
    checker.record_broadcast_errors(failed("Network is unreachable"), &mut events);
    assert_eq!(events.len(), 1);
    checker.record_broadcast_errors(vec![], &mut events);
    checker.record_broadcast_errors(failed("Network is unreachable"), &mut events);
    checker.record_broadcast_errors(failed("Permission denied"), &mut events);
    assert_eq!(events.len(), 3);
}

#[test]
fn a_reload_keeps_the_health_of_kept_servers_starts_new_ones_up_and_drops_removed_ones() {
    require_root();
    let mut checker = HealthChecker::new(&part(&config_with(ip(V4), 1))).unwrap();
    let hot = ip("127.0.0.9");
    let mut events = Vec::new();
    for _ in 0..2 {
        checker.record_candidates(&[hot], &mut events);
    }
    checker.record_servers(
        vec![(ip(V4), Err(FailReason::NoReply)), (hot, Ok(()))],
        &mut events,
    );
    assert!(!checker.states()[0].1, "down before the reload");

    let mut config = config_with(ip(V4), 1);
    let new = Backend {
        addr: ip("127.0.0.2"),
        weight: 4,
    };
    config.servers4.insert(0, new);
    config.rise = 5;
    let (done, sockets) = checker.reconfigure(&part(&config), &[]);
    sockets.unwrap();
    assert_eq!(done.added, [new.addr]);
    assert!(done.removed.is_empty());
    let weight_one = |addr| Backend { addr, weight: 1 };
    assert_eq!(
        checker.states(),
        [
            (new, true),
            (weight_one(ip(V4)), false),
            (weight_one(hot), true)
        ],
        "configured in the new order, the discovered one last"
    );
    assert_eq!(checker.plan.servers, [new.addr, ip(V4), hot]);
    assert_eq!(checker.rise, 5);

    // 127.0.0.1 removed, the discovered host withdrawn too: neither is checked again.
    let config = Config {
        servers4: vec![new],
        ..config
    };
    let (done, _) = checker.reconfigure(&part(&config), &[ip(V4), hot]);
    assert_eq!(done.removed, [ip(V4), hot]);
    assert_eq!(checker.states(), [(new, true)]);
    assert!(checker.plan.withdrawn.contains(&hot));
}

#[test]
fn a_restart_from_the_book_keeps_hot_plugged_servers_and_known_states() {
    use loaded_proto::balancing::IpNet;
    use loaded_proto::message::{BookedBackend, BookedHealth, Origin};
    require_root();
    let config = Config {
        rip4: Some(IpNet {
            addr: ip("127.0.0.0"),
            prefix_len: 8,
        }),
        ..config_with(ip(V4), 1)
    };
    let mut checker = HealthChecker::new(&part(&config)).unwrap();
    let configured = Backend {
        addr: ip(V4),
        weight: 1,
    };
    let hot = Backend {
        addr: ip("127.0.0.9"),
        weight: 1,
    };
    let outside = Backend {
        addr: ip("198.19.0.9"),
        weight: 1,
    };
    let booked = |backend, origin, health| BookedBackend {
        backend,
        origin,
        health,
    };
    checker.start_from(&[
        booked(configured, Origin::Configured, BookedHealth::Down),
        booked(hot, Origin::HotPlugged, BookedHealth::Up),
        booked(outside, Origin::HotPlugged, BookedHealth::Up),
    ]);
    assert_eq!(checker.states(), [(configured, false), (hot, true)]);
    assert_eq!(checker.plan.servers, [configured.addr, hot.addr]);
    // Down by the book: one good round is not enough to come back (rise=2), and the hot
    // plugged one is not up on probation either: one bad round does not take it out.
    let mut events = Vec::new();
    checker.record_servers(
        vec![
            (configured.addr, Ok(())),
            (hot.addr, Err(FailReason::NoReply)),
        ],
        &mut events,
    );
    assert_eq!(events, []);
    checker.record_servers(
        vec![
            (configured.addr, Ok(())),
            (hot.addr, Err(FailReason::NoReply)),
        ],
        &mut events,
    );
    assert_eq!(
        events,
        [
            Event::Up {
                addr: configured.addr
            },
            Event::Down {
                addr: hot.addr,
                reason: FailReason::NoReply
            }
        ]
    );
}

/// The round never holds up its caller: starting it and advancing it return at once, while
/// a connect to a hung server is in flight; it ends by its deadlines.
#[test]
fn a_round_in_flight_never_blocks_its_caller() {
    require_root();
    let (_listener, _queued, port) = full_accept_queue();
    let config = Config {
        check_timeout: Duration::from_secs(1),
        ..config_with(ip(V4), port)
    };
    let mut checker = HealthChecker::new(&part(&config)).unwrap();
    let start = Instant::now();
    checker.start_round();
    assert!(start.elapsed() < Duration::from_millis(100), "start waited");
    let (echo, _) = checker.watched_fds();
    assert_eq!(echo.len(), 1, "the IPv4 echo socket is watched");
    let mut saw_connect_in_flight = false;
    let events = loop {
        let before = Instant::now();
        let done = checker.advance_round(Instant::now());
        assert!(
            before.elapsed() < Duration::from_millis(100),
            "advance waited"
        );
        if let Some(events) = done {
            break events;
        }
        saw_connect_in_flight |= !checker.watched_fds().1.is_empty();
        assert!(checker.round_deadline().is_some());
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        saw_connect_in_flight,
        "the connect was watched while in flight"
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(2300),
        "{elapsed:?}"
    );
    assert_eq!(
        events,
        [Event::Down {
            addr: ip(V4),
            reason: FailReason::Timeout
        }]
    );
    assert!(!checker.round_in_flight());
}
