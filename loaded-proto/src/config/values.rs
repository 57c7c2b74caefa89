//! Turning one value's text into a typed setting. Every error says what would have been
//! accepted, since the admin reading it has only the message and the file.

use super::suggest::did_you_mean;
use crate::balancing::{Backend, IpNet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub const WEIGHT_RANGE: RangeInclusive<u64> = 1..=1000;

/// A whole number in `range`. Signs and fractions are refused rather than rounded, so
/// `flow_timeout=1.5` cannot silently become 1.
pub fn number<T: TryFrom<u64>>(
    key: &str,
    text: &str,
    range: RangeInclusive<u64>,
) -> Result<T, String> {
    let refuse = || {
        format!(
            "{key} must be a whole number from {} to {}, not '{text}'",
            range.start(),
            range.end()
        )
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let value: u64 = text.parse().map_err(|_| refuse())?;
    if !range.contains(&value) {
        return Err(refuse());
    }
    T::try_from(value).map_err(|_| refuse())
}

/// A 128-bit secret: exactly 32 hex digits, either case, no `0x`. A fixed length catches
/// a digit lost in copying, which would otherwise silently give this node its own
/// permutation.
pub fn seed(key: &str, text: &str) -> Result<u128, String> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{key} must be 32 hex digits (128 bits), e.g. the output of 'openssl rand -hex 16', not '{text}'"
        ));
    }
    u128::from_str_radix(text, 16).map_err(|e| format!("{key}: {e}"))
}

pub fn seconds(key: &str, text: &str, range: RangeInclusive<u64>) -> Result<Duration, String> {
    number::<u64>(key, text, range).map(Duration::from_secs)
}

pub fn ipv4(key: &str, text: &str) -> Result<Ipv4Addr, String> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(addr)) => Ok(addr),
        Ok(IpAddr::V6(_)) => Err(format!(
            "{key} must be an IPv4 address, not the IPv6 address '{text}'"
        )),
        Err(_) => Err(format!("{key} must be an IPv4 address, not '{text}'")),
    }
}

pub fn ipv6(key: &str, text: &str) -> Result<Ipv6Addr, String> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V6(addr)) => Ok(addr),
        Ok(IpAddr::V4(_)) => Err(format!(
            "{key} must be an IPv6 address, not the IPv4 address '{text}'"
        )),
        Err(_) => Err(format!("{key} must be an IPv6 address, not '{text}'")),
    }
}

/// `198.19.0.0/16`, or a bare address meaning that one host.
pub fn network(key: &str, text: &str, want_v4: bool) -> Result<IpNet, String> {
    let (family, example, max_len) = if want_v4 {
        ("IPv4", "198.19.0.0/16", 32)
    } else {
        ("IPv6", "fd00:19::/64", 128)
    };
    let refuse = || format!("{key} must be an {family} network like {example}, not '{text}'");
    let (addr_text, len_text) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| refuse())?;
    if addr.is_ipv4() != want_v4 {
        return Err(refuse());
    }
    let prefix_len = match len_text {
        None => max_len,
        Some(len) => number::<u8>(
            &format!("the prefix length of {key}"),
            len,
            0..=u64::from(max_len),
        )?,
    };
    Ok(IpNet { addr, prefix_len })
}

/// `198.19.0.1` or `198.19.0.1 weight=3`.
pub fn server(key: &str, text: &str, want_v4: bool) -> Result<Backend, String> {
    let mut words = text.split_whitespace();
    let addr_text = words.next().unwrap_or_default();
    let addr = if want_v4 {
        ipv4(key, addr_text).map(IpAddr::V4)
    } else {
        ipv6(key, addr_text).map(IpAddr::V6)
    };
    let addr = addr.map_err(|message| {
        let other = if want_v4 { "server6" } else { "server4" };
        if addr_text.parse::<IpAddr>().is_ok() {
            format!("{message} (use {other} for it)")
        } else {
            message
        }
    })?;
    let weight = match words.next() {
        None => 1,
        Some(word) => {
            let Some(weight_text) = word.strip_prefix("weight=") else {
                return Err(format!(
                    "after the address of {key} only 'weight=N' may follow, not '{word}'"
                ));
            };
            number("weight", weight_text, WEIGHT_RANGE)?
        }
    };
    if let Some(extra) = words.next() {
        return Err(format!(
            "after the address of {key} only 'weight=N' may follow, not '{extra}'"
        ));
    }
    Ok(Backend { addr, weight })
}

/// One of a few words, e.g. `strategy=rr`.
pub fn choice<T: Copy>(key: &str, text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    Err(format!(
        "{key} must be one of {}, not '{text}'{}",
        names.join(", "),
        did_you_mean(text, &names)
    ))
}

pub fn yes_no(key: &str, text: &str) -> Result<bool, String> {
    choice(
        key,
        text,
        &[
            ("yes", true),
            ("no", false),
            ("on", true),
            ("off", false),
            ("true", true),
            ("false", false),
        ],
    )
}

/// Absolute, because loaded changes directory and root after reading the config.
pub fn absolute_path(key: &str, text: &str) -> Result<PathBuf, String> {
    if !text.starts_with('/') {
        return Err(format!("{key} must be an absolute path, not '{text}'"));
    }
    Ok(PathBuf::from(text))
}

/// One word: a user name or number.
pub fn user(key: &str, text: &str) -> Result<String, String> {
    if text.chars().any(char::is_whitespace) {
        return Err(format!("{key} must be one user name or id, not '{text}'"));
    }
    Ok(text.to_owned())
}

/// One word: a group name or number.
pub fn group(key: &str, text: &str) -> Result<String, String> {
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(format!("{key} must be one group name or id, not '{text}'"));
    }
    Ok(text.to_owned())
}

/// Linux refuses names longer than 15 bytes or containing `/` or whitespace.
pub fn interface(key: &str, text: &str) -> Result<String, String> {
    let valid = text.len() <= 15 && !text.contains('/') && !text.chars().any(char::is_whitespace);
    if !valid {
        return Err(format!("{key} must be a network interface name (at most 15 characters, no '/' or spaces), not '{text}'"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_range() {
        assert_eq!(number::<u16>("port_alive", "443", 1..=65535), Ok(443));
        assert_eq!(
            number::<u16>("port_alive", "70000", 1..=65535),
            Err("port_alive must be a whole number from 1 to 65535, not '70000'".to_owned())
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "0x10",
            "eighty",
            "99999999999999999999999",
        ] {
            assert!(
                number::<u16>("port_alive", bad, 1..=65535).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            seconds("check_cycle", "30", 1..=86400),
            Ok(Duration::from_secs(30))
        );
    }

    #[test]
    fn addresses_of_the_right_family() {
        assert_eq!(ipv4("VIP4", "198.18.0.1"), Ok(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(
            ipv4("VIP4", "fd00::1"),
            Err("VIP4 must be an IPv4 address, not the IPv6 address 'fd00::1'".to_owned())
        );
        assert_eq!(
            ipv6("VIP6", "198.18.0.1"),
            Err("VIP6 must be an IPv6 address, not the IPv4 address '198.18.0.1'".to_owned())
        );
        assert_eq!(
            ipv6("VIP6", "nonsense"),
            Err("VIP6 must be an IPv6 address, not 'nonsense'".to_owned())
        );
    }

    #[test]
    fn networks() {
        let net = network("RIP4", "10.0.0.0/8", true).unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert_eq!(network("RIP4", "198.19.0.7", true).unwrap().prefix_len, 32);
        assert_eq!(
            network("RIP6", "3031::/16", false).unwrap().to_string(),
            "3031::/16"
        );
        assert_eq!(network("RIP6", "fd00::1", false).unwrap().prefix_len, 128);
        assert_eq!(
            network("RIP4", "10.0.0.0/33", true),
            Err(
                "the prefix length of RIP4 must be a whole number from 0 to 32, not '33'"
                    .to_owned()
            )
        );
        assert!(network("RIP4", "3031::/16", true).is_err());
        assert!(network("RIP6", "10.0.0.0/8", false).is_err());
        assert!(network("RIP4", "10.0.0.0/", true).is_err());
    }

    #[test]
    fn servers_with_and_without_weight() {
        assert_eq!(
            server("server4", "198.19.0.1", true),
            Ok(Backend {
                addr: "198.19.0.1".parse().unwrap(),
                weight: 1
            })
        );
        assert_eq!(
            server("server4", "198.19.0.1 weight=3", true)
                .unwrap()
                .weight,
            3
        );
        assert_eq!(
            server("server6", "fd00::1\tweight=1000", false)
                .unwrap()
                .weight,
            1000
        );
        assert_eq!(
            server("server4", "198.19.0.1 weight=0", true),
            Err("weight must be a whole number from 1 to 1000, not '0'".to_owned())
        );
        assert_eq!(
            server("server4", "fd00::1", true),
            Err("server4 must be an IPv4 address, not the IPv6 address 'fd00::1' (use server6 for it)".to_owned())
        );
        assert_eq!(
            server("server4", "198.19.0.1 heavy", true),
            Err("after the address of server4 only 'weight=N' may follow, not 'heavy'".to_owned())
        );
        assert!(server("server4", "198.19.0.1 weight=2 weight=3", true).is_err());
        assert!(server("server4", "", true).is_err());
    }

    #[test]
    fn choices_suggest_near_misses() {
        let strategies = [("rr", 1), ("weighted", 2), ("maglev", 3)];
        assert_eq!(choice("strategy", "maglev", &strategies), Ok(3));
        assert_eq!(
            choice("strategy", "maglv", &strategies),
            Err("strategy must be one of rr, weighted, maglev, not 'maglv' (did you mean 'maglev'?)".to_owned())
        );
        assert_eq!(yes_no("failover", "yes"), Ok(true));
        assert_eq!(yes_no("failover", "off"), Ok(false));
    }

    #[test]
    fn paths_users_and_interfaces() {
        assert_eq!(
            absolute_path("pidfile", "/run/x.pid"),
            Ok(PathBuf::from("/run/x.pid"))
        );
        assert!(absolute_path("pidfile", "x.pid").is_err());
        assert!(user("user", "two words").is_err());
        assert_eq!(
            interface("private_NIC", "eth0.100"),
            Ok("eth0.100".to_owned())
        );
        assert!(interface("private_NIC", "a-very-long-interface").is_err());
        assert!(interface("private_NIC", "eth/0").is_err());
    }
}
