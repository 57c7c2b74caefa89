//! Logging for the chrooted children: every line goes to the master over the control
//! channel, and the master writes it to syslog.
//!
//! A chrooted child cannot open /dev/log, and a socket opened before the chroot would never
//! reconnect after the syslog daemon restarts; the master, outside any chroot, can.
//! Lines are sent without blocking: when the channel is full a line is lost and counted,
//! rather than stalling the datapath.

use crate::channel::Channel;
use crate::message::Message;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

struct RelayLogger {
    channel: Channel,
    lost: AtomicU64,
}

impl log::Log for RelayLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = Message::Log {
            level: record.level().into(),
            text: record.args().to_string(),
        };
        if self.channel.try_send(&message).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

/// Installs the relay as the process's logger, on a duplicate of `channel` (so the caller
/// keeps using its own handle for other messages).
pub fn init(channel: &Channel, level: log::LevelFilter) -> std::io::Result<()> {
    let duplicate = channel.as_fd().try_clone_to_owned()?;
    let logger = RelayLogger {
        channel: Channel::from_fd(duplicate),
        lost: AtomicU64::new(0),
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| std::io::Error::other(e.to_string()))?;
    log::set_max_level(level);
    Ok(())
}
