//! End-to-end: failover with the prober (-f): servers that stop are taken out within
//! rise/fall rounds, come back when they recover, hosts that appear on the servers' network
//! are added (hotplug), and a check never disturbs the clients of healthy servers. Every
//! test runs once per forwarding mode (`_userspace`, `_kernel`).
//!
//! They need root and fail with the reason without it.

mod support;

use std::collections::BTreeSet;
use support::balancer::*;
use support::*;

/// Fast checks: a round every 2 s, 1 s timeout, two results to change a state. A state
/// changes within fall * cycle + timeout = 5 s; the tests allow 15.
const FAST_CHECKS: &str = "failover\ncheck_cycle=2\ncheck_timeout=1\nrise=2\nfall=2\n";
const CONVERGE: u64 = 15;

fn failover_config(net: &TestNet, mode: Mode, extra: &str) -> String {
    base_config_in(net, mode, &format!("{FAST_CHECKS}stickiness=flow\n{extra}"))
}

/// The set of backends that answer `count` new flows to each VIP.
fn answering(net: &TestNet, count: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for vip in [VIP4, VIP6] {
        for i in 0..count {
            match net.curl(&http_url(vip, HTTP_PORT, "/"), secs(3)) {
                Ok(body) => {
                    seen.insert(body.trim().trim_start_matches("backend=").to_string());
                }
                Err(e) => {
                    seen.insert(format!(
                        "error({vip} #{i}: {})",
                        e.to_string().lines().next().unwrap_or("")
                    ));
                }
            }
        }
    }
    seen
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn wait_for_answers(net: &TestNet, expected: &[&str]) -> BTreeSet<String> {
    let expected = names(expected);
    let mut last = BTreeSet::new();
    wait_until(secs(CONVERGE), || {
        last = answering(net, 6);
        last == expected
    });
    last
}

fn a_stopped_server_is_taken_out_and_comes_back_over_both_families(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &failover_config(&net, mode, ""), &[]);
    assert_eq!(answering(&net, 6), names(&["b1", "b2", "b3"]));

    net.stop_backend(2);
    let seen = wait_for_answers(&net, &["b1", "b3"]);
    assert_eq!(seen, names(&["b1", "b3"]), "{}", master.log(&net));
    // Stable: several more rounds, still only the others.
    net.wait_for_health_rounds(1, 2, secs(CONVERGE + 4));
    assert_eq!(answering(&net, 6), names(&["b1", "b3"]));
    let log = master.log(&net);
    for server in [BACKEND4[1], BACKEND6[1]] {
        let line = format!("prober: server {server} is down: connection refused");
        let downs = log.lines().filter(|l| l.ends_with(&line)).count();
        assert_eq!(downs, 1, "{line:?} logged once: {log}");
    }

    net.start_backend(2);
    let seen = wait_for_answers(&net, &["b1", "b2", "b3"]);
    assert_eq!(seen, names(&["b1", "b2", "b3"]), "{}", master.log(&net));
    assert!(master
        .log(&net)
        .contains(&format!("server {} is up again", BACKEND4[1])));
    master.stop_cleanly(&net);
}

/// The original dropped every mapping at each check, resetting live connections.
fn a_keep_alive_connection_to_a_healthy_server_survives_many_checks(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &failover_config(&net, mode, ""), &[]);
    const HOLD: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=5)
names = []
for i in range(4):
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: keep-alive\r\n\r\n")
    data = b""
    while b"backend=" not in data or not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed after %d answers" % i)
        data += chunk
    names.append(data.split(b"backend=")[1].strip().decode())
    time.sleep(2.5)
print(" ".join(names))
"#;
    for vip in [VIP4, VIP6] {
        // The hold must span health rounds, or it proves nothing: each round pings b1.
        let echoes_before = net.echo_requests_received(Host::Backend(1), false);
        let out = net.exec_timeout(Host::Client, &["python3", "-c", HOLD, vip], secs(30));
        let rounds = net.echo_requests_received(Host::Backend(1), false) - echoes_before;
        assert!(
            rounds >= 2,
            "only {rounds} health rounds ran while the connection through {vip} was held"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the connection through {vip} broke: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let answers: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(answers.len(), 4, "{stdout}");
        assert!(answers.iter().all(|a| *a == answers[0]), "{stdout}");
    }
    master.stop_cleanly(&net);
}

fn all_servers_down_then_one_back(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &failover_config(&net, mode, ""), &[]);
    for n in 1..=3 {
        net.stop_backend(n);
    }
    let failing = wait_until(secs(CONVERGE), || {
        let refused = answering(&net, 1).iter().all(|a| a.starts_with("error"));
        refused && master.log(&net).contains("no live server")
    });
    assert!(failing, "{}", master.log(&net));
    // Once per outage and worker, not per packet.
    let outage_lines = master.log(&net).matches("no live server").count();
    assert!(outage_lines <= worker_count(), "{}", master.log(&net));
    net.start_backend(3);
    let seen = wait_for_answers(&net, &["b3"]);
    assert_eq!(seen, names(&["b3"]), "{}", master.log(&net));
    master.stop_cleanly(&net);
}

fn a_new_host_on_the_servers_network_is_added(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default().backends(4));
    net.start_backends();
    let master = Master::start(&net, &hotplug_config(&net, mode), &[]);
    assert_eq!(answering(&net, 6), names(&["b1", "b2", "b3"]));
    net.start_backend(4);
    let seen = wait_for_answers(&net, &["b1", "b2", "b3", "b4"]);
    assert_eq!(
        seen,
        names(&["b1", "b2", "b3", "b4"]),
        "{}",
        master.log(&net)
    );
    let log = master.log(&net);
    for host in [BACKEND4[3], BACKEND6[3]] {
        assert!(log.contains(&format!("server {host} answered")), "{log}");
    }
    master.stop_cleanly(&net);
}

fn a_killed_prober_is_restarted_and_the_state_converges(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &failover_config(&net, mode, ""), &["-U", "nobody"]);
    net.stop_backend(1);
    assert_eq!(wait_for_answers(&net, &["b2", "b3"]), names(&["b2", "b3"]));
    let probers = children_named(&net, "loaded-prober");
    assert_eq!(probers.len(), 1);
    send_signal(probers[0], libc::SIGKILL);
    let restarted = wait_until(secs(10), || {
        let now = children_named(&net, "loaded-prober");
        now.len() == 1 && now[0] != probers[0]
    });
    assert!(restarted, "{}", master.log(&net));
    // Workers keep their last state, and the new prober starts from the master's book,
    // where b1 is down: b1 never gets a client back in between. Had the new prober
    // started from "all up", b1 would take clients until `fall` of its rounds found it
    // down: watch until the new prober has run more rounds than that (each pings b1).
    let rounds = 3;
    let echoes_before = net.echo_requests_received(Host::Backend(1), false);
    let mut echoes = echoes_before;
    let rounds_ran = wait_until(secs(CONVERGE + 2 * rounds), || {
        let seen = answering(&net, 2);
        assert!(
            seen.is_subset(&names(&["b2", "b3"])),
            "after the prober restart: {seen:?}\n{}",
            master.log(&net)
        );
        echoes = net.echo_requests_received(Host::Backend(1), false);
        echoes >= echoes_before + rounds
    });
    assert!(
        rounds_ran,
        "the new prober ran {} rounds, not {rounds}:\n{}",
        echoes - echoes_before,
        master.log(&net)
    );
    assert_eq!(master.log(&net).matches("prober is ready").count(), 2);
    master.stop_cleanly(&net);
}

/// A worker started after a server went down learns it (from the master's book and the
/// prober's snapshot on its new link): the prober sends changes only, and this one
/// happened before the worker ran.
fn restarted_workers_get_the_down_server_from_the_snapshot(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(&net, &failover_config(&net, mode, ""), &[]);
    net.stop_backend(2);
    assert_eq!(
        wait_for_answers(&net, &["b1", "b3"]),
        names(&["b1", "b3"]),
        "{}",
        master.log(&net)
    );

    let old = children_named(&net, "loaded-worker");
    assert_eq!(old.len(), worker_count(), "{old:?}");
    let served = master.log(&net).matches("serving NFQUEUE").count();
    for pid in &old {
        send_signal(*pid, libc::SIGKILL);
    }
    let restarted = wait_until(secs(20), || {
        let now = children_named(&net, "loaded-worker");
        now.len() == old.len()
            && now.iter().all(|pid| !old.contains(pid))
            && master.log(&net).matches("serving NFQUEUE").count() >= served + old.len()
    });
    assert!(
        restarted,
        "the workers were not replaced:\n{}",
        master.log(&net)
    );

    // From the first packet on, and across health rounds that report no change.
    let rounds_before = net.echo_requests_received(Host::Backend(1), false);
    let mut seen = BTreeSet::new();
    let two_rounds = wait_until(secs(CONVERGE + 4), || {
        seen.extend(answering(&net, 3));
        net.echo_requests_received(Host::Backend(1), false) >= rounds_before + 2
    });
    assert!(two_rounds, "no health round ran:\n{}", master.log(&net));
    assert_eq!(
        seen,
        names(&["b1", "b3"]),
        "new flows after the workers' restart:\n{}",
        master.log(&net)
    );
    master.stop_cleanly(&net);
}

#[test]
fn restarted_workers_get_the_down_server_from_the_snapshot_userspace() {
    restarted_workers_get_the_down_server_from_the_snapshot(Mode::Userspace);
}

#[test]
fn restarted_workers_get_the_down_server_from_the_snapshot_kernel() {
    restarted_workers_get_the_down_server_from_the_snapshot(Mode::Kernel);
}

/// The servers' network with broadcast hotplug inside RIP4/RIP6.
fn hotplug_config(net: &TestNet, mode: Mode) -> String {
    let extra = format!(
        "RIP4={BACKEND_NET4}\nRIP6={BACKEND_NET6}\nbroadcast={BACKEND_BROADCAST4}\n\
         broadcast6=ff02::1\nprivate_NIC=br0\n"
    );
    failover_config(net, mode, &extra)
}

/// Stops the prober (SIGSTOP) for as long as it lives, and lets it go on again however
/// the test ends.
struct StoppedProber(u32);

impl StoppedProber {
    fn stop(net: &TestNet) -> StoppedProber {
        let probers = children_named(net, "loaded-prober");
        assert_eq!(probers.len(), 1, "one prober: {probers:?}");
        send_signal(probers[0], libc::SIGSTOP);
        StoppedProber(probers[0])
    }
}

impl Drop for StoppedProber {
    fn drop(&mut self) {
        // The prober may be gone already (the test killed it, or the balancer stopped).
        let _ = try_send_signal(self.0, libc::SIGCONT);
    }
}

/// The book keeps the hot-plugged servers: the restarted prober checks them at once
/// instead of finding them again by the broadcast (which would log a second "answered"),
/// and their clients are never without them.
fn a_hot_plugged_server_survives_a_prober_restart(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default().backends(4));
    net.start_backends();
    let master = Master::start(&net, &hotplug_config(&net, mode), &["-U", "nobody"]);
    net.start_backend(4);
    let all = ["b1", "b2", "b3", "b4"];
    assert_eq!(
        wait_for_answers(&net, &all),
        names(&all),
        "{}",
        master.log(&net)
    );
    let probers = children_named(&net, "loaded-prober");
    assert_eq!(probers.len(), 1);
    send_signal(probers[0], libc::SIGKILL);
    let restarted = wait_until(secs(10), || {
        let now = children_named(&net, "loaded-prober");
        now.len() == 1 && now[0] != probers[0]
    });
    assert!(restarted, "{}", master.log(&net));
    assert!(
        wait_until(secs(10), || master
            .log(&net)
            .matches("prober is ready")
            .count()
            == 2),
        "{}",
        master.log(&net)
    );
    let log = master.log(&net);
    // The second start's line (the first start had nothing hot-plugged).
    let started_from = log
        .lines()
        .rfind(|line| line.contains("prober starts from the backend book"))
        .unwrap_or_default();
    assert!(
        started_from.contains("8 server(s), 0 down, 2 hot-plugged")
            && started_from.contains(BACKEND4[3])
            && started_from.contains(BACKEND6[3]),
        "{log}"
    );
    // Several rounds (more than rise): still balanced to b4 all along, never found again.
    let rounds_before = net.echo_requests_received(Host::Backend(1), false);
    let rounds = wait_until(secs(CONVERGE + 6), || {
        assert_eq!(answering(&net, 4), names(&all), "{}", master.log(&net));
        net.echo_requests_received(Host::Backend(1), false) >= rounds_before + 3
    });
    assert!(rounds, "no health round ran:\n{}", master.log(&net));
    let log = master.log(&net);
    for host in [BACKEND4[3], BACKEND6[3]] {
        let found = log.matches(&format!("server {host} answered")).count();
        assert_eq!(found, 1, "hot-plugged once, kept by the book: {log}");
    }
    master.stop_cleanly(&net);
}

/// Workers restarted while the prober cannot speak (stopped) get the state from the
/// master's book before they turn Ready: no new client reaches the down server, and the
/// hot-plugged server takes clients whose replies are rewritten (the client sees the VIP,
/// or its connection would fail).
fn restarted_workers_start_from_the_book(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default().backends(4));
    net.start_backends();
    let master = Master::start(&net, &hotplug_config(&net, mode), &["-U", "nobody"]);
    net.start_backend(4);
    net.stop_backend(2);
    let expected = ["b1", "b3", "b4"];
    assert_eq!(
        wait_for_answers(&net, &expected),
        names(&expected),
        "{}",
        master.log(&net)
    );
    let prober = StoppedProber::stop(&net);
    restart_the_workers(&net, &master);
    // Enough new clients that a worker unaware of the book would give some to b2 (and
    // its clients would get an error) and none to b4.
    for _ in 0..3 {
        assert_eq!(answering(&net, 6), names(&expected), "{}", master.log(&net));
    }
    drop(prober);
    // And the prober, going on, agrees.
    net.wait_for_health_rounds(1, 2, secs(CONVERGE + 4));
    assert_eq!(answering(&net, 6), names(&expected), "{}", master.log(&net));
    master.stop_cleanly(&net);
}

#[test]
fn a_hot_plugged_server_survives_a_prober_restart_userspace() {
    a_hot_plugged_server_survives_a_prober_restart(Mode::Userspace);
}

#[test]
fn a_hot_plugged_server_survives_a_prober_restart_kernel() {
    a_hot_plugged_server_survives_a_prober_restart(Mode::Kernel);
}

#[test]
fn restarted_workers_start_from_the_book_userspace() {
    restarted_workers_start_from_the_book(Mode::Userspace);
}

#[test]
fn restarted_workers_start_from_the_book_kernel() {
    restarted_workers_start_from_the_book(Mode::Kernel);
}

/// A host that answers the broadcast from outside RIP4 is logged once and never gets a
/// client, however many rounds it answers (it runs the service, so inside RIP it would
/// be added).
fn a_host_outside_rip_is_logged_once_and_ignored(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default().backends(4));
    net.start_backends();
    net.start_backend(4);
    // No backend lies in 198.19.0.0/29; b1 to b3 are configured, b4 is not.
    let extra = format!("RIP4=198.19.0.0/29\nbroadcast={BACKEND_BROADCAST4}\nprivate_NIC=br0\n");
    let master = Master::start(&net, &failover_config(&net, mode, &extra), &[]);
    let line = format!(
        "prober: host {} answered the broadcast ping but lies outside RIP: ignored",
        BACKEND4[3]
    );
    let logged = wait_until(secs(CONVERGE), || {
        master.log(&net).lines().any(|l| l.ends_with(&line))
    });
    assert!(logged, "no {line:?} in:\n{}", master.log(&net));
    // More rounds: b4 answers each, and is neither logged again nor added.
    let mut seen = BTreeSet::new();
    let rounds_before = net.echo_requests_received(Host::Backend(1), false);
    let three_rounds = wait_until(secs(CONVERGE + 6), || {
        seen.extend(answering(&net, 3));
        net.echo_requests_received(Host::Backend(1), false) >= rounds_before + 3
    });
    assert!(three_rounds, "no health round ran:\n{}", master.log(&net));
    assert_eq!(seen, names(&["b1", "b2", "b3"]), "{}", master.log(&net));
    let log = master.log(&net);
    assert_eq!(
        log.lines().filter(|l| l.ends_with(&line)).count(),
        1,
        "logged once: {log}"
    );
    assert!(
        !log.contains(&format!("server {} answered", BACKEND4[3])),
        "b4 was added: {log}"
    );
    master.stop_cleanly(&net);
}

#[test]
fn a_host_outside_rip_is_logged_once_and_ignored_userspace() {
    a_host_outside_rip_is_logged_once_and_ignored(Mode::Userspace);
}

#[test]
fn a_host_outside_rip_is_logged_once_and_ignored_kernel() {
    a_host_outside_rip_is_logged_once_and_ignored(Mode::Kernel);
}

#[test]
fn a_stopped_server_is_taken_out_and_comes_back_over_both_families_userspace() {
    a_stopped_server_is_taken_out_and_comes_back_over_both_families(Mode::Userspace);
}

#[test]
fn a_stopped_server_is_taken_out_and_comes_back_over_both_families_kernel() {
    a_stopped_server_is_taken_out_and_comes_back_over_both_families(Mode::Kernel);
}

#[test]
fn a_keep_alive_connection_to_a_healthy_server_survives_many_checks_userspace() {
    a_keep_alive_connection_to_a_healthy_server_survives_many_checks(Mode::Userspace);
}

#[test]
fn a_keep_alive_connection_to_a_healthy_server_survives_many_checks_kernel() {
    a_keep_alive_connection_to_a_healthy_server_survives_many_checks(Mode::Kernel);
}

#[test]
fn all_servers_down_then_one_back_userspace() {
    all_servers_down_then_one_back(Mode::Userspace);
}

#[test]
fn all_servers_down_then_one_back_kernel() {
    all_servers_down_then_one_back(Mode::Kernel);
}

#[test]
fn a_new_host_on_the_servers_network_is_added_userspace() {
    a_new_host_on_the_servers_network_is_added(Mode::Userspace);
}

#[test]
fn a_new_host_on_the_servers_network_is_added_kernel() {
    a_new_host_on_the_servers_network_is_added(Mode::Kernel);
}

#[test]
fn a_killed_prober_is_restarted_and_the_state_converges_userspace() {
    a_killed_prober_is_restarted_and_the_state_converges(Mode::Userspace);
}

#[test]
fn a_killed_prober_is_restarted_and_the_state_converges_kernel() {
    a_killed_prober_is_restarted_and_the_state_converges(Mode::Kernel);
}
