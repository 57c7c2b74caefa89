#!/usr/bin/env bash
# Runs every test of loaded: installs the system packages the tests need, checks formatting
# and lints, builds, then runs the unit, property and end-to-end tests and a short run of
# every fuzz target.
# The end-to-end tests need root: they create (and always delete) network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "tests/run-all.sh: run as root (sudo): the end-to-end tests create network namespaces" >&2
	exit 1
fi

# The last line: tests/package.sh (building the Debian package, lintian, shellcheck, man
# pages, systemd-analyze, the throwaway root).
packages="iproute2 iptables python3 curl procps nftables conntrack
	dpkg-dev debhelper lintian shellcheck man-db systemd util-linux"
missing=""
for p in $packages; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
command -v cargo >/dev/null || { echo "cargo is needed (https://rustup.rs)" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
cargo test --workspace -- --test-threads=2
cargo clippy --workspace --all-targets --features loaded-master/seccomp-test,loaded-worker/seccomp-test,loaded-prober/seccomp-test -- -D warnings

# The seccomp filters are live: children built with the test-only feature seccomp-test
# obey a message to make a forbidden system call, and must die of it. Its own target
# directory, so that no binary built with the feature lands next to the ordinary ones.
seccomp_target=target/seccomp-test
CARGO_TARGET_DIR=$seccomp_target cargo build --workspace --bins \
	--features loaded-master/seccomp-test,loaded-worker/seccomp-test,loaded-prober/seccomp-test
CARGO_TARGET_DIR=$seccomp_target cargo test -p loaded-master --features seccomp-test \
	--test e2e_safety -- --test-threads=2

# The Debian package: built, checked, and installed, run and purged in a throwaway root.
tests/package.sh

# A short bounded run of every fuzz target from the committed seeds (fuzz/README: longer
# runs). cargo-fuzz needs the nightly toolchain.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
(cd fuzz && cargo +nightly fmt -- --check)
fuzz/run.sh 15
