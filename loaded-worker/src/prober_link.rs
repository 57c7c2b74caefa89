//! The worker's end of its link to the prober: backend health arrives here as a snapshot
//! and then as numbered changes, and is applied to the balancer.
//!
//! A gap in the numbering means a change was lost: the worker ignores what it cannot place
//! and asks for a snapshot. A message that is not one the prober may send ends the link:
//! the worker keeps its last known state until the master hands it a new link.

use crate::datapath::balancer::{AddRefused, Balancer};
use loaded_proto::channel::{Channel, ChannelError};
use loaded_proto::message::{BackendState, BackendUpdate, BookedBackend, Message, Origin};
use loaded_proto::roles::{self, OutOfPlace, Role};
use std::fmt;

pub struct ProberLink {
    pub channel: Channel,
    /// The sequence number of the last change applied; None until the first snapshot.
    last_seq: Option<u64>,
}

impl ProberLink {
    pub fn new(channel: Channel) -> ProberLink {
        ProberLink {
            channel,
            last_seq: None,
        }
    }

    /// After a reload: the prober's view of the servers this worker now has. A snapshot
    /// brings their health, whichever of the two heard of the reload first (a change about
    /// a server this worker did not have yet was ignored).
    pub fn request_snapshot(&self) -> Result<(), loaded_proto::channel::ChannelError> {
        self.channel.try_send(&Message::SnapshotRequest)
    }

    /// What the prober may say to a worker.
    pub fn dispatch_prober(
        &mut self,
        message: Message,
        balancer: &mut Balancer,
    ) -> Result<(), LinkError> {
        roles::permit(Role::Prober, Role::Worker, &message).map_err(LinkError::OutOfPlace)?;
        match message {
            Message::BackendSnapshot { seq, backends } => {
                apply_snapshot(balancer, &backends);
                self.last_seq = Some(seq);
                Ok(())
            }
            Message::BackendUpdate { seq, update } => {
                if self.last_seq.map(|last| last + 1) == Some(seq) {
                    apply_update(balancer, update);
                    self.last_seq = Some(seq);
                } else {
                    log::warn!(
                        "backend update {seq} does not follow {:?}: asking the prober for a snapshot",
                        self.last_seq
                    );
                    self.last_seq = None;
                    self.channel
                        .try_send(&Message::SnapshotRequest)
                        .map_err(LinkError::SnapshotRequest)?;
                }
                Ok(())
            }
            other => Err(LinkError::OutOfPlace(OutOfPlace {
                from: Role::Prober,
                to: Role::Worker,
                kind: other.kind(),
            })),
        }
    }
}

/// Why the link to the prober ends (the datapath goes on with the last known state).
#[derive(Debug)]
pub enum LinkError {
    OutOfPlace(OutOfPlace),
    SnapshotRequest(ChannelError),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::OutOfPlace(e) => e.fmt(f),
            LinkError::SnapshotRequest(e) => write!(f, "cannot ask the prober for a snapshot: {e}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// The master's backend book, at the worker's start. A hot-plugged server outside
/// RIP4/RIP6 is refused by the balancer, as from the prober.
pub fn apply_book(balancer: &mut Balancer, book: &[BookedBackend]) {
    for booked in book {
        if booked.origin == Origin::HotPlugged {
            add(balancer, booked.backend);
        }
        balancer.set_backend_up(booked.backend.addr, booked.health.in_service());
    }
}

fn apply_snapshot(balancer: &mut Balancer, backends: &[BackendState]) {
    for state in backends {
        add(balancer, state.backend);
        balancer.set_backend_up(state.backend.addr, state.up);
    }
}

fn apply_update(balancer: &mut Balancer, update: BackendUpdate) {
    match update {
        BackendUpdate::Up(addr) => {
            balancer.set_backend_up(addr, true);
        }
        BackendUpdate::Down(addr) => {
            balancer.set_backend_up(addr, false);
        }
        BackendUpdate::Added(backend) => {
            add(balancer, backend);
            balancer.set_backend_up(backend.addr, true);
        }
    }
}

fn add(balancer: &mut Balancer, backend: loaded_proto::balancing::Backend) {
    match balancer.add_backend(backend) {
        Ok(_) => {}
        // The prober had not heard of the reload when it sent this.
        Err(AddRefused::Withdrawn) => {
            log::debug!("server {} not added: a reload removed it", backend.addr)
        }
        Err(e) => log::error!("cannot add server {}: {e}", backend.addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::balancer::BalancerConfig;
    use crate::datapath::flow::{BackendSelector, FlowKey, Opening};
    use loaded_proto::balancing::{Backend, Stickiness, Strategy};
    use loaded_proto::flow_table::SharedFlowTable;
    use loaded_proto::message::MessageKind;
    use std::net::IpAddr;
    use std::time::Duration;

    fn server(last: u8) -> Backend {
        Backend {
            addr: IpAddr::from([198, 19, 0, last]),
            weight: 1,
        }
    }

    fn balancer() -> Balancer {
        Balancer::new(
            BalancerConfig {
                strategy: Strategy::RoundRobin,
                stickiness: Stickiness::Flow,
                backends: vec![server(11), server(12)],
                flow_timeout: Duration::from_secs(60),
                maglev_seed: 0,
                hotplug_nets: crate::datapath::balancer::anywhere(),
            },
            SharedFlowTable::anonymous(1024).unwrap(),
        )
    }

    fn new_flow(balancer: &mut Balancer, port: u16) -> Option<IpAddr> {
        balancer
            .backend_for(
                &FlowKey {
                    client: IpAddr::from([198, 18, 0, 2]),
                    vip: IpAddr::from([198, 18, 100, 1]),
                    protocol: 6,
                    client_port: port,
                    vip_port: 80,
                },
                Opening::Opens,
            )
            .ok()
    }

    #[test]
    fn snapshot_then_numbered_updates_are_applied_and_a_gap_asks_for_a_snapshot() {
        let (ours, prober) = Channel::pair().unwrap();
        prober.set_nonblocking(true).unwrap();
        let mut link = ProberLink::new(ours);
        let mut balancer = balancer();
        let snapshot = Message::BackendSnapshot {
            seq: 7,
            backends: vec![
                BackendState {
                    backend: server(11),
                    up: false,
                },
                BackendState {
                    backend: server(12),
                    up: true,
                },
                BackendState {
                    backend: server(14),
                    up: true,
                },
            ],
        };
        link.dispatch_prober(snapshot, &mut balancer).unwrap();
        assert!(
            balancer.is_backend(server(14).addr),
            "hotplugged by the snapshot"
        );
        let picked: Vec<_> = (0..4)
            .map(|p| new_flow(&mut balancer, p).unwrap())
            .collect();
        assert!(
            !picked.contains(&server(11).addr),
            "down: no new flows, got {picked:?}"
        );

        let up = Message::BackendUpdate {
            seq: 8,
            update: BackendUpdate::Up(server(11).addr),
        };
        link.dispatch_prober(up, &mut balancer).unwrap();
        let picked: Vec<_> = (10..16)
            .map(|p| new_flow(&mut balancer, p).unwrap())
            .collect();
        assert!(picked.contains(&server(11).addr), "up again: {picked:?}");
        assert!(
            prober.recv().unwrap_err().would_block(),
            "no request without a gap"
        );

        // 10 after 8: one change was lost.
        let skipped = Message::BackendUpdate {
            seq: 10,
            update: BackendUpdate::Down(server(12).addr),
        };
        link.dispatch_prober(skipped, &mut balancer).unwrap();
        assert_eq!(prober.recv().unwrap().0, Message::SnapshotRequest);
        assert!(
            (20..26).any(|p| new_flow(&mut balancer, p) == Some(server(12).addr)),
            "a change after a gap is not applied"
        );
    }

    #[test]
    fn the_book_marks_down_servers_and_adds_hot_plugged_ones_inside_rip_only() {
        use loaded_proto::balancing::IpNet;
        use loaded_proto::message::BookedHealth;
        let mut balancer = Balancer::new(
            BalancerConfig {
                strategy: Strategy::RoundRobin,
                stickiness: Stickiness::Flow,
                backends: vec![server(11), server(12)],
                flow_timeout: Duration::from_secs(60),
                maglev_seed: 0,
                hotplug_nets: vec![IpNet {
                    addr: IpAddr::from([198, 19, 0, 0]),
                    prefix_len: 24,
                }],
            },
            SharedFlowTable::anonymous(1024).unwrap(),
        );
        let outside = Backend {
            addr: IpAddr::from([198, 20, 0, 14]),
            weight: 1,
        };
        let booked = |backend, origin, health| BookedBackend {
            backend,
            origin,
            health,
        };
        apply_book(
            &mut balancer,
            &[
                booked(server(11), Origin::Configured, BookedHealth::Down),
                booked(server(12), Origin::Configured, BookedHealth::Unchecked),
                booked(server(14), Origin::HotPlugged, BookedHealth::Up),
                booked(outside, Origin::HotPlugged, BookedHealth::Up),
            ],
        );
        assert!(
            balancer.is_backend(server(14).addr),
            "hot-plugged: replies rewritten"
        );
        assert!(!balancer.is_backend(outside.addr), "outside RIP4: refused");
        let picked: Vec<_> = (0..8)
            .map(|p| new_flow(&mut balancer, p).unwrap())
            .collect();
        assert!(!picked.contains(&server(11).addr), "down: {picked:?}");
        assert!(
            picked.contains(&server(12).addr),
            "unchecked is in service: {picked:?}"
        );
        assert!(picked.contains(&server(14).addr), "{picked:?}");
    }

    #[test]
    fn a_message_the_prober_may_not_send_is_an_error() {
        let (ours, _prober) = Channel::pair().unwrap();
        let mut link = ProberLink::new(ours);
        let err = link
            .dispatch_prober(Message::Shutdown, &mut balancer())
            .unwrap_err();
        assert!(
            matches!(
                err,
                LinkError::OutOfPlace(OutOfPlace {
                    from: Role::Prober,
                    to: Role::Worker,
                    kind: MessageKind::Shutdown
                })
            ),
            "{err}"
        );
    }
}
