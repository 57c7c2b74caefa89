//! Parsing a config text in the tests: the settings, or the errors as the admin reads them.

use super::*;

pub fn checked(text: &str) -> Checked {
    Config::parse(text, "test.conf").unwrap_or_else(|errors| panic!("{errors}"))
}

/// A file that loads without errors or warnings.
pub fn parse(text: &str) -> Config {
    let checked = checked(text);
    assert_eq!(checked.warnings, [], "unexpected warnings");
    checked.config
}

/// A file that does not load: each error as printed.
pub fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, "test.conf") {
        Ok(checked) => panic!("expected errors, got\n{}", checked.config),
        Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}
