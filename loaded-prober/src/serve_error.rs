//! Why the prober's loop ends without being told to: one variant per cause.

use loaded_proto::channel::ChannelError;
use loaded_proto::message::MessageKind;
use loaded_proto::roles::OutOfPlace;
use std::{fmt, io};

#[derive(Debug)]
pub enum ServeError {
    Poll(io::Error),
    /// The master's channel failed.
    Control(ChannelError),
    /// The master sent what the proc table says it never sends the prober.
    OutOfPlace(OutOfPlace),
    /// A setup message the master sends once, sent again.
    SecondSetup(MessageKind),
    /// A new worker link could not be watched.
    Link {
        worker: u32,
        error: io::Error,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Poll(e) => write!(f, "poll: {e}"),
            ServeError::Control(e) => write!(f, "control channel: {e}"),
            ServeError::OutOfPlace(e) => write!(f, "{e}; ending the channel"),
            ServeError::SecondSetup(kind) => {
                write!(f, "a second {kind} from the master; ending the channel")
            }
            ServeError::Link { worker, error } => {
                write!(f, "cannot use the link to worker {worker}: {error}")
            }
        }
    }
}

impl std::error::Error for ServeError {}
