#!/bin/sh
# loaded-setup.sh: the host set-up the original's loaded.config script did, without its
# flushing: it adds the VIPs and the servers' gateway address, enables forwarding and turns
# off redirects, and never flushes or changes a firewall rule, address or route it did not
# add. The NFQUEUE rules are loaded-master's business (rules=auto).
#
#   loaded-setup.sh [-c CONFIG] up     add what is missing (idempotent)
#   loaded-setup.sh [-c CONFIG] down   remove the VIP and gateway addresses again
#
# It reads the settings through `loaded-master -t`, so it understands both config formats:
# VIP4/VIP4net/public_NIC, VIP6/VIP6net, private_GW/private_NIC and broadcast.
set -eu

CONFIG=/etc/loaded/loaded.conf
MASTER=${MASTER:-$(command -v loaded-master || echo /usr/sbin/loaded-master)}
if [ "${1:-}" = "-c" ]; then
	CONFIG=$2
	shift 2
fi
action=${1:-}

settings=$("$MASTER" -t -c "$CONFIG") || exit 1
get() { printf '%s\n' "$settings" | sed -n "s/^$1=//p" | head -n 1 | tr -d "'\""; }

VIP4=$(get VIP4)
VIP6=$(get VIP6)
VIP4net=$(get VIP4net)
VIP6net=$(get VIP6net)
public_NIC=$(get public_NIC)
private_NIC=$(get private_NIC)
private_GW=$(get private_GW)
broadcast=$(get broadcast)

need() {
	if [ -z "$2" ]; then
		echo "loaded-setup.sh: $CONFIG sets no $1" >&2
		exit 1
	fi
}

has_addr() { ip -o addr show dev "$1" | grep -q " $2 "; }

add_addr() { # dev addr/len [extra...]
	dev=$1
	addr=$2
	shift 2
	if has_addr "$dev" "$addr"; then
		echo "$addr already on $dev"
	else
		ip addr add "$addr" "$@" dev "$dev"
		echo "added $addr to $dev"
	fi
}

del_addr() {
	if has_addr "$1" "$2"; then
		ip addr del "$2" dev "$1"
		echo "removed $2 from $1"
	fi
}

case "$action" in
up)
	need public_NIC "$public_NIC"
	modprobe nfnetlink_queue 2>/dev/null || true
	if [ -n "$VIP4" ]; then
		add_addr "$public_NIC" "$VIP4/${VIP4net:-32}"
		echo 1 >/proc/sys/net/ipv4/ip_forward
	fi
	if [ -n "$VIP6" ]; then
		add_addr "$public_NIC" "$VIP6/${VIP6net:-128}" nodad
		echo 1 >/proc/sys/net/ipv6/conf/all/forwarding
	fi
	if [ -n "$private_GW" ]; then
		need private_NIC "$private_NIC"
		case "$private_GW" in
		*:*) add_addr "$private_NIC" "$private_GW" nodad ;;
		*) add_addr "$private_NIC" "$private_GW" ${broadcast:+broadcast "$broadcast"} ;;
		esac
		ip link set up dev "$private_NIC"
	fi
	ip link set up dev "$public_NIC"
	# Our own broadcast pings must not be answered by ourselves, and the servers must not
	# learn from us to talk to clients directly.
	echo 1 >/proc/sys/net/ipv4/icmp_echo_ignore_broadcasts
	for i in $public_NIC ${private_NIC:-} all default; do
		[ -e /proc/sys/net/ipv4/conf/"$i"/send_redirects ] &&
			echo 0 >/proc/sys/net/ipv4/conf/"$i"/send_redirects
	done
	;;
down)
	need public_NIC "$public_NIC"
	[ -n "$VIP4" ] && del_addr "$public_NIC" "$VIP4/${VIP4net:-32}"
	[ -n "$VIP6" ] && del_addr "$public_NIC" "$VIP6/${VIP6net:-128}"
	[ -n "$private_GW" ] && [ -n "$private_NIC" ] && del_addr "$private_NIC" "$private_GW"
	;;
*)
	echo "usage: $0 [-c CONFIG] up|down" >&2
	exit 2
	;;
esac
