//! End-to-end: SIGHUP (and `/etc/init.d/loaded reload`) reloads the config without
//! restarting a process or losing a client: a server added takes new clients within
//! seconds while held keep-alive connections keep their server, a removed one gets no new
//! client and its clients move at their next packet, a new weight changes the spread of
//! new clients, and a config with an error changes nothing and is logged with file and
//! line. Most tests run once per forwarding mode (`_userspace`, `_kernel`).
//!
//! They need root and fail with the reason without it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use support::balancer::*;
use support::*;

/// Fast checks, as in e2e_failover: a state changes within about 5 s.
const FAST_CHECKS: &str = "failover\ncheck_cycle=2\ncheck_timeout=1\nrise=2\nfall=2\n";
/// How long a reload may take to reach new clients.
const CONVERGE: u64 = 10;

/// Holds one keep-alive connection to argv[1]:80 and asks argv[2] times, argv[3] seconds
/// apart; prints the backend of every answer, or exits non-zero if the connection broke.
const HOLD: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=5)
names = []
for i in range(int(sys.argv[2])):
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: keep-alive\r\n\r\n")
    data = b""
    while b"backend=" not in data or not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed after %d answers: %s" % (i, " ".join(names)))
        data += chunk
    names.append(data.split(b"backend=")[1].strip().decode())
    time.sleep(float(sys.argv[3]))
print(" ".join(names))
"#;

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The backends that answer `count` new connections to `vip`.
fn answers(net: &TestNet, vip: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(
            |i| match net.curl(&http_url(vip, HTTP_PORT, "/"), secs(3)) {
                Ok(body) => body.trim().trim_start_matches("backend=").to_string(),
                Err(e) => format!(
                    "error({vip} #{i}: {})",
                    e.to_string().lines().next().unwrap_or("")
                ),
            },
        )
        .collect()
}

fn answering_both(net: &TestNet, count: usize) -> BTreeSet<String> {
    [VIP4, VIP6]
        .iter()
        .flat_map(|vip| answers(net, vip, count))
        .collect()
}

/// The config with the three standard servers plus `servers` lines, and `extra`.
fn config_with(net: &TestNet, mode: Mode, servers: &str, extra: &str) -> String {
    base_config_in(net, mode, &format!("{servers}{extra}"))
}

fn sighup(master: &Master) {
    send_signal(master.pid, libc::SIGHUP);
}

/// Rewrites the master's config file and sends SIGHUP; waits until the master logged
/// `count` reload outcomes in total (applied, nothing to apply, or refused).
fn reload(net: &TestNet, master: &Master, text: &str, count: usize) {
    std::fs::write(&master.config, text).unwrap();
    sighup(master);
    wait_for_reloads(net, master, count);
}

fn reload_outcomes(log: &str) -> usize {
    log.matches("master: reloaded:").count()
        + log.matches("reload: nothing to apply").count()
        + log
            .lines()
            .filter(|l| l.contains("reload refused"))
            .map(|l| l.split("refused").next().unwrap_or("").to_string())
            .collect::<BTreeSet<_>>()
            .len()
}

fn wait_for_reloads(net: &TestNet, master: &Master, count: usize) {
    let done = wait_until(secs(10), || reload_outcomes(&master.log(net)) >= count);
    assert!(done, "no reload logged:\n{}", master.log(net));
}

/// The pids of every child; a reload must not change them.
fn children(net: &TestNet) -> (Vec<u32>, Vec<u32>) {
    let mut workers = children_named(net, "loaded-worker");
    workers.sort();
    (workers, children_named(net, "loaded-prober"))
}

/// Runs HOLD through `vip` in the client namespace.
fn hold(net: &TestNet, vip: &str, asks: u32, pause: f64) -> Result<Vec<String>, CommandError> {
    let out = net.exec_timeout(
        Host::Client,
        &[
            "python3",
            "-c",
            HOLD,
            vip,
            &asks.to_string(),
            &pause.to_string(),
        ],
        secs(60),
    );
    if !out.status.success() {
        return Err(CommandError::failed(format!("holding through {vip}"), &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect())
}

/// The client's established TCP connections to port 80 (`ss` in its namespace).
fn established_http_connections(net: &TestNet) -> usize {
    net.exec_ok(
        Host::Client,
        &["ss", "-Htn", "state", "established", "( dport = :80 )"],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .count()
}

fn a_server_added_takes_new_clients_while_held_connections_keep_theirs(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default().backends(4));
    net.start_backends();
    net.start_backend(4);
    let extra = format!("{FAST_CHECKS}stickiness=flow\n");
    let master = Master::start(
        &net,
        &config_with(&net, mode, "", &extra),
        &["-U", "nobody"],
    );
    let before = children(&net);
    assert_eq!(before.1.len(), 1, "one prober");
    assert_eq!(answering_both(&net, 6), names(&["b1", "b2", "b3"]));

    let added = config_with(
        &net,
        mode,
        &format!("server4={}\nserver6={}\n", BACKEND4[3], BACKEND6[3]),
        &extra,
    );
    let net_ref = &net;
    std::thread::scope(|scope| {
        // Keep-alive connections through both VIPs, asking every 0.5 s across the reload.
        let held: Vec<_> = [VIP4, VIP6]
            .iter()
            .map(|vip| scope.spawn(move || hold(net_ref, vip, 16, 0.5)))
            .collect();
        // Both connections are open (so mapped) before the reload.
        let mut open = 0;
        let opened = wait_until(secs(10), || {
            open = established_http_connections(&net);
            open >= 2
        });
        assert!(opened, "{open} held connections open, not 2");
        reload(&net, &master, &added, 1);
        // The holds must outlast the reload, or they prove nothing about it.
        let still_open = established_http_connections(&net);
        assert!(
            still_open >= 2,
            "the held connections ended before the reload was applied: {still_open} open"
        );
        let mut seen = BTreeSet::new();
        let reached = wait_until(secs(CONVERGE), || {
            seen.extend(answering_both(&net, 4));
            seen.contains("b4")
        });
        assert!(reached, "b4 never answered: {seen:?}\n{}", master.log(&net));
        assert!(
            !seen.iter().any(|s| s.starts_with("error")),
            "a request failed across the reload: {seen:?}"
        );
        for (vip, thread) in [VIP4, VIP6].iter().zip(held) {
            let answers = thread
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("the held connection through {vip} broke: {e}"));
            assert_eq!(answers.len(), 16, "{answers:?}");
            assert!(
                answers.iter().all(|a| *a == answers[0]),
                "a held connection through {vip} changed server: {answers:?}"
            );
        }
    });
    // New flows now spread over all four.
    let all = wait_until(secs(CONVERGE), || {
        answering_both(&net, 8) == names(&["b1", "b2", "b3", "b4"])
    });
    assert!(all, "{}", master.log(&net));
    assert_eq!(children(&net), before, "a reload restarts no process");

    // Workers started after the reload get the new config: b4 still takes new clients.
    for worker in &before.0 {
        send_signal(*worker, libc::SIGKILL);
    }
    let restarted = wait_until(secs(10), || {
        let now = children(&net).0;
        now.len() == before.0.len() && now.iter().all(|pid| !before.0.contains(pid))
    });
    assert!(restarted, "{}", master.log(&net));
    let all = wait_until(secs(CONVERGE), || {
        answering_both(&net, 8) == names(&["b1", "b2", "b3", "b4"])
    });
    assert!(all, "after the workers' restart:\n{}", master.log(&net));
    let log = master.log(&net);
    assert!(
        log.contains(&format!("reloaded: added {} {}", BACKEND4[3], BACKEND6[3])),
        "{log}"
    );
    assert!(log.contains("prober: reloaded"), "{log}");
    master.stop_cleanly(&net);
}

fn a_removed_server_gets_no_new_client_and_its_clients_move(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    // stickiness=client (the default): every connection of our one client goes to one
    // server, so that server's mapping exists when it is removed.
    // With the prober, whose health messages must not bring a removed server back.
    let master = Master::start(&net, &config_with(&net, mode, "", FAST_CHECKS), &[]);
    let before = children(&net);
    let first = answers(&net, VIP4, 3);
    assert!(first.iter().all(|a| *a == first[0]), "{first:?}");
    let mapped = first[0].clone();
    let n: usize = mapped.trim_start_matches('b').parse().unwrap();

    // Every server of the standard three but the mapped one, in both families.
    let mut text = format!(
        "VIP4={VIP4}\nVIP6={VIP6}\n{}{FAST_CHECKS}",
        mode.config_line()
    );
    for i in (0..3).filter(|i| *i != n - 1) {
        text.push_str(&format!(
            "server4={}\nserver6={}\n",
            BACKEND4[i], BACKEND6[i]
        ));
    }
    text.push_str(&format!("pidfile={}/loaded.pid\n", net.dir().display()));
    text.push_str(&own_paths(&net, ""));
    reload(&net, &master, &text, 1);
    // Its client moves at its next packet (a new connection of the same client).
    let moved = wait_until(secs(CONVERGE), || answers(&net, VIP4, 1)[0] != mapped);
    assert!(moved, "{}", master.log(&net));
    let after = answering_both(&net, 8);
    assert!(
        !after.contains(&mapped) && !after.iter().any(|a| a.starts_with("error")),
        "{mapped} removed, yet: {after:?}\n{}",
        master.log(&net)
    );
    // And stays moved: a removed server is never brought back by a health message.
    let remaining = (1..=3u8)
        .find(|&i| usize::from(i) != n)
        .expect("three servers");
    net.wait_for_health_rounds(remaining, 2, secs(CONVERGE + 4));
    assert!(!answering_both(&net, 4).contains(&mapped));
    assert_eq!(children(&net), before);
    let log = master.log(&net);
    assert!(
        log.contains(&format!(
            "reloaded: removed {} {}",
            BACKEND4[n - 1],
            BACKEND6[n - 1]
        )),
        "{log}"
    );
    if mode == Mode::Kernel {
        // Its conntrack entries were forgotten, so its clients were queued again.
        let forgotten = format!(
            "to {} forgotten: it is removed by a reload",
            BACKEND4[n - 1]
        );
        assert!(log.contains(&forgotten), "{log}");
    }
    master.stop_cleanly(&net);
}

fn a_new_weight_changes_the_spread_of_new_clients(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let extra = "strategy=weighted\nstickiness=flow\n";
    let master = Master::start(&net, &config_with(&net, mode, "", extra), &[]);
    let even = answers(&net, VIP4, 12);
    for name in ["b1", "b2", "b3"] {
        assert_eq!(
            even.iter().filter(|a| *a == name).count(),
            4,
            "equal weights: {even:?}"
        );
    }
    // b3 weighs 10 now: with 4 mappings each, the next dozen new flows all go to it
    // (least mappings per unit of weight: (4+k)/10 < 5/1 for k < 46).
    let mut text = std::fs::read_to_string(&master.config).unwrap();
    text = text.replace(
        &format!("server4={}\n", BACKEND4[2]),
        &format!("server4={} weight=10\n", BACKEND4[2]),
    );
    reload(&net, &master, &text, 1);
    let heavy = answers(&net, VIP4, 12);
    assert!(
        heavy.iter().filter(|a| *a == "b3").count() >= 11,
        "after the reload: {heavy:?}\n{}",
        master.log(&net)
    );
    assert!(master
        .log(&net)
        .contains(&format!("{} weight 1 -> 10", BACKEND4[2])));
    master.stop_cleanly(&net);
}

#[test]
fn a_server_added_takes_new_clients_while_held_connections_keep_theirs_userspace() {
    a_server_added_takes_new_clients_while_held_connections_keep_theirs(Mode::Userspace);
}

#[test]
fn a_server_added_takes_new_clients_while_held_connections_keep_theirs_kernel() {
    a_server_added_takes_new_clients_while_held_connections_keep_theirs(Mode::Kernel);
}

#[test]
fn a_removed_server_gets_no_new_client_and_its_clients_move_userspace() {
    a_removed_server_gets_no_new_client_and_its_clients_move(Mode::Userspace);
}

#[test]
fn a_removed_server_gets_no_new_client_and_its_clients_move_kernel() {
    a_removed_server_gets_no_new_client_and_its_clients_move(Mode::Kernel);
}

#[test]
fn a_new_weight_changes_the_spread_of_new_clients_userspace() {
    a_new_weight_changes_the_spread_of_new_clients(Mode::Userspace);
}

#[test]
fn a_new_weight_changes_the_spread_of_new_clients_kernel() {
    a_new_weight_changes_the_spread_of_new_clients(Mode::Kernel);
}

/// Independent of the forwarding mode: the file is refused before anything is applied.
#[test]
fn a_config_with_an_error_changes_nothing_and_restart_only_settings_are_named() {
    require_root_and_tools();
    let net = TestNet::up(Options::default().backends(4));
    net.start_backends();
    net.start_backend(4);
    let good = config_with(&net, Mode::Userspace, "", "stickiness=flow\n");
    let master = Master::start(&net, &good, &[]);
    let before = children(&net);

    // A new server and a misspelt key on line N: nothing of it applies.
    let broken = format!("{good}server4={}\nstrategi=maglev\n", BACKEND4[3]);
    let line = broken.lines().count();
    reload(&net, &master, &broken, 1);
    let log = master.log(&net);
    let where_ = format!("{}:{line}:", master.config.display());
    assert!(
        log.lines()
            .any(|l| l.contains("reload refused") && l.contains(&where_)),
        "expected an error at {where_}:\n{log}"
    );
    // The refusal is the reload's outcome: nothing is sent to the workers after it.
    assert_eq!(answering_both(&net, 6), names(&["b1", "b2", "b3"]));

    // A good file: the server is added; max_flows, maglev_seed and VIP4 wait for a
    // restart.
    let fixed = format!(
        "{}server4={}\nmax_flows=4096\nmaglev_seed=0123456789abcdef0123456789abcdef\n",
        good.replace(VIP4, "198.18.100.2"),
        BACKEND4[3]
    );
    reload(&net, &master, &fixed, 2);
    let log = master.log(&net);
    for key in ["VIP4", "max_flows", "maglev_seed"] {
        assert!(
            log.contains(&format!(
                "reload: {key} changed; it takes effect at the next restart"
            )),
            "{log}"
        );
    }
    let reached = wait_until(secs(CONVERGE), || {
        answers(&net, VIP4, 4).contains(&"b4".to_string())
    });
    assert!(reached, "still on the running VIP4, b4 answers: {log}");
    assert_eq!(children(&net), before);
    master.stop_cleanly(&net);
}

fn init_reload(net: &TestNet, config: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/init.d/loaded");
    net.exec_timeout(
        Host::Balancer,
        &[
            "env",
            &format!("DAEMON={}", master_binary()),
            &format!("CONFIG={}", config.display()),
            "SYSTEMCTL_SKIP_REDIRECT=1",
            "sh",
            &script.display().to_string(),
            "reload",
        ],
        secs(30),
    )
}

/// `/etc/init.d/loaded reload` sends SIGHUP to the pid in the pidfile; with a broken file
/// it says so and fails, and the daemon refuses the file too.
#[test]
fn init_script_reload_applies_the_config_like_sighup() {
    require_root_and_tools();
    assert!(
        !Path::new("/etc/default/loaded").exists(),
        "/etc/default/loaded exists: it would override the test's settings"
    );
    let net = TestNet::up(Options::default().backends(4));
    net.start_backends();
    net.start_backend(4);
    let good = config_with(
        &net,
        Mode::Userspace,
        "",
        &format!("{FAST_CHECKS}stickiness=flow\n"),
    );
    let master = Master::start(&net, &good, &["-U", "nobody"]);
    let before = children(&net);

    let broken = format!("{good}strategi=maglev\n");
    std::fs::write(&master.config, &broken).unwrap();
    let out = init_reload(&net, &master.config);
    assert_ne!(out.status.code(), Some(0), "a broken file is reported");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("strategi")
            || String::from_utf8_lossy(&out.stdout).contains("strategi"),
        "{out:?}"
    );
    wait_for_reloads(&net, &master, 1);

    let added = format!("{good}server4={}\nserver6={}\n", BACKEND4[3], BACKEND6[3]);
    std::fs::write(&master.config, &added).unwrap();
    let out = init_reload(&net, &master.config);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    wait_for_reloads(&net, &master, 2);
    let mut seen = BTreeSet::new();
    let reached = wait_until(secs(CONVERGE), || {
        seen.extend(answering_both(&net, 4));
        seen.contains("b4")
    });
    assert!(reached, "{seen:?}\n{}", master.log(&net));
    assert_eq!(children(&net), before);
    master.stop_cleanly(&net);
}
