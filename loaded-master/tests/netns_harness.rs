//! Tests of the network-namespace harness itself, without the balancer: the topology, the
//! backend services, the client tools and the cleanup.
//!
//! They need root (they create network namespaces) and fail with the reason without it.

mod support;

use support::*;

#[test]
fn each_backend_answers_http_and_udp_from_lb_over_both_families() {
    let net = TestNet::up(Options::default());
    net.start_backends();
    for n in 1..=3u8 {
        for addr in [backend4(n), backend6(n)] {
            let url = http_url(&addr, HTTP_PORT, "/");
            assert_eq!(
                net.curl_from(Host::Balancer, &url, secs(5)),
                Ok(format!("backend=b{n}\n")),
                "{url}"
            );
            assert_eq!(
                net.udp_request_from(Host::Balancer, &addr, UDP_PORT, "hello", secs(3)),
                Ok(format!("b{n}:hello")),
                "udp {addr}"
            );
        }
    }
    // The IPv4 ones also have the constants' addresses.
    for (n, addr) in BACKEND4.iter().take(3).enumerate() {
        assert!(net.has_address(Host::Backend(n as u8 + 1), addr));
        assert!(net.has_address(Host::Backend(n as u8 + 1), BACKEND6[n]));
    }
}

#[test]
fn client_reaches_the_router_and_the_balancer() {
    let net = TestNet::up(Options::default());
    for addr in [
        ROUTER_CLIENT4,
        ROUTER_CLIENT6,
        ROUTER_LB4,
        ROUTER_LB6,
        LB4,
        LB6,
    ] {
        let from = net
            .ping(Host::Client, addr, 1, secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from, vec![addr.to_string()], "ping {addr}");
    }
    // The VIPs are routed to lb and configured there (nothing answers on port 80 until a
    // balancer or a service runs, but lb itself answers pings to them).
    assert!(net.has_address(Host::Balancer, VIP4));
    assert!(net.has_address(Host::Balancer, VIP6));
    for vip in [VIP4, VIP6] {
        assert_eq!(
            net.ping(Host::Client, vip, 1, secs(5)),
            Ok(vec![vip.to_string()])
        );
    }
}

#[test]
fn broadcast_ping_from_lb_is_answered_by_the_backends() {
    let net = TestNet::up(Options::default());
    let from = net
        .ping(Host::Balancer, BACKEND_BROADCAST4, 2, secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        from,
        BACKEND4[..3].to_vec(),
        "answers to the broadcast ping"
    );
    assert_eq!(
        net.sysctl(Host::Balancer, "net.ipv4.icmp_echo_ignore_broadcasts"),
        Ok("1".into())
    );
}

#[test]
fn sysctls_are_as_the_balancer_needs_and_no_firewall_rule_is_added() {
    let net = TestNet::up(Options::default());
    for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
        assert_eq!(net.sysctl(Host::Balancer, key), Ok("1".into()), "lb {key}");
        assert_eq!(net.sysctl(Host::Router, key), Ok("1".into()), "rtr {key}");
        assert_eq!(net.sysctl(Host::Client, key), Ok("0".into()), "cli {key}");
    }
    // Only present while br_netfilter is loaded; then it must be off in lb.
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ] {
        if let Ok(value) = net.sysctl(Host::Balancer, key) {
            assert_eq!(value, "0", "lb {key}");
        }
    }
    let mut hosts = vec![Host::Client, Host::Router, Host::Balancer];
    hosts.extend((1..=3).map(Host::Backend));
    for host in hosts {
        for tool in ["iptables-save", "ip6tables-save"] {
            // Every table's rules (the balancer's are in mangle, for example).
            let rules = net.exec_ok(host, &[tool]);
            assert!(
                !rules.lines().any(|l| l.starts_with("-A ")),
                "{tool} in {host:?}:\n{rules}"
            );
        }
    }
    assert!(
        net.nfqueues().is_empty(),
        "no queue is bound without a balancer"
    );
}

#[test]
fn fourth_backend_and_lower_router_mtu_need_pmtu_discovery() {
    let net = TestNet::up(Options::default().backends(4).mtu_rtr_client(1300));
    net.start_backends();
    assert_eq!(
        net.backend_pid(4),
        None,
        "b4 is created without its service"
    );
    let r0 = net.exec_ok(Host::Router, &["ip", "-o", "link", "show", "r0"]);
    assert!(r0.contains(" mtu 1300 "), "{r0}");
    let c0 = net.exec_ok(Host::Client, &["ip", "-o", "link", "show", "c0"]);
    assert!(c0.contains(" mtu 1500 "), "{c0}");

    net.start_backend(4);
    let url = http_url(BACKEND4[3], HTTP_PORT, "/");
    assert_eq!(net.curl(&url, secs(5)), Ok("backend=b4\n".into()));

    // Routed straight to a backend (through lb, without a balancer): the backend's
    // 1500-byte packets need rtr's "fragmentation needed" / "packet too big".
    for addr in [BACKEND4[0], BACKEND6[0]] {
        let len = 1_000_000;
        let url = http_url(addr, HTTP_PORT, &format!("/big?bytes={len}"));
        let body = net.curl(&url, secs(20)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            is_big_body(body.as_bytes(), len),
            "{url}: {} bytes",
            body.len()
        );
    }
    // b1 learnt the path MTU from rtr's ICMP errors.
    net.assert_path_mtu_learnt(Host::Backend(1), 1300);
    let counts = net
        .client_conns(BACKEND4[1], 20, secs(1))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.len(), 1);
    assert_eq!(counts.get("b2"), Some(&20));

    assert_eq!(net.stop_backend(4).map(|s| s.success()), Some(true));
    assert!(net.curl(&url, secs(2)).is_err(), "b4's service is stopped");
}

#[test]
fn drop_removes_the_namespaces_and_every_process() {
    let net = TestNet::up(Options::default());
    net.start_backends();
    let sleeper = net.spawn(Host::Balancer, &["sleep", "600"]);
    // A process the harness did not start itself, left in a namespace: down kills it.
    net.exec_ok(
        Host::Router,
        &["sh", "-c", "sleep 600 >/dev/null 2>&1 </dev/null & echo $!"],
    );
    let orphans = net.ns_pids(Host::Router);
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    let spawned = net.spawned_pids();
    assert_eq!(spawned.len(), 4);
    assert!(spawned.contains(&sleeper));
    let prefix = net.prefix().to_string();
    drop(net);

    let list = run_bounded(
        {
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "list"]);
            cmd
        },
        secs(10),
    );
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(&prefix), "left over:\n{list}");
    for pid in spawned.iter().chain(&orphans) {
        assert!(
            wait_until(secs(5), || !alive(*pid)),
            "pid {pid} still exists"
        );
    }
}

/// Whether pid exists and is not a zombie (an orphan is reaped by init, maybe later).
fn alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| state != 'Z')
}

#[test]
fn commands_are_bounded_in_time() {
    let net = TestNet::up(Options::default().backends(1));
    let file = net.write_file("note.txt", "in the test dir\n");
    assert_eq!(
        net.read_file(Host::Backend(1), &file.to_string_lossy()),
        Ok("in the test dir\n".into())
    );
    let start = std::time::Instant::now();
    let out = net.exec_timeout(Host::Backend(1), &["sleep", "30"], secs(1));
    assert!(!out.status.success());
    assert!(start.elapsed() < secs(10), "{:?}", start.elapsed());
    assert!(String::from_utf8_lossy(&out.stderr).contains("killed after"));
    // Nothing listens on the VIP yet: a clear error, quickly.
    let err = net
        .curl(&http_url(VIP4, HTTP_PORT, "/"), secs(2))
        .unwrap_err();
    assert!(
        matches!(&err, CommandError::Failed { what, .. } if what.starts_with("curl")),
        "{err}"
    );
    assert!(net.udp_request(VIP6, UDP_PORT, "x").is_err());
}

#[test]
fn require_root_and_tools_accepts_this_machine() {
    // Fails, with the reason, where the end-to-end tests cannot run.
    require_root_and_tools();
}

#[test]
fn helpers_parse() {
    let c = parse_counts("{\"b1\": 3, \"b2\": 10}\n").unwrap();
    assert_eq!(c.get("b1"), Some(&3));
    assert_eq!(c.get("b2"), Some(&10));
    assert!(parse_counts("{}").unwrap().is_empty());
    assert!(parse_counts("nothing").is_none());

    let q = parse_nfqueue("    0  12345     0 2 65531     0     0        7  1\n");
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].queue, q[0].peer_portid), (0, 12345));
    assert_eq!((q[0].copy_range, q[0].id_sequence), (65531, 7));

    let body: Vec<u8> = (0..200).map(|i| BIG_PATTERN[i % 64]).collect();
    assert!(is_big_body(&body, 200));
    assert!(!is_big_body(&body[..199], 200));

    assert_eq!(http_url(VIP6, 80, "/"), "http://[fd00:100::1]:80/");
    assert_eq!(backend4(2), BACKEND4[1]);
    assert_eq!(backend6(4), BACKEND6[3]);

    let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nIcmp: InMsgs InErrors InEchos\n\
                Icmp: 9 0 7\nIcmpMsg: InType0\nIcmpMsg: 2\n";
    assert_eq!(snmp_value(snmp, "Icmp:", "InEchos"), Some(7));
    assert_eq!(snmp_value(snmp, "Icmp:", "OutEchos"), None);
    let snmp6 = "Ip6InReceives                   \t12\nIcmp6InEchos                    \t5\n";
    assert_eq!(snmp6_value(snmp6, "Icmp6InEchos"), Some(5));
    assert_eq!(snmp6_value(snmp6, "Icmp6InEchoReplies"), None);

    assert_eq!(
        support::balancer::parse_cpu_list("0-3,6,8-9"),
        Some(vec![0, 1, 2, 3, 6, 8, 9])
    );
    assert_eq!(support::balancer::parse_cpu_list("2"), Some(vec![2]));
    assert_eq!(support::balancer::parse_cpu_list("x"), None);
}
