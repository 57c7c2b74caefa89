//! Every config the original loaded accepted starts, with the same meaning: its sample
//! scripts, short check cycles for fast failover with or without a check_timeout, and keys a
//! script assigns twice (the last counts, with a warning).
//!
//! The `check_mode_*` tests run `loaded-master -t -c` and need neither root nor a network.
//! `an_original_script_with_a_two_second_cycle_starts_and_fails_over` starts the balancer
//! in the namespaces of a `TestNet`: it needs root and fails with the reason without it.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use support::balancer::*;
use support::*;

fn sample_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../etc")
        .join(name)
}

fn has_line(out: &Output, line: &str) -> bool {
    text(&out.stdout).lines().any(|l| l == line)
}

#[test]
fn check_mode_accepts_the_original_samples_as_they_are() {
    for (name, failover) in [("loaded.config", "no"), ("loaded.config6", "yes")] {
        let out = check_config(&sample_path(name));
        let what = describe(&format!("-t {name}"), &out);
        assert_eq!(out.status.code(), Some(0), "{what}");
        assert!(has_line(&out, "# configuration OK"), "{what}");
        assert!(text(&out.stderr).is_empty(), "no warnings: {what}");
        for line in [
            "check_cycle=30",
            "check_timeout=2",
            "rules=manual",
            &format!("failover={failover}"),
        ] {
            assert!(has_line(&out, line), "no line `{line}`: {what}");
        }
    }
}

/// One cell of the matrix: the lines added to a base config.
struct Case {
    cycle: &'static str,
    timeout: Option<&'static str>,
    rise_fall: Option<(u32, u32)>,
    failover: bool,
}

impl Case {
    fn lines(&self) -> String {
        let mut lines = format!("check_cycle={}\n", self.cycle);
        if let Some(timeout) = self.timeout {
            lines.push_str(&format!("check_timeout={timeout}\n"));
        }
        if let Some((rise, fall)) = self.rise_fall {
            lines.push_str(&format!("rise={rise}\nfall={fall}\n"));
        }
        if self.failover {
            lines.push_str("failover\n");
        }
        lines
    }

    /// The timeout `-t` prints, or `None` when the file must be refused.
    fn expected_timeout(&self) -> Option<&'static str> {
        match (self.cycle, self.timeout) {
            // The adaptive default: half the cycle, at most 2 s.
            ("1", None) => Some("500ms"),
            ("2", None) => Some("1"),
            ("30", None) => Some("2"),
            (_, Some("0.5")) => Some("500ms"),
            ("1", Some("1")) => None,
            (_, Some("1")) => Some("1"),
            (_, Some(_)) => None,
            (cycle, None) => unreachable!("no expectation for check_cycle={cycle}"),
        }
    }
}

/// The original's samples, with the case's lines in place of their `check_cycle=30` (where
/// an admin edits them, before the script's commands), and a file of our own format.
fn bases() -> Vec<(&'static str, String)> {
    let mut bases: Vec<(&'static str, String)> = ["loaded.config", "loaded.config6"]
        .into_iter()
        .map(|name| {
            let text = fs::read_to_string(sample_path(name)).expect("sample");
            let without_cycle: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("check_cycle="))
                .collect();
            assert_eq!(
                without_cycle.len() + 1,
                text.lines().count(),
                "{name} has one check_cycle line"
            );
            (name, text)
        })
        .collect();
    bases.push((
        "ours.conf",
        "VIP4=198.18.0.10\nserver4=198.19.0.11\nRIP4=198.19.0.0/16\ncheck_cycle=30\n".to_owned(),
    ));
    bases
}

fn with_case(base: &str, case: &Case) -> String {
    base.lines()
        .map(|l| {
            if l.starts_with("check_cycle=") {
                case.lines()
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// 1-based line of the first line starting with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {prefix} line in\n{text}"))
}

#[test]
fn check_mode_over_cycles_timeouts_rise_fall_and_failover() {
    let dir = TempDir::new("compat-matrix");
    let mut checked = 0;
    for (base_name, base) in bases() {
        for cycle in ["1", "2", "30"] {
            let too_long = cycle; // a timeout as long as the cycle
            for timeout in [None, Some("0.5"), Some("1"), Some(too_long)] {
                for rise_fall in [None, Some((1, 1)), Some((5, 4))] {
                    for failover in [false, true] {
                        let case = Case {
                            cycle,
                            timeout,
                            rise_fall,
                            failover,
                        };
                        let config = with_case(&base, &case);
                        let path = dir.write(base_name, &config);
                        let out = check_config(&path);
                        let what =
                            describe(&format!("-t {base_name} with\n{}", case.lines()), &out);
                        match case.expected_timeout() {
                            Some(timeout) => {
                                assert_eq!(out.status.code(), Some(0), "{what}");
                                let (rise, fall) = rise_fall.unwrap_or((2, 3));
                                let failover_on = failover || base_name == "loaded.config6";
                                for line in [
                                    format!("check_cycle={cycle}"),
                                    format!("check_timeout={timeout}"),
                                    format!("rise={rise}"),
                                    format!("fall={fall}"),
                                    format!("failover={}", if failover_on { "yes" } else { "no" }),
                                    "# configuration OK".to_owned(),
                                ] {
                                    assert!(has_line(&out, &line), "no line `{line}`: {what}");
                                }
                            }
                            None => {
                                assert_eq!(out.status.code(), Some(1), "{what}");
                                let at = format!(
                                    "{}:{}: check_timeout (",
                                    path.display(),
                                    line_of(&config, "check_timeout=")
                                );
                                let stderr = text(&out.stderr);
                                assert!(
                                    stderr.contains(&at)
                                        && stderr.contains("must be shorter than check_cycle"),
                                    "expected `{at}`: {what}"
                                );
                                assert!(!has_line(&out, "# configuration OK"), "{what}");
                            }
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 4 * 3 * 2);
}

#[test]
fn check_mode_takes_the_last_of_a_scripts_repeated_key_and_warns() {
    let dir = TempDir::new("compat-repeat");
    let script = "#!/bin/sh\nVIP4=198.18.0.10\nserver4=198.19.0.11\ncheck_cycle=30\n\
                  failover\ncheck_cycle=2\necho done\n";
    let path = dir.write("loaded.config", script);
    let out = check_config(&path);
    let what = describe("-t with check_cycle twice", &out);
    assert_eq!(out.status.code(), Some(0), "{what}");
    assert!(has_line(&out, "check_cycle=2"), "{what}");
    assert!(has_line(&out, "check_timeout=1"), "{what}");
    let file = path.display();
    let warning = format!(
        "{file}:6: warning: check_cycle is assigned again; as in the shell, this assignment \
         counts and the one at {file}:4 is ignored"
    );
    assert_eq!(text(&out.stderr).trim_end(), warning, "{what}");

    let ours = dir.write(
        "loaded.conf",
        "VIP4=198.18.0.10\nserver4=198.19.0.11\ncheck_cycle=30\ncheck_cycle=2\n",
    );
    let out = check_config(&ours);
    let what = describe("-t ours with check_cycle twice", &out);
    assert_eq!(out.status.code(), Some(1), "{what}");
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!("{}:4: check_cycle is already set on line 3", ours.display()),
        "{what}"
    );
}

/// The original's style end to end: a `#!` script with `failover`, a cycle of 2 s set after
/// the sample's 30 and no check_timeout. It must start (the timeout adapts to 1 s), serve
/// both VIPs, run the prober on the 2 s cycle (a stopped server is out well before a 30 s
/// cycle could notice), warn about the reassigned key in the log, and stop cleanly.
#[test]
fn an_original_script_with_a_two_second_cycle_starts_and_fails_over() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let mut script = String::from("#!/bin/sh\n# as the original's loaded.config\n");
    // The harness runs no script, so loaded installs the NFQUEUE rules itself.
    script.push_str(&base_config(
        &net,
        "rules=auto\ncheck_cycle=30\nfailover\ncheck_cycle=2\n",
    ));
    script.push_str("modprobe nfnetlink_queue || true\n");
    let master = Master::start(&net, &script, &[]);
    let config_file = master.config.display().to_string();
    let cycle_line = line_of(&script, "check_cycle=2");

    let log = master.log(&net);
    let warning = format!(
        "{config_file}:{cycle_line}: warning: check_cycle is assigned again; as in the shell, \
         this assignment counts and the one at {config_file}:{} is ignored",
        line_of(&script, "check_cycle=30")
    );
    assert!(log.contains(&warning), "no `{warning}` in the log:\n{log}");
    for vip in [VIP4, VIP6] {
        let body = net
            .curl(&http_url(vip, HTTP_PORT, "/"), secs(5))
            .unwrap_or_else(|e| panic!("{vip}: {e}\n{}", master.log(&net)));
        assert!(body.starts_with("backend=b"), "{vip} answered {body:?}");
    }
    assert_eq!(
        children_named(&net, "loaded-prober").len(),
        1,
        "{}",
        master.log(&net)
    );

    // fall (3) rounds of 2 s plus their 1 s timeouts: about 9 s; a 30 s cycle would need 60.
    net.stop_backend(2);
    let down = wait_until(secs(20), || {
        let log = master.log(&net);
        [BACKEND4[1], BACKEND6[1]]
            .iter()
            .all(|server| log.contains(&format!("server {server} is down")))
    });
    assert!(down, "b2 not taken out:\n{}", master.log(&net));
    let answers: Vec<String> = (0..6)
        .map(|_| {
            net.curl(&http_url(VIP4, HTTP_PORT, "/"), secs(5))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        answers
            .iter()
            .all(|a| a.starts_with("backend=b") && !a.contains("b2")),
        "{answers:?}"
    );

    master.stop_cleanly(&net);
}
