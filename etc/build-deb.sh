#!/bin/sh
# Builds the Debian package of loaded: target/debian/loaded_VERSION_ARCH.deb (with its
# .buildinfo and .changes, and the -dbgsym package of debug symbols).
# Needs dpkg-dev and debhelper (apt-get install dpkg-dev debhelper) and cargo on PATH.
# dpkg-buildpackage writes its output next to the source tree, so it runs in a copy under
# target/debian/src; cargo builds into target/debian/cargo, kept between runs.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/target/debian
src=$out/src

for tool in dpkg-buildpackage dh cargo; do
	command -v "$tool" >/dev/null || {
		echo "etc/build-deb.sh: $tool is missing (apt-get install dpkg-dev debhelper; cargo from https://rustup.rs)" >&2
		exit 1
	}
done

mkdir -p "$out"
rm -rf "$src"
mkdir "$src"
# The tree as it is, uncommitted changes included; tar keeps the times, so cargo
# rebuilds only what changed since the last package.
tar -C "$repo" --exclude=./target --exclude=./.git --exclude=./fuzz/target -cf - . | tar -C "$src" -xf -
rm -f "$out"/loaded_* "$out"/loaded-dbgsym_*

cd "$src"
CARGO_TARGET_DIR=$out/cargo dpkg-buildpackage --build=binary --no-sign
ls "$out"/loaded_*.deb
