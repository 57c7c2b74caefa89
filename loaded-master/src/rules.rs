//! The NFQUEUE rules the master installs and removes.
//!
//! Everything lives in two chains of our own per family in the mangle table: VIP traffic is
//! queued in PREROUTING (before routing, so the rewritten destination is what gets routed),
//! replies from the real servers in FORWARD. The only change to the built-in chains is one
//! jump rule each. Chains named LOADED-* are ours by definition: a leftover from a run that
//! was killed is removed at start; nothing else is ever flushed or changed.
//!
//! No --queue-bypass: with no worker bound, a VIP packet is dropped (the client retransmits)
//! instead of being answered by the balancer's own stack with a reset, and a server's reply
//! never leaks out with its real address.
//!
//! Kernel mode (`forward=kernel`) queues only connections that carry no loaded mark yet
//! (`-m connmark ! --mark TAG/MASK`: whatever other bits another program may use, a
//! connection is ours once its high half is our tag), and has no FORWARD chain: conntrack
//! translates the replies. Not `ct state NEW`: a one-way UDP flow stays NEW and would be
//! queued packet by packet.

use loaded_proto::balancing::IpNet;
use loaded_proto::forwarding::{Forward, MARK_TAG, MARK_TAG_MASK};
use loaded_proto::wire::Family;
use std::fmt;
use std::net::IpAddr;
use std::process::Command;

pub const PREROUTING_CHAIN: &str = "LOADED-PREROUTING";
pub const FORWARD_CHAIN: &str = "LOADED-FORWARD";

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
    pub real_sources: Vec<IpNet>,
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
                commands.push(self.reply_rule(*source));
            }
        }
        commands.push(args(&["-I", "PREROUTING", "1", "-j", PREROUTING_CHAIN]));
        if !kernel {
            commands.push(args(&["-I", "FORWARD", "1", "-j", FORWARD_CHAIN]));
        }
        commands
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
        run(tool(rules.family), &self.real_source_command(addr))?;
        Ok(true)
    }

    fn real_source_command(&self, addr: IpAddr) -> Vec<String> {
        self.reply_rule(IpNet {
            addr,
            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
        })
    }

    /// Queues the forwarded packets from `source` (the replies to rewrite), from the
    /// private side only when it is named.
    fn reply_rule(&self, source: IpNet) -> Vec<String> {
        let mut command = args(&["-A", FORWARD_CHAIN, "-s", &source.to_string()]);
        if let Some(nic) = &self.private_nic {
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
    for (builtin, chain) in [("PREROUTING", PREROUTING_CHAIN), ("FORWARD", FORWARD_CHAIN)] {
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
            real_sources: vec![IpNet {
                addr: "fd00:19::11".parse().unwrap(),
                prefix_len: 128,
            }],
        };
        let commands = installed(&set, &rules);
        let ndp = commands
            .iter()
            .filter(|c| c.contains("--icmpv6-type"))
            .count();
        assert_eq!(ndp, 5);
        let queue_vip = commands
            .iter()
            .position(|c| c.contains("-d fd00:100::1 -j NFQUEUE --queue-balance 0:1"))
            .expect("VIP rule");
        let last_ndp = commands
            .iter()
            .rposition(|c| c.contains("--icmpv6-type"))
            .unwrap();
        assert!(last_ndp < queue_vip, "NDP exclusions must come first");
        assert!(commands
            .iter()
            .any(|c| c
                .ends_with("-A LOADED-FORWARD -s fd00:19::11/128 -j NFQUEUE --queue-balance 0:1")));
        assert!(commands.iter().all(|c| c.starts_with("-w -t mangle")));
        // The jumps come last: the chains are complete before traffic enters them.
        assert!(commands[commands.len() - 1].contains("-I FORWARD 1 -j LOADED-FORWARD"));
    }

    #[test]
    fn a_server_added_by_a_reload_gets_the_reply_rule_of_the_others() {
        let set = rule_set(0, 1, Forward::Userspace);
        assert_eq!(
            set.real_source_command("fd00:19::14".parse().unwrap())
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
            set.real_source_command("198.19.0.14".parse().unwrap())
                .join(" "),
            "-w -t mangle -A LOADED-FORWARD -s 198.19.0.14/32 -i br0 -j NFQUEUE --queue-balance 0:1"
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
            real_sources: vec![IpNet {
                addr: "198.19.0.11".parse().unwrap(),
                prefix_len: 32,
            }],
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
