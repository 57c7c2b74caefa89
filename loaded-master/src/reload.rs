//! SIGHUP: read the config file again and work out what the running balancer applies.
//!
//! The new file is read and checked whole; any error refuses the whole reload (logged with
//! file and line) and nothing changes. Settings that need a restart are logged and keep
//! their running values (`ConfigDiff::applied`). Before any child hears of the reload,
//! the master makes the shared state ready for it: new servers get their directory slots
//! (in config order, as at start) and, in userspace mode with `rules=auto`, the rule that
//! queues their replies; removed servers are marked withdrawn in the directory, so that
//! every worker (also one started later) moves their clients and refuses to add them back
//! from a health message older than the reload.

use crate::config_file::ConfigSource;
use crate::rules::{RuleError, RuleSet};
use crate::server_slots::ServerSlots;
use loaded_proto::config::Checked;
use loaded_proto::config::Config;
use loaded_proto::reload::{diff, BalancingSettings, ConfigDiff, HealthSettings};
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::IpAddr;

pub struct Reloader {
    source: ConfigSource,
    /// The master's own view of the directory (the workers map the same region).
    slots: ServerSlots,
    /// Userspace mode with `rules=auto`: where new servers' reply rules go.
    rules: Option<RuleSet>,
    /// Servers that have a reply rule (configured at start or added since). The rule of a
    /// removed server stays until the restart: a late reply of it still leaves with the
    /// VIP as source instead of its own address.
    with_rule: HashSet<IpAddr>,
    /// Every server a reload removed and no later one put back.
    withdrawn: BTreeSet<IpAddr>,
}

/// What the children are told, and the config the master runs from now on.
pub struct Plan {
    pub config: Config,
    pub diff: ConfigDiff,
    pub balancing: BalancingSettings,
    pub health: HealthSettings,
}

/// Why a reload was refused; nothing of it was applied.
#[derive(Debug)]
pub enum ReloadError {
    /// The file could not be read or is invalid.
    Load(crate::config_file::LoadError),
    /// The rule that queues a new server's replies could not be added.
    Rule { addr: IpAddr, source: RuleError },
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Load(e) => write!(f, "{e}"),
            ReloadError::Rule { addr, source } => {
                write!(f, "cannot queue the replies of new server {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for ReloadError {}

impl Reloader {
    pub fn new(
        source: ConfigSource,
        slots: ServerSlots,
        rules: Option<RuleSet>,
        config: &Config,
    ) -> Reloader {
        Reloader {
            source,
            slots,
            rules,
            with_rule: config.backends().iter().map(|b| b.addr).collect(),
            withdrawn: BTreeSet::new(),
        }
    }

    /// The directory slots, for the status.
    pub fn slots_mut(&mut self) -> &mut ServerSlots {
        &mut self.slots
    }

    /// Servers withdrawn so far, for a prober started later.
    pub fn withdrawn(&self) -> Vec<IpAddr> {
        self.withdrawn.iter().copied().collect()
    }

    /// Reads the file and prepares the shared state; `Ok(None)` when nothing live changed.
    pub fn prepare(&mut self, running: &Config) -> Result<Option<Plan>, ReloadError> {
        let Checked {
            config: new,
            warnings,
        } = self.source.reload().map_err(ReloadError::Load)?;
        for warning in &warnings {
            log::warn!("{warning}");
        }
        let diff = diff(running, &new);
        for key in &diff.needs_restart {
            log::warn!("reload: {key} changed; it takes effect at the next restart, the running value stays");
        }
        if !diff.has_live_changes() {
            return Ok(None);
        }
        // The rules first: the only step that can fail, and nothing depends on it yet.
        for backend in &diff.added {
            if self.with_rule.contains(&backend.addr) {
                continue;
            }
            if let Some(rules) = &self.rules {
                rules
                    .add_real_source(backend.addr)
                    .map_err(|source| ReloadError::Rule {
                        addr: backend.addr,
                        source,
                    })?;
            }
            self.with_rule.insert(backend.addr);
        }
        let config = ConfigDiff::applied(running, &new);
        for backend in config.backends() {
            self.withdrawn.remove(&backend.addr);
            if let Err(full) = self.slots.set_withdrawn(backend.addr, false) {
                log::error!("server {}: {full}", backend.addr);
            }
        }
        for addr in &diff.removed {
            self.withdrawn.insert(*addr);
            if let Err(full) = self.slots.set_withdrawn(*addr, true) {
                log::error!("server {addr}: {full}");
            }
        }
        Ok(Some(Plan {
            balancing: BalancingSettings::new(&config, diff.removed.clone()),
            health: HealthSettings::new(&config, self.withdrawn()),
            config,
            diff,
        }))
    }
}

/// One line on what a reload changes.
pub fn describe(diff: &ConfigDiff) -> String {
    let addrs = |list: &mut dyn Iterator<Item = IpAddr>| {
        list.map(|a| a.to_string()).collect::<Vec<_>>().join(" ")
    };
    let mut parts = Vec::new();
    if !diff.added.is_empty() {
        parts.push(format!(
            "added {}",
            addrs(&mut diff.added.iter().map(|b| b.addr))
        ));
    }
    if !diff.removed.is_empty() {
        parts.push(format!(
            "removed {}",
            addrs(&mut diff.removed.iter().copied())
        ));
    }
    for w in &diff.reweighted {
        parts.push(format!("{} weight {} -> {}", w.addr, w.from, w.to));
    }
    if diff.reordered {
        parts.push("servers reordered".into());
    }
    if !diff.live.is_empty() {
        parts.push(format!("changed {}", diff.live.join(" ")));
    }
    parts.join(", ")
}
