//! The loadedctl binary against the server half of the protocol the master will run
//! (`loaded_proto::control::{listen, ControlConnection}`), driven by poll as the master's
//! loop will: both halves agree on requests, replies and errors.

use loaded_proto::control::{listen, ControlConnection, ControlError, Progress, Request};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Gid;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// Serves one connection on a fresh socket in a temporary directory, answering `status`
/// with a fixed body and refusing every other request with NoSuchServer. Returns the
/// socket's path and the server thread, which ends with the request it answered.
fn serve_one() -> (PathBuf, std::thread::JoinHandle<Option<Request>>) {
    let dir = std::env::temp_dir().join(format!("loadedctl-proto-{}-{}", std::process::id(), {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }));
    let path = dir.join("control.sock");
    let listener = listen(&path, Gid::current()).unwrap();
    let server = std::thread::spawn(move || {
        let ready = |fd: std::os::fd::BorrowedFd<'_>, flags| {
            let mut fds = [PollFd::new(fd, flags)];
            // Bounded: a test that gets no client fails instead of hanging.
            let n = poll(&mut fds, PollTimeout::from(20_000u16)).unwrap();
            assert_eq!(n, 1, "no event within 20 s");
        };
        ready(listener.as_fd(), PollFlags::POLLIN);
        let (stream, _) = listener.accept().unwrap();
        let mut connection = ControlConnection::new(stream, Instant::now()).unwrap();
        let mut answered = None;
        let mut progress = Progress::WantRead;
        while progress != Progress::Done {
            let stream = connection.stream().try_clone().unwrap();
            progress = match progress {
                Progress::WantRead => {
                    ready(stream.as_fd(), PollFlags::POLLIN);
                    connection.on_readable(|request| {
                        answered = Some(request);
                        match request {
                            Request::Status => Ok("VIP 198.18.0.1  strategy rr\n".into()),
                            Request::Drain(server) => Err(ControlError::NoSuchServer(server)),
                            _ => Ok(String::new()),
                        }
                    })
                }
                Progress::WantWrite => {
                    ready(stream.as_fd(), PollFlags::POLLOUT);
                    connection.on_writable()
                }
                Progress::Done => Progress::Done,
            };
        }
        drop(connection);
        let _ = std::fs::remove_dir_all(&dir);
        answered
    });
    (path, server)
}

fn loadedctl(path: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadedctl"))
        .arg("--socket")
        .arg(path)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn status_goes_through() {
    let (path, server) = serve_one();
    let output = loadedctl(&path, &["status"]);
    assert_eq!(server.join().unwrap(), Some(Request::Status));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout, b"VIP 198.18.0.1  strategy rr\n");
}

#[test]
fn the_masters_refusal_reaches_the_operator() {
    let (path, server) = serve_one();
    let output = loadedctl(&path, &["drain", "198.19.0.77"]);
    assert_eq!(
        server.join().unwrap(),
        Some(Request::Drain("198.19.0.77".parse().unwrap()))
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "loadedctl: error: no such server 198.19.0.77\n"
    );
}
