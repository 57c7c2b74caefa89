//! Why one value's text is not a setting: one variant per kind of value, carrying what the
//! message needs. Every message says what would have been accepted, since the admin reading
//! it has only the message and the file.

use super::suggest::did_you_mean;
use std::fmt;
use std::ops::RangeInclusive;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// Not a whole number in `range` (signs and fractions included).
    NotANumber {
        key: String,
        text: String,
        range: RangeInclusive<u64>,
    },
    /// Not exactly 32 hex digits.
    NotASeed {
        key: String,
        text: String,
    },
    /// Not an address of the family `key` takes; `other_family` when it is one of the
    /// other family. `hint` names the key that takes it, where there is one.
    NotAnAddress {
        key: String,
        text: String,
        want_v4: bool,
        other_family: bool,
        hint: Option<&'static str>,
    },
    /// Not a network (or host address) of the family `key` takes.
    NotANetwork {
        key: String,
        text: String,
        want_v4: bool,
    },
    /// After a server's address, a word that is not `weight=N`.
    NotAWeight {
        key: String,
        word: String,
    },
    /// None of the words `key` takes.
    NotAChoice {
        key: String,
        text: String,
        choices: Vec<&'static str>,
    },
    NotAbsolute {
        key: String,
        text: String,
    },
    NotAUser {
        key: String,
        text: String,
    },
    NotAnInterface {
        key: String,
        text: String,
    },
    NotAGroup {
        key: String,
        text: String,
    },
}

impl ValueError {
    /// An address of the other family gets a pointer to the key that takes it.
    pub fn with_hint(self, hint: &'static str) -> ValueError {
        match self {
            ValueError::NotAnAddress {
                key,
                text,
                want_v4,
                other_family,
                hint: _,
            } => ValueError::NotAnAddress {
                key,
                text,
                want_v4,
                other_family,
                hint: Some(hint),
            },
            other => other,
        }
    }
}

fn family(v4: bool) -> &'static str {
    if v4 {
        "IPv4"
    } else {
        "IPv6"
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::NotANumber { key, text, range } => write!(
                f,
                "{key} must be a whole number from {} to {}, not '{text}'",
                range.start(),
                range.end()
            ),
            ValueError::NotASeed { key, text } => write!(
                f,
                "{key} must be 32 hex digits (128 bits), e.g. the output of 'openssl rand -hex 16', not '{text}'"
            ),
            ValueError::NotAnAddress {
                key,
                text,
                want_v4,
                other_family,
                hint,
            } => {
                write!(f, "{key} must be an {} address, not ", family(*want_v4))?;
                if *other_family {
                    write!(f, "the {} address ", family(!want_v4))?;
                }
                write!(f, "'{text}'")?;
                match hint {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            ValueError::NotANetwork { key, text, want_v4 } => {
                let example = if *want_v4 {
                    "198.19.0.0/16"
                } else {
                    "fd00:19::/64"
                };
                write!(
                    f,
                    "{key} must be an {} network like {example}, not '{text}'",
                    family(*want_v4)
                )
            }
            ValueError::NotAWeight { key, word } => write!(
                f,
                "after the address of {key} only 'weight=N' may follow, not '{word}'"
            ),
            ValueError::NotAChoice { key, text, choices } => write!(
                f,
                "{key} must be one of {}, not '{text}'{}",
                choices.join(", "),
                did_you_mean(text, choices)
            ),
            ValueError::NotAbsolute { key, text } => {
                write!(f, "{key} must be an absolute path, not '{text}'")
            }
            ValueError::NotAUser { key, text } => {
                write!(f, "{key} must be one user name or id, not '{text}'")
            }
            ValueError::NotAGroup { key, text } => {
                write!(f, "{key} must be one group name or id, not '{text}'")
            }
            ValueError::NotAnInterface { key, text } => write!(
                f,
                "{key} must be a network interface name (at most 15 characters, no '/' or spaces), not '{text}'"
            ),
        }
    }
}

impl std::error::Error for ValueError {}
