//! What `loadedctl status` and `metrics` report, assembled by the master from what it
//! holds: the running config (VIPs, strategy, stickiness), the backend book (every server,
//! up or down, since when and why), the operator's drains and weights, the flow table's
//! live mappings per directory slot, and the sum of the workers' shared counters.

use crate::backend_book::BackendBook;
use crate::operator::OperatorState;
use loaded_proto::config::Config;
use loaded_proto::control::{ProberStatus, ServerState, ServerStatus, Status, VipStatus};
use loaded_proto::counters::{BlockTotals, SharedCounters};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a server's mappings and traffic are counted.
pub trait SlotSource {
    /// The server's flow table directory slot (every worker's and the counters' index).
    fn slot_of(&mut self, server: IpAddr) -> Option<usize>;
    /// Mappings to the server in `slot` now, across all workers.
    fn live_mappings(&self, slot: usize) -> u64;
}

pub struct Sources<'a> {
    pub config: &'a Config,
    pub book: &'a BackendBook,
    pub operator: &'a OperatorState,
    pub counters: &'a SharedCounters,
    pub prober: ProberStatus,
}

pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

pub fn build(sources: &Sources<'_>, slots: &mut dyn SlotSource) -> Status {
    let sum = sources.counters.sum();
    let config = sources.config;
    let vips = [config.vip4.map(IpAddr::from), config.vip6.map(IpAddr::from)];
    let vips = vips
        .into_iter()
        .flatten()
        .map(|vip| VipStatus {
            vip,
            strategy: config.strategy,
            stickiness: config.stickiness,
            servers: sources
                .book
                .entries()
                .iter()
                .filter(|entry| entry.backend.addr.is_ipv4() == vip.is_ipv4())
                .map(|entry| {
                    let server = entry.backend.addr;
                    let slot = slots.slot_of(server);
                    server_status(sources, &sum, slots, slot, entry)
                })
                .collect(),
        })
        .collect();
    Status {
        vips,
        drops: sum.drop_counts(),
        workers: sources.counters.worker_statuses(),
        prober: sources.prober,
    }
}

fn server_status(
    sources: &Sources<'_>,
    sum: &BlockTotals,
    slots: &dyn SlotSource,
    slot: Option<usize>,
    entry: &crate::backend_book::BookEntry,
) -> ServerStatus {
    let server = entry.backend.addr;
    let traffic = slot
        .and_then(|slot| sum.servers.get(slot))
        .copied()
        .unwrap_or_default();
    ServerStatus {
        server,
        state: ServerState {
            up: entry.health.in_service(),
            draining: sources.operator.is_drained(server),
        },
        since: unix_seconds(entry.since),
        reason: Some(entry.reason.to_string()),
        weight: sources
            .operator
            .weight_of(server)
            .unwrap_or(entry.backend.weight),
        active_mappings: slot.map_or(0, |slot| slots.live_mappings(slot)),
        new_flows: traffic.new_flows,
        packets_to_server: traffic.packets_to,
        bytes_to_server: traffic.bytes_to,
        packets_from_server: traffic.packets_from,
        bytes_from_server: traffic.bytes_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loaded_proto::message::{BackendUpdate, StateReason};
    use std::collections::HashMap;
    use std::os::fd::AsFd;
    use std::time::Duration;

    struct Slots(HashMap<IpAddr, usize>);

    impl SlotSource for Slots {
        fn slot_of(&mut self, server: IpAddr) -> Option<usize> {
            self.0.get(&server).copied()
        }
        fn live_mappings(&self, slot: usize) -> u64 {
            10 + slot as u64
        }
    }

    #[test]
    fn every_vip_and_server_with_its_state_weight_and_counters() {
        let config = Config::parse(
            "VIP4=198.18.100.1\nVIP6=fd00:100::1\nserver4=198.19.0.11\n\
             server4=198.19.0.12 weight=2\nserver6=fd00:19::11\nstrategy=weighted\n",
            "t",
        )
        .unwrap()
        .config;
        let start = UNIX_EPOCH + Duration::from_secs(1_765_000_000);
        let mut book = BackendBook::new(&config, start);
        let down: IpAddr = "198.19.0.12".parse().unwrap();
        book.record(
            BackendUpdate::Down(down),
            StateReason::NoEchoReply,
            start + Duration::from_secs(60),
        )
        .unwrap();
        let mut operator = OperatorState::default();
        operator.drain(down);
        operator.set_weight("fd00:19::11".parse().unwrap(), 9);
        let region = loaded_proto::counters::create_region(2).unwrap();
        let counters = SharedCounters::map(region.as_fd(), 2).unwrap();
        for worker in 0..2 {
            let block =
                loaded_proto::counters::WorkerCounters::map(region.as_fd(), 2, worker).unwrap();
            block.count_packet();
            block.count_drop(2);
            block.count_new_flow(1);
            block.count_to_server(1, 100);
            block.count_from_server(1, 40);
            block.add_receive_overruns(worker as u64);
        }
        let mut slots = Slots(
            [("198.19.0.11", 0), ("198.19.0.12", 1), ("fd00:19::11", 2)]
                .into_iter()
                .map(|(a, s)| (a.parse().unwrap(), s))
                .collect(),
        );
        let status = build(
            &Sources {
                config: &config,
                book: &book,
                operator: &operator,
                counters: &counters,
                prober: ProberStatus {
                    running: false,
                    last_round: None,
                },
            },
            &mut slots,
        );
        assert_eq!(status.vips.len(), 2);
        let v4 = &status.vips[0];
        assert_eq!(v4.vip, "198.18.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(v4.servers.len(), 2);
        let drained = &v4.servers[1];
        assert_eq!(drained.server, down);
        assert_eq!(drained.state.words(), "down,draining");
        assert_eq!(drained.since, 1_765_000_060);
        assert_eq!(drained.reason.as_deref(), Some("no reply to ping"));
        assert_eq!(drained.weight, 2);
        assert_eq!(drained.active_mappings, 11);
        assert_eq!(
            (
                drained.new_flows,
                drained.packets_to_server,
                drained.bytes_to_server
            ),
            (2, 2, 200)
        );
        assert_eq!(
            (drained.packets_from_server, drained.bytes_from_server),
            (2, 80)
        );
        assert_eq!(v4.servers[0].state.words(), "up");
        assert_eq!(v4.servers[0].new_flows, 0);
        let v6 = &status.vips[1];
        assert_eq!(v6.servers.len(), 1);
        assert_eq!(v6.servers[0].weight, 9);
        assert_eq!(status.drops[2].reason, "no_backend");
        assert_eq!(status.drops[2].packets, 2);
        assert_eq!(status.workers.len(), 2);
        assert_eq!(status.workers[1].receive_overruns, 1);
        assert_eq!(status.workers[0].packets, 1);
    }
}
