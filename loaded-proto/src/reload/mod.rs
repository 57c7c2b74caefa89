//! Reloading the config (SIGHUP): which settings can change while loaded runs, what each
//! child is told of them, and how two configs differ.
//!
//! The master parses the new file, compares it with the config it runs ([`diff`]), keeps
//! every setting that needs a restart as it is ([`ConfigDiff::applied`]) and sends each
//! worker its [`BalancingSettings`] and the prober its [`HealthSettings`].

mod diff;
mod settings;
#[cfg(test)]
mod tests;

pub use diff::{diff, ConfigDiff, Reweighted};
pub use settings::{BalancingSettings, HealthSettings};
