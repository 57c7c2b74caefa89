#!/usr/bin/env bash
# Builds the Debian package (etc/build-deb.sh) and checks it: its files, control data and
# conffiles, lintian, shellcheck of its maintainer scripts and of the init script, the man
# pages, the systemd unit. Then installs it in a throwaway root and runs it there: start,
# status, its log through rsyslog and logrotate, reload (good and bad config), stop, a
# start under the unit's sandbox (capability bounding set, no_new_privs, read-only file
# system but /run), and purge.
#
# The throwaway root is an overlay over / whose writable layer is a tmpfs, in private
# mount, pid and network namespaces: dpkg writes only into the overlay, the daemon's rules
# go into the private network namespace (which holds only 198.18.0.0/15 and fd00::/8
# addresses on a veth pair), every process started there dies with the namespace's
# first process. rsyslog and logrotate are downloaded (apt-get --download-only into a
# scratch directory) and installed in the throwaway root only. The host's /etc, services
# and network are never touched. Needs root.
set -euo pipefail

fail() {
	echo "tests/package.sh: FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }

# Runs a command that must succeed without a word on stderr (stdout is not looked at).
quiet() {
	local what=$1 errors
	shift
	errors=$("$@" 2>&1 >/dev/null) || fail "$what: exit status $?: $errors"
	[ -z "$errors" ] || fail "$what: $errors"
}

# Polls a condition (a command) until it holds or SECONDS_LEFT seconds pass.
wait_for() {
	local what=$1 seconds=$2
	shift 2
	local deadline=$((SECONDS + seconds))
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${seconds}s"
		sleep 0.1
	done
}

######## Phase 3, inside the throwaway root (chrooted, own namespaces) ########

pids_of() { # pids of processes whose comm is $1, in this pid namespace
	local dir
	for dir in /proc/[0-9]*; do
		[ "$(cat "$dir/comm" 2>/dev/null)" = "$1" ] && echo "${dir#/proc/}"
	done
	return 0
}
running() { [ -n "$(pids_of "$1")" ]; }
not_running() { [ -z "$(pids_of "$1")" ]; }
logged() { grep -q -- "$1" /var/log/loaded.log 2>/dev/null; }
rules_installed() { iptables -t mangle -S 2>/dev/null | grep -q -- '-N LOADED-PREROUTING'; }
rules_removed() { ! iptables -t mangle -S 2>/dev/null | grep -q LOADED; }

# The children run as the configured user, chrooted, with one capability.
check_children() {
	local pid workers prober
	workers=$(pids_of loaded-worker)
	prober=$(pids_of loaded-prober)
	[ -n "$workers" ] || fail "no loaded-worker runs"
	[ -n "$prober" ] || fail "no loaded-prober runs (DAEMON_OPTS has -f)"
	for pid in $workers $prober; do
		[ "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = "$(id -u nobody)" ] ||
			fail "child $pid does not run as nobody"
		# The same directory (device and inode), also seen from another mount namespace.
		[ "$(stat -L -c %d:%i "/proc/$pid/root")" = "$(stat -c %d:%i /run/empty)" ] ||
			fail "child $pid is not chrooted to /run/empty: $(readlink "/proc/$pid/root")"
		grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail "child $pid has no seccomp filter"
	done
}

inside() {
	local deb=$1 out
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	# The sample config's interface facing the servers, and addresses in the test ranges.
	ip link set lo up
	ip link add eth1 type veth peer name eth1-peer || fail "cannot create the veth pair eth1 (veth module?)"
	ip link set eth1 up
	ip link set eth1-peer up
	ip addr add 198.19.0.1/16 dev eth1
	ip addr add 198.18.0.10/32 dev lo
	ip -6 addr add fd00:19::1/64 dev eth1 nodad

	# invoke-rc.d in the maintainer scripts decides as on a booted sysvinit host in
	# runlevel 2: from the rc2.d links, without a policy-rc.d (a container's often denies
	# everything), so that what starts or stops is the package's own doing.
	rm -f /usr/sbin/policy-rc.d /sbin/runlevel # (a link to systemctl: replace, not write through)
	printf '#!/bin/sh\necho N 2\n' >/sbin/runlevel
	chmod 755 /sbin/runlevel

	# rsyslog and logrotate, installed here only (rsyslog starts below, as at a boot after
	# the install: it reads the package's snippet at its start).
	out=$(dpkg -i /tmp/syslog-debs/*.deb 2>&1) || fail "installing rsyslog and logrotate: $out"

	out=$(dpkg -i "$deb" 2>&1) || fail "dpkg -i: $out"
	pass "dpkg -i"
	# rsyslog (it has no init script) serves /dev/log; without imklog, which would take the
	# host's kernel messages away from /proc/kmsg.
	sed -i '/imklog/d' /etc/rsyslog.conf
	out=$(rsyslogd 2>&1) || fail "rsyslogd: $out"
	wait_for "rsyslog's /dev/log" 20 test -S /dev/log
	if [ ! -L /usr/sbin/loaded-master ] || [ ! -x /usr/libexec/loaded/loaded-worker ] ||
		[ ! -x /usr/libexec/loaded/loaded-prober ]; then
		fail "the binaries are not where loaded-master looks"
	fi
	if [ ! -L /usr/sbin/loadedctl ] || [ ! -x /usr/sbin/loadedctl ]; then
		fail "no /usr/sbin/loadedctl"
	fi
	# Installed, neither enabled nor started.
	not_running loaded-master || fail "dpkg -i started loaded"
	! ls /etc/rc[2345].d/S*loaded >/dev/null 2>&1 || fail "the init script is enabled: $(ls /etc/rc[2345].d/S*loaded)"
	ls /etc/rc2.d/K*loaded >/dev/null 2>&1 || fail "update-rc.d did not register the init script (disabled)"
	[ ! -e /etc/systemd/system/multi-user.target.wants/loaded.service ] || fail "the unit is enabled"
	pass "installed, neither enabled nor started"
	[ "$(stat -c '%U %a' /run/empty 2>/dev/null)" = "root 755" ] ||
		fail "the postinst did not create the chroot /run/empty root-owned 0755"
	pass "chroot directory /run/empty (tmpfiles.d)"
	out=$(loaded-master -t -c /etc/loaded/loaded.conf 2>&1) || fail "the packaged config does not check: $out"
	quiet "man 8 loaded-master" man --warnings 8 loaded-master
	quiet "man 5 loaded.conf" man --warnings 5 loaded.conf
	quiet "man 8 loadedctl" man --warnings 8 loadedctl
	# Verify needs the installed binary and man pages (ExecStart=, Documentation=).
	quiet "systemd-analyze verify loaded.service" systemd-analyze verify /lib/systemd/system/loaded.service
	pass "config checks, man pages installed, systemd-analyze verify"

	# start, status, reload, stop with the init script.
	out=$(/etc/init.d/loaded start 2>&1) || fail "init script start: $out"
	running loaded-master || fail "start returned but no loaded-master runs"
	[ "$(cat /run/loaded.pid)" = "$(pids_of loaded-master)" ] || fail "/run/loaded.pid does not name the master"
	rules_installed || fail "no LOADED-PREROUTING chain after start"
	check_children
	wait_for "the master's log line 'balancing' (ident loaded)" 20 logged 'loaded\[[0-9]*\]: master: balancing'
	out=$(/etc/init.d/loaded status) || fail "status after start: $out"
	pass "start, status: $out"

	# loadedctl against the started daemon: its socket 0660 root:root (control_group's
	# default), every VIP and server of the packaged config listed.
	[ "$(stat -c '%a %U %G' /run/loaded/control.sock 2>/dev/null)" = "660 root root" ] ||
		fail "the control socket is not /run/loaded/control.sock 0660 root:root: $(ls -l /run/loaded 2>&1)"
	out=$(loadedctl status 2>&1) || fail "loadedctl status: $out"
	local listed
	for listed in 198.18.0.10 fd00:18::10 198.19.0.11 198.19.0.13 fd00:19::12 'Prober'; do
		grep -qF -- "$listed" <<<"$out" || fail "loadedctl status does not list $listed: $out"
	done
	out=$(loadedctl metrics 2>&1) || fail "loadedctl metrics: $out"
	grep -q '^# TYPE loaded_server_up gauge$' <<<"$out" || fail "loadedctl metrics: $out"
	pass "loadedctl status and metrics against the daemon"

	# rsyslog: ident loaded in /var/log/loaded.log and nowhere else; other idents as before.
	logger -t loaded-package-test "a line of another program"
	wait_for "another program's line in /var/log/syslog" 20 grep -q 'loaded-package-test: a line of another program' /var/log/syslog
	if grep -q 'loaded\[[0-9]*\]:' /var/log/syslog; then fail "loaded's lines reach /var/log/syslog too"; fi
	# logrotate: the log moves aside and rsyslog, told by the postrotate, opens a new one
	# (where the reload's lines below must land).
	out=$(logrotate -f /etc/logrotate.d/loaded 2>&1) || fail "logrotate -f /etc/logrotate.d/loaded: $out"
	grep -q 'master: balancing' /var/log/loaded.log.1 || fail "logrotate left no /var/log/loaded.log.1 with the log"
	pass "rsyslog files ident loaded in /var/log/loaded.log only; logrotate rotated it"

	sed -i 's/^check_cycle = 10$/check_cycle = 5/' /etc/loaded/loaded.conf
	grep -q '^check_cycle = 5$' /etc/loaded/loaded.conf || fail "the packaged config has no 'check_cycle = 10' to change"
	out=$(/etc/init.d/loaded reload 2>&1) || fail "reload: $out"
	wait_for "the log line 'reloaded' in the new /var/log/loaded.log" 20 logged 'master: reloaded'
	echo 'strategy = nonsense' >>/etc/loaded/loaded.conf
	if out=$(/etc/init.d/loaded reload 2>&1); then fail "reload of a broken config exited 0: $out"; fi
	wait_for "the log line 'reload refused'" 20 logged 'master: reload refused, the running config stays'
	running loaded-master || fail "a refused reload stopped the master"
	sed -i '$d' /etc/loaded/loaded.conf
	pass "reload applied (SIGHUP), a broken config refused, the master still runs"

	out=$(/etc/init.d/loaded stop 2>&1) || fail "stop: $out"
	not_running loaded-master || fail "the master still runs after stop"
	wait_for "the children to end after stop" 10 not_running loaded-worker
	[ ! -e /run/loaded.pid ] || fail "the pidfile is left after stop"
	rules_removed || fail "LOADED chains left after stop: $(iptables -t mangle -S)"
	out=$(/etc/init.d/loaded status) && fail "status after stop exited 0: $out"
	[ ! -e /run/loaded/control.sock ] || fail "the control socket is left after stop"
	out=$(loadedctl status 2>&1) && fail "loadedctl status after stop exited 0: $out"
	grep -q 'loaded is not running' <<<"$out" || fail "loadedctl status after stop: $out"
	pass "stop: children gone, rules, pidfile and control socket removed"

	# Enabled, the service is restarted by an upgrade (here a reinstall): the postinst's
	# invoke-rc.d restart.
	update-rc.d loaded enable >/dev/null
	ls /etc/rc2.d/S*loaded >/dev/null 2>&1 || fail "update-rc.d loaded enable made no S link in rc2.d"
	out=$(invoke-rc.d loaded start 2>&1) || fail "invoke-rc.d loaded start: $out"
	local before after
	before=$(cat /run/loaded.pid)
	out=$(dpkg -i --force-confold "$deb" 2>&1) || fail "dpkg -i over the installed package: $out"
	after=$(cat /run/loaded.pid 2>/dev/null || true)
	if [ -z "$after" ] || [ "$after" = "$before" ] || [ ! -d "/proc/$after" ]; then
		fail "the upgrade did not restart the enabled service (pid $before, then ${after:-none}): $out"
	fi
	check_children
	grep -q '^check_cycle = 5$' /etc/loaded/loaded.conf || fail "the upgrade did not keep the changed conffile"
	out=$(invoke-rc.d loaded stop 2>&1) || fail "invoke-rc.d loaded stop: $out"
	wait_for "the children to end after stop" 10 not_running loaded-worker
	update-rc.d loaded disable >/dev/null
	pass "enabled, the upgrade restarted it (pid $before, then $after) and kept the edited conffile"

	# The unit's sandbox as far as it can be reproduced without systemd: its capability
	# bounding set and no_new_privs, which every child inherits, and in a mount namespace
	# of the daemon's own a read-only file system but for /run (ProtectSystem=strict,
	# ReadWritePaths=/run), read-only /proc/sys (ProtectKernelTunables) and a /tmp of its
	# own (PrivateTmp). This root's /dev is as small as PrivateDevices= makes it.
	local caps
	caps=$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/loaded.service |
		tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
	[ -n "$caps" ] || fail "the unit has no CapabilityBoundingSet="
	grep -q '^NoNewPrivileges=yes' /lib/systemd/system/loaded.service || fail "the unit sets no NoNewPrivileges"
	if ! grep -q '^ProtectSystem=strict' /lib/systemd/system/loaded.service ||
		! grep -q '^ReadWritePaths=/run$' /lib/systemd/system/loaded.service; then
		fail "the unit's file system sandbox is not ProtectSystem=strict with ReadWritePaths=/run"
	fi
	# shellcheck disable=SC2016 # the script expands its own $1
	out=$(unshare --mount /bin/sh -c '
		mount -o remount,bind,ro / &&
		mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys &&
		mount -t tmpfs tmpfs /tmp || exit 1
		if touch /etc/loaded.rw-test 2>/dev/null; then echo "/ is still writable"; exit 1; fi
		exec setpriv --no-new-privs --bounding-set "-all,$1" --inh-caps -all \
			/usr/sbin/loaded-master -c /etc/loaded/loaded.conf -U nobody -f
	' sandbox "$caps" 2>&1) || fail "start in the unit's sandbox ($caps): $out"
	check_children
	local master
	master=$(cat /run/loaded.pid)
	grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$master/status" || fail "the sandboxed master has no no_new_privs"
	[ "$(readlink "/proc/$master/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] ||
		fail "the sandboxed master does not run in its own mount namespace"
	out=$(/etc/init.d/loaded reload 2>&1) || fail "reload of the sandboxed master: $out"
	wait_for "the sandboxed master's log line 'reload: nothing to apply'" 20 logged 'master: reload: nothing to apply'
	pass "start and reload in the unit's sandbox: bounding set ($caps), no_new_privs, read-only / but /run"

	# Removing the package stops the daemon (prerm), purging removes its files.
	echo "old log" >/var/log/loaded.log
	out=$(dpkg --purge loaded 2>&1) || fail "dpkg --purge: $out"
	not_running loaded-master || fail "the master still runs after the package was removed: $out"
	rules_removed || fail "LOADED chains left after the purge"
	local left
	for left in /etc/loaded /etc/init.d/loaded /etc/default/loaded /usr/libexec/loaded /usr/sbin/loaded-master /usr/sbin/loadedctl \
		/lib/systemd/system/loaded.service /etc/rsyslog.d/loaded.conf /etc/logrotate.d/loaded \
		/var/log/loaded.log /etc/rc2.d/K01loaded; do
		[ ! -e "$left" ] || fail "$left is left after the purge"
	done
	! ls /etc/rc?.d/*loaded >/dev/null 2>&1 || fail "rc links left after the purge"
	pass "dpkg --purge stopped the daemon and removed its files"
}

######## Phase 2: the throwaway root (run in new mount, pid and network namespaces) ########

throwaway() {
	local deb=$1 syslog_debs=$2 scratch=$3 root node
	mount --make-rprivate /
	mount -t tmpfs tmpfs "$scratch"
	mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
	root=$scratch/root
	mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
	mount -t proc proc "$root/proc"
	mount -t sysfs sysfs "$root/sys"
	mount -t tmpfs tmpfs "$root/run"
	mount -t tmpfs tmpfs "$root/tmp"
	# Our own /dev: the usual nodes, and a /dev/log of our own.
	mount -t tmpfs -o mode=755 tmpfs "$root/dev"
	for node in null zero full random urandom tty; do
		touch "$root/dev/$node"
		mount --bind "/dev/$node" "$root/dev/$node"
	done
	mkdir "$root/dev/shm" "$root/dev/pts"
	ln -s /proc/self/fd "$root/dev/fd"
	cp "$deb" "$root/tmp/loaded.deb"
	cp -r "$syslog_debs" "$root/tmp/syslog-debs"
	cp "$0" "$root/tmp/package.sh"
	chroot "$root" /bin/bash /tmp/package.sh --inside /tmp/loaded.deb
}

######## Phase 1: build and check the package ########

[ "$(id -u)" = 0 ] || fail "run as root: the throwaway root needs mount and network namespaces"

case "${1:-}" in
--throwaway)
	throwaway "$2" "$3" "$4"
	exit
	;;
--inside)
	inside "$2"
	exit
	;;
esac

cd "$(dirname "$0")/.."
repo=$(pwd)
for tool in dpkg-buildpackage dh lintian shellcheck man systemd-analyze unshare setpriv iptables ip; do
	command -v "$tool" >/dev/null ||
		fail "$tool is missing (apt-get install dpkg-dev debhelper lintian shellcheck man-db systemd util-linux iptables iproute2)"
done

etc/build-deb.sh >target/package-build.log 2>&1 || fail "etc/build-deb.sh failed; see target/package-build.log"
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
deb=$repo/target/debian/loaded_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || fail "etc/build-deb.sh made no $deb"
pass "built $deb"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/loaded-package.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Files: every program of debian/binaries, executable, where the list says.
listing=$scratch/listing
dpkg-deb -c "$deb" | awk '{ $3 = $4 = $5 = ""; print }' >"$listing"
grep -v '^[[:space:]]*\(#\|$\)' debian/binaries | while read -r name dir; do
	grep -qxF -- "-rwxr-xr-x root/root    ./$dir/$name" "$listing" || fail "$dir/$name is not in the package, mode 0755"
done
for path in ./etc/loaded/loaded.conf ./etc/default/loaded ./etc/init.d/loaded ./lib/systemd/system/loaded.service \
	./etc/rsyslog.d/loaded.conf ./etc/logrotate.d/loaded ./usr/lib/tmpfiles.d/loaded.conf \
	./usr/share/man/man8/loaded-master.8.gz ./usr/share/man/man5/loaded.conf.5.gz ./usr/share/doc/loaded/copyright \
	./usr/share/man/man8/loadedctl.8.gz './usr/sbin/loadedctl -> ../libexec/loaded/loadedctl' \
	'./usr/sbin/loaded-master -> ../libexec/loaded/loaded-master'; do
	sed 's/^[^ ]* [^ ]*    //' "$listing" | grep -qxF -- "$path" || fail "$path is not in the package"
done
pass "package contents"

control=$scratch/control
dpkg-deb -e "$deb" "$control"
conffiles=$(sort "$control/conffiles" | tr '\n' ' ')
[ "$conffiles" = "/etc/default/loaded /etc/init.d/loaded /etc/loaded/loaded.conf /etc/logrotate.d/loaded /etc/rsyslog.d/loaded.conf " ] ||
	fail "conffiles: $conffiles"
depends=$(dpkg-deb -f "$deb" Depends)
[[ ", $depends," == *", iptables,"* ]] || fail "Depends lacks iptables: $depends"
grep -q 'update-rc.d loaded defaults-disabled' "$control/postinst" || fail "the postinst enables the init script"
pass "control data: conffiles, Depends ($depends)"

shellcheck "$control/preinst" "$control/postinst" "$control/prerm" "$control/postrm" \
	etc/init.d/loaded etc/build-deb.sh tests/package.sh || fail "shellcheck"
pass "shellcheck: maintainer scripts, init script, build script, this test"

status=0
out=$(lintian --fail-on error,warning,info,pedantic --display-info --pedantic "${deb%.deb}.changes" 2>&1) || status=$?
out=$(echo "$out" | grep -v '^running with root privileges is not recommended!$' || true)
if [ "$status" != 0 ] || [ -n "$out" ]; then fail "lintian (exit status $status): $out"; fi
pass "lintian: no tags (overrides in debian/loaded.lintian-overrides)"

for page in etc/man/loaded-master.8 etc/man/loaded.conf.5 etc/man/loadedctl.8; do
	quiet "man -l $page" man -l --warnings "$page"
	man -l "$page" 2>/dev/null | grep -q '^NAME' || fail "man -l $page renders no NAME section"
done
pass "man pages render without warnings"

# rsyslog and logrotate for the throwaway root, downloaded (not installed) here.
mkdir "$scratch/mnt" "$scratch/syslog-debs"
download_syslog() {
	apt-get install --download-only --reinstall -y -q -o Dir::Cache::archives="$scratch/syslog-debs" \
		rsyslog logrotate 2>&1
}
# Package lists may be missing (a fresh container): fetched once, then it must work.
out=$(download_syslog) || out=$(apt-get update -qq 2>&1 && download_syslog) ||
	fail "cannot download rsyslog and logrotate for the throwaway root: $out"
rm -rf "$scratch/syslog-debs/partial" "$scratch/syslog-debs/lock"
ls "$scratch"/syslog-debs/rsyslog_*.deb "$scratch"/syslog-debs/logrotate_*.deb >/dev/null ||
	fail "apt-get did not download rsyslog and logrotate"

unshare --mount --pid --net --fork "$repo/tests/package.sh" --throwaway "$deb" "$scratch/syslog-debs" "$scratch/mnt" ||
	fail "in the throwaway root"
echo "tests/package.sh: all passed"
