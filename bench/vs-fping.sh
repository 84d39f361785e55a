#!/usr/bin/env bash
# Runs fping and `pingmachine ping` on the same loopback targets, count and period, one
# after the other in one run, and prints wall time, CPU time, loss and median RTT of each
# and the ratios pingmachine/fping. Only loopback addresses (127.1.0.1 upwards) are used.
#
# usage: bench/vs-fping.sh [-n targets] [-c count] [-p period_ms] [-t timeout_ms]
# The timeout defaults to the period, at most 2000 ms, as both tools do in count mode.
set -euo pipefail

usage="usage: $0 [-n targets] [-c count] [-p period_ms] [-t timeout_ms]"
n=1000 count=5 period=1000 timeout=
while getopts "n:c:p:t:h" opt; do
	case $opt in
	n) n=$OPTARG ;;
	c) count=$OPTARG ;;
	p) period=$OPTARG ;;
	t) timeout=$OPTARG ;;
	h) echo "$usage"; exit 0 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
if ! [[ $n =~ ^[0-9]+$ && $count =~ ^[0-9]+$ ]] || ((n < 1 || n > 16000000 || count < 1)); then
	echo "$0: -n must be 1..16000000 and -c at least 1" >&2
	exit 2
fi
if ! [[ $period =~ ^[0-9]+([.][0-9]+)?$ && ${timeout:-1} =~ ^[0-9]+([.][0-9]+)?$ ]]; then
	echo "$0: -p and -t are milliseconds" >&2
	exit 2
fi
timeout=${timeout:-$(awk -v p="$period" 'BEGIN { print (p < 2000 ? p : 2000) }')}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$root/bin/pingmachine
if [ ! -x "$bin" ]; then
	bin=$work/pingmachine
	(cd "$root" && go build -o "$bin" ./cmd/pingmachine)
fi
command -v fping >/dev/null || { echo "$0: fping is not installed" >&2; exit 1; }

# 127.1.0.1, 127.1.0.2, ...: every 127.x.y.z answers on Linux.
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) { v = 65537 + i;
	printf "127.%d.%d.%d\n", int(v / 65536) % 256, int(v / 256) % 256, v % 256 } }' >"$work/targets"

# fping spaces all packets by -i; spread one period over all targets as pingmachine does.
# fping 5.1 takes fractions of a millisecond (as root, down to 0); one built with
# --enable-safe-limits refuses less than 1 ms for non-root users, so ask it first.
interval=$(awk -v p="$period" -v n="$n" 'BEGIN { printf "%.6g", p / n }')
interval_note=
if awk -v i="$interval" 'BEGIN { exit !(i < 1) }' &&
	! fping -q -c 1 -t 100 -i "$interval" 127.0.0.1 >/dev/null 2>&1 &&
	fping -q -c 1 -t 100 -i 1 127.0.0.1 >/dev/null 2>&1; then
	interval_note="; fping refused -i $interval, so it gets its minimum, 1 ms, and its run takes longer"
	interval=1
fi

# measure NAME CMD...: runs CMD with its -C lines going to $work/NAME.out, records
# "wall user sys exit" in $work/NAME.time.
measure() {
	local name=$1
	shift
	local TIMEFORMAT='%R %U %S' status=0
	{ time "$@" >"$work/$name.stdout" 2>"$work/$name.stderr" || status=$?; } 2>"$work/$name.time.raw"
	echo "$(cat "$work/$name.time.raw") $status" >"$work/$name.time"
}

echo "targets=$n count=$count period=${period}ms timeout=${timeout}ms (fping -i $interval$interval_note)"
measure fping fping -C "$count" -p "$period" -i "$interval" -t "$timeout" -q -f "$work/targets"
measure pingmachine "$bin" ping -c "$count" -p "$period" -t "$timeout" -f "$work/targets"
# fping writes its -C summary to stderr, pingmachine to stdout.
grep ' : ' "$work/fping.stderr" >"$work/fping.out" || true
grep ' : ' "$work/pingmachine.stdout" >"$work/pingmachine.out" || true

# summary NAME: "targets lost answered median_ms"
summary() {
	awk -v expected="$count" -v rtts="$work/$1.rtts" '
		{ split($0, parts, " : "); k = split(parts[2], v, " ")
		  hosts++; lost += expected - k
		  for (i = 1; i <= k; i++) if (v[i] == "-") lost++; else { m++; print v[i] > rtts } }
		END { printf "%d %d %d ", hosts, lost, m }' "$work/$1.out"
	if [ -s "$work/$1.rtts" ]; then
		# The upper median, sorted[int(n/2)] counted from 0, as pingmachine reports it.
		sort -g "$work/$1.rtts" | awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1] }'
	else
		echo nan
	fi
}

read -r fw fu fs fx <"$work/fping.time"
read -r pw pu ps px <"$work/pingmachine.time"
read -r fh fl fa fm < <(summary fping)
read -r ph pl pa pm < <(summary pingmachine)

printf '\n%-12s %8s %8s %6s %8s %8s %12s\n' "" "wall s" "cpu s" "exit" "targets" "lost" "median ms"
printf '%-12s %8.2f %8.2f %6d %8d %8d %12s\n' fping "$fw" "$(echo "$fu $fs" | awk '{print $1 + $2}')" "$fx" "$fh" "$fl" "$fm"
printf '%-12s %8.2f %8.2f %6d %8d %8d %12s\n' pingmachine "$pw" "$(echo "$pu $ps" | awk '{print $1 + $2}')" "$px" "$ph" "$pl" "$pm"
if [ "$fx" -ne 0 ] && [ "$fx" -ne 1 ]; then
	echo
	echo "no ratios: fping exited $fx; last lines of its stderr:"
	grep -v ' : ' "$work/fping.stderr" | tail -3
	exit 0
fi
awk -v fw="$fw" -v pw="$pw" -v fc="$(echo "$fu $fs" | awk '{print $1 + $2}')" \
	-v pc="$(echo "$pu $ps" | awk '{print $1 + $2}')" -v fm="$fm" -v pm="$pm" 'BEGIN {
	printf "\npingmachine/fping: wall %.2f, cpu %.2f", pw / fw, (fc > 0 ? pc / fc : 0)
	if (fm != "nan" && pm != "nan") printf ", median RTT difference %+.1f us", (pm - fm) * 1000
	printf "\n" }'
