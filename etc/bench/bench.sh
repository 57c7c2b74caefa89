#!/usr/bin/env bash
# bench.sh: throughput of loaded against plain routing and the kernel's DNAT, in network
# namespaces (the demo network of etc/demo/topology.sh; nothing outside it is touched).
#
#   sudo etc/bench/bench.sh [--seconds N] [--rounds N] [--only LIST] [--family LIST]
#                           [--clients LIST] [--connections N] [--bin DIR] [--output FILE]
#                           [--tw-buckets N] [--original PATH]
#
# Scenarios, all in one run and interleaved (round 1: every scenario, round 2: every
# scenario, ...), each for IPv4 and IPv6:
#   routing    the client talks to a server's own address through the balancer namespace,
#              which has no rule at all: the ceiling
#   dnat       nftables in the balancer namespace: `dnat to numgen inc mod 3 map {...}` (round
#              robin per connection) for the VIP's port 80; iperf3's ports use
#              `jhash <source address> mod 3` instead, because iperf3's control and data
#              connections must reach the same server
#   userspace  loaded, forward=userspace (the default)
#   kernel     loaded, forward=kernel; "n/a" when the build in use does not know the key
#   original   the original C++ loaded (github.com/stealth/loaded, 2014), only with
#              --original PATH: a binary the operator built from that repository (it is not
#              part of this one). It serves one address family per process, so it is
#              started and stopped once per family; this script writes its config (rr, the
#              same VIP and servers) and installs the NFQUEUE rules of its loaded.config /
#              loaded.config6 scripts itself, in the balancer namespace only: mangle
#              PREROUTING for the VIP and filter FORWARD for the servers' net, with
#              --queue-balance over one queue per CPU (the original forks one process per
#              CPU of /proc/cpuinfo, queue N on core N). Unlike its loaded.config6, IPv6 UDP
#              is queued too (its code rewrites UDP; otherwise the UDP measurement could not
#              run), and, as for loaded, ICMPv6 neighbour discovery to the VIP is not. The
#              rules, and the iptables tables they created, are removed after each run.
# Measurements, each for N seconds (default 5), median of the rounds (default 3):
#   conn/s     wrk, HTTP/1.1 requests with `Connection: close` (one TCP connection each) to
#              nginx (a tiny 200) on the servers
#   bulk       iperf3, one TCP stream, Gbit/s received
#   UDP        iperf3 -u -b 0 -l 64: 64-byte datagrams per second that reached the server
# plus, for loaded, the kernel's NFQUEUE counters queue_dropped (queue full) and
# user_dropped (netlink receive buffer overrun) over each measurement, and how the packets
# spread over the queues.
#
# With --clients 2 (or 1,2 for both), two load generators run at once from two client
# namespaces with their own addresses (so --queue-balance, which hashes addresses, can use
# both queues) and their results are added up. In the routing scenario client K talks to
# server K.
#
# Between measurements: 1 s and until only listeners and TIME_WAIT sockets are left in the
# client and server namespaces, whose TIME_WAIT sockets are capped (--tw-buckets: otherwise
# one connection-rate run slows the next and the results depend on the order); the
# balancer's conntrack table is flushed after DNAT and forward=kernel measurements.
#
# Every load run is bounded by `timeout`; every process is started and stopped by pid; the
# namespaces are deleted on exit, Ctrl-C included.
set -euo pipefail

me=bench.sh
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
topology=$root/etc/demo/topology.sh
lib=$here/benchlib.py

seconds=5
rounds=3
only=routing,dnat,userspace,kernel,original
families=4,6
client_list=1
connections=50
bindir=""
output=""
tw_buckets=4096
original=""

usage() {
	cat >&2 <<EOF
usage: sudo etc/bench/bench.sh [options]

  --seconds N      length of each measurement (default $seconds)
  --rounds N       rounds; every value is the median over them (default $rounds)
  --only LIST      scenarios, comma-separated: routing, dnat, userspace, kernel, original
                   (default: all); ratios need routing
  --family LIST    4, 6 or 4,6 (default 4,6)
  --clients LIST   client addresses (load generators at once), e.g. 1, 2 or 1,2 (default 1;
                   1 to 3)
  --connections N  wrk's concurrent connections per client (default $connections)
  --bin DIR        use loaded-master, loaded-worker and loaded-prober from DIR instead of
                   building the workspace (cargo build --release)
  --output FILE    also write the table, with the machine and the build, to FILE
  --tw-buckets N   net.ipv4.tcp_max_tw_buckets in the client and server namespaces
                   (default $tw_buckets)
  --original PATH  also measure the original C++ loaded (2014): PATH is its binary, built
                   by you from https://github.com/stealth/loaded (not shipped here); the
                   scenario 'original' is skipped without it. It chroots to /var/run/empty,
                   which must exist, and runs as user nobody (-U nobody)
EOF
	exit 2
}

die() {
	echo "$me: $*" >&2
	exit 1
}

note() {
	echo "$me: $*" >&2
}

number() { # name value
	case $2 in '' | *[!0-9]*) die "$1 '$2' is not a number" ;; esac
	[ "$2" -ge 1 ] || die "$1 must be at least 1"
}

while [ $# -gt 0 ]; do
	[ "$1" = -h ] || [ "$1" = --help ] && usage
	[ $# -ge 2 ] || usage
	case $1 in
	--seconds) seconds=$2 ;;
	--rounds) rounds=$2 ;;
	--only) only=$2 ;;
	--family) families=$2 ;;
	--clients) client_list=$2 ;;
	--connections) connections=$2 ;;
	--bin) bindir=$2 ;;
	--output) output=$2 ;;
	--tw-buckets) tw_buckets=$2 ;;
	--original) original=$2 ;;
	*) usage ;;
	esac
	shift 2
done
number --seconds "$seconds"
number --rounds "$rounds"
number --connections "$connections"
number --tw-buckets "$tw_buckets"
scenarios=()
for s in ${only//,/ }; do
	case $s in routing | dnat | userspace | kernel | original) ;; *) die "--only: unknown scenario '$s'" ;; esac
done
for s in routing dnat userspace kernel original; do
	case ,$only, in *,"$s",*)
		if [ "$s" = original ] && [ -z "$original" ]; then
			note "scenario original skipped: it needs --original PATH (the original's binary)"
			continue
		fi
		scenarios+=("$s")
		;;
	esac
done
[ ${#scenarios[@]} -gt 0 ] || die "--only: no scenario"
fams=()
for f in ${families//,/ }; do
	case $f in 4 | 6) fams+=("$f") ;; *) die "--family: use 4, 6 or 4,6" ;; esac
done
[ ${#fams[@]} -gt 0 ] || die "--family: use 4, 6 or 4,6"
clients_runs=()
max_clients=1
for c in ${client_list//,/ }; do
	case $c in 1 | 2 | 3) clients_runs+=("$c") ;; *) die "--clients: use 1 to 3 (e.g. 1,2)" ;; esac
	[ "$c" -gt "$max_clients" ] && max_clients=$c
done
[ ${#clients_runs[@]} -gt 0 ] || die "--clients: use 1 to 3 (e.g. 1,2)"

[ "$(id -u)" = 0 ] || die "run as root (sudo): it creates network namespaces"

# Packages, only those missing (as tests/run-all.sh does).
missing=""
for pair in ip:iproute2 ss:iproute2 iptables:iptables nft:nftables conntrack:conntrack \
	wrk:wrk iperf3:iperf3 nginx:nginx-light python3:python3 bc:bc timeout:coreutils sysctl:procps; do
	command -v "${pair%%:*}" >/dev/null || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
	note "installing$missing"
	apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# The loaded build.
if [ -z "$bindir" ]; then
	command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs), or use --bin DIR"
	note "building the workspace (cargo build --release)"
	(cd "$root" && cargo build --release -q)
	bindir=${CARGO_TARGET_DIR:-$root/target}/release
	build_repo=$root
else
	bindir=$(cd "$bindir" && pwd) || die "--bin: no directory $bindir"
	build_repo=$bindir
fi
for b in loaded-master loaded-worker loaded-prober; do
	[ -x "$bindir/$b" ] || die "$bindir/$b is missing or not executable"
done
master=$bindir/loaded-master
build="$bindir/loaded-master (sha256 $(sha256sum "$master" | cut -c1-12)), built $(date -r "$master" '+%Y-%m-%d %H:%M')"
if commit=$(git -C "$build_repo" rev-parse --short=12 HEAD 2>/dev/null); then
	if [ -n "$(git -C "$build_repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		commit="$commit (with uncommitted changes)"
	fi
	build="$build, git $commit$([ "$build_repo" = "$root" ] || echo ' (HEAD of the repository holding --bin)')"
fi

# The original C++ loaded, if asked for.
original_build=""
if [ -n "$original" ]; then
	{ [ -f "$original" ] && [ -x "$original" ]; } || die "--original: $original is missing or not executable"
	original=$(cd "$(dirname "$original")" && pwd)/$(basename "$original")
	[ -d /var/run/empty ] || die "--original: the original chroots to /var/run/empty, which does not exist (mkdir -p /var/run/empty)"
	getent passwd nobody >/dev/null || die "--original: the original is run with -U nobody, and there is no user nobody"
	original_build="$original (sha256 $(sha256sum "$original" | cut -c1-12)), built $(date -r "$original" '+%Y-%m-%d %H:%M')"
fi

prefix=lbb$$$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d /tmp/loaded-bench.XXXXXX)
cli_ns=("" "${prefix}cli" "${prefix}cli2" "${prefix}cli3")
lb=${prefix}lb
servers_ns=("${prefix}b1" "${prefix}b2" "${prefix}b3")
server_pids=()    # nginx and iperf3 servers
load_pids=()      # load generators of the measurement under way
loaded_pid=""     # loaded-master of the scenario under way
original_pids=()  # the original's processes (the one started, then the ones it forked)
original_family=""  # the family whose rules for the original are installed
conntrack_max_old=""

cleanup() {
	set +e
	trap - INT TERM
	for pid in "${load_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	[ -n "$loaded_pid" ] && stop_loaded
	{ [ ${#original_pids[@]} -gt 0 ] || [ -n "$original_family" ]; } && stop_original
	for pid in "${server_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null; done
	sh "$topology" down "$prefix" >/dev/null
	[ -n "$conntrack_max_old" ] && sysctl -qw net.netfilter.nf_conntrack_max="$conntrack_max_old"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM

# forward=kernel: is the key known to this build?
kernel_mode=yes
printf 'VIP4=198.18.100.1\nserver4=198.19.0.11\nforward=kernel\n' >"$tmp/probe.conf"
if ! "$master" -t -c "$tmp/probe.conf" >"$tmp/probe.out" 2>&1; then
	kernel_mode=no
	case " ${scenarios[*]} " in *" kernel "*)
		note "forward=kernel scenario: n/a ($(tail -n1 "$tmp/probe.out"))" ;;
	esac
fi

# Conntrack (the DNAT scenario): entries of short connections stay for a while; the table is
# flushed in the balancer namespace after every DNAT measurement, so one measurement needs
# at most (rate x seconds) entries. The limit is global (read-only inside a namespace).
conntrack_need=262144
if [ -r /proc/sys/net/netfilter/nf_conntrack_max ]; then
	cur=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
	case " ${scenarios[*]} " in *" dnat "* | *" kernel "*)
		if [ "$cur" -lt "$conntrack_need" ]; then
			note "raising net.netfilter.nf_conntrack_max from $cur to $conntrack_need until the end of the run"
			conntrack_max_old=$cur
			sysctl -qw net.netfilter.nf_conntrack_max="$conntrack_need"
		fi
		;;
	esac
fi

sh "$topology" up "$prefix" --clients "$max_clients" >/dev/null

nsctl() { # namespace key=value
	ip netns exec "$1" sysctl -qw "$2" >/dev/null
}
for c in $(seq 1 "$max_clients"); do
	nsctl "${cli_ns[$c]}" net.ipv4.tcp_max_tw_buckets="$tw_buckets"
	nsctl "${cli_ns[$c]}" net.ipv4.ip_local_port_range="1024 65535"
done
for ns in "${servers_ns[@]}"; do
	nsctl "$ns" net.ipv4.tcp_max_tw_buckets="$tw_buckets"
done

# Servers: nginx (port 80, v4 and v6 addresses of its own) and one iperf3 server per client
# (port 5200+K for client K, so that clients sent to the same server do not collide).
for n in 1 2 3; do
	d=$tmp/nginx$n
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<EOF
worker_processes auto;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
	keepalive_timeout 0;
	server {
		listen 198.19.0.1$n:80 backlog=4096;
		listen [fd00:19::1$n]:80 backlog=4096;
		location / { return 200 "ok\n"; }
	}
}
EOF
	ip netns exec "${servers_ns[$((n - 1))]}" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" \
		-g 'daemon off;' >"$d/stdout" 2>&1 &
	server_pids+=($!)
	for c in $(seq 1 "$max_clients"); do
		ip netns exec "${servers_ns[$((n - 1))]}" iperf3 -s -p $((5200 + c)) >"$tmp/iperf3-s$n-$c.log" 2>&1 &
		server_pids+=($!)
	done
done
# Wait until every server listens (port 80 and one iperf3 port per client).
for n in 1 2 3; do
	i=0
	while [ "$(ip netns exec "${servers_ns[$((n - 1))]}" ss -Hltn | awk '{print $4}' | sed 's/.*://' | sort -u | grep -cE '^(80|52[0-9][0-9])$')" -lt $((1 + max_clients)) ]; do
		[ $i -lt 100 ] || die "servers in ${servers_ns[$((n - 1))]} did not start: $(cat "$tmp/nginx$n/error.log" "$tmp"/iperf3-s"$n"-*.log)"
		sleep 0.1
		i=$((i + 1))
	done
done

workers=$(getconf _NPROCESSORS_ONLN)

# The VIPs, the three servers of each family and round robin: the part of the config that
# loaded and the original read alike.
balanced_servers_conf() {
	cat <<EOF
VIP4=198.18.100.1
VIP6=fd00:100::1
server4=198.19.0.11
server4=198.19.0.12
server4=198.19.0.13
server6=fd00:19::11
server6=fd00:19::12
server6=fd00:19::13
strategy=rr
EOF
}

# Writes loaded's config for forward mode $1.
loaded_conf() {
	cat <<EOF
$(balanced_servers_conf)
pidfile=$tmp/loaded.pid
forward=$1
EOF
}

start_loaded() { # forward mode
	local conf=$tmp/loaded-$1.conf
	if [ "$1" = userspace ]; then
		# The default, left out so that builds without the key run too.
		loaded_conf "$1" | grep -v '^forward=' >"$conf"
	else
		loaded_conf "$1" >"$conf"
	fi
	: >"$tmp/master.log"
	ip netns exec "$lb" "$master" -D -c "$conf" >"$tmp/master.log" 2>&1 &
	loaded_pid=$!
	local i=0
	while [ "$(grep -c 'serving NFQUEUE' "$tmp/master.log" || true)" -lt "$workers" ]; do
		if ! kill -0 "$loaded_pid" 2>/dev/null || [ $i -ge 150 ]; then
			note "loaded did not start; its log:"
			tail -n 20 "$tmp/master.log" >&2
			stop_loaded
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
}

stop_loaded() {
	local i=0
	kill -TERM "$loaded_pid" 2>/dev/null || true
	while kill -0 "$loaded_pid" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$loaded_pid" 2>/dev/null || true
	wait "$loaded_pid" 2>/dev/null || true
	loaded_pid=""
}

# The original C++ loaded. It forks one process per CPU counted in /proc/cpuinfo (lines
# with "processor"), process N on core N serving queue N; FIRST_CORE and LAST_CORE of its
# config file are read by its shell script only. -D keeps it in the foreground (otherwise it
# forks away from the pid we know); its forked processes are read from /proc once they run.
original_queues=$(grep -c processor /proc/cpuinfo || true)
[ "${original_queues:-0}" -ge 1 ] || original_queues=1

original_conf() {
	cat <<EOF
$(balanced_servers_conf)
nfq_len=1000000
FIRST_CORE=0
LAST_CORE=$((original_queues - 1))
EOF
}

# The rules of its loaded.config (IPv4) and loaded.config6 (IPv6), without the nameserver
# exceptions: "tool table chain rule...", one a line.
original_rules() { # family
	local queue="-j NFQUEUE --queue-num 0" t
	[ "$original_queues" -gt 1 ] && queue="-j NFQUEUE --queue-balance 0:$((original_queues - 1))"
	if [ "$1" = 4 ]; then
		echo "iptables mangle PREROUTING -d 198.18.100.1 $queue"
		echo "iptables filter FORWARD -s 198.19.0.0/24 $queue"
	else
		for t in 133 134 135 136 137; do
			echo "ip6tables mangle PREROUTING -d fd00:100::1 -p ipv6-icmp --icmpv6-type $t -j ACCEPT"
		done
		echo "ip6tables mangle PREROUTING -d fd00:100::1 $queue"
		echo "ip6tables filter FORWARD -s fd00:19::/64 $queue"
	fi
}

original_tables_before=""

# Adds (-A) or deletes (-D) the original's rules of family $2 in the balancer namespace.
original_rules_do() { # -A|-D family
	local tool table chain rule rc=0
	while read -r tool table chain rule; do
		# shellcheck disable=SC2086 # one word per argument of the rule
		ip netns exec "$lb" "$tool" -w -t "$table" "$1" "$chain" $rule || rc=1
	done < <(original_rules "$2")
	return $rc
}

# Whether process $1 exists and is not a zombie.
alive() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

start_original() { # family
	local conf=$tmp/original.conf i=0 bound
	original_conf >"$conf"
	original_tables_before=$(ip netns exec "$lb" nft list tables)
	original_family=$1
	if ! original_rules_do -A "$1"; then
		stop_original
		return 1
	fi
	: >"$tmp/original.log"
	ip netns exec "$lb" "$original" -D -U nobody "-$1" -c "$conf" </dev/null >"$tmp/original.log" 2>&1 &
	original_pids=($!)
	# Ready when every queue is bound (the kernel lists a queue once a program binds it).
	while :; do
		bound=$(ip netns exec "$lb" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null |
			awk -v n="$original_queues" '$1 < n { c++ } END { print c + 0 }')
		[ "$bound" -ge "$original_queues" ] && break
		if ! alive "${original_pids[0]}" || [ $i -ge 150 ]; then
			note "the original did not start ($bound of $original_queues queues bound); its output:"
			tail -n 20 "$tmp/original.log" >&2
			stop_original
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	# shellcheck disable=SC2207 # pids, one word each
	original_pids+=($(pgrep -P "${original_pids[0]}" || true))
	[ ${#original_pids[@]} -eq "$original_queues" ] ||
		note "the original runs ${#original_pids[@]} process(es) for $original_queues queue(s)"
}

# Stops the original's processes (by pid; the forked ones first, as the first one never
# reaps them) and removes its rules and the iptables tables they created.
stop_original() {
	local pid i=0 left table
	if [ ${#original_pids[@]} -gt 0 ]; then
		for pid in "${original_pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
		kill -TERM "${original_pids[0]}" 2>/dev/null || true
		while :; do
			left=0
			for pid in "${original_pids[@]}"; do alive "$pid" && left=$((left + 1)); done
			[ "$left" = 0 ] || [ $i -ge 50 ] && break
			sleep 0.1
			i=$((i + 1))
		done
		for pid in "${original_pids[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
		wait "${original_pids[0]}" 2>/dev/null || true
		original_pids=()
	fi
	if [ -n "$original_family" ]; then
		original_rules_do -D "$original_family" || note "could not delete every rule of the original"
		original_family=""
		# iptables (nf_tables backend) leaves its tables behind, empty: delete the ones that
		# were not there before, so that later scenarios pass through no extra hook.
		while read -r table; do
			case $table in "table ip mangle" | "table ip filter" | "table ip6 mangle" | "table ip6 filter") ;; *) continue ;; esac
			grep -qxF "$table" <<<"$original_tables_before" && continue
			# shellcheck disable=SC2086 # "table FAMILY NAME", three words
			ip netns exec "$lb" nft delete $table || true
		done < <(ip netns exec "$lb" nft list tables)
		left=$(ip netns exec "$lb" nft list tables | grep -cvxF "$original_tables_before" || true)
		[ "$left" = 0 ] || note "tables left after the original: $(ip netns exec "$lb" nft list tables)"
	fi
}

dnat_rules() {
	local v4="0 : 198.19.0.11, 1 : 198.19.0.12, 2 : 198.19.0.13"
	local v6="0 : fd00:19::11, 1 : fd00:19::12, 2 : fd00:19::13"
	cat <<EOF
table inet loadedbench {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 198.18.100.1 tcp dport 80 dnat ip to numgen inc mod 3 map { $v4 }
		ip daddr 198.18.100.1 dnat ip to jhash ip saddr mod 3 map { $v4 }
		ip6 daddr fd00:100::1 tcp dport 80 dnat ip6 to numgen inc mod 3 map { $v6 }
		ip6 daddr fd00:100::1 dnat ip6 to jhash ip6 saddr mod 3 map { $v6 }
	}
}
EOF
}

rules_in_lb() {
	ip netns exec "$lb" nft -j list ruleset | python3 "$lib" rules
}

# Sets the scenario up (for family $2 only, for the original); returns 1 if it cannot run.
scenario_up() { # scenario [family]
	local left
	left=$(rules_in_lb)
	[ "$left" = 0 ] || die "$left firewall rule(s) left in $lb before scenario $1: $(ip netns exec "$lb" nft list ruleset)"
	case $1 in
	routing) ;;
	original) start_original "$2" || return 1 ;;
	dnat)
		dnat_rules >"$tmp/dnat.nft"
		ip netns exec "$lb" nft -f "$tmp/dnat.nft" || return 1
		;;
	userspace | kernel) start_loaded "$1" || return 1 ;;
	esac
}

scenario_down() {
	case $1 in
	routing) ;;
	dnat)
		ip netns exec "$lb" nft delete table inet loadedbench
		ip netns exec "$lb" conntrack -F >/dev/null 2>&1 || true
		;;
	userspace) stop_loaded ;;
	original) stop_original ;;
	kernel)
		stop_loaded
		ip netns exec "$lb" conntrack -F >/dev/null 2>&1 || true
		;;
	esac
	local left
	left=$(rules_in_lb)
	[ "$left" = 0 ] || die "$left firewall rule(s) left in $lb after scenario $1: $(ip netns exec "$lb" nft list ruleset)"
}

# Waits until the last measurement's connections are gone (all but listeners and the
# capped TIME_WAIT sockets), at most 10 s, and empties the balancer's conntrack table.
settle() { # scenario
	sleep 1
	local i=0 busy
	while :; do
		busy=0
		for ns in "${servers_ns[@]}" "${cli_ns[@]:1:$max_clients}"; do
			busy=$((busy + $(ip netns exec "$ns" ss -Htan | awk '$1 != "LISTEN" && $1 != "TIME-WAIT"' | wc -l)))
		done
		[ "$busy" = 0 ] && break
		if [ $i -ge 100 ]; then
			note "still $busy open connection(s) after 10 s; going on"
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	# forward=kernel may use conntrack too.
	if [ "$1" = dnat ] || [ "$1" = kernel ]; then
		ip netns exec "$lb" conntrack -F >/dev/null 2>&1 || true
	fi
}

target() { # scenario family client
	local n=$(((($3 - 1) % 3) + 1))
	case $1,$2 in
	routing,4) echo "198.19.0.1$n" ;;
	routing,6) echo "fd00:19::1$n" ;;
	*,4) echo 198.18.100.1 ;;
	*,6) echo fd00:100::1 ;;
	esac
}

# Runs one measurement from $clients clients at once; prints the sum (or nan).
measure() { # scenario family clients metric
	local scen=$1 fam=$2 clients=$3 metric=$4 c addr host
	load_pids=()
	for c in $(seq 1 "$clients"); do
		addr=$(target "$scen" "$fam" "$c")
		host=$addr
		[ "$fam" = 6 ] && host="[$addr]"
		case $metric in
		conn)
			timeout -s KILL $((seconds + 15)) ip netns exec "${cli_ns[$c]}" \
				wrk -H 'Connection: close' -c "$connections" -t 1 -d "${seconds}s" --timeout 2s \
				"http://$host/" >"$tmp/out.$c" 2>&1 &
			;;
		bulk)
			timeout -s KILL $((seconds + 15)) ip netns exec "${cli_ns[$c]}" \
				iperf3 -c "$addr" -p $((5200 + c)) -t "$seconds" -J --connect-timeout 3000 \
				>"$tmp/out.$c" 2>"$tmp/err.$c" &
			;;
		udp)
			timeout -s KILL $((seconds + 15)) ip netns exec "${cli_ns[$c]}" \
				iperf3 -c "$addr" -p $((5200 + c)) -t "$seconds" -J --connect-timeout 3000 \
				-u -b 0 -l 64 >"$tmp/out.$c" 2>"$tmp/err.$c" &
			;;
		esac
		load_pids+=($!)
	done
	for c in "${load_pids[@]}"; do wait "$c" || true; done
	load_pids=()
	for c in $(seq 1 "$clients"); do
		case $metric in
		conn) python3 "$lib" wrk "$tmp/out.$c" ;;
		bulk) python3 "$lib" iperf-tcp "$tmp/out.$c" ;;
		udp) python3 "$lib" iperf-udp "$tmp/out.$c" ;;
		esac
	done | awk '{ if ($1 == "nan") bad = 1; s += $1 } END { if (bad || NR == 0) print "nan"; else printf "%.1f\n", s }'
}

nfq_read() {
	ip netns exec "$lb" cat /proc/net/netfilter/nfnetlink_queue >"$1" 2>/dev/null || : >"$1"
}

results=$tmp/results
: >"$results"
for c in "${clients_runs[@]}"; do
	for f in "${fams[@]}"; do
		if [ "$kernel_mode" = no ]; then
			case " ${scenarios[*]} " in *" kernel "*)
				echo "$c $f kernel na 0 this build has no forward=kernel" >>"$results" ;;
			esac
		fi
	done
done

started=$(date +%s)
note "namespaces ${prefix}*, $seconds s per measurement, $rounds round(s), scenarios ${scenarios[*]}, IPv${families}, clients $client_list"
for r in $(seq 1 "$rounds"); do
	for c in "${clients_runs[@]}"; do
		for s in "${scenarios[@]}"; do
			[ "$s" = kernel ] && [ "$kernel_mode" = no ] && continue
			# The original serves one family per process: set up once per family.
			per_family=no
			[ "$s" = original ] && per_family=yes
			if [ $per_family = no ] && ! scenario_up "$s"; then
				note "round $r: scenario $s could not start; its values are missing from this round"
				continue
			fi
			is_loaded=no
			case $s in userspace | kernel | original) is_loaded=yes ;; esac
			for f in "${fams[@]}"; do
				if [ $per_family = yes ] && ! scenario_up "$s" "$f"; then
					note "round $r: scenario $s could not start for IPv$f; its values are missing from this round"
					continue
				fi
				line="round $r/$rounds, $c client(s), IPv$f, $s:"
				for m in conn bulk udp; do
					[ $is_loaded = no ] || nfq_read "$tmp/nfq.before"
					v=$(measure "$s" "$f" "$c" "$m")
					echo "$c $f $s $m $r $v" >>"$results"
					if [ $is_loaded = yes ]; then
						nfq_read "$tmp/nfq.after"
						read -r qd ud spread < <(python3 "$lib" nfq "$tmp/nfq.before" "$tmp/nfq.after")
						echo "$c $f $s nfq-$m $r $qd $ud $spread" >>"$results"
					fi
					line="$line $(echo "$m $v" | awk '$2 == "nan" { print $1, "fail"; next }
						$1 == "conn" { printf "%.0f conn/s,", $2 } $1 == "bulk" { printf "%.2f Gbit/s,", $2 / 1e9 }
						$1 == "udp" { printf "%.0f UDP pps", $2 }')"
					settle "$s"
				done
				note "$line"
				[ $per_family = no ] || scenario_down "$s"
			done
			[ $per_family = yes ] || scenario_down "$s"
		done
	done
done
elapsed=$(($(date +%s) - started))

header=(
	"date=$(date '+%Y-%m-%d %H:%M:%S %z')"
	"kernel=$(uname -r)"
	"nproc=$(nproc)"
	"CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	"loaded build=$build"
	${original_build:+"original build=$original_build"}
	"options=--seconds $seconds --rounds $rounds --only $(
		IFS=,
		echo "${scenarios[*]}"
	) --family $families --clients $client_list --connections $connections --tw-buckets $tw_buckets${original:+ --original $original}"
	"measuring time=${elapsed} s"
)
python3 "$lib" report "$results" "${header[@]}" >"$tmp/table.md"
cat "$tmp/table.md"
if [ -n "$output" ]; then
	cp "$tmp/table.md" "$output"
	note "table written to $output"
fi
