//! Turning one value's text into a typed setting; what each error says is in `value_error`.

use super::value_error::ValueError;
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
) -> Result<T, ValueError> {
    let refuse = || ValueError::NotANumber {
        key: key.to_owned(),
        text: text.to_owned(),
        range: range.clone(),
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
pub fn seed(key: &str, text: &str) -> Result<u128, ValueError> {
    let refuse = || ValueError::NotASeed {
        key: key.to_owned(),
        text: text.to_owned(),
    };
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refuse());
    }
    u128::from_str_radix(text, 16).map_err(|_| refuse())
}

pub fn seconds(key: &str, text: &str, range: RangeInclusive<u64>) -> Result<Duration, ValueError> {
    number::<u64>(key, text, range).map(Duration::from_secs)
}

/// An address of one family: `IpAddr::V4` when `want_v4`, `IpAddr::V6` otherwise.
fn address(key: &str, text: &str, want_v4: bool) -> Result<IpAddr, ValueError> {
    let parsed = text.parse::<IpAddr>();
    match parsed {
        Ok(addr) if addr.is_ipv4() == want_v4 => Ok(addr),
        _ => Err(ValueError::NotAnAddress {
            key: key.to_owned(),
            text: text.to_owned(),
            want_v4,
            other_family: parsed.is_ok(),
            hint: None,
        }),
    }
}

pub fn ipv4(key: &str, text: &str) -> Result<Ipv4Addr, ValueError> {
    match address(key, text, true)? {
        IpAddr::V4(addr) => Ok(addr),
        IpAddr::V6(_) => unreachable!("`address` checked the family"),
    }
}

pub fn ipv6(key: &str, text: &str) -> Result<Ipv6Addr, ValueError> {
    match address(key, text, false)? {
        IpAddr::V6(addr) => Ok(addr),
        IpAddr::V4(_) => unreachable!("`address` checked the family"),
    }
}

/// `198.19.0.0/16`, or a bare address meaning that one host.
pub fn network(key: &str, text: &str, want_v4: bool) -> Result<IpNet, ValueError> {
    let max_len = if want_v4 { 32 } else { 128 };
    let refuse = || ValueError::NotANetwork {
        key: key.to_owned(),
        text: text.to_owned(),
        want_v4,
    };
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
pub fn server(key: &str, text: &str, want_v4: bool) -> Result<Backend, ValueError> {
    let mut words = text.split_whitespace();
    let addr_text = words.next().unwrap_or_default();
    let other = if want_v4 {
        "use server6 for it"
    } else {
        "use server4 for it"
    };
    let addr = address(key, addr_text, want_v4).map_err(|error| match error {
        ValueError::NotAnAddress {
            other_family: true, ..
        } => error.with_hint(other),
        error => error,
    })?;
    let not_a_weight = |word: &str| ValueError::NotAWeight {
        key: key.to_owned(),
        word: word.to_owned(),
    };
    let weight = match words.next() {
        None => 1,
        Some(word) => {
            let Some(weight_text) = word.strip_prefix("weight=") else {
                return Err(not_a_weight(word));
            };
            number("weight", weight_text, WEIGHT_RANGE)?
        }
    };
    if let Some(extra) = words.next() {
        return Err(not_a_weight(extra));
    }
    Ok(Backend { addr, weight })
}

/// One of a few words, e.g. `strategy=rr`.
pub fn choice<T: Copy>(
    key: &str,
    text: &str,
    choices: &[(&'static str, T)],
) -> Result<T, ValueError> {
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
        return Ok(*value);
    }
    Err(ValueError::NotAChoice {
        key: key.to_owned(),
        text: text.to_owned(),
        choices: choices.iter().map(|(name, _)| *name).collect(),
    })
}

pub fn yes_no(key: &str, text: &str) -> Result<bool, ValueError> {
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
pub fn absolute_path(key: &str, text: &str) -> Result<PathBuf, ValueError> {
    if !text.starts_with('/') {
        return Err(ValueError::NotAbsolute {
            key: key.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(PathBuf::from(text))
}

/// One word: a user name or number.
pub fn user(key: &str, text: &str) -> Result<String, ValueError> {
    if text.chars().any(char::is_whitespace) {
        return Err(ValueError::NotAUser {
            key: key.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// One word: a group name or number.
pub fn group(key: &str, text: &str) -> Result<String, ValueError> {
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(ValueError::NotAGroup {
            key: key.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// Linux refuses names longer than 15 bytes or containing `/` or whitespace.
pub fn interface(key: &str, text: &str) -> Result<String, ValueError> {
    let valid = text.len() <= 15 && !text.contains('/') && !text.chars().any(char::is_whitespace);
    if !valid {
        return Err(ValueError::NotAnInterface {
            key: key.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T: std::fmt::Debug>(result: Result<T, ValueError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn numbers_in_range() {
        assert_eq!(number::<u16>("port_alive", "443", 1..=65535), Ok(443));
        assert_eq!(
            message(number::<u16>("port_alive", "70000", 1..=65535)),
            "port_alive must be a whole number from 1 to 65535, not '70000'"
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
            message(ipv4("VIP4", "fd00::1")),
            "VIP4 must be an IPv4 address, not the IPv6 address 'fd00::1'"
        );
        assert_eq!(
            message(ipv6("VIP6", "198.18.0.1")),
            "VIP6 must be an IPv6 address, not the IPv4 address '198.18.0.1'"
        );
        assert_eq!(
            message(ipv6("VIP6", "nonsense")),
            "VIP6 must be an IPv6 address, not 'nonsense'"
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
            message(network("RIP4", "10.0.0.0/33", true)),
            "the prefix length of RIP4 must be a whole number from 0 to 32, not '33'"
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
            message(server("server4", "198.19.0.1 weight=0", true)),
            "weight must be a whole number from 1 to 1000, not '0'"
        );
        assert_eq!(
            message(server("server4", "fd00::1", true)),
            "server4 must be an IPv4 address, not the IPv6 address 'fd00::1' (use server6 for it)"
        );
        assert_eq!(
            message(server("server4", "198.19.0.1 heavy", true)),
            "after the address of server4 only 'weight=N' may follow, not 'heavy'"
        );
        assert!(server("server4", "198.19.0.1 weight=2 weight=3", true).is_err());
        assert!(server("server4", "", true).is_err());
    }

    #[test]
    fn choices_suggest_near_misses() {
        let strategies = [("rr", 1), ("weighted", 2), ("maglev", 3)];
        assert_eq!(choice("strategy", "maglev", &strategies), Ok(3));
        assert_eq!(
            message(choice("strategy", "maglv", &strategies)),
            "strategy must be one of rr, weighted, maglev, not 'maglv' (did you mean 'maglev'?)"
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
