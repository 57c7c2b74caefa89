//! End-to-end: what only kernel mode (`forward=kernel`) has: the master's nftables table
//! (installed, removed at stop, a leftover replaced), UDP packets queued while their flow's
//! first packet is being decided, and the conntrack entries of a server that goes down.
//! The traffic and failover tests run in kernel mode too (e2e_traffic, e2e_failover).
//!
//! They need root, nft and conntrack, and fail with the reason without them.

mod support;

use support::balancer::*;
use support::*;

const FAST_CHECKS: &str = "failover\ncheck_cycle=2\ncheck_timeout=1\nrise=2\nfall=2\n";

fn leave_a_leftover_table(net: &TestNet) {
    net.exec_ok(Host::Balancer, &["nft", "add", "table", "inet", "loaded"]);
    net.exec_ok(
        Host::Balancer,
        &["nft", "add", "chain", "inet", "loaded", "leftover"],
    );
    assert!(nft_ruleset(net).contains("chain leftover"));
}

#[test]
fn the_nft_table_lives_and_dies_with_the_master_and_leftovers_are_replaced() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    leave_a_leftover_table(&net);
    let master = Master::start(&net, &base_config_in(&net, Mode::Kernel, ""), &[]);
    let ruleset = nft_ruleset(&net);
    let mangle = mangle_rules(&net);
    // Shown with --nocapture: what a running kernel-mode balancer installs.
    println!("--- nft list ruleset ---\n{ruleset}--- mangle ---\n{mangle}");
    assert!(!ruleset.contains("leftover"), "{ruleset}");
    for expected in [
        "elements = { 0x4c440001 : 198.19.0.11, 0x4c440002 : 198.19.0.12,",
        "elements = { 0x4c440004 : fd00:19::11, 0x4c440005 : fd00:19::12,",
        "dnat ip to meta mark map @backends4",
        "dnat ip6 to meta mark map @backends6",
        "ct mark set meta mark",
    ] {
        assert!(ruleset.contains(expected), "{expected:?} in\n{ruleset}");
    }
    // Only connections without loaded's mark are queued, and no reply is.
    assert!(
        mangle.contains("-m connmark ! --mark 0x4c440000/0xffff0000 -j NFQUEUE"),
        "{mangle}"
    );
    assert!(!mangle.contains("LOADED-FORWARD"), "{mangle}");
    assert!(!mangle.contains("LOADED-OUTPUT"), "{mangle}");
    assert_eq!(
        backends_answering(&net, &http_url(VIP4, HTTP_PORT, "/"), 1),
        ["b1"]
    );
    master.stop_cleanly(&net);
    let ruleset = nft_ruleset(&net);
    assert!(!ruleset.contains("inet loaded"), "after stop:\n{ruleset}");
    assert!(!mangle_rules(&net).contains("LOADED"));

    // A userspace-mode start removes a kernel-mode leftover too: its NAT would confuse the
    // rewrite (Master::start checks there is no table once it runs).
    leave_a_leftover_table(&net);
    let master = Master::start(&net, &base_config_in(&net, Mode::Userspace, ""), &[]);
    assert_eq!(
        backends_answering(&net, &http_url(VIP6, HTTP_PORT, "/"), 1),
        ["b1"]
    );
    master.stop_cleanly(&net);
}

/// Sends `count` datagrams from one socket at once, then collects the answers.
const UDP_BURST_PY: &str = r#"
import socket, sys, time
addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
for i in range(count):
    s.sendto(b"d%d" % i, (addr, port))
s.settimeout(0.5)
names = []
deadline = time.time() + 5
while len(names) < count and time.time() < deadline:
    try:
        data, peer = s.recvfrom(65535)
    except socket.timeout:
        continue
    names.append(data.decode().split(":")[0])
print(" ".join(names))
"#;

#[test]
fn udp_datagrams_sent_while_the_first_is_decided_stay_one_flow() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    // Per-flow stickiness and rr: a second decision for the same flow would only agree with
    // the first through the shared flow table.
    let config = base_config_in(&net, Mode::Kernel, "strategy=rr\nstickiness=flow\n");
    let master = Master::start(&net, &config, &[]);
    let queued_so_far = || -> u64 { net.nfqueues().iter().map(|q| q.id_sequence).sum() };
    for (vip, family) in [(VIP4, "ipv4"), (VIP6, "ipv6")] {
        let before = queued_so_far();
        let out = net.exec_timeout(
            Host::Client,
            &[
                "python3",
                "-c",
                UDP_BURST_PY,
                vip,
                &UDP_PORT.to_string(),
                "40",
            ],
            secs(15),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(names.len(), 40, "answers through {vip}: {stdout}");
        // Only packets without a decided connection are queued: the first, and those that
        // came while it was in userspace (more than one shows the case was exercised).
        let queued = queued_so_far() - before;
        println!("{vip}: {queued} of 40 datagrams were queued");
        assert!(
            (1..=40).contains(&queued),
            "{queued} of 40 datagrams queued"
        );
        assert!(
            names.iter().all(|n| *n == names[0]),
            "one flow, one server: {stdout}"
        );
        // conntrack merged the datagrams queued at once into one entry.
        let entries = net.exec(
            Host::Balancer,
            &[
                "conntrack",
                "-L",
                "-f",
                family,
                "-p",
                "udp",
                "--orig-dst",
                vip,
            ],
        );
        let entries = String::from_utf8_lossy(&entries.stdout).into_owned();
        assert_eq!(entries.lines().count(), 1, "{entries}");
        let mark: u32 = entries
            .split("mark=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|mark| mark.parse().ok())
            .unwrap_or_else(|| panic!("no mark in {entries}"));
        assert_eq!(mark & 0xffff_0000, 0x4c44_0000, "loaded's mark: {entries}");
    }
    master.stop_cleanly(&net);
}

/// conntrack entries of family `family` with exactly `mark`.
fn entries_marked(net: &TestNet, family: &str, mark: u32) -> usize {
    let out = net.exec(
        Host::Balancer,
        &[
            "conntrack",
            "-L",
            "-f",
            family,
            "--mark",
            &format!("{mark:#x}/0xffffffff"),
        ],
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_down_servers_connections_are_forgotten_and_no_others() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let config = base_config_in(
        &net,
        Mode::Kernel,
        &format!("{FAST_CHECKS}strategy=rr\nstickiness=flow\n"),
    );
    let master = Master::start(&net, &config, &[]);
    // Two connections per server; their entries stay (TIME_WAIT) with the server's mark.
    let answers = backends_answering(&net, &http_url(VIP4, HTTP_PORT, "/"), 6);
    assert_eq!(answers, ["b1", "b2", "b3", "b1", "b2", "b3"]);
    let (b1, b2) = (0x4c44_0001, 0x4c44_0002);
    assert!(entries_marked(&net, "ipv4", b1) >= 2);
    assert!(entries_marked(&net, "ipv4", b2) >= 2);

    net.stop_backend(2);
    let forgotten = wait_until(secs(15), || {
        master
            .log(&net)
            .contains(&format!("to {} forgotten: it is down", BACKEND4[1]))
    });
    assert!(forgotten, "{}", master.log(&net));
    assert_eq!(entries_marked(&net, "ipv4", b2), 0, "{}", master.log(&net));
    assert!(
        entries_marked(&net, "ipv4", b1) >= 2,
        "a healthy server's connections stay"
    );

    net.start_backend(2);
    let back = wait_until(secs(15), || {
        master
            .log(&net)
            .contains(&format!("server {} is up again", BACKEND4[1]))
    });
    assert!(back, "{}", master.log(&net));
    assert!(
        entries_marked(&net, "ipv4", b1) >= 2,
        "nothing healthy is touched"
    );
    master.stop_cleanly(&net);
}
