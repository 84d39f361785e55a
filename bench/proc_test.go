package bench

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var daemonBin = flag.String("daemon.bin", "", "the pingmachine binary BenchmarkDaemon and BenchmarkVsPerl run (default: build ../cmd/pingmachine)")

// daemonBinary returns -daemon.bin, or builds the daemon as `make build` does, so that a
// benchmark can measure another revision's binary as well as this one's.
func daemonBinary(b *testing.B) string {
	b.Helper()
	if *daemonBin != "" {
		return *daemonBin
	}
	bin := filepath.Join(b.TempDir(), "pingmachine")
	build := exec.Command("go", "build", "-o", bin, "../cmd/pingmachine")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building: %v\n%s", err, out)
	}
	return bin
}

// writeOrders writes n fping orders of one shape under base/orders, each to its own
// loopback address, in subdirectories of 1,000, and returns their ids.
func writeOrders(b *testing.B, base string, n, step, pings int, rrd bool) []string {
	b.Helper()
	template := "rrd_template: norrd\n"
	if rrd {
		template = ""
	}
	ids := make([]string, n)
	targets := loopbackTargets(n)
	for i := range ids {
		ids[i] = fmt.Sprintf("load/%03d/target%d", i/1000, i)
		path := filepath.Join(base, "orders", filepath.FromSlash(ids[i]))
		os.MkdirAll(filepath.Dir(path), 0o755)
		order := fmt.Sprintf("user: bench\nstep: %d\npings: %d\nprobe: fping\nfping:\n  host: %s\n%s",
			step, pings, targets[i], template)
		if err := os.WriteFile(path, []byte(order), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(base, "orders"), 0o755)
	return ids
}

// procStat returns fields of /proc/<pid>/stat after the command name, which is in
// parentheses and may hold spaces: f[0] is the state, f[1] the parent's pid, f[11] to
// f[14] utime, stime, cutime and cstime.
func procStat(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:])), nil
}

// running tells whether a process still runs (one that has exited stays a zombie until it
// is waited for).
func running(pid int) bool {
	f, err := procStat(pid)
	return err == nil && f[0] != "Z"
}

// treeCPU is the CPU time of a process and of all its descendants, those it has reaped
// (cutime and cstime) and those still running, so that a window that ends while a child
// such as fping runs counts what the child has used so far. The process's own time
// comes from its threads' schedstat, in nanoseconds, where the kernel has it: the
// 10 ms ticks of utime and stime are coarse next to the 0.03 s per step that 20 orders
// may cost.
func treeCPU(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	total := ticks(f[13]) + ticks(f[14])
	if own, ok := threadsCPU(pid); ok {
		total += own
	} else {
		total += ticks(f[11]) + ticks(f[12])
	}
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := procStat(p); err == nil {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		if f, err := procStat(queue[0]); err == nil {
			total += ticks(f[11]) + ticks(f[12]) + ticks(f[13]) + ticks(f[14])
		}
		queue = append(queue, children[queue[0]]...)
	}
	return total, nil
}

// threadsCPU sums the time on CPU of a process's threads from /proc/<pid>/task/*/schedstat
// (its first field, in nanoseconds); ok is false if the kernel does not provide it.
func threadsCPU(pid int) (total time.Duration, ok bool) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(ns)
		ok = true
	}
	return total, ok
}

// ticks converts clock ticks of /proc/<pid>/stat; USER_HZ is 100 on Linux.
func ticks(s string) time.Duration {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.Duration(n) * time.Second / 100
}

// wakeups counts the context switches, voluntary and not, of all a process's threads:
// each is a time a thread went to sleep or was preempted, so their rate is how often the
// process wakes up.
func wakeups(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, t := range tasks {
		data, _ := os.ReadFile(t)
		for line := range strings.SplitSeq(string(data), "\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches" {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// memory returns a process's resident and peak resident set sizes in bytes.
func memory(pid int) (rss, hwm int64) {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm
}
