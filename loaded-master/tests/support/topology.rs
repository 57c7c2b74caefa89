//! The names and addresses of the lab network (see etc/demo/topology.sh), and the
//! prefixes that make its namespace names unique.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The IPv4 VIP, on lb's `lo`; rtr routes it to lb.
pub const VIP4: &str = "198.18.100.1";

/// The IPv6 VIP, on lb's `lo`; rtr routes it to lb.
pub const VIP6: &str = "fd00:100::1";

/// The client's addresses (c0).
pub const CLIENT4: &str = "198.18.0.2";

pub const CLIENT6: &str = "fd00:18::2";

/// The router's client-side addresses (r0): the client's gateway.
pub const ROUTER_CLIENT4: &str = "198.18.0.1";

pub const ROUTER_CLIENT6: &str = "fd00:18::1";

/// The router's balancer-side addresses (r1): lb's gateway.
pub const ROUTER_LB4: &str = "198.18.1.2";

pub const ROUTER_LB6: &str = "fd00:18:1::2";

/// The balancer's own addresses on the router side (l0).
pub const LB4: &str = "198.18.1.1";

pub const LB6: &str = "fd00:18:1::1";

/// The balancer's addresses on the backend bridge (br0): the backends' gateway.
pub const BRIDGE4: &str = "198.19.0.1";

pub const BRIDGE6: &str = "fd00:19::1";

/// The broadcast address of the backend net (the backends answer pings to it).
pub const BACKEND_BROADCAST4: &str = "198.19.0.255";

/// The backend nets.
pub const BACKEND_NET4: &str = "198.19.0.0/24";

pub const BACKEND_NET6: &str = "fd00:19::/64";

/// Backend n (1-based) has `BACKEND4[n - 1]` and `BACKEND6[n - 1]`.
pub const BACKEND4: [&str; 4] = ["198.19.0.11", "198.19.0.12", "198.19.0.13", "198.19.0.14"];

pub const BACKEND6: [&str; 4] = ["fd00:19::11", "fd00:19::12", "fd00:19::13", "fd00:19::14"];

/// The ports of etc/demo/backend-service.py.
pub const HTTP_PORT: u16 = 80;

pub const UDP_PORT: u16 = 5353;

/// The most backends topology.sh makes.
pub const MAX_BACKENDS: u8 = 9;

/// Backend n's IPv4 address (n from 1 to `MAX_BACKENDS`).
pub fn backend4(n: u8) -> String {
    assert!((1..=MAX_BACKENDS).contains(&n), "no backend b{n}");
    format!("198.19.0.1{n}")
}

/// Backend n's IPv6 address (n from 1 to `MAX_BACKENDS`).
pub fn backend6(n: u8) -> String {
    assert!((1..=MAX_BACKENDS).contains(&n), "no backend b{n}");
    format!("fd00:19::1{n}")
}

/// `http://ADDR:PORT/PATH` with IPv6 addresses in brackets; `path` starts with '/'.
pub fn http_url(addr: &str, port: u16, path: &str) -> String {
    if addr.contains(':') {
        format!("http://[{addr}]:{port}{path}")
    } else {
        format!("http://{addr}:{port}{path}")
    }
}

/// `etc/demo` of the workspace: topology.sh and the Python services.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/demo")
}

/// A host of the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// `cli`, the client.
    Client,
    /// `rtr`, between the client and the balancer.
    Router,
    /// `lb`, where the balancer runs.
    Balancer,
    /// `bN`, backend N (1-based).
    Backend(u8),
}

impl Host {
    /// The namespace's name without the prefix.
    pub fn short_name(self) -> String {
        match self {
            Host::Client => "cli".into(),
            Host::Router => "rtr".into(),
            Host::Balancer => "lb".into(),
            Host::Backend(n) => format!("b{n}"),
        }
    }
}

/// What `TestNet::up` builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Number of backends, 1 to `MAX_BACKENDS` (default 3; 4 adds b4 for hotplug tests).
    pub backends: u8,
    /// MTU of the router's client-side interface r0 (1280 to 1500); c0 stays at 1500, so
    /// full-size segments to the client need path MTU discovery. Default: 1500.
    pub mtu_rtr_client: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backends: 3,
            mtu_rtr_client: None,
        }
    }
}

impl Options {
    pub fn backends(mut self, n: u8) -> Self {
        self.backends = n;
        self
    }

    pub fn mtu_rtr_client(mut self, mtu: u32) -> Self {
        self.mtu_rtr_client = Some(mtu);
        self
    }
}

/// A prefix no other run uses: `ld<pid>_<4 random hex digits>`; within one process, a
/// counter makes every draw differ. topology.sh refuses names that already exist.
pub(crate) fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("ld{}_{:04x}", std::process::id(), hasher.finish() & 0xffff)
}

/// The prefixes of our namespaces whose creating process is gone (a run killed with
/// SIGKILL could not drop its `TestNet`).
pub(crate) fn stale_prefixes() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    let mut stale: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| {
            // ld<pid>_<4 hex><host>
            let rest = name.strip_prefix("ld")?;
            let (pid, rest) = rest.split_once('_')?;
            let (hex, host) = (rest.get(..4)?, rest.get(4..)?);
            let is_host = ["cli", "rtr", "lb"].contains(&host)
                || (host.len() == 2
                    && host.starts_with('b')
                    && host.as_bytes()[1].is_ascii_digit());
            let ours = !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && is_host;
            (ours && !Path::new("/proc").join(pid).exists()).then(|| format!("ld{pid}_{hex}"))
        })
        .collect();
    stale.sort();
    stale.dedup();
    stale
}
