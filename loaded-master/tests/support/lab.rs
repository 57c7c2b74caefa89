//! `TestNet`: one test's lab of network namespaces, built at `up` and removed at drop.
//!
//! Spawning processes in it is in `lab/processes`, sending traffic from it in
//! `lab/traffic`, reading its state in `lab/inspect`.

mod inspect;
mod processes;
mod traffic;

#[allow(unused_imports)]
pub use inspect::{snmp6_value, snmp_value};
#[allow(unused_imports)]
pub use traffic::*;

use self::processes::Spawned;
use super::process::{
    describe, lock, run_bounded, signal_term, stop_child, tail, DEFAULT_COMMAND_TIMEOUT, STOP_GRACE,
};
use super::requirements::require_root_and_tools;
use super::topology::{demo_dir, stale_prefixes, unique_prefix, Host, Options, MAX_BACKENDS};
use super::wait::secs;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

/// The topology of one test; see the module's documentation.
pub struct TestNet {
    prefix: String,
    backends: u8,
    dir: PathBuf,
    children: Mutex<Vec<Spawned>>,
    backend_pids: Mutex<HashMap<u8, u32>>,
}

impl TestNet {
    /// Checks root and the tools, removes namespaces left by killed runs, then builds the
    /// topology under a fresh prefix. Panics (after cleaning up) when it cannot.
    pub fn up(options: Options) -> TestNet {
        require_root_and_tools();
        assert!(
            (1..=MAX_BACKENDS).contains(&options.backends),
            "Options::backends: 1 to {MAX_BACKENDS}"
        );
        for stale in stale_prefixes() {
            eprintln!("harness: removing namespaces {stale}* left by a killed run");
            let _ = run_bounded(Self::topology(&["down", &stale]), secs(60));
        }
        let prefix = unique_prefix();
        let dir = std::env::temp_dir().join(format!("loaded-test-{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        if let Err(e) = fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        // Built before the topology, so that a failure below still cleans up in drop.
        let net = TestNet {
            prefix,
            backends: options.backends,
            dir,
            children: Mutex::new(Vec::new()),
            backend_pids: Mutex::new(HashMap::new()),
        };
        let backends = options.backends.to_string();
        let mtu = options.mtu_rtr_client.map(|m| m.to_string());
        let mut args = vec!["up", &net.prefix, "--backends", &backends];
        if let Some(mtu) = &mtu {
            args.extend(["--mtu-rtr-client", mtu]);
        }
        let out = run_bounded(Self::topology(&args), secs(60));
        if !out.status.success() {
            panic!("{}", describe("topology.sh up failed", &out));
        }
        net
    }

    pub(super) fn topology(args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg(demo_dir().join("topology.sh")).args(args);
        cmd
    }

    /// The prefix of this topology's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of backends (b1 to bN).
    pub fn backend_count(&self) -> u8 {
        self.backends
    }

    /// The directory of this topology's logs and files (removed at drop unless the test
    /// failed). Tests may write files there, e.g. the balancer's config.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `contents` to `name` in `dir()` (e.g. the balancer's config) and returns the
    /// path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: Host) -> String {
        if let Host::Backend(n) = host {
            assert!(
                (1..=self.backends).contains(&n),
                "no backend b{n}: this topology has b1 to b{}",
                self.backends
            );
        }
        format!("{}{}", self.prefix, host.short_name())
    }

    pub(super) fn command(&self, host: Host, args: &[&str]) -> Command {
        assert!(!args.is_empty(), "exec: no command");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).args(args);
        cmd
    }

    /// Runs `args` inside `host`'s namespace (`ip netns exec`), for at most 60 s.
    pub fn exec(&self, host: Host, args: &[&str]) -> Output {
        self.exec_timeout(host, args, DEFAULT_COMMAND_TIMEOUT)
    }

    /// `exec` with another bound: past `timeout` the command is killed and fails.
    pub fn exec_timeout(&self, host: Host, args: &[&str], timeout: Duration) -> Output {
        run_bounded(self.command(host, args), timeout)
    }

    /// `exec` that panics, with the command's output, unless it succeeds; returns stdout.
    pub fn exec_ok(&self, host: Host, args: &[&str]) -> String {
        let out = self.exec(host, args);
        if !out.status.success() {
            panic!(
                "{}",
                describe(&format!("in {}: {args:?} failed", self.ns(host)), &out)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let failing = thread::panicking();
        let mut children = std::mem::take(&mut *lock(&self.children));
        // SIGTERM to all first so that they stop in parallel, then reap each within the
        // grace period (SIGKILL past it).
        for s in &mut children {
            if let Ok(None) = s.child.try_wait() {
                signal_term(&s.child);
            }
        }
        for s in &mut children {
            let status = stop_child(&mut s.child, STOP_GRACE);
            if failing {
                let log = fs::read_to_string(&s.log).unwrap_or_default();
                eprintln!(
                    "harness: {} (pid {}) ended {}; last output ({}):\n{}",
                    s.what,
                    s.child.id(),
                    status.map_or("unreaped".to_string(), |s| s.to_string()),
                    s.log.display(),
                    tail(&log, 40)
                );
            }
        }
        // Kills what is left in the namespaces (e.g. the balancer's workers), by pid, and
        // deletes the namespaces.
        let out = run_bounded(Self::topology(&["down", &self.prefix]), secs(60));
        if !out.status.success() || !out.stderr.is_empty() {
            eprintln!("{}", describe("harness: topology.sh down", &out));
        }
        if failing {
            eprintln!("harness: logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
