//! The master's listening socket, made in steps (one function and one error variant per
//! step): the directory, a stale socket out of the way, bind, mode, group.

use nix::unistd::{chown, Gid};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Who may connect: the owner (root) and the socket's group.
pub const SOCKET_MODE: u32 = 0o660;
/// The directory the master creates for the socket: anyone may look up the socket in it;
/// the socket's own mode decides who connects.
pub const DIRECTORY_MODE: u32 = 0o755;

#[derive(Debug)]
pub enum ListenError {
    CreateDirectory {
        path: PathBuf,
        error: io::Error,
    },
    /// Something that is not a socket sits at the path: not ours to remove.
    NotASocket(PathBuf),
    /// A master answers on the socket already.
    InUse(PathBuf),
    RemoveStale {
        path: PathBuf,
        error: io::Error,
    },
    Bind {
        path: PathBuf,
        error: io::Error,
    },
    SetMode {
        path: PathBuf,
        error: io::Error,
    },
    SetGroup {
        path: PathBuf,
        gid: u32,
        error: nix::Error,
    },
    NonBlocking {
        path: PathBuf,
        error: io::Error,
    },
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::CreateDirectory { path, error } => {
                write!(
                    f,
                    "cannot create the control socket's directory {}: {error}",
                    path.display()
                )
            }
            ListenError::NotASocket(path) => write!(
                f,
                "{} exists and is not a socket; not removing it (choose another control_socket=)",
                path.display()
            ),
            ListenError::InUse(path) => write!(
                f,
                "another loaded-master answers on {} already",
                path.display()
            ),
            ListenError::RemoveStale { path, error } => {
                write!(
                    f,
                    "cannot remove the stale control socket {}: {error}",
                    path.display()
                )
            }
            ListenError::Bind { path, error } => {
                write!(
                    f,
                    "cannot bind the control socket {}: {error}",
                    path.display()
                )
            }
            ListenError::SetMode { path, error } => {
                write!(f, "cannot set the mode of {}: {error}", path.display())
            }
            ListenError::SetGroup { path, gid, error } => {
                write!(f, "cannot give {} to group {gid}: {error}", path.display())
            }
            ListenError::NonBlocking { path, error } => {
                write!(f, "cannot make {} non-blocking: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for ListenError {}

/// A non-blocking listener at `path`, mode 0660, group `group`, in a directory created
/// 0755 if missing. Close-on-exec, as std makes every socket, so no child inherits it.
pub fn listen(path: &Path, group: Gid) -> Result<UnixListener, ListenError> {
    create_directory(path)?;
    remove_stale_socket(path)?;
    let listener = bind(path)?;
    set_mode(path)?;
    set_group(path, group)?;
    listener
        .set_nonblocking(true)
        .map_err(|error| ListenError::NonBlocking {
            path: path.to_owned(),
            error,
        })?;
    Ok(listener)
}

pub fn create_directory(path: &Path) -> Result<(), ListenError> {
    let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(directory)
        .map_err(|error| ListenError::CreateDirectory {
            path: directory.to_owned(),
            error,
        })
}

/// Removes a socket left by a master that is gone; refuses to touch anything else, or a
/// socket a live master still answers on.
pub fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(ListenError::RemoveStale {
                path: path.to_owned(),
                error,
            })
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(ListenError::NotASocket(path.to_owned()));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(ListenError::InUse(path.to_owned()));
    }
    fs::remove_file(path).map_err(|error| ListenError::RemoveStale {
        path: path.to_owned(),
        error,
    })
}

pub fn bind(path: &Path) -> Result<UnixListener, ListenError> {
    UnixListener::bind(path).map_err(|error| ListenError::Bind {
        path: path.to_owned(),
        error,
    })
}

pub fn set_mode(path: &Path) -> Result<(), ListenError> {
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE)).map_err(|error| {
        ListenError::SetMode {
            path: path.to_owned(),
            error,
        }
    })
}

pub fn set_group(path: &Path, group: Gid) -> Result<(), ListenError> {
    chown(path, None, Some(group)).map_err(|error| ListenError::SetGroup {
        path: path.to_owned(),
        gid: group.as_raw(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn temp_dir(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("loaded-listen-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn the_socket_gets_its_directory_mode_and_group() {
        let dir = temp_dir("modes");
        let path = dir.join("run/control.sock");
        let group = Gid::current();
        let listener = listen(&path, group).unwrap();
        let socket = fs::metadata(&path).unwrap();
        assert!(socket.file_type().is_socket());
        assert_eq!(socket.mode() & 0o777, SOCKET_MODE);
        assert_eq!(socket.gid(), group.as_raw());
        assert_eq!(
            fs::metadata(dir.join("run")).unwrap().mode() & 0o777,
            DIRECTORY_MODE
        );
        let _client = UnixStream::connect(&path).unwrap();
        assert!(listener.accept().is_ok());
        let idle = listener.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(idle, Err(io::ErrorKind::WouldBlock), "the listener blocks");
        drop(listener);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_socket_is_replaced_a_live_one_or_a_file_is_not() {
        let dir = temp_dir("stale");
        let path = dir.join("control.sock");
        fs::create_dir_all(&dir).unwrap();
        drop(UnixListener::bind(&path).unwrap());
        let live = listen(&path, Gid::current()).expect("replaces the stale socket");
        assert!(matches!(
            listen(&path, Gid::current()),
            Err(ListenError::InUse(_))
        ));
        drop(live);
        fs::remove_file(&path).unwrap();
        fs::write(&path, "precious").unwrap();
        let error = listen(&path, Gid::current()).unwrap_err();
        assert!(matches!(error, ListenError::NotASocket(_)), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
        fs::remove_dir_all(&dir).unwrap();
    }
}
