//! End-to-end: a flood of TCP segments without SYN, from many spoofed client addresses and
//! ports, creates no mapping in the shared flow table (each is dropped and counted as
//! `tcp_not_syn_unknown_flow`), so it can neither fill the table nor move a real client:
//! a connection held across the flood keeps its server.
//!
//! The spoofed sources are unused addresses of the client's own network (198.18.0.0/24),
//! so the packets stay inside the lab. They need root and fail with the reason without it.

mod support;

use loaded_proto::flow_table::SharedFlowTable;
use std::fs;
use std::os::fd::AsFd;
use support::balancer::*;
use support::worker_totals::*;
use support::*;

/// The table's capacity, set in the config so the test can map the master's region.
const MAX_FLOWS: usize = 4096;

/// Sends COUNT TCP ACK segments (no SYN) to DST:80 from source addresses 198.18.0.10 to
/// .249 and ports 20000 and up, for at most SECONDS, with a raw socket (IP_HDRINCL, the
/// kernel fills in the id, length and header checksum). argv: DST COUNT SECONDS. Prints
/// "sent N". Runs after PY_CSUM.
const ACK_FLOOD_PY: &str = r#"
import socket, struct, sys, time
dst, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
end = time.monotonic() + seconds
sent = 0
for i in range(count):
    if time.monotonic() > end:
        break
    src = "198.18.0.%d" % (10 + i % 240)
    sport = 20000 + (i // 240) % 40000
    tcp = struct.pack("!HHIIBBHHH", sport, 80, 1000 + i, 1, 5 << 4, 0x10, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(header + tcp, (dst, 0))
    sent += 1
print("sent %d" % sent, flush=True)
"#;

/// Holds one keep-alive connection to argv[1]:80: asks once, prints the server, waits
/// (at most 60 s) until the file argv[2] exists, asks again on the same connection and
/// prints the server.
const HOLD_PY: &str = r#"
import os, socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=10)

def ask():
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: keep-alive\r\n\r\n")
    data = b""
    while b"backend=" not in data or not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("the connection was closed")
        data += chunk
    print(data.split(b"backend=")[1].strip().decode(), flush=True)

ask()
end = time.monotonic() + 60
while not os.path.exists(sys.argv[2]):
    if time.monotonic() > end:
        sys.exit("never told to ask again")
    time.sleep(0.05)
ask()
"#;

/// The master's flow table region (its memfd, through /proc), mapped by this test.
fn master_flow_table(master_pid: u32) -> SharedFlowTable {
    let dir = format!("/proc/{master_pid}/fd");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{dir}: {e}")).path();
        let target = fs::read_link(&path).unwrap_or_default();
        if target
            .to_string_lossy()
            .starts_with("/memfd:loaded-flow-table")
        {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return SharedFlowTable::map(file.as_fd(), MAX_FLOWS)
                .unwrap_or_else(|e| panic!("mapping {}: {e}", path.display()));
        }
    }
    panic!("the master {master_pid} holds no flow table memfd");
}

/// The lines the hold has printed so far (one server name per answer).
fn hold_answers(net: &TestNet, hold: u32) -> Vec<String> {
    net.log(hold).lines().map(str::to_owned).collect()
}

#[test]
fn a_spoofed_ack_flood_creates_no_mapping_and_moves_no_client() {
    require_root_and_tools();
    let net = TestNet::up(Options::default());
    net.start_backends();
    let master = Master::start(
        &net,
        &base_config(&net, &format!("max_flows={MAX_FLOWS}\n")),
        &[],
    );
    let table = master_flow_table(master.pid);

    let ask_again = net.dir().join("ask-again");
    let hold = net.spawn(
        Host::Client,
        &["python3", "-c", HOLD_PY, VIP4, &ask_again.to_string_lossy()],
    );
    let answered = wait_until(secs(15), || !hold_answers(&net, hold).is_empty());
    assert!(
        answered,
        "the held connection got no answer: {}",
        net.log(hold)
    );
    let first = hold_answers(&net, hold)[0].clone();
    let occupied_before = table.occupied();
    assert!(occupied_before >= 1, "the held connection has no mapping");

    let count = 20_000u32;
    let out = net.exec_timeout(
        Host::Client,
        &[
            "python3",
            "-c",
            &format!("{PY_CSUM}{ACK_FLOOD_PY}"),
            VIP4,
            &count.to_string(),
            "20",
        ],
        secs(40),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sent: u64 = stdout
        .trim()
        .strip_prefix("sent ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "flooding: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(sent >= 1000, "the flood sent only {sent} segments");

    assert_eq!(
        table.occupied(),
        occupied_before,
        "the spoofed flood of {sent} segments changed the flow table's occupancy"
    );
    assert!(
        net.try_wait(hold).is_none(),
        "the held connection ended during the flood: {}",
        net.log(hold)
    );
    fs::write(&ask_again, b"").unwrap_or_else(|e| panic!("{}: {e}", ask_again.display()));
    let status = net.wait_exit(hold, secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the held connection broke after the flood ({status:?}): {}",
        net.log(hold)
    );
    assert_eq!(
        hold_answers(&net, hold),
        [first.clone(), first],
        "the held connection changed server across the flood"
    );

    let totals = stop_and_sum_summaries(&net, &master);
    let dropped = totals
        .get("dropped tcp_not_syn_unknown_flow")
        .copied()
        .unwrap_or(0);
    // The kernel may drop some of a flood before a worker sees it (a full queue), never
    // add to it: most, and no more than all, of the segments were counted.
    assert!(
        dropped <= sent && dropped >= sent / 2,
        "sent {sent} spoofed ACKs, the workers dropped {dropped} as not-SYN of unknown \
         flows: {totals:?}"
    );
}
