use super::*;
use crate::message::MessageKind;

const ROLES: [Role; 3] = [Role::Master, Role::Worker, Role::Prober];

#[test]
fn every_kind_has_a_sender_and_no_role_talks_to_itself() {
    for kind in MessageKind::ALL {
        let senders = ROLES
            .iter()
            .flat_map(|&from| ROLES.iter().map(move |&to| (from, to)))
            .filter(|&(from, to)| from.sends_to(to).contains(kind))
            .count();
        assert!(senders > 0, "{kind} is sent by no role");
    }
    for role in ROLES {
        assert!(role.sends_to(role).is_empty(), "{role} sends to itself");
        assert_eq!(role.entry().role, role, "{role}'s entry is another's");
    }
}

#[test]
fn only_the_master_hands_out_setups_links_and_descriptors() {
    use std::net::Ipv4Addr;
    let setup = Message::ProberLink { worker: 0 };
    assert_eq!(permit(Role::Master, Role::Worker, &setup), Ok(()));
    assert_eq!(permit(Role::Master, Role::Prober, &setup), Ok(()));
    assert_eq!(
        permit(Role::Prober, Role::Worker, &setup),
        Err(OutOfPlace {
            from: Role::Prober,
            to: Role::Worker,
            kind: MessageKind::ProberLink
        })
    );
    for from in [Role::Worker, Role::Prober] {
        for &kind in from.entry().sends.iter().flat_map(|sends| sends.kinds) {
            assert!(
                !matches!(
                    kind,
                    MessageKind::WorkerSetup
                        | MessageKind::ProberSetup
                        | MessageKind::ProberLink
                        | MessageKind::Shutdown
                        | MessageKind::Ping
                ),
                "the {from} may send {kind}"
            );
        }
    }
    // A worker's word on the servers' health is not taken: only the prober's.
    let change = Message::BackendChange {
        update: crate::message::BackendUpdate::Up(Ipv4Addr::new(198, 19, 0, 1).into()),
        reason: crate::message::StateReason::ChecksPassed,
    };
    assert!(permit(Role::Prober, Role::Master, &change).is_ok());
    let refused = permit(Role::Worker, Role::Master, &change).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the worker may not send BackendChange to the master"
    );
}

#[test]
fn the_heartbeat_goes_out_from_the_master_and_comes_back_from_each_child() {
    for child in [Role::Worker, Role::Prober] {
        assert!(permit(Role::Master, child, &Message::Ping).is_ok());
        assert!(permit(child, Role::Master, &Message::Pong).is_ok());
        assert!(permit(child, Role::Master, &Message::Ping).is_err());
        assert!(permit(Role::Master, child, &Message::Pong).is_err());
    }
    assert!(permit(Role::Worker, Role::Prober, &Message::Pong).is_err());
}

#[test]
fn each_child_keeps_one_capability_and_runs_under_its_own_filter() {
    assert_eq!(Role::Master.entry().keeps, Keeps::Everything);
    assert!(Role::Master.entry().seccomp_rules().is_none());
    assert_eq!(
        Role::Worker.entry().keeps,
        Keeps::One(caps::Capability::CAP_NET_ADMIN)
    );
    assert_eq!(
        Role::Prober.entry().keeps,
        Keeps::One(caps::Capability::CAP_NET_RAW)
    );
    let worker = Role::Worker.entry().seccomp_rules().unwrap();
    let prober = Role::Prober.entry().seccomp_rules().unwrap();
    // A worker never gets a new socket; the prober only of some kinds.
    assert!(!worker.contains_key(&libc::SYS_socket));
    assert!(!prober.get(&libc::SYS_socket).unwrap().is_empty());
    assert!(!prober.get(&libc::SYS_ioctl).unwrap().is_empty());
    for rules in [&worker, &prober] {
        for forbidden in [
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_ptrace,
            libc::SYS_kill,
        ] {
            assert!(!rules.contains_key(&forbidden), "{forbidden} is allowed");
        }
        // What every child calls is there too.
        assert!(rules.contains_key(&libc::SYS_recvmsg));
        assert!(!crate::seccomp::compile(rules.clone()).unwrap().is_empty());
    }
}

#[test]
fn binaries_and_config_parts() {
    let binaries: Vec<&str> = TABLE.iter().map(|entry| entry.binary).collect();
    assert_eq!(
        binaries,
        ["loaded-master", "loaded-worker", "loaded-prober"]
    );
    assert_eq!(Role::Worker.entry().config, ConfigPart::Datapath);
    assert_eq!(Role::Prober.entry().config, ConfigPart::Health);
}

fn sample_config() -> crate::config::Config {
    crate::config::Config::parse(
        "VIP4=198.18.100.1\nVIP6=fd00:100::1\nserver4=198.19.0.11\nserver4=198.19.0.14 weight=3\n\
         server6=fd00:19::11\nstrategy=weighted\ncheck_cycle=5\nrise=3\nfall=4\n\
         broadcast=198.19.0.255\nRIP4=198.19.0.0/24\nRIP6=fd00:19::/64\nprivate_NIC=eth1\n\
         failover=yes\nuser=daemon\n",
        "t",
    )
    .unwrap()
    .config
}

#[test]
fn a_worker_gets_what_its_datapath_needs() {
    let config = sample_config();
    let part = WorkerPart::of(&config);
    assert_eq!(part.vip4, config.vip4);
    assert_eq!(part.vip6, config.vip6);
    // Unset in the file: the one derived from the VIPs, as the master would use it.
    assert_eq!(part.maglev_seed, config.maglev_seed());
    assert_eq!(
        part.hotplug_nets,
        vec![config.rip4.unwrap(), config.rip6.unwrap()]
    );
    assert_eq!(part.balancing.backends, config.backends());
    assert_eq!(part.balancing.strategy, config.strategy);
    assert!(part.balancing.removed.is_empty());
}

#[test]
fn the_prober_gets_its_health_settings_rip_and_private_nic_and_no_more() {
    let config = sample_config();
    let withdrawn: Vec<std::net::IpAddr> = vec!["198.19.0.12".parse().unwrap()];
    let part = ProberPart::of(&config, withdrawn.clone());
    assert_eq!(
        part.health,
        crate::reload::HealthSettings::new(&config, withdrawn),
        "the settings a reload sends, and the withdrawn servers"
    );
    assert_eq!(part.health.servers, config.backends());
    assert_eq!((part.rip4, part.rip6), (config.rip4, config.rip6));
    assert_eq!(part.private_nic.as_deref(), Some("eth1"));
}
