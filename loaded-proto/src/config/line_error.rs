//! Why one line of a config file sets nothing: one variant per cause. The file and line
//! are added by the parser (`ConfigError`).

use super::duration::DurationError;
use super::suggest::did_you_mean;
use super::value_error::ValueError;
use std::fmt;

/// A value's quoting that cannot be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuoteError {
    /// A quote inside an unquoted value.
    Inside(char),
    Unclosed(char),
    /// Text after the closing quote that is neither a comment nor (in a script) `;`.
    TextAfter {
        quote: char,
        text: String,
    },
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuoteError::Inside(quote) => write!(
                f,
                "a {quote} inside the value: quote the whole value, or none of it"
            ),
            QuoteError::Unclosed(quote) => write!(f, "the value has no closing {quote}"),
            QuoteError::TextAfter { quote, text } => {
                write!(f, "unexpected text after the closing {quote}: '{text}'")
            }
        }
    }
}

impl std::error::Error for QuoteError {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Neither blank, a comment, `failover`, nor `key=value`.
    NotAnAssignment(String),
    UnknownKey {
        name: String,
        known: Vec<&'static str>,
    },
    /// A key that may be set once, set again (in our own files).
    AlreadySet {
        key: &'static str,
        earlier_line: usize,
    },
    /// A `$`: loaded expands no shell variables.
    ShellVariable {
        key: &'static str,
        value: String,
    },
    NoValue(&'static str),
    Quote(QuoteError),
    Value(ValueError),
    Duration(DurationError),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotAnAssignment(line) => write!(f, "expected key=value, found '{line}'"),
            LineError::UnknownKey { name, known } => {
                write!(f, "unknown key '{name}'{}", did_you_mean(name, known))
            }
            LineError::AlreadySet { key, earlier_line } => {
                write!(f, "{key} is already set on line {earlier_line}")
            }
            LineError::ShellVariable { key, value } => write!(
                f,
                "{key}: '{value}' contains '$', but loaded does not expand shell variables; write the value itself"
            ),
            LineError::NoValue(key) => write!(f, "{key} has no value"),
            LineError::Quote(e) => e.fmt(f),
            LineError::Value(e) => e.fmt(f),
            LineError::Duration(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LineError {}

impl From<QuoteError> for LineError {
    fn from(e: QuoteError) -> Self {
        LineError::Quote(e)
    }
}

impl From<ValueError> for LineError {
    fn from(e: ValueError) -> Self {
        LineError::Value(e)
    }
}

impl From<DurationError> for LineError {
    fn from(e: DurationError) -> Self {
        LineError::Duration(e)
    }
}
