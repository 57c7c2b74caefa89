//! The worker's `run`: jail first, then receive the queue socket, the shared flow table, the
//! shared counters and its part of the config from the master, then the master's backend
//! book (which servers are down, which were hot-plugged) and the operator's drains and
//! weights, then serve the queue until told to stop.

use crate::datapath::balancer::{Balancer, BalancerConfig};
use crate::datapath::flow::Vips;
use crate::nfqueue::QueueSocket;
use crate::packet_loop::{PacketLoop, Stop};
use crate::setup_error::SetupError;
use loaded_proto::channel::Channel;
use loaded_proto::counters::WorkerCounters;
use loaded_proto::flow_table::SharedFlowTable;
use loaded_proto::message::{BookedBackend, Message, MessageKind, ServerOverrides};
use loaded_proto::roles::{Role, WorkerPart};
use loaded_proto::setup_message::{receive, receive_book};
use std::os::fd::{AsFd, OwnedFd};

pub fn run() -> i32 {
    let (args, channel) = loaded_proto::child::start(Role::Worker);
    let (setup, fds) = match receive(&channel, Role::Worker, MessageKind::WorkerSetup) {
        Ok(received) => received,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    let Message::WorkerSetup {
        worker,
        queue,
        flow_table_capacity,
        counter_blocks,
        part,
    } = setup
    else {
        unreachable!("`receive` checked the kind");
    };
    if args.queue != Some(queue) {
        log::error!(
            "setup names queue {queue}, my command line {:?}",
            args.queue
        );
        return 1;
    }
    let book = match receive_book(&channel, Role::Worker) {
        Ok(book) => book,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    // The operator's drains and weights, so that a fresh worker honours them from its
    // first packet.
    let overrides = match receive(&channel, Role::Worker, MessageKind::ServerOverrides) {
        Ok((Message::ServerOverrides { overrides }, _)) => *overrides,
        Ok(_) => unreachable!("`receive` checked the kind"),
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    let mut fds = fds.into_iter();
    let (Some(queue_fd), Some(table_fd), Some(counters_fd)) = (fds.next(), fds.next(), fds.next())
    else {
        unreachable!("the channel checks the descriptor count");
    };
    let shared_counters = match WorkerCounters::map(
        counters_fd.as_fd(),
        counter_blocks as usize,
        worker as usize,
    ) {
        Ok(counters) => counters,
        Err(e) => {
            log::error!("cannot map the shared counters: {e}");
            return 1;
        }
    };
    drop(counters_fd);
    let mut packet_loop = match build(
        queue_fd,
        queue,
        SharedTable {
            fd: table_fd,
            capacity: flow_table_capacity,
        },
        &part,
        Known {
            book: &book,
            overrides,
        },
        channel,
        (worker, shared_counters),
    ) {
        Ok(packet_loop) => packet_loop,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    log::info!("serving NFQUEUE {queue} (forward={})", part.forward);
    match packet_loop.run() {
        Ok(Stop::Shutdown) => {
            log::info!("stopping: {}", packet_loop.summary());
            0
        }
        Ok(Stop::MasterGone) => 0,
        Err(e) => {
            log::error!("{e}; {}", packet_loop.summary());
            1
        }
    }
}

/// The shared flow table's memfd as received, and its capacity.
struct SharedTable {
    fd: OwnedFd,
    capacity: u64,
}

/// What the master told the worker of the servers before it turns Ready.
struct Known<'a> {
    book: &'a [BookedBackend],
    overrides: ServerOverrides,
}

fn build(
    queue_fd: OwnedFd,
    queue: u16,
    shared: SharedTable,
    part: &WorkerPart,
    known: Known<'_>,
    channel: Channel,
    (worker, shared_counters): (u32, WorkerCounters),
) -> Result<PacketLoop, SetupError> {
    let table = SharedFlowTable::map(shared.fd.as_fd(), shared.capacity as usize)
        .map_err(SetupError::MapFlowTable)?;
    drop(shared.fd);
    let mut balancer = Balancer::new(
        BalancerConfig {
            strategy: part.balancing.strategy,
            stickiness: part.stickiness,
            backends: part.balancing.backends.clone(),
            flow_timeout: part.balancing.flow_timeout,
            maglev_seed: part.maglev_seed,
            hotplug_nets: part.hotplug_nets.clone(),
        },
        table,
    );
    // Before Ready: no new client goes to a down server, and a hot-plugged server's
    // replies are rewritten, even before the prober link brings a snapshot.
    crate::prober_link::apply_book(&mut balancer, known.book);
    balancer.set_overrides(known.overrides);
    let vips = Vips {
        v4: part.vip4,
        v6: part.vip6,
    };
    let queue = QueueSocket::new(queue_fd, queue).map_err(SetupError::QueueSocket)?;
    channel
        .send(&Message::Ready)
        .map_err(SetupError::ReportReady)?;
    let mut packet_loop = PacketLoop::new(queue, channel, balancer, vips, worker, shared_counters)
        .map_err(SetupError::PacketLoop)?;
    packet_loop.set_forward(part.forward);
    Ok(packet_loop)
}
