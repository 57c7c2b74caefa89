//! The datapath: what a worker does to each queued packet.
//!
//! `wire` holds zero-copy views over packet bytes, `nat` decides and performs the rewrite,
//! `flow_table` keeps the client-to-server mappings in memory shared by all workers, and
//! `scheduler` picks a server for a new mapping. `flow` has the types they share.

pub mod balancer;
pub mod flow;
pub mod kernel_forward;
pub mod nat;
pub mod scheduler;
