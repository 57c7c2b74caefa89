//! The datapath: what a worker does to each queued packet.
//!
//! `nat` decides and performs the rewrite, `balancer` keeps the client-to-server mappings
//! in the flow table shared by all workers, and `scheduler` picks a server for a new
//! mapping. `flow` has the types they share. The packet views (`loaded_proto::wire`) and the
//! flow table (`loaded_proto::flow_table`) live in loaded-proto: the master and the prober
//! use them too.

pub mod balancer;
pub mod flow;
pub mod kernel_forward;
pub mod nat;
pub mod scheduler;
