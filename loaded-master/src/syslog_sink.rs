//! The master's logger: every line of every process reaches syslog from here (facility
//! daemon, ident `loaded`, the text prefixed with the process it came from).
//!
//! The socket is reopened when a send fails, so lines keep arriving after the syslog daemon
//! restarts (it unlinks and rebinds /dev/log, which leaves our old socket dangling).
//! Sends never block: a stalled syslog daemon costs lines (counted), never the master's
//! ability to supervise, restart and stop.

use loaded_proto::message::LogLevel;
use std::path::PathBuf;
use std::sync::Mutex;

type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

pub struct SyslogSink {
    socket_path: PathBuf,
    connection: Option<SyslogLogger>,
    also_stderr: bool,
    /// Lines lost because the syslog socket was full or gone.
    lost: u64,
}

impl SyslogSink {
    pub fn new(socket_path: PathBuf, also_stderr: bool) -> SyslogSink {
        SyslogSink {
            socket_path,
            connection: None,
            also_stderr,
            lost: 0,
        }
    }

    fn connect(&self) -> Option<SyslogLogger> {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "loaded".into(),
            pid: std::process::id(),
        };
        let connection = syslog::unix_custom(formatter, &self.socket_path).ok()?;
        let nonblocking = match &connection.backend {
            syslog::LoggerBackend::Unix(socket) => socket.set_nonblocking(true),
            syslog::LoggerBackend::UnixStream(writer) => writer.get_ref().set_nonblocking(true),
            _ => Ok(()),
        };
        nonblocking.ok().map(|()| connection)
    }

    fn send(connection: &mut SyslogLogger, level: LogLevel, line: &str) -> Sent {
        let result = match level {
            LogLevel::Error => connection.err(line),
            LogLevel::Warning => connection.warning(line),
            LogLevel::Info => connection.info(line),
            LogLevel::Debug => connection.debug(line),
        };
        match result {
            Ok(()) => Sent::Yes,
            Err(syslog::Error::Io(e) | syslog::Error::Write(e))
                if e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                Sent::Full
            }
            Err(_) => Sent::Broken,
        }
    }

    pub fn write(&mut self, level: LogLevel, origin: &str, text: &str) {
        let line = format!("{origin}: {}", printable(text));
        if self.also_stderr {
            eprintln!("loaded: {line}");
        }
        if let Some(connection) = self.connection.as_mut() {
            match Self::send(connection, level, &line) {
                Sent::Yes => {
                    self.report_lost();
                    return;
                }
                Sent::Full => {
                    self.lost += 1;
                    return;
                }
                Sent::Broken => {}
            }
        }
        // Not connected yet, or the daemon went away: reconnect once and retry.
        self.connection = self.connect();
        let sent = match self.connection.as_mut() {
            Some(connection) => Self::send(connection, level, &line),
            None => Sent::Broken,
        };
        match sent {
            Sent::Yes => self.report_lost(),
            Sent::Full => self.lost += 1,
            Sent::Broken => {
                self.lost += 1;
                self.connection = None;
            }
        }
    }

    /// Once syslog takes lines again, says how many it missed.
    fn report_lost(&mut self) {
        if self.lost == 0 {
            return;
        }
        let line = format!(
            "master: {} log lines were lost (syslog socket full or gone)",
            self.lost
        );
        if let Some(connection) = self.connection.as_mut() {
            if let Sent::Yes = Self::send(connection, LogLevel::Warning, &line) {
                self.lost = 0;
            }
        }
    }

    /// The pid in the syslog header must be the daemon's, which changes when it forks.
    pub fn reconnect(&mut self) {
        self.connection = self.connect();
    }
}

enum Sent {
    Yes,
    /// The daemon is not reading: the line is dropped, the connection kept.
    Full,
    /// The daemon is gone (restarted, or never there): reconnect.
    Broken,
}

/// A child's text as one harmless line: a newline would forge a second record, and
/// terminal escape sequences (ESC, other control characters, C1 controls) would reach the
/// admin's terminal with -D. Each such character becomes a space.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

static SINK: Mutex<Option<SyslogSink>> = Mutex::new(None);

/// Writes a line from any process through the master's sink.
pub fn log_line(level: LogLevel, origin: &str, text: &str) {
    let mut guard = SINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match guard.as_mut() {
        Some(sink) => sink.write(level, origin, text),
        None => eprintln!("loaded: {origin}: {}", printable(text)),
    }
}

pub fn reconnect() {
    let mut guard = SINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(sink) = guard.as_mut() {
        sink.reconnect();
    }
}

/// The master's own `log::` lines, with origin `master`.
struct MasterLogger;

impl log::Log for MasterLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            log_line(record.level().into(), "master", &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

pub fn init(socket_path: PathBuf, also_stderr: bool, level: log::LevelFilter) {
    let mut sink = SyslogSink::new(socket_path, also_stderr);
    sink.reconnect();
    *SINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sink);
    // Only fails if a logger is already set, which would be ours from an earlier call.
    let _ = log::set_logger(&MasterLogger);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_never_reach_the_log() {
        assert_eq!(
            printable("a\nb\r\x1b[2Jc\x07d\u{9b}31me\tf"),
            "a b  [2Jc d 31me f"
        );
        assert_eq!(
            printable("server fd00:19::11 is down (µs)"),
            "server fd00:19::11 is down (µs)"
        );
    }
}
