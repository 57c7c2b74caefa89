//! loaded-proto: what loaded's processes share: the config model and parser, the balancing
//! vocabulary, the one message enum, the channel that carries messages and descriptors, the
//! jail (privilege drop) and the children's log relay; and the packet views (`wire`) and the
//! shared flow table (`flow_table`): the worker rewrites with both, the prober builds and
//! reads its echo packets with `wire`, the master creates the table and fills its directory.

pub mod balancing;
pub mod channel;
pub mod child;
pub mod child_args;
pub mod config;
pub mod control;
pub mod counters;
pub mod flow_table;
pub mod forwarding;
pub mod jail;
pub mod message;
pub mod random;
pub mod relay_log;
pub mod reload;
pub mod roles;
pub mod seccomp;
pub mod setup_message;
pub mod wire;
