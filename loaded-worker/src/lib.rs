//! loaded-worker: the datapath process. One runs per core, unprivileged and chrooted, and
//! gives every packet of its NFQUEUE exactly one verdict.
//!
//! Where to look: `worker` (the process's `run`), `packet_loop` (the NFQUEUE loop), `nfqueue` (batched netlink I/O),
//! `datapath` (packet views, NAT rewrite, shared flow table, schedulers), `counters`.

pub mod counters;
pub mod datapath;
pub mod nfqueue;
pub mod packet_loop;
pub mod prober_link;
pub mod sandbox;
pub mod setup_error;
pub mod worker;
