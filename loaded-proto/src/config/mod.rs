//! The configuration file: the original loaded's shell-script format (kept so its users
//! keep their files) and our own annotated `key=value` format.
//!
//! A file whose first line starts with `#!` is read as a shell script: only `NAME=value`
//! assignments of names loaded knows are read, the rest belongs to the script. Any other file
//! is ours, and every line in it must mean something.

mod cores;
mod duration;
mod error;
mod keys;
mod line;
mod line_error;
mod model;
mod parse;
mod problem;
mod suggest;
mod validate;
pub use validate::is_link_scoped;
mod value_error;
mod values;
mod warning;

pub use cores::{choose_worker_cores, CoresError};
pub use duration::DurationError;
pub use error::{ConfigError, ConfigErrors};
pub use line_error::{LineError, QuoteError};
pub use model::{default_check_timeout, Config, FamilyError, Rules, ScriptSettings};
pub use model::{
    DEFAULT_CHECK_CYCLE, DEFAULT_CHECK_TIMEOUT, DEFAULT_CHROOT, DEFAULT_CONTROL_GROUP,
    DEFAULT_FALL, DEFAULT_FLOW_TIMEOUT, DEFAULT_LOG_SOCKET, DEFAULT_MAX_FLOWS, DEFAULT_NFQ_LEN,
    DEFAULT_PIDFILE, DEFAULT_PORT_ALIVE, DEFAULT_RISE, DEFAULT_USER,
};
pub use problem::ConfigProblem;
pub use value_error::ValueError;
pub use warning::ConfigWarning;

use keys::Key;
use std::path::Path;

/// A checked config and what the admin should hear about it. The warnings travel with the
/// config so that whoever shows the config (`loaded-master -t`) or acts on it (the start)
/// can pass them on; dropping them takes a deliberate `.config`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Checked {
    pub config: Config,
    /// In file order.
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// Reads and checks `path`. Bytes that are not UTF-8 (an old Latin-1 comment, say) are
    /// replaced rather than refused: only comments can hold them in a working file.
    pub fn load(path: &Path) -> Result<Checked, ConfigErrors> {
        let file_name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| {
            ConfigErrors(vec![ConfigError::in_file(
                &file_name,
                ConfigProblem::Unreadable(error),
            )])
        })?;
        Config::parse(&String::from_utf8_lossy(&bytes), &file_name)
    }

    /// Parses and checks the text of a config file; `file_name` only labels the errors.
    pub fn parse(text: &str, file_name: &str) -> Result<Checked, ConfigErrors> {
        let mut parsed = parse::read_settings(text, file_name);
        // The default follows the cycle, so it can only be set once the whole file is read
        // (check_cycle may come after, or be assigned again in a script).
        let timeout_given = parsed.lines.line_of(Key::CheckTimeout).is_some()
            || parsed.lines.failed(Key::CheckTimeout);
        if !timeout_given {
            parsed.config.check_timeout = default_check_timeout(parsed.config.check_cycle);
        }
        let mut errors = parsed.errors;
        errors.extend(validate::check(&parsed.config, &parsed.lines, file_name));
        if errors.is_empty() {
            return Ok(Checked {
                config: parsed.config,
                warnings: parsed.warnings,
            });
        }
        // In file order, as an editor's error list would be; whole-file problems last.
        errors.sort_by_key(|error| (error.line.is_none(), error.line));
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod compat_tests;
#[cfg(test)]
mod test_files;
#[cfg(test)]
mod tests;
