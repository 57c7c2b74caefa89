#!/bin/sh
# topology.sh: the demo and test network of loaded, built from network namespaces.
#
#   topology.sh up PREFIX [--mtu-rtr-client N] [--backends N] [--clients N]
#   topology.sh down PREFIX
#
# `up` creates these namespaces (each name is PREFIX followed by the short name):
#
#   cli  c0 198.18.0.2/24  fd00:18::2/64      default via 198.18.0.1 / fd00:18::1
#    |   (--clients N adds cliK for K = 2..N: c0 198.18.K.2/24 fd00:18:K::2/64, default via
#    |    198.18.K.1 / fd00:18:K::1, the router's interface rK, addresses .1 / ::1)
#   rtr  r0 198.18.0.1/24  fd00:18::1/64      (MTU lowered by --mtu-rtr-client)
#        r1 198.18.1.2/24  fd00:18:1::2/64    VIPs and backend nets via lb; forwarding on
#    |
#   lb   l0 198.18.1.1/24  fd00:18:1::1/64    default via 198.18.1.2 / fd00:18:1::2
#        lo 198.18.100.1/32 fd00:100::1/128   the VIPs
#        br0 198.19.0.1/24 fd00:19::1/64      bridge, one port pN per backend; forwarding on
#    |
#   bN   e0 198.19.0.1N/24 fd00:19::1N/64     default via 198.19.0.1 / fd00:19::1
#        (b1 to b3 by default; --backends 4 adds b4 for hotplug tests)
#
# Every interface is created directly inside its namespace: nothing is added to the root
# namespace. Only 198.18.0.0/15 and fd00::/8 are used. No firewall, conntrack or NAT rule
# is added: the balancer adds its own.
#
# `down` kills the processes still inside the namespaces (by pid, from `ip netns pids`)
# and deletes the namespaces. It is idempotent and never fails because something is gone.
# If `up` fails half-way, it removes what it created before exiting with an error.
set -eu

me=topology.sh
max_backends=9
max_clients=4

die() {
	echo "$me: $*" >&2
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: $me up PREFIX [--mtu-rtr-client N] [--backends N] [--clients N]
       $me down PREFIX

PREFIX: 1 to 32 letters, digits, '_' or '-' (e.g. ld12345ab3f); the namespaces are
PREFIXcli, PREFIXrtr, PREFIXlb, PREFIXb1 ... PREFIXbN (and PREFIXcli2 ... with --clients).
--mtu-rtr-client N  MTU of the router's client-side interface r0 (1280 to 1500; default 1500)
--backends N        number of backends (1 to $max_backends; default 3)
--clients N         number of client namespaces (1 to $max_clients; default 1), each with its own
                    address and its own link to the router
EOF
	exit 2
}

check_prefix() {
	case $1 in
	'' | *[!A-Za-z0-9_-]*) die "bad PREFIX '$1': use letters, digits, '_' or '-'" ;;
	esac
	[ "${#1}" -le 32 ] || die "PREFIX '$1' is longer than 32 characters"
}

# Whether namespace $1 exists (reads /run/netns through `ip`, exact name match).
ns_exists() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"
}

# Writes sysctl $2 (as a path under /proc/sys, e.g. net/ipv4/ip_forward) = $3 inside
# namespace $1. /proc/sys/net shows the namespace of the process that opens it, so the
# write must happen inside `ip netns exec`.
nsysctl() {
	# shellcheck disable=SC2016 # expanded by the inner sh
	ip netns exec "$1" sh -c 'printf "%s\n" "$2" > "/proc/sys/$1"' sh "$2" "$3" ||
		die "cannot set $2=$3 in namespace $1"
}

# Kills every process inside namespace $1 (by pid) and deletes the namespace.
remove_ns() {
	ns=$1
	ns_exists "$ns" || return 0
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	if [ -n "$pids" ]; then
		# SIGTERM first so that a balancer can remove its rules, then SIGKILL what is left.
		# shellcheck disable=SC2086 # one word per pid
		kill -TERM $pids 2>/dev/null || true
		i=0
		while [ $i -lt 30 ]; do
			pids=$(ip netns pids "$ns" 2>/dev/null || true)
			[ -z "$pids" ] && break
			sleep 0.1
			i=$((i + 1))
		done
		if [ -n "$pids" ]; then
			# shellcheck disable=SC2086 # one word per pid
			kill -KILL $pids 2>/dev/null || true
		fi
	fi
	# Deleting can fail transiently while a killed process is still exiting; retry a bit.
	i=0
	while ns_exists "$ns" && [ $i -lt 20 ]; do
		ip netns delete "$ns" 2>/dev/null || sleep 0.1
		i=$((i + 1))
	done
	if ns_exists "$ns"; then
		echo "$me: warning: could not delete namespace $ns" >&2
	fi
	return 0
}

# Lines of `ip -o link` / `ip -o addr` in namespace $1 that are not ready yet.
not_ready() {
	# A veth whose carrier is on stays operationally DOWN (NO-CARRIER) until the kernel's
	# link watcher handles the event, which can take a second; until then IPv6 on it is not
	# ready either, and the first neighbour solicitations are lost (seen as a first ping,
	# or a first connection, that fails right after `up`).
	ip -n "$1" -o link show | grep -v ' lo: ' | grep -E 'NO-CARRIER|state (DOWN|LOWERLAYERDOWN|DORMANT)' || true
	ip -n "$1" -o addr show tentative || true
}

# Waits (at most 5 s) until every interface of the namespaces $1 is up and ready.
wait_ready() {
	i=0
	while :; do
		pending=""
		for ns in $1; do
			pending="$pending$(not_ready "$ns")"
		done
		[ -z "$pending" ] && return 0
		[ $i -lt 50 ] || die "interfaces not ready after 5 s: $pending"
		sleep 0.1
		i=$((i + 1))
	done
}

down() {
	prefix=$1
	# Exact names only, so that another run whose prefix starts with ours is left alone.
	for short in cli rtr lb $(seq 1 $max_backends | sed 's/^/b/') $(seq 2 $max_clients | sed 's/^/cli/'); do
		remove_ns "$prefix$short"
	done
}

up() {
	prefix=$1
	shift
	mtu=""
	backends=3
	clients=1
	while [ $# -gt 0 ]; do
		case $1 in
		--mtu-rtr-client)
			[ $# -ge 2 ] || usage
			mtu=$2
			shift 2
			;;
		--backends)
			[ $# -ge 2 ] || usage
			backends=$2
			shift 2
			;;
		--clients)
			[ $# -ge 2 ] || usage
			clients=$2
			shift 2
			;;
		*) usage ;;
		esac
	done
	if [ -n "$mtu" ]; then
		case $mtu in '' | *[!0-9]*) die "--mtu-rtr-client '$mtu' is not a number" ;; esac
		# Below 1280 the kernel removes IPv6 from the interface.
		if [ "$mtu" -lt 1280 ] || [ "$mtu" -gt 1500 ]; then
			die "--mtu-rtr-client $mtu: use 1280 to 1500 (IPv6 needs at least 1280)"
		fi
	fi
	case $backends in '' | *[!0-9]*) die "--backends '$backends' is not a number" ;; esac
	if [ "$backends" -lt 1 ] || [ "$backends" -gt $max_backends ]; then
		die "--backends $backends: use 1 to $max_backends"
	fi
	case $clients in '' | *[!0-9]*) die "--clients '$clients' is not a number" ;; esac
	if [ "$clients" -lt 1 ] || [ "$clients" -gt $max_clients ]; then
		die "--clients $clients: use 1 to $max_clients"
	fi

	[ "$(id -u)" = 0 ] || die "run as root: network namespaces need it"
	command -v ip >/dev/null || die "'ip' is missing: apt-get install -y iproute2"

	cli=${prefix}cli rtr=${prefix}rtr lb=${prefix}lb
	all="$cli $rtr $lb"
	n=1
	while [ $n -le "$backends" ]; do
		all="$all ${prefix}b$n"
		n=$((n + 1))
	done
	n=2
	while [ $n -le "$clients" ]; do
		all="$all ${prefix}cli$n"
		n=$((n + 1))
	done
	# Refuse to touch namespaces that someone else made (the teardown on failure below
	# would delete them).
	for ns in $all; do
		! ns_exists "$ns" || die "namespace $ns already exists: pick another PREFIX (or '$me down $prefix')"
	done

	# shellcheck disable=SC2154 # `rc` is assigned inside the trap
	trap 'rc=$?; if [ $rc -ne 0 ]; then echo "$me: setup failed, removing the namespaces of $prefix" >&2; down "$prefix"; fi' EXIT

	for ns in $all; do
		ip netns add "$ns" || die "cannot create namespace $ns"
		# Defaults first, so that the interfaces created below inherit them:
		# no DAD (addresses usable at once, link-local ones too), no reverse-path filter
		# (IPv4 settings of a new namespace are copied from the host's, which may be
		# strict), and no ICMP rate limit (tests count ICMP errors, e.g. port unreachable).
		nsysctl "$ns" net/ipv6/conf/all/accept_dad 0
		nsysctl "$ns" net/ipv6/conf/default/accept_dad 0
		nsysctl "$ns" net/ipv4/conf/all/rp_filter 0
		nsysctl "$ns" net/ipv4/conf/default/rp_filter 0
		nsysctl "$ns" net/ipv4/icmp_ratelimit 0
		nsysctl "$ns" net/ipv6/icmp/ratelimit 0
		ip -n "$ns" link set lo up
	done

	# cli <-> rtr
	ip -n "$cli" link add c0 type veth peer name r0 netns "$rtr"
	ip -n "$cli" addr add 198.18.0.2/24 dev c0
	ip -n "$cli" addr add fd00:18::2/64 dev c0 nodad
	ip -n "$cli" link set c0 up
	ip -n "$cli" route add default via 198.18.0.1
	ip -n "$cli" -6 route add default via fd00:18::1

	# More clients, each on its own link to the router (198.18.K.0/24, fd00:18:K::/64).
	n=2
	while [ $n -le "$clients" ]; do
		c=${prefix}cli$n
		ip -n "$c" link add c0 type veth peer name "r$n" netns "$rtr"
		ip -n "$c" addr add "198.18.$n.2/24" dev c0
		ip -n "$c" addr add "fd00:18:$n::2/64" dev c0 nodad
		ip -n "$c" link set c0 up
		ip -n "$c" route add default via "198.18.$n.1"
		ip -n "$c" -6 route add default via "fd00:18:$n::1"
		ip -n "$rtr" addr add "198.18.$n.1/24" dev "r$n"
		ip -n "$rtr" addr add "fd00:18:$n::1/64" dev "r$n" nodad
		ip -n "$rtr" link set "r$n" up
		n=$((n + 1))
	done

	# rtr <-> lb
	ip -n "$rtr" link add r1 type veth peer name l0 netns "$lb"
	if [ -n "$mtu" ]; then
		# Only r0: c0 stays at 1500, so the client advertises a 1460-byte MSS and the
		# backends' full-size segments need path MTU discovery through the balancer.
		ip -n "$rtr" link set r0 mtu "$mtu"
	fi
	ip -n "$rtr" addr add 198.18.0.1/24 dev r0
	ip -n "$rtr" addr add fd00:18::1/64 dev r0 nodad
	ip -n "$rtr" addr add 198.18.1.2/24 dev r1
	ip -n "$rtr" addr add fd00:18:1::2/64 dev r1 nodad
	ip -n "$rtr" link set r0 up
	ip -n "$rtr" link set r1 up
	ip -n "$rtr" route add 198.18.100.1/32 via 198.18.1.1
	ip -n "$rtr" -6 route add fd00:100::1/128 via fd00:18:1::1
	# The backend nets, for diagnostics (e.g. curl from cli straight to a backend).
	ip -n "$rtr" route add 198.19.0.0/24 via 198.18.1.1
	ip -n "$rtr" -6 route add fd00:19::/64 via fd00:18:1::1
	nsysctl "$rtr" net/ipv4/ip_forward 1
	nsysctl "$rtr" net/ipv6/conf/all/forwarding 1

	# lb
	ip -n "$lb" addr add 198.18.1.1/24 dev l0
	ip -n "$lb" addr add fd00:18:1::1/64 dev l0 nodad
	ip -n "$lb" link set l0 up
	ip -n "$lb" route add default via 198.18.1.2
	ip -n "$lb" -6 route add default via fd00:18:1::2
	ip -n "$lb" addr add 198.18.100.1/32 dev lo
	ip -n "$lb" addr add fd00:100::1/128 dev lo nodad
	# No STP and no forward delay: ports forward at once. No multicast snooping: neighbour
	# discovery is never filtered by a missing querier.
	ip -n "$lb" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
	ip -n "$lb" addr add 198.19.0.1/24 dev br0
	ip -n "$lb" addr add fd00:19::1/64 dev br0 nodad
	ip -n "$lb" link set br0 up
	nsysctl "$lb" net/ipv4/ip_forward 1
	nsysctl "$lb" net/ipv6/conf/all/forwarding 1
	nsysctl "$lb" net/ipv4/icmp_echo_ignore_broadcasts 1
	# With br_netfilter loaded (by anyone, on the host), bridged traffic of a new namespace
	# goes through iptables' FORWARD chain by default: turn that off so the backends'
	# traffic between themselves and to br0 is never seen as forwarded. The files exist
	# only while br_netfilter is loaded; they are per namespace.
	if ip netns exec "$lb" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
		nsysctl "$lb" net/bridge/bridge-nf-call-iptables 0
		nsysctl "$lb" net/bridge/bridge-nf-call-ip6tables 0
		nsysctl "$lb" net/bridge/bridge-nf-call-arptables 0
	fi

	# backends
	n=1
	while [ $n -le "$backends" ]; do
		b=${prefix}b$n
		ip -n "$lb" link add "p$n" type veth peer name e0 netns "$b"
		ip -n "$lb" link set "p$n" master br0
		# A bridge port needs no address of its own.
		nsysctl "$lb" "net/ipv6/conf/p$n/disable_ipv6" 1
		ip -n "$lb" link set "p$n" up
		ip -n "$b" addr add "198.19.0.1$n/24" dev e0
		ip -n "$b" addr add "fd00:19::1$n/64" dev e0 nodad
		ip -n "$b" link set e0 up
		ip -n "$b" route add default via 198.19.0.1
		ip -n "$b" -6 route add default via fd00:19::1
		# Answer a broadcast ping to 198.19.0.255 (a test of the balancer's broadcast
		# handling needs answers).
		nsysctl "$b" net/ipv4/icmp_echo_ignore_broadcasts 0
		n=$((n + 1))
	done

	wait_ready "$all"
	trap - EXIT
	echo "$me: up: $all"
}

[ $# -ge 2 ] || usage
command=$1
prefix=$2
shift 2
check_prefix "$prefix"
case $command in
up) up "$prefix" "$@" ;;
down)
	[ $# -eq 0 ] || usage
	[ "$(id -u)" = 0 ] || die "run as root: network namespaces need it"
	command -v ip >/dev/null || die "'ip' is missing: apt-get install -y iproute2"
	down "$prefix"
	;;
*) usage ;;
esac
