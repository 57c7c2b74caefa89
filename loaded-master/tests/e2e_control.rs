//! End-to-end: the control socket and the real `loadedctl` against a running balancer in
//! the namespace lab. Status and its JSON name every VIP and server with counters that
//! follow the traffic sent (exactly, for UDP request and answer); the counters survive a
//! worker restart; drain, undrain and weight change where new clients go and nothing
//! else; metrics parse as Prometheus text; bad requests get exit 1 and a clear error while
//! the daemon runs on; a user outside the socket's group is refused.
//!
//! They need root and fail with the reason without it.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Output;
use support::balancer::*;
use support::*;

/// `loadedctl`, built by the workspace next to the master.
fn loadedctl_binary() -> PathBuf {
    let master = PathBuf::from(master_binary());
    let binary = master.with_file_name("loadedctl");
    assert!(
        binary.exists(),
        "{} is missing: build the workspace (cargo build) first",
        binary.display()
    );
    binary
}

/// Runs `loadedctl -s SOCKET ARGS` in the balancer's namespace, as root.
fn loadedctl(net: &TestNet, args: &[&str]) -> Output {
    let binary = loadedctl_binary().display().to_string();
    let socket = control_socket_of(net).display().to_string();
    let mut command = vec![binary.as_str(), "-s", socket.as_str()];
    command.extend_from_slice(args);
    net.exec_timeout(Host::Balancer, &command, secs(20))
}

/// `loadedctl ARGS` that must succeed: its stdout.
fn loadedctl_ok(net: &TestNet, args: &[&str]) -> String {
    let out = loadedctl(net, args);
    assert!(
        out.status.success(),
        "loadedctl {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_json(net: &TestNet) -> Value {
    let text = loadedctl_ok(net, &["status", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json: {e}:\n{text}"))
}

/// The JSON object of `server` under the VIP of its family.
fn server_of<'a>(status: &'a Value, server: &str) -> &'a Value {
    status["vips"]
        .as_array()
        .expect("vips")
        .iter()
        .flat_map(|vip| vip["servers"].as_array().expect("servers"))
        .find(|s| s["server"] == server)
        .unwrap_or_else(|| panic!("{server} not in the status:\n{status:#}"))
}

fn counter(server: &Value, field: &str) -> u64 {
    server[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} of {server}"))
}

/// One UDP request from the client's `port` to VIP:UDP_PORT and its answer's backend name
/// (the backends answer `NAME:` + payload). A fixed source port is one flow: its mapping
/// stays until flow_timeout.
const UDP_FROM_PORT_PY: &str = r#"
import socket, sys
addr, sport, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
s.settimeout(3)
s.sendto(payload.encode(), (addr, 5353))
data, peer = s.recvfrom(65535)
sys.stdout.write(data.decode("utf-8", "replace"))
"#;

fn udp_backend(net: &TestNet, vip: &str, port: u16, payload: &str) -> String {
    let port = port.to_string();
    let out = net.exec_timeout(
        Host::Client,
        &["python3", "-c", UDP_FROM_PORT_PY, vip, &port, payload],
        secs(10),
    );
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "UDP from port {port} to {vip}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (name, echoed) = answer
        .split_once(':')
        .unwrap_or_else(|| panic!("unexpected UDP answer {answer:?}"));
    assert_eq!(echoed, payload);
    name.to_string()
}

/// The address of backend `name` (b1, b2, ...) in `vip`'s family.
fn address_of(name: &str, vip: &str) -> String {
    let n: u8 = name.trim_start_matches('b').parse().unwrap();
    if vip.contains(':') {
        backend6(n)
    } else {
        backend4(n)
    }
}

/// Writes `text` as the master's config, sends SIGHUP and waits for the reload's log line.
fn reload(net: &TestNet, master: &Master, text: &str) {
    let done = master.log(net).matches("master: reloaded:").count();
    std::fs::write(&master.config, text).unwrap();
    send_signal(master.pid, libc::SIGHUP);
    assert!(
        wait_until(secs(20), || master
            .log(net)
            .matches("master: reloaded:")
            .count()
            > done),
        "no reload:\n{}",
        master.log(net)
    );
}

/// Per server: (new flows, packets to, bytes to, packets from, bytes from).
fn traffic_of(status: &Value, server: &str) -> [u64; 5] {
    let s = server_of(status, server);
    [
        "new_flows",
        "packets_to_server",
        "bytes_to_server",
        "packets_from_server",
        "bytes_from_server",
    ]
    .map(|field| counter(s, field))
}

/// Sends one UDP request from each of `ports` to `vip`; returns how many each backend got.
fn send_udp(net: &TestNet, vip: &str, ports: std::ops::Range<u16>) -> BTreeMap<String, u64> {
    let mut got = BTreeMap::new();
    for port in ports {
        *got.entry(udp_backend(net, vip, port, "counted"))
            .or_insert(0) += 1;
    }
    got
}

/// The IP length of our request ("counted", 7 bytes) and of a backend's answer
/// ("bN:counted", 10 bytes) in `vip`'s family.
fn lengths(vip: &str) -> (u64, u64) {
    let header = if vip.contains(':') { 40 + 8 } else { 20 + 8 };
    (header + 7, header + 10)
}

fn status_and_counters(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let config = base_config_in(&net, mode, "strategy=rr\nstickiness=flow\n");
    let master = Master::start(&net, &config, &[]);

    let before = status_json(&net);
    let vips: Vec<&str> = before["vips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vip"].as_str().unwrap())
        .collect();
    assert_eq!(vips, [VIP4, VIP6]);
    for vip in before["vips"].as_array().unwrap() {
        assert_eq!(vip["strategy"], "rr");
        assert_eq!(vip["stickiness"], "flow");
        assert_eq!(vip["servers"].as_array().unwrap().len(), 3, "{vip}");
    }
    let all: Vec<String> = BACKEND4[..3]
        .iter()
        .chain(&BACKEND6[..3])
        .map(|s| s.to_string())
        .collect();
    for server in &all {
        let s = server_of(&before, server);
        assert_eq!(s["state"]["up"], true, "{s}");
        assert_eq!(s["state"]["draining"], false, "{s}");
        assert_eq!(s["weight"], 1);
        assert_eq!(
            traffic_of(&before, server),
            [0; 5],
            "{server} before any traffic"
        );
    }
    let text = loadedctl_ok(&net, &["status"]);
    for name in all.iter().map(String::as_str).chain([VIP4, VIP6]) {
        assert!(text.contains(name), "{name} missing from status:\n{text}");
    }

    // 6 new flows per family, rr: two per server, each one request and one answer.
    let mut sent = HashMap::new();
    for (vip, ports) in [(VIP4, 42_001..42_007), (VIP6, 42_101..42_107)] {
        let got = send_udp(&net, vip, ports);
        assert_eq!(
            got.values().collect::<Vec<_>>(),
            [&2, &2, &2],
            "{vip}: {got:?}"
        );
        for name in got.keys() {
            sent.insert(address_of(name, vip), lengths(vip));
        }
    }
    let after = status_json(&net);
    for (server, (to_len, from_len)) in &sent {
        let counted = traffic_of(&after, server);
        // In kernel mode the workers see only each flow's first packet: conntrack forwards
        // the rest, answers included.
        let expected = match mode {
            Mode::Userspace => [2, 2, 2 * to_len, 2, 2 * from_len],
            Mode::Kernel => [2, 2, 2 * to_len, 0, 0],
        };
        assert_eq!(counted, expected, "{server} after the traffic:\n{after:#}");
        assert!(counter(server_of(&after, server), "active_mappings") >= 2);
    }
    let worker_packets: u64 = after["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["packets"].as_u64().unwrap())
        .sum();
    let expected_min = match mode {
        Mode::Userspace => 24,
        Mode::Kernel => 12,
    };
    assert!(worker_packets >= expected_min, "{after:#}");
    assert_eq!(after["workers"].as_array().unwrap().len(), worker_count());
    assert_eq!(after["prober"]["running"], false);

    // The counters live in shared memory the master made: new workers go on from them.
    restart_the_workers(&net, &master);
    let restarted = status_json(&net);
    for server in sent.keys() {
        assert_eq!(
            traffic_of(&restarted, server),
            traffic_of(&after, server),
            "{server} after the workers' restart"
        );
    }
    send_udp(&net, VIP4, 42_201..42_204);
    let more = status_json(&net);
    let flows =
        |status: &Value| -> u64 { BACKEND4[..3].iter().map(|s| traffic_of(status, s)[0]).sum() };
    assert_eq!(flows(&more), flows(&after) + 3);

    let metrics = loadedctl_ok(&net, &["metrics"]);
    check_prometheus_text(&metrics);
    let line = format!(
        "loaded_server_new_flows_total{{vip=\"{VIP4}\",server=\"{}\"}} ",
        BACKEND4[0]
    );
    let value = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in\n{metrics}"));
    assert_eq!(
        value.parse::<u64>().unwrap(),
        traffic_of(&more, BACKEND4[0])[0]
    );
    master.stop_cleanly(&net);
    assert!(
        !control_socket_of(&net).exists(),
        "the socket outlived the master"
    );
    let gone = loadedctl(&net, &["status"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("loaded is not running"));
}

/// The text exposition format, line by line: `# HELP name text`, `# TYPE name
/// counter|gauge` before a family's samples, samples `name{label="value",...} number`
/// whose name is the family's (or the family's without `_total` for counters) and starts
/// with `loaded_`.
fn check_prometheus_text(text: &str) {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(name.starts_with("loaded_") && !help.is_empty(), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(types.contains_key(name), "{name} has no # TYPE before it");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("labels of {line}"));
                for pair in inner.split(',') {
                    let (key, quoted) = pair.split_once('=').expect("label=value");
                    assert!(
                        matches!(key, "vip" | "server" | "worker" | "reason"),
                        "{line}"
                    );
                    assert!(quoted.starts_with('"') && quoted.ends_with('"'), "{line}");
                }
            }
        }
        samples += 1;
    }
    assert!(samples > 0, "no samples in\n{text}");
    for family in [
        "loaded_server_up",
        "loaded_server_new_flows_total",
        "loaded_dropped_packets_total",
        "loaded_worker_packets_total",
    ] {
        assert!(types.contains_key(family), "{family} missing:\n{text}");
    }
}

fn drain_and_undrain(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let config = base_config_in(&net, mode, "strategy=rr\nstickiness=flow\n");
    let master = Master::start(&net, &config, &[]);
    let drained = BACKEND4[1];

    // Six clients (source ports), rr: two on each server, b2 among them.
    let existing: Vec<(u16, String)> = (43_001..43_007)
        .map(|port| (port, udp_backend(&net, VIP4, port, "hello")))
        .collect();
    assert_eq!(
        existing.iter().filter(|(_, b)| b == "b2").count(),
        2,
        "{existing:?}"
    );

    let said = loadedctl_ok(&net, &["drain", drained]);
    assert!(said.contains("draining"), "{said}");
    let status = status_json(&net);
    let state = &server_of(&status, drained)["state"];
    assert_eq!(
        (&state["up"], &state["draining"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    assert!(
        loadedctl_ok(&net, &["status"]).contains("up,draining"),
        "the listing shows the drain"
    );
    assert!(
        wait_until(secs(5), || master
            .log(&net)
            .contains(&format!("server {drained} drained"))),
        "the drain is not logged:\n{}",
        master.log(&net)
    );

    // Existing clients stay where they are, the drained server's too.
    for (port, backend) in &existing {
        assert_eq!(
            &udp_backend(&net, VIP4, *port, "again"),
            backend,
            "client port {port} moved"
        );
    }
    // New clients never reach it.
    let fresh = send_udp(&net, VIP4, 43_101..43_113);
    assert!(
        !fresh.contains_key("b2"),
        "new clients reached b2: {fresh:?}"
    );
    assert_eq!(fresh.values().sum::<u64>(), 12);

    // Restarted workers get the drain before they serve; a reload keeps it (and gives
    // the workers the file's weights, then the operator's state again).
    restart_the_workers(&net, &master);
    let after_restart = send_udp(&net, VIP4, 43_301..43_307);
    assert!(
        !after_restart.contains_key("b2"),
        "new clients reached b2 after a worker restart: {after_restart:?}"
    );
    let text = std::fs::read_to_string(&master.config).unwrap().replace(
        &format!("server4={}\n", BACKEND4[0]),
        &format!("server4={} weight=2\n", BACKEND4[0]),
    );
    loadedctl_ok(&net, &["weight", BACKEND4[2], "7"]);
    reload(&net, &master, &text);
    let after_reload = send_udp(&net, VIP4, 43_401..43_407);
    assert!(
        !after_reload.contains_key("b2"),
        "new clients reached b2 after a reload: {after_reload:?}"
    );
    let status = status_json(&net);
    assert_eq!(server_of(&status, drained)["state"]["draining"], true);
    assert_eq!(
        server_of(&status, BACKEND4[0])["weight"],
        2,
        "the file's new weight"
    );
    assert_eq!(
        server_of(&status, BACKEND4[2])["weight"],
        7,
        "the operator's weight"
    );
    for (port, backend) in &existing {
        assert_eq!(
            &udp_backend(&net, VIP4, *port, "still"),
            backend,
            "client port {port} moved after the restart and the reload"
        );
    }

    loadedctl_ok(&net, &["undrain", drained]);
    let back = send_udp(&net, VIP4, 43_201..43_213);
    assert!(
        back.get("b2").is_some_and(|n| *n >= 3),
        "after undrain b2 gets new clients again: {back:?}"
    );
    let status = status_json(&net);
    assert_eq!(server_of(&status, drained)["state"]["draining"], false);
    master.stop_cleanly(&net);
}

fn a_weight_changes_the_spread_of_new_clients(mode: Mode) {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let config = base_config_in(&net, mode, "strategy=weighted\nstickiness=flow\n");
    let master = Master::start(&net, &config, &[]);
    let even = send_udp(&net, VIP4, 44_001..44_013);
    assert_eq!(
        even.values().collect::<Vec<_>>(),
        [&4, &4, &4],
        "equal weights: {even:?}"
    );
    // b3 weighs 10 now: with 4 mappings each, the next dozen new flows all go to it
    // (least mappings per unit of weight: (4+k)/10 < 5/1 for k < 46).
    loadedctl_ok(&net, &["weight", BACKEND4[2], "10"]);
    let heavy = send_udp(&net, VIP4, 44_101..44_113);
    assert_eq!(heavy.get("b3"), Some(&12), "after weight 10: {heavy:?}");
    let status = status_json(&net);
    assert_eq!(server_of(&status, BACKEND4[2])["weight"], 10);
    assert!(
        wait_until(secs(5), || master
            .log(&net)
            .contains(&format!("server {} weight set to 10", BACKEND4[2]))),
        "the weight is not logged:\n{}",
        master.log(&net)
    );
    master.stop_cleanly(&net);
}

#[test]
fn status_json_and_metrics_count_the_traffic_and_survive_a_worker_restart_userspace() {
    status_and_counters(Mode::Userspace);
}

#[test]
fn status_json_and_metrics_count_the_traffic_and_survive_a_worker_restart_kernel() {
    status_and_counters(Mode::Kernel);
}

#[test]
fn a_drained_server_keeps_its_clients_and_gets_no_new_ones_until_undrained_userspace() {
    drain_and_undrain(Mode::Userspace);
}

#[test]
fn a_drained_server_keeps_its_clients_and_gets_no_new_ones_until_undrained_kernel() {
    drain_and_undrain(Mode::Kernel);
}

#[test]
fn a_weight_changes_the_spread_of_new_clients_userspace() {
    a_weight_changes_the_spread_of_new_clients(Mode::Userspace);
}

#[test]
fn a_weight_changes_the_spread_of_new_clients_kernel() {
    a_weight_changes_the_spread_of_new_clients(Mode::Kernel);
}

/// Raw bytes to the socket, as a misbehaving client sends them: the reply.
fn raw_request(net: &TestNet, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(control_socket_of(net)).expect("connect");
    stream.set_read_timeout(Some(secs(10))).unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn bad_requests_unknown_servers_and_strangers_get_errors_and_the_daemon_runs_on() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    // Fast checks: b3 is found down within a few seconds.
    let config = base_config(
        &net,
        "failover\ncheck_cycle=2\ncheck_timeout=1\nrise=2\nfall=2\nstickiness=flow\n",
    );
    let master = Master::start(&net, &config, &[]);

    for args in [
        &["drain", "198.19.0.99"][..],
        &["undrain", "fd00:19::99"],
        &["weight", "198.19.0.99", "3"],
    ] {
        let out = loadedctl(&net, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("error: no such server {}", args[1])),
            "{args:?}: {stderr}"
        );
    }
    let out = loadedctl(&net, &["weight", BACKEND4[0], "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("weight"));
    assert_eq!(
        raw_request(&net, b"bogus\n"),
        "error: unknown command 'bogus' (commands: status, metrics, drain, undrain, weight)\n"
    );
    assert!(raw_request(&net, &[b'x'; 100_000]).starts_with("error: request longer than"));
    // A client that connects and says nothing does not hold the master up.
    let _silent = UnixStream::connect(control_socket_of(&net)).unwrap();
    assert!(loadedctl_ok(&net, &["status"]).contains(VIP4));

    // A drained server that also fails its checks shows both.
    let stopped = BACKEND4[2];
    loadedctl_ok(&net, &["drain", stopped]);
    net.stop_backend(3);
    let both = wait_until(secs(20), || {
        let status = status_json(&net);
        let state = &server_of(&status, stopped)["state"];
        state["up"] == false && state["draining"] == true
    });
    let status = status_json(&net);
    assert!(both, "{status:#}");
    let s = server_of(&status, stopped);
    assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{s}");
    assert!(loadedctl_ok(&net, &["status"]).contains("down,draining"));
    assert!(
        status["prober"]["last_round"].as_u64().is_some(),
        "the prober's rounds are reported: {status:#}"
    );

    // Someone outside the socket's group (root here) is refused, whatever the request.
    std::fs::set_permissions(net.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = loadedctl_binary().display().to_string();
    let socket = control_socket_of(&net).display().to_string();
    let stranger = net.exec_timeout(
        Host::Balancer,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &binary,
            "-s",
            &socket,
            "status",
        ],
        secs(20),
    );
    assert_eq!(stranger.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&stranger.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");

    assert!(net.try_wait(master.pid).is_none(), "the master died");
    assert!(loadedctl_ok(&net, &["status"]).contains(VIP6));
    master.stop_cleanly(&net);
}

/// Not a test of its own: prints a `loadedctl status` of the lab after some traffic, a
/// drain and a server down, for the README (`-- --ignored --nocapture readme_listing`).
#[test]
#[ignore = "prints the README's example listing"]
fn readme_listing() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let config = base_config(
        &net,
        "failover\ncheck_cycle=2\ncheck_timeout=1\nrise=2\nfall=2\nstrategy=weighted\n\
         stickiness=flow\n",
    );
    let master = Master::start(&net, &config, &[]);
    send_udp(&net, VIP4, 45_001..45_013);
    send_udp(&net, VIP6, 45_101..45_107);
    for _ in 0..5 {
        net.curl(&http_url(VIP4, HTTP_PORT, "/"), secs(5)).unwrap();
    }
    loadedctl_ok(&net, &["drain", BACKEND4[1]]);
    loadedctl_ok(&net, &["weight", BACKEND6[0], "3"]);
    net.stop_backend(3);
    assert!(wait_until(secs(30), || {
        let status = status_json(&net);
        server_of(&status, BACKEND4[2])["state"]["up"] == false
    }));
    println!("{}", loadedctl_ok(&net, &["status"]));
    master.stop_cleanly(&net);
}
