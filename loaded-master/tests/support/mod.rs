//! The network-namespace harness of loaded's end-to-end tests.
//!
//! `TestNet::up` builds the demo network of `etc/demo/topology.sh` under a unique prefix:
//!
//! ```text
//! cli (c0 198.18.0.2, fd00:18::2)
//!  └─ rtr (r0 198.18.0.1, fd00:18::1 | r1 198.18.1.2, fd00:18:1::2)
//!      └─ lb (l0 198.18.1.1, fd00:18:1::1; VIPs 198.18.100.1, fd00:100::1 on lo;
//!          │   br0 198.19.0.1, fd00:19::1)
//!          └─ b1..b3 (198.19.0.11-13, fd00:19::11-13), b4 with `Options::backends(4)`
//! ```
//!
//! Everything happens inside the namespaces: nothing is added to the root namespace, and
//! the harness adds no firewall rule (the balancer adds its own). Every command the harness
//! runs is bounded in time. Dropping the `TestNet` stops the processes it spawned (by pid),
//! then `topology.sh down` kills whatever is left inside the namespaces and deletes them;
//! this also happens when the test panics, and the drop itself never panics.
//!
//! Nothing here needs the balancer's binaries: the tests start the balancer themselves
//! (e.g. `net.spawn(Host::Balancer, &[master, "-D", "-c", config])`).
//!
//! The tests need root and `ip`, `iptables`, `ip6tables`, `python3`, `curl`, `nft` and
//! `conntrack` (kernel mode); without them they fail (not skip) with the reason, see
//! `require_root_and_tools`.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

pub mod balancer;
pub mod worker_totals;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

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

/// Bound of any command the harness runs without an explicit timeout.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a spawned process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a backend service gets to print "ready".
const BACKEND_READY_TIMEOUT: Duration = Duration::from_secs(15);

const NEEDED_TOOLS: [&str; 7] = [
    "ip",
    "iptables",
    "ip6tables",
    "python3",
    "curl",
    "nft",
    "conntrack",
];

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

/// The byte at offset i of `GET /big?bytes=N` is `BIG_PATTERN[i % 64]`.
pub const BIG_PATTERN: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n";

/// Whether `body` is exactly what `GET /big?bytes=len` sends.
pub fn is_big_body(body: &[u8], len: usize) -> bool {
    body.len() == len
        && body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == BIG_PATTERN[i % BIG_PATTERN.len()])
}

/// `etc/demo` of the workspace: topology.sh and the Python services.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/demo")
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Calls `condition` every 50 ms until it is true (returns true) or `timeout` has passed
/// (returns false; `condition` is called one last time at the end).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return condition();
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn effective_uid() -> Option<u32> {
    // "Uid:\treal\teffective\tsaved\tfs" in /proc/self/status.
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        fs::metadata(dir.join(tool))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Panics, with the reason and the fix, unless this process is root and has the tools the
/// end-to-end tests run. Deliberately a failure, not a skip: a run that cannot test the
/// datapath must not look green.
pub fn require_root_and_tools() {
    let tools = NEEDED_TOOLS.join(", ");
    let fix = "run it as root, see README (tests/run-all.sh installs the tools: \
               apt-get install -y iproute2 iptables python3 curl procps nftables conntrack)";
    if effective_uid() != Some(0) {
        panic!(
            "this end-to-end test needs root and {tools}: {fix}; \
             this process is not root (it creates network namespaces)"
        );
    }
    let missing: Vec<&str> = NEEDED_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    if !missing.is_empty() {
        panic!(
            "this end-to-end test needs root and {tools}: {fix}; missing on PATH: {}",
            missing.join(", ")
        );
    }
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

/// One row of `/proc/net/netfilter/nfnetlink_queue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfQueue {
    pub queue: u16,
    /// Netlink port id of the process bound to the queue.
    pub peer_portid: u32,
    /// Packets waiting for a verdict.
    pub waiting: u32,
    pub copy_mode: u32,
    pub copy_range: u32,
    /// Dropped because the queue was full.
    pub queue_dropped: u64,
    /// Dropped because the netlink socket's buffer was full.
    pub user_dropped: u64,
    /// Packet id of the last packet queued.
    pub id_sequence: u64,
}

/// Parses the rows of /proc/net/netfilter/nfnetlink_queue.
pub fn parse_nfqueue(text: &str) -> Vec<NfQueue> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            Some(NfQueue {
                queue: f[0].parse().ok()?,
                peer_portid: f[1].parse().ok()?,
                waiting: f[2].parse().ok()?,
                copy_mode: f[3].parse().ok()?,
                copy_range: f[4].parse().ok()?,
                queue_dropped: f[5].parse().ok()?,
                user_dropped: f[6].parse().ok()?,
                id_sequence: f[7].parse().ok()?,
            })
        })
        .collect()
}

/// A process started by `TestNet::spawn`.
struct Spawned {
    child: Child,
    what: String,
    log: PathBuf,
}

/// The topology of one test; see the module's documentation.
pub struct TestNet {
    prefix: String,
    backends: u8,
    dir: PathBuf,
    children: Mutex<Vec<Spawned>>,
    backend_pids: Mutex<HashMap<u8, u32>>,
}

/// A prefix no other run uses: `ld<pid>_<4 random hex digits>`; within one process, a
/// counter makes every draw differ. topology.sh refuses names that already exist.
fn unique_prefix() -> String {
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
fn stale_prefixes() -> Vec<String> {
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

fn failed_status() -> ExitStatus {
    ExitStatus::from_raw(127 << 8)
}

/// Reads `pipe` to the end on a thread; the result arrives on the returned channel.
fn read_in_background(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` with stdin from /dev/null, capturing its output, for at most `timeout`:
/// past it the process is killed (SIGKILL, by pid) and a note is added to its stderr.
/// Never panics; a command that cannot start gives status 127 and the reason on stderr.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Output {
                status: failed_status(),
                stdout: Vec::new(),
                stderr: format!("harness: cannot run {cmd:?}: {e}").into_bytes(),
            }
        }
    };
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Not reaped yet, so the pid is still this child's.
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| failed_status());
            }
            Err(_) => {
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| failed_status());
            }
        }
    };
    // A grandchild may still hold the pipes open: wait for the output only a little.
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
            .unwrap_or_default()
    };
    let stdout = collect(stdout);
    let mut stderr = collect(stderr);
    if timed_out {
        stderr.extend_from_slice(
            format!("\nharness: killed after {timeout:?}: {cmd:?}\n").as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A finished command for a failure message: what it was, its status and both outputs.
pub fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Sends SIGTERM to an unreaped child, waits up to `grace` for it, then SIGKILLs it; always
/// reaps it. Never panics.
fn stop_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal_term(child);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// SIGTERM by pid. The caller holds the unreaped `Child`, so the pid cannot have been
/// reused by another process.
fn signal_term(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not stop the cleanup.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A small ICMP echo client (raw sockets; root), so that no ping binary is needed.
/// argv: ADDR COUNT TIMEOUT. Prints "reply from ADDR seq N" per answer; exit 1 if none.
/// Sends COUNT requests 0.2 s apart; stops once every request has an answer and 0.3 s
/// have passed since the last one was sent (for the extra answers to a broadcast), or at
/// TIMEOUT.
const PING_PY: &str = r#"
import os, select, socket, struct, sys, time
addr, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in addr
if v6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
ident = os.getpid() & 0xFFFF
payload = b"loaded-harness-ping"
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
start = time.monotonic()
deadline = start + timeout
sent, next_send, last_send, got, answered = 0, start, start, 0, set()
while True:
    now = time.monotonic()
    if now >= deadline or (len(answered) == count and now >= last_send + 0.3):
        break
    if sent < count and now >= next_send:
        if v6:  # the kernel computes the ICMPv6 checksum
            pkt = struct.pack("!BBHHH", 128, 0, 0, ident, sent) + payload
        else:
            pkt = struct.pack("!BBHHH", 8, 0, 0, ident, sent) + payload
            pkt = pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]
        try:
            s.sendto(pkt, (addr, 0))
        except OSError as e:
            print("send: %s" % e, file=sys.stderr)
        sent, last_send, next_send = sent + 1, now, now + 0.2
        continue
    wake = deadline if sent == count else min(next_send, deadline)
    if len(answered) == count:
        wake = min(wake, last_send + 0.3)
    r, _, _ = select.select([s], [], [], max(0.0, wake - now))
    if not r:
        continue
    data, peer = s.recvfrom(65535)
    if not v6:
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < 8:
        continue
    typ, _, _, rid, seq = struct.unpack("!BBHHH", data[:8])
    if typ == (129 if v6 else 0) and rid == ident:
        got += 1
        answered.add(seq)
        print("reply from %s seq %d" % (peer[0], seq), flush=True)
sys.exit(0 if got else 1)
"#;

/// A UDP request/answer. argv: ADDR PORT PAYLOAD TIMEOUT. Prints the answer; fails when
/// none came in time or when it came from another address than ADDR.
const UDP_PY: &str = r#"
import ipaddress, socket, sys
addr, port, payload, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(timeout)
s.sendto(payload.encode(), (addr, port))
try:
    data, peer = s.recvfrom(65535)
except socket.timeout:
    sys.exit("no answer from %s port %d within %s s" % (addr, port, timeout))
if ipaddress.ip_address(peer[0]) != ipaddress.ip_address(addr) or peer[1] != port:
    sys.exit("answer %r came from %s port %d, not %s port %d" % (data, peer[0], peer[1], addr, port))
sys.stdout.write(data.decode("utf-8", "replace"))
"#;

impl TestNet {
    /// Checks root and the tools, removes namespaces left by killed runs, then builds the
    /// topology under a fresh prefix. Panics (after cleaning up) when it cannot.
    pub fn up(options: Options) -> TestNet {
        require_root_and_tools();
        assert!(
            (1..=MAX_BACKENDS).contains(&options.backends),
            "Options::backends: 1 to {MAX_BACKENDS}"
        );
        for stale in stale_prefixes() {
            eprintln!("harness: removing namespaces {stale}* left by a killed run");
            let _ = run_bounded(Self::topology(&["down", &stale]), secs(60));
        }
        let prefix = unique_prefix();
        let dir = std::env::temp_dir().join(format!("loaded-test-{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        if let Err(e) = fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        // Built before the topology, so that a failure below still cleans up in drop.
        let net = TestNet {
            prefix,
            backends: options.backends,
            dir,
            children: Mutex::new(Vec::new()),
            backend_pids: Mutex::new(HashMap::new()),
        };
        let backends = options.backends.to_string();
        let mtu = options.mtu_rtr_client.map(|m| m.to_string());
        let mut args = vec!["up", &net.prefix, "--backends", &backends];
        if let Some(mtu) = &mtu {
            args.extend(["--mtu-rtr-client", mtu]);
        }
        let out = run_bounded(Self::topology(&args), secs(60));
        if !out.status.success() {
            panic!("{}", describe("topology.sh up failed", &out));
        }
        net
    }

    fn topology(args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg(demo_dir().join("topology.sh")).args(args);
        cmd
    }

    /// The prefix of this topology's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of backends (b1 to bN).
    pub fn backend_count(&self) -> u8 {
        self.backends
    }

    /// The directory of this topology's logs and files (removed at drop unless the test
    /// failed). Tests may write files there, e.g. the balancer's config.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `contents` to `name` in `dir()` (e.g. the balancer's config) and returns the
    /// path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: Host) -> String {
        if let Host::Backend(n) = host {
            assert!(
                (1..=self.backends).contains(&n),
                "no backend b{n}: this topology has b1 to b{}",
                self.backends
            );
        }
        format!("{}{}", self.prefix, host.short_name())
    }

    fn command(&self, host: Host, args: &[&str]) -> Command {
        assert!(!args.is_empty(), "exec: no command");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).args(args);
        cmd
    }

    /// Runs `args` inside `host`'s namespace (`ip netns exec`), for at most 60 s.
    pub fn exec(&self, host: Host, args: &[&str]) -> Output {
        self.exec_timeout(host, args, DEFAULT_COMMAND_TIMEOUT)
    }

    /// `exec` with another bound: past `timeout` the command is killed and fails.
    pub fn exec_timeout(&self, host: Host, args: &[&str], timeout: Duration) -> Output {
        run_bounded(self.command(host, args), timeout)
    }

    /// `exec` that panics, with the command's output, unless it succeeds; returns stdout.
    pub fn exec_ok(&self, host: Host, args: &[&str]) -> String {
        let out = self.exec(host, args);
        if !out.status.success() {
            panic!(
                "{}",
                describe(&format!("in {}: {args:?} failed", self.ns(host)), &out)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `args` inside `host`'s namespace in the background; returns its pid. Its
    /// stdout and stderr go to a log file (see `log`). The harness keeps the process and,
    /// at drop (or `stop`), sends it SIGTERM, then SIGKILL, by pid, and reaps it.
    pub fn spawn(&self, host: Host, args: &[&str]) -> u32 {
        let mut children = lock(&self.children);
        let base = Path::new(args.first().copied().unwrap_or("cmd"))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let what = format!("{} in {}: {args:?}", base, host.short_name());
        let log = self.dir.join(format!(
            "{:02}-{}-{}.log",
            children.len(),
            host.short_name(),
            base
        ));
        let file = fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let file2 = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup {}: {e}", log.display()));
        let mut cmd = self.command(host, args);
        cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        // `ip netns exec` execs the command itself: the pid is the command's.
        let pid = child.id();
        children.push(Spawned { child, what, log });
        pid
    }

    fn with_spawned<R>(&self, pid: u32, f: impl FnOnce(&mut Spawned) -> R) -> R {
        let mut children = lock(&self.children);
        let spawned = children
            .iter_mut()
            .find(|s| s.child.id() == pid)
            .unwrap_or_else(|| panic!("pid {pid} was not started by this TestNet"));
        f(spawned)
    }

    /// What a spawned process has written to stdout and stderr so far.
    pub fn log(&self, pid: u32) -> String {
        let path = self.with_spawned(pid, |s| s.log.clone());
        fs::read_to_string(&path).unwrap_or_default()
    }

    /// The exit status of a spawned process if it has exited (it is then reaped).
    pub fn try_wait(&self, pid: u32) -> Option<ExitStatus> {
        self.with_spawned(pid, |s| s.child.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for a spawned process to exit.
    pub fn wait_exit(&self, pid: u32, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.try_wait(pid);
            status.is_some()
        });
        status
    }

    /// Stops a spawned process: SIGTERM, up to 5 s, then SIGKILL; reaps it. Returns its
    /// exit status (None if it could not be reaped).
    pub fn stop(&self, pid: u32) -> Option<ExitStatus> {
        self.with_spawned(pid, |s| stop_child(&mut s.child, STOP_GRACE))
    }

    /// Sends SIGTERM to a running spawned process without waiting (e.g. to test how the
    /// balancer shuts down); false if it has already exited.
    pub fn terminate(&self, pid: u32) -> bool {
        self.with_spawned(pid, |s| {
            if let Ok(None) = s.child.try_wait() {
                signal_term(&s.child);
                true
            } else {
                false
            }
        })
    }

    /// The pids of every process `spawn` started (running or not).
    pub fn spawned_pids(&self) -> Vec<u32> {
        lock(&self.children).iter().map(|s| s.child.id()).collect()
    }

    /// Starts backend-service.py in b1, b2 and b3 (named b1..b3; b4 is left without its
    /// service, see `start_backend`) and waits until each prints "ready".
    pub fn start_backends(&self) {
        let ns: Vec<u8> = (1..=self.backends.min(3)).collect();
        let pids: Vec<(u8, u32)> = ns.iter().map(|&n| (n, self.launch_backend(n))).collect();
        for (n, pid) in pids {
            self.wait_backend_ready(n, pid);
        }
    }

    /// Starts backend-service.py in backend n (e.g. b4 for a hotplug test), waits for
    /// "ready" and returns its pid.
    pub fn start_backend(&self, n: u8) -> u32 {
        let pid = self.launch_backend(n);
        self.wait_backend_ready(n, pid);
        pid
    }

    /// Stops backend n's service (SIGTERM, then SIGKILL), e.g. to test failover.
    pub fn stop_backend(&self, n: u8) -> Option<ExitStatus> {
        let pid = lock(&self.backend_pids)
            .remove(&n)
            .unwrap_or_else(|| panic!("b{n} has no running service"));
        self.stop(pid)
    }

    /// The pid of backend n's service, if started.
    pub fn backend_pid(&self, n: u8) -> Option<u32> {
        lock(&self.backend_pids).get(&n).copied()
    }

    fn launch_backend(&self, n: u8) -> u32 {
        let script = demo_dir().join("backend-service.py");
        let script = script.to_string_lossy();
        let name = format!("b{n}");
        let http = HTTP_PORT.to_string();
        let udp = UDP_PORT.to_string();
        let pid = self.spawn(
            Host::Backend(n),
            &[
                "python3",
                &script,
                "--name",
                &name,
                "--http-port",
                &http,
                "--udp-port",
                &udp,
            ],
        );
        if let Some(old) = lock(&self.backend_pids).insert(n, pid) {
            panic!("b{n} already has a service (pid {old})");
        }
        pid
    }

    fn wait_backend_ready(&self, n: u8, pid: u32) {
        let mut exited = None;
        let ready = wait_until(BACKEND_READY_TIMEOUT, || {
            exited = self.try_wait(pid);
            exited.is_none() && self.log(pid).lines().any(|l| l == "ready")
        });
        if !ready {
            panic!(
                "backend-service.py in b{n} (pid {pid}) {}; its output:\n{}",
                match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("did not print \"ready\" within {BACKEND_READY_TIMEOUT:?}"),
                },
                self.log(pid)
            );
        }
    }

    /// `curl` from the client: the body, or why it failed (HTTP errors included).
    pub fn curl(&self, url: &str, timeout: Duration) -> Result<String, String> {
        self.curl_from(Host::Client, url, timeout)
    }

    /// `curl` from any host; proxies from the environment are ignored.
    pub fn curl_from(&self, host: Host, url: &str, timeout: Duration) -> Result<String, String> {
        let t = format!("{:.3}", timeout.as_secs_f64());
        let out = self.exec_timeout(
            host,
            &[
                "curl",
                "--silent",
                "--show-error",
                "--fail",
                "--globoff",
                "--noproxy",
                "*",
                "--connect-timeout",
                &t,
                "--max-time",
                &t,
                url,
            ],
            timeout + secs(5),
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "curl {url} from {}: {}: {}",
                host.short_name(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// A UDP request from the client to ADDR:PORT (3 s timeout): the answer, or why none
    /// came. An answer from another address than `addr` is an error.
    pub fn udp_request(&self, addr: &str, port: u16, payload: &str) -> Result<String, String> {
        self.udp_request_from(Host::Client, addr, port, payload, secs(3))
    }

    /// `udp_request` from any host, with a timeout.
    pub fn udp_request_from(
        &self,
        host: Host,
        addr: &str,
        port: u16,
        payload: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let out = self.exec_timeout(
            host,
            &[
                "python3",
                "-c",
                UDP_PY,
                addr,
                &port.to_string(),
                payload,
                &timeout.as_secs_f64().to_string(),
            ],
            timeout + secs(5),
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "udp {addr} port {port} from {}: {}",
                host.short_name(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Pings `addr` from `host` (`count` echo requests, 0.2 s apart). Returns the distinct
    /// addresses that answered (several for a broadcast), or why none did.
    pub fn ping(
        &self,
        host: Host,
        addr: &str,
        count: u32,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        let out = self.exec_timeout(
            host,
            &[
                "python3",
                "-c",
                PING_PY,
                addr,
                &count.to_string(),
                &timeout.as_secs_f64().to_string(),
            ],
            timeout + secs(5),
        );
        let mut from: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("reply from "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        from.sort();
        from.dedup();
        if out.status.success() && !from.is_empty() {
            Ok(from)
        } else {
            Err(describe(
                &format!("ping {addr} from {}: no answer", host.short_name()),
                &out,
            ))
        }
    }

    /// Runs etc/demo/client-conns.py from the client: `count` keep-alive connections to
    /// ADDR:80 held for `hold`. Returns {backend name: connections}, or the failure.
    pub fn client_conns(
        &self,
        addr: &str,
        count: u32,
        hold: Duration,
    ) -> Result<HashMap<String, u32>, String> {
        let script = demo_dir().join("client-conns.py");
        let timeout = hold + secs(30);
        let out = self.exec_timeout(
            Host::Client,
            &[
                "python3",
                &script.to_string_lossy(),
                "-n",
                &count.to_string(),
                "--hold",
                &hold.as_secs_f64().to_string(),
                "--timeout",
                &timeout.as_secs_f64().to_string(),
                addr,
            ],
            timeout + secs(5),
        );
        if !out.status.success() {
            return Err(describe("client-conns.py failed", &out));
        }
        parse_counts(&String::from_utf8_lossy(&out.stdout))
            .ok_or_else(|| describe("client-conns.py printed no {name: count}", &out))
    }

    /// A file as seen from inside `host`'s namespace (`ip netns exec NS cat PATH`):
    /// /proc/net and /proc/sys/net show that namespace's view only there.
    pub fn read_file(&self, host: Host, path: &str) -> Result<String, String> {
        let out = self.exec_timeout(host, &["cat", "--", path], secs(10));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "cat {path} in {}: {}",
                self.ns(host),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// A sysctl inside `host`'s namespace, e.g. `sysctl(Host::Balancer, "net/ipv4/ip_forward")`.
    pub fn sysctl(&self, host: Host, key: &str) -> Result<String, String> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.read_file(host, &path).map(|v| v.trim().to_string())
    }

    /// The queues bound in lb (/proc/net/netfilter/nfnetlink_queue read inside lb); empty
    /// when none is bound (or nfnetlink_queue is not loaded yet).
    pub fn nfqueues(&self) -> Vec<NfQueue> {
        self.read_file(Host::Balancer, "/proc/net/netfilter/nfnetlink_queue")
            .map(|text| parse_nfqueue(&text))
            .unwrap_or_default()
    }

    /// The pids of every process inside `host`'s namespace (`ip netns pids`).
    pub fn ns_pids(&self, host: Host) -> Vec<u32> {
        let out = run_bounded(
            {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "pids", &self.ns(host)]);
                cmd
            },
            secs(10),
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Whether `address` (e.g. "198.18.100.1") is configured in `host`.
    pub fn has_address(&self, host: Host, address: &str) -> bool {
        let out = self.exec(host, &["ip", "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(address))
    }
}

/// Parses client-conns.py's `{"b1": 3, "b2": 4}` (flat, string keys, integer values).
pub fn parse_counts(text: &str) -> Option<HashMap<String, u32>> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))?;
    let inner = line.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    let mut counts = HashMap::new();
    if inner.is_empty() {
        return Some(counts);
    }
    for pair in inner.split(',') {
        let (key, value) = pair.split_once(':')?;
        let key = key.trim().strip_prefix('"')?.strip_suffix('"')?;
        counts.insert(key.to_string(), value.trim().parse().ok()?);
    }
    Some(counts)
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let failing = thread::panicking();
        let mut children = std::mem::take(&mut *lock(&self.children));
        // SIGTERM to all first so that they stop in parallel, then reap each within the
        // grace period (SIGKILL past it).
        for s in &mut children {
            if let Ok(None) = s.child.try_wait() {
                signal_term(&s.child);
            }
        }
        for s in &mut children {
            let status = stop_child(&mut s.child, STOP_GRACE);
            if failing {
                let log = fs::read_to_string(&s.log).unwrap_or_default();
                eprintln!(
                    "harness: {} (pid {}) ended {}; last output ({}):\n{}",
                    s.what,
                    s.child.id(),
                    status.map_or("unreaped".to_string(), |s| s.to_string()),
                    s.log.display(),
                    tail(&log, 40)
                );
            }
        }
        // Kills what is left in the namespaces (e.g. the balancer's workers), by pid, and
        // deletes the namespaces.
        let out = run_bounded(Self::topology(&["down", &self.prefix]), secs(60));
        if !out.status.success() || !out.stderr.is_empty() {
            eprintln!("{}", describe("harness: topology.sh down", &out));
        }
        if failing {
            eprintln!("harness: logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
