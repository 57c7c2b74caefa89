//! Why a worker could not get from its setup to serving: one variant per step.

use loaded_proto::channel::ChannelError;
use std::{fmt, io};

#[derive(Debug)]
pub enum SetupError {
    /// The shared flow table's memfd could not be mapped.
    MapFlowTable(io::Error),
    /// The queue socket the master passed is unusable.
    QueueSocket(io::Error),
    /// Ready could not be sent to the master.
    ReportReady(ChannelError),
    /// The loop's poller could not be set up.
    PacketLoop(io::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::MapFlowTable(e) => write!(f, "cannot map the shared flow table: {e}"),
            SetupError::QueueSocket(e) => write!(f, "cannot use the queue socket: {e}"),
            SetupError::ReportReady(e) => write!(f, "cannot report ready: {e}"),
            SetupError::PacketLoop(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetupError {}
