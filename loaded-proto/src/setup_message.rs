//! A child's setup messages, received in the order the master sends them: each must be
//! the one expected next, or the child ends (it cannot run on a setup it does not have).

use crate::channel::{Channel, ChannelError};
use crate::message::{Message, MessageKind};
use crate::roles::{self, OutOfPlace, Role};
use std::fmt;
use std::os::fd::OwnedFd;

#[derive(Debug)]
pub enum SetupMessageError {
    /// Nothing readable came (the master is gone, or sent bytes that are no message).
    Channel {
        expected: MessageKind,
        error: ChannelError,
    },
    /// The master sent what the proc table says it never sends this role.
    OutOfPlace(OutOfPlace),
    /// A message this role takes, but not the one expected now.
    Unexpected {
        expected: MessageKind,
        got: MessageKind,
    },
}

impl fmt::Display for SetupMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupMessageError::Channel { expected, error } => {
                write!(f, "no {expected} from the master: {error}")
            }
            SetupMessageError::OutOfPlace(e) => write!(f, "{e}; ending the channel"),
            SetupMessageError::Unexpected { expected, got } => {
                write!(f, "expected {expected}, got {got}")
            }
        }
    }
}

impl std::error::Error for SetupMessageError {}

/// Receives the next message from the master to `role`, which must be of kind `expected`.
pub fn receive(
    channel: &Channel,
    role: Role,
    expected: MessageKind,
) -> Result<(Message, Vec<OwnedFd>), SetupMessageError> {
    let (message, fds) = channel
        .recv()
        .map_err(|error| SetupMessageError::Channel { expected, error })?;
    roles::permit(Role::Master, role, &message).map_err(SetupMessageError::OutOfPlace)?;
    if message.kind() != expected {
        return Err(SetupMessageError::Unexpected {
            expected,
            got: message.kind(),
        });
    }
    Ok((message, fds))
}

/// Receives the master's backend book, which follows a worker's and the prober's setup.
pub fn receive_book(
    channel: &Channel,
    role: Role,
) -> Result<Vec<crate::message::BookedBackend>, SetupMessageError> {
    match receive(channel, role, MessageKind::BackendBook)? {
        (Message::BackendBook { backends }, _) => Ok(backends),
        _ => unreachable!("`receive` checked the kind"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_message_is_taken_and_any_other_refused() {
        let (master, child) = Channel::pair().unwrap();
        master
            .send(&Message::BackendBook {
                backends: Vec::new(),
            })
            .unwrap();
        assert!(receive_book(&child, Role::Worker).unwrap().is_empty());

        // Shutdown is for a worker, but not during its setup.
        master.send(&Message::Shutdown).unwrap();
        assert!(matches!(
            receive_book(&child, Role::Worker),
            Err(SetupMessageError::Unexpected {
                expected: MessageKind::BackendBook,
                got: MessageKind::Shutdown
            })
        ));
        // The master never sends a worker a Pong.
        master.send(&Message::Pong).unwrap();
        assert!(matches!(
            receive_book(&child, Role::Worker),
            Err(SetupMessageError::OutOfPlace(_))
        ));
        drop(master);
        assert!(matches!(
            receive_book(&child, Role::Worker),
            Err(SetupMessageError::Channel { .. })
        ));
    }
}
