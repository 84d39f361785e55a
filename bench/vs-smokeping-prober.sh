#!/usr/bin/env bash
# Runs BenchmarkVsSmokepingProber: Debian's prometheus-smokeping-prober and pingmachine on
# the same 100 and 1,000 loopback targets at one ping per second per target, one after the
# other, each in a network namespace of its own, and prints a table of the CPU (percent of
# one core) and false loss of each. Installs the Debian packages it needs first (as root).
#
# usage: bench/vs-smokeping-prober.sh [-t targets] [-w warmup] [-m window] [-b binary]
#   -t targets  the cases to run, a regular expression on their target counts, e.g. '100'
#   -w warmup   warm-up of each program before its window, a Go duration; default 30s
#   -m window   the measured window, a Go duration; default 60s
#   -b binary   the pingmachine binary to measure; default: `make build`'s bin/pingmachine
set -euo pipefail

usage="usage: $0 [-t targets] [-w warmup] [-m window] [-b binary]"
targets= warmup=30s window=60s bin=
while getopts "t:w:m:b:h" opt; do
	case $opt in
	t) targets=$OPTARG ;;
	w) warmup=$OPTARG ;;
	m) window=$OPTARG ;;
	b) bin=$OPTARG ;;
	h) echo "$usage"; exit 0 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
"$root/.ci/deps" prometheus-smokeping-prober iproute2
source "$root/bench/lib.sh"
bin=$(bench_binary "$bin")
run_bench -bench "VsSmokepingProber/targets=(${targets:-[0-9]+})\$" \
	-daemon.bin "$bin" -vssmp.warmup "$warmup" -vssmp.window "$window"

# One row per run: the metrics follow the name as "value unit" pairs.
awk '/^BenchmarkVsSmokepingProber\// {
	split($1, name, "/"); sub(/-[0-9]+$/, "", name[2])
	delete m
	for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i
	if (!header++) printf "\n%-14s %10s %10s %10s %10s %10s %10s %10s %9s\n", "case",
		"smp CPU %", "smp pings", "smp loss %", "smp scrape", "pm CPU %", "pm pings", "pm loss %", "CPU ratio"
	printf "%-14s %10.1f %10d %10.2f %9.2fs %10.1f %10d %10.2f %9.1f\n", name[2],
		m["smokeping_prober-cpu-%"], m["smokeping_prober-pings"], m["smokeping_prober-false-loss-%"], m["smokeping_prober-scrape-s"],
		m["pingmachine-cpu-%"], m["pingmachine-pings"], m["pingmachine-false-loss-%"], m["cpu-ratio"] }' "$out"
exit $status
