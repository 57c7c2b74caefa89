//! Rules that involve more than one setting, checked once the whole file is read.

use super::error::ConfigError;
use super::keys::Key;
use super::model::{Config, Rules};
use super::parse::SourceLines;
use super::problem::ConfigProblem;
use crate::balancing::{Backend, IpNet};
use crate::forwarding::Forward;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

pub fn check(config: &Config, lines: &SourceLines, file: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut report = |line: Option<usize>, problem: ConfigProblem| {
        errors.push(ConfigError {
            file: file.to_owned(),
            line,
            problem,
        });
    };
    let no_vip_at_all = config.vip4.is_none() && config.vip6.is_none();
    if no_vip_at_all && !lines.failed(Key::Vip4) && !lines.failed(Key::Vip6) {
        report(None, ConfigProblem::NoVip);
    }
    for family in Family::both(config, lines) {
        check_family(&family, config.failover, lines, no_vip_at_all, &mut report);
    }
    check_cores(config, lines, &mut report);
    check_timing(config, lines, &mut report);
    check_discovery(config, lines, &mut report);
    check_forwarding(config, lines, &mut report);
    errors
}

/// What the rules need to know of one address family, so they are written once for both.
struct Family<'a> {
    vip_key: Key,
    server_key: Key,
    rip_key: Key,
    vip: Option<IpAddr>,
    servers: &'a [Backend],
    server_lines: &'a [usize],
    rip: Option<IpNet>,
}

impl<'a> Family<'a> {
    fn both(config: &'a Config, lines: &'a SourceLines) -> [Family<'a>; 2] {
        [
            Family {
                vip_key: Key::Vip4,
                server_key: Key::Server4,
                rip_key: Key::Rip4,
                vip: config.vip4.map(IpAddr::V4),
                servers: &config.servers4,
                server_lines: &lines.servers4,
                rip: config.rip4,
            },
            Family {
                vip_key: Key::Vip6,
                server_key: Key::Server6,
                rip_key: Key::Rip6,
                vip: config.vip6.map(IpAddr::V6),
                servers: &config.servers6,
                server_lines: &lines.servers6,
                rip: config.rip6,
            },
        ]
    }
}

fn check_family(
    family: &Family,
    failover: bool,
    lines: &SourceLines,
    no_vip_at_all: bool,
    report: &mut impl FnMut(Option<usize>, ConfigProblem),
) {
    let (vip_name, server_name, rip_name) = (
        family.vip_key.name(),
        family.server_key.name(),
        family.rip_key.name(),
    );
    let servers = family
        .servers
        .iter()
        .zip(family.server_lines.iter().copied());
    match family.vip {
        // With no VIP at all the file-level error says it; one more per server is noise.
        None if no_vip_at_all || lines.failed(family.vip_key) => {}
        None => {
            for (server, line) in servers.clone() {
                report(
                    Some(line),
                    ConfigProblem::ServerWithoutVip {
                        server_key: server_name,
                        vip_key: vip_name,
                        server: server.addr,
                    },
                );
            }
        }
        Some(vip) => {
            let hot_plug_fills_it = failover && family.rip.is_some();
            if family.servers.is_empty() && !hot_plug_fills_it && !lines.failed(family.server_key) {
                report(
                    lines.line_of(family.vip_key),
                    ConfigProblem::VipWithoutServers {
                        vip_key: vip_name,
                        vip,
                        server_key: server_name,
                        rip_key: rip_name,
                    },
                );
            }
            for (server, line) in servers.clone().filter(|(server, _)| server.addr == vip) {
                report(
                    Some(line),
                    ConfigProblem::ServerIsVip {
                        server_key: server_name,
                        vip_key: vip_name,
                        server: server.addr,
                    },
                );
            }
        }
    }
    let mut first_listed: HashMap<IpAddr, usize> = HashMap::new();
    for (server, line) in servers {
        if let Some(first) = first_listed.get(&server.addr) {
            report(
                Some(line),
                ConfigProblem::ServerListedTwice {
                    server_key: server_name,
                    server: server.addr,
                    first_line: *first,
                },
            );
        } else {
            first_listed.insert(server.addr, line);
        }
    }
}

fn check_cores(
    config: &Config,
    lines: &SourceLines,
    report: &mut impl FnMut(Option<usize>, ConfigProblem),
) {
    if let (Some(first), Some(last)) = (config.first_core, config.last_core) {
        if first > last {
            report(
                lines.line_of(Key::LastCore),
                ConfigProblem::LastCoreBelowFirst {
                    first,
                    last,
                    first_line: lines.line_of(Key::FirstCore),
                },
            );
        }
    }
}

/// Only an explicit check_timeout can fail this: the default adapts to the cycle.
fn check_timing(
    config: &Config,
    lines: &SourceLines,
    report: &mut impl FnMut(Option<usize>, ConfigProblem),
) {
    if lines.failed(Key::CheckTimeout) || lines.failed(Key::CheckCycle) {
        return;
    }
    let Some(timeout_line) = lines.line_of(Key::CheckTimeout) else {
        return;
    };
    if config.check_timeout >= config.check_cycle {
        report(
            Some(timeout_line),
            ConfigProblem::TimeoutNotShorterThanCycle {
                timeout: config.check_timeout,
                cycle: config.check_cycle,
                cycle_line: lines.line_of(Key::CheckCycle),
            },
        );
    }
}

/// A link-local destination means nothing without an interface to send it on.
fn check_discovery(
    config: &Config,
    lines: &SourceLines,
    report: &mut impl FnMut(Option<usize>, ConfigProblem),
) {
    let Some(broadcast6) = config.broadcast6 else {
        return;
    };
    if is_link_scoped(broadcast6) && config.private_nic.is_none() && !lines.failed(Key::PrivateNic)
    {
        report(
            lines.line_of(Key::Broadcast6),
            ConfigProblem::LinkLocalBroadcastWithoutNic { broadcast6 },
        );
    }
}

/// Kernel mode lives on rules the master keeps in step with the servers (the nftables map
/// grows with every hot-plugged server), so an admin's own rules cannot stand in for them.
fn check_forwarding(
    config: &Config,
    lines: &SourceLines,
    report: &mut impl FnMut(Option<usize>, ConfigProblem),
) {
    if config.forward == Forward::Kernel && config.rules == Rules::Manual {
        report(
            lines.line_of(Key::Forward),
            ConfigProblem::KernelForwardWithManualRules {
                rules_line: lines.line_of(Key::Rules),
            },
        );
    }
}

/// fe80::/10 and ff02::/16-style link-scoped groups: an address that means something only
/// on one link, so it needs the interface (`private_NIC`) to be used. The prober applies
/// the same rule to `broadcast6`.
pub fn is_link_scoped(addr: Ipv6Addr) -> bool {
    let first = addr.segments()[0];
    let link_local_unicast = first & 0xffc0 == 0xfe80;
    let link_local_multicast = first & 0xff0f == 0xff02;
    link_local_unicast || link_local_multicast
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_scope() {
        assert!(is_link_scoped("ff02::1".parse().unwrap()));
        assert!(is_link_scoped("fe80::1".parse().unwrap()));
        assert!(!is_link_scoped("ff05::1".parse().unwrap()));
        assert!(!is_link_scoped("fd00::1".parse().unwrap()));
    }
}
