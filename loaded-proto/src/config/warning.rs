//! What a config file does that loaded accepts but the admin should hear about. Typed, so
//! callers and tests look at what happened rather than at the wording.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A key assigned again in one of the original's shell scripts: legal shell, where the
    /// last assignment counts, so loaded takes it too (our own format refuses it).
    Reassigned {
        file: String,
        key: &'static str,
        /// 1-based; the assignment that no longer counts.
        earlier_line: usize,
        /// 1-based; the assignment in effect (unless a later one follows).
        line: usize,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::Reassigned {
                file,
                key,
                earlier_line,
                line,
            } => write!(
                f,
                "{file}:{line}: warning: {key} is assigned again; as in the shell, this \
                 assignment counts and the one at {file}:{earlier_line} is ignored"
            ),
        }
    }
}
