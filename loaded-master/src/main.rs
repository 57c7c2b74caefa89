//! loaded-master: the root process of the loaded load balancer.
//!
//! Where to look: `master` (setup and run), `supervisor` (the event loop and one dispatch
//! function per child role), `rules` (iptables), `queues` (NFQUEUE sockets), `queue_drops` (the kernel's drop counters), `spawn`
//! (fork+exec of the children), `daemon` (daemon mode, pidfile), `syslog_sink` (logging).
//! Kernel mode (`forward=kernel`): `kernel_mode`, `nft`, `conntrack`, `server_slots`,
//! `bounded_command`.

mod backend_book;
mod bounded_command;
mod child_errors;
mod cli;
mod config_file;
mod conntrack;
mod control_server;
mod daemon;
mod kernel_mode;
mod log_budget;
mod master;
mod master_error;
mod nft;
mod operator;
mod queue_drops;
mod queues;
mod reload;
mod restart_policy;
mod route_interface;
mod rules;
mod server_slots;
mod spawn;
mod status;
mod supervisor;
mod syslog_sink;

fn main() {
    std::process::exit(master::main());
}
