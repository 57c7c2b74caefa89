//! From the lines of a file to settings, remembering where each came from so that the
//! cross-field checks can point at the right line.

use super::duration;
use super::error::ConfigError;
use super::keys::{self, Key};
use super::line::{classify, value_of, Dialect, Line};
use super::line_error::LineError;
use super::model::{Config, Rules};
use super::values;
use super::warning::ConfigWarning;
use crate::balancing::{Stickiness, Strategy};
use crate::forwarding::Forward;
use std::collections::{HashMap, HashSet};

/// Where each setting was made.
#[derive(Debug, Default)]
pub struct SourceLines {
    set_at: HashMap<Key, usize>,
    failed: HashSet<Key>,
    /// Parallel to `Config::servers4`.
    pub servers4: Vec<usize>,
    /// Parallel to `Config::servers6`.
    pub servers6: Vec<usize>,
}

impl SourceLines {
    pub fn line_of(&self, key: Key) -> Option<usize> {
        self.set_at.get(&key).copied()
    }

    /// A key whose value was refused; checks that involve it would only add noise.
    pub fn failed(&self, key: Key) -> bool {
        self.failed.contains(&key)
    }
}

pub struct Parsed {
    pub config: Config,
    pub lines: SourceLines,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

pub fn read_settings(text: &str, file: &str) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let dialect = Dialect::of(text);
    let mut config = Config::default();
    if dialect == Dialect::Shell {
        // The original's scripts install their own NFQUEUE rules, as the admin runs them;
        // loaded adding a second set would queue every reply twice.
        config.rules = Rules::Manual;
    }
    let mut parsed = Parsed {
        config,
        lines: SourceLines::default(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut continues_previous = false;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        // A shell command broken over lines with a trailing backslash goes on in the next
        // line, which may then look like an assignment while being the command's argument.
        let is_continuation = continues_previous;
        continues_previous = dialect == Dialect::Shell
            && !line.trim_start().starts_with('#')
            && line.trim_end().ends_with('\\');
        if is_continuation {
            continue;
        }
        if let Err(error) = read_line(&mut parsed, line, dialect, file, line_number) {
            parsed
                .errors
                .push(ConfigError::at_line(file, line_number, error));
        }
    }
    parsed
}

fn read_line(
    parsed: &mut Parsed,
    line: &str,
    dialect: Dialect,
    file: &str,
    line_number: usize,
) -> Result<(), LineError> {
    let (key, raw_value) = match classify(line, dialect) {
        Line::Blank => return Ok(()),
        Line::Failover => (Key::Failover, "yes"),
        Line::Other if dialect == Dialect::Shell => return Ok(()),
        Line::Other => return Err(LineError::NotAnAssignment(line.trim().to_owned())),
        Line::Assignment {
            key: name,
            raw_value,
        } => match Key::from_name(name) {
            Some(key) => (key, raw_value),
            // The script's own variables.
            None if dialect == Dialect::Shell => return Ok(()),
            None => {
                return Err(LineError::UnknownKey {
                    name: name.to_owned(),
                    known: Key::all_names(),
                })
            }
        },
    };
    let result = set(parsed, key, raw_value, dialect, file, line_number);
    if result.is_err() {
        parsed.lines.failed.insert(key);
    }
    result
}

fn set(
    parsed: &mut Parsed,
    key: Key,
    raw_value: &str,
    dialect: Dialect,
    file: &str,
    line_number: usize,
) -> Result<(), LineError> {
    let value = value_of(raw_value, dialect)?;
    if let Some(earlier_line) = parsed.lines.line_of(key).filter(|_| !key.is_repeatable()) {
        match dialect {
            // Legal shell, and the script the admin runs sees the last value: so do we.
            Dialect::Shell => parsed.warnings.push(ConfigWarning::Reassigned {
                file: file.to_owned(),
                key: key.name(),
                earlier_line,
                line: line_number,
            }),
            // In our own files a second value is a contradiction to resolve, not a rule
            // to apply silently.
            Dialect::Native => {
                return Err(LineError::AlreadySet {
                    key: key.name(),
                    earlier_line,
                })
            }
        }
    }
    if value.contains('$') {
        // A script may compute values loaded never uses; leaving them unset is faithful.
        if dialect == Dialect::Shell && key.is_script_only(dialect) {
            return Ok(());
        }
        return Err(LineError::ShellVariable {
            key: key.name(),
            value: value.to_owned(),
        });
    }
    if value.is_empty() {
        if key.is_script_only(dialect) {
            return Ok(());
        }
        return Err(LineError::NoValue(key.name()));
    }
    apply(&mut parsed.config, key, value)?;
    match key {
        Key::Server4 => parsed.lines.servers4.push(line_number),
        Key::Server6 => parsed.lines.servers6.push(line_number),
        _ => {
            parsed.lines.set_at.insert(key, line_number);
        }
    }
    Ok(())
}

fn apply(config: &mut Config, key: Key, value: &str) -> Result<(), LineError> {
    let name = key.name();
    let script_value = || Some(value.to_owned());
    match key {
        Key::Vip4 => config.vip4 = Some(values::ipv4(name, value)?),
        Key::Vip6 => config.vip6 = Some(values::ipv6(name, value)?),
        Key::Server4 => config.servers4.push(values::server(name, value, true)?),
        Key::Server6 => config.servers6.push(values::server(name, value, false)?),
        Key::Strategy => {
            let strategies = [
                ("rr", Strategy::RoundRobin),
                ("weighted", Strategy::Weighted),
                ("maglev", Strategy::Maglev),
            ];
            config.strategy = values::choice(name, value, &strategies)?;
        }
        Key::Stickiness => {
            config.stickiness = values::choice(
                name,
                value,
                &[("client", Stickiness::Client), ("flow", Stickiness::Flow)],
            )?
        }
        Key::MaglevSeed => config.maglev_seed = Some(values::seed(name, value)?),
        Key::MaxFlows => config.max_flows = values::number(name, value, keys::MAX_FLOWS_RANGE)?,
        Key::FlowTimeout => {
            config.flow_timeout = values::seconds(name, value, keys::FLOW_TIMEOUT_RANGE)?
        }
        Key::NfqLen => config.nfq_len = values::number(name, value, keys::NFQ_LEN_RANGE)?,
        Key::FirstCore => config.first_core = Some(values::number(name, value, keys::CORE_RANGE)?),
        Key::LastCore => config.last_core = Some(values::number(name, value, keys::CORE_RANGE)?),
        Key::Rules => {
            config.rules = values::choice(
                name,
                value,
                &[("auto", Rules::Auto), ("manual", Rules::Manual)],
            )?
        }
        Key::Forward => {
            config.forward = values::choice(
                name,
                value,
                &[
                    ("userspace", Forward::Userspace),
                    ("kernel", Forward::Kernel),
                ],
            )?
        }
        Key::PortAlive => config.port_alive = values::number(name, value, keys::PORT_RANGE)?,
        Key::CheckCycle => {
            config.check_cycle = duration::parse(name, value, keys::CHECK_CYCLE_RANGE)?
        }
        Key::CheckTimeout => {
            config.check_timeout = duration::parse(name, value, keys::CHECK_TIMEOUT_RANGE)?
        }
        Key::Rise => config.rise = values::number(name, value, keys::RISE_FALL_RANGE)?,
        Key::Fall => config.fall = values::number(name, value, keys::RISE_FALL_RANGE)?,
        Key::Broadcast => {
            config.broadcast = Some(values::ipv4(name, value).map_err(|error| {
                if value.contains(':') {
                    error.with_hint("use broadcast6 for IPv6")
                } else {
                    error
                }
            })?)
        }
        Key::Broadcast6 => config.broadcast6 = Some(values::ipv6(name, value)?),
        Key::Failover => config.failover = values::yes_no(name, value)?,
        Key::Rip4 => config.rip4 = Some(values::network(name, value, true)?),
        Key::Rip6 => config.rip6 = Some(values::network(name, value, false)?),
        Key::PrivateNic => config.private_nic = Some(values::interface(name, value)?),
        Key::Pidfile => config.pidfile = values::absolute_path(name, value)?,
        Key::Chroot => config.chroot = values::absolute_path(name, value)?,
        Key::User => config.user = values::user(name, value)?,
        Key::LogSocket => config.log_socket = values::absolute_path(name, value)?,
        Key::ControlSocket => config.control_socket = values::absolute_path(name, value)?,
        Key::ControlGroup => config.control_group = values::group(name, value)?,
        Key::Vip4Net => config.script.vip4_net = script_value(),
        Key::Vip6Net => config.script.vip6_net = script_value(),
        Key::Ns => config.script.ns = script_value(),
        Key::PublicNic => config.script.public_nic = script_value(),
        Key::PrivateGw => config.script.private_gw = script_value(),
    }
    Ok(())
}
