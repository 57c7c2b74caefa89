//! Whole files through `Config::parse`: the original's samples, our format, and every error.

use super::test_files::{errors, parse};
use super::*;
use crate::balancing::{Backend, IpNet, Stickiness, Strategy};
use crate::forwarding::Forward;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

/// The original's IPv4 sample, byte for byte (tabs included).
const ORIGINAL_IPV4: &str = "#!/bin/sh
VIP4=192.168.0.11\t\t# virtual IP
VIP4net=24\t\t\t# virtual IP netbits
NS=192.168.0.1\t\t\t# nameserver traffic not balanced!
FIRST_CORE=1\t\t\t# if multicore, which is the first core to use?
LAST_CORE=3
RIP4=10.0.0.0/8\t\t# real IP net
public_NIC=eth0\t\t# interface to outside
private_NIC=eth0\t# interface to real servers
private_GW=10.0.0.254/8\t# gateway for real servers
nfq_len=1000000\t\t# number of max queued packets in kernel
server4=10.0.0.1\t# first IPv4 balanced server
server4=10.0.0.2\t# second IPv4 balanced server
strategy=rr
broadcast=10.255.255.255
port_alive=80
check_cycle=30
#failover
modprobe nfnetlink_queue || true
iptables -t mangle -A PREROUTING -d $VIP4 -j NFQUEUE --queue-balance $FIRST_CORE:$LAST_CORE
ip addr add $VIP4/$VIP4net dev $public_NIC 2>/dev/null || true
for i in $public_NIC $private_NIC \"all\" \"default\"; do
\techo 0 > /proc/sys/net/ipv4/conf/$i/send_redirects
done
echo 1 > /proc/sys/net/ipv4/ip_forward
";

/// The original's IPv6 sample, in its style.
const ORIGINAL_IPV6: &str = "#!/bin/sh
VIP6=4041::11\t\t# virtual IP
VIP6net=16\t\t# virtual IP netbits
FIRST_CORE=0\t\t# if multicore, which is the first core to use?
LAST_CORE=1
RIP6=3031::/16\t\t# real IP net
public_NIC=eth0\t\t# interface to outside
private_NIC=eth1\t# interface to real servers
private_GW=3031::2/16\t# gateway for real servers
nfq_len=1000000\t\t# number of max queued packets in kernel
server6=3031::11\t# first IPv6 balanced server
server6=3031::12\t# second IPv6 balanced server
strategy=weighted
port_alive=80
check_cycle=10
failover
modprobe nfnetlink_queue || true
ip6tables -t mangle -A PREROUTING -d $VIP6 -j NFQUEUE --queue-balance $FIRST_CORE:$LAST_CORE
ip -6 addr add $VIP6/$VIP6net dev $public_NIC 2>/dev/null || true
echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
";

fn backend(addr: &str, weight: u32) -> Backend {
    Backend {
        addr: addr.parse().unwrap(),
        weight,
    }
}

const MINIMAL: &str = "VIP4=198.18.0.10\nserver4=198.19.0.1\n";

#[test]
fn original_ipv4_sample_keeps_its_meaning() {
    let config = parse(ORIGINAL_IPV4);
    assert_eq!(config.vip4, Some(Ipv4Addr::new(192, 168, 0, 11)));
    assert_eq!(config.vip6, None);
    assert_eq!(
        config.servers4,
        [backend("10.0.0.1", 1), backend("10.0.0.2", 1)]
    );
    assert!(config.servers6.is_empty());
    assert_eq!(config.first_core, Some(1));
    assert_eq!(config.last_core, Some(3));
    assert_eq!(
        config.rip4,
        Some(IpNet {
            addr: "10.0.0.0".parse().unwrap(),
            prefix_len: 8
        })
    );
    assert_eq!(config.nfq_len, 1_000_000);
    assert_eq!(config.strategy, Strategy::RoundRobin);
    assert_eq!(config.broadcast, Some(Ipv4Addr::new(10, 255, 255, 255)));
    assert_eq!(config.port_alive, 80);
    assert_eq!(config.check_cycle, Duration::from_secs(30));
    assert!(!config.failover, "#failover is commented out");
    assert_eq!(config.private_nic.as_deref(), Some("eth0"));
    assert_eq!(
        config.script,
        ScriptSettings {
            vip4_net: Some("24".into()),
            vip6_net: None,
            ns: Some("192.168.0.1".into()),
            public_nic: Some("eth0".into()),
            private_gw: Some("10.0.0.254/8".into()),
        }
    );
    let untouched = Config::default();
    assert_eq!(config.stickiness, untouched.stickiness);
    assert_eq!(config.max_flows, untouched.max_flows);
    assert_eq!(config.pidfile, untouched.pidfile);
}

#[test]
fn original_ipv6_sample_keeps_its_meaning() {
    let config = parse(ORIGINAL_IPV6);
    assert_eq!(config.vip4, None);
    assert_eq!(config.vip6, Some("4041::11".parse::<Ipv6Addr>().unwrap()));
    assert_eq!(
        config.servers6,
        [backend("3031::11", 1), backend("3031::12", 1)]
    );
    assert_eq!(config.rip6.unwrap().to_string(), "3031::/16");
    assert_eq!(config.strategy, Strategy::Weighted);
    assert_eq!(config.check_cycle, Duration::from_secs(10));
    assert!(config.failover);
    assert_eq!(config.script.vip6_net.as_deref(), Some("16"));
    assert_eq!(config.script.private_gw.as_deref(), Some("3031::2/16"));
    assert_eq!(
        config.backends(),
        [backend("3031::11", 1), backend("3031::12", 1)]
    );
}

#[test]
fn defaults_when_only_the_essentials_are_set() {
    let config = parse(MINIMAL);
    assert_eq!(
        config,
        Config {
            vip4: config.vip4,
            servers4: config.servers4.clone(),
            ..Config::default()
        }
    );
    assert_eq!(config.strategy, Strategy::RoundRobin);
    assert_eq!(config.stickiness, Stickiness::Client);
    assert_eq!(config.port_alive, 80);
    assert_eq!(config.check_cycle, Duration::from_secs(30));
    assert_eq!(config.check_timeout, Duration::from_secs(2));
    assert_eq!((config.rise, config.fall), (2, 3));
    assert_eq!(config.nfq_len, 8192);
    assert_eq!(config.max_flows, 1_048_576);
    assert_eq!(config.flow_timeout, Duration::from_secs(300));
    assert_eq!(config.rules, Rules::Auto);
    assert_eq!(config.forward, Forward::Userspace);
    assert_eq!(config.pidfile, PathBuf::from("/run/loaded.pid"));
    assert_eq!(config.chroot, PathBuf::from("/var/run/empty"));
    assert_eq!(config.user, "nobody");
    assert_eq!(config.log_socket, PathBuf::from("/dev/log"));
    assert_eq!(
        config.control_socket,
        PathBuf::from("/run/loaded/control.sock")
    );
    assert_eq!(config.control_group, "root");
    assert_eq!((config.first_core, config.last_core), (None, None));
    assert!(!config.failover);
}

#[test]
fn every_key_of_ours() {
    let config = parse(
        "VIP4 = 198.18.0.10
VIP6 = fd00:18::10
server4 = 198.19.0.1 weight=3
server4 = 198.19.0.2
server6 = fd00:19::1 weight=1000
strategy = maglev
stickiness = flow
maglev_seed = 00112233445566778899AABBCCDDEEFF
max_flows = 2048
flow_timeout = 60
nfq_len = 4096
FIRST_CORE = 0
LAST_CORE = 1
rules = manual
port_alive = 443
check_cycle = 5
check_timeout = 1
rise = 1
fall = 1
broadcast = 198.19.255.255
broadcast6 = ff02::1
private_NIC = eth1
failover = yes
RIP4 = 198.19.0.0/16
RIP6 = fd00:19::/64
pidfile = /run/lb.pid
chroot = /var/empty
user = _loaded
log_socket = /run/systemd/journal/dev-log
control_socket = /run/lb/control.sock
control_group = adm
",
    );
    assert_eq!(
        config.servers4,
        [backend("198.19.0.1", 3), backend("198.19.0.2", 1)]
    );
    assert_eq!(config.servers6, [backend("fd00:19::1", 1000)]);
    assert_eq!(config.strategy, Strategy::Maglev);
    assert_eq!(config.stickiness, Stickiness::Flow);
    assert_eq!(
        config.maglev_seed,
        Some(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff)
    );
    assert_eq!(config.max_flows, 2048);
    assert_eq!(config.flow_timeout, Duration::from_secs(60));
    assert_eq!(config.nfq_len, 4096);
    assert_eq!(config.worker_cores(&[0, 1, 2, 3, 4, 5, 6, 7]), Ok(0..=1));
    assert_eq!(config.rules, Rules::Manual);
    assert_eq!(config.port_alive, 443);
    assert_eq!(config.check_timeout, Duration::from_secs(1));
    assert_eq!((config.rise, config.fall), (1, 1));
    assert_eq!(config.broadcast6, Some("ff02::1".parse().unwrap()));
    assert_eq!(config.private_nic.as_deref(), Some("eth1"));
    assert!(config.failover);
    assert_eq!(config.rip6.unwrap().prefix_len, 64);
    assert_eq!(config.user, "_loaded");
    assert_eq!(
        config.log_socket,
        PathBuf::from("/run/systemd/journal/dev-log")
    );
    assert_eq!(config.control_socket, PathBuf::from("/run/lb/control.sock"));
    assert_eq!(config.control_group, "adm");
    assert_eq!(config.backends().len(), 3);
}

#[test]
fn trailing_comments_with_tabs_and_spaces() {
    let config = parse("VIP4=198.18.0.10\t\t# virtual IP\nserver4=198.19.0.1 weight=2 \t # heavy one\nstrategy=weighted\t#lc\n");
    assert_eq!(config.servers4, [backend("198.19.0.1", 2)]);
    assert_eq!(config.strategy, Strategy::Weighted);
}

#[test]
fn quotes_are_stripped() {
    let config = parse("VIP4=\"198.18.0.10\"\nserver4='198.19.0.1 weight=2'\t# quoted\npidfile=\"/run/my loaded.pid\"\nuser='nobody'\n");
    assert_eq!(config.vip4, Some(Ipv4Addr::new(198, 18, 0, 10)));
    assert_eq!(config.servers4, [backend("198.19.0.1", 2)]);
    assert_eq!(config.pidfile, PathBuf::from("/run/my loaded.pid"));
}

#[test]
fn crlf_line_endings() {
    let config = parse(&ORIGINAL_IPV4.replace('\n', "\r\n"));
    assert_eq!(config, parse(ORIGINAL_IPV4));
    let config =
        parse("VIP4 = 198.18.0.10\r\nserver4=198.19.0.1 weight=4\r\nfailover\r\nRIP6=fd00::/8\r\n");
    assert_eq!(config.servers4, [backend("198.19.0.1", 4)]);
    assert!(config.failover);
    assert_eq!(
        errors("VIP4=198.18.0.10\r\nserver4=198.19.0.1\r\nbogus=1\r\n"),
        ["test.conf:3: unknown key 'bogus'"]
    );
}

#[test]
fn byte_order_mark_is_ignored() {
    assert_eq!(parse(&format!("\u{feff}{MINIMAL}")), parse(MINIMAL));
}

#[test]
fn shell_scripts_skip_what_is_not_ours() {
    let config = parse(
        "#!/bin/bash
set -e
IFACE=eth0
VIP4=198.18.0.10
server4=198.19.0.1
strategi=rr
VIP4 = 198.18.0.99
export nfq_len=2048
port_alive=8080; export port_alive
if [ \"$IFACE\" = eth0 ]; then
  echo yes
fi
# a comment ending in a backslash does not continue \\
strategy=maglev
iptables -t mangle -A PREROUTING \\
    server4=198.19.0.9 \\
    -j NFQUEUE
public_NIC=$IFACE
",
    );
    assert_eq!(config.vip4, Some(Ipv4Addr::new(198, 18, 0, 10)));
    assert_eq!(config.servers4, [backend("198.19.0.1", 1)]);
    assert_eq!(config.nfq_len, 2048);
    assert_eq!(config.port_alive, 8080);
    assert_eq!(
        config.strategy,
        Strategy::Maglev,
        "strategi is the script's own variable; the commented backslash continues nothing"
    );
    assert_eq!(
        config.script.public_nic, None,
        "a computed script-only value is not guessed at"
    );
}

#[test]
fn shell_scripts_install_their_own_rules_unless_they_say_otherwise() {
    let script = "#!/bin/sh\nVIP4=198.18.0.10\nserver4=198.19.0.1\n";
    assert_eq!(parse(script).rules, Rules::Manual);
    assert_eq!(parse(&format!("{script}rules=auto\n")).rules, Rules::Auto);
    assert_eq!(
        parse("VIP4=198.18.0.10\nserver4=198.19.0.1\n").rules,
        Rules::Auto
    );
}

#[test]
fn shell_values_that_need_expansion_are_refused_for_keys_we_use() {
    assert_eq!(
        errors("#!/bin/sh\nBASE=198.18.0\nVIP4=$BASE.10\nserver4=198.19.0.1\n"),
        ["test.conf:3: VIP4: '$BASE.10' contains '$', but loaded does not expand shell variables; write the value itself"]
    );
    assert_eq!(
        errors("VIP4=198.18.0.10\nserver4=198.19.0.1\npublic_NIC=${NIC}\n"),
        ["test.conf:3: public_NIC: '${NIC}' contains '$', but loaded does not expand shell variables; write the value itself"]
    );
}

#[test]
fn unknown_keys_of_ours_are_errors_with_suggestions() {
    assert_eq!(
        errors("VIP4=198.18.0.10\nserver4=198.19.0.1\nstrategi=rr\n"),
        ["test.conf:3: unknown key 'strategi' (did you mean 'strategy'?)"]
    );
    assert_eq!(
        errors("vip4=198.18.0.10\nVIP4=198.18.0.10\nserver=198.19.0.1\nserver4=198.19.0.2\n"),
        [
            "test.conf:1: unknown key 'vip4' (did you mean 'VIP4'?)",
            "test.conf:3: unknown key 'server' (did you mean 'server4' or 'server6'?)",
        ]
    );
    assert_eq!(
        errors("VIP4=198.18.0.10\nserver4=198.19.0.1\nmax_flow = 4096\n"),
        ["test.conf:3: unknown key 'max_flow' (did you mean 'max_flows'?)"]
    );
}

#[test]
fn lines_that_are_not_assignments_are_errors_in_our_files() {
    assert_eq!(
        errors("VIP4=198.18.0.10\nserver4=198.19.0.1\necho 1 > /proc/sys/net/ipv4/ip_forward\n"),
        ["test.conf:3: expected key=value, found 'echo 1 > /proc/sys/net/ipv4/ip_forward'"]
    );
}

#[test]
fn values_out_of_range_name_the_line_and_the_range() {
    let cases = [
        ("port_alive=0", "port_alive must be a whole number from 1 to 65535, not '0'"),
        ("port_alive=65536", "port_alive must be a whole number from 1 to 65535, not '65536'"),
        ("port_alive=http", "port_alive must be a whole number from 1 to 65535, not 'http'"),
        ("check_cycle=0", "check_cycle must be a duration from 100 ms to 86400 s: seconds (2, 0.5, 2s) or milliseconds (500ms), not '0'"),
        ("check_timeout=-1", "check_timeout must be a duration from 10 ms to 3600 s: seconds (2, 0.5, 2s) or milliseconds (500ms), not '-1'"),
        ("rise=0", "rise must be a whole number from 1 to 100, not '0'"),
        ("fall=1000", "fall must be a whole number from 1 to 100, not '1000'"),
        ("nfq_len=0", "nfq_len must be a whole number from 1 to 4294967295, not '0'"),
        ("max_flows=1000", "max_flows must be a whole number from 1024 to 67108864, not '1000'"),
        ("flow_timeout=1.5", "flow_timeout must be a whole number from 1 to 86400, not '1.5'"),
        ("FIRST_CORE=1024", "FIRST_CORE must be a whole number from 0 to 1023, not '1024'"),
        ("LAST_CORE=x", "LAST_CORE must be a whole number from 0 to 1023, not 'x'"),
        ("server4=198.19.0.2 weight=1001", "weight must be a whole number from 1 to 1000, not '1001'"),
        ("strategy=lc", "strategy must be one of rr, weighted, maglev, not 'lc'"),
        ("stickiness=flows", "stickiness must be one of client, flow, not 'flows' (did you mean 'flow'?)"),
        ("maglev_seed=0x00112233445566778899aabbccddeeff", "maglev_seed must be 32 hex digits (128 bits), e.g. the output of 'openssl rand -hex 16', not '0x00112233445566778899aabbccddeeff'"),
        ("maglev_seed=112233445566778899aabbccddeeff", "maglev_seed must be 32 hex digits (128 bits), e.g. the output of 'openssl rand -hex 16', not '112233445566778899aabbccddeeff'"),
        ("maglev_seed=g0112233445566778899aabbccddeeff", "maglev_seed must be 32 hex digits (128 bits), e.g. the output of 'openssl rand -hex 16', not 'g0112233445566778899aabbccddeeff'"),
        ("rules=automatic", "rules must be one of auto, manual, not 'automatic'"),
        ("forward=kernal", "forward must be one of userspace, kernel, not 'kernal' (did you mean 'kernel'?)"),
        ("broadcast=ff02::1", "broadcast must be an IPv4 address, not the IPv6 address 'ff02::1' (use broadcast6 for IPv6)"),
        ("pidfile=loaded.pid", "pidfile must be an absolute path, not 'loaded.pid'"),
        ("control_socket=control.sock", "control_socket must be an absolute path, not 'control.sock'"),
        ("control_group=\"adm wheel\"", "control_group must be one group name or id, not 'adm wheel'"),
        ("RIP4=198.19.0.0/40", "the prefix length of RIP4 must be a whole number from 0 to 32, not '40'"),
        ("port_alive=", "port_alive has no value"),
        ("private_NIC=\"eth0", "the value has no closing \""),
    ];
    for (line, message) in cases {
        let text = format!("{MINIMAL}{line}\n");
        assert_eq!(errors(&text), [format!("test.conf:3: {message}")], "{line}");
    }
}

#[test]
fn servers_must_match_their_key_family() {
    assert_eq!(
        errors("VIP4=198.18.0.10\nVIP6=fd00:18::10\nserver4=198.19.0.1\nserver4=fd00:19::1\nserver6=fd00:19::1\n"),
        ["test.conf:4: server4 must be an IPv4 address, not the IPv6 address 'fd00:19::1' (use server6 for it)"]
    );
    assert_eq!(
        errors("VIP6=fd00:18::10\nserver6=198.19.0.1\nserver6=fd00:19::1\n"),
        ["test.conf:2: server6 must be an IPv6 address, not the IPv4 address '198.19.0.1' (use server4 for it)"]
    );
}

#[test]
fn servers_need_a_vip_of_their_family() {
    assert_eq!(
        errors("VIP4=198.18.0.10\nserver4=198.19.0.1\nserver6=fd00:19::1\nserver6=fd00:19::2\n"),
        [
            "test.conf:3: server6 fd00:19::1 has no VIP6 to serve; set VIP6",
            "test.conf:4: server6 fd00:19::2 has no VIP6 to serve; set VIP6",
        ]
    );
}

#[test]
fn a_vip_needs_servers_unless_failover_can_find_them() {
    let no_server = "test.conf:3: VIP6 fd00:18::10 has no server6; add server6 lines, \
                     or turn on failover and set RIP6 so servers are found while running";
    assert_eq!(errors(&format!("{MINIMAL}VIP6=fd00:18::10\n")), [no_server]);
    assert_eq!(
        errors(&format!("{MINIMAL}VIP6=fd00:18::10\nfailover\n")),
        [no_server]
    );
    assert_eq!(
        errors(&format!("{MINIMAL}VIP6=fd00:18::10\nRIP6=fd00:19::/64\n")),
        [no_server]
    );
    let config = parse(&format!(
        "{MINIMAL}VIP6=fd00:18::10\nRIP6=fd00:19::/64\nfailover\n"
    ));
    assert!(config.servers6.is_empty());
    let config = parse("#!/bin/sh\nVIP4=198.18.0.10\nRIP4=198.19.0.0/16\nfailover\n");
    assert!(config.servers4.is_empty());
}

#[test]
fn a_file_without_any_vip_is_an_error() {
    assert_eq!(
        errors("server4=198.19.0.1\n"),
        ["test.conf: neither VIP4 nor VIP6 is set; loaded needs at least one address to balance"]
    );
    assert_eq!(
        errors(""),
        ["test.conf: neither VIP4 nor VIP6 is set; loaded needs at least one address to balance"]
    );
}

#[test]
fn duplicate_servers_name_both_lines() {
    assert_eq!(
        errors("VIP4=198.18.0.10\nserver4=198.19.0.1\nserver4=198.19.0.2\nserver4=198.19.0.1 weight=2\n"),
        ["test.conf:4: server4 198.19.0.1 is already listed on line 2"]
    );
    assert_eq!(
        errors("VIP6=fd00:18::10\nserver6=fd00:19::1\nserver6=fd00:19:0::0001\n"),
        ["test.conf:3: server6 fd00:19::1 is already listed on line 2"]
    );
}

#[test]
fn a_server_cannot_be_the_vip() {
    assert_eq!(
        errors("VIP4=198.18.0.10\nserver4=198.19.0.1\nserver4=198.18.0.10\n"),
        ["test.conf:3: server4 198.18.0.10 is the VIP4 itself"]
    );
}

#[test]
fn settings_given_twice_are_errors() {
    assert_eq!(
        errors(&format!("{MINIMAL}strategy=rr\nstrategy=maglev\n")),
        ["test.conf:4: strategy is already set on line 3"]
    );
}

#[test]
fn cores_must_be_in_order() {
    assert_eq!(
        errors(&format!("{MINIMAL}FIRST_CORE=3\nLAST_CORE=1\n")),
        ["test.conf:4: LAST_CORE=1 is below FIRST_CORE=3 (line 3)"]
    );
    assert_eq!(
        parse(&format!("{MINIMAL}FIRST_CORE=2\nLAST_CORE=2\n")).worker_cores(&[0, 1, 2, 3]),
        Ok(2..=2)
    );
}

#[test]
fn an_explicit_check_timeout_must_be_shorter_than_the_cycle() {
    let advice = "or checks would overlap; shorten it, or leave it out for the default \
                  (half the cycle, at most 2 s)";
    assert_eq!(
        errors(&format!("{MINIMAL}check_cycle=5\ncheck_timeout=5\n")),
        [format!("test.conf:4: check_timeout (5 s) must be shorter than check_cycle (5 s, line 3), {advice}")]
    );
    assert_eq!(
        errors(&format!("{MINIMAL}check_timeout=5\ncheck_cycle=5\n")),
        [format!("test.conf:3: check_timeout (5 s) must be shorter than check_cycle (5 s, line 4), {advice}")],
        "the check_timeout line is named even when the cycle comes later"
    );
    assert_eq!(
        errors(&format!("{MINIMAL}check_timeout=30\n")),
        [format!("test.conf:3: check_timeout (30 s) must be shorter than check_cycle (30 s, the default), {advice}")]
    );
}

#[test]
fn link_local_discovery_needs_an_interface() {
    assert_eq!(
        errors("VIP6=fd00:18::10\nserver6=fd00:19::1\nbroadcast6=ff02::1\n"),
        ["test.conf:3: broadcast6 ff02::1 is link-local, so private_NIC must name the interface to send it on"]
    );
    parse("VIP6=fd00:18::10\nserver6=fd00:19::1\nbroadcast6=ff02::1\nprivate_NIC=eth1\n");
}

#[test]
fn all_errors_of_a_file_are_reported_in_line_order() {
    assert_eq!(
        errors("server4=198.19.0.1\nport_alive=0\nstrategi=rr\nserver4=198.19.0.1\nhello\n"),
        [
            "test.conf:2: port_alive must be a whole number from 1 to 65535, not '0'",
            "test.conf:3: unknown key 'strategi' (did you mean 'strategy'?)",
            "test.conf:4: server4 198.19.0.1 is already listed on line 1",
            "test.conf:5: expected key=value, found 'hello'",
            "test.conf: neither VIP4 nor VIP6 is set; loaded needs at least one address to balance",
        ]
    );
}

#[test]
fn a_refused_vip_does_not_also_claim_the_vip_is_missing() {
    assert_eq!(
        errors("VIP4=198.18.0.300\nserver4=198.19.0.1\n"),
        ["test.conf:1: VIP4 must be an IPv4 address, not '198.18.0.300'"]
    );
}

#[test]
fn the_listing_parses_back_to_the_same_settings() {
    for text in [ORIGINAL_IPV4, ORIGINAL_IPV6, MINIMAL] {
        let config = parse(text);
        assert_eq!(parse(&config.to_string()), config, "listing:\n{config}");
    }
    let seeded = parse(&format!(
        "{MINIMAL}maglev_seed=0000000000000000000000000000002a\n"
    ));
    assert!(seeded
        .to_string()
        .lines()
        .any(|l| l == "maglev_seed=0000000000000000000000000000002a"));
    assert_eq!(parse(&seeded.to_string()), seeded);
    let mut odd = parse(MINIMAL);
    odd.pidfile = PathBuf::from("/run/with space #1.pid");
    odd.user = "it's".into();
    assert_eq!(parse(&odd.to_string()), odd);
}

#[test]
fn the_maglev_seed_defaults_to_one_derived_from_the_vips() {
    let config = parse(MINIMAL);
    assert_eq!(config.maglev_seed, None);
    // The same config, the same seed, wherever and whenever it is read.
    assert_eq!(config.maglev_seed(), parse(MINIMAL).maglev_seed());
    let listed = format!(
        "# maglev_seed not set: derived from the VIPs, {:032x}",
        config.maglev_seed()
    );
    assert!(config.to_string().lines().any(|l| l == listed));
    // Another VIP, another seed; the servers play no part (a reload keeps the seed).
    let other_vip = parse("VIP4=198.18.0.11\nserver4=198.19.0.1\n");
    assert_ne!(other_vip.maglev_seed(), config.maglev_seed());
    let other_servers = parse("VIP4=198.18.0.10\nserver4=198.19.0.2\n");
    assert_eq!(other_servers.maglev_seed(), config.maglev_seed());
    let dual =
        parse("VIP4=198.18.0.10\nVIP6=fd00:18::10\nserver4=198.19.0.1\nserver6=fd00:19::1\n");
    assert_ne!(dual.maglev_seed(), config.maglev_seed());
    // A set seed wins.
    let seeded = parse(&format!(
        "{MINIMAL}maglev_seed=0000000000000000000000000000002a\n"
    ));
    assert_eq!(seeded.maglev_seed(), 42);
}

#[test]
fn survives_the_trip_to_a_child_process() {
    let mut config = parse(ORIGINAL_IPV4);
    config.maglev_seed = Some(u128::MAX - 1);
    let bytes = bincode::serde::encode_to_vec(&config, bincode::config::standard()).unwrap();
    let (back, _): (Config, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, config);
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let dir = std::env::temp_dir().join(format!("loaded-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("loaded.config");
    std::fs::write(
        &path,
        b"#!/bin/sh\n# caf\xe9 in Latin-1\nVIP4=198.18.0.10\nserver4=198.19.0.1\n",
    )
    .unwrap();
    assert_eq!(
        Config::load(&path).unwrap().config.servers4,
        [backend("198.19.0.1", 1)]
    );

    let missing = dir.join("missing.conf");
    let message = Config::load(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{message}"
    );
    assert!(!message.contains('\n'));
    std::fs::remove_dir_all(&dir).unwrap();
}

mod never_panics {
    use crate::config::keys::Key;
    use crate::config::Config;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn on_arbitrary_text(text in any::<String>()) {
            let _ = Config::parse(&text, "fuzz.conf");
        }

        #[test]
        fn on_config_like_lines(lines in proptest::collection::vec(config_like_line(), 0..12), shell in any::<bool>()) {
            let text = format!("{}{}", if shell { "#!/bin/sh\n" } else { "" }, lines.join("\n"));
            if let Err(errors) = Config::parse(&text, "fuzz.conf") {
                prop_assert!(!errors.0.is_empty());
            }
        }
    }

    /// Mostly real keys with plausible and implausible values, so the fuzzing reaches the
    /// value parsers and cross-field checks instead of stopping at "unknown key".
    fn config_like_line() -> impl Strategy<Value = String> {
        let keys = Key::all_names();
        let key = proptest::sample::select(keys);
        let value = prop_oneof![
            "[0-9]{0,12}",
            "198\\.1[89]\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?( weight=[0-9]{1,5})?",
            "fd00:[0-9a-f:]{0,12}(/[0-9]{1,3})?",
            "[\"' #$=a-z/\\\\\t]{0,10}",
            any::<String>(),
        ];
        (key, " ?= ?", value).prop_map(|(key, equals, value)| format!("{key}{equals}{value}"))
    }
}

#[test]
fn forward_selects_the_mode() {
    assert_eq!(
        parse(&format!("{MINIMAL}forward=kernel\n")).forward,
        Forward::Kernel
    );
    assert_eq!(
        parse(&format!("{MINIMAL}forward = userspace # the default\n")).forward,
        Forward::Userspace
    );
    assert_eq!(
        errors(&format!("{MINIMAL}forward=kernel\nforward=userspace\n")),
        ["test.conf:4: forward is already set on line 3"]
    );
}

#[test]
fn kernel_mode_needs_the_masters_own_rules() {
    assert_eq!(
        errors(&format!("{MINIMAL}rules=manual\nforward=kernel\n")),
        [
            "test.conf:4: forward=kernel needs rules=auto, not rules=manual (line 3): \
          the master owns the nftables map that names the servers"
        ]
    );
    let script = "#!/bin/sh\nVIP4=198.18.0.10\nserver4=198.19.0.1\nforward=kernel\n";
    assert_eq!(
        errors(script),
        [
            "test.conf:4: forward=kernel needs rules=auto, not rules=manual (the default of \
          the original's scripts): the master owns the nftables map that names the servers"
        ]
    );
    assert_eq!(
        parse(&format!("{script}rules=auto\n")).forward,
        Forward::Kernel
    );
}
