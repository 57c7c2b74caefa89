//! Writes the message codec's seed corpus: one encoded message of each kind the channels
//! carry. Run from the fuzz directory when the message enum changes:
//!
//!     cargo +nightly run --bin write_seeds
//!
//! The other targets' seeds are plain files (packets, configs) made by hand or copied.

use loaded_proto::balancing::Backend;
use loaded_proto::channel::encode;
use loaded_proto::config::Config;
use loaded_proto::message::{
    BackendState, BackendUpdate, BookedBackend, BookedHealth, LogLevel, Message, Origin,
    ServerOverrides, StateReason,
};
use loaded_proto::reload::{BalancingSettings, HealthSettings};
use loaded_proto::roles::{ProberPart, WorkerPart};
use std::net::{IpAddr, Ipv4Addr};

fn main() -> std::io::Result<()> {
    let config = Config::parse(include_str!("../../../etc/loaded.conf"), "etc/loaded.conf")
        .unwrap_or_else(|e| panic!("etc/loaded.conf: {e}"))
        .config;
    let server = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 11));
    let backend = Backend {
        addr: server,
        weight: 3,
    };
    let messages = [
        Message::WorkerSetup {
            worker: 1,
            queue: 1,
            flow_table_capacity: 1 << 20,
            counter_blocks: 2,
            part: Box::new(WorkerPart::of(&config)),
        },
        Message::ProberSetup {
            part: Box::new(ProberPart::of(&config, vec![server])),
        },
        Message::WorkerReconfigure {
            settings: Box::new(BalancingSettings::new(&config, vec![server])),
        },
        Message::ProberReconfigure {
            settings: Box::new(HealthSettings::new(&config, vec![server])),
        },
        Message::Ready,
        Message::Log {
            level: LogLevel::Warning,
            text: "worker/0: 3 dropped malformed".into(),
        },
        Message::Shutdown,
        Message::ProberLink { worker: 0 },
        Message::BackendSnapshot {
            seq: 7,
            backends: vec![BackendState { backend, up: true }],
        },
        Message::BackendUpdate {
            seq: 8,
            update: BackendUpdate::Down(server),
        },
        Message::BackendUpdate {
            seq: 9,
            update: BackendUpdate::Added(backend),
        },
        Message::SnapshotRequest,
        Message::LinkLost { worker: 1 },
        Message::BackendChange {
            update: BackendUpdate::Up(server),
            reason: StateReason::ChecksPassed,
        },
        Message::BackendBook {
            backends: vec![BookedBackend {
                backend,
                origin: Origin::HotPlugged,
                health: BookedHealth::Down,
            }],
        },
        Message::Ping,
        Message::Pong,
        Message::ServerOverrides {
            overrides: Box::new(ServerOverrides {
                drained: vec![server],
                weights: vec![(server, 7)],
            }),
        },
        Message::RoundDone,
    ];
    let dir = std::path::Path::new("corpus/message_codec");
    std::fs::create_dir_all(dir)?;
    for message in messages {
        let bytes = encode(&message).expect("every message encodes");
        std::fs::write(dir.join(format!("seed-{}", message.kind())), bytes)?;
    }
    Ok(())
}
