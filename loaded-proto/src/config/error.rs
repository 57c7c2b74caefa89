//! What went wrong in a config file, said the way compilers say it so editors can jump there.

use super::problem::ConfigProblem;
use std::fmt;

/// One problem, at a line of a file or with the file as a whole.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; `None` when the problem is not at any one line (a missing VIP, an unreadable file).
    pub line: Option<usize>,
    pub problem: ConfigProblem,
}

impl ConfigError {
    pub fn at_line(file: &str, line: usize, problem: impl Into<ConfigProblem>) -> Self {
        ConfigError {
            file: file.to_owned(),
            line: Some(line),
            problem: problem.into(),
        }
    }

    pub fn in_file(file: &str, problem: impl Into<ConfigProblem>) -> Self {
        ConfigError {
            file: file.to_owned(),
            line: None,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.problem),
            None => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one file, so the admin can fix them all in one go.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::super::line_error::LineError;
    use super::*;

    #[test]
    fn one_line_per_error_with_or_without_line_number() {
        let errors = ConfigErrors(vec![
            ConfigError::at_line(
                "loaded.conf",
                7,
                LineError::UnknownKey {
                    name: "x".to_owned(),
                    known: vec!["VIP4"],
                },
            ),
            ConfigError::in_file("loaded.conf", ConfigProblem::NoVip),
        ]);
        assert_eq!(
            errors.to_string(),
            "loaded.conf:7: unknown key 'x'\nloaded.conf: neither VIP4 nor VIP6 is set; \
             loaded needs at least one address to balance"
        );
    }
}
