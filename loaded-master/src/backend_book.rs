//! The authoritative backend state: every server the balancer knows (configured or
//! hot-plugged), whether it is up, since when, and the check result that made it so.
//!
//! It lives in the master because the master is the one process a child's restart cannot
//! take down: the prober writes every change into it (`BackendChange`), and every child
//! starts from it (`BackendBook`, sent before it turns Ready). A restarted prober thus
//! keeps the hot-plugged servers and the known states, and a fresh worker neither sends a
//! new client to a down server nor misses a hot-plugged server's replies while it waits
//! for its prober link. Each entry says "state, since when and why", as an operator asks.
//!
//! Nothing the prober says is trusted blindly: a server it adds must be configured or lie
//! inside RIP4/RIP6; one a reload withdrew is not added back.

use loaded_proto::balancing::{Backend, IpNet};
use loaded_proto::config::Config;
use loaded_proto::message::{BackendUpdate, BookedBackend, BookedHealth, Origin, StateReason};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookEntry {
    pub backend: Backend,
    pub origin: Origin,
    pub health: BookedHealth,
    /// Wall-clock time `health` began (the master's start, a reload, or a change).
    pub since: SystemTime,
    /// The check result behind the last change (or the confirmation of an unchecked one).
    pub reason: StateReason,
}

pub struct BackendBook {
    /// Configured servers in config order, then hot-plugged ones in the order found.
    entries: Vec<BookEntry>,
    rip4: Option<IpNet>,
    rip6: Option<IpNet>,
    /// Servers reloads removed: never hot-plugged back (see `HealthSettings::withdrawn`).
    withdrawn: HashSet<IpAddr>,
}

/// What a change did to the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The server's state (or reason) was written.
    Written,
    /// A server the book does not hold, or one a reload withdrew: the prober spoke before
    /// it heard of a reload. Nothing changed.
    Unknown,
}

/// A prober's `Added` for a host it may not add: neither configured nor inside RIP4/RIP6.
#[derive(Debug, PartialEq, Eq)]
pub struct UntrustedServer(pub IpAddr);

impl fmt::Display for UntrustedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "added server {} is neither configured nor inside RIP4/RIP6",
            self.0
        )
    }
}

impl std::error::Error for UntrustedServer {}

impl BackendBook {
    /// Every configured server, unchecked since `now`.
    pub fn new(config: &Config, now: SystemTime) -> BackendBook {
        BackendBook {
            entries: config
                .backends()
                .into_iter()
                .map(|backend| unchecked(backend, now))
                .collect(),
            rip4: config.rip4,
            rip6: config.rip6,
            withdrawn: HashSet::new(),
        }
    }

    /// Every server, configured ones in config order first (what a control socket lists).
    pub fn entries(&self) -> &[BookEntry] {
        &self.entries
    }

    pub fn entry(&self, addr: IpAddr) -> Option<&BookEntry> {
        self.entries.iter().find(|entry| entry.backend.addr == addr)
    }

    /// One line for the log: how many servers, how many down, which hot-plugged.
    pub fn summary(&self) -> String {
        let down = self
            .entries()
            .iter()
            .filter(|entry| entry.health == BookedHealth::Down)
            .count();
        let hot: Vec<String> = self
            .entries
            .iter()
            .filter(|entry| entry.origin == Origin::HotPlugged)
            .map(|entry| entry.backend.addr.to_string())
            .collect();
        let mut line = format!(
            "{} server(s), {down} down, {} hot-plugged",
            self.entries.len(),
            hot.len()
        );
        if !hot.is_empty() {
            line.push_str(&format!(" ({})", hot.join(", ")));
        }
        line
    }

    /// What a child starting now is given.
    pub fn booked(&self) -> Vec<BookedBackend> {
        self.entries
            .iter()
            .map(|entry| BookedBackend {
                backend: entry.backend,
                origin: entry.origin,
                health: entry.health,
            })
            .collect()
    }

    /// Whether the prober may add `addr`.
    pub fn may_add(&self, addr: IpAddr) -> bool {
        let rip = match addr {
            IpAddr::V4(_) => self.rip4,
            IpAddr::V6(_) => self.rip6,
        };
        let configured = self
            .entries
            .iter()
            .any(|entry| entry.origin == Origin::Configured && entry.backend.addr == addr);
        configured || rip.is_some_and(|net| net.contains(addr))
    }

    /// Writes a change the prober saw at `now`. `Err` only for an address the prober had
    /// no business adding (the caller ends the prober's channel).
    pub fn record(
        &mut self,
        update: BackendUpdate,
        reason: StateReason,
        now: SystemTime,
    ) -> Result<Recorded, UntrustedServer> {
        let (addr, health) = match update {
            BackendUpdate::Up(addr) => (addr, BookedHealth::Up),
            BackendUpdate::Down(addr) => (addr, BookedHealth::Down),
            BackendUpdate::Added(backend) => {
                if !self.may_add(backend.addr) {
                    return Err(UntrustedServer(backend.addr));
                }
                if self.withdrawn.contains(&backend.addr) {
                    return Ok(Recorded::Unknown);
                }
                if self.entry(backend.addr).is_none() {
                    self.entries.push(BookEntry {
                        backend,
                        origin: Origin::HotPlugged,
                        health: BookedHealth::Up,
                        since: now,
                        reason,
                    });
                    return Ok(Recorded::Written);
                }
                (backend.addr, BookedHealth::Up)
            }
        };
        let Some(entry) = self
            .entries
            .iter_mut()
            .find(|entry| entry.backend.addr == addr)
        else {
            return Ok(Recorded::Unknown);
        };
        // An unchecked server confirmed up has been in service all along.
        let unchanged = entry.health == health
            || (entry.health == BookedHealth::Unchecked && health == BookedHealth::Up);
        if !unchanged {
            entry.since = now;
        }
        entry.health = health;
        entry.reason = reason;
        Ok(Recorded::Written)
    }

    /// A reload: `config` is the new one, `withdrawn` every server reloads removed so far.
    /// Kept servers keep their state; new ones start unchecked; removed configured ones
    /// leave the book; hot-plugged ones stay unless withdrawn. A hot-plugged server the
    /// config now names becomes a configured one (with its state).
    pub fn reload(&mut self, config: &Config, withdrawn: &[IpAddr], now: SystemTime) {
        self.withdrawn = withdrawn.iter().copied().collect();
        let mut old = std::mem::take(&mut self.entries);
        for backend in config.backends() {
            let entry = match old.iter().position(|e| e.backend.addr == backend.addr) {
                Some(index) => BookEntry {
                    backend,
                    origin: Origin::Configured,
                    ..old.remove(index)
                },
                None => unchecked(backend, now),
            };
            self.entries.push(entry);
        }
        self.entries.extend(old.into_iter().filter(|entry| {
            entry.origin == Origin::HotPlugged && !self.withdrawn.contains(&entry.backend.addr)
        }));
    }
}

fn unchecked(backend: Backend, now: SystemTime) -> BookEntry {
    BookEntry {
        backend,
        origin: Origin::Configured,
        health: BookedHealth::Unchecked,
        since: now,
        reason: StateReason::NotChecked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CONFIG: &str = "VIP4=198.18.100.1\nVIP6=fd00:100::1\nserver4=198.19.0.11\n\
                          server4=198.19.0.12\nserver6=fd00:19::11\nRIP4=198.19.0.0/24\n";

    fn config(text: &str) -> Config {
        Config::parse(text, "test.conf").unwrap().config
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn hot(addr: &str) -> BackendUpdate {
        BackendUpdate::Added(Backend {
            addr: ip(addr),
            weight: 1,
        })
    }

    fn states(book: &BackendBook) -> Vec<(IpAddr, Origin, BookedHealth)> {
        book.entries()
            .iter()
            .map(|e| (e.backend.addr, e.origin, e.health))
            .collect()
    }

    #[test]
    fn configured_servers_start_unchecked_and_in_service() {
        let book = BackendBook::new(&config(CONFIG), at(0));
        assert_eq!(
            states(&book),
            [
                (
                    ip("198.19.0.11"),
                    Origin::Configured,
                    BookedHealth::Unchecked
                ),
                (
                    ip("198.19.0.12"),
                    Origin::Configured,
                    BookedHealth::Unchecked
                ),
                (
                    ip("fd00:19::11"),
                    Origin::Configured,
                    BookedHealth::Unchecked
                ),
            ]
        );
        let first = book.entry(ip("198.19.0.11")).unwrap();
        assert_eq!(
            (first.since, &first.reason),
            (at(0), &StateReason::NotChecked)
        );
        assert!(book.booked().iter().all(|b| b.health.in_service()));
        assert_eq!(book.summary(), "3 server(s), 0 down, 0 hot-plugged");
    }

    #[test]
    fn a_change_records_state_since_and_reason() {
        let mut book = BackendBook::new(&config(CONFIG), at(0));
        let server = ip("198.19.0.12");
        let down = book.record(
            BackendUpdate::Down(server),
            StateReason::ConnectRefused,
            at(5),
        );
        assert_eq!(down, Ok(Recorded::Written));
        let entry = book.entry(server).unwrap();
        assert_eq!(entry.health, BookedHealth::Down);
        assert_eq!(entry.since, at(5));
        assert_eq!(entry.reason.to_string(), "connection refused");
        // Still down for another reason: the state began at 5 all the same.
        book.record(BackendUpdate::Down(server), StateReason::NoEchoReply, at(9))
            .unwrap();
        let entry = book.entry(server).unwrap();
        assert_eq!(
            (entry.since, &entry.reason),
            (at(5), &StateReason::NoEchoReply)
        );
        book.record(BackendUpdate::Up(server), StateReason::ChecksPassed, at(12))
            .unwrap();
        let entry = book.entry(server).unwrap();
        assert_eq!((entry.health, entry.since), (BookedHealth::Up, at(12)));
    }

    #[test]
    fn an_unchecked_server_confirmed_up_keeps_its_since() {
        let mut book = BackendBook::new(&config(CONFIG), at(0));
        let server = ip("198.19.0.11");
        book.record(BackendUpdate::Up(server), StateReason::ChecksPassed, at(3))
            .unwrap();
        let entry = book.entry(server).unwrap();
        assert_eq!(entry.health, BookedHealth::Up);
        assert_eq!(entry.since, at(0), "in service since the start");
        assert_eq!(entry.reason, StateReason::ChecksPassed);
    }

    #[test]
    fn hot_plugs_are_booked_only_inside_rip() {
        let mut book = BackendBook::new(&config(CONFIG), at(0));
        let added = book.record(hot("198.19.0.14"), StateReason::AnsweredBroadcast, at(4));
        assert_eq!(added, Ok(Recorded::Written));
        let entry = book.entry(ip("198.19.0.14")).unwrap();
        assert_eq!(
            (entry.origin, entry.health, entry.since),
            (Origin::HotPlugged, BookedHealth::Up, at(4))
        );
        assert_eq!(
            book.record(hot("198.19.1.14"), StateReason::AnsweredBroadcast, at(4)),
            Err(UntrustedServer(ip("198.19.1.14"))),
            "outside RIP4"
        );
        assert_eq!(
            book.record(hot("fd00:19::14"), StateReason::AnsweredBroadcast, at(4)),
            Err(UntrustedServer(ip("fd00:19::14"))),
            "no RIP6 at all"
        );
        assert!(book
            .record(hot("fd00:19::11"), StateReason::AnsweredBroadcast, at(4))
            .is_ok());
        assert_eq!(
            book.entries().len(),
            4,
            "a configured one is not booked twice"
        );
        assert_eq!(
            book.record(
                BackendUpdate::Down(ip("198.19.0.99")),
                StateReason::NoEchoReply,
                at(5)
            ),
            Ok(Recorded::Unknown)
        );
        assert_eq!(book.entries().len(), 4);
    }

    #[test]
    fn a_reload_keeps_states_adds_unchecked_and_drops_the_removed() {
        let mut book = BackendBook::new(&config(CONFIG), at(0));
        book.record(
            BackendUpdate::Down(ip("198.19.0.11")),
            StateReason::NoEchoReply,
            at(2),
        )
        .unwrap();
        book.record(hot("198.19.0.14"), StateReason::AnsweredBroadcast, at(3))
            .unwrap();
        book.record(hot("198.19.0.15"), StateReason::AnsweredBroadcast, at(3))
            .unwrap();
        // .12 removed, .13 added, .15 now configured; .14 stays hot-plugged.
        let reloaded = config(
            "VIP4=198.18.100.1\nVIP6=fd00:100::1\nserver4=198.19.0.11\nserver4=198.19.0.13\n\
             server4=198.19.0.15\nserver6=fd00:19::11\nRIP4=198.19.0.0/24\n",
        );
        book.reload(&reloaded, &[ip("198.19.0.12")], at(10));
        assert_eq!(
            states(&book),
            [
                (ip("198.19.0.11"), Origin::Configured, BookedHealth::Down),
                (
                    ip("198.19.0.13"),
                    Origin::Configured,
                    BookedHealth::Unchecked
                ),
                (ip("198.19.0.15"), Origin::Configured, BookedHealth::Up),
                (
                    ip("fd00:19::11"),
                    Origin::Configured,
                    BookedHealth::Unchecked
                ),
                (ip("198.19.0.14"), Origin::HotPlugged, BookedHealth::Up),
            ]
        );
        assert_eq!(book.entry(ip("198.19.0.11")).unwrap().since, at(2));
        assert_eq!(book.entry(ip("198.19.0.13")).unwrap().since, at(10));
        // A withdrawn server is not hot-plugged back by a prober that lags behind.
        assert_eq!(
            book.record(hot("198.19.0.12"), StateReason::AnsweredBroadcast, at(11)),
            Ok(Recorded::Unknown)
        );
        assert!(book.entry(ip("198.19.0.12")).is_none());
        assert_eq!(
            book.summary(),
            "5 server(s), 1 down, 1 hot-plugged (198.19.0.14)"
        );
        // Withdrawing a hot-plugged server takes it out of the book.
        book.reload(&reloaded, &[ip("198.19.0.12"), ip("198.19.0.14")], at(12));
        assert!(book.entry(ip("198.19.0.14")).is_none());
    }
}
