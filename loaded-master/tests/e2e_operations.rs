//! End-to-end: how loaded is operated. Syslog on a real socket (and across a syslog
//! restart), daemon mode (pidfile, detaching, SIGTERM cleanup), config and setup errors that
//! change nothing, the init script, and the cleanup of a killed master's leftover rules.
//!
//! Everything runs inside the namespaces of a `TestNet`; files (configs, pidfiles, the
//! syslog socket) live in its directory. The network tests need root and fail with the
//! reason without it; `check_mode_*` needs neither.
//!
//! Daemonized masters are not children of the harness: every test that starts one holds a
//! `DaemonGuard`, which kills it (by pid, only a loaded-master inside this test's lb) when
//! the test ends, also when it fails.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::balancer::*;
use support::*;

// ---------------------------------------------------------------------------------------
// A syslog daemon of our own: a datagram socket and a thread that collects its lines.

/// Binds a datagram socket at `path` and collects every datagram it receives as one line,
/// on a thread whose reads are bounded (100 ms) so that it notices `pause` and `close`.
struct Syslog {
    path: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

fn bind_datagram(path: &Path) -> UnixDatagram {
    let _ = fs::remove_file(path);
    UnixDatagram::bind(path).unwrap_or_else(|e| panic!("cannot bind {}: {e}", path.display()))
}

impl Syslog {
    fn bind(path: &Path) -> Syslog {
        Syslog::reading(path, bind_datagram(path))
    }

    /// Starts reading `socket`, bound at `path`.
    fn reading(path: &Path, socket: UnixDatagram) -> Syslog {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set_read_timeout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let thread = {
            let (lines, stop) = (Arc::clone(&lines), Arc::clone(&stop));
            let (paused, idle) = (Arc::clone(&paused), Arc::clone(&idle));
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::SeqCst) {
                    if paused.load(Ordering::SeqCst) {
                        idle.store(true, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    idle.store(false, Ordering::SeqCst);
                    match socket.recv(&mut buf) {
                        Ok(n) => lines
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => break,
                    }
                }
                // The socket is closed here, when the thread ends.
            })
        };
        Syslog {
            path: path.to_owned(),
            lines,
            stop,
            paused,
            idle,
            thread: Some(thread),
        }
    }

    /// Stops reading (a hung syslog daemon) until `resume`; returns once no read is in
    /// progress.
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        assert!(
            wait_until(secs(5), || self.idle.load(Ordering::SeqCst)),
            "the syslog thread did not pause"
        );
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The first line that satisfies `wanted` within `timeout`.
    fn wait_for(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.lines().into_iter().find(|l| wanted(l));
            found.is_some()
        });
        found
    }

    fn dump(&self) -> String {
        format!(
            "lines received on {}:\n{}",
            self.path.display(),
            self.lines().join("\n")
        )
    }

    /// Stops the thread, which closes the socket (the file stays, like a dead daemon's).
    fn close(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The `<PRI>` at the start of a syslog line.
fn priority(line: &str) -> Option<u8> {
    let rest = line.strip_prefix('<')?;
    let (digits, _) = rest.split_once('>')?;
    digits.parse().ok()
}

/// Fills the receive queue of the datagram socket at `path` (as a syslog daemon that
/// stopped reading): afterwards a blocking send to it blocks. Returns the datagrams sent.
fn fill_socket_queue(path: &Path) -> usize {
    let sender = UnixDatagram::unbound().expect("socket");
    sender.connect(path).expect("connect to the syslog socket");
    sender.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0;
    while sent < 1_000_000 {
        match sender.send(b"<30>test: filler") {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    panic!("{} never got full", path.display());
}

const FACILITY_DAEMON: u8 = 3;
const SEVERITY_ERR: u8 = 3;
const SEVERITY_INFO: u8 = 6;

// ---------------------------------------------------------------------------------------
// Processes.

/// (state, ppid, session id) from /proc/PID/stat; None when there is no such process.
fn proc_stat(pid: u32) -> Option<(char, i32, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp session ...": comm may contain anything, even ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((
        state,
        fields.get(1)?.parse().ok()?,
        fields.get(3)?.parse().ok()?,
    ))
}

/// Whether `pid` runs (a zombie does not: our daemons' parent is init, which may reap late).
fn alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| state != 'Z')
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// The live processes named `name` inside lb.
fn live_in_lb(net: &TestNet, name: &str) -> Vec<u32> {
    children_named(net, name)
        .into_iter()
        .filter(|pid| alive(*pid))
        .collect()
}

fn link(path: String) -> String {
    fs::read_link(&path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("({path}: {e})"))
}

fn read_pidfile(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Kills, at drop, the daemonized masters of a test: they are not children of the harness.
/// Only a process named loaded-master inside this TestNet's lb namespace is killed, by pid:
/// the one the pidfile names and any other found in lb. (The workers then end with their
/// channel; `TestNet`'s drop removes whatever is left with the namespaces.)
struct DaemonGuard<'a> {
    net: &'a TestNet,
    pidfile: PathBuf,
}

impl DaemonGuard<'_> {
    /// Whether `pid` is a live loaded-master inside this TestNet's lb namespace.
    fn checked_pid(&self, pid: u32) -> bool {
        comm(pid) == "loaded-master"
            && alive(pid)
            && self
                .net
                .try_ns_pids(Host::Balancer)
                .is_ok_and(|pids| pids.contains(&pid))
    }
}

impl Drop for DaemonGuard<'_> {
    fn drop(&mut self) {
        // Never panics: it may run while the test is already failing.
        let mut pids: Vec<u32> = match self.net.try_ns_pids(Host::Balancer) {
            Ok(pids) => pids
                .into_iter()
                .filter(|&pid| comm(pid) == "loaded-master")
                .collect(),
            Err(e) => {
                eprintln!("test: {e}");
                Vec::new()
            }
        };
        pids.extend(read_pidfile(&self.pidfile));
        pids.sort_unstable();
        pids.dedup();
        // The harness's own children (Master::start) are stopped by the harness.
        let spawned = self.net.spawned_pids();
        for pid in pids {
            if !spawned.contains(&pid) && self.checked_pid(pid) {
                if thread::panicking() {
                    eprintln!("test: killing the daemonized loaded-master {pid}");
                }
                // Cleanup, also after a failed assertion: never panic here.
                let _ = try_send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Sends SIGTERM to the daemon `pid` (after checking that it is our lb's loaded-master) and
/// waits until it has ended.
fn terminate_daemon(guard: &DaemonGuard<'_>, pid: u32, timeout: Duration) -> bool {
    assert!(
        guard.checked_pid(pid),
        "pid {pid} is not a live loaded-master in lb"
    );
    send_signal(pid, libc::SIGTERM);
    wait_until(timeout, || !alive(pid))
}

// ---------------------------------------------------------------------------------------
// Rules.

/// (iptables-save, ip6tables-save) of lb's mangle table.
fn family_rules(net: &TestNet) -> [(&'static str, String); 2] {
    [
        (
            "IPv4",
            net.exec_ok(Host::Balancer, &["iptables-save", "-t", "mangle"]),
        ),
        (
            "IPv6",
            net.exec_ok(Host::Balancer, &["ip6tables-save", "-t", "mangle"]),
        ),
    ]
}

fn count_lines(rules: &str, line: &str) -> usize {
    rules.lines().filter(|l| l.trim() == line).count()
}

/// Every family has exactly one jump to each of our chains and the VIP's NFQUEUE rule.
fn assert_rules_installed_once(net: &TestNet, context: &str) {
    for ((family, rules), vip) in family_rules(net).into_iter().zip([VIP4, VIP6]) {
        for jump in [
            "-A PREROUTING -j LOADED-PREROUTING",
            "-A FORWARD -j LOADED-FORWARD",
            "-A OUTPUT -j LOADED-OUTPUT",
        ] {
            assert_eq!(
                count_lines(&rules, jump),
                1,
                "{context}: {family}: `{jump}` must be there exactly once:\n{rules}"
            );
        }
        let queue_vip = rules
            .lines()
            .filter(|l| {
                l.starts_with("-A LOADED-PREROUTING")
                    && l.contains(&format!("-d {vip}/"))
                    && l.contains("-j NFQUEUE")
            })
            .count();
        assert_eq!(
            queue_vip, 1,
            "{context}: {family}: one NFQUEUE rule for {vip}:\n{rules}"
        );
    }
}

/// No rule of loaded is left, and nothing else of it either (`assert_balancer_gone`).
fn assert_no_rules(net: &TestNet, context: &str) {
    for (family, rules) in family_rules(net) {
        assert!(
            !rules.contains("LOADED") && !rules.contains("NFQUEUE"),
            "{context}: {family}: rules of loaded are left:\n{rules}"
        );
    }
    assert_balancer_gone(net);
}

/// Every firewall rule of lb: iptables-save and ip6tables-save of every table and
/// `nft list ruleset`, without the comments and counters, which change by themselves.
fn firewall_listing(net: &TestNet) -> String {
    let mut listing = String::new();
    for command in [
        &["iptables-save"][..],
        &["ip6tables-save"][..],
        &["nft", "list", "ruleset"][..],
    ] {
        listing.push_str(&net.exec_ok(Host::Balancer, command));
    }
    listing
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(without_counters)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `[12:345]` (iptables-save) and `counter packets 12 bytes 345` (nft) without the numbers.
fn without_counters(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('[') {
        let Some(len) = rest[start..].find(']') else {
            break;
        };
        let inside = &rest[start + 1..start + len];
        out.push_str(&rest[..start]);
        let numbers = inside
            .split(':')
            .all(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !(numbers && inside.contains(':')) {
            out.push_str(&rest[start..=start + len]);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    let words: Vec<&str> = out.split(' ').collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "packets" || words[i] == "bytes" {
            i += 2;
            continue;
        }
        kept.push(words[i]);
        i += 1;
    }
    kept.join(" ")
}

#[test]
fn without_counters_keeps_everything_but_the_numbers() {
    assert_eq!(
        without_counters(":PREROUTING ACCEPT [12:345]"),
        ":PREROUTING ACCEPT "
    );
    assert_eq!(
        without_counters("\t\tip saddr 1.2.3.4 counter packets 7 bytes 420 accept"),
        "\t\tip saddr 1.2.3.4 counter accept"
    );
    assert_eq!(
        without_counters("-A X -m set [a] -j ACCEPT"),
        "-A X -m set [a] -j ACCEPT"
    );
}

/// `rules=manual`: the admin installs the rules, so the master adds none and removes none.
#[test]
fn rules_manual_leaves_the_firewall_alone() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let before = firewall_listing(&net);
    let master = Master::start(&net, &base_config(&net, "rules=manual\n"), &[]);
    assert_eq!(
        firewall_listing(&net),
        before,
        "rules=manual, yet the master changed lb's rules; its output:\n{}",
        master.log(&net)
    );
    master.stop_cleanly(&net);
    assert_eq!(firewall_listing(&net), before, "after the stop");
}

/// Rules that are not the balancer's, in the chains it hooks into and in a table of their
/// own, are there while it runs and after it stopped, unchanged.
fn foreign_rules_survive_a_start_and_a_stop(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    for (tool, source) in [("iptables", "198.18.0.99"), ("ip6tables", "fd00:18::99")] {
        // Every built-in chain the balancer hooks into (OUTPUT: its own ICMP errors).
        for chain in ["PREROUTING", "FORWARD", "OUTPUT"] {
            net.exec_ok(
                Host::Balancer,
                &[
                    tool,
                    "-t",
                    "mangle",
                    "-A",
                    chain,
                    "-s",
                    source,
                    "-m",
                    "comment",
                    "--comment",
                    "foreign",
                    "-j",
                    "ACCEPT",
                ],
            );
        }
    }
    net.exec_ok(
        Host::Balancer,
        &[
            "nft",
            "add table inet foreign; \
             add chain inet foreign input { type filter hook input priority 0; }; \
             add rule inet foreign input ip saddr 198.18.0.99 accept",
        ],
    );
    let before = firewall_listing(&net);
    let foreign: Vec<String> = before
        .lines()
        .filter(|l| l.contains("foreign") || l.contains("198.18.0.99"))
        .map(str::to_string)
        .collect();
    assert!(foreign.len() >= 9, "{before}");

    let master = Master::start(&net, &base_config_in(&net, mode, ""), &[]);
    assert_traffic_flows(&net, "with foreign rules");
    let running = firewall_listing(&net);
    for line in &foreign {
        assert!(
            running.lines().any(|l| l == line),
            "{line:?} is gone while the balancer runs:\n{running}"
        );
    }
    master.stop_cleanly(&net);
    assert_eq!(firewall_listing(&net), before, "after the stop");
}

#[test]
fn foreign_rules_survive_a_start_and_a_stop_userspace() {
    foreign_rules_survive_a_start_and_a_stop(Mode::Userspace);
}

#[test]
fn foreign_rules_survive_a_start_and_a_stop_kernel() {
    foreign_rules_survive_a_start_and_a_stop(Mode::Kernel);
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// A config for the standard topology whose log lines go to `log_socket` (a socket in the
/// test's directory, never the host's /dev/log).
fn config_logging_to(net: &TestNet, log_socket: &Path, extra: &str) -> String {
    base_config(
        net,
        &format!("log_socket={}\n{extra}", log_socket.display()),
    )
}

/// The default pidfile of `base_config`.
fn pidfile_of(net: &TestNet) -> PathBuf {
    net.dir().join("loaded.pid")
}

/// One request to each VIP answers from a backend.
fn assert_traffic_flows(net: &TestNet, context: &str) {
    for vip in [VIP4, VIP6] {
        let url = http_url(vip, HTTP_PORT, "/");
        let body = net
            .curl(&url, secs(5))
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(
            body.starts_with("backend=b"),
            "{context}: {url} answered {body:?}"
        );
    }
}

/// `loaded-master -c CONFIG ARGS` in lb, without -D: the start command of daemon mode.
fn start_daemon(net: &TestNet, config: &Path, args: &[&str]) -> (Output, Duration) {
    let config = config.display().to_string();
    let mut command = vec![master_binary(), "-c", &config];
    command.extend_from_slice(args);
    let started = Instant::now();
    let out = net.exec_timeout(Host::Balancer, &command, secs(60));
    (out, started.elapsed())
}

// ---------------------------------------------------------------------------------------
// 1. Syslog.

#[test]
fn syslog_gets_every_process_and_survives_a_syslog_restart() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let socket = net.dir().join("log.sock");
    let mut syslog = Syslog::bind(&socket);
    let master = Master::start(&net, &config_logging_to(&net, &socket, ""), &[]);
    let workers = worker_count();

    // Every worker's "serving NFQUEUE N" arrives as "worker/N: ..." through the master.
    for core in 0..workers {
        let wanted = format!("worker/{core}: serving NFQUEUE {core}");
        assert!(
            syslog.wait_for(secs(10), |l| l.contains(&wanted)).is_some(),
            "no `{wanted}` on the syslog socket; {}\nmaster's output:\n{}",
            syslog.dump(),
            master.log(&net)
        );
    }
    let lines = syslog.lines();
    assert!(
        lines.iter().any(|l| l.contains("master: ")),
        "no line of the master; {}",
        syslog.dump()
    );
    // RFC 3164 as the syslog(3) of the original wrote it: <PRI>TIMESTAMP loaded[PID]: ...
    let ident = format!("loaded[{}]: ", master.pid);
    for line in &lines {
        let pri = priority(line).unwrap_or_else(|| panic!("no <PRI> in {line:?}"));
        assert_eq!(pri / 8, FACILITY_DAEMON, "not facility daemon: {line:?}");
        assert!(line.contains(&ident), "no `{ident}` in {line:?}");
    }
    let serving = lines
        .iter()
        .find(|l| l.contains("serving NFQUEUE"))
        .expect("seen above");
    assert_eq!(priority(serving).map(|p| p % 8), Some(SEVERITY_INFO));

    // The syslog daemon restarts: its socket goes away and a new one is bound at the path.
    syslog.close();
    drop(syslog);
    fs::remove_file(&socket).expect("remove the old socket");
    let syslog = Syslog::bind(&socket);

    // New lines: a worker dies; the master logs it and restarts it, the new one serves.
    let victim = *live_in_lb(&net, "loaded-worker")
        .first()
        .expect("a live worker");
    send_signal(victim, libc::SIGKILL);
    let death = syslog
        .wait_for(secs(10), |l| {
            l.contains("master: ") && l.contains(&format!("(pid {victim})"))
        })
        .unwrap_or_else(|| {
            panic!(
                "the worker's death (pid {victim}) was not logged on the new socket; {}\n\
                 master's output:\n{}",
                syslog.dump(),
                master.log(&net)
            )
        });
    assert!(
        death.contains("killed") && death.contains("restarting"),
        "{death:?}"
    );
    assert_eq!(
        priority(&death),
        Some(FACILITY_DAEMON * 8 + SEVERITY_ERR),
        "{death:?}"
    );
    // "master: worker/N (pid P) was killed by SIGKILL; restarting it"
    let name = death
        .split("master: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("worker name")
        .to_string();
    let core = name.strip_prefix("worker/").expect("worker/N").to_string();
    let wanted = format!("{name}: serving NFQUEUE {core}");
    let serving = syslog.wait_for(secs(10), |l| l.contains(&wanted));
    assert!(
        serving.is_some(),
        "no `{wanted}` from the restarted worker on the new socket; {}",
        syslog.dump()
    );
    for line in syslog.lines() {
        assert_eq!(
            priority(&line).map(|p| p / 8),
            Some(FACILITY_DAEMON),
            "{line:?}"
        );
        assert!(line.contains(&ident), "no `{ident}` in {line:?}");
    }
    assert_eq!(live_in_lb(&net, "loaded-worker").len(), workers);
    master.stop_cleanly(&net);
}

/// A syslog daemon that stops reading (hung, or busy) must not hang the master: here it
/// must still stop at SIGTERM. (Lines may be lost, as the workers' are when their channel
/// is full.)
#[test]
fn a_stalled_syslog_does_not_stop_the_master_from_stopping() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let socket = net.dir().join("log.sock");
    let syslog = Syslog::bind(&socket);
    let master = Master::start(&net, &config_logging_to(&net, &socket, ""), &[]);
    assert!(
        syslog
            .wait_for(secs(10), |l| l.contains("serving NFQUEUE"))
            .is_some(),
        "the master does not log to the socket; {}",
        syslog.dump()
    );
    syslog.pause();
    let filler = fill_socket_queue(&socket);

    assert!(net.terminate(master.pid), "the master is not running");
    let status = net.wait_exit(master.pid, secs(15));
    // Let a hung master go on, so that it can clean up before the assertions.
    syslog.resume();
    let late = status.is_none() && net.wait_exit(master.pid, secs(15)).is_some();
    assert!(
        status.is_some_and(|s| s.success()),
        "the master did not stop within 15 s of SIGTERM while the syslog socket was full \
         ({filler} datagrams queued); it {} once the socket was read again. Its output:\n{}",
        if late { "stopped" } else { "did not stop" },
        master.log(&net)
    );
    assert_no_rules(&net, "after the stop");
}

// ---------------------------------------------------------------------------------------
// 2. Daemon mode.

#[test]
fn daemon_mode_detaches_writes_its_pidfile_and_cleans_up_at_sigterm() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let socket = net.dir().join("log.sock");
    let syslog = Syslog::bind(&socket);
    let config = net.write_file("loaded.conf", &config_logging_to(&net, &socket, ""));
    let pidfile = pidfile_of(&net);
    let guard = DaemonGuard {
        net: &net,
        pidfile: pidfile.clone(),
    };

    let (out, took) = start_daemon(&net, &config, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        describe("the start command", &out),
        syslog.dump()
    );
    assert!(took < secs(30), "the start command took {took:?}");
    // The command returns once the workers run: the pidfile is there already.
    let pid = read_pidfile(&pidfile)
        .unwrap_or_else(|| panic!("no pid in {}; {}", pidfile.display(), syslog.dump()));
    assert_eq!(comm(pid), "loaded-master", "the pidfile names pid {pid}");
    assert!(alive(pid), "pid {pid} is not running");
    assert!(
        net.ns_pids(Host::Balancer).contains(&pid),
        "pid {pid} is not in lb"
    );

    // Detached: not the test's child, in its own session but not its leader (so it can
    // never acquire a controlling terminal), in /, stdio on /dev/null.
    let (_, ppid, sid) = proc_stat(pid).expect("stat");
    assert_ne!(
        ppid,
        std::process::id() as i32,
        "the daemon's parent is the test"
    );
    // SAFETY: getsid(0) has no preconditions.
    let my_sid = unsafe { libc::getsid(0) };
    assert_ne!(sid, my_sid, "the daemon is still in the test's session");
    assert_ne!(
        sid, pid as i32,
        "the daemon is a session leader (no second fork)"
    );
    assert_eq!(link(format!("/proc/{pid}/cwd")), "/");
    for fd in 0..3 {
        assert_eq!(
            link(format!("/proc/{pid}/fd/{fd}")),
            "/dev/null",
            "the daemon's fd {fd}"
        );
    }

    // Its workers run (one per core) and are its children.
    let workers = live_in_lb(&net, "loaded-worker");
    assert_eq!(workers.len(), worker_count(), "workers: {workers:?}");
    for worker in &workers {
        assert_eq!(proc_stat(*worker).map(|s| s.1), Some(pid as i32));
    }

    assert_rules_installed_once(&net, "daemon running");
    assert_traffic_flows(&net, "daemon running");

    assert!(
        terminate_daemon(&guard, pid, secs(15)),
        "the daemon {pid} did not end within 15 s of SIGTERM; {}",
        syslog.dump()
    );
    assert_no_rules(&net, "after SIGTERM");
    assert!(
        !pidfile.exists(),
        "the pidfile {} is left",
        pidfile.display()
    );
    assert_eq!(live_in_lb(&net, "loaded-worker"), Vec::<u32>::new());
    assert_eq!(live_in_lb(&net, "loaded-master"), Vec::<u32>::new());
    assert!(
        syslog
            .wait_for(secs(5), |l| l.contains("master: stopped"))
            .is_some(),
        "no `master: stopped`; {}",
        syslog.dump()
    );
    drop(guard);
}

/// A SIGTERM that arrives while the daemon is still starting (its pidfile is there, its
/// rules are installed, its workers are being started) must stop it cleanly, as at any
/// other time: the init script's `stop` may come at any moment. The signal is sent as soon
/// as the pidfile names the daemon, which is before its workers run or just after; the
/// master handles signals from before it acquires anything, so either way it cleans up.
#[test]
fn sigterm_during_daemon_startup_still_cleans_up() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let socket_path = net.dir().join("log.sock");
    let socket = bind_datagram(&socket_path);
    let config = net.write_file("loaded.conf", &config_logging_to(&net, &socket_path, ""));
    let pidfile = pidfile_of(&net);
    let guard = DaemonGuard {
        net: &net,
        pidfile: pidfile.clone(),
    };
    let config_arg = config.display().to_string();
    let syslog = Syslog::reading(&socket_path, socket);
    let start = net.spawn(Host::Balancer, &[master_binary(), "-c", &config_arg]);
    let mut pid = None;
    let written = wait_until(secs(20), || {
        pid = read_pidfile(&pidfile).filter(|p| guard.checked_pid(*p));
        pid.is_some()
    });
    assert!(
        written,
        "no pidfile naming a live loaded-master in lb; start command: {:?}, output:\n{}",
        net.try_wait(start),
        net.log(start)
    );
    send_signal(pid.expect("checked"), libc::SIGTERM);
    let status = net.wait_exit(start, secs(30));
    assert!(status.is_some(), "the start command did not return");
    let ended = wait_until(secs(20), || {
        live_in_lb(&net, "loaded-master").is_empty() && live_in_lb(&net, "loaded-worker").is_empty()
    });
    assert!(ended, "loaded processes still run in lb; {}", syslog.dump());
    let left: Vec<String> = family_rules(&net)
        .into_iter()
        .filter(|(_, rules)| rules.contains("LOADED"))
        .map(|(family, rules)| format!("{family}:\n{rules}"))
        .collect();
    assert!(
        left.is_empty() && !pidfile.exists(),
        "SIGTERM during startup (start command {status:?}) left the rules{} and {}. {}\n{}",
        if left.is_empty() { " removed" } else { "" },
        if pidfile.exists() {
            "its pidfile"
        } else {
            "no pidfile"
        },
        left.join("\n"),
        syslog.dump()
    );
    assert_balancer_gone(&net);
    assert!(
        syslog
            .wait_for(secs(5), |l| l.contains("master: stopped")
                || l.contains("while starting"))
            .is_some(),
        "no sign of a clean stop in syslog; {}",
        syslog.dump()
    );
}

/// `loaded-master -c CONFIG` in lb without -D, started with one more open descriptor than
/// stdio: `inherited` as fd `INHERITED_FD`, as a shell or a careless parent may leave one.
fn start_daemon_with_inherited_fd(net: &TestNet, config: &Path, inherited: &fs::File) -> Output {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = inherited.as_raw_fd();
    let mut command = Command::new("ip");
    command
        .args([
            "netns",
            "exec",
            &net.ns(Host::Balancer),
            master_binary(),
            "-c",
        ])
        .arg(config);
    // SAFETY: only dup2, which is async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // dup2 to another number clears close-on-exec on the copy.
            if libc::dup2(fd, INHERITED_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_bounded(command, secs(60))
}

const INHERITED_FD: libc::c_int = 42;

/// The descriptors of `pid` that a jailed worker may hold: stdio on /dev/null, sockets
/// (its channel, its queue), the flow table's memfd, and the kernel objects of its event
/// loop. Returns the others, "fd -> target".
fn unexpected_descriptors(pid: u32) -> Vec<String> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![format!("cannot read /proc/{pid}/fd")];
    };
    let mut odd: Vec<String> = dir
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_string_lossy().into_owned();
            let target = link(entry.path().display().to_string());
            let expected = match fd.as_str() {
                "0" | "1" | "2" => target == "/dev/null",
                _ => {
                    target.starts_with("socket:")
                        || target.starts_with("/memfd:")
                        || target.starts_with("anon_inode:")
                }
            };
            (!expected).then(|| format!("fd {fd} -> {target}"))
        })
        .collect();
    odd.sort();
    odd
}

/// The jailed workers must hold no descriptor but the ones they are given: their channel
/// (fd 3), queue socket and flow table, and /dev/null as stdio. Not the start command's
/// readiness pipe, not whatever the start command inherited from its parent.
#[test]
fn daemon_workers_hold_only_their_own_descriptors() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let socket = net.dir().join("log.sock");
    let syslog = Syslog::bind(&socket);
    let config = net.write_file("loaded.conf", &config_logging_to(&net, &socket, ""));
    let guard = DaemonGuard {
        net: &net,
        pidfile: pidfile_of(&net),
    };
    let secret = net.write_file("outside-the-jail.txt", "not for the workers\n");
    let secret_file = fs::OpenOptions::new()
        .append(true)
        .open(&secret)
        .expect("open");
    let out = start_daemon_with_inherited_fd(&net, &config, &secret_file);
    assert!(
        out.status.success(),
        "{}\n{}",
        describe("the start command", &out),
        syslog.dump()
    );
    let pid = read_pidfile(&guard.pidfile).expect("pidfile");
    let workers = live_in_lb(&net, "loaded-worker");
    assert_eq!(workers.len(), worker_count());
    let report: Vec<String> = workers
        .iter()
        .flat_map(|w| {
            unexpected_descriptors(*w)
                .into_iter()
                .map(move |d| format!("worker {w}: {d}"))
        })
        .collect();
    let master_report = unexpected_descriptors(pid)
        .into_iter()
        .filter(|d| d.contains(&secret.display().to_string()))
        .collect::<Vec<_>>();
    assert!(
        terminate_daemon(&guard, pid, secs(15)),
        "the daemon did not stop"
    );
    assert_no_rules(&net, "after the daemon stopped");
    assert!(
        report.is_empty(),
        "the jailed workers hold descriptors they were never given \
         (the file was fd {INHERITED_FD} of the start command: {}):\n{}\n\
         the daemonized master itself holds: {master_report:?}",
        secret.display(),
        report.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 3. Errors change nothing.

/// Line 3 is the error.
const BAD_LINE: &str = "strategi=rr";

fn bad_config(net_dir: &Path) -> String {
    format!(
        "VIP4={VIP4}\nVIP6={VIP6}\n{BAD_LINE}\nserver4={}\nserver6={}\npidfile={dir}/loaded.pid\n\
         chroot={dir}/empty\nlog_socket={dir}/no-syslog.sock\n",
        BACKEND4[0],
        BACKEND6[0],
        dir = net_dir.display()
    )
}

fn assert_nothing_changed(net: &TestNet, pidfile: &Path, context: &str) {
    assert_no_rules(net, context);
    assert!(
        !pidfile.exists(),
        "{context}: a pidfile {} was written",
        pidfile.display()
    );
    for name in ["loaded-master", "loaded-worker", "loaded-prober"] {
        assert_eq!(
            live_in_lb(net, name),
            Vec::<u32>::new(),
            "{context}: {name} runs"
        );
    }
}

#[test]
fn a_config_error_changes_nothing_and_names_file_and_line() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let guard = DaemonGuard {
        net: &net,
        pidfile: pidfile_of(&net),
    };
    let bad = net.write_file("bad.conf", &bad_config(net.dir()));
    let (out, _) = start_daemon(&net, &bad, &["-U", "nobody"]);
    assert!(
        !out.status.success(),
        "{}",
        describe("a bad config was accepted", &out)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.conf:3:") && stderr.contains("strategi"),
        "{}",
        describe("the error does not name bad.conf:3", &out)
    );
    assert!(
        stderr.contains("did you mean 'strategy'"),
        "{}",
        describe("no suggestion", &out)
    );
    assert_nothing_changed(&net, &guard.pidfile, "after a config error");
    // Same in the foreground.
    let bad_arg = bad.display().to_string();
    let out = net.exec_timeout(
        Host::Balancer,
        &[master_binary(), "-D", "-c", &bad_arg],
        secs(30),
    );
    assert!(!out.status.success() && text(&out.stderr).contains("bad.conf:3:"));
    assert_nothing_changed(&net, &guard.pidfile, "after a config error with -D");
}

#[test]
fn check_mode_prints_the_settings_or_the_errors() {
    let dir = TempDir::new("ops-check");
    let pidfile = dir.path().join("loaded.pid");
    let good = dir.path().join("good.conf");
    fs::write(
        &good,
        format!(
            "VIP4={VIP4}\nVIP6={VIP6}\nserver4={}\nserver6={}\nstrategy=maglev\npidfile={}\n",
            BACKEND4[0],
            BACKEND6[0],
            pidfile.display()
        ),
    )
    .unwrap();
    let out = check_config(&good);
    assert!(out.status.success(), "{}", describe("-t good.conf", &out));
    let stdout = text(&out.stdout);
    for wanted in [
        "strategy=maglev".to_string(),
        format!("VIP4={VIP4}"),
        format!("VIP6={VIP6}"),
        // The init script finds the pidfile through this line.
        format!("pidfile={}", pidfile.display()),
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == wanted),
            "no line `{wanted}` in\n{}",
            describe("-t good.conf", &out)
        );
    }
    assert!(!pidfile.exists(), "-t wrote the pidfile");

    let bad = dir.path().join("bad.conf");
    fs::write(&bad, bad_config(dir.path())).unwrap();
    let out = check_config(&bad);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe("-t bad.conf", &out)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:", bad.display()))
            && stderr.contains("did you mean 'strategy'"),
        "{}",
        describe("-t bad.conf does not name bad.conf:3", &out)
    );
    assert!(
        !stdout_has_settings(&out),
        "{}",
        describe("-t bad.conf", &out)
    );
}

fn stdout_has_settings(out: &Output) -> bool {
    text(&out.stdout).contains("configuration OK")
}

/// An error the config cannot show (here a user that does not exist) fails the start
/// command, changes nothing and is shown to whoever started it: in daemon mode, stderr is
/// all an admin running the init script sees.
#[test]
fn a_setup_error_before_daemonizing_is_reported_on_stderr() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let socket = net.dir().join("log.sock");
    let syslog = Syslog::bind(&socket);
    let config = net.write_file("loaded.conf", &config_logging_to(&net, &socket, ""));
    let guard = DaemonGuard {
        net: &net,
        pidfile: pidfile_of(&net),
    };
    let user = "no-such-user-loaded-test";
    let (out, _) = start_daemon(&net, &config, &["-U", user]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe("start with an unknown user", &out)
    );
    assert_nothing_changed(&net, &guard.pidfile, "after an unknown user");
    assert_reason_reported(&syslog, &out, "no such user", "start with an unknown user");
}

/// A jail that would not be one is refused before anything is set up: `/` as the chroot,
/// or a chroot with something in it.
#[test]
fn a_chroot_that_is_no_jail_is_refused() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let socket = net.dir().join("log.sock");
    let syslog = Syslog::bind(&socket);
    let full = net.dir().join("full-jail");
    fs::create_dir_all(&full).unwrap();
    fs::set_permissions(&full, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(full.join("busybox"), b"anything").unwrap();
    for (chroot, reason) in [
        ("/".to_string(), "is the root directory"),
        (full.display().to_string(), "must be empty, but holds"),
    ] {
        let config = net.write_file(
            "loaded.conf",
            &config_logging_to(&net, &socket, &format!("chroot={chroot}\n")),
        );
        let guard = DaemonGuard {
            net: &net,
            pidfile: pidfile_of(&net),
        };
        let (out, _) = start_daemon(&net, &config, &[]);
        let what = format!("start with chroot={chroot}");
        assert_eq!(out.status.code(), Some(1), "{}", describe(&what, &out));
        assert_nothing_changed(&net, &guard.pidfile, &what);
        assert_reason_reported(&syslog, &out, reason, &what);
    }
}

/// `-U` takes a numeric uid as well as a name.
#[test]
fn a_numeric_user_is_resolved() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("this test needs the user nobody");
    let uid = nobody.uid.as_raw().to_string();
    let master = Master::start(&net, &base_config(&net, ""), &["-U", &uid]);
    let workers = children_named(&net, "loaded-worker");
    assert!(!workers.is_empty(), "{}", master.log(&net));
    for pid in workers {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uids = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>();
        assert_eq!(uids, [uid.as_str(); 4], "worker {pid}");
    }
    master.stop_cleanly(&net);
}

/// Same for an error after the fork: the pidfile cannot be written. The rules installed
/// before are removed again.
#[test]
fn a_setup_error_after_daemonizing_is_reported_by_the_start_command() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    let socket = net.dir().join("log.sock");
    let syslog = Syslog::bind(&socket);
    let pidfile = net.dir().join("no-such-dir").join("loaded.pid");
    let text_config = config_logging_to(&net, &socket, "").replace(
        &format!("pidfile={}\n", pidfile_of(&net).display()),
        &format!("pidfile={}\n", pidfile.display()),
    );
    let config = net.write_file("loaded.conf", &text_config);
    // The config itself is fine: the error comes after the fork.
    let out = check_config(&config);
    assert!(out.status.success(), "{}", describe("-t", &out));
    let guard = DaemonGuard {
        net: &net,
        pidfile: pidfile.clone(),
    };
    let (out, _) = start_daemon(&net, &config, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        describe("start with an unwritable pidfile", &out),
        syslog.dump()
    );
    // The daemon may still be removing its rules when the start command returns.
    let master_gone = wait_until(secs(15), || live_in_lb(&net, "loaded-master").is_empty());
    assert!(
        master_gone,
        "the failed daemon still runs; {}",
        syslog.dump()
    );
    assert_nothing_changed(&net, &guard.pidfile, "after an unwritable pidfile");
    assert_reason_reported(
        &syslog,
        &out,
        "cannot write pidfile",
        "start with an unwritable pidfile",
    );
}

/// A failed start says why both in syslog and on the start command's stderr.
fn assert_reason_reported(syslog: &Syslog, out: &Output, reason: &str, what: &str) {
    assert!(
        syslog.wait_for(secs(5), |l| l.contains(reason)).is_some(),
        "the reason is not in syslog either; {}",
        syslog.dump()
    );
    assert!(
        text(&out.stderr).contains(reason),
        "the start command failed without saying why (the reason went to syslog only):\n{}\n{}",
        describe(what, out),
        syslog.dump()
    );
}

// ---------------------------------------------------------------------------------------
// 4. The init script.

fn init_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/init.d/loaded")
}

fn init(net: &TestNet, config: &Path, action: &str) -> Output {
    let daemon = format!("DAEMON={}", master_binary());
    let config = format!("CONFIG={}", config.display());
    let script = init_script().display().to_string();
    net.exec_timeout(
        Host::Balancer,
        &[
            "env",
            &daemon,
            &config,
            "DAEMON_OPTS=-U nobody",
            // Init may reap the stopped daemon a few seconds late here; the script waits
            // for /proc/PID to disappear.
            "STOP_TIMEOUT=30",
            "SYSTEMCTL_SKIP_REDIRECT=1",
            "sh",
            &script,
            action,
        ],
        secs(90),
    )
}

#[test]
fn init_script_starts_reports_restarts_and_stops() {
    require_root_and_tools();
    // The script sources /etc/default/loaded, which would override DAEMON and CONFIG and
    // could point at the host's pidfile.
    assert!(
        !Path::new("/etc/default/loaded").exists(),
        "/etc/default/loaded exists: it would override the test's settings"
    );
    let net = TestNet::up(Options::default());
    net.start_backends();
    let socket = net.dir().join("log.sock");
    let syslog = Syslog::bind(&socket);
    let config = net.write_file("loaded.conf", &config_logging_to(&net, &socket, ""));
    let pidfile = pidfile_of(&net);
    let guard = DaemonGuard {
        net: &net,
        pidfile: pidfile.clone(),
    };
    let status_of = |what: &str| {
        let out = init(&net, &config, "status");
        (out.status.code(), text(&out.stdout), describe(what, &out))
    };

    let out = init(&net, &config, "start");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        describe("start", &out),
        syslog.dump()
    );
    let pid = read_pidfile(&pidfile).expect("start wrote no pidfile");
    assert_eq!(comm(pid), "loaded-master");
    let (code, stdout, all) = status_of("status after start");
    assert_eq!(code, Some(0), "{all}");
    assert!(
        stdout.contains("running") && stdout.contains(&format!("(pid {pid})")),
        "{all}"
    );
    assert_rules_installed_once(&net, "after start");
    assert_traffic_flows(&net, "after start");

    // start while running: nothing new.
    let out = init(&net, &config, "start");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        describe("start again", &out)
    );
    assert!(text(&out.stdout).contains("already running"));
    assert_eq!(read_pidfile(&pidfile), Some(pid));
    assert_eq!(live_in_lb(&net, "loaded-master"), [pid]);

    let out = init(&net, &config, "restart");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        describe("restart", &out),
        syslog.dump()
    );
    let new_pid = read_pidfile(&pidfile).expect("restart wrote no pidfile");
    assert_ne!(new_pid, pid, "restart kept the old master");
    assert!(!alive(pid), "the old master {pid} still runs");
    let (code, stdout, all) = status_of("status after restart");
    assert_eq!(code, Some(0), "{all}");
    assert!(stdout.contains(&format!("(pid {new_pid})")), "{all}");
    assert_rules_installed_once(&net, "after restart");
    assert_traffic_flows(&net, "after restart");

    let out = init(&net, &config, "stop");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        describe("stop", &out),
        syslog.dump()
    );
    assert!(
        !alive(new_pid),
        "the master {new_pid} still runs after stop"
    );
    let (code, stdout, all) = status_of("status after stop");
    assert_eq!(code, Some(3), "{all}");
    assert!(stdout.contains("not running"), "{all}");
    assert_no_rules(&net, "after stop");
    assert!(!pidfile.exists());
    assert_eq!(live_in_lb(&net, "loaded-worker"), Vec::<u32>::new());

    let out = init(&net, &config, "stop");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        describe("stop again", &out)
    );
    drop(guard);
}

// ---------------------------------------------------------------------------------------
// 5. A killed master's rules.

#[test]
fn a_killed_masters_rules_are_replaced_at_the_next_start() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    // No syslog here: lines go to the -D output only, never to the host's /dev/log.
    let no_syslog = net.dir().join("no-syslog.sock");
    let config = config_logging_to(&net, &no_syslog, "");
    let first = Master::start(&net, &config, &[]);
    let workers = live_in_lb(&net, "loaded-worker");
    assert_eq!(workers.len(), worker_count());
    assert_rules_installed_once(&net, "first master");

    // kill -9: the master cannot clean up. The harness's child, so the pid is ours.
    send_signal(first.pid, libc::SIGKILL);
    assert!(
        net.wait_exit(first.pid, secs(10)).is_some(),
        "the master did not die"
    );
    // Its workers end when their channel closes.
    let workers_gone = wait_until(secs(10), || workers.iter().all(|w| !alive(*w)));
    assert!(
        workers_gone,
        "workers of the killed master still run: {:?}",
        live_in_lb(&net, "loaded-worker")
    );
    assert!(!first.log(&net).contains("rules removed"));
    assert_rules_installed_once(&net, "after kill -9, the rules are left");

    let second = Master::start(&net, &config, &[]);
    assert_rules_installed_once(&net, "second master");
    assert_traffic_flows(&net, "second master");
    second.stop_cleanly(&net);
    assert_no_rules(&net, "after the second master stopped");
}

// ---------------------------------------------------------------------------------------
// 6. A cpuset that does not start at CPU 0.

/// Started with only the highest CPU allowed (as under a cpuset or `taskset`), the master
/// puts its one worker there and serves that queue; pinning to CPU 0 would fail.
#[test]
fn a_master_allowed_one_cpu_above_zero_runs_its_worker_there() {
    require_root_and_tools();
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| parse_cpu_list(list.trim()))
        .expect("Cpus_allowed_list");
    let cpu = *allowed.iter().max().expect("an allowed CPU");
    assert!(
        cpu > 0,
        "this test needs a CPU other than 0 to run on; this process may only use {allowed:?}"
    );
    let net = TestNet::up(Options::default());
    net.start_backends();
    let config = net.write_file("loaded.conf", &base_config(&net, ""));
    let config_arg = config.display().to_string();
    let cpu_arg = cpu.to_string();
    // taskset execs the master: the pid is the master's.
    let pid = net.spawn(
        Host::Balancer,
        &[
            "taskset",
            "-c",
            &cpu_arg,
            master_binary(),
            "-D",
            "-c",
            &config_arg,
        ],
    );
    let master = Master { pid, config };
    let serving = format!("worker/{cpu}: serving NFQUEUE {cpu}");
    let ready = wait_until(secs(20), || {
        master.log(&net).contains(&serving) || net.try_wait(pid).is_some()
    });
    let log = master.log(&net);
    assert!(
        ready && net.try_wait(pid).is_none(),
        "no {serving:?}; the master's output:\n{log}"
    );
    let workers = live_in_lb(&net, "loaded-worker");
    assert_eq!(
        workers.len(),
        1,
        "one worker for one CPU: {workers:?}\n{log}"
    );
    let queues: Vec<u16> = net.nfqueues().iter().map(|q| q.queue).collect();
    assert_eq!(queues, [cpu], "the queue of that CPU only");
    assert_traffic_flows(&net, "one worker on the last CPU");
    master.stop_cleanly(&net);
}
