//! How a reloaded config differs from the running one, and the config loaded then runs.

use crate::balancing::Backend;
use crate::config::Config;
use std::net::IpAddr;

/// What a reload changes. Servers are compared by address: a server in both configs is
/// kept (its clients stay), whatever its weight or place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// In the new config only, in its order.
    pub added: Vec<Backend>,
    /// In the running config only, in its order.
    pub removed: Vec<IpAddr>,
    pub reweighted: Vec<Reweighted>,
    /// The kept servers are listed in another order (round robin follows it).
    pub reordered: bool,
    /// Other settings that change live, by config key.
    pub live: Vec<&'static str>,
    /// Settings that changed but take effect only at a restart, by config key; the
    /// running values stay.
    pub needs_restart: Vec<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reweighted {
    pub addr: IpAddr,
    pub from: u32,
    pub to: u32,
}

impl ConfigDiff {
    /// Whether anything is applied without a restart.
    pub fn has_live_changes(&self) -> bool {
        !self.added.is_empty()
            || !self.removed.is_empty()
            || !self.reweighted.is_empty()
            || self.reordered
            || !self.live.is_empty()
    }

    /// The config loaded runs after the reload: `running` with the live settings of `new`.
    /// Children started later get this one, so they agree with those that were reloaded.
    pub fn applied(running: &Config, new: &Config) -> Config {
        Config {
            servers4: new.servers4.clone(),
            servers6: new.servers6.clone(),
            strategy: new.strategy,
            flow_timeout: new.flow_timeout,
            port_alive: new.port_alive,
            check_cycle: new.check_cycle,
            check_timeout: new.check_timeout,
            rise: new.rise,
            fall: new.fall,
            broadcast: new.broadcast,
            broadcast6: new.broadcast6,
            ..running.clone()
        }
    }
}

/// Compares the running config with a newly read one.
pub fn diff(running: &Config, new: &Config) -> ConfigDiff {
    let old_servers = running.backends();
    let new_servers = new.backends();
    let weight_in = |servers: &[Backend], addr: IpAddr| {
        servers.iter().find(|b| b.addr == addr).map(|b| b.weight)
    };
    let added = new_servers
        .iter()
        .filter(|b| weight_in(&old_servers, b.addr).is_none())
        .copied()
        .collect();
    let removed = old_servers
        .iter()
        .filter(|b| weight_in(&new_servers, b.addr).is_none())
        .map(|b| b.addr)
        .collect();
    let reweighted = new_servers
        .iter()
        .filter_map(|b| {
            let from = weight_in(&old_servers, b.addr)?;
            (from != b.weight).then_some(Reweighted {
                addr: b.addr,
                from,
                to: b.weight,
            })
        })
        .collect();
    let kept_order = |servers: &[Backend], other: &[Backend]| -> Vec<IpAddr> {
        servers
            .iter()
            .filter(|b| weight_in(other, b.addr).is_some())
            .map(|b| b.addr)
            .collect()
    };
    let reordered =
        kept_order(&old_servers, &new_servers) != kept_order(&new_servers, &old_servers);

    let mut live = Vec::new();
    let changed = |key: &'static str, differs: bool, into: &mut Vec<&'static str>| {
        if differs {
            into.push(key);
        }
    };
    changed("strategy", running.strategy != new.strategy, &mut live);
    changed(
        "flow_timeout",
        running.flow_timeout != new.flow_timeout,
        &mut live,
    );
    changed(
        "port_alive",
        running.port_alive != new.port_alive,
        &mut live,
    );
    changed(
        "check_cycle",
        running.check_cycle != new.check_cycle,
        &mut live,
    );
    changed(
        "check_timeout",
        running.check_timeout != new.check_timeout,
        &mut live,
    );
    changed("rise", running.rise != new.rise, &mut live);
    changed("fall", running.fall != new.fall, &mut live);
    changed("broadcast", running.broadcast != new.broadcast, &mut live);
    changed(
        "broadcast6",
        running.broadcast6 != new.broadcast6,
        &mut live,
    );

    let mut restart = Vec::new();
    let pairs: [(&'static str, bool); 20] = [
        ("VIP4", running.vip4 != new.vip4),
        ("VIP6", running.vip6 != new.vip6),
        ("stickiness", running.stickiness != new.stickiness),
        // Restart-only: a live change would move every flow without a mapping at once, and
        // nodes behind ECMP would disagree until each was reloaded.
        ("maglev_seed", running.maglev_seed != new.maglev_seed),
        ("max_flows", running.max_flows != new.max_flows),
        ("nfq_len", running.nfq_len != new.nfq_len),
        ("FIRST_CORE", running.first_core != new.first_core),
        ("LAST_CORE", running.last_core != new.last_core),
        ("rules", running.rules != new.rules),
        ("forward", running.forward != new.forward),
        ("failover", running.failover != new.failover),
        ("RIP4", running.rip4 != new.rip4),
        ("RIP6", running.rip6 != new.rip6),
        ("private_NIC", running.private_nic != new.private_nic),
        ("pidfile", running.pidfile != new.pidfile),
        ("chroot", running.chroot != new.chroot),
        ("user", running.user != new.user),
        ("log_socket", running.log_socket != new.log_socket),
        // The socket is bound once, as root, before anything is dropped.
        (
            "control_socket",
            running.control_socket != new.control_socket,
        ),
        ("control_group", running.control_group != new.control_group),
    ];
    for (key, differs) in pairs {
        changed(key, differs, &mut restart);
    }
    ConfigDiff {
        added,
        removed,
        reweighted,
        reordered,
        live,
        needs_restart: restart,
    }
}
