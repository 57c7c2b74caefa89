//! A reload of the health checks: new servers, settings, and servers taken out.
//!
//! A server kept across the reload keeps its health and its streak. A new one starts in
//! service, as a configured server does at a prober start, and its first check decides
//! at once (see `ServerHealth::in_service`). A removed one is dropped and, like every
//! server a reload withdrew, never hot-plugged again while loaded runs (unless a later
//! reload configures it). Servers found by the broadcast stay.

use super::hysteresis::ServerHealth;
use super::round::RoundPlan;
use super::sockets::ProbeSockets;
use super::HealthChecker;
use loaded_proto::balancing::Backend;
use loaded_proto::roles::ProberPart;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::IpAddr;

/// What a reload changed, for the prober's log and its next round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub added: Vec<IpAddr>,
    pub removed: Vec<IpAddr>,
}

/// The probe sockets a reload needed anew could not be opened; the old ones stay, and the
/// servers they cannot reach fail their checks until a restart.
#[derive(Debug)]
pub struct SocketsKept(pub io::Error);

impl fmt::Display for SocketsKept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open the probe sockets the reload needs: {}",
            self.0
        )
    }
}

impl std::error::Error for SocketsKept {}

impl HealthChecker {
    /// Applies a reload (`part`: the prober's part with the reload's health settings);
    /// `withdrawn` are all the servers reloads removed so far. The servers
    /// are applied even when new sockets cannot be opened (`Err`).
    pub fn reconfigure(
        &mut self,
        part: &ProberPart,
        withdrawn: &[IpAddr],
    ) -> (Reloaded, Result<(), SocketsKept>) {
        // A round in flight checks the old plan: it is dropped, and the caller starts a new
        // one.
        self.round = None;
        let withdrawn: HashSet<IpAddr> = withdrawn.iter().copied().collect();
        let configured = part.health.servers.clone();
        let now_configured: HashSet<IpAddr> = configured.iter().map(|b| b.addr).collect();
        let mut old = std::mem::take(&mut self.servers);
        let mut done = Reloaded::default();
        for backend in configured {
            let health = match old.iter().position(|(b, _)| b.addr == backend.addr) {
                Some(index) => old.swap_remove(index).1,
                None => {
                    done.added.push(backend.addr);
                    ServerHealth::in_service()
                }
            };
            self.servers.push((backend, health));
        }
        // What is left was configured before, or discovered; keep old order.
        old.sort_by_key(|(backend, _)| self.order_hint(backend));
        for (backend, health) in old {
            let was_configured = self.configured.contains(&backend.addr);
            if was_configured || withdrawn.contains(&backend.addr) {
                done.removed.push(backend.addr);
            } else {
                self.servers.push((backend, health));
            }
        }
        self.configured = now_configured;
        self.candidates.retain(|addr, _| !withdrawn.contains(addr));
        let sockets_needed = wanted_families(part) != self.sockets_families
            || part.health.broadcast6 != self.plan.broadcast6;
        self.plan = RoundPlan {
            servers: self.servers.iter().map(|(b, _)| b.addr).collect(),
            withdrawn,
            ..RoundPlan::from_part(part)
        };
        self.rise = part.health.rise;
        self.fall = part.health.fall;
        let sockets = if sockets_needed {
            ProbeSockets::open(part)
                .map(|sockets| {
                    self.sockets = sockets;
                    self.sockets_families = wanted_families(part);
                })
                .map_err(SocketsKept)
        } else {
            Ok(())
        };
        (done, sockets)
    }

    /// Where `backend` stood before the reload (`servers` is rebuilt in that order).
    fn order_hint(&self, backend: &Backend) -> usize {
        self.plan
            .servers
            .iter()
            .position(|addr| *addr == backend.addr)
            .unwrap_or(usize::MAX)
    }
}

/// The families the prober needs a socket for: (IPv4, IPv6), as `ProbeSockets::open`
/// decides.
pub(super) fn wanted_families(part: &ProberPart) -> (bool, bool) {
    let servers = &part.health.servers;
    (
        servers.iter().any(|b| b.addr.is_ipv4()) || part.health.broadcast.is_some(),
        servers.iter().any(|b| b.addr.is_ipv6()) || part.health.broadcast6.is_some(),
    )
}
