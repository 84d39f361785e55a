package bench

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

var (
	daemonOrders = flag.Int("daemon.orders", 10000, "orders loaded by BenchmarkDaemon")
	daemonSteps  = flag.Int("daemon.steps", 2, "steps BenchmarkDaemon measures after every order has a result")
	daemonRRD    = flag.Bool("daemon.rrd", false, "BenchmarkDaemon orders keep a main.rrd (about 2 MB each)")
)

// The order shape of the issue: step 60, 20 pings.
const (
	daemonStep  = 60
	daemonPings = 20
)

// BenchmarkDaemon runs the real daemon on a temporary base directory with
// -daemon.orders loopback orders, waits until every order has a result, then watches
// -daemon.steps steps: every order's last_result must be updated in every step with no
// loss. It reports the start-up time, the time from a new order file to its first result,
// and the daemon's CPU and RSS per 1,000 orders.
//
//	go test -run '^$' -bench Daemon -benchtime 1x -timeout 30m ./bench/
func BenchmarkDaemon(b *testing.B) {
	pingtest.RequireRoot(b)
	n := *daemonOrders
	dir := b.TempDir()
	bin := filepath.Join(dir, "pingmachine")
	build := exec.Command("go", "build", "-o", bin, "../cmd/pingmachine")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building: %v\n%s", err, out)
	}
	base := filepath.Join(dir, "base")
	template := "rrd_template: norrd\n"
	if *daemonRRD {
		template = ""
	}
	ids := make([]string, n)
	targets := loopbackTargets(n)
	for i := range ids {
		ids[i] = fmt.Sprintf("load/%03d/target%d", i/1000, i)
		path := filepath.Join(base, "orders", filepath.FromSlash(ids[i]))
		os.MkdirAll(filepath.Dir(path), 0o755)
		order := fmt.Sprintf("user: bench\nstep: %d\npings: %d\nprobe: fping\nfping:\n  host: %s\n%s",
			daemonStep, daemonPings, targets[i], template)
		if err := os.WriteFile(path, []byte(order), 0o644); err != nil {
			b.Fatal(err)
		}
	}

	for range b.N {
		start := time.Now()
		cmd := exec.Command(bin, "--basedir", base)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var loaded atomic.Int64
		var loadedAt atomic.Int64
		logDone := make(chan []string)
		go func() {
			var problems []string
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.Contains(line, `msg="new order"`):
					if loaded.Add(1) == int64(n) {
						loadedAt.Store(int64(time.Since(start)))
					}
				case strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR"):
					problems = append(problems, line)
				}
			}
			logDone <- problems
		}()
		pid := cmd.Process.Pid

		// Warm-up: every order has a result (phases spread rounds over a step, and a
		// round lasts most of one).
		results := make([]int64, n)
		deadline := time.Now().Add(4 * daemonStep * time.Second)
		for {
			have := 0
			for i, id := range ids {
				if results[i] == 0 {
					results[i], _ = readTime(base, id)
				}
				if results[i] != 0 {
					have++
				}
			}
			if have == n {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				b.Fatalf("after %v only %d of %d orders have a result", 4*daemonStep*time.Second, have, n)
			}
			time.Sleep(5 * time.Second)
		}

		// A new order while the others run: how soon is its first result there? One
		// ping, so that the result follows the first ping by a round trip.
		newID := "load/new"
		os.WriteFile(filepath.Join(base, "orders", "load", ".new.tmp"),
			[]byte(fmt.Sprintf("user: bench\nstep: %d\npings: 1\nprobe: fping\nfping:\n  host: 127.0.0.1\n%s", daemonStep, template)), 0o644)
		added := time.Now()
		os.Rename(filepath.Join(base, "orders", "load", ".new.tmp"), filepath.Join(base, "orders", "load", "new"))
		var firstResult time.Duration
		for firstResult == 0 && time.Since(added) < 10*time.Second {
			if t, _ := readTime(base, newID); t != 0 {
				firstResult = time.Since(added)
			}
			time.Sleep(10 * time.Millisecond)
		}

		// Measure: sample every last_result several times a step, so that every update
		// is seen, and check each order got one per step, without loss.
		cpu0, _ := processCPU(pid)
		t0 := time.Now()
		window := time.Duration(*daemonSteps) * daemonStep * time.Second
		seen := make([]map[int64]bool, n)
		var lossy, lost int
		for i := range seen {
			seen[i] = map[int64]bool{}
		}
		for time.Since(t0) < window+10*time.Second {
			for i, id := range ids {
				t, loss := readTime(base, id)
				if t != 0 && !seen[i][t] {
					seen[i][t] = true
					if loss != 0 {
						lossy++
						lost += loss
					}
				}
			}
			time.Sleep(10 * time.Second)
		}
		cpu1, _ := processCPU(pid)
		elapsed := time.Since(t0)
		rss, hwm := memory(pid)

		// Each order's stamps in the window must be consecutive steps: a stamp
		// missing between two seen ones is a step without an update.
		var missed, rounds int
		for i := range seen {
			var lo, hi int64
			for t := range seen[i] {
				if lo == 0 || t < lo {
					lo = t
				}
				hi = max(hi, t)
			}
			rounds += len(seen[i])
			missed += int((hi-lo)/daemonStep) + 1 - len(seen[i])
			if len(seen[i]) < *daemonSteps {
				missed += *daemonSteps - len(seen[i])
			}
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		problems := <-logDone

		perK := float64(n) / 1000
		cpuPerStep := (cpu1 - cpu0).Seconds() / (elapsed.Seconds() / daemonStep)
		b.ReportMetric(float64(n), "orders")
		b.ReportMetric(time.Duration(loadedAt.Load()).Seconds(), "s-to-load")
		b.ReportMetric(float64(firstResult.Milliseconds()), "ms-new-order-to-result")
		b.ReportMetric(float64(rounds), "rounds")
		b.ReportMetric(float64(missed), "missed-steps")
		b.ReportMetric(float64(lost), "lost-pings")
		b.ReportMetric(cpuPerStep/perK, "cpu-s/step/1k-orders")
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "cpu-%")
		b.ReportMetric(float64(rss)/(1<<20)/perK, "rss-MiB/1k-orders")
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MiB")
		if missed > 0 || lost > 0 || firstResult == 0 {
			b.Errorf("%d steps without an update, %d pings lost in %d rounds of %d orders, first result of a new order after %v",
				missed, lost, lossy, n, firstResult)
		}
		for i, p := range problems {
			if i == 10 {
				b.Logf("... and %d more", len(problems)-10)
				break
			}
			b.Logf("daemon: %s", p)
		}
	}
}

// readTime returns the time and loss of an order's last_result, zero if there is none.
func readTime(base, id string) (t int64, loss int) {
	data, err := os.ReadFile(filepath.Join(base, "output", filepath.FromSlash(id), "last_result"))
	if err != nil {
		return 0, 0
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		k, v, _ := bytes.Cut(line, []byte(": "))
		switch string(k) {
		case "time":
			t, _ = strconv.ParseInt(string(v), 10, 64)
		case "loss":
			loss, _ = strconv.Atoi(string(v))
		}
	}
	return t, loss
}

// processCPU is a process's user plus system time from /proc.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ is 100 on Linux
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
