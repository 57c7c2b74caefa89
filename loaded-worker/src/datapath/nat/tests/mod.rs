//! Tests of the NAT rewrite as a whole: golden packets, decisions, malformed input, and
//! properties over generated packets.

mod builder;
mod decisions;
pub(crate) mod golden;
mod golden_rewrites;
mod malformed;
mod properties;
mod support;
