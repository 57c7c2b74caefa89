//! End-to-end: real traffic through one loaded-master balancing both families at once, in
//! network namespaces (client - router - balancer - three backends). Every test runs once
//! per forwarding mode (`_userspace`, `_kernel`).
//!
//! They need root and fail with the reason without it.

mod support;

use std::collections::{BTreeSet, HashMap};
use support::balancer::*;
use support::*;

/// Sends one UDP datagram to ADDR PORT from a connected socket with IP_RECVERR /
/// IPV6_RECVERR on, and prints the ICMP error it gets: "type=T code=C from=OFFENDER". The
/// kernel gives the error to this socket only if the quoted datagram is the one it sent
/// (to ADDR PORT). argv: ADDR PORT TIMEOUT.
const ICMP_ERROR_PY: &str = r#"
import select, socket, struct, sys, time
addr, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
level, recverr = (socket.IPPROTO_IPV6, 25) if v6 else (socket.IPPROTO_IP, 11)
s.setsockopt(level, recverr, 1)
s.connect((addr, port))
s.send(b"nobody-listens")
deadline = time.monotonic() + timeout
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        sys.exit("no ICMP error within %s s" % timeout)
    select.select([s], [], [], left)
    try:
        _, ancdata, _, _ = s.recvmsg(512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except BlockingIOError:
        continue
    for cmsg_level, cmsg_type, data in ancdata:
        if cmsg_level == level and cmsg_type == recverr:
            _, origin, typ, code = struct.unpack("=IBBB", data[:7])
            offender = data[16:]
            if v6:
                where = socket.inet_ntop(socket.AF_INET6, offender[8:24])
            else:
                where = socket.inet_ntop(socket.AF_INET, offender[4:8])
            print("type=%d code=%d from=%s" % (typ, code, where))
            sys.exit(0)
"#;

fn counts(names: &[String]) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for name in names {
        *counts.entry(name.clone()).or_insert(0) += 1;
    }
    counts
}

fn round_robin_spreads_http_udp_and_ping_over_both_families(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(
        &net,
        &base_config_in(&net, mode, "strategy=rr\nstickiness=flow\n"),
        &[],
    );

    // Each curl is a new connection, hence a new flow; rr starts at the first server.
    let expected = ["b1", "b2", "b3", "b1", "b2", "b3"];
    assert_eq!(
        backends_answering(&net, &http_url(VIP4, HTTP_PORT, "/"), 6),
        expected
    );
    assert_eq!(
        backends_answering(&net, &http_url(VIP6, HTTP_PORT, "/"), 6),
        expected
    );

    for vip in [VIP4, VIP6] {
        let answers: BTreeSet<String> = (0..3)
            .map(|i| {
                let answer = net
                    .udp_request(vip, UDP_PORT, &format!("hello{i}"))
                    .unwrap_or_else(|e| panic!("UDP to {vip}: {e}"));
                let (name, payload) = answer.split_once(':').expect("name:payload");
                assert_eq!(payload, format!("hello{i}"));
                name.to_string()
            })
            .collect();
        assert_eq!(
            answers.len(),
            3,
            "three new UDP flows to {vip} went to {answers:?}"
        );
        // The reply must come from the VIP itself (udp_request refuses other sources), and
        // ping replies likewise. The VIPs are local in lb, so lb's own stack could answer
        // the pings: the servers must have received them, and lb none.
        let v6 = vip.contains(':');
        let servers_echoes = || -> u64 {
            (1..=3)
                .map(|n| net.echo_requests_received(Host::Backend(n), v6))
                .sum()
        };
        let lb_before = net.echo_requests_received(Host::Balancer, v6);
        let servers_before = servers_echoes();
        assert_eq!(
            net.ping(Host::Client, vip, 3, secs(5)).unwrap(),
            [vip.to_string()]
        );
        assert_eq!(
            net.echo_requests_received(Host::Balancer, v6),
            lb_before,
            "lb itself answered pings to {vip}"
        );
        let servers_after = servers_echoes();
        assert!(
            servers_after >= servers_before + 3,
            "the servers received {} of the 3 pings to {vip}",
            servers_after - servers_before
        );
    }
    master.stop_cleanly(&net);
}

/// A server's ICMP error about a balanced flow (port unreachable: nothing listens on the
/// port) reaches the client rewritten back: from the VIP, quoting the datagram the client
/// sent to the VIP (else the client's kernel would not give it to the socket).
fn a_servers_icmp_error_reaches_the_client_from_the_vip(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config_in(&net, mode, ""), &[]);
    for (vip, expected) in [(VIP4, "type=3 code=3"), (VIP6, "type=1 code=4")] {
        let out = net.exec_timeout(
            Host::Client,
            &["python3", "-c", ICMP_ERROR_PY, vip, "9", "5"],
            secs(15),
        );
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            describe(&format!("UDP to {vip} port 9"), &out)
        );
        assert_eq!(
            stdout.trim(),
            format!("{expected} from={vip}"),
            "the port unreachable about {vip} port 9"
        );
    }
    master.stop_cleanly(&net);
}

#[test]
fn a_servers_icmp_error_reaches_the_client_from_the_vip_userspace() {
    a_servers_icmp_error_reaches_the_client_from_the_vip(Mode::Userspace);
}

#[test]
fn a_servers_icmp_error_reaches_the_client_from_the_vip_kernel() {
    a_servers_icmp_error_reaches_the_client_from_the_vip(Mode::Kernel);
}

fn client_stickiness_keeps_each_client_on_one_server(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config_in(&net, mode, ""), &[]);
    for vip in [VIP4, VIP6] {
        let answers = backends_answering(&net, &http_url(vip, HTTP_PORT, "/"), 6);
        assert_eq!(answers, vec!["b1"; 6], "one client, one server ({vip})");
    }
    // UDP and ping of the same client follow its mapping too.
    assert_eq!(net.udp_request(VIP4, UDP_PORT, "x").unwrap(), "b1:x");
    assert_eq!(net.udp_request(VIP6, UDP_PORT, "y").unwrap(), "b1:y");
    // Another client (the router's address) gets the next server.
    let other = net
        .curl_from(Host::Router, &http_url(VIP4, HTTP_PORT, "/"), secs(5))
        .unwrap();
    assert_eq!(other, "backend=b2\n");
    master.stop_cleanly(&net);
}

fn weighted_spreads_open_connections_by_weight(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let config = format!(
        "VIP4={VIP4}\nVIP6={VIP6}\n{}strategy=weighted\nstickiness=flow\n\
         server4={} weight=3\nserver4={} weight=2\nserver4={} weight=1\n\
         server6={} weight=3\nserver6={} weight=2\nserver6={} weight=1\npidfile={}/p.pid\n",
        mode.config_line(),
        BACKEND4[0],
        BACKEND4[1],
        BACKEND4[2],
        BACKEND6[0],
        BACKEND6[1],
        BACKEND6[2],
        net.dir().display()
    );
    let config = config + &own_paths(&net, "");
    let master = Master::start(&net, &config, &[]);
    for vip in [VIP4, VIP6] {
        // Connections held open at once: least connections per unit of weight gives 6/4/2.
        let spread = net.client_conns(vip, 12, secs(2)).unwrap();
        let expected: HashMap<String, u32> = [
            ("b1".to_string(), 6),
            ("b2".to_string(), 4),
            ("b3".to_string(), 2),
        ]
        .into();
        assert_eq!(spread, expected, "open connections to {vip}");
    }
    master.stop_cleanly(&net);
}

fn maglev_uses_every_server(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(
        &net,
        &base_config_in(&net, mode, "strategy=maglev\nstickiness=flow\n"),
        &[],
    );
    for vip in [VIP4, VIP6] {
        let spread = counts(&backends_answering(
            &net,
            &http_url(vip, HTTP_PORT, "/"),
            30,
        ));
        assert_eq!(spread.len(), 3, "30 flows to {vip} went to {spread:?}");
    }
    master.stop_cleanly(&net);
}

/// The backend that answers a new connection from the client's source port `port`.
fn backend_from_port(net: &TestNet, url: &str, port: u16) -> String {
    let port_arg = port.to_string();
    let out = net.exec_timeout(
        Host::Client,
        &[
            "curl",
            "--silent",
            "--show-error",
            "--fail",
            "--globoff",
            "--noproxy",
            "*",
            "--max-time",
            "5",
            "--local-port",
            &port_arg,
            url,
        ],
        secs(10),
    );
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl {url} from port {port}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    body.trim()
        .strip_prefix("backend=")
        .unwrap_or_else(|| panic!("unexpected answer from {url}: {body:?}"))
        .to_string()
}

/// Which backend each of 12 connections (fixed source ports) of each family reaches.
fn maglev_choices(net: &TestNet) -> Vec<(String, u16, String)> {
    let mut choices = Vec::new();
    for vip in [VIP4, VIP6] {
        let url = http_url(vip, HTTP_PORT, "/");
        for port in 40_001..=40_012 {
            choices.push((vip.to_string(), port, backend_from_port(net, &url, port)));
        }
    }
    choices
}

fn maglev_choices_survive_a_restart(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    // The client closes first, and a port in TIME-WAIT cannot be bound again (curl binds
    // without SO_REUSEADDR): no TIME-WAIT in the client's namespace, so the same ports
    // serve both families and both runs.
    net.exec_ok(
        Host::Client,
        &["sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=0"],
    );
    let config = base_config_in(&net, mode, "strategy=maglev\nstickiness=flow\n");
    let master = Master::start(&net, &config, &[]);
    let first = maglev_choices(&net);
    master.stop_cleanly(&net);
    for vip in [VIP4, VIP6] {
        let used: BTreeSet<&String> = first
            .iter()
            .filter(|(v, _, _)| v == vip)
            .map(|(_, _, backend)| backend)
            .collect();
        assert!(used.len() >= 2, "12 flows to {vip} all went to {used:?}");
    }
    // A new master: a new flow table with a new random seed, no mappings.
    let master = Master::start(&net, &config, &[]);
    let second = maglev_choices(&net);
    for (before, after) in first.iter().zip(&second) {
        assert_eq!(
            before, after,
            "a flow went to another backend after the restart"
        );
    }
    master.stop_cleanly(&net);
}

fn path_mtu_discovery_works_through_the_balancer(mode: Mode) {
    require_root_and_tools();
    // The router's link to the client has MTU 1300, the client's 1500: the backends' full
    // size segments only get through once the router's "fragmentation needed" / "packet
    // too big", sent to the VIP, reaches the backend that owns the flow (in kernel mode
    // through conntrack: the error is RELATED to the DNATed connection).
    let net = TestNet::up(Options::default().mtu_rtr_client(1300));
    net.start_backends();
    let master = Master::start(&net, &base_config_in(&net, mode, ""), &[]);
    let len = 1_000_000;
    for vip in [VIP4, VIP6] {
        let body = net
            .curl(
                &http_url(vip, HTTP_PORT, &format!("/big?bytes={len}")),
                secs(15),
            )
            .unwrap_or_else(|e| panic!("download through {vip}: {e}\n{}", master.log(&net)));
        assert!(
            is_big_body(body.as_bytes(), len),
            "{vip}: {} bytes",
            body.len()
        );
    }
    // The client's mapping is b1 (client stickiness, rr): b1 learnt the path MTU.
    net.assert_path_mtu_learnt(Host::Backend(1), 1300);
    master.stop_cleanly(&net);
}

#[test]
fn round_robin_spreads_http_udp_and_ping_over_both_families_userspace() {
    round_robin_spreads_http_udp_and_ping_over_both_families(Mode::Userspace);
}

#[test]
fn round_robin_spreads_http_udp_and_ping_over_both_families_kernel() {
    round_robin_spreads_http_udp_and_ping_over_both_families(Mode::Kernel);
}

#[test]
fn client_stickiness_keeps_each_client_on_one_server_userspace() {
    client_stickiness_keeps_each_client_on_one_server(Mode::Userspace);
}

#[test]
fn client_stickiness_keeps_each_client_on_one_server_kernel() {
    client_stickiness_keeps_each_client_on_one_server(Mode::Kernel);
}

#[test]
fn weighted_spreads_open_connections_by_weight_userspace() {
    weighted_spreads_open_connections_by_weight(Mode::Userspace);
}

#[test]
fn weighted_spreads_open_connections_by_weight_kernel() {
    weighted_spreads_open_connections_by_weight(Mode::Kernel);
}

#[test]
fn maglev_uses_every_server_userspace() {
    maglev_uses_every_server(Mode::Userspace);
}

#[test]
fn maglev_uses_every_server_kernel() {
    maglev_uses_every_server(Mode::Kernel);
}

#[test]
fn maglev_choices_survive_a_restart_userspace() {
    maglev_choices_survive_a_restart(Mode::Userspace);
}

#[test]
fn maglev_choices_survive_a_restart_kernel() {
    maglev_choices_survive_a_restart(Mode::Kernel);
}

#[test]
fn path_mtu_discovery_works_through_the_balancer_userspace() {
    path_mtu_discovery_works_through_the_balancer(Mode::Userspace);
}

#[test]
fn path_mtu_discovery_works_through_the_balancer_kernel() {
    path_mtu_discovery_works_through_the_balancer(Mode::Kernel);
}
