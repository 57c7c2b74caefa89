//! The loadedctl binary against a fake master listening in a temporary directory: each way
//! it can end, with its exit status and message.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// A directory of its own per test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "loadedctl-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(path)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("control.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Accepts one connection, reads its request line, answers `reply` and closes; returns
/// the line it got.
fn fake_master(listener: UnixListener, reply: &'static [u8]) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        (&stream).write_all(reply).unwrap();
        line
    })
}

fn loadedctl(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadedctl"));
    command.arg("-s").arg(socket).args(args);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn exchange(args: &[&str], reply: &'static [u8]) -> (String, Output) {
    let dir = TempDir::new();
    let listener = UnixListener::bind(dir.socket()).unwrap();
    let master = fake_master(listener, reply);
    let output = loadedctl(&dir.socket(), args).output().unwrap();
    (master.join().unwrap(), output)
}

#[test]
fn an_ok_reply_prints_its_body_and_exits_0() {
    let (request, output) = exchange(&["status"], b"ok\nVIP 198.18.0.1\n");
    assert_eq!(request, "status\n");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "VIP 198.18.0.1\n");
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn each_command_sends_its_line() {
    for (args, line) in [
        (&["status", "--json"][..], "status json\n"),
        (&["metrics"][..], "metrics\n"),
        (&["drain", "198.19.0.2"][..], "drain 198.19.0.2\n"),
        (&["undrain", "fd00:19::2"][..], "undrain fd00:19::2\n"),
        (&["weight", "198.19.0.2", "7"][..], "weight 198.19.0.2 7\n"),
    ] {
        let (request, output) = exchange(args, b"ok\n");
        assert_eq!(request, line);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&output.stdout), "");
    }
}

#[test]
fn an_error_reply_is_shown_and_exits_1() {
    let (_, output) = exchange(
        &["drain", "198.19.0.9"],
        b"error: no such server 198.19.0.9\n",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "loadedctl: error: no such server 198.19.0.9\n"
    );
    assert_eq!(text(&output.stdout), "");
}

#[test]
fn a_reply_that_is_not_ours_exits_1() {
    let (_, output) = exchange(&["status"], b"SSH-2.0-OpenSSH\n");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("unexpected reply 'SSH-2.0-OpenSSH'"));
    let (_, output) = exchange(&["status"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("closed the connection without a reply"));
}

#[test]
fn no_socket_means_not_running() {
    let dir = TempDir::new();
    let output = loadedctl(&dir.socket(), &["status"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(message.contains("loaded is not running"), "{message}");
    assert!(
        message.contains(&dir.socket().display().to_string()),
        "{message}"
    );
}

#[test]
fn a_socket_nobody_listens_on_means_not_running() {
    let dir = TempDir::new();
    drop(UnixListener::bind(dir.socket()).unwrap());
    assert!(dir.socket().exists(), "the stale socket file stays");
    let output = loadedctl(&dir.socket(), &["metrics"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(
        message.contains("not running: connection refused"),
        "{message}"
    );
}

#[test]
fn permission_denied_names_the_group() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it runs loadedctl as nobody against a root-only socket"
    );
    let dir = TempDir::new();
    let listener = UnixListener::bind(dir.socket()).unwrap();
    std::fs::set_permissions(dir.socket(), std::fs::Permissions::from_mode(0o660)).unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a user nobody");
    let output = loadedctl(&dir.socket(), &["status"])
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .output()
        .unwrap();
    drop(listener);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let message = text(&output.stderr);
    assert!(message.contains("permission denied on"), "{message}");
    let root_group = nix::unistd::Group::from_gid(0.into())
        .unwrap()
        .unwrap()
        .name;
    assert!(
        message.contains(&format!("group '{root_group}'")),
        "{message}"
    );
}

#[test]
fn bad_usage_exits_1_with_the_usage() {
    let dir = TempDir::new();
    for args in [
        &["frobnicate"][..],
        &[][..],
        &["weight", "198.19.0.2", "0"][..],
    ] {
        let output = loadedctl(&dir.socket(), args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = text(&output.stderr);
        assert!(message.starts_with("loadedctl: "), "{message}");
        assert!(message.contains("usage: loadedctl"), "{message}");
    }
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    let output = Command::new(env!("CARGO_BIN_EXE_loadedctl"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).starts_with("usage: loadedctl"));
}

#[test]
fn a_master_that_never_answers_does_not_hang_us_for_ever() {
    // Not run against the binary (its timeout is 10 s); the client's own wait is bounded
    // by REPLY_TIMEOUT, checked here through the library with a silent listener.
    let dir = TempDir::new();
    let listener = UnixListener::bind(dir.socket()).unwrap();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        // Silent until the client has given up (or far too long has passed).
        let _ = finished.recv_timeout(loadedctl::client::REPLY_TIMEOUT * 3);
        drop(stream);
    });
    let started = std::time::Instant::now();
    let result = loadedctl::client::send(&dir.socket(), &loaded_proto::control::Request::Status);
    assert!(
        matches!(result, Err(loadedctl::client::ClientError::Timeout(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < loadedctl::client::REPLY_TIMEOUT * 2);
    done.send(()).unwrap();
    holder.join().unwrap();
}
