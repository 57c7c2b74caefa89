//! End-to-end: the ICMP errors the balancer itself sends about a client's packet do not
//! leak a server's address and do let the client learn the VIP's path MTU. The private
//! side's MTU is lowered to 1280, so a client's 1400-byte datagram to the VIP, rewritten to
//! its server, does not fit: the balancer answers "fragmentation needed" / "packet too big",
//! quoting the packet after the rewrite. In userspace mode `LOADED-OUTPUT` queues that error
//! and a worker puts the VIP back in the quote; in kernel mode conntrack's NAT does it.
//!
//! Also: without `private_NIC`, the servers' replies are queued only from the interface of
//! the route to them, so that a packet from the public side with a server's address is not
//! made to look like a reply.
//!
//! They need root and fail with the reason without it.

mod support;

use support::balancer::*;
use support::*;

/// The balancer's private side (the servers' bridge) and its lowered MTU.
const PRIVATE_NIC: &str = "br0";
const PRIVATE_MTU: u32 = 1280;
/// A UDP payload that fits the client's path (1500) but not the private side.
const DATAGRAM_LEN: usize = 1400;

/// Sends DF datagrams of LEN bytes from a connected UDP socket to ADDR:PORT (every 0.3 s)
/// until the socket's path MTU drops below the packet size, or TIMEOUT; meanwhile captures
/// every packet that reaches the client (AF_PACKET) and counts those carrying any of the
/// SERVERS' addresses anywhere in their bytes. argv: ADDR PORT LEN SERVERS(,) TIMEOUT.
/// Prints "mtu M received N icmp_errors E leaks L"; a leak also prints the packet in hex.
const PMTU_PROBE_PY: &str = r#"
import errno, ipaddress, select, socket, sys, time
addr, port, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
servers = [ipaddress.ip_address(s).packed for s in sys.argv[4].split(",")]
timeout = float(sys.argv[5])
v6 = ":" in addr
if v6:
    family, level, discover, mtu_option, header = socket.AF_INET6, socket.IPPROTO_IPV6, 23, 24, 48
    icmp_protocol, error_types = 58, (1, 2, 3, 4)
else:
    family, level, discover, mtu_option, header = socket.AF_INET, socket.IPPROTO_IP, 10, 14, 28
    icmp_protocol, error_types = 1, (3, 11, 12)
capture = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))
s = socket.socket(family, socket.SOCK_DGRAM)
s.setsockopt(level, discover, 2)  # IP(V6)_PMTUDISC_DO: DF set, never fragment locally
s.connect((addr, port))
received = icmp_errors = leaks = 0
def transport(packet):
    """(protocol, transport bytes) of an IP packet without extension headers."""
    if packet[0] >> 4 == 6:
        return packet[6], packet[40:]
    return packet[9], packet[(packet[0] & 15) * 4:]
def drain(wait):
    global received, icmp_errors, leaks
    ready, _, _ = select.select([capture], [], [], wait)
    while ready:
        packet, where = capture.recvfrom(65535)
        if where[2] != socket.PACKET_OUTGOING and packet and packet[0] >> 4 in (4, 6):
            received += 1
            protocol, rest = transport(packet)
            if protocol == icmp_protocol and rest and rest[0] in error_types:
                icmp_errors += 1
            if any(server in packet for server in servers):
                leaks += 1
                print("leak: " + packet.hex(), file=sys.stderr)
        ready, _, _ = select.select([capture], [], [], 0)
deadline = time.monotonic() + timeout
next_send = 0.0
mtu = s.getsockopt(level, mtu_option)
while time.monotonic() < deadline and mtu >= length + header:
    if time.monotonic() >= next_send:
        try:
            s.send(b"p" * length)
        except OSError as e:
            if e.errno != errno.EMSGSIZE:
                raise
        next_send = time.monotonic() + 0.3
    drain(0.05)
    mtu = s.getsockopt(level, mtu_option)
drain(0.5)  # whatever else was on its way
print("mtu %d received %d icmp_errors %d leaks %d" % (mtu, received, icmp_errors, leaks))
"#;

#[derive(Debug, PartialEq, Eq)]
struct ProbeResult {
    mtu: u32,
    received: u32,
    icmp_errors: u32,
    leaks: u32,
}

fn probe_path_mtu(net: &TestNet, vip: &str, servers: &[&str]) -> ProbeResult {
    let out = net.exec_timeout(
        Host::Client,
        &[
            "python3",
            "-c",
            PMTU_PROBE_PY,
            vip,
            &UDP_PORT.to_string(),
            &DATAGRAM_LEN.to_string(),
            &servers.join(","),
            "15",
        ],
        secs(30),
    );
    let stdout = text(&out.stdout);
    let fields: Vec<u32> = stdout
        .split_whitespace()
        .skip(1)
        .step_by(2)
        .filter_map(|n| n.parse().ok())
        .collect();
    match fields[..] {
        [mtu, received, icmp_errors, leaks] if out.status.success() => ProbeResult {
            mtu,
            received,
            icmp_errors,
            leaks,
        },
        _ => panic!("{}", describe(&format!("path MTU probe of {vip}"), &out)),
    }
}

/// What the client's routing cache says about the VIP's path.
fn client_route_to(net: &TestNet, vip: &str) -> String {
    if vip.contains(':') {
        net.exec_ok(Host::Client, &["ip", "-6", "route", "show", "cache", vip])
    } else {
        net.exec_ok(Host::Client, &["ip", "route", "get", vip])
    }
}

fn the_balancers_own_icmp_errors_show_the_vip_and_teach_the_path_mtu(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config_in(&net, mode, ""), &[]);
    if mode == Mode::Userspace {
        // Without private_NIC the replies are still queued only from the servers' side:
        // the interface of the route to each.
        let rules = mangle_rules(&net);
        for server in [BACKEND4[0], BACKEND6[0]] {
            let prefix = if server.contains(':') { 128 } else { 32 };
            let reply_rule =
                format!("-A LOADED-FORWARD -s {server}/{prefix} -i {PRIVATE_NIC} -j NFQUEUE");
            assert!(rules.contains(&reply_rule), "{reply_rule} in\n{rules}");
        }
    }
    let mtu = PRIVATE_MTU.to_string();
    net.exec_ok(
        Host::Balancer,
        &["ip", "link", "set", PRIVATE_NIC, "mtu", &mtu],
    );
    for (vip, servers) in [(VIP4, &BACKEND4[..3]), (VIP6, &BACKEND6[..3])] {
        let before = client_route_to(&net, vip);
        assert!(
            !before.contains(&format!("mtu {PRIVATE_MTU}")),
            "the client knew the path MTU of {vip} before the test: {before}"
        );
        let result = probe_path_mtu(&net, vip, servers);
        let log = master.log(&net);
        assert_eq!(
            result.leaks, 0,
            "{vip}: packets with a server's address reached the client: {result:?}\n{log}"
        );
        assert!(
            result.icmp_errors > 0,
            "{vip}: no ICMP error reached the client: {result:?}\n{log}"
        );
        assert_eq!(
            result.mtu, PRIVATE_MTU,
            "{vip}: the client's socket did not learn the path MTU: {result:?}\n{log}"
        );
        let route = client_route_to(&net, vip);
        assert!(
            route.contains(&format!("mtu {PRIVATE_MTU}")),
            "{vip}: the client's route cache: {route}"
        );
    }
    master.stop_cleanly(&net);
}

#[test]
fn the_balancers_own_icmp_errors_show_the_vip_and_teach_the_path_mtu_userspace() {
    the_balancers_own_icmp_errors_show_the_vip_and_teach_the_path_mtu(Mode::Userspace);
}

#[test]
fn the_balancers_own_icmp_errors_show_the_vip_and_teach_the_path_mtu_kernel() {
    the_balancers_own_icmp_errors_show_the_vip_and_teach_the_path_mtu(Mode::Kernel);
}
