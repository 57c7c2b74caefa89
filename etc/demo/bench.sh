#!/usr/bin/env bash
# bench.sh: throughput through loaded against plain routing, on the demo network.
#
#   sudo etc/demo/bench.sh [--seconds N]
#
# Builds the namespaces of topology.sh (nothing outside them is touched), runs an iperf3
# server on b1, and measures from the client, each for N seconds (default 5):
#   1. plain routing: client -> b1's own address, no balancer running (no rules in lb);
#   2. through loaded: client -> the VIP (loaded-master -D, release build, one server).
# Each over TCP (bulk) and UDP (64-byte datagrams, unlimited rate; what arrives counts),
# IPv4. Prints one line per run and the ratios. Bounded: every run has a time limit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=5
[ "${1:-}" = "--seconds" ] && seconds=$2
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (it creates network namespaces)" >&2; exit 1; }
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
command -v python3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
(cd "$root" && cargo build --release -q)
master=${CARGO_TARGET_DIR:-$root/target}/release/loaded-master

prefix=lb$$_$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d /tmp/loaded-bench.XXXXXX)
pids=()
cleanup() {
	set +e
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	sleep 0.5
	for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
	sh "$here/topology.sh" down "$prefix" >/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
sh "$here/topology.sh" up "$prefix" >/dev/null

ip netns exec "${prefix}b1" iperf3 -s -B 198.19.0.11 >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

# Prints bits/s received by the server for one run.
run() { # target, extra iperf3 args...
	local target=$1
	shift
	timeout $((seconds + 20)) ip netns exec "${prefix}cli" \
		iperf3 -c "$target" -t "$seconds" -J "$@" >"$tmp/run.json"
	python3 -c '
import json, sys
end = json.load(open(sys.argv[1]))["end"]
s = end.get("sum_received") or end["sum"]
lost = s.get("lost_percent", 0) or 0
print(int(s["bits_per_second"] * (1 - lost / 100.0)), 0)
' "$tmp/run.json"
}

report() { # label bits
	printf '%-32s %10.1f Mbit/s\n' "$1" "$(echo "$2 / 1000000" | bc -l)"
}

command -v bc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null
read -r tcp_plain _ < <(run 198.19.0.11)
read -r udp_plain _ < <(run 198.19.0.11 -u -b 0 -l 64)
report "plain routing, TCP bulk" "$tcp_plain"
report "plain routing, UDP 64 bytes" "$udp_plain"

cat >"$tmp/loaded.conf" <<CONF
VIP4=198.18.100.1
server4=198.19.0.11
pidfile=$tmp/loaded.pid
CONF
ip netns exec "${prefix}lb" "$master" -D -c "$tmp/loaded.conf" >"$tmp/master.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	[ "$(grep -c 'serving NFQUEUE' "$tmp/master.log")" -ge "$(nproc)" ] && break
	sleep 0.1
done
read -r tcp_loaded _ < <(run 198.18.100.1)
read -r udp_loaded _ < <(run 198.18.100.1 -u -b 0 -l 64)
report "through loaded, TCP bulk" "$tcp_loaded"
report "through loaded, UDP 64 bytes" "$udp_loaded"
printf 'ratio loaded/plain: TCP bulk %.2f, UDP 64-byte datagrams %.2f\n' \
	"$(echo "$tcp_loaded / $tcp_plain" | bc -l)" "$(echo "$udp_loaded / $udp_plain" | bc -l)"
