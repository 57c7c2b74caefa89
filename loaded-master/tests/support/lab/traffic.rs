//! Traffic from the lab's hosts: HTTP, UDP, ping, many connections.

use super::TestNet;
use crate::support::process::CommandError;
use crate::support::topology::{demo_dir, Host};
use crate::support::wait::secs;
use std::collections::HashMap;
use std::time::Duration;

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

/// The Internet checksum (RFC 1071) in Python, for the scripts that craft packets: put
/// before the script, e.g. `format!("{PY_CSUM}{SCRIPT}")`.
pub const PY_CSUM: &str = r#"
import struct
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
"#;

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
    /// `curl` from the client: the body, or why it failed (HTTP errors included).
    pub fn curl(&self, url: &str, timeout: Duration) -> Result<String, CommandError> {
        self.curl_from(Host::Client, url, timeout)
    }

    /// `curl` from any host; proxies from the environment are ignored.
    pub fn curl_from(
        &self,
        host: Host,
        url: &str,
        timeout: Duration,
    ) -> Result<String, CommandError> {
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
            Err(CommandError::failed(
                format!("curl {url} from {}", host.short_name()),
                &out,
            ))
        }
    }

    /// A UDP request from the client to ADDR:PORT (3 s timeout): the answer, or why none
    /// came. An answer from another address than `addr` is an error.
    pub fn udp_request(
        &self,
        addr: &str,
        port: u16,
        payload: &str,
    ) -> Result<String, CommandError> {
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
    ) -> Result<String, CommandError> {
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
            Err(CommandError::failed(
                format!("udp {addr} port {port} from {}", host.short_name()),
                &out,
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
    ) -> Result<Vec<String>, CommandError> {
        let out = self.exec_timeout(
            host,
            &[
                "python3",
                "-c",
                &format!("{PY_CSUM}{PING_PY}"),
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
            Err(CommandError::failed(
                format!("ping {addr} from {}: no answer", host.short_name()),
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
    ) -> Result<HashMap<String, u32>, CommandError> {
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
            return Err(CommandError::failed("client-conns.py", &out));
        }
        let output = String::from_utf8_lossy(&out.stdout);
        parse_counts(&output).ok_or_else(|| CommandError::Unreadable {
            what: "client-conns.py (no {name: count})".to_owned(),
            output: output.into_owned(),
        })
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
