//! A prober (re)start from the master's backend book: the servers an earlier life of the
//! prober hot-plugged are checked again, and every server checked before keeps its state
//! under normal hysteresis, so a restart neither forgets a server nor flaps one.

use super::hysteresis::ServerHealth;
use super::HealthChecker;
use loaded_proto::message::{BookedBackend, BookedHealth, Origin};

impl HealthChecker {
    /// Takes over the states in `book`. A configured server never checked keeps deciding
    /// at its first result; a hot-plugged one is taken only if it lies inside RIP4/RIP6
    /// and no reload withdrew it (the master checked as much; the prober checks again).
    pub fn start_from(&mut self, book: &[BookedBackend]) {
        for booked in book {
            let health = match booked.health {
                BookedHealth::Unchecked => ServerHealth::in_service(),
                BookedHealth::Up => ServerHealth::known(true),
                BookedHealth::Down => ServerHealth::known(false),
            };
            let addr = booked.backend.addr;
            if let Some((_, known)) = self.servers.iter_mut().find(|(b, _)| b.addr == addr) {
                *known = health;
                continue;
            }
            let may_plug = booked.origin == Origin::HotPlugged
                && self.plan.in_rip(addr)
                && !self.plan.withdrawn.contains(&addr);
            if may_plug {
                self.servers.push((booked.backend, health));
                self.plan.servers.push(addr);
            }
        }
    }
}
