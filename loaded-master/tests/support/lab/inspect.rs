//! Reading the state of the lab's namespaces: files, sysctls, queues, pids, addresses.

use super::TestNet;
use crate::support::nfqueue::{parse_nfqueue, NfQueue};
use crate::support::process::{describe, run_bounded, CommandError};
use crate::support::topology::{Host, CLIENT4, CLIENT6};
use crate::support::wait::{secs, wait_until};
use std::process::Command;
use std::time::Duration;

impl TestNet {
    /// A file as seen from inside `host`'s namespace (`ip netns exec NS cat PATH`):
    /// /proc/net and /proc/sys/net show that namespace's view only there.
    pub fn read_file(&self, host: Host, path: &str) -> Result<String, CommandError> {
        let out = self.exec_timeout(host, &["cat", "--", path], secs(10));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CommandError::failed(
                format!("cat {path} in {}", self.ns(host)),
                &out,
            ))
        }
    }

    /// A sysctl inside `host`'s namespace, e.g. `sysctl(Host::Balancer, "net/ipv4/ip_forward")`.
    pub fn sysctl(&self, host: Host, key: &str) -> Result<String, CommandError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.read_file(host, &path).map(|v| v.trim().to_string())
    }

    /// The queues bound in lb (/proc/net/netfilter/nfnetlink_queue read inside lb); empty
    /// when none is bound or nfnetlink_queue is not loaded (the file does not exist).
    /// Panics when the listing exists but cannot be read, so that "no queue is bound"
    /// cannot pass for want of a listing.
    pub fn nfqueues(&self) -> Vec<NfQueue> {
        let path = "/proc/net/netfilter/nfnetlink_queue";
        let script = format!("if [ -e {path} ]; then cat {path}; fi");
        let out = self.exec_timeout(Host::Balancer, &["sh", "-c", &script], secs(10));
        if !out.status.success() {
            panic!(
                "{}",
                describe(
                    &format!("reading {path} in {}", self.ns(Host::Balancer)),
                    &out
                )
            );
        }
        parse_nfqueue(&String::from_utf8_lossy(&out.stdout))
    }

    /// The pids of every process inside `host`'s namespace (`ip netns pids`). Panics when
    /// `ip netns pids` fails, so that "nothing runs" cannot pass for want of a listing.
    pub fn ns_pids(&self, host: Host) -> Vec<u32> {
        self.try_ns_pids(host).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ns_pids` that returns the failure instead of panicking (for cleanup code, which
    /// must not panic while a test is already failing).
    pub fn try_ns_pids(&self, host: Host) -> Result<Vec<u32>, CommandError> {
        let out = run_bounded(
            {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "pids", &self.ns(host)]);
                cmd
            },
            secs(10),
        );
        if !out.status.success() {
            return Err(CommandError::failed(
                format!("ip netns pids {}", self.ns(host)),
                &out,
            ));
        }
        let output = String::from_utf8_lossy(&out.stdout);
        output
            .split_whitespace()
            .map(|p| p.parse())
            .collect::<Result<_, _>>()
            .map_err(|_| CommandError::Unreadable {
                what: format!("ip netns pids {}", self.ns(host)),
                output: output.into_owned(),
            })
    }

    /// How many ICMP echo requests `host`'s own stack has received (`InEchos` of
    /// /proc/net/snmp, `Icmp6InEchos` of /proc/net/snmp6 when `v6`): it rises only for
    /// echoes the host answers itself, not for those it forwards.
    pub fn echo_requests_received(&self, host: Host, v6: bool) -> u64 {
        let (path, value) = if v6 {
            let path = "/proc/net/snmp6";
            let text = self.read_file(host, path).unwrap_or_else(|e| panic!("{e}"));
            (path, snmp6_value(&text, "Icmp6InEchos"))
        } else {
            let path = "/proc/net/snmp";
            let text = self.read_file(host, path).unwrap_or_else(|e| panic!("{e}"));
            (path, snmp_value(&text, "Icmp:", "InEchos"))
        };
        value.unwrap_or_else(|| panic!("no echo counter in {path} of {}", self.ns(host)))
    }

    /// Waits up to `timeout` until the prober has run at least `rounds` more health rounds:
    /// each round pings every configured server, so backend `n`'s echo counter rises by
    /// one per round (whether its service runs or not).
    pub fn wait_for_health_rounds(&self, n: u8, rounds: u64, timeout: Duration) {
        let counter = || self.echo_requests_received(Host::Backend(n), false);
        let start = counter();
        let mut now = start;
        let ran = wait_until(timeout, || {
            now = counter();
            now >= start + rounds
        });
        assert!(
            ran,
            "b{n} received {} health pings, not {rounds}: no health round ran",
            now - start
        );
    }

    /// Asserts that `host` has learnt a path MTU of `mtu` towards the client, in both
    /// families (its route cache says so).
    pub fn assert_path_mtu_learnt(&self, host: Host, mtu: u32) {
        for client in [CLIENT4, CLIENT6] {
            let route = self.exec_ok(host, &["ip", "route", "get", client]);
            assert!(
                route.contains(&format!("mtu {mtu}")),
                "{}'s route to {client}: {route}",
                self.ns(host)
            );
        }
    }

    /// Whether `address` (e.g. "198.18.100.1") is configured in `host`.
    pub fn has_address(&self, host: Host, address: &str) -> bool {
        let out = self.exec(host, &["ip", "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(address))
    }
}

/// A counter of /proc/net/snmp: the line `PREFIX names...` is followed by `PREFIX values...`.
pub fn snmp_value(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut rows = text.lines().filter(|l| l.starts_with(prefix));
    let names = rows.next()?;
    let values = rows.next()?;
    let index = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// A counter of /proc/net/snmp6: one `name value` per line.
pub fn snmp6_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == name).then_some(())?;
        fields.next()?.parse().ok()
    })
}
