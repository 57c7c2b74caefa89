//! The master's side of the control socket (`loadedctl`): the listener and the client
//! connections, served from the supervisor's poll loop without ever blocking it.
//!
//! Each wakeup accepts at most ACCEPTS_PER_WAKEUP clients and keeps at most
//! MAX_CONNECTIONS open (more are dropped at once); a connection holds at most one
//! request line and gets CONNECTION_DEADLINE to finish. So a client that floods, stalls or
//! connects in a loop costs the master a bounded amount of work per wakeup, and signals and
//! children are served in between.

use loaded_proto::control::{self, ControlConnection, ControlError, Progress, Request};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::unistd::{Gid, Group};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Clients accepted per wakeup; the loop comes back for the rest without waiting.
const ACCEPTS_PER_WAKEUP: usize = 8;
/// Connections open at once; one more is accepted and dropped (the client sees the
/// connection closed without a reply).
const MAX_CONNECTIONS: usize = 16;

/// The listener's token; connections take tokens from FIRST_CONNECTION up, far from the
/// children's, which count up from 1.
pub const LISTENER: Token = Token(usize::MAX);
const FIRST_CONNECTION: usize = usize::MAX / 2;

#[derive(Debug)]
pub enum ControlSetupError {
    NoSuchGroup(String),
    LookUpGroup { name: String, error: nix::Error },
    Listen(control::ListenError),
}

impl fmt::Display for ControlSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlSetupError::NoSuchGroup(name) => {
                write!(f, "control_group: there is no group {name}")
            }
            ControlSetupError::LookUpGroup { name, error } => {
                write!(f, "control_group: cannot look up group {name}: {error}")
            }
            ControlSetupError::Listen(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ControlSetupError {}

/// `control_group=`: a name, or a numeric gid as is.
pub fn resolve_group(name: &str) -> Result<Gid, ControlSetupError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(ControlSetupError::NoSuchGroup(name.to_owned())),
        Err(error) => Err(ControlSetupError::LookUpGroup {
            name: name.to_owned(),
            error,
        }),
    }
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    connections: HashMap<Token, ControlConnection>,
    next_token: usize,
    /// The last wakeup stopped accepting at its cap: clients may be waiting.
    accepts_pending: bool,
}

impl ControlServer {
    /// Listens at `path` for members of `group` (see `control::listen`).
    pub fn listen(path: &Path, group: &str) -> Result<ControlServer, ControlSetupError> {
        let gid = resolve_group(group)?;
        let listener = control::listen(path, gid).map_err(ControlSetupError::Listen)?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION,
            accepts_pending: false,
        })
    }

    pub fn register(&self, registry: &Registry) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )
    }

    pub fn owns(&self, token: Token) -> bool {
        token == LISTENER || self.connections.contains_key(&token)
    }

    /// Whether the loop must come back at once (accepts were cut off at the cap).
    pub fn has_pending_work(&self) -> bool {
        self.accepts_pending
    }

    /// When a connection runs out of time, if any is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.connections
            .values()
            .map(ControlConnection::deadline)
            .min()
    }

    /// Accepts waiting clients (at most ACCEPTS_PER_WAKEUP) and serves what each sent.
    pub fn accept(
        &mut self,
        registry: &Registry,
        answer: &mut dyn FnMut(Request) -> Result<String, ControlError>,
    ) {
        self.accepts_pending = false;
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("control socket: accept: {e}");
                    return;
                }
            };
            if self.connections.len() >= MAX_CONNECTIONS {
                log::warn!(
                    "control socket: {MAX_CONNECTIONS} clients connected already; dropping one more"
                );
                continue;
            }
            let connection = match ControlConnection::new(stream, Instant::now()) {
                Ok(connection) => connection,
                Err(e) => {
                    log::warn!("control socket: {e}");
                    continue;
                }
            };
            let token = Token(self.next_token);
            self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONNECTION);
            let registered = registry.register(
                &mut SourceFd(&connection.stream().as_raw_fd()),
                token,
                Interest::READABLE | Interest::WRITABLE,
            );
            if let Err(e) = registered {
                log::warn!("control socket: cannot watch a client: {e}");
                continue;
            }
            self.connections.insert(token, connection);
            // What it sent before it was registered.
            self.serve(registry, token, true, false, answer);
        }
        self.accepts_pending = true;
    }

    /// A readiness event of connection `token`.
    pub fn serve(
        &mut self,
        registry: &Registry,
        token: Token,
        readable: bool,
        writable: bool,
        answer: &mut dyn FnMut(Request) -> Result<String, ControlError>,
    ) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let progress = if readable {
            connection.on_readable(answer)
        } else if writable {
            connection.on_writable()
        } else {
            Progress::WantRead
        };
        if progress == Progress::Done {
            self.close(registry, token);
        }
    }

    /// Drops the connections past their deadline.
    pub fn drop_late(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, connection)| connection.is_past_deadline(now))
            .map(|(token, _)| *token)
            .collect();
        for token in late {
            log::debug!("control socket: a client ran out of time; dropping it");
            self.close(registry, token);
        }
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(connection) = self.connections.remove(&token) {
            let _ = registry.deregister(&mut SourceFd(&connection.stream().as_raw_fd()));
        }
    }
}

impl Drop for ControlServer {
    /// The socket goes with the master, so `loadedctl` says loaded is not running.
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(resolve_group("root").unwrap(), Gid::from_raw(0));
        assert_eq!(resolve_group("4242").unwrap(), Gid::from_raw(4242));
        assert!(matches!(
            resolve_group("no-such-group-here"),
            Err(ControlSetupError::NoSuchGroup(_))
        ));
    }

    fn temp_socket(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loaded-cs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("control.sock")
    }

    #[test]
    fn clients_are_served_up_to_the_cap_and_the_socket_goes_with_the_server() {
        let path = temp_socket("cap");
        let mut server = ControlServer::listen(&path, &Gid::current().to_string()).unwrap();
        let poll = mio::Poll::new().unwrap();
        server.register(poll.registry()).unwrap();
        let mut clients: Vec<UnixStream> = (0..ACCEPTS_PER_WAKEUP + 2)
            .map(|_| {
                let mut client = UnixStream::connect(&path).unwrap();
                client.write_all(b"status\n").unwrap();
                client
            })
            .collect();
        let asked = std::cell::Cell::new(0);
        let mut answer = |request: Request| {
            assert_eq!(request, Request::Status);
            asked.set(asked.get() + 1);
            Ok("fine\n".to_owned())
        };
        server.accept(poll.registry(), &mut answer);
        assert!(server.has_pending_work(), "cut off at the cap");
        server.accept(poll.registry(), &mut answer);
        assert!(!server.has_pending_work());
        assert_eq!(asked.get(), ACCEPTS_PER_WAKEUP + 2);
        for client in &mut clients {
            let mut reply = String::new();
            client.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, "ok\nfine\n");
        }
        assert!(server.connections.is_empty(), "answered ones are closed");
        // A client that says nothing holds its slot until its deadline.
        let _silent = UnixStream::connect(&path).unwrap();
        server.accept(poll.registry(), &mut answer);
        assert_eq!(server.connections.len(), 1);
        server.drop_late(poll.registry(), Instant::now());
        assert_eq!(server.connections.len(), 1);
        server.drop_late(
            poll.registry(),
            Instant::now() + control::CONNECTION_DEADLINE,
        );
        assert!(server.connections.is_empty());
        drop(server);
        assert!(!path.exists(), "the socket is removed");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
