//! Running loaded-master inside a TestNet's balancer namespace.

use super::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

/// The master binary under test; the worker and prober are built next to it.
pub fn master_binary() -> &'static str {
    env!("CARGO_BIN_EXE_loaded-master")
}

/// How the balancer under test forwards (`forward=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The workers rewrite every packet.
    Userspace,
    /// The workers mark first packets; nftables and conntrack forward.
    Kernel,
}

impl Mode {
    /// The config line that selects the mode.
    pub fn config_line(self) -> &'static str {
        match self {
            Mode::Userspace => "forward=userspace\n",
            Mode::Kernel => "forward=kernel\n",
        }
    }
}

/// A config for the standard topology: both VIPs, the three backends of each family.
pub fn base_config(net: &TestNet, extra: &str) -> String {
    base_config_in(net, Mode::Userspace, extra)
}

/// `base_config` in the given forwarding mode.
pub fn base_config_in(net: &TestNet, mode: Mode, extra: &str) -> String {
    let mut config = format!("VIP4={VIP4}\nVIP6={VIP6}\n{}", mode.config_line());
    for server in &BACKEND4[..3] {
        config.push_str(&format!("server4={server}\n"));
    }
    for server in &BACKEND6[..3] {
        config.push_str(&format!("server6={server}\n"));
    }
    config.push_str(&format!("pidfile={}/loaded.pid\n", net.dir().display()));
    config.push_str(extra);
    config.push_str(&own_paths(net, extra));
    config
}

/// `chroot=`, `log_socket=` and `control_socket=` lines in the test's own directory, for
/// the keys `extra` does not set: a test never touches the host's /var/run/empty, /dev/log
/// or /run/loaded. Nothing listens on the log socket unless the test binds it; the master
/// logs to stderr anyway.
pub fn own_paths(net: &TestNet, extra: &str) -> String {
    let sets = |key: &str| extra.lines().any(|l| l.trim_start().starts_with(key));
    let mut lines = String::new();
    if !sets("chroot=") {
        lines.push_str(&format!("chroot={}/empty\n", net.dir().display()));
    }
    if !sets("log_socket=") {
        lines.push_str(&format!(
            "log_socket={}/no-syslog.sock\n",
            net.dir().display()
        ));
    }
    if !sets("control_socket=") {
        lines.push_str(&format!(
            "control_socket={}\n",
            control_socket_of(net).display()
        ));
    }
    lines
}

/// Where the master of `net`'s test listens for loadedctl (see `own_paths`).
pub fn control_socket_of(net: &TestNet) -> PathBuf {
    net.dir().join("control/control.sock")
}

pub struct Master {
    pub pid: u32,
    pub config: PathBuf,
}

/// The number of workers a master started by this process starts by default: one per
/// core of the run of CPUs it may use (Cpus_allowed_list, inherited by the master).
pub fn worker_count() -> usize {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status");
    let allowed = parse_cpu_list(list.trim())
        .unwrap_or_else(|| panic!("Cpus_allowed_list {list:?} is not a CPU list"));
    let cores = loaded_proto::config::choose_worker_cores(None, None, &allowed)
        .unwrap_or_else(|e| panic!("{e}"));
    cores.count()
}

/// `0-3,6` as [0, 1, 2, 3, 6].
pub fn parse_cpu_list(list: &str) -> Option<Vec<u16>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (start, end): (u16, u16) = match part.split_once('-') {
            Some((start, end)) => (start.parse().ok()?, end.parse().ok()?),
            None => {
                let cpu = part.parse().ok()?;
                (cpu, cpu)
            }
        };
        cpus.extend(start..=end);
    }
    Some(cpus)
}

impl Master {
    /// Starts `loaded-master -D -c CONFIG ARGS...` in lb and waits until every worker
    /// serves its queue.
    pub fn start(net: &TestNet, config_text: &str, args: &[&str]) -> Master {
        let config = net.write_file("loaded.conf", config_text);
        let config_arg = config.display().to_string();
        let mut command = vec![master_binary(), "-D", "-c", &config_arg];
        command.extend_from_slice(args);
        let pid = net.spawn(Host::Balancer, &command);
        let master = Master { pid, config };
        master.wait_ready(net);
        master.assert_mode(net, config_text);
        master
    }

    /// The mode the config asks for is the one running: the workers say so, and only
    /// kernel mode has the nftables table (so a test of one mode cannot pass in the other).
    fn assert_mode(&self, net: &TestNet, config_text: &str) {
        let kernel = config_text.lines().any(|l| l.trim() == "forward=kernel");
        let log = self.log(net);
        let said = if kernel {
            "(forward=kernel)"
        } else {
            "(forward=userspace)"
        };
        assert!(log.contains(said), "workers did not say {said}:\n{log}");
        let ruleset = nft_ruleset(net);
        assert_eq!(
            ruleset.contains("table inet loaded"),
            kernel,
            "nftables ruleset in lb:\n{ruleset}"
        );
    }

    pub fn wait_ready(&self, net: &TestNet) {
        let workers = worker_count();
        let ready = wait_until(secs(20), || {
            net.log(self.pid).matches("serving NFQUEUE").count() >= workers
                || net.try_wait(self.pid).is_some()
        });
        let log = net.log(self.pid);
        assert!(
            ready && net.try_wait(self.pid).is_none(),
            "loaded-master did not get ready; its output:\n{log}"
        );
    }

    pub fn log(&self, net: &TestNet) -> String {
        net.log(self.pid)
    }

    /// SIGTERM, and the master's exit status.
    pub fn stop(&self, net: &TestNet) -> Option<ExitStatus> {
        net.terminate(self.pid);
        net.wait_exit(self.pid, secs(10))
    }

    /// SIGTERM; asserts that the master exits with status 0 within 10 s and leaves
    /// nothing behind (`assert_balancer_gone`).
    pub fn stop_cleanly(&self, net: &TestNet) {
        let status = self.stop(net);
        let log = self.log(net);
        assert!(
            status.is_some_and(|s| s.success()),
            "loaded-master did not stop cleanly ({status:?}); its output:\n{log}"
        );
        assert_balancer_gone(net);
    }
}

/// Nothing of the balancer is left in lb: no loaded-* process, no LOADED chain or rule in
/// iptables/ip6tables (mangle), no `inet loaded` nftables table, no bound queue. Every
/// listing must succeed (a failing listing fails the test, it does not pass as empty).
pub fn assert_balancer_gone(net: &TestNet) {
    for name in ["loaded-master", "loaded-worker", "loaded-prober"] {
        let left = children_named(net, name);
        assert!(left.is_empty(), "{name} still runs in lb: {left:?}");
    }
    let rules = mangle_rules(net);
    assert!(
        !rules.contains("LOADED"),
        "the balancer's iptables rules are left in lb:\n{rules}"
    );
    let ruleset = nft_ruleset(net);
    assert!(
        !ruleset.contains("table inet loaded"),
        "the balancer's nftables table is left in lb:\n{ruleset}"
    );
    let queues = net.nfqueues();
    assert!(queues.is_empty(), "queues still bound in lb: {queues:?}");
}

/// The pids of the master's children, by their command name.
pub fn children_named(net: &TestNet, name: &str) -> Vec<u32> {
    net.ns_pids(Host::Balancer)
        .into_iter()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|comm| comm.trim() == name)
                .unwrap_or(false)
        })
        .collect()
}

/// Kills every worker and waits until all their successors serve their queues.
pub fn restart_the_workers(net: &TestNet, master: &Master) {
    let workers = children_named(net, "loaded-worker");
    assert_eq!(workers.len(), worker_count());
    let serving_before = master.log(net).matches("serving NFQUEUE").count();
    for pid in &workers {
        send_signal(*pid, libc::SIGKILL);
    }
    let restarted = wait_until(secs(20), || {
        let now = children_named(net, "loaded-worker");
        now.len() == workers.len()
            && now.iter().all(|pid| !workers.contains(pid))
            && master.log(net).matches("serving NFQUEUE").count() >= serving_before + workers.len()
    });
    assert!(
        restarted,
        "the workers were not restarted:\n{}",
        master.log(net)
    );
}

/// iptables-save and ip6tables-save of the balancer namespace, mangle table.
pub fn mangle_rules(net: &TestNet) -> String {
    let mut rules = net.exec_ok(Host::Balancer, &["iptables-save", "-t", "mangle"]);
    rules.push_str(&net.exec_ok(Host::Balancer, &["ip6tables-save", "-t", "mangle"]));
    rules
}

/// `nft list ruleset` of the balancer namespace.
pub fn nft_ruleset(net: &TestNet) -> String {
    net.exec_ok(Host::Balancer, &["nft", "list", "ruleset"])
}

/// Asks `url` `count` times from the client and returns the backend names in order.
pub fn backends_answering(net: &TestNet, url: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let body = net
                .curl(url, secs(5))
                .unwrap_or_else(|e| panic!("request {i} to {url}: {e}"));
            body.trim()
                .strip_prefix("backend=")
                .unwrap_or_else(|| panic!("unexpected answer from {url}: {body:?}"))
                .to_string()
        })
        .collect()
}

/// `loaded-master -t -c PATH`: checks a config file and prints its settings or errors.
pub fn check_config(path: &Path) -> Output {
    let mut command = Command::new(master_binary());
    command.arg("-t").arg("-c").arg(path);
    run_bounded(command, secs(30))
}
