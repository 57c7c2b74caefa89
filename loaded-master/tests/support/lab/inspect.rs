//! Reading the state of the lab's namespaces: files, sysctls, queues, pids, addresses.

use super::TestNet;
use crate::support::nfqueue::{parse_nfqueue, NfQueue};
use crate::support::process::run_bounded;
use crate::support::topology::Host;
use crate::support::wait::secs;
use std::process::Command;

impl TestNet {
    /// A file as seen from inside `host`'s namespace (`ip netns exec NS cat PATH`):
    /// /proc/net and /proc/sys/net show that namespace's view only there.
    pub fn read_file(&self, host: Host, path: &str) -> Result<String, String> {
        let out = self.exec_timeout(host, &["cat", "--", path], secs(10));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "cat {path} in {}: {}",
                self.ns(host),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// A sysctl inside `host`'s namespace, e.g. `sysctl(Host::Balancer, "net/ipv4/ip_forward")`.
    pub fn sysctl(&self, host: Host, key: &str) -> Result<String, String> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.read_file(host, &path).map(|v| v.trim().to_string())
    }

    /// The queues bound in lb (/proc/net/netfilter/nfnetlink_queue read inside lb); empty
    /// when none is bound (or nfnetlink_queue is not loaded yet).
    pub fn nfqueues(&self) -> Vec<NfQueue> {
        self.read_file(Host::Balancer, "/proc/net/netfilter/nfnetlink_queue")
            .map(|text| parse_nfqueue(&text))
            .unwrap_or_default()
    }

    /// The pids of every process inside `host`'s namespace (`ip netns pids`).
    pub fn ns_pids(&self, host: Host) -> Vec<u32> {
        let out = run_bounded(
            {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "pids", &self.ns(host)]);
                cmd
            },
            secs(10),
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Whether `address` (e.g. "198.18.100.1") is configured in `host`.
    pub fn has_address(&self, host: Host, address: &str) -> bool {
        let out = self.exec(host, &["ip", "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(address))
    }
}
