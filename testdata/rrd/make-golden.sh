#!/usr/bin/env bash
# Makes the golden RRD files in this directory with the real rrdtool: Debian's amd64
# package on the host, and Debian's armhf package (32-bit time_t) run under qemu-user.
# For each definition it keeps the file right after `create` (*-empty-*.rrd) and the same
# file after the updates in updates-*.txt, so a test can apply those updates to a copy of
# the empty file and expect rrdtool's bytes exactly (both share rrdtool's random cur_row).
#
# usage: testdata/rrd/make-golden.sh   (as root: it adds the armhf architecture to dpkg
# and downloads the armhf packages into a temporary directory, never into the repository)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! dpkg --print-foreign-architectures | grep -qx armhf; then
	dpkg --add-architecture armhf
fi
apt-get update -qq || echo "apt-get update reported errors; using the package lists it has" >&2
mkdir -p "$work/debs" "$work/root"
(
	cd "$work/debs"
	for p in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances rrdtool:armhf | grep -E '^\w' | grep ':armhf' | sort -u) \
		libc6:armhf libgcc-s1:armhf; do
		apt-get download "$p" >/dev/null 2>&1 || true # virtual packages have no .deb
	done
)
for f in "$work"/debs/*.deb; do dpkg -x "$f" "$work/root"; done
lib=$work/root/lib/arm-linux-gnueabihf:$work/root/usr/lib/arm-linux-gnueabihf
armhf() {
	qemu-arm-static "$work/root/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3" --library-path "$lib" \
		"$work/root/usr/bin/rrdtool" "$@"
}
amd64() { rrdtool "$@"; }

start=1700000000
# Deterministic readings: gaps beyond the heartbeat, updates within a step, unaligned
# times, unknown and out-of-range values.
awk -v start="$start" -v n=300 -v step=20 'BEGIN { srand(42); t = start
	for (i = 0; i < n; i++) {
		r = rand(); if (r < 0.05) t += step * (3 + int(rand() * 10)); else if (r < 0.2) t += 1 + int(rand() * 6); else t += step - 2 + int(rand() * 5)
		a = (rand() < 0.05) ? "U" : sprintf("%.6e", rand() * 100)
		b = (rand() < 0.05) ? "-1" : sprintf("%.4f", rand() * 2 - 1)
		printf "%d:%s:%s\n", t, a, b } }' >"$here/updates-small.txt"
awk -v start="$start" -v n=3000 -v step=60 'BEGIN { srand(7); t = start
	for (i = 0; i < n; i++) {
		r = rand(); if (r < 0.05) t += step * (3 + int(rand() * 40)); else if (r < 0.2) t += 1 + int(rand() * 20); else t += step - 6 + int(rand() * 13)
		loss = int(rand() * 6); line = t ":" loss ":" ((loss < 5) ? sprintf("%.6e", rand() * 0.2) : "U")
		for (k = 0; k < 5; k++) line = line ":" ((k < loss) ? "U" : sprintf("%.6e", rand() * 0.2))
		print line } }' >"$here/updates-pm60.txt"

small=(--start "$start" --step 20 DS:a:GAUGE:40:0:U DS:b:GAUGE:40:U:U
	RRA:AVERAGE:0.5:1:10 RRA:MIN:0.5:3:5 RRA:MAX:0.5:3:5 RRA:LAST:0.5:2:4)
pm60=(--start "$start" --step 60 DS:loss:GAUGE:120:0:5 DS:median:GAUGE:120:0:180)
for i in 1 2 3 4 5; do pm60+=("DS:ping$i:GAUGE:120:0:180"); done
pm60+=(RRA:AVERAGE:0.5:1:900)
for spec in 5:864 30:480 60:960; do for cf in AVERAGE MIN MAX; do pm60+=("RRA:$cf:0.5:$spec"); done; done
for spec in 720:800 10080:520; do for cf in AVERAGE MAX MIN; do pm60+=("RRA:$cf:0.5:$spec"); done; done

for layout in amd64 armhf; do
	for name in small pm60; do
		declare -n def=$name
		empty=$here/$name-empty-$layout.rrd
		full=$here/$name-$layout.rrd
		rm -f "$empty" "$full"
		$layout create "$empty" "${def[@]}"
		cp "$empty" "$full"
		mapfile -t ups <"$here/updates-$name.txt"
		for ((i = 0; i < ${#ups[@]}; i += 500)); do
			$layout update "$full" -- "${ups[@]:i:500}"
		done
		last=$($layout last "$full")
		$layout fetch "$full" AVERAGE --start $((last - 86400)) --end "$last" >"$here/$name-$layout.fetch"
		$layout dump "$full" | gzip -9n >"$here/$name-$layout.xml.gz"
		echo "$layout $name: $(stat -c %s "$full") bytes, last update $last"
	done
done
echo "rrdtool versions: amd64 $(rrdtool -v | head -1 | awk '{print $2}'), armhf $(armhf -v | head -1 | awk '{print $2}')"
