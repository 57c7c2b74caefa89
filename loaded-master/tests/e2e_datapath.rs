//! End-to-end properties of the batched datapath, in network namespaces (client - router -
//! balancer - three backends):
//!
//! * a flood of thousands of packets, read and answered in bursts, leaves no packet without
//!   its verdict, and each worker counts exactly the packets the kernel gave it;
//! * during a flood that keeps the queues busy, health changes still reach the workers and
//!   a stop is still obeyed at once;
//! * verdicts the kernel refuses (packets it dropped while we held them, when a link went
//!   down) are counted and never end a worker;
//! * bulk TCP arrives as whole GSO packets with their checksums left to offload; the
//!   rewrite completes them, and neither the servers nor the client see a checksum error.
//!
//! They need root and fail with the reason without it.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;
use support::balancer::*;
use support::worker_totals::*;
use support::*;

/// Sends COUNT UDP datagrams of 64 bytes to DST port PORT as fast as Python can, from a
/// few source ports (so that several flows are involved). argv: DST PORT COUNT. Prints
/// "sent N".
const FLOOD_PY: &str = r#"
import socket, sys
dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
sockets = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(4)]
payload = b"f" * 64
sent = 0
for i in range(count):
    try:
        sockets[i % 4].sendto(payload, (dst, port))
        sent += 1
    except OSError:
        pass  # a full socket buffer: the count below says how many left
print("sent %d" % sent)
"#;

fn flood(net: &TestNet, vip: &str, count: u32) -> u64 {
    let out = net.exec_timeout(
        Host::Client,
        &[
            "python3",
            "-c",
            FLOOD_PY,
            vip,
            &UDP_PORT.to_string(),
            &count.to_string(),
        ],
        secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sent = stdout
        .trim()
        .strip_prefix("sent ")
        .and_then(|n| n.parse().ok());
    match sent {
        Some(sent) if out.status.success() => sent,
        _ => panic!(
            "flooding {vip}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// (packets given to our sockets, packets dropped by the kernel) summed over the queues:
/// every id the kernel assigned, less those it could not deliver (user_dropped).
fn delivered_and_lost(queues: &[NfQueue]) -> (u64, u64) {
    let assigned: u64 = queues.iter().map(|q| q.id_sequence).sum();
    let undelivered: u64 = queues.iter().map(|q| q.user_dropped).sum();
    let queue_full: u64 = queues.iter().map(|q| q.queue_dropped).sum();
    (assigned - undelivered, undelivered + queue_full)
}

#[test]
fn a_flood_gets_every_verdict_and_every_packet_is_counted() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    // Replies queued only from the servers' side (br0): the answers checked below come
    // back from the VIP only if that rule matches.
    let master = Master::start(&net, &base_config(&net, "private_NIC=br0\n"), &[]);
    let before = net.nfqueues();
    assert_eq!(
        before.len(),
        worker_count(),
        "one queue per worker: {before:?}"
    );
    let (delivered_before, _) = delivered_and_lost(&before);

    const COUNT: u32 = 30_000;
    let sent = flood(&net, VIP4, COUNT) + flood(&net, VIP6, COUNT);
    assert!(
        sent >= u64::from(COUNT),
        "the client sent only {sent} datagrams"
    );

    // Everything the kernel gave the workers is answered: nothing waits for a verdict.
    let drained = wait_until(secs(10), || net.nfqueues().iter().all(|q| q.waiting == 0));
    let after = net.nfqueues();
    assert!(drained, "packets still wait for a verdict: {after:?}");
    let (delivered_after, lost) = delivered_and_lost(&after);
    let delivered = delivered_after - delivered_before;
    assert!(
        delivered >= sent / 2,
        "the kernel queued only {delivered} of {sent} datagrams (and lost {lost}): {after:?}"
    );
    // The service still answers after the flood.
    for vip in [VIP4, VIP6] {
        let answer = net
            .udp_request(vip, UDP_PORT, "after-flood")
            .unwrap_or_else(|e| panic!("UDP to {vip} after the flood: {e}"));
        assert!(answer.ends_with(":after-flood"), "{answer:?}");
    }

    // The workers counted every packet the kernel delivered to them, no more, no less
    // (the flood's datagrams, the backends' replies, and the two requests above).
    let delivered_total = delivered_and_lost(&net.nfqueues()).0;
    let totals = stop_and_sum_summaries(&net, &master);
    assert_eq!(
        totals.get("packets").copied().unwrap_or(0),
        delivered_total,
        "packets counted by the workers vs delivered by the kernel since the queues were \
         bound; worker totals: {totals:?}"
    );
    assert_eq!(totals.get("verdict errors"), None, "{totals:?}");
}

/// Every checksum error counter of a namespace: IPv4's and TCP's (/proc/net/snmp, TCP over
/// both families), UDP6's and ICMP6's (/proc/net/snmp6).
fn checksum_errors(net: &TestNet, host: Host) -> HashMap<String, u64> {
    let mut errors = HashMap::new();
    let snmp = net
        .read_file(host, "/proc/net/snmp")
        .expect("/proc/net/snmp");
    let lines: Vec<&str> = snmp.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if name == "InCsumErrors" {
                let protocol = names.split(':').next().unwrap_or("?");
                errors.insert(format!("{protocol}{name}"), value.parse().unwrap_or(0));
            }
        }
    }
    let snmp6 = net
        .read_file(host, "/proc/net/snmp6")
        .expect("/proc/net/snmp6");
    for line in snmp6.lines() {
        if let Some((name, value)) = line.split_once(char::is_whitespace) {
            if name.ends_with("InCsumErrors") {
                errors.insert(name.to_string(), value.trim().parse().unwrap_or(0));
            }
        }
    }
    assert!(
        errors.contains_key("TcpInCsumErrors") && errors.contains_key("Udp6InCsumErrors"),
        "no checksum error counters found in {}: {errors:?}",
        host.short_name()
    );
    errors
}

#[test]
fn bulk_tcp_arrives_as_gso_and_every_checksum_is_right_in_both_families() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, ""), &[]);
    let hosts = [
        Host::Client,
        Host::Backend(1),
        Host::Backend(2),
        Host::Backend(3),
    ];
    let before: Vec<_> = hosts.iter().map(|h| checksum_errors(&net, *h)).collect();

    const BYTES: usize = 10 * 1024 * 1024;
    for vip in [VIP4, VIP6] {
        for _ in 0..3 {
            // Upload (client -> servers: the VIP direction) and download (the replies).
            let url = http_url(vip, HTTP_PORT, &format!("/big?bytes={BYTES}"));
            let body = net
                .curl(&url, secs(30))
                .unwrap_or_else(|e| panic!("10 MiB from {vip}: {e}"));
            assert!(
                is_big_body(body.as_bytes(), BYTES),
                "a wrong body from {vip}"
            );
        }
        let upload = net.exec_timeout(
            Host::Client,
            &[
                "sh",
                "-c",
                &format!(
                    "head -c {BYTES} /dev/zero | curl -sS --fail --noproxy '*' -m 30 \
                     -H 'Content-Type: application/octet-stream' --data-binary @- {}",
                    http_url(vip, HTTP_PORT, "/")
                ),
            ],
            secs(40),
        );
        let answer = String::from_utf8_lossy(&upload.stdout);
        assert!(
            upload.status.success() && answer.trim_end().ends_with(&format!("received={BYTES}")),
            "uploading 10 MiB to {vip}: {answer:?} {}",
            String::from_utf8_lossy(&upload.stderr)
        );
    }

    for (host, before) in hosts.iter().zip(&before) {
        let after = checksum_errors(&net, *host);
        assert_eq!(
            &after,
            before,
            "checksum errors counted in {} during the transfers",
            host.short_name()
        );
    }
    let totals = stop_and_sum_summaries(&net, &master);
    assert!(
        totals.get("GSO packets").copied().unwrap_or(0) > 0,
        "no packet arrived whole (GSO): {totals:?}"
    );
    assert!(
        totals.get("checksums completed").copied().unwrap_or(0) > 0,
        "no offloaded checksum was completed: {totals:?}"
    );
}

/// Like FLOOD_PY, but for at most SECONDS seconds and COUNT datagrams, from two processes.
/// argv: DST PORT COUNT SECONDS.
const TIMED_FLOOD_PY: &str = r#"
import os, socket, sys, time
dst, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
os.fork()  # two senders: one Python process cannot fill the queues alone
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
payload = b"f" * 64
end = time.monotonic() + seconds
for i in range(count):
    if i % 1024 == 0 and time.monotonic() > end:
        break
    try:
        s.sendto(payload, (dst, port + i % 8))
    except OSError:
        pass
"#;

/// Starts TIMED_FLOOD_PY from the client to the IPv4 VIP for at most `seconds`; its pid.
fn spawn_flood(net: &TestNet, seconds: u32) -> u32 {
    net.spawn(
        Host::Client,
        &[
            "python3",
            "-c",
            TIMED_FLOOD_PY,
            VIP4,
            "7000",
            "50000000",
            &seconds.to_string(),
        ],
    )
}

/// Waits until the flood is under way: the queues have been given `packets` more packets
/// than `before` (a total of `delivered_and_lost`).
fn wait_for_flood(net: &TestNet, before: u64, packets: u64) {
    let mut now = before;
    let flowing = wait_until(secs(20), || {
        now = delivered_and_lost(&net.nfqueues()).0;
        now >= before + packets
    });
    assert!(
        flowing,
        "the flood did not start: {} packets queued, not {packets}",
        now - before
    );
}

/// Fast checks as in e2e_failover: a state changes within fall * cycle + timeout = 5 s.
const FAST_CHECKS: &str =
    "failover\ncheck_cycle=2\ncheck_timeout=1\nrise=2\nfall=2\nstickiness=flow\n";

/// The backends (or errors) that answer `count` new connections to `vip`.
fn answering(net: &TestNet, vip: &str, count: usize) -> BTreeSet<String> {
    (0..count)
        .map(
            |i| match net.curl(&http_url(vip, HTTP_PORT, "/"), secs(3)) {
                Ok(body) => body.trim().trim_start_matches("backend=").to_string(),
                Err(e) => format!(
                    "error(#{i}: {})",
                    e.to_string().lines().next().unwrap_or("")
                ),
            },
        )
        .collect()
}

#[test]
fn health_changes_and_a_stop_are_served_during_a_flood() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, FAST_CHECKS), &["-f"]);
    // The flood goes to ports nothing listens on: each datagram is answered by an ICMP
    // error from a server, which the workers rewrite too.
    let (delivered_before, _) = delivered_and_lost(&net.nfqueues());
    let flood = spawn_flood(&net, 40);
    wait_for_flood(&net, delivered_before, 1000);

    net.stop_backend(2);
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    // Under the flood some requests may time out (the kernel drops what the queues cannot
    // hold); what counts is that b2 gets no new client once the workers heard it is down.
    let converged = wait_until(secs(30), || {
        seen = answering(&net, VIP4, 4);
        let answered = seen.iter().filter(|s| !s.starts_with("error")).count();
        answered >= 1 && !seen.contains("b2")
    });
    assert!(
        converged,
        "during the flood, new clients still reach {seen:?} {:?} after b2 stopped; {}",
        started.elapsed(),
        master.log(&net)
    );
    let (delivered_now, _) = delivered_and_lost(&net.nfqueues());
    assert!(
        delivered_now - delivered_before > 100_000,
        "the flood was no flood: {} packets queued",
        delivered_now - delivered_before
    );
    assert!(
        net.try_wait(flood).is_none(),
        "the flood ended before the test did: {}",
        net.log(flood)
    );

    // A stop in the middle of the flood: every worker obeys at once and reports.
    let asked = Instant::now();
    let totals = stop_and_sum_summaries(&net, &master);
    assert!(
        asked.elapsed() < secs(5),
        "the stop took {:?} during the flood",
        asked.elapsed()
    );
    assert!(
        totals.get("packets").copied().unwrap_or(0) > 100_000,
        "{totals:?}"
    );
    net.stop(flood);
}

#[test]
fn a_flapping_link_under_load_ends_no_worker() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, ""), &[]);
    let workers_before = {
        let mut pids = children_named(&net, "loaded-worker");
        pids.sort();
        pids
    };
    let queued_before = delivered_and_lost(&net.nfqueues()).0;
    let flood = spawn_flood(&net, 30);
    wait_for_flood(&net, queued_before, 1000);
    // l0 faces the router: every queued packet (to the VIP, and replies leaving) has it as
    // input or output device. Its IPv6 address must survive the flaps (the default is to
    // drop IPv6 addresses on link down); its default routes are put back afterwards.
    net.exec_ok(
        Host::Balancer,
        &["sysctl", "-qw", "net.ipv6.conf.l0.keep_addr_on_down=1"],
    );
    // The kernel drops the queued packets of an interface that goes down; verdicts for
    // those that a worker holds at that moment are refused with ENOENT. A fast worker holds
    // packets only for microseconds, so the workers are paused (SIGSTOP) while the link
    // goes down: the packets already read into their sockets then surely get verdicts the
    // kernel refuses. The flaps in between run with the workers at full speed.
    let workers = children_named(&net, "loaded-worker");
    let signal_workers = |signal| {
        for &pid in &workers {
            send_signal(pid, signal);
        }
    };
    for flap in 0..12 {
        let paused = flap % 2 == 0;
        if paused {
            signal_workers(libc::SIGSTOP);
            let stopped = wait_until(secs(5), || {
                workers.iter().all(|&pid| process_state(pid) == Some('T'))
            });
            assert!(stopped, "the workers {workers:?} did not stop at SIGSTOP");
        }
        net.exec_ok(Host::Balancer, &["ip", "link", "set", "l0", "down"]);
        // Pacing, not a condition: how long the link stays down, and up between flaps.
        std::thread::sleep(std::time::Duration::from_millis(100));
        net.exec_ok(Host::Balancer, &["ip", "link", "set", "l0", "up"]);
        if paused {
            signal_workers(libc::SIGCONT);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    net.stop(flood);
    net.exec_ok(
        Host::Balancer,
        &["ip", "route", "replace", "default", "via", ROUTER_LB4],
    );
    net.exec_ok(
        Host::Balancer,
        &["ip", "-6", "route", "replace", "default", "via", ROUTER_LB6],
    );
    let serving = wait_until(secs(15), || {
        [VIP4, VIP6].iter().all(|vip| {
            net.curl(&http_url(vip, HTTP_PORT, "/"), secs(3))
                .is_ok_and(|body| body.starts_with("backend=b"))
        })
    });
    assert!(
        serving,
        "the balancer stopped serving; {}",
        master.log(&net)
    );
    let mut workers_after = children_named(&net, "loaded-worker");
    workers_after.sort();
    assert_eq!(
        workers_after,
        workers_before,
        "a worker ended; {}",
        master.log(&net)
    );
    let totals = stop_and_sum_summaries(&net, &master);
    assert!(
        totals.get("verdict errors").copied().unwrap_or(0) > 0,
        "no verdict was refused, so the flaps tested nothing: {totals:?}"
    );
}
