//! Processes the lab runs in the background: any command, and the backend services.

use super::TestNet;
use crate::support::process::{lock, signal_term, stop_child, STOP_GRACE};
use crate::support::topology::{demo_dir, Host, HTTP_PORT, UDP_PORT};
use crate::support::wait::wait_until;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

/// How long a backend service gets to print "ready".
const BACKEND_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A process started by `TestNet::spawn`.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) what: String,
    pub(crate) log: PathBuf,
}

impl TestNet {
    /// Starts `args` inside `host`'s namespace in the background; returns its pid. Its
    /// stdout and stderr go to a log file (see `log`). The harness keeps the process and,
    /// at drop (or `stop`), sends it SIGTERM, then SIGKILL, by pid, and reaps it.
    pub fn spawn(&self, host: Host, args: &[&str]) -> u32 {
        let mut children = lock(&self.children);
        let base = Path::new(args.first().copied().unwrap_or("cmd"))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let what = format!("{} in {}: {args:?}", base, host.short_name());
        let log = self.dir.join(format!(
            "{:02}-{}-{}.log",
            children.len(),
            host.short_name(),
            base
        ));
        let file = fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let file2 = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup {}: {e}", log.display()));
        let mut cmd = self.command(host, args);
        cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        // `ip netns exec` execs the command itself: the pid is the command's.
        let pid = child.id();
        children.push(Spawned { child, what, log });
        pid
    }

    fn with_spawned<R>(&self, pid: u32, f: impl FnOnce(&mut Spawned) -> R) -> R {
        let mut children = lock(&self.children);
        let spawned = children
            .iter_mut()
            .find(|s| s.child.id() == pid)
            .unwrap_or_else(|| panic!("pid {pid} was not started by this TestNet"));
        f(spawned)
    }

    /// What a spawned process has written to stdout and stderr so far.
    pub fn log(&self, pid: u32) -> String {
        let path = self.with_spawned(pid, |s| s.log.clone());
        fs::read_to_string(&path).unwrap_or_default()
    }

    /// The exit status of a spawned process if it has exited (it is then reaped).
    pub fn try_wait(&self, pid: u32) -> Option<ExitStatus> {
        self.with_spawned(pid, |s| s.child.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for a spawned process to exit.
    pub fn wait_exit(&self, pid: u32, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.try_wait(pid);
            status.is_some()
        });
        status
    }

    /// Stops a spawned process: SIGTERM, up to 5 s, then SIGKILL; reaps it. Returns its
    /// exit status (None if it could not be reaped).
    pub fn stop(&self, pid: u32) -> Option<ExitStatus> {
        self.with_spawned(pid, |s| stop_child(&mut s.child, STOP_GRACE))
    }

    /// Sends SIGTERM to a running spawned process without waiting (e.g. to test how the
    /// balancer shuts down); false if it has already exited.
    pub fn terminate(&self, pid: u32) -> bool {
        self.with_spawned(pid, |s| {
            if let Ok(None) = s.child.try_wait() {
                signal_term(&s.child);
                true
            } else {
                false
            }
        })
    }

    /// The pids of every process `spawn` started (running or not).
    pub fn spawned_pids(&self) -> Vec<u32> {
        lock(&self.children).iter().map(|s| s.child.id()).collect()
    }

    /// Starts backend-service.py in b1, b2 and b3 (named b1..b3; b4 is left without its
    /// service, see `start_backend`) and waits until each prints "ready".
    pub fn start_backends(&self) {
        let ns: Vec<u8> = (1..=self.backends.min(3)).collect();
        let pids: Vec<(u8, u32)> = ns.iter().map(|&n| (n, self.launch_backend(n))).collect();
        for (n, pid) in pids {
            self.wait_backend_ready(n, pid);
        }
    }

    /// Starts backend-service.py in backend n (e.g. b4 for a hotplug test), waits for
    /// "ready" and returns its pid.
    pub fn start_backend(&self, n: u8) -> u32 {
        let pid = self.launch_backend(n);
        self.wait_backend_ready(n, pid);
        pid
    }

    /// Stops backend n's service (SIGTERM, then SIGKILL), e.g. to test failover.
    pub fn stop_backend(&self, n: u8) -> Option<ExitStatus> {
        let pid = lock(&self.backend_pids)
            .remove(&n)
            .unwrap_or_else(|| panic!("b{n} has no running service"));
        self.stop(pid)
    }

    /// The pid of backend n's service, if started.
    pub fn backend_pid(&self, n: u8) -> Option<u32> {
        lock(&self.backend_pids).get(&n).copied()
    }

    fn launch_backend(&self, n: u8) -> u32 {
        let script = demo_dir().join("backend-service.py");
        let script = script.to_string_lossy();
        let name = format!("b{n}");
        let http = HTTP_PORT.to_string();
        let udp = UDP_PORT.to_string();
        let pid = self.spawn(
            Host::Backend(n),
            &[
                "python3",
                &script,
                "--name",
                &name,
                "--http-port",
                &http,
                "--udp-port",
                &udp,
            ],
        );
        if let Some(old) = lock(&self.backend_pids).insert(n, pid) {
            panic!("b{n} already has a service (pid {old})");
        }
        pid
    }

    fn wait_backend_ready(&self, n: u8, pid: u32) {
        let mut exited = None;
        let ready = wait_until(BACKEND_READY_TIMEOUT, || {
            exited = self.try_wait(pid);
            exited.is_none() && self.log(pid).lines().any(|l| l == "ready")
        });
        if !ready {
            panic!(
                "backend-service.py in b{n} (pid {pid}) {}; its output:\n{}",
                match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("did not print \"ready\" within {BACKEND_READY_TIMEOUT:?}"),
                },
                self.log(pid)
            );
        }
    }
}
