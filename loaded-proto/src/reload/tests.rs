use super::*;
use crate::balancing::{Backend, Strategy};
use crate::config::Config;
use std::net::IpAddr;
use std::time::Duration;

const BASE: &str = "VIP4=198.18.100.1\nVIP6=fd00:100::1\nserver4=198.19.0.11\n\
                    server4=198.19.0.12 weight=2\nserver6=fd00:19::11\nRIP4=198.19.0.0/24\n";

fn config(extra: &str) -> Config {
    Config::parse(&format!("{BASE}{extra}"), "test.conf")
        .unwrap()
        .config
}

fn with_servers(servers: &str, extra: &str) -> Config {
    let text = format!("VIP4=198.18.100.1\nVIP6=fd00:100::1\n{servers}RIP4=198.19.0.0/24\n{extra}");
    Config::parse(&text, "test.conf").unwrap().config
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn the_same_config_changes_nothing() {
    let d = diff(&config(""), &config(""));
    assert_eq!(d, ConfigDiff::default());
    assert!(!d.has_live_changes());
}

#[test]
fn servers_added_removed_and_reweighted_are_live() {
    let new = with_servers(
        "server4=198.19.0.12 weight=5\nserver4=198.19.0.14\nserver6=fd00:19::11\n",
        "",
    );
    let d = diff(&config(""), &new);
    assert_eq!(
        d.added,
        [Backend {
            addr: addr("198.19.0.14"),
            weight: 1
        }]
    );
    assert_eq!(d.removed, [addr("198.19.0.11")]);
    assert_eq!(
        d.reweighted,
        [Reweighted {
            addr: addr("198.19.0.12"),
            from: 2,
            to: 5
        }]
    );
    assert!(!d.reordered);
    assert!(d.needs_restart.is_empty());
    assert!(d.has_live_changes());
}

#[test]
fn a_new_order_of_the_same_servers_is_a_live_change() {
    let new = with_servers(
        "server4=198.19.0.12 weight=2\nserver4=198.19.0.11\nserver6=fd00:19::11\n",
        "",
    );
    let d = diff(&config(""), &new);
    assert!(d.reordered && d.added.is_empty() && d.removed.is_empty());
    assert!(d.has_live_changes());
}

#[test]
fn balancing_and_health_settings_are_live() {
    let new = config(
        "strategy=maglev\nflow_timeout=60\nport_alive=8080\ncheck_cycle=5\ncheck_timeout=1\n\
         rise=1\nfall=1\nbroadcast=198.19.0.255\n",
    );
    let d = diff(&config(""), &new);
    assert_eq!(
        d.live,
        [
            "strategy",
            "flow_timeout",
            "port_alive",
            "check_cycle",
            "check_timeout",
            "rise",
            "fall",
            "broadcast"
        ]
    );
    assert!(d.needs_restart.is_empty());
    let applied = ConfigDiff::applied(&config(""), &new);
    assert_eq!(applied, new, "everything in it was live");
}

#[test]
fn process_queue_and_rule_settings_need_a_restart_and_keep_their_running_values() {
    let running = config("");
    let text = "VIP4=198.18.100.2\nVIP6=fd00:100::1\nserver4=198.19.0.11\n\
                server4=198.19.0.12 weight=2\nserver4=198.19.0.13\nserver6=fd00:19::11\n\
                RIP4=198.19.1.0/24\nstickiness=flow\n\
                maglev_seed=0123456789abcdef0123456789abcdef\nmax_flows=4096\nnfq_len=100\n\
                FIRST_CORE=0\nLAST_CORE=0\nforward=kernel\nfailover\n\
                pidfile=/run/other.pid\nchroot=/var/empty\nuser=daemon\nlog_socket=/run/log\n\
                control_socket=/run/other/control.sock\ncontrol_group=adm\n";
    let new = Config::parse(text, "test.conf").unwrap().config;
    let d = diff(&running, &new);
    assert_eq!(
        d.needs_restart,
        [
            "VIP4",
            "stickiness",
            "maglev_seed",
            "max_flows",
            "nfq_len",
            "FIRST_CORE",
            "LAST_CORE",
            "forward",
            "failover",
            "RIP4",
            "pidfile",
            "chroot",
            "user",
            "log_socket",
            "control_socket",
            "control_group"
        ]
    );
    let applied = ConfigDiff::applied(&running, &new);
    // The server is live; everything else is the running config's.
    assert_eq!(applied.servers4, new.servers4);
    assert_eq!(
        applied,
        Config {
            servers4: new.servers4.clone(),
            ..running
        }
    );
}

#[test]
fn settings_for_the_children_follow_the_config() {
    let new = config("strategy=weighted\nflow_timeout=60\ncheck_cycle=5\n");
    let balancing = BalancingSettings::new(&new, vec![addr("198.19.0.13")]);
    assert_eq!(balancing.backends, new.backends());
    assert_eq!(balancing.strategy, Strategy::Weighted);
    assert_eq!(balancing.flow_timeout, Duration::from_secs(60));
    assert_eq!(balancing.removed, [addr("198.19.0.13")]);

    let health = HealthSettings::new(&new, vec![addr("198.19.0.13")]);
    assert_eq!(health.check_cycle, Duration::from_secs(5));
    assert_eq!(health.servers, new.backends());
    assert_eq!(health.withdrawn, [addr("198.19.0.13")]);
}
