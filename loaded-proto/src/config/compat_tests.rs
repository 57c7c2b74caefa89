//! Files the original accepted keep working with the same meaning: short check cycles
//! without a timeout, sub-second durations, and keys a shell script assigns twice.

use super::test_files::{checked, errors, parse};
use super::*;
use std::time::Duration;

const MINIMAL: &str = "VIP4=198.18.0.10\nserver4=198.19.0.1\n";
const SCRIPT: &str = "#!/bin/sh\nVIP4=198.18.0.10\nserver4=198.19.0.1\n";

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_short_cycle_without_timeout_starts_as_in_the_original() {
    for (cycle, timeout) in [
        ("1", millis(500)),
        ("2", millis(1000)),
        ("3", millis(1500)),
        ("4", millis(2000)),
        ("30", millis(2000)),
        ("86400", millis(2000)),
        ("0.1", millis(50)),
        ("250ms", millis(125)),
    ] {
        for head in [MINIMAL, SCRIPT] {
            let config = parse(&format!("{head}failover\ncheck_cycle={cycle}\n"));
            assert_eq!(config.check_timeout, timeout, "check_cycle={cycle}");
            assert!(config.check_timeout < config.check_cycle);
            assert!(config.failover);
        }
    }
    assert_eq!(
        parse(MINIMAL).check_timeout,
        DEFAULT_CHECK_TIMEOUT,
        "the default cycle keeps the old default"
    );
}

#[test]
fn sub_second_durations() {
    let config = parse(&format!("{MINIMAL}check_cycle=1\ncheck_timeout=0.5\n"));
    assert_eq!(config.check_timeout, millis(500));
    let config = parse(&format!("{MINIMAL}check_cycle=1\ncheck_timeout=500ms\n"));
    assert_eq!(config.check_timeout, millis(500));
    let config = parse(&format!("{MINIMAL}check_cycle=0.75\ncheck_timeout=0.25s\n"));
    assert_eq!(
        (config.check_cycle, config.check_timeout),
        (millis(750), millis(250))
    );
    let config = parse(&format!(
        "{MINIMAL}check_cycle = 2s # quick\ncheck_timeout=\"1\"\n"
    ));
    assert_eq!(
        (config.check_cycle, config.check_timeout),
        (millis(2000), millis(1000))
    );
}

#[test]
fn bad_durations_name_the_file_and_line() {
    let accepted = "seconds (2, 0.5, 2s) or milliseconds (500ms)";
    let timeout = |text: &str| {
        format!("check_timeout must be a duration from 10 ms to 3600 s: {accepted}, not '{text}'")
    };
    let cycle = |text: &str| {
        format!("check_cycle must be a duration from 100 ms to 86400 s: {accepted}, not '{text}'")
    };
    for (line, message) in [
        ("check_timeout=0.0005", timeout("0.0005")),
        ("check_timeout=5ms", timeout("5ms")),
        ("check_timeout=1.5ms", timeout("1.5ms")),
        ("check_timeout=half", timeout("half")),
        ("check_timeout=.5", timeout(".5")),
        ("check_timeout=1h", timeout("1h")),
        ("check_cycle=50ms", cycle("50ms")),
        ("check_cycle=0", cycle("0")),
        ("check_cycle=-2", cycle("-2")),
        ("check_cycle=1e3", cycle("1e3")),
    ] {
        assert_eq!(
            errors(&format!("{MINIMAL}{line}\n")),
            [format!("test.conf:3: {message}")],
            "{line}"
        );
    }
}

#[test]
fn an_explicit_timeout_that_does_not_fit_is_refused_at_its_line() {
    assert_eq!(
        errors(&format!(
            "{SCRIPT}failover\ncheck_timeout=2\ncheck_cycle=2\n"
        )),
        [
            "test.conf:5: check_timeout (2 s) must be shorter than check_cycle (2 s, line 6), \
          or checks would overlap; shorten it, or leave it out for the default \
          (half the cycle, at most 2 s)"
        ]
    );
    assert_eq!(
        errors(&format!("{MINIMAL}check_cycle=1\ncheck_timeout=1000ms\n")),
        [
            "test.conf:4: check_timeout (1 s) must be shorter than check_cycle (1 s, line 3), \
          or checks would overlap; shorten it, or leave it out for the default \
          (half the cycle, at most 2 s)"
        ]
    );
    assert_eq!(
        errors(&format!("{MINIMAL}check_cycle=500ms\ncheck_timeout=0.6\n")),
        ["test.conf:4: check_timeout (600 ms) must be shorter than check_cycle (500 ms, line 3), \
          or checks would overlap; shorten it, or leave it out for the default \
          (half the cycle, at most 2 s)"]
    );
    let config = parse(&format!("{MINIMAL}check_cycle=1\ncheck_timeout=999ms\n"));
    assert_eq!(config.check_timeout, millis(999));
}

#[test]
fn the_listing_of_sub_second_settings_parses_back() {
    for extra in [
        "check_cycle=1\n",
        "check_cycle=0.3\n",
        "check_cycle=2\ncheck_timeout=0.5\n",
        "check_cycle=1.5\ncheck_timeout=1001ms\n",
    ] {
        let config = parse(&format!("{MINIMAL}{extra}"));
        let listing = config.to_string();
        assert_eq!(parse(&listing), config, "listing:\n{listing}");
    }
    let listing = parse(&format!("{MINIMAL}check_cycle=1\n")).to_string();
    assert!(
        listing.lines().any(|l| l == "check_timeout=500ms"),
        "{listing}"
    );
    assert!(listing.lines().any(|l| l == "check_cycle=1"), "{listing}");
}

#[test]
fn a_script_may_assign_a_key_again_and_the_last_assignment_counts() {
    let checked = checked(&format!(
        "{SCRIPT}check_cycle=30\nstrategy=rr\ncheck_cycle=2\nstrategy=maglev\ncheck_cycle=1\n"
    ));
    assert_eq!(checked.config.check_cycle, Duration::from_secs(1));
    assert_eq!(checked.config.strategy, crate::balancing::Strategy::Maglev);
    assert_eq!(
        checked.config.check_timeout,
        millis(500),
        "from the last cycle"
    );
    let reassigned = |key, earlier_line, line| ConfigWarning::Reassigned {
        file: "test.conf".to_owned(),
        key,
        earlier_line,
        line,
    };
    assert_eq!(
        checked.warnings,
        [
            reassigned("check_cycle", 4, 6),
            reassigned("strategy", 5, 7),
            reassigned("check_cycle", 6, 8),
        ]
    );
    assert_eq!(
        checked.warnings[0].to_string(),
        "test.conf:6: warning: check_cycle is assigned again; as in the shell, this \
         assignment counts and the one at test.conf:4 is ignored"
    );
}

#[test]
fn a_reassigned_key_is_checked_at_the_line_that_counts() {
    assert_eq!(
        errors(&format!(
            "{SCRIPT}check_timeout=1\ncheck_cycle=1\ncheck_timeout=2\n"
        )),
        [
            "test.conf:6: check_timeout (2 s) must be shorter than check_cycle (1 s, line 5), \
          or checks would overlap; shorten it, or leave it out for the default \
          (half the cycle, at most 2 s)"
        ]
    );
    // Servers are a list in both formats: a second line adds one, with no warning.
    let config = parse(&format!("{SCRIPT}server4=198.19.0.2\n"));
    assert_eq!(config.servers4.len(), 2);
}

#[test]
fn our_own_format_refuses_a_key_set_twice() {
    assert_eq!(
        errors(&format!("{MINIMAL}check_cycle=30\ncheck_cycle=2\n")),
        ["test.conf:4: check_cycle is already set on line 3"]
    );
    assert_eq!(
        errors(&format!("{MINIMAL}failover\nfailover = yes\n")),
        ["test.conf:4: failover is already set on line 3"]
    );
}
