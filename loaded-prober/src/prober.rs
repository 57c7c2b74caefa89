//! The prober's `run`. It jails itself keeping only CAP_NET_RAW (for raw ICMP sockets), takes
//! its config from the master and serves the control channel.
//!
//! The health checks themselves (broadcast and unicast ping, TCP connect, hysteresis, and
//! streaming backend updates to the workers) are the failover issue's work; until then the
//! prober says so once and the backends stay as configured.

use loaded_proto::message::Message;

pub fn run() -> i32 {
    let (_args, channel) = loaded_proto::child::start(caps::Capability::CAP_NET_RAW);
    let config = match channel.recv() {
        Ok((Message::ProberSetup { config }, _)) => config,
        Ok((other, _)) => {
            log::error!("expected ProberSetup, got {}", other.kind());
            return 1;
        }
        Err(e) => {
            log::error!("no setup from the master: {e}");
            return 1;
        }
    };
    log::warn!(
        "health checks are not implemented yet: all {} configured server(s) stay in service",
        config.backends().len()
    );
    if channel.send(&Message::Ready).is_err() {
        return 1;
    }
    loop {
        match channel.recv() {
            Ok((message, _)) => {
                if let Some(code) = dispatch_master(message) {
                    return code;
                }
            }
            Err(_) => return 0,
        }
    }
}

/// What the master may say to the prober.
fn dispatch_master(message: Message) -> Option<i32> {
    match message {
        Message::Shutdown => Some(0),
        other => {
            log::error!("unexpected {} message from the master", other.kind());
            Some(1)
        }
    }
}
