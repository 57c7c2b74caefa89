//! The Unix-socket channel between loaded's processes: one SOCK_SEQPACKET datagram per
//! message, descriptors passed with SCM_RIGHTS.
//!
//! SEQPACKET keeps message boundaries, so a truncated or merged message can only mean a
//! broken peer; every such case is an error that ends the channel.

use crate::message::{Message, MAX_MESSAGE_LEN};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors any message carries (see `Message::expected_fds`).
const MAX_FDS_PER_MESSAGE: usize = 4;

#[derive(Debug)]
pub enum ChannelError {
    Io(io::Error),
    /// The peer closed its end.
    Closed,
    /// The datagram or its descriptors did not fit the receive buffers.
    Truncated,
    Encode(bincode::error::EncodeError),
    /// The encoded message is larger than a datagram may be.
    TooLarge {
        len: usize,
    },
    /// The bytes are not a valid message.
    Decode(bincode::error::DecodeError),
    /// A valid message followed by more bytes: not exactly one message.
    TrailingBytes {
        kind: crate::message::MessageKind,
        trailing: usize,
    },
    WrongFdCount {
        kind: crate::message::MessageKind,
        expected: usize,
        received: usize,
    },
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Io(e) => write!(f, "channel i/o error: {e}"),
            ChannelError::Closed => write!(f, "peer closed the channel"),
            ChannelError::Truncated => write!(f, "truncated message or descriptors"),
            ChannelError::Encode(e) => write!(f, "cannot encode message: {e}"),
            ChannelError::TooLarge { len } => write!(
                f,
                "cannot encode message: {len} bytes exceed the limit of {MAX_MESSAGE_LEN}"
            ),
            ChannelError::Decode(e) => write!(f, "malformed message: {e}"),
            ChannelError::TrailingBytes { kind, trailing } => write!(
                f,
                "malformed message: {trailing} trailing bytes after a {kind} message"
            ),
            ChannelError::WrongFdCount {
                kind,
                expected,
                received,
            } => write!(
                f,
                "{kind} message with {received} descriptors, expected {expected}"
            ),
        }
    }
}

impl std::error::Error for ChannelError {}

impl ChannelError {
    pub fn would_block(&self) -> bool {
        matches!(self, ChannelError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_LEN>()
}

pub fn encode(message: &Message) -> Result<Vec<u8>, ChannelError> {
    let bytes =
        bincode::serde::encode_to_vec(message, bincode_config()).map_err(ChannelError::Encode)?;
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(ChannelError::TooLarge { len: bytes.len() });
    }
    Ok(bytes)
}

/// Decodes exactly one message: trailing bytes are as much an error as missing ones.
pub fn decode(bytes: &[u8]) -> Result<Message, ChannelError> {
    let (message, used): (Message, usize) =
        bincode::serde::decode_from_slice(bytes, bincode_config()).map_err(ChannelError::Decode)?;
    if used != bytes.len() {
        return Err(ChannelError::TrailingBytes {
            kind: message.kind(),
            trailing: bytes.len() - used,
        });
    }
    Ok(message)
}

#[derive(Debug)]
pub struct Channel {
    socket: OwnedFd,
}

impl Channel {
    /// A connected pair, both ends close-on-exec (the spawner clears the flag on the end
    /// it hands to a child).
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        Ok((Channel { socket: a }, Channel { socket: b }))
    }

    pub fn from_fd(socket: OwnedFd) -> Channel {
        Channel { socket }
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let flags = nix::fcntl::fcntl(&self.socket, nix::fcntl::FcntlArg::F_GETFL)?;
        let mut flags = nix::fcntl::OFlag::from_bits_truncate(flags);
        flags.set(nix::fcntl::OFlag::O_NONBLOCK, nonblocking);
        nix::fcntl::fcntl(&self.socket, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        Ok(())
    }

    pub fn send(&self, message: &Message) -> Result<(), ChannelError> {
        self.send_with_fds(message, &[])
    }

    /// Sends without waiting for room: for log lines, which must never stall the datapath.
    pub fn try_send(&self, message: &Message) -> Result<(), ChannelError> {
        self.send_flags(message, &[], MsgFlags::MSG_DONTWAIT)
    }

    pub fn send_with_fds(
        &self,
        message: &Message,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), ChannelError> {
        self.send_flags(message, fds, MsgFlags::empty())
    }

    fn send_flags(
        &self,
        message: &Message,
        fds: &[BorrowedFd<'_>],
        flags: MsgFlags,
    ) -> Result<(), ChannelError> {
        if fds.len() != message.expected_fds() {
            return Err(ChannelError::WrongFdCount {
                kind: message.kind(),
                expected: message.expected_fds(),
                received: fds.len(),
            });
        }
        let bytes = encode(message)?;
        let raw_fds: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let rights = [ControlMessage::ScmRights(&raw_fds)];
        let cmsgs: &[ControlMessage] = if raw_fds.is_empty() { &[] } else { &rights };
        let iov = [IoSlice::new(&bytes)];
        loop {
            match sendmsg::<()>(self.socket.as_raw_fd(), &iov, cmsgs, flags, None) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EPIPE) | Err(nix::errno::Errno::ECONNRESET) => {
                    return Err(ChannelError::Closed)
                }
                Err(e) => return Err(ChannelError::Io(e.into())),
            }
        }
    }

    /// Receives one message and the descriptors that came with it, checking their number.
    pub fn recv(&self) -> Result<(Message, Vec<OwnedFd>), ChannelError> {
        let mut buffer = vec![0u8; MAX_MESSAGE_LEN + 1];
        let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS_PER_MESSAGE]);
        let (len, truncated, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buffer)];
            match recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(cmsg_space.as_mut_slice()),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for cmsg in msg.cmsgs().map_err(|e| ChannelError::Io(e.into()))? {
                        if let ControlMessageOwned::ScmRights(raw) = cmsg {
                            for fd in raw {
                                // SAFETY: the kernel has just installed these descriptors in
                                // our table for us; nothing else refers to them yet.
                                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                            }
                        }
                    }
                    let truncated = msg
                        .flags
                        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                    break (msg.bytes, truncated, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ECONNRESET) => return Err(ChannelError::Closed),
                Err(e) => return Err(ChannelError::Io(e.into())),
            }
        };
        if truncated || len > MAX_MESSAGE_LEN {
            return Err(ChannelError::Truncated);
        }
        if len == 0 {
            return Err(ChannelError::Closed);
        }
        let message = decode(&buffer[..len])?;
        if fds.len() != message.expected_fds() {
            return Err(ChannelError::WrongFdCount {
                kind: message.kind(),
                expected: message.expected_fds(),
                received: fds.len(),
            });
        }
        Ok((message, fds))
    }

    /// Sends raw bytes, bypassing encoding: only for tests of the receiving side.
    #[doc(hidden)]
    pub fn send_raw_for_test(&self, bytes: &[u8]) -> io::Result<()> {
        let iov = [IoSlice::new(bytes)];
        sendmsg::<()>(self.socket.as_raw_fd(), &iov, &[], MsgFlags::empty(), None)?;
        Ok(())
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl From<Channel> for OwnedFd {
    fn from(channel: Channel) -> OwnedFd {
        channel.socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::LogLevel;

    #[test]
    fn message_round_trip() {
        let (a, b) = Channel::pair().unwrap();
        let sent = Message::Log {
            level: LogLevel::Info,
            text: "hello".into(),
        };
        a.send(&sent).unwrap();
        let (received, fds) = b.recv().unwrap();
        assert_eq!(received, sent);
        assert!(fds.is_empty());
    }

    #[test]
    fn descriptors_travel_with_their_message() {
        let (a, b) = Channel::pair().unwrap();
        let (x, y) = Channel::pair().unwrap();
        let config = crate::config::Config::parse("VIP4=198.18.100.1\nserver4=198.19.0.11\n", "t")
            .unwrap()
            .config;
        let setup = Message::WorkerSetup {
            worker: 1,
            queue: 1,
            flow_table_capacity: 1024,
            counter_blocks: 2,
            part: Box::new(crate::roles::WorkerPart::of(&config)),
        };
        a.send_with_fds(&setup, &[x.as_fd(), y.as_fd(), y.as_fd()])
            .unwrap();
        let (received, fds) = b.recv().unwrap();
        assert_eq!(received, setup);
        assert_eq!(fds.len(), 3);
        // The passed descriptor is a working copy of x: a message through it reaches y.
        let x_copy = Channel::from_fd(fds.into_iter().next().unwrap());
        x_copy.send(&Message::Ready).unwrap();
        assert_eq!(y.recv().unwrap().0, Message::Ready);
    }

    #[test]
    fn wrong_descriptor_count_is_refused_on_both_sides() {
        let (a, b) = Channel::pair().unwrap();
        let err = a.send_with_fds(&Message::Ready, &[b.as_fd()]).unwrap_err();
        assert!(matches!(err, ChannelError::WrongFdCount { .. }), "{err}");
        // A peer that bypasses the check (raw sendmsg) is caught by the receiver.
        let bytes = encode(&Message::Ready).unwrap();
        let fd = b.as_raw_fd();
        let rights = [ControlMessage::ScmRights(std::slice::from_ref(&fd))];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &rights,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let err = b.recv().unwrap_err();
        assert!(
            matches!(
                err,
                ChannelError::WrongFdCount {
                    expected: 0,
                    received: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn garbage_truncated_and_trailing_bytes_are_errors() {
        let (a, b) = Channel::pair().unwrap();
        a.send_raw_for_test(&[0xff, 0xff, 0xff, 0xff, 0xff])
            .unwrap();
        assert!(matches!(b.recv().unwrap_err(), ChannelError::Decode(_)));

        let mut bytes = encode(&Message::Log {
            level: LogLevel::Error,
            text: "x".repeat(100),
        })
        .unwrap();
        bytes.truncate(bytes.len() - 10);
        a.send_raw_for_test(&bytes).unwrap();
        assert!(matches!(b.recv().unwrap_err(), ChannelError::Decode(_)));

        let mut bytes = encode(&Message::Ready).unwrap();
        bytes.push(0);
        a.send_raw_for_test(&bytes).unwrap();
        assert!(matches!(
            b.recv().unwrap_err(),
            ChannelError::TrailingBytes { trailing: 1, .. }
        ));
    }

    #[test]
    fn oversized_datagram_is_refused() {
        let (a, b) = Channel::pair().unwrap();
        let huge = vec![0u8; MAX_MESSAGE_LEN + 100];
        // The socket may refuse a datagram this large outright; if it takes it, the receiver
        // must see truncation rather than decode a prefix.
        if a.send_raw_for_test(&huge).is_ok() {
            assert!(matches!(b.recv().unwrap_err(), ChannelError::Truncated));
        }
        let err = a
            .send(&Message::Log {
                level: LogLevel::Info,
                text: "y".repeat(MAX_MESSAGE_LEN),
            })
            .unwrap_err();
        assert!(matches!(err, ChannelError::TooLarge { .. }), "{err}");
    }

    fn snapshot(servers: usize) -> Message {
        use crate::balancing::Backend;
        use crate::message::BackendState;
        Message::BackendSnapshot {
            seq: 42,
            backends: (0..servers)
                .map(|i| BackendState {
                    backend: Backend {
                        addr: std::net::IpAddr::from([198, 19, (i / 256) as u8, (i % 256) as u8]),
                        weight: 1,
                    },
                    up: i % 2 == 0,
                })
                .collect(),
        }
    }

    #[test]
    fn backend_messages_round_trip_and_truncated_ones_are_refused() {
        use crate::message::BackendUpdate;
        let messages = [
            snapshot(3),
            Message::BackendUpdate {
                seq: 43,
                update: BackendUpdate::Down("fd00:19::12".parse().unwrap()),
            },
            Message::BackendChange {
                update: BackendUpdate::Added(crate::balancing::Backend {
                    addr: "198.19.0.14".parse().unwrap(),
                    weight: 1,
                }),
                reason: crate::message::StateReason::AnsweredBroadcast,
            },
            Message::BackendChange {
                update: BackendUpdate::Up("198.19.0.12".parse().unwrap()),
                reason: crate::message::StateReason::Failed("ping: Network is unreachable".into()),
            },
            Message::BackendBook {
                backends: vec![crate::message::BookedBackend {
                    backend: crate::balancing::Backend {
                        addr: "fd00:19::14".parse().unwrap(),
                        weight: 1,
                    },
                    origin: crate::message::Origin::HotPlugged,
                    health: crate::message::BookedHealth::Down,
                }],
            },
            Message::SnapshotRequest,
            Message::LinkLost { worker: 1 },
            Message::ServerOverrides {
                overrides: Box::new(crate::message::ServerOverrides {
                    drained: vec!["198.19.0.12".parse().unwrap()],
                    weights: vec![("fd00:19::12".parse().unwrap(), 7)],
                }),
            },
            Message::RoundDone,
        ];
        for message in messages {
            let bytes = encode(&message).unwrap();
            assert_eq!(decode(&bytes).unwrap(), message);
            for cut in 0..bytes.len() {
                assert!(
                    decode(&bytes[..cut]).is_err(),
                    "{} cut at {cut}",
                    message.kind()
                );
            }
        }
    }

    #[test]
    fn reload_messages_round_trip_carry_no_descriptor_and_truncated_ones_are_refused() {
        use crate::reload::{BalancingSettings, HealthSettings};
        let config = crate::config::Config::parse(
            "VIP4=198.18.100.1\nserver4=198.19.0.11\nserver4=198.19.0.14 weight=3\n\
             strategy=weighted\ncheck_cycle=5\nbroadcast=198.19.0.255\n",
            "t",
        )
        .unwrap()
        .config;
        let removed = vec!["198.19.0.12".parse().unwrap()];
        let messages = [
            Message::WorkerReconfigure {
                settings: Box::new(BalancingSettings::new(&config, removed.clone())),
            },
            Message::ProberReconfigure {
                settings: Box::new(HealthSettings::new(&config, removed.clone())),
            },
            Message::ProberSetup {
                part: Box::new(crate::roles::ProberPart::of(&config, removed)),
            },
        ];
        let (a, b) = Channel::pair().unwrap();
        for message in messages {
            assert_eq!(message.expected_fds(), 0, "{}", message.kind());
            a.send(&message).unwrap();
            let (received, fds) = b.recv().unwrap();
            assert_eq!(received, message);
            assert!(fds.is_empty());
            let bytes = encode(&message).unwrap();
            for cut in 0..bytes.len() {
                assert!(
                    decode(&bytes[..cut]).is_err(),
                    "{} cut at {cut}",
                    message.kind()
                );
            }
        }
        let err = a
            .send_with_fds(
                &Message::WorkerReconfigure {
                    settings: Box::new(BalancingSettings::new(&config, Vec::new())),
                },
                &[b.as_fd()],
            )
            .unwrap_err();
        assert!(matches!(err, ChannelError::WrongFdCount { .. }), "{err}");
    }

    #[test]
    fn an_oversized_snapshot_is_refused_before_it_is_sent() {
        // About 7 bytes a server: 12000 exceed MAX_MESSAGE_LEN.
        assert!(matches!(
            encode(&snapshot(12_000)),
            Err(ChannelError::TooLarge { .. })
        ));
        assert!(encode(&snapshot(1000)).is_ok(), "a thousand servers fit");
    }

    #[test]
    fn closed_peer_is_reported() {
        let (a, b) = Channel::pair().unwrap();
        drop(a);
        assert!(matches!(b.recv().unwrap_err(), ChannelError::Closed));
    }
}
