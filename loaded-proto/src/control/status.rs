//! What `status` reports: the model the master fills in from its config, the prober's
//! reports and the shared counters, and its JSON form.
//!
//! The JSON field names are the struct field names below and are stable: add fields, never
//! rename. Every packet counter's name contains `packets`. Times are unix seconds (UTC).

use crate::balancing::{Stickiness, Strategy};
use serde::{Serialize, Serializer};
use std::fmt::Display;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub vips: Vec<VipStatus>,
    /// Packets dropped, per reason, summed over the workers; every reason, zeros included.
    pub drops: Vec<DropCount>,
    pub workers: Vec<WorkerStatus>,
    pub prober: ProberStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VipStatus {
    pub vip: IpAddr,
    /// As in the config: `rr`, `weighted` or `maglev`.
    #[serde(serialize_with = "as_text")]
    pub strategy: Strategy,
    /// As in the config: `client` or `flow`.
    #[serde(serialize_with = "as_text")]
    pub stickiness: Stickiness,
    pub servers: Vec<ServerStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    pub server: IpAddr,
    pub state: ServerState,
    /// Unix time of the last change of `state.up` (the prober's verdict).
    pub since: u64,
    /// The prober's last word on the server (e.g. "echo reply in 0.3 ms"), if any.
    pub reason: Option<String>,
    pub weight: u32,
    /// Mappings in the flow table now (idle ones included until they expire).
    pub active_mappings: u64,
    /// Clients (or flows, with stickiness=flow) mapped to the server since the master
    /// started.
    pub new_flows: u64,
    pub packets_to_server: u64,
    pub bytes_to_server: u64,
    pub packets_from_server: u64,
    pub bytes_from_server: u64,
}

/// Up or down is the prober's verdict; draining the operator's. They are independent: a
/// drained server that fails its checks is both down and draining.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ServerState {
    pub up: bool,
    pub draining: bool,
}

impl ServerState {
    /// `up`, `down`, `up,draining` or `down,draining`.
    pub fn words(self) -> &'static str {
        match (self.up, self.draining) {
            (true, false) => "up",
            (false, false) => "down",
            (true, true) => "up,draining",
            (false, true) => "down,draining",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DropCount {
    /// The worker's name for the reason: `malformed`, `no_backend`, ...
    pub reason: String,
    pub packets: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    /// The worker number (its queue and core order), from 0.
    pub worker: u32,
    pub packets: u64,
    /// Times the kernel could not deliver to the worker's socket (its buffer was full).
    pub receive_overruns: u64,
    /// Verdicts the kernel refused (for packets it had dropped already).
    pub verdict_errors: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProberStatus {
    /// Whether health checks run at all (`-f` or `failover`).
    pub running: bool,
    /// Unix time the prober last finished a round of checks, if it has.
    pub last_round: Option<u64>,
}

fn as_text<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl Status {
    /// The JSON document, pretty-printed, ending in a newline.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs to a String cannot fail: no maps with non-string
        // keys, no I/O.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
pub(super) mod example {
    use super::*;

    /// Two VIPs, a server of each state, and every counter distinct, so that a golden
    /// output shows each value in its place.
    pub fn status() -> Status {
        let server =
            |address: &str, up, draining, since, reason: Option<&str>, base: u64| ServerStatus {
                server: address.parse().unwrap(),
                state: ServerState { up, draining },
                since,
                reason: reason.map(str::to_owned),
                weight: base as u32 / 100,
                active_mappings: base + 1,
                new_flows: base + 2,
                packets_to_server: base + 3,
                bytes_to_server: (base + 3) * 1000,
                packets_from_server: base + 4,
                bytes_from_server: (base + 4) * 1500,
            };
        Status {
            vips: vec![
                VipStatus {
                    vip: "198.18.0.1".parse().unwrap(),
                    strategy: Strategy::Weighted,
                    stickiness: Stickiness::Client,
                    servers: vec![
                        server(
                            "198.19.0.2",
                            true,
                            false,
                            1_765_000_000,
                            Some("echo reply"),
                            100,
                        ),
                        server(
                            "198.19.0.3",
                            false,
                            true,
                            1_765_000_100,
                            Some("timeout"),
                            200,
                        ),
                    ],
                },
                VipStatus {
                    vip: "fd00:18::1".parse().unwrap(),
                    strategy: Strategy::RoundRobin,
                    stickiness: Stickiness::Flow,
                    servers: vec![server("fd00:19::2", true, true, 1_765_000_200, None, 300)],
                },
            ],
            drops: vec![
                DropCount {
                    reason: "malformed".into(),
                    packets: 7,
                },
                DropCount {
                    reason: "no_backend".into(),
                    packets: 0,
                },
            ],
            workers: vec![
                WorkerStatus {
                    worker: 0,
                    packets: 1000,
                    receive_overruns: 1,
                    verdict_errors: 2,
                },
                WorkerStatus {
                    worker: 1,
                    packets: 2000,
                    receive_overruns: 3,
                    verdict_errors: 4,
                },
            ],
            prober: ProberStatus {
                running: true,
                last_round: Some(1_765_000_300),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words() {
        let words = |up, draining| ServerState { up, draining }.words();
        assert_eq!(words(true, false), "up");
        assert_eq!(words(false, false), "down");
        assert_eq!(words(true, true), "up,draining");
        assert_eq!(words(false, true), "down,draining");
    }

    #[test]
    fn golden_json() {
        let mut status = example::status();
        status.vips.truncate(1);
        status.vips[0].servers.truncate(1);
        status.drops.truncate(1);
        status.workers.truncate(1);
        let expected = r#"{
  "vips": [
    {
      "vip": "198.18.0.1",
      "strategy": "weighted",
      "stickiness": "client",
      "servers": [
        {
          "server": "198.19.0.2",
          "state": {
            "up": true,
            "draining": false
          },
          "since": 1765000000,
          "reason": "echo reply",
          "weight": 1,
          "active_mappings": 101,
          "new_flows": 102,
          "packets_to_server": 103,
          "bytes_to_server": 103000,
          "packets_from_server": 104,
          "bytes_from_server": 156000
        }
      ]
    }
  ],
  "drops": [
    {
      "reason": "malformed",
      "packets": 7
    }
  ],
  "workers": [
    {
      "worker": 0,
      "packets": 1000,
      "receive_overruns": 1,
      "verdict_errors": 2
    }
  ],
  "prober": {
    "running": true,
    "last_round": 1765000300
  }
}
"#;
        assert_eq!(status.to_json(), expected);
    }

    #[test]
    fn json_reads_back_with_every_value() {
        let status = example::status();
        let value: serde_json::Value = serde_json::from_str(&status.to_json()).unwrap();
        let draining = &value["vips"][0]["servers"][1];
        assert_eq!(draining["server"], "198.19.0.3");
        assert_eq!(draining["state"]["up"], false);
        assert_eq!(draining["state"]["draining"], true);
        assert_eq!(value["vips"][1]["strategy"], "rr");
        assert_eq!(value["vips"][1]["stickiness"], "flow");
        assert_eq!(
            value["vips"][1]["servers"][0]["reason"],
            serde_json::Value::Null
        );
        assert_eq!(value["workers"][1]["packets"], 2000);
    }
}
