//! loaded-proto: what loaded's processes share.

pub mod balancing;
pub mod config;
