//! The sample configs shipped in etc/ must load, and mean what their comments say.

use loaded_proto::balancing::{Backend, Stickiness, Strategy};
use loaded_proto::config::{Config, Rules};
use std::path::PathBuf;
use std::time::Duration;

fn sample(name: &str) -> Config {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../etc")
        .join(name);
    let checked = Config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(checked.warnings, [], "{name}");
    checked.config
}

fn backend(addr: &str, weight: u32) -> Backend {
    Backend {
        addr: addr.parse().unwrap(),
        weight,
    }
}

#[test]
fn annotated_sample_of_ours() {
    let config = sample("loaded.conf");
    assert_eq!(config.vip4, Some("198.18.0.10".parse().unwrap()));
    assert_eq!(config.vip6, Some("fd00:18::10".parse().unwrap()));
    assert_eq!(
        config.backends(),
        [
            backend("198.19.0.11", 1),
            backend("198.19.0.12", 1),
            backend("198.19.0.13", 2),
            backend("fd00:19::11", 1),
            backend("fd00:19::12", 2),
        ]
    );
    assert_eq!(config.strategy, Strategy::Weighted);
    assert_eq!(config.stickiness, Stickiness::Client);
    assert_eq!(config.check_cycle, Duration::from_secs(10));
    assert_eq!(config.broadcast6, Some("ff02::1".parse().unwrap()));
    assert_eq!(config.private_nic.as_deref(), Some("eth1"));
    assert!(config.failover);
    assert_eq!(config.rip4.unwrap().to_string(), "198.19.0.0/16");
    assert_eq!(config.rip6.unwrap().to_string(), "fd00:19::/64");
    assert_eq!(config.rules, Rules::Auto);
}

/// Every default the annotated sample states in a commented-out line is the real default.
#[test]
fn annotated_sample_states_the_real_defaults() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../etc/loaded.conf");
    let text = std::fs::read_to_string(path).unwrap();
    let listing = sample("loaded.conf").to_string();
    // `#key = value` with no space after the `#`; the cores, the maglev seed (its default
    // depends on the VIPs) and script keys are examples.
    let examples = [
        "FIRST_CORE",
        "LAST_CORE",
        "maglev_seed",
        "VIP4net",
        "public_NIC",
    ];
    let stated_defaults = text
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|line| !line.starts_with([' ', '#']))
        .filter_map(|line| line.split_once(" = "))
        .filter(|(key, _)| !examples.contains(key));
    let mut checked = 0;
    for (key, value) in stated_defaults {
        let in_effect = format!("{key}={value}");
        assert!(
            listing.lines().any(|line| line == in_effect),
            "{in_effect} is not in effect:\n{listing}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} defaults found");
}

#[test]
fn original_style_ipv4_script() {
    let config = sample("loaded.config");
    assert_eq!(config.vip4, Some("198.18.0.10".parse().unwrap()));
    assert_eq!(config.vip6, None);
    assert_eq!(
        config.servers4,
        [
            backend("198.19.0.11", 1),
            backend("198.19.0.12", 1),
            backend("198.19.0.13", 2)
        ]
    );
    assert_eq!(config.worker_cores(&[0, 1, 2, 3, 4, 5, 6, 7]), Ok(0..=1));
    assert_eq!(config.strategy, Strategy::Weighted);
    assert_eq!(config.broadcast, Some("198.19.255.255".parse().unwrap()));
    assert_eq!(config.rules, Rules::Manual);
    assert!(!config.failover);
    assert_eq!(config.script.vip4_net.as_deref(), Some("24"));
    assert_eq!(config.script.private_gw.as_deref(), Some("198.19.0.1/16"));
}

#[test]
fn original_style_ipv6_script() {
    let config = sample("loaded.config6");
    assert_eq!(config.vip4, None);
    assert_eq!(config.vip6, Some("fd00:18::10".parse().unwrap()));
    assert_eq!(
        config.servers6,
        [backend("fd00:19::11", 1), backend("fd00:19::12", 1)]
    );
    assert_eq!(config.strategy, Strategy::Maglev);
    assert_eq!(config.broadcast6, Some("ff02::1".parse().unwrap()));
    assert_eq!(config.private_nic.as_deref(), Some("eth1"));
    assert!(config.failover);
    assert_eq!(config.rip6.unwrap().to_string(), "fd00:19::/64");
}

#[test]
fn samples_survive_restricting_to_their_family() {
    let mut config = sample("loaded.conf");
    config.restrict_family(false, true).unwrap();
    assert_eq!(config.backends().len(), 2);
    assert!(sample("loaded.config")
        .restrict_family(false, true)
        .is_err());
}
