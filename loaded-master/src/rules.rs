//! The NFQUEUE rules the master installs and removes.
//!
//! Everything lives in chains of our own per family in the mangle table: VIP traffic is
//! queued in PREROUTING (before routing, so the rewritten destination is what gets routed),
//! replies from the real servers in FORWARD, and the ICMP errors the balancer's own stack
//! sends in OUTPUT (about a client's packet after its rewrite: their quote names the server,
//! and the workers put the VIP back). The only change to the built-in chains is one jump
//! rule each. Chains named LOADED-* are ours by definition: a leftover from a run that
//! was killed is removed at start; nothing else is ever flushed or changed.
//!
//! No --queue-bypass: with no worker bound, a VIP packet is dropped (the client retransmits)
//! instead of being answered by the balancer's own stack with a reset, and a server's reply
//! never leaks out with its real address.
//!
//! Kernel mode (`forward=kernel`) queues only connections that carry no loaded mark yet
//! (`-m connmark ! --mark TAG/MASK`: whatever other bits another program may use, a
//! connection is ours once its high half is our tag), and has no FORWARD or OUTPUT chain:
//! conntrack translates the replies, and the quotes of the balancer's own ICMP errors. Not `ct state NEW`: a one-way UDP flow stays NEW and would be
//! queued packet by packet.

use crate::route_interface;
use loaded_proto::balancing::IpNet;
use loaded_proto::forwarding::{Forward, MARK_TAG, MARK_TAG_MASK};
use loaded_proto::wire::Family;
use std::fmt;
use std::net::IpAddr;
use std::process::Command;

pub const PREROUTING_CHAIN: &str = "LOADED-PREROUTING";
pub const FORWARD_CHAIN: &str = "LOADED-FORWARD";
pub const OUTPUT_CHAIN: &str = "LOADED-OUTPUT";

/// Our chains and the built-in chain that jumps to each.
const CHAINS: [(&str, &str); 3] = [
    ("PREROUTING", PREROUTING_CHAIN),
    ("FORWARD", FORWARD_CHAIN),
    ("OUTPUT", OUTPUT_CHAIN),
];

/// ICMP errors, which quote the packet they are about: destination unreachable (with
/// fragmentation needed), time exceeded, parameter problem.
const ICMP_ERROR_TYPES: [u8; 3] = [3, 11, 12];
/// ICMPv6 errors: destination unreachable, packet too big, time exceeded, parameter problem.
const ICMPV6_ERROR_TYPES: [u8; 4] = [1, 2, 3, 4];

/// ICMPv6 neighbour discovery (router/neighbour solicitation and advertisement, redirect)
/// must reach the kernel untouched even when addressed to the VIP.
const NDP_TYPES: std::ops::RangeInclusive<u8> = 133..=137;

/// The firewall tool of a family.
fn tool(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// What one family's rules are made of.
#[derive(Clone, Debug)]
pub struct FamilyRules {
    pub family: Family,
    pub vip: IpAddr,
    /// Sources whose forwarded packets are replies to rewrite: the servers and the RIP net.
    pub real_sources: Vec<RealSource>,
}

/// A server or the RIP net, and where its replies come in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealSource {
    pub net: IpNet,
    /// Without `private_NIC`: the interface of the route to it, the only one its replies
    /// are queued from; `None`: from any (no route was found).
    pub interface: Option<String>,
}

impl RealSource {
    /// Replies from `net` are queued from any interface.
    pub fn anywhere(net: IpNet) -> RealSource {
        RealSource {
            net,
            interface: None,
        }
    }

    /// Replies from `net` are queued from the interface of the route to it (its network
    /// address for the RIP net). Without a route: a warning, and from any interface, as
    /// before the interface was looked up; the servers may become reachable later.
    pub fn toward(net: IpNet) -> RealSource {
        match route_interface::interface_toward(net.addr) {
            Ok(interface) => RealSource {
                net,
                interface: Some(interface),
            },
            Err(e) => {
                log::warn!(
                    "replies from {net} are queued from any interface, as the interface \
                     towards it is not known ({e}); name it with private_NIC"
                );
                RealSource::anywhere(net)
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct RuleSet {
    pub families: Vec<FamilyRules>,
    pub first_queue: u16,
    pub last_queue: u16,
    /// `private_NIC`: replies are queued only when they come in on it, so that a packet
    /// from the public side with a server's source address is not made to look like one
    /// of ours.
    pub private_nic: Option<String>,
    pub forward: Forward,
}

#[derive(Debug)]
pub struct RuleError {
    pub command: String,
    pub output: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed: {}", self.command, self.output.trim())
    }
}

impl std::error::Error for RuleError {}

fn run(tool: &str, args: &[String]) -> Result<(), RuleError> {
    let command = format!("{tool} {}", args.join(" "));
    let output = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| RuleError {
            command: command.clone(),
            output: format!("cannot run {tool}: {e}"),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(RuleError {
            command,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// One address as a network.
fn host(addr: IpAddr) -> IpNet {
    IpNet {
        addr,
        prefix_len: if addr.is_ipv4() { 32 } else { 128 },
    }
}

fn args(words: &[&str]) -> Vec<String> {
    // -w: wait for the xtables lock instead of failing when another tool holds it.
    let mut all = vec!["-w".to_string(), "-t".into(), "mangle".into()];
    all.extend(words.iter().map(|w| w.to_string()));
    all
}

impl RuleSet {
    fn queue_target(&self) -> Vec<String> {
        let mut target = vec!["-j".to_string(), "NFQUEUE".into()];
        if self.first_queue == self.last_queue {
            target.extend(["--queue-num".into(), self.first_queue.to_string()]);
        } else {
            target.extend([
                "--queue-balance".into(),
                format!("{}:{}", self.first_queue, self.last_queue),
            ]);
        }
        target
    }

    /// The commands, in order, that install one family's rules.
    pub fn install_commands(&self, rules: &FamilyRules) -> Vec<Vec<String>> {
        let vip = rules.vip.to_string();
        let kernel = self.forward == Forward::Kernel;
        let mut commands = vec![args(&["-N", PREROUTING_CHAIN])];
        if !kernel {
            commands.push(args(&["-N", FORWARD_CHAIN]));
            commands.push(args(&["-N", OUTPUT_CHAIN]));
        }
        if rules.family == Family::V6 {
            for icmp_type in NDP_TYPES {
                commands.push(args(&[
                    "-A",
                    PREROUTING_CHAIN,
                    "-d",
                    &vip,
                    "-p",
                    "ipv6-icmp",
                    "--icmpv6-type",
                    &icmp_type.to_string(),
                    "-j",
                    "RETURN",
                ]));
            }
        }
        let mut queue_vip = args(&["-A", PREROUTING_CHAIN, "-d", &vip]);
        if kernel {
            let ours = format!("{MARK_TAG:#010x}/{MARK_TAG_MASK:#010x}");
            queue_vip.extend(["-m", "connmark", "!", "--mark", &ours].map(String::from));
        }
        queue_vip.extend(self.queue_target());
        commands.push(queue_vip);
        if !kernel {
            for source in &rules.real_sources {
                commands.push(self.reply_rule(source));
            }
            commands.extend(self.local_error_rules(rules.family));
        }
        commands.push(args(&["-I", "PREROUTING", "1", "-j", PREROUTING_CHAIN]));
        if !kernel {
            commands.push(args(&["-I", "FORWARD", "1", "-j", FORWARD_CHAIN]));
            commands.push(args(&["-I", "OUTPUT", "1", "-j", OUTPUT_CHAIN]));
        }
        commands
    }

    /// Queues the ICMP errors the balancer's own stack sends (e.g. fragmentation needed
    /// when a client's packet, already rewritten, does not fit the servers' side): the
    /// workers restore the VIP in their quote when it is a client's packet to the VIP.
    fn local_error_rules(&self, family: Family) -> Vec<Vec<String>> {
        let (protocol, option, types): (&str, &str, &[u8]) = match family {
            Family::V4 => ("icmp", "--icmp-type", &ICMP_ERROR_TYPES),
            Family::V6 => ("ipv6-icmp", "--icmpv6-type", &ICMPV6_ERROR_TYPES),
        };
        types
            .iter()
            .map(|icmp_type| {
                let icmp_type = icmp_type.to_string();
                let mut command = args(&["-A", OUTPUT_CHAIN, "-p", protocol, option, &icmp_type]);
                command.extend(self.queue_target());
                command
            })
            .collect()
    }

    /// Installs every family's rules; they stay until the returned guard is dropped. On
    /// failure, whatever was installed is removed again, so the system is left as it was.
    pub fn install(&self) -> Result<InstalledRules, RuleError> {
        let installed = InstalledRules { set: self.clone() };
        for rules in &self.families {
            remove_family(rules.family);
            for command in self.install_commands(rules) {
                // Dropping `installed` removes what is there so far.
                run(tool(rules.family), &command)?;
            }
        }
        Ok(installed)
    }

    /// Userspace mode, at a reload: queues the replies of a server that is new (appended to
    /// its family's `LOADED-FORWARD`). `Ok(false)`: no rules for its family (no VIP of it,
    /// or kernel mode, which needs none).
    pub fn add_real_source(&self, addr: IpAddr) -> Result<bool, RuleError> {
        let Some(rules) = self
            .families
            .iter()
            .find(|rules| rules.vip.is_ipv4() == addr.is_ipv4())
        else {
            return Ok(false);
        };
        if self.forward == Forward::Kernel {
            return Ok(false);
        }
        let net = host(addr);
        let source = match self.private_nic {
            Some(_) => RealSource::anywhere(net),
            None => RealSource::toward(net),
        };
        run(tool(rules.family), &self.reply_rule(&source))?;
        Ok(true)
    }

    /// Queues the forwarded packets from `source` (the replies to rewrite), from the
    /// private side (`private_NIC`) when it is named, else from the interface of the route
    /// to the source when known.
    fn reply_rule(&self, source: &RealSource) -> Vec<String> {
        let mut command = args(&["-A", FORWARD_CHAIN, "-s", &source.net.to_string()]);
        if let Some(nic) = self.private_nic.as_ref().or(source.interface.as_ref()) {
            command.extend(["-i".to_string(), nic.clone()]);
        }
        command.extend(self.queue_target());
        command
    }

    fn remove(&self) {
        for rules in &self.families {
            remove_family(rules.family);
        }
    }
}

/// Installed rules, removed when this is dropped: no exit path of the master can forget
/// them (a panic unwinds through it too; only SIGKILL leaves them, and the next start
/// replaces what a killed run left).
#[derive(Debug)]
pub struct InstalledRules {
    set: RuleSet,
}

impl Drop for InstalledRules {
    fn drop(&mut self) {
        self.set.remove();
        log::info!("rules removed");
    }
}

/// Removes our jumps and chains for one family; a missing piece is not an error (that is
/// the state we want).
pub fn remove_family(family: Family) {
    for (builtin, chain) in CHAINS {
        // A jump may have been added twice by hand; remove every copy.
        while run(tool(family), &args(&["-D", builtin, "-j", chain])).is_ok() {}
        let _ = run(tool(family), &args(&["-F", chain]));
        let _ = run(tool(family), &args(&["-X", chain]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues `first..=last`, no family installed (the tests build their own).
    fn rule_set(first_queue: u16, last_queue: u16, forward: Forward) -> RuleSet {
        RuleSet {
            families: vec![],
            first_queue,
            last_queue,
            forward,
            private_nic: None,
        }
    }

    /// The commands installing `rules`, each as one line.
    fn installed(set: &RuleSet, rules: &FamilyRules) -> Vec<String> {
        set.install_commands(rules)
            .iter()
            .map(|c| c.join(" "))
            .collect()
    }

    #[test]
    fn ipv6_rules_keep_neighbour_discovery_out_and_balance_over_the_queues() {
        let set = rule_set(0, 1, Forward::Userspace);
        let rules = FamilyRules {
            family: Family::V6,
            vip: "fd00:100::1".parse().unwrap(),
            real_sources: vec![RealSource::anywhere(IpNet {
                addr: "fd00:19::11".parse().unwrap(),
                prefix_len: 128,
            })],
        };
        let commands = installed(&set, &rules);
        let is_ndp = |c: &&String| c.contains("--icmpv6-type") && c.contains("-j RETURN");
        assert_eq!(commands.iter().filter(is_ndp).count(), 5);
        let queue_vip = commands
            .iter()
            .position(|c| c.contains("-d fd00:100::1 -j NFQUEUE --queue-balance 0:1"))
            .expect("VIP rule");
        let last_ndp = commands.iter().rposition(|c| is_ndp(&c)).unwrap();
        assert!(last_ndp < queue_vip, "NDP exclusions must come first");
        assert!(commands
            .iter()
            .any(|c| c
                .ends_with("-A LOADED-FORWARD -s fd00:19::11/128 -j NFQUEUE --queue-balance 0:1")));
        assert!(commands.iter().all(|c| c.starts_with("-w -t mangle")));
        let local_errors: Vec<&str> = commands
            .iter()
            .filter_map(|c| c.strip_prefix("-w -t mangle -A LOADED-OUTPUT "))
            .collect();
        assert_eq!(
            local_errors,
            (1..=4)
                .map(|t| format!("-p ipv6-icmp --icmpv6-type {t} -j NFQUEUE --queue-balance 0:1"))
                .collect::<Vec<_>>()
        );
        // The jumps come last: the chains are complete before traffic enters them.
        let jumps: Vec<&String> = commands[commands.len() - 3..].iter().collect();
        assert_eq!(
            jumps,
            [
                "-w -t mangle -I PREROUTING 1 -j LOADED-PREROUTING",
                "-w -t mangle -I FORWARD 1 -j LOADED-FORWARD",
                "-w -t mangle -I OUTPUT 1 -j LOADED-OUTPUT",
            ]
        );
    }

    #[test]
    fn ipv4_queues_the_balancers_own_icmp_errors_from_output() {
        let set = rule_set(2, 2, Forward::Userspace);
        let rules = FamilyRules {
            family: Family::V4,
            vip: "198.18.100.1".parse().unwrap(),
            real_sources: vec![],
        };
        let commands = installed(&set, &rules);
        assert!(commands.contains(&"-w -t mangle -N LOADED-OUTPUT".to_string()));
        for icmp_type in [3, 11, 12] {
            let rule = format!(
                "-w -t mangle -A LOADED-OUTPUT -p icmp --icmp-type {icmp_type} -j NFQUEUE --queue-num 2"
            );
            assert!(commands.contains(&rule), "{rule} missing in {commands:#?}");
        }
        let queued_types = commands
            .iter()
            .filter(|c| c.contains("-A LOADED-OUTPUT"))
            .count();
        assert_eq!(queued_types, 3);
    }

    #[test]
    fn a_server_added_by_a_reload_gets_the_reply_rule_of_the_others() {
        let set = rule_set(0, 1, Forward::Userspace);
        assert_eq!(
            set.reply_rule(&RealSource::anywhere(host("fd00:19::14".parse().unwrap())))
                .join(" "),
            "-w -t mangle -A LOADED-FORWARD -s fd00:19::14/128 -j NFQUEUE --queue-balance 0:1"
        );
        // No family: nothing to add, nothing run.
        assert!(!set.add_real_source("198.19.0.14".parse().unwrap()).unwrap());
    }

    #[test]
    fn replies_are_queued_from_the_private_nic_only_when_it_is_named() {
        let set = RuleSet {
            private_nic: Some("br0".into()),
            ..rule_set(0, 1, Forward::Userspace)
        };
        assert_eq!(
            set.reply_rule(&RealSource::anywhere(host("198.19.0.14".parse().unwrap())))
                .join(" "),
            "-w -t mangle -A LOADED-FORWARD -s 198.19.0.14/32 -i br0 -j NFQUEUE --queue-balance 0:1"
        );
    }

    #[test]
    fn without_private_nic_replies_are_queued_from_the_interface_of_the_route_to_each_source() {
        let net = |text: &str, prefix_len| IpNet {
            addr: text.parse().unwrap(),
            prefix_len,
        };
        let rules = FamilyRules {
            family: Family::V4,
            vip: "198.18.100.1".parse().unwrap(),
            real_sources: vec![
                RealSource {
                    net: net("198.19.0.11", 32),
                    interface: Some("eth1".into()),
                },
                // No route to it was found: from any interface, as before.
                RealSource::anywhere(net("198.19.7.12", 32)),
                RealSource {
                    net: net("198.19.0.0", 16),
                    interface: Some("eth2".into()),
                },
            ],
        };
        let replies = |set: &RuleSet| -> Vec<String> {
            installed(set, &rules)
                .into_iter()
                .filter(|c| c.contains("-A LOADED-FORWARD"))
                .collect()
        };
        let queue = "-j NFQUEUE --queue-balance 0:1";
        assert_eq!(
            replies(&rule_set(0, 1, Forward::Userspace)),
            [
                format!("-w -t mangle -A LOADED-FORWARD -s 198.19.0.11/32 -i eth1 {queue}"),
                format!("-w -t mangle -A LOADED-FORWARD -s 198.19.7.12/32 {queue}"),
                format!("-w -t mangle -A LOADED-FORWARD -s 198.19.0.0/16 -i eth2 {queue}"),
            ]
        );
        // A named private_NIC is the interface of every reply rule.
        let named = RuleSet {
            private_nic: Some("br0".into()),
            ..rule_set(0, 1, Forward::Userspace)
        };
        assert!(
            replies(&named)
                .iter()
                .all(|c| c.contains(" -i br0 -j NFQUEUE")),
            "{:?}",
            replies(&named)
        );
    }

    #[test]
    fn a_single_queue_uses_queue_num() {
        let set = rule_set(3, 3, Forward::Userspace);
        assert_eq!(set.queue_target().join(" "), "-j NFQUEUE --queue-num 3");
    }

    #[test]
    fn kernel_mode_queues_only_undecided_connections_and_no_replies() {
        let set = rule_set(0, 1, Forward::Kernel);
        let rules = FamilyRules {
            family: Family::V4,
            vip: "198.18.100.1".parse().unwrap(),
            real_sources: vec![RealSource::anywhere(IpNet {
                addr: "198.19.0.11".parse().unwrap(),
                prefix_len: 32,
            })],
        };
        let commands = installed(&set, &rules);
        assert_eq!(
            commands,
            [
                "-w -t mangle -N LOADED-PREROUTING",
                "-w -t mangle -A LOADED-PREROUTING -d 198.18.100.1 -m connmark ! --mark 0x4c440000/0xffff0000 -j NFQUEUE --queue-balance 0:1",
                "-w -t mangle -I PREROUTING 1 -j LOADED-PREROUTING",
            ]
        );
    }
}
