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
	daemonOrders = flag.Int("daemon.orders", 10000, "orders of BenchmarkDaemon's largest case (step 60, 20 pings)")
	daemonSteps  = flag.Int("daemon.steps", 2, "steps BenchmarkDaemon measures after every order has a result (1 with -short)")
	daemonRRD    = flag.Bool("daemon.rrd", false, "the largest case's orders keep a main.rrd (about 2 MB each)")
)

// daemonCase is one order tree of BenchmarkDaemon: orders of one shape, each to its own
// loopback address.
type daemonCase struct {
	orders, step, pings int
	rrd                 bool
}

func (c daemonCase) String() string {
	rrd := "norrd"
	if c.rrd {
		rrd = "rrd"
	}
	return fmt.Sprintf("orders=%d,step=%d,pings=%d,%s", c.orders, c.step, c.pings, rrd)
}

// BenchmarkDaemon runs the real daemon on a temporary base directory for each case: no
// orders at all (what idling costs: the goal is less than one wake-up per second), 20
// orders at step 60 with main.rrd (a Raspberry Pi's load) and 1,000 at step 20 with
// main.rrd, as in issue 11's table, and -daemon.orders (10,000) at step 60. It waits until every order has a result,
// then watches -daemon.steps steps: every order's last_result must be updated in every
// step with no loss. It reports the start-up time, the time from a new order file to its
// first result, and the daemon's CPU, wake-ups per second and RSS.
//
//	go test -run '^$' -bench Daemon -benchtime 1x -timeout 30m ./bench/
//	go test -run '^$' -bench 'Daemon/orders=20,' -benchtime 1x -short ./bench/
func BenchmarkDaemon(b *testing.B) {
	pingtest.RequireRoot(b)
	bin := daemonBinary(b)
	for _, c := range []daemonCase{
		{orders: 0, step: 60, pings: 20},
		{orders: 20, step: 60, pings: 20, rrd: true},
		{orders: 1000, step: 20, pings: 5, rrd: true},
		{orders: *daemonOrders, step: 60, pings: 20, rrd: *daemonRRD},
	} {
		b.Run(c.String(), func(b *testing.B) {
			if c.orders == 0 {
				benchIdleDaemon(b, bin)
			} else {
				benchDaemon(b, bin, c)
			}
		})
	}
}

// benchIdleDaemon measures the daemon with an empty orders directory over a minute (10 s
// with -short), after it has had 5 s to start.
func benchIdleDaemon(b *testing.B, bin string) {
	base := filepath.Join(b.TempDir(), "base")
	os.MkdirAll(filepath.Join(base, "orders"), 0o755)
	window := time.Minute
	if testing.Short() {
		window = 10 * time.Second
	}
	for range b.N {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "--basedir", base)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pid := cmd.Process.Pid
		time.Sleep(5 * time.Second)
		cpu0, _ := treeCPU(pid)
		wake0, t0 := wakeups(pid), time.Now()
		time.Sleep(window)
		cpu1, _ := treeCPU(pid)
		wake1, elapsed := wakeups(pid), time.Since(t0)
		if !running(pid) {
			cmd.Wait()
			b.Fatalf("the daemon has exited:\n%s", &stderr)
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		b.ReportMetric(float64(wake1-wake0)/elapsed.Seconds(), "wakeups/s")
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "cpu-%")
	}
}

func benchDaemon(b *testing.B, bin string, c daemonCase) {
	n := c.orders
	steps := *daemonSteps
	if testing.Short() {
		steps = 1
	}
	base := filepath.Join(b.TempDir(), "base")
	ids := writeOrders(b, base, n, c.step, c.pings, c.rrd)
	template := "rrd_template: norrd\n"
	if c.rrd {
		template = ""
	}
	step := time.Duration(c.step) * time.Second

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
		waitResults(b, cmd, base, ids, 4*step+time.Minute)

		// A new order while the others run: how soon is its first result there? One
		// ping, so that the result follows the first ping by a round trip.
		newID := "load/new"
		os.WriteFile(filepath.Join(base, "orders", "load", ".new.tmp"),
			[]byte(fmt.Sprintf("user: bench\nstep: %d\npings: 1\nprobe: fping\nfping:\n  host: 127.0.0.1\n%s", c.step, template)), 0o644)
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
		cpu0, _ := treeCPU(pid)
		wake0, t0 := wakeups(pid), time.Now()
		window := time.Duration(steps) * step
		watch := newRoundWatch(base, ids)
		for time.Since(t0) < window+10*time.Second {
			watch.sample()
			time.Sleep(min(10*time.Second, step/4))
		}
		cpu1, _ := treeCPU(pid)
		wake1, elapsed := wakeups(pid), time.Since(t0)
		rss, hwm := memory(pid)
		missed, rounds := watch.missed(c.step, steps)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		problems := <-logDone

		perK := float64(n) / 1000
		cpuPerStep := (cpu1 - cpu0).Seconds() / (elapsed.Seconds() / float64(c.step))
		b.ReportMetric(float64(n), "orders")
		b.ReportMetric(time.Duration(loadedAt.Load()).Seconds(), "s-to-load")
		b.ReportMetric(float64(firstResult.Milliseconds()), "ms-new-order-to-result")
		b.ReportMetric(float64(rounds), "rounds")
		b.ReportMetric(float64(missed), "missed-steps")
		b.ReportMetric(float64(watch.lost), "lost-pings")
		b.ReportMetric(cpuPerStep/perK, "cpu-s/step/1k-orders")
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "cpu-%")
		b.ReportMetric(1e6*(cpu1-cpu0).Seconds()/(elapsed.Seconds()/float64(c.step)*float64(n*c.pings)), "µs/probe")
		b.ReportMetric(float64(wake1-wake0)/elapsed.Seconds(), "wakeups/s")
		b.ReportMetric(float64(rss)/(1<<20)/perK, "rss-MiB/1k-orders")
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MiB")
		if missed > 0 || watch.lost > 0 || firstResult == 0 {
			b.Errorf("%d steps without an update, %d pings lost in %d rounds of %d orders, first result of a new order after %v",
				missed, watch.lost, watch.lossy, n, firstResult)
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

// waitResults waits until every order has a result, and kills the daemon and fails the
// benchmark if that takes longer than timeout.
func waitResults(b *testing.B, cmd *exec.Cmd, base string, ids []string, timeout time.Duration) {
	b.Helper()
	results := make([]int64, len(ids))
	deadline := time.Now().Add(timeout)
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
		if have == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			b.Fatalf("after %v only %d of %d orders have a result", timeout, have, len(ids))
		}
		time.Sleep(5 * time.Second)
	}
}

// roundWatch records the distinct time stamps of orders' last_result, sampled often
// enough (several times a step) that it sees every round, and the pings lost in them.
type roundWatch struct {
	base        string
	ids         []string
	seen        []map[int64]bool
	lossy, lost int // rounds with loss, and the pings they lost
}

func newRoundWatch(base string, ids []string) *roundWatch {
	w := &roundWatch{base: base, ids: ids, seen: make([]map[int64]bool, len(ids))}
	for i := range w.seen {
		w.seen[i] = map[int64]bool{}
	}
	return w
}

// sample reads every order's last_result once.
func (w *roundWatch) sample() {
	for i, id := range w.ids {
		t, loss := readTime(w.base, id)
		if t != 0 && !w.seen[i][t] {
			w.seen[i][t] = true
			if loss != 0 {
				w.lossy++
				w.lost += loss
			}
		}
	}
}

// missed counts the steps without an update: each order's stamps must be consecutive
// steps (a stamp missing between two seen ones is a step without an update), at least
// steps of them. rounds is the number of stamps seen.
func (w *roundWatch) missed(step, steps int) (missed, rounds int) {
	for i := range w.seen {
		var lo, hi int64
		for t := range w.seen[i] {
			if lo == 0 || t < lo {
				lo = t
			}
			hi = max(hi, t)
		}
		rounds += len(w.seen[i])
		missed += int((hi-lo)/int64(step)) + 1 - len(w.seen[i])
		if len(w.seen[i]) < steps {
			missed += steps - len(w.seen[i])
		}
	}
	return missed, rounds
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
