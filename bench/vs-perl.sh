#!/usr/bin/env bash
# Runs BenchmarkVsPerl: the same loopback order trees under pingmachine and under fping
# driven the way the Perl pingmachine drives it (bench/perl-style.pl), both at once, and
# prints a table of CPU per step of each whole process tree (fping included), µs per probe
# and the ratio pingmachine / Perl, for 20 and 1,000 orders with main.rrd and 5,000 and
# 10,000 without. Installs the Debian packages it needs first (as root).
#
# usage: bench/vs-perl.sh [-s] [-n count] [-o orders] [-b binary]
#   -s          short: one step measured per case instead of 3 (quick checks)
#   -n count    run each case count times (-count); default 1
#   -o orders   the cases to run, a regular expression on their order counts, e.g. '20|1000'
#   -b binary   the pingmachine binary to measure; default: `make build`'s bin/pingmachine
set -euo pipefail

usage="usage: $0 [-s] [-n count] [-o orders] [-b binary]"
short= count=1 orders= bin=
while getopts "sn:o:b:h" opt; do
	case $opt in
	s) short=-short ;;
	n) count=$OPTARG ;;
	o) orders=$OPTARG ;;
	b) bin=$OPTARG ;;
	h) echo "$usage"; exit 0 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "$0: -n must be a positive count" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
"$root/.ci/deps" fping perl librrds-perl libanyevent-perl libev-perl libyaml-libyaml-perl util-linux iproute2
source "$root/bench/lib.sh"
bin=$(bench_binary "$bin")
run_bench -bench "VsPerl/orders=(${orders:-[0-9]+})," -count "$count" $short -daemon.bin "$bin"

# One row per run: the metrics follow the name as "value unit" pairs.
awk '/^BenchmarkVsPerl\// {
	split($1, name, "/"); sub(/-[0-9]+$/, "", name[2])
	delete m
	for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i
	if (!header++) printf "\n%-36s %9s %9s %9s %9s %9s %9s %9s %9s %7s %10s\n", "case", "perl %", "perl s/st", "perl µs/p",
		"pm %", "pm s/step", "pm µs/p", "pm wake/s", "perl wk/s", "ratio", "lost perl/pm"
	printf "%-36s %9.3f %9.3f %9.1f %9.3f %9.3f %9.1f %9.1f %9.1f %7.2f %7d/%d\n", name[2],
		m["perl-cpu-%"], m["perl-cpu-s/step"], m["perl-µs/probe"],
		m["pingmachine-cpu-%"], m["pingmachine-cpu-s/step"], m["pingmachine-µs/probe"],
		m["pingmachine-wakeups/s"], m["perl-wakeups/s"], m["ratio"],
		m["perl-lost-pings"], m["pingmachine-lost-pings"] }' "$out"
exit $status
