#!/usr/bin/env bash
# run.sh: runs every fuzz target of loaded for a bounded time, from the committed seeds.
#
#   fuzz/run.sh [SECONDS]        (default 15 per target)
#
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz, which it
# installs if missing. New inputs go to a temporary corpus, so the committed seeds stay as
# they are. A crash fails the run and leaves its input in fuzz/artifacts/TARGET/; turn it
# into a regression test next to the code it broke.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-15}
case $seconds in '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number" >&2; exit 2 ;; esac

rustup toolchain list | grep -q '^nightly' || {
	echo "run.sh: the nightly toolchain is needed: rustup toolchain install nightly" >&2
	exit 1
}
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

targets="packet_rewrite queue_messages config_parse message_codec"
cargo +nightly fuzz build
scratch=$(mktemp -d /tmp/loaded-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for target in $targets; do
	mkdir -p "$scratch/$target"
	rm -rf "artifacts/$target"
	echo "run.sh: $target for $seconds s"
	# -timeout: an input that takes 10 s is a hang (each takes microseconds; the margin is for
	# a loaded machine); -rss_limit_mb: the same for memory.
	cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
		grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread .* panicked)|ERROR' || true
	# cargo fuzz exits non-zero on a crash, but the pipe above hides that: check artifacts.
	if compgen -G "artifacts/$target/*" >/dev/null; then
		echo "run.sh: $target found inputs that crash it: $(ls artifacts/"$target")" >&2
		exit 1
	fi
done
echo "run.sh: no target crashed"
