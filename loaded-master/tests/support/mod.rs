//! The network-namespace harness of loaded's end-to-end tests.
//!
//! `TestNet::up` builds the demo network of `etc/demo/topology.sh` under a unique prefix:
//!
//! ```text
//! cli (c0 198.18.0.2, fd00:18::2)
//!  └─ rtr (r0 198.18.0.1, fd00:18::1 | r1 198.18.1.2, fd00:18:1::2)
//!      └─ lb (l0 198.18.1.1, fd00:18:1::1; VIPs 198.18.100.1, fd00:100::1 on lo;
//!          │   br0 198.19.0.1, fd00:19::1)
//!          └─ b1..b3 (198.19.0.11-13, fd00:19::11-13), b4 with `Options::backends(4)`
//! ```
//!
//! Everything happens inside the namespaces: nothing is added to the root namespace, and
//! the harness adds no firewall rule (the balancer adds its own). Every command the harness
//! runs is bounded in time. Dropping the `TestNet` stops the processes it spawned (by pid),
//! then `topology.sh down` kills whatever is left inside the namespaces and deletes them;
//! this also happens when the test panics, and the drop itself never panics.
//!
//! Nothing here needs the balancer's binaries: the tests start the balancer themselves
//! (e.g. `net.spawn(Host::Balancer, &[master, "-D", "-c", config])`).
//!
//! The tests need root and `ip`, `iptables`, `ip6tables`, `python3`, `curl`, `nft` and
//! `conntrack` (kernel mode); without them they fail (not skip) with the reason, see
//! `require_root_and_tools`.
//!
//! One job per file: `topology` (the names and addresses of the lab), `requirements`
//! (root and tools), `process` (bounded commands and child processes), `wait` (polling for
//! a condition), `temp_dir` (a directory of a test's own), `nfqueue` (the kernel's queue
//! listing), `lab` (`TestNet`: building the namespaces, `lab/processes` spawning in them,
//! `lab/traffic` sending from them, `lab/inspect` reading their state), `balancer`
//! (running loaded-master), `worker_totals`.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

pub mod balancer;
mod lab;
mod nfqueue;
mod process;
mod requirements;
mod temp_dir;
mod topology;
mod wait;
pub mod worker_totals;

// Each test binary uses some of these; the rest are unused there.
#[allow(unused_imports)]
pub use lab::*;
#[allow(unused_imports)]
pub use nfqueue::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use requirements::*;
#[allow(unused_imports)]
pub use temp_dir::TempDir;
#[allow(unused_imports)]
pub use topology::*;
#[allow(unused_imports)]
pub use wait::*;
