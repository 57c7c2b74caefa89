//! loaded-worker: the datapath process. One runs per core, unprivileged and chrooted, and
//! gives every packet of its NFQUEUE exactly one verdict.

pub mod datapath;
