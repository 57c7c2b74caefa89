#!/usr/bin/env bash
# demo.sh: watch loaded balance HTTP requests over three backends, on this machine, in a
# network of namespaces that the demo builds and always removes.
#
#   sudo etc/demo/demo.sh [--no-build] [--master PATH]
#
# What it does:
#   1. installs what is missing (apt-get install -y iproute2 iptables python3 curl) and
#      builds the workspace (cargo build --release; skip with --no-build);
#   2. builds the network of etc/demo/topology.sh under a unique prefix: a client, a
#      router, the balancer (lb) with the VIPs 198.18.100.1 and fd00:100::1, and the
#      backends b1, b2, b3 (198.19.0.11-13, fd00:19::11-13) each running
#      etc/demo/backend-service.py, which answers "backend=<name>";
#   3. starts `loaded-master -D -c CONFIG` in lb (round robin over the three backends),
#      then sends 9 requests to http://198.18.100.1/ and 6 to http://[fd00:100::1]/ from
#      the client and shows which backend answered each;
#   4. stops the master and removes the network, whatever happened (also on Ctrl-C).
#
# Nothing is added to this machine's own network: every address, route and rule lives in
# the demo's namespaces. Exit status 0 when every request was answered.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
me=demo.sh

say() { printf '\n== %s\n' "$*"; }
die() {
	echo "$me: $*" >&2
	exit 1
}

build=1
master=""
while [ $# -gt 0 ]; do
	case $1 in
	--no-build) build=0 ;;
	--master)
		[ $# -ge 2 ] || die "--master needs a path"
		master=$2
		shift
		;;
	-h | --help)
		sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

[ "$(id -u)" = 0 ] || die "run as root (e.g. sudo $0): the demo creates network namespaces"

# --- 1. tools and build -------------------------------------------------------------
missing=""
for tool in ip:iproute2 iptables:iptables ip6tables:iptables python3:python3 curl:curl; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool#*:}"
done
if [ -n "$missing" ]; then
	say "installing:$missing"
	# shellcheck disable=SC2086 # one word per package
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y $missing; then
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
	fi
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
if [ -z "$master" ]; then
	master=$target_dir/release/loaded-master
	if [ $build = 1 ]; then
		command -v cargo >/dev/null 2>&1 ||
			die "cargo is needed to build loaded (install Rust: https://rustup.rs), or pass --master PATH"
		say "building loaded (cargo build --release)"
		(cd "$root" && cargo build --release)
	fi
fi
[ -x "$master" ] || die "no loaded-master at $master: build it (cargo build --release) or pass --master PATH"

# --- 2. the network -----------------------------------------------------------------
prefix=ld$$_$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d /tmp/loaded-demo.XXXXXX)
backend_pids=()
master_pid=""
status=1

# Sends SIGTERM to pid $1 (our child) and waits up to $2 tenths of a second, then SIGKILL.
stop_pid() {
	local pid=$1 tenths=$2 i=0
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt "$tenths" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	set +e
	trap - EXIT INT TERM
	if [ -n "$master_pid" ]; then
		stop_pid "$master_pid" 100
	fi
	for pid in "${backend_pids[@]}"; do
		stop_pid "$pid" 30
	done
	sh "$here/topology.sh" down "$prefix"
	if [ "$status" = 0 ]; then
		rm -rf "$tmp"
	else
		echo "$me: the logs are kept in $tmp" >&2
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'echo "$me: interrupted" >&2; exit 1' INT TERM

say "building the network (namespaces ${prefix}cli, ${prefix}rtr, ${prefix}lb, ${prefix}b1..b3)"
sh "$here/topology.sh" up "$prefix"

say "starting the backend services"
for n in 1 2 3; do
	ip netns exec "${prefix}b$n" python3 "$here/backend-service.py" --name "b$n" \
		>"$tmp/b$n.log" 2>&1 &
	backend_pids+=($!) # `ip netns exec` execs the command: this is python's pid
done
for n in 1 2 3; do
	i=0
	until grep -qx ready "$tmp/b$n.log"; do
		if ! kill -0 "${backend_pids[$((n - 1))]}" 2>/dev/null || [ $i -ge 100 ]; then
			cat "$tmp/b$n.log" >&2
			die "the service of b$n did not start"
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "b$n: listening on 198.19.0.1$n and fd00:19::1$n (HTTP port 80, UDP echo port 5353)"
done

# --- 3. the balancer ----------------------------------------------------------------
config=$tmp/loaded.conf
cat >"$config" <<EOF
VIP4=198.18.100.1
VIP6=fd00:100::1
server4=198.19.0.11
server4=198.19.0.12
server4=198.19.0.13
server6=fd00:19::11
server6=fd00:19::12
server6=fd00:19::13
strategy=rr
stickiness=flow
pidfile=$tmp/loaded.pid
control_socket=$tmp/control.sock
EOF
say "the config ($config)"
cat "$config"

say "starting loaded-master in lb: $master -D -c $config"
ip netns exec "${prefix}lb" "$master" -D -c "$config" >"$tmp/master.log" 2>&1 &
master_pid=$!

# Ready when it has written its pidfile, bound its queues and installed its NFQUEUE rules
# (in any table; all seen from inside lb). Bounded: 20 s.
ready() {
	[ -s "$tmp/loaded.pid" ] &&
		ip netns exec "${prefix}lb" sh -c \
			'grep -q . /proc/net/netfilter/nfnetlink_queue 2>/dev/null &&
			 { iptables-save; ip6tables-save; } 2>/dev/null | grep -q NFQUEUE'
}
i=0
until ready; do
	if ! kill -0 "$master_pid" 2>/dev/null; then
		wait "$master_pid" && code=0 || code=$?
		master_pid=""
		echo "--- loaded-master's output ---" >&2
		cat "$tmp/master.log" >&2
		die "loaded-master exited (status $code) before it was ready"
	fi
	if [ $i -ge 200 ]; then
		echo "--- loaded-master's output ---" >&2
		cat "$tmp/master.log" >&2
		die "loaded-master was not ready within 20 s (pidfile, queues and NFQUEUE rules in lb)"
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "loaded-master is running (pid $master_pid); its queues, seen from lb:"
ip netns exec "${prefix}lb" cat /proc/net/netfilter/nfnetlink_queue

# --- 4. requests from the client -----------------------------------------------------
declare -A tally
failed=0
# request LABEL URL: one request from the client, one line of output.
request() {
	local out name
	if out=$(ip netns exec "${prefix}cli" curl --silent --show-error --fail --globoff \
		--noproxy '*' --connect-timeout 3 --max-time 5 "$2" 2>&1); then
		name=${out#backend=}
		name=${name%%$'\n'*}
		if [ "$name" != "$out" ] && [ -n "$name" ]; then
			printf '%-22s -> %s\n' "$1" "$name"
			tally[$name]=$((${tally[$name]:-0} + 1))
			return
		fi
	fi
	printf '%-22s -> FAILED: %s\n' "$1" "$out"
	failed=$((failed + 1))
}

say "9 requests to http://198.18.100.1/ and 6 to http://[fd00:100::1]/ from the client"
for i in 1 2 3 4 5 6 7 8 9; do
	request "IPv4 request $i" http://198.18.100.1/
done
for i in 1 2 3 4 5 6; do
	request "IPv6 request $i" 'http://[fd00:100::1]/'
done

say "tally"
for name in $(printf '%s\n' "${!tally[@]}" | sort); do
	echo "$name: ${tally[$name]}"
done
[ $failed = 0 ] || echo "failed: $failed"

# What the operator's client reports of the same traffic (it is built beside the master).
loadedctl=$(dirname "$master")/loadedctl
if [ -x "$loadedctl" ]; then
	say "$loadedctl -s $tmp/control.sock status"
	"$loadedctl" -s "$tmp/control.sock" status || echo "loadedctl failed"
fi

say "stopping loaded-master (SIGTERM to pid $master_pid)"
stop_pid "$master_pid" 100
wait "$master_pid" 2>/dev/null || true
master_pid=""
echo "--- the last lines of loaded-master's output ---"
tail -n 20 "$tmp/master.log"
if ip netns exec "${prefix}lb" sh -c '{ iptables-save; ip6tables-save; } 2>/dev/null' | grep -q NFQUEUE; then
	echo "$me: warning: NFQUEUE rules are still in lb after the master stopped" >&2
fi

if [ $failed = 0 ]; then
	status=0
	say "done: all 15 requests were answered; removing the network"
else
	say "done: $failed of 15 requests failed; removing the network"
fi
