//! End-to-end safety properties of a running balancer, in network namespaces (client -
//! router - balancer - three backends):
//!
//! * malformed and unsupported packets to the VIPs get a verdict (the queues do not fill
//!   up), are counted per reason, and do not disturb the service;
//! * every child runs jailed: unprivileged user, chroot, exactly one capability,
//!   no_new_privs, pinned to its core; each queue socket is held by its worker only;
//! * a child killed with SIGKILL is restarted, jailed again, and traffic keeps flowing;
//! * a worker that stops answering the master's heartbeat is killed and replaced;
//! * every child runs under its seccomp allow-list, and (built with the feature
//!   `seccomp-test`) a forbidden system call kills it with SIGSYS, and it is restarted.
//!
//! They need root and fail with the reason without it.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use support::balancer::*;
use support::worker_totals::*;
use support::*;

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const NETLINK_NETFILTER: u32 = 12;

/// Sends COUNT crafted packets of one KIND from SRC to DST with raw sockets (IPv4 with
/// IP_HDRINCL, so the transport header is exactly what we write; IPv6 with a raw socket of
/// the packet's next header, the kernel adding the fixed header). argv: KIND SRC DST COUNT.
/// Prints "sent N". Runs after PY_CSUM.
const CRAFT_PY: &str = r#"
import socket, struct, sys
kind, src, dst, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
v6 = kind.startswith("v6-")

def tcp(doff, sport):
    # A 20-byte SYN whose data offset says DOFF 32-bit words.
    return struct.pack("!HHIIBBHHH", sport, 80, 1, 0, doff << 4, 0x02, 65535, 0, 0)

def transport(i):
    sport = 40000 + i
    what = kind[3:]
    if what == "tcp-doff15":
        return 6, tcp(15, sport)
    if what == "tcp-doff2":
        return 6, tcp(2, sport)
    if what == "udp-short":  # 4 of the 8 header bytes
        return 17, struct.pack("!HH", sport, 5353)
    if what == "udp-badlen":  # length field 200, 12 bytes present
        return 17, struct.pack("!HHHH", sport, 5353, 200, 0) + b"abcd"
    if what == "gre":
        return 47, b"\x00\x00\x08\x00" + b"g" * 24
    if what == "sctp":
        return 132, struct.pack("!HHII", sport, 80, 0, 0) + b"s" * 16
    if what == "none":  # IPv6 "no next header", with payload anyway
        return 59, b"n" * 24
    if what == "icmp-timestamp":
        m = struct.pack("!BBHHHIII", 13, 0, 0, 0x1234, i, 0, 0, 0)
        return 1, m[:2] + struct.pack("!H", csum(m)) + m[4:]
    if what == "ah":  # AH (12-byte ICV) around a UDP datagram to the service
        ah = struct.pack("!BBHII", 17, 4, 0, 0x100, i + 1) + b"\0" * 12
        return 51, ah + struct.pack("!HHHH", sport, 5353, 12, 0) + b"ahah"
    if what == "icmp-200":  # the kernel fills in the ICMPv6 checksum
        return 58, struct.pack("!BBHI", 200, 0, 0, i) + b"e" * 8
    sys.exit("unknown kind %s" % kind)

sockets = {}
sent = 0
for i in range(count):
    proto, payload = transport(i)
    if v6:
        s = sockets.get(proto)
        if s is None:
            s = sockets[proto] = socket.socket(socket.AF_INET6, socket.SOCK_RAW, proto)
        s.sendto(payload, (dst, 0))
    else:
        s = sockets.get(0)
        if s is None:
            s = sockets[0] = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        # The kernel fills in the id, total length and header checksum.
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                             socket.inet_aton(src), socket.inet_aton(dst))
        s.sendto(header + payload, (dst, 0))
    sent += 1
print("sent %d" % sent)
"#;

/// Sends `count` packets of `kind` (see CRAFT_PY) from the client to the VIP of its family.
fn send_crafted(net: &TestNet, kind: &str, count: u32) -> u64 {
    let (src, dst) = if kind.starts_with("v6-") {
        (CLIENT6, VIP6)
    } else {
        (CLIENT4, VIP4)
    };
    let out = net.exec_timeout(
        Host::Client,
        &[
            "python3",
            "-c",
            &format!("{PY_CSUM}{CRAFT_PY}"),
            kind,
            src,
            dst,
            &count.to_string(),
        ],
        secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == format!("sent {count}"),
        "sending {count} {kind} packets: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    u64::from(count)
}

fn id_sequence_total(queues: &[NfQueue]) -> u64 {
    queues.iter().map(|q| q.id_sequence).sum()
}

/// Waits until the kernel has queued at least `at_least` packets more than `before`
/// (summed over the queues), then until no queue has a packet waiting for its verdict.
fn assert_queued_and_all_verdicts_given(net: &TestNet, before: u64, at_least: u64) {
    let queued = wait_until(secs(5), || {
        id_sequence_total(&net.nfqueues()) >= before + at_least
    });
    let queues = net.nfqueues();
    assert!(
        queued,
        "the kernel queued {} packets, not the {at_least} we sent: {queues:?}",
        id_sequence_total(&queues) - before
    );
    let drained = wait_until(secs(3), || {
        let queues = net.nfqueues();
        !queues.is_empty() && queues.iter().all(|q| q.waiting == 0)
    });
    assert!(
        drained,
        "packets still wait for a verdict: {:?}",
        net.nfqueues()
    );
}

fn assert_serves_both_families(net: &TestNet) {
    for vip in [VIP4, VIP6] {
        let body = net
            .curl(&http_url(vip, HTTP_PORT, "/"), secs(5))
            .unwrap_or_else(|e| panic!("HTTP to {vip}: {e}"));
        assert!(body.starts_with("backend=b"), "HTTP to {vip}: {body:?}");
    }
}

#[test]
fn malformed_and_unsupported_packets_get_a_verdict_and_are_counted() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, ""), &[]);
    // Also resolves the neighbours on the way, so that no crafted packet waits for one.
    assert_serves_both_families(&net);

    let before = id_sequence_total(&net.nfqueues());
    let per_kind = 50;
    let mut malformed = 0;
    for kind in [
        "v4-tcp-doff15",
        "v4-tcp-doff2",
        "v4-udp-short",
        "v4-udp-badlen",
        "v6-tcp-doff15",
        "v6-udp-short",
    ] {
        malformed += send_crafted(&net, kind, per_kind);
    }
    let mut unsupported = 0;
    for kind in ["v4-gre", "v4-sctp", "v6-gre", "v6-none"] {
        unsupported += send_crafted(&net, kind, per_kind);
    }
    assert_queued_and_all_verdicts_given(&net, before, malformed + unsupported);
    assert!(
        net.nfqueues()
            .iter()
            .all(|q| q.queue_dropped == 0 && q.user_dropped == 0),
        "the kernel dropped queued packets: {:?}",
        net.nfqueues()
    );

    // The bad packets disturbed nothing.
    assert_serves_both_families(&net);
    for vip in [VIP4, VIP6] {
        let answer = net
            .udp_request(vip, UDP_PORT, "still-here")
            .unwrap_or_else(|e| panic!("UDP to {vip}: {e}"));
        assert!(answer.ends_with(":still-here"), "UDP to {vip}: {answer:?}");
    }

    let total = stop_and_sum_summaries(&net, &master);
    let count = |label: &str| total.get(label).copied().unwrap_or(0);
    // Exactly: the HTTP, UDP and echo traffic around them is well-formed and must not be
    // counted as a drop.
    assert_eq!(
        count("dropped malformed"),
        malformed,
        "sent {malformed} malformed packets, the workers counted {total:?}"
    );
    assert_eq!(
        count("dropped unsupported"),
        unsupported,
        "sent {unsupported} packets of unsupported protocols, the workers counted {total:?}"
    );
    assert!(
        count("packets") >= malformed + unsupported,
        "the workers saw fewer packets than were queued: {total:?}"
    );
    assert_eq!(count("verdict errors"), 0, "{total:?}");
}

#[test]
fn unsupported_icmp_types_to_the_vip_are_dropped_and_counted() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, ""), &[]);
    assert_serves_both_families(&net);

    let before = id_sequence_total(&net.nfqueues());
    let sent = send_crafted(&net, "v4-icmp-timestamp", 50) + send_crafted(&net, "v6-icmp-200", 50);
    assert_queued_and_all_verdicts_given(&net, before, sent);
    // Echo still works, through the balancer, for both families.
    for vip in [VIP4, VIP6] {
        assert_eq!(
            net.ping(Host::Client, vip, 2, secs(5))
                .unwrap_or_else(|e| panic!("{e}")),
            [vip.to_string()]
        );
    }
    let total = stop_and_sum_summaries(&net, &master);
    assert_eq!(
        total.get("dropped unsupported").copied().unwrap_or(0),
        sent,
        "sent {sent} ICMP messages of unsupported types, the workers counted {total:?}"
    );
    assert_eq!(total.get("dropped malformed"), None, "{total:?}");
}

/// AH authenticates the final destination, so a packet to the VIP with AH cannot be
/// rewritten: it is dropped and counted as unsupported.
#[test]
fn ipv6_ah_to_the_vip_is_dropped_and_counted() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, ""), &[]);
    assert_serves_both_families(&net);

    let before = id_sequence_total(&net.nfqueues());
    let sent = send_crafted(&net, "v6-ah", 50);
    assert_queued_and_all_verdicts_given(&net, before, sent);
    assert_serves_both_families(&net);
    let total = stop_and_sum_summaries(&net, &master);
    assert_eq!(
        total.get("dropped unsupported").copied().unwrap_or(0),
        sent,
        "sent {sent} IPv6 packets with AH to the VIP, the workers counted {total:?}"
    );
    assert_eq!(total.get("dropped malformed"), None, "{total:?}");
}

// --- processes ---------------------------------------------------------------------------

/// /proc/PID/status as {field: value}.
fn proc_status(pid: u32) -> HashMap<String, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn field<'a>(status: &'a HashMap<String, String>, pid: u32, name: &str) -> &'a str {
    status
        .get(name)
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {name}"))
}

fn numbers(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

fn cap_mask(status: &HashMap<String, String>, pid: u32, name: &str) -> u64 {
    u64::from_str_radix(field(status, pid, name), 16)
        .unwrap_or_else(|e| panic!("/proc/{pid}/status {name}: {e}"))
}

fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `--core N` of a worker's command line.
fn worker_core(pid: u32) -> Option<u16> {
    let args = cmdline(pid);
    let at = args.iter().position(|a| a == "--core")?;
    args.get(at + 1)?.parse().ok()
}

/// The master's live (not zombie) children in lb named `name`.
fn live_children(net: &TestNet, master: u32, name: &str) -> Vec<u32> {
    children_named(net, name)
        .into_iter()
        .filter(|&pid| {
            let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            let status: HashMap<&str, &str> = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k, v.trim()))
                .collect();
            status.get("PPid") == Some(&master.to_string().as_str())
                && !status.get("State").is_some_and(|s| s.starts_with('Z'))
        })
        .collect()
}

/// The master's live workers by the core on their command line.
fn workers_by_core(net: &TestNet, master: u32) -> BTreeMap<u16, u32> {
    live_children(net, master, "loaded-worker")
        .into_iter()
        .filter_map(|pid| Some((worker_core(pid)?, pid)))
        .collect()
}

/// The uid and primary gid of `nobody`, the children's default user.
fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 4 && f[0] == "nobody").then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(uid, gid)| Some((uid?, gid?)))
        .expect("a user nobody in /etc/passwd")
}

/// Asserts that `pid` runs as `uid`/`gid` (all four ids, no other group), in `chroot`, with
/// exactly the capability `cap` (effective, permitted, bounding), nothing inheritable or
/// ambient, and no_new_privs.
/// A master with failover (so the prober runs) and a chroot of the test's own, so that a
/// check of the jail cannot pass by accident (the master creates it); returns the master,
/// the chroot and the children's (uid, gid).
fn start_jailed_with_prober(net: &TestNet) -> (Master, PathBuf, (u32, u32)) {
    let jail: PathBuf = net.dir().join("jail");
    let master = Master::start(
        net,
        &base_config(net, &format!("chroot={}\n", jail.display())),
        &["-f"],
    );
    wait_log_count(net, &master, "prober is ready", 1);
    (master, jail, nobody())
}

fn assert_jailed(pid: u32, what: &str, cap: u32, (uid, gid): (u32, u32), chroot: &Path) {
    let status = proc_status(pid);
    let f = |name| field(&status, pid, name);
    assert_eq!(numbers(f("Uid")), [uid; 4], "{what} (pid {pid}) uids");
    assert_eq!(numbers(f("Gid")), [gid; 4], "{what} (pid {pid}) gids");
    assert_eq!(numbers(f("Groups")), [gid], "{what} (pid {pid}) groups");
    let only = 1u64 << cap;
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            cap_mask(&status, pid, set),
            only,
            "{what} (pid {pid}) {set} must be exactly capability {cap}"
        );
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(cap_mask(&status, pid, set), 0, "{what} (pid {pid}) {set}");
    }
    assert_eq!(f("NoNewPrivs"), "1", "{what} (pid {pid}) NoNewPrivs");
    // The role's seccomp allow-list: filter mode, exactly one filter.
    assert_eq!(f("Seccomp"), "2", "{what} (pid {pid}) Seccomp");
    assert_eq!(
        f("Seccomp_filters"),
        "1",
        "{what} (pid {pid}) Seccomp_filters"
    );
    // Undumpable: the kernel gives its /proc files (not the directory) to root instead of
    // the process's user.
    let proc_owner = fs::metadata(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/mem: {e}"))
        .uid();
    assert_eq!(proc_owner, 0, "{what} (pid {pid}) must not be dumpable");
    let limits = fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/limits: {e}"));
    let core = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .map(|line| line.split_whitespace().skip(4).take(2).collect::<Vec<_>>());
    assert_eq!(
        core,
        Some(vec!["0", "0"]),
        "{what} (pid {pid}) core dumps must be off:\n{limits}"
    );
    // A session of its own and no terminal: with -D the master's stderr may be the admin's.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    let after_comm: Vec<&str> = stat[stat.rfind(')').expect("comm") + 1..]
        .split_whitespace()
        .collect();
    // state ppid pgrp session tty_nr
    assert_eq!(after_comm[3], pid.to_string(), "{what} (pid {pid}) session");
    assert_eq!(
        after_comm[4], "0",
        "{what} (pid {pid}) controlling terminal"
    );
    let stderr = fs::read_link(format!("/proc/{pid}/fd/2"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd/2: {e}"));
    assert_eq!(stderr, Path::new("/dev/null"), "{what} (pid {pid}) stderr");
    for link in ["root", "cwd"] {
        let target = fs::read_link(format!("/proc/{pid}/{link}"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/{link}: {e}"));
        assert_eq!(target, chroot, "{what} (pid {pid}) {link}");
    }
}

/// Waits until the master's log has at least `n` lines containing `text`.
fn wait_log_count(net: &TestNet, master: &Master, text: &str, n: usize) {
    let ok = wait_until(secs(15), || master.log(net).matches(text).count() >= n);
    assert!(
        ok,
        "expected {n} times {text:?} in the master's output:\n{}",
        master.log(net)
    );
}

/// The NETLINK_NETFILTER sockets of lb: {inode: port id}.
fn netfilter_sockets(net: &TestNet) -> HashMap<u64, u32> {
    let text = net
        .read_file(Host::Balancer, "/proc/net/netlink")
        .unwrap_or_else(|e| panic!("{e}"));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
            let f: Vec<&str> = line.split_whitespace().collect();
            let protocol: u32 = f.get(1)?.parse().ok()?;
            let portid: u32 = f.get(2)?.parse().ok()?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            (protocol == NETLINK_NETFILTER).then_some((inode, portid))
        })
        .collect()
}

/// The inodes of the sockets `pid` holds open.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let dir = format!("/proc/{pid}/fd");
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The port ids of the NETLINK_NETFILTER sockets `pid` holds.
fn netfilter_portids(pid: u32, sockets: &HashMap<u64, u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = socket_inodes(pid)
        .iter()
        .filter_map(|inode| sockets.get(inode).copied())
        .collect();
    ids.sort();
    ids
}

/// The receive buffer the master sets on each queue socket (SO_RCVBUFFORCE, 16 MiB), as
/// the kernel reports it: `rb` of `ss -m`, which is twice the value set (the kernel's
/// bookkeeping share).
const QUEUE_RECEIVE_BUFFER: u64 = 2 * 16 * 1024 * 1024;

#[test]
fn every_queue_socket_has_the_receive_buffer_the_master_set() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let master = Master::start(&net, &base_config(&net, ""), &[]);
    let listing = net.exec_ok(Host::Balancer, &["ss", "-f", "netlink", "-m", "-n"]);
    // With -n, NETLINK_NETFILTER rows read `12:PORTID ... skmem:(...,rbN,...)`.
    let receive_buffers: HashMap<i64, u64> = listing
        .lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(2)?;
            let portid = local
                .strip_prefix(&format!("{NETLINK_NETFILTER}:"))?
                .parse()
                .ok()?;
            let skmem = l.split("skmem:(").nth(1)?;
            let rb = skmem.split(',').find_map(|f| f.strip_prefix("rb"))?;
            Some((portid, rb.parse().ok()?))
        })
        .collect();
    let sockets = netfilter_sockets(&net);
    let workers = children_named(&net, "loaded-worker");
    assert_eq!(workers.len(), worker_count(), "{workers:?}");
    for worker in workers {
        let portids = netfilter_portids(worker, &sockets);
        // ss shows a port id above i32::MAX as the negative number of the same bits.
        let buffers: Vec<Option<u64>> = portids
            .iter()
            .map(|&id| receive_buffers.get(&i64::from(id as i32)).copied())
            .collect();
        assert!(
            !buffers.is_empty() && buffers.iter().all(|&rb| rb == Some(QUEUE_RECEIVE_BUFFER)),
            "worker {worker}: the receive buffers of its queue sockets {portids:?} are \
             {buffers:?}, not {QUEUE_RECEIVE_BUFFER}; ss -f netlink -m -n in lb:\n{listing}"
        );
    }
    master.stop_cleanly(&net);
}

/// When the master dies without a word (SIGKILL), its children see their channel close and
/// exit: nothing runs unsupervised. The master could not remove its rules; the test does.
#[test]
fn the_prober_and_the_workers_exit_when_the_master_is_killed() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, "failover\ncheck_cycle=2\n"), &[]);
    assert_eq!(children_named(&net, "loaded-prober").len(), 1);
    assert_eq!(children_named(&net, "loaded-worker").len(), worker_count());

    kill_child(master.pid);
    assert!(
        net.wait_exit(master.pid, secs(5)).is_some(),
        "the master outlived SIGKILL"
    );
    let mut left = Vec::new();
    let gone = wait_until(secs(10), || {
        left = children_named(&net, "loaded-prober");
        left.extend(children_named(&net, "loaded-worker"));
        left.is_empty()
    });
    assert!(
        gone,
        "10 s after the master was killed, its children {left:?} still run; its output:\n{}",
        master.log(&net)
    );
    for tool in ["iptables", "ip6tables"] {
        net.exec_ok(Host::Balancer, &[tool, "-t", "mangle", "-F"]);
        net.exec_ok(Host::Balancer, &[tool, "-t", "mangle", "-X"]);
    }
    assert_balancer_gone(&net);
}

#[test]
fn children_are_jailed_with_one_capability_and_only_their_own_queue() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let (master, jail, user) = start_jailed_with_prober(&net);
    assert_ne!(user.0, 0);

    let status = proc_status(master.pid);
    assert_eq!(numbers(field(&status, master.pid, "Uid")), [0; 4], "master");
    assert_eq!(
        fs::read_link(format!("/proc/{}/root", master.pid)).unwrap(),
        Path::new("/"),
        "the master itself is not chrooted"
    );

    let workers = workers_by_core(&net, master.pid);
    let expected_cores: Vec<u16> = (0..worker_count() as u16).collect();
    assert_eq!(
        workers.keys().copied().collect::<Vec<_>>(),
        expected_cores,
        "one worker per online core: {workers:?}"
    );
    assert_eq!(
        live_children(&net, master.pid, "loaded-worker").len(),
        worker_count(),
        "no extra workers"
    );
    for (&core, &pid) in &workers {
        let what = format!("worker/{core}");
        assert_jailed(pid, &what, CAP_NET_ADMIN, user, &jail);
        assert_eq!(
            field(&proc_status(pid), pid, "Cpus_allowed_list"),
            core.to_string(),
            "{what} (pid {pid}) must be pinned to core {core}"
        );
    }
    let probers = live_children(&net, master.pid, "loaded-prober");
    assert_eq!(probers.len(), 1, "one prober with -f: {probers:?}");
    assert_jailed(probers[0], "prober", CAP_NET_RAW, user, &jail);

    // Each queue is bound by a socket that only its own worker holds.
    let sockets = netfilter_sockets(&net);
    let queues = net.nfqueues();
    assert_eq!(
        queues.iter().map(|q| q.queue).collect::<Vec<_>>(),
        expected_cores,
        "one bound queue per core: {queues:?}"
    );
    assert_eq!(
        netfilter_portids(master.pid, &sockets),
        Vec::<u32>::new(),
        "the master must keep no NETLINK_NETFILTER socket (no queue socket copy)"
    );
    assert_eq!(
        netfilter_portids(probers[0], &sockets),
        Vec::<u32>::new(),
        "the prober must hold no NETLINK_NETFILTER socket"
    );
    for q in &queues {
        let pid = workers[&q.queue];
        assert_eq!(
            netfilter_portids(pid, &sockets),
            [q.peer_portid],
            "worker/{} (pid {pid}) must hold exactly the socket bound to queue {} \
             (port id {}) and no other worker's",
            q.queue,
            q.queue,
            q.peer_portid
        );
    }
    assert_serves_both_families(&net);
    master.stop_cleanly(&net);
}

fn backend_of(net: &TestNet, vip: &str) -> String {
    let body = net
        .curl(&http_url(vip, HTTP_PORT, "/"), secs(5))
        .unwrap_or_else(|e| panic!("HTTP to {vip}: {e}"));
    body.trim()
        .strip_prefix("backend=")
        .unwrap_or_else(|| panic!("unexpected answer from {vip}: {body:?}"))
        .to_string()
}

/// SIGKILL to a child of the master that the test has just found alive in lb.
fn kill_child(pid: u32) {
    send_signal(pid, libc::SIGKILL);
}

#[test]
fn killed_workers_and_prober_are_restarted_jailed_and_traffic_continues() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let (master, jail, user) = start_jailed_with_prober(&net);
    // Client stickiness: the client's mappings live in the shared table, which outlives
    // the workers. The router's address takes the first server, so that the client's
    // mapping is on another one: a mapping lost with the workers would be drawn again,
    // from the first server (a new table) or the next (the surviving cursor), never the
    // same.
    for vip in [VIP4, VIP6] {
        let router = net
            .curl_from(Host::Router, &http_url(vip, HTTP_PORT, "/"), secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(router, "backend=b1\n", "the router's first flow to {vip}");
    }
    let before4 = backend_of(&net, VIP4);
    let before6 = backend_of(&net, VIP6);
    assert_eq!(
        (before4.as_str(), before6.as_str()),
        ("b2", "b2"),
        "the client's mappings, after the router's"
    );

    // Every worker in turn, so that whichever queue the client's traffic hashes to has a
    // restarted worker.
    let workers = workers_by_core(&net, master.pid);
    assert_eq!(workers.len(), worker_count(), "{workers:?}");
    for (&core, &old) in &workers {
        let serving = format!("worker/{core}: serving NFQUEUE {core}");
        let served = master.log(&net).matches(&serving).count();
        kill_child(old);
        let mut new = None;
        let restarted = wait_until(secs(10), || {
            new = workers_by_core(&net, master.pid)
                .get(&core)
                .copied()
                .filter(|&pid| pid != old);
            new.is_some() && master.log(&net).matches(&serving).count() > served
        });
        let log = master.log(&net);
        assert!(
            restarted,
            "worker/{core} (pid {old}) was not replaced; the master's output:\n{log}"
        );
        let new = new.expect("checked above");
        let death = format!("worker/{core} (pid {old}) was killed by SIGKILL; restarting it");
        assert!(log.contains(&death), "no {death:?} in:\n{log}");
        let started = format!("started worker/{core} (pid {new})");
        assert!(log.contains(&started), "no {started:?} in:\n{log}");
        assert!(
            !live_children(&net, master.pid, "loaded-worker").contains(&old),
            "the killed worker {old} is still there"
        );
        assert_jailed(new, &format!("worker/{core}"), CAP_NET_ADMIN, user, &jail);
        assert_eq!(
            field(&proc_status(new), new, "Cpus_allowed_list"),
            core.to_string()
        );
    }
    assert_eq!(
        workers_by_core(&net, master.pid).len(),
        worker_count(),
        "one worker per core after the restarts"
    );
    let queues = net.nfqueues();
    assert_eq!(
        queues.len(),
        worker_count(),
        "every queue bound: {queues:?}"
    );

    // Traffic flows, and the mappings survived the workers.
    assert_eq!(backend_of(&net, VIP4), before4, "the IPv4 client's mapping");
    assert_eq!(backend_of(&net, VIP6), before6, "the IPv6 client's mapping");
    for vip in [VIP4, VIP6] {
        assert_eq!(
            net.ping(Host::Client, vip, 2, secs(5))
                .unwrap_or_else(|e| panic!("{e}")),
            [vip.to_string()]
        );
    }

    // The prober.
    let probers = live_children(&net, master.pid, "loaded-prober");
    assert_eq!(probers.len(), 1, "{probers:?}");
    let old = probers[0];
    kill_child(old);
    wait_log_count(&net, &master, "prober is ready", 2);
    let mut new = Vec::new();
    let replaced = wait_until(secs(10), || {
        new = live_children(&net, master.pid, "loaded-prober");
        new.len() == 1 && new[0] != old
    });
    let log = master.log(&net);
    assert!(replaced, "prober {old} not replaced ({new:?}):\n{log}");
    let death = format!("prober (pid {old}) was killed by SIGKILL; restarting it");
    assert!(log.contains(&death), "no {death:?} in:\n{log}");
    assert_jailed(new[0], "prober", CAP_NET_RAW, user, &jail);

    assert!(
        net.try_wait(master.pid).is_none(),
        "the master died:\n{log}"
    );
    assert_serves_both_families(&net);
    master.stop_cleanly(&net);
}

/// A worker that hangs (here: stopped with SIGSTOP) stops answering the master's
/// heartbeat: after 10 s it is logged, killed and replaced like a dead one, and the new
/// worker serves. The prober, which answers, is left alone.
#[test]
fn a_stopped_worker_misses_the_heartbeat_and_is_replaced() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let (master, _jail, _user) = start_jailed_with_prober(&net);
    let old = workers_by_core(&net, master.pid)[&0];
    let serving = "worker/0: serving NFQUEUE 0";
    let served = master.log(&net).matches(serving).count();
    send_signal(old, libc::SIGSTOP);
    let line = format!("worker/0 (pid {old}) did not answer the heartbeat for 10 s; killing it");
    // 10 s without an answer, then at most one heartbeat interval (2 s) until it is seen.
    let killed = wait_until(secs(30), || master.log(&net).contains(&line));
    if !killed {
        // Not left stopped in a namespace the test is about to delete.
        kill_child(old);
    }
    let log = master.log(&net);
    assert!(killed, "no {line:?} in:\n{log}");
    let mut new = None;
    let replaced = wait_until(secs(15), || {
        new = workers_by_core(&net, master.pid)
            .get(&0)
            .copied()
            .filter(|&pid| pid != old);
        new.is_some() && master.log(&net).matches(serving).count() > served
    });
    let log = master.log(&net);
    assert!(replaced, "worker/0 (pid {old}) was not replaced:\n{log}");
    let death = format!("worker/0 (pid {old}) was killed by SIGKILL; restarting it");
    assert!(log.contains(&death), "no {death:?} in:\n{log}");
    assert_eq!(
        log.matches("did not answer the heartbeat").count(),
        1,
        "only the stopped worker missed the heartbeat:\n{log}"
    );
    assert!(
        net.try_wait(master.pid).is_none(),
        "the master died:\n{log}"
    );
    assert_serves_both_families(&net);
    master.stop_cleanly(&net);
}

/// A worker that keeps dying is started again after a delay that doubles, and never makes
/// the master give up: the rest of the balancer keeps serving meanwhile.
#[test]
fn a_worker_that_keeps_dying_is_restarted_with_a_growing_delay() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &base_config(&net, ""), &[]);
    let expected = [
        "; restarting it".to_string(),
        "; it keeps dying: restarting it in 1 s".to_string(),
        "; it keeps dying: restarting it in 2 s".to_string(),
        "; it keeps dying: restarting it in 4 s".to_string(),
    ];
    for (death, ending) in expected.iter().enumerate() {
        let old = workers_by_core(&net, master.pid)[&0];
        let serving = "worker/0: serving NFQUEUE 0";
        let served = master.log(&net).matches(serving).count();
        kill_child(old);
        let line = format!("worker/0 (pid {old}) was killed by SIGKILL{ending}");
        let replaced = wait_until(secs(15), || {
            master.log(&net).matches(serving).count() > served
        });
        let log = master.log(&net);
        assert!(
            replaced && log.contains(&line),
            "death {death}: no {line:?} followed by a new worker/0 in:\n{log}"
        );
    }
    assert!(net.try_wait(master.pid).is_none(), "the master gave up");
    assert_serves_both_families(&net);
    master.stop_cleanly(&net);
}

/// Only built with the feature `seccomp-test` (tests/run-all.sh runs it with children built
/// the same way): on SIGUSR2 the master tells every child to make a system call its
/// seccomp allow-list forbids (socket() in a worker, open() in the prober). Each must die
/// of SIGSYS, be logged and restarted, jailed and filtered again, and traffic must flow.
#[cfg(feature = "seccomp-test")]
#[test]
fn a_forbidden_system_call_kills_the_child_which_is_restarted() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let (master, jail, user) = start_jailed_with_prober(&net);
    let workers = workers_by_core(&net, master.pid);
    assert_eq!(workers.len(), worker_count(), "{workers:?}");
    let probers = live_children(&net, master.pid, "loaded-prober");
    assert_eq!(probers.len(), 1, "{probers:?}");
    let old_prober = probers[0];

    send_signal(master.pid, libc::SIGUSR2);

    let mut deaths: Vec<String> = workers
        .iter()
        .map(|(core, old)| format!("worker/{core} (pid {old}) was killed by SIGSYS; restarting it"))
        .collect();
    deaths.push(format!(
        "prober (pid {old_prober}) was killed by SIGSYS; restarting it"
    ));
    let all_died = wait_until(secs(15), || {
        let log = master.log(&net);
        deaths.iter().all(|death| log.contains(death))
    });
    let log = master.log(&net);
    assert!(
        all_died,
        "not every child died of SIGSYS ({deaths:?}):\n{log}"
    );
    assert!(
        !log.contains("was allowed"),
        "a forbidden call succeeded:\n{log}"
    );
    wait_log_count(&net, &master, "prober is ready", 2);

    let mut new = BTreeMap::new();
    let restarted = wait_until(secs(15), || {
        new = workers_by_core(&net, master.pid);
        new.len() == worker_count() && new.iter().all(|(core, pid)| workers[core] != *pid)
    });
    assert!(
        restarted,
        "workers not all replaced ({workers:?} -> {new:?}):\n{}",
        master.log(&net)
    );
    for (core, &pid) in &new {
        let serving = format!("worker/{core}: serving NFQUEUE {core}");
        wait_log_count(&net, &master, &serving, 2);
        assert_jailed(pid, &format!("worker/{core}"), CAP_NET_ADMIN, user, &jail);
    }
    let probers = live_children(&net, master.pid, "loaded-prober");
    assert!(
        probers.len() == 1 && probers[0] != old_prober,
        "prober {old_prober} not replaced: {probers:?}"
    );
    assert_jailed(probers[0], "prober", CAP_NET_RAW, user, &jail);

    assert!(
        net.try_wait(master.pid).is_none(),
        "the master died:\n{}",
        master.log(&net)
    );
    assert_serves_both_families(&net);
    master.stop_cleanly(&net);
}
