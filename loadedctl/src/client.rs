//! Sends one request to the master's control socket and reads its reply.

use loaded_proto::control::{MalformedReply, Reply, Request};
use nix::unistd::Group;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::linux::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the master may take to answer: it answers from memory, at once; anything this
/// slow is a master that hangs, and a script calling us must not hang with it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a reply we read: a status of MAX_BACKENDS servers is far smaller, and a
/// peer that is not the master must not make us fill memory.
pub const MAX_REPLY_LEN: u64 = 16 << 20;

#[derive(Debug)]
pub enum ClientError {
    /// No socket at the path: the daemon is not running, or uses another control_socket.
    NoSocket(PathBuf),
    /// A socket file nobody listens on: the daemon is not running (it died or was killed).
    Refused(PathBuf),
    /// Not allowed to connect; `group` may (the socket's group, or its directory's).
    PermissionDenied {
        path: PathBuf,
        group: String,
    },
    /// No reply within REPLY_TIMEOUT.
    Timeout(PathBuf),
    Io {
        path: PathBuf,
        error: io::Error,
    },
    Malformed(MalformedReply),
    /// The master refused the request: its `error:` line.
    Error(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoSocket(path) => write!(
                f,
                "loaded is not running: there is no control socket at {} (is loaded-master \
                 started? does its control_socket= name another path? then use -s)",
                path.display()
            ),
            ClientError::Refused(path) => write!(
                f,
                "loaded is not running: connection refused at {} (a socket left by a master \
                 that is gone)",
                path.display()
            ),
            ClientError::PermissionDenied { path, group } => write!(
                f,
                "permission denied on {}: run loadedctl as root or as a member of group \
                 '{group}' (the master's control_group=)",
                path.display()
            ),
            ClientError::Timeout(path) => write!(
                f,
                "no reply from {} within {} s",
                path.display(),
                REPLY_TIMEOUT.as_secs()
            ),
            ClientError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            ClientError::Malformed(error) => error.fmt(f),
            ClientError::Error(message) => write!(f, "error: {message}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends `request` to the socket at `path`; the body of an `ok` reply.
pub fn send(path: &Path, request: &Request) -> Result<String, ClientError> {
    let mut stream = UnixStream::connect(path).map_err(|error| connect_error(path, error))?;
    let io_error = |error: io::Error| match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            ClientError::Timeout(path.to_owned())
        }
        _ => ClientError::Io {
            path: path.to_owned(),
            error,
        },
    };
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_error)?;
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_error)?;
    // A master that refuses early (a request too long) may close before reading all of
    // it: its reply still says why, so a failed write is reported only with no reply.
    let sent = stream
        .write_all(format!("{request}\n").as_bytes())
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write));
    let mut reply = Vec::new();
    let read = (&mut stream).take(MAX_REPLY_LEN).read_to_end(&mut reply);
    // What arrived is the answer, even if the connection then broke (a master closing
    // with part of a long request unread resets it).
    if reply.is_empty() {
        if let Err(error) = sent.and(read.map(|_| ())) {
            return Err(io_error(error));
        }
    }
    match Reply::parse(&reply).map_err(ClientError::Malformed)? {
        Reply::Ok(body) => Ok(body),
        Reply::Error(message) => Err(ClientError::Error(message)),
    }
}

fn connect_error(path: &Path, error: io::Error) -> ClientError {
    match error.kind() {
        io::ErrorKind::NotFound => ClientError::NoSocket(path.to_owned()),
        io::ErrorKind::ConnectionRefused => ClientError::Refused(path.to_owned()),
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
            path: path.to_owned(),
            group: group_of(path),
        },
        _ => ClientError::Io {
            path: path.to_owned(),
            error,
        },
    }
}

/// The group that may connect: the socket's, or if we may not even look at it, its
/// directory's. A name if the group database has one, else the number.
fn group_of(path: &Path) -> String {
    let gid = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(path.parent().unwrap_or(Path::new("/"))))
        .map(|metadata| metadata.st_gid());
    match gid {
        Ok(gid) => match Group::from_gid(gid.into()) {
            Ok(Some(group)) => group.name,
            _ => gid.to_string(),
        },
        Err(_) => "unknown".to_owned(),
    }
}
