//! Becoming a daemon the way an init script expects: double fork, setsid, chdir /, stdio on
//! /dev/null, a pidfile, and a start command that returns only once the daemon is ready
//! (or fails with the daemon's exit status when setup failed after the fork).

use nix::unistd::{fork, setsid, ForkResult};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Held by the daemon; `ready` releases the waiting start command.
pub struct Readiness {
    pipe: Option<OwnedFd>,
}

impl Readiness {
    /// For -D: nobody waits.
    pub fn none() -> Readiness {
        Readiness { pipe: None }
    }

    pub fn ready(&mut self) {
        self.tell(b"1");
    }

    /// Hands the reason for a failed start to the waiting start command, which prints it
    /// (the daemon's own stderr is /dev/null). Call it once everything is cleaned up.
    pub fn failed(&mut self, reason: &str) {
        let mut message = b"E".to_vec();
        message.extend_from_slice(reason.as_bytes());
        self.tell(&message);
    }

    fn tell(&mut self, message: &[u8]) {
        if let Some(pipe) = self.pipe.take() {
            let mut file = fs::File::from(pipe);
            let _ = file.write_all(message);
        }
    }
}

/// Forks twice and returns in the grandchild. The original process waits until the daemon
/// calls `Readiness::ready` (exit 0), or `failed` or exits without either (exit 1).
pub fn daemonize() -> io::Result<Readiness> {
    // Close-on-exec: the children started before `ready` must not hold the write end.
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the master is single-threaded at this point (no thread has been started), so
    // the child may run any code after fork.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut file = fs::File::from(read_end);
            let mut answer = Vec::new();
            let _ = file.read_to_end(&mut answer);
            match answer.split_first() {
                Some((b'1', _)) => std::process::exit(0),
                Some((b'E', reason)) => {
                    eprintln!("loaded-master: {}", String::from_utf8_lossy(reason));
                }
                _ => eprintln!("loaded-master: the daemon ended during its start; see syslog"),
            }
            std::process::exit(1);
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid()?;
    // SAFETY: as above, still single-threaded.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    std::env::set_current_dir("/")?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    redirect_stdio_to_null()?;
    Ok(Readiness {
        pipe: Some(write_end),
    })
}

fn redirect_stdio_to_null() -> io::Result<()> {
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// The pidfile, removed when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Refuses to overwrite the pidfile of a running master; a stale one is replaced.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        if let Some(pid) = read_pid(path) {
            if process_is_loaded_master(pid) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} names pid {pid}, a running loaded-master",
                        path.display()
                    ),
                ));
            }
        }
        let temporary = path.with_extension("pid.tmp");
        fs::write(&temporary, format!("{}\n", std::process::id()))?;
        fs::rename(&temporary, path)?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a newer master may have replaced it.
        if read_pid(&self.path) == Some(std::process::id() as i32) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn process_is_loaded_master(pid: i32) -> bool {
    if pid as u32 == std::process::id() {
        return false;
    }
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim() == "loaded-master")
        .unwrap_or(false)
}
