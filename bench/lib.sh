# Sourced by the bench/vs-*.sh scripts: what they share to run one of the side-by-side
# benchmarks of ./bench/ on the binary they measure.

# bench_binary prints the absolute path of the binary to measure: $1, or bin/pingmachine
# built by make when $1 is empty.
bench_binary() {
	local bin=$1
	if [ -z "$bin" ]; then
		make -C "$root" --no-print-directory build >&2
		bin=$root/bin/pingmachine
	fi
	echo "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
}

# run_bench runs `go test ./bench/` with the arguments given, its output shown and kept in
# $out, and sets $status to its exit status. The benchmark runs in a process group of its
# own (set -m), which holds every program it starts: ending the group on exit ends them
# all. Its temporary directories go under $work, so that they go too if it is interrupted
# before it can remove them.
run_bench() {
	work=$(mktemp -d)
	out=$work/bench.out
	pid=
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	set -m
	(cd "$root" && TMPDIR=$work exec go test ./bench/ -run '^$' -benchtime 1x -timeout 0 "$@") > >(tee "$out") 2>&1 &
	pid=$!
	set +m
	status=0
	wait "$pid" || status=$?
	pid=
	wait # for tee
}

bench_cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
