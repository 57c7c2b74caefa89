//! The master's view of the shared flow table's backend directory: which slot each server
//! owns. The master registers every configured server, in config order, right after it
//! creates the region and before any worker starts, so every slot is known in advance
//! (kernel mode's marks name slots), whatever order the workers later see servers in.

use loaded_proto::balancing::Backend;
use loaded_proto::flow_table::{DirectoryFull, SharedFlowTable};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;

pub struct ServerSlots {
    /// The master's own mapping of the region; only its directory is ever used.
    table: SharedFlowTable,
    slots: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
pub enum SlotError {
    /// The region could not be mapped.
    Map(io::Error),
    /// More servers than the directory holds.
    Full { addr: IpAddr },
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotError::Map(e) => write!(f, "cannot map the shared flow table: {e}"),
            SlotError::Full { addr } => write!(f, "server {addr}: {DirectoryFull}"),
        }
    }
}

impl std::error::Error for SlotError {}

impl ServerSlots {
    /// Maps the region and registers `servers` in their order.
    pub fn register_configured(
        region: BorrowedFd<'_>,
        capacity: usize,
        servers: &[Backend],
    ) -> Result<ServerSlots, SlotError> {
        let table = SharedFlowTable::map(region, capacity).map_err(SlotError::Map)?;
        let mut slots = ServerSlots {
            table,
            slots: HashMap::new(),
        };
        for server in servers {
            slots
                .register(server.addr)
                .map_err(|DirectoryFull| SlotError::Full { addr: server.addr })?;
        }
        Ok(slots)
    }

    /// The slot of `addr`, claiming one if it has none yet (a hot-plugged server).
    pub fn register(&mut self, addr: IpAddr) -> Result<usize, DirectoryFull> {
        let slot = self.table.register_backend(addr)?;
        self.slots.insert(addr, slot);
        Ok(slot)
    }

    /// Marks `addr` withdrawn by a reload (or configured again), for every worker to see
    /// (see `SharedFlowTable::set_withdrawn`); registers it first if needed.
    pub fn set_withdrawn(&mut self, addr: IpAddr, withdrawn: bool) -> Result<(), DirectoryFull> {
        let slot = self.register(addr)?;
        self.table.set_withdrawn(slot, withdrawn);
        Ok(())
    }

    /// Mappings to the server in `slot` now, across all workers.
    pub fn live_mappings(&self, slot: usize) -> u64 {
        self.table.live_mappings(slot)
    }

    pub fn slot(&self, addr: IpAddr) -> Option<usize> {
        self.slots.get(&addr).copied()
    }

    /// Every server known to the master, in slot order.
    pub fn known(&self) -> Vec<(IpAddr, usize)> {
        let mut known: Vec<(IpAddr, usize)> = self.slots.iter().map(|(a, s)| (*a, *s)).collect();
        known.sort_by_key(|(_, slot)| *slot);
        known
    }
}

/// For the status: a server's slot, claimed if a worker has not yet (a hot-plugged server
/// every worker will register the same way).
impl crate::status::SlotSource for ServerSlots {
    fn slot_of(&mut self, server: IpAddr) -> Option<usize> {
        self.register(server).ok()
    }

    fn live_mappings(&self, slot: usize) -> u64 {
        ServerSlots::live_mappings(self, slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loaded_proto::flow_table::create_region;
    use std::os::fd::AsFd;

    fn backend(addr: &str) -> Backend {
        Backend {
            addr: addr.parse().unwrap(),
            weight: 1,
        }
    }

    #[test]
    fn configured_servers_get_slots_in_config_order_that_workers_agree_on() {
        let region = create_region(4096).unwrap();
        let servers = [
            backend("198.19.0.11"),
            backend("198.19.0.12"),
            backend("fd00:19::11"),
        ];
        let mut slots = ServerSlots::register_configured(region.as_fd(), 4096, &servers).unwrap();
        assert_eq!(
            slots.known(),
            [
                ("198.19.0.11".parse().unwrap(), 0),
                ("198.19.0.12".parse().unwrap(), 1),
                ("fd00:19::11".parse().unwrap(), 2)
            ]
        );
        // A worker mapping the same region, seeing the servers in another order.
        let worker = SharedFlowTable::map(region.as_fd(), 4096).unwrap();
        assert_eq!(
            worker.register_backend("fd00:19::11".parse().unwrap()),
            Ok(2)
        );
        assert_eq!(
            worker.register_backend("198.19.0.14".parse().unwrap()),
            Ok(3)
        );
        // The master hears of the hot-plugged server later: the worker's slot.
        assert_eq!(slots.register("198.19.0.14".parse().unwrap()), Ok(3));
        assert_eq!(slots.slot("198.19.0.14".parse().unwrap()), Some(3));
        assert_eq!(slots.slot("198.19.0.99".parse().unwrap()), None);
    }
}
