package bench

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

var (
	tcpOrders = flag.Int("tcp.orders", 5000, "orders of BenchmarkTCPDaemon (step 5, 5 pings 1 s apart: one connect a second each)")
	tcpSteps  = flag.Int("tcp.steps", 4, "steps BenchmarkTCPDaemon measures after every order has a result")
)

// BenchmarkTCPDaemon runs the real daemon with -tcp.orders tcp orders, each to its own
// loopback address, at one connect a second each (step 5, pings 5, interval 1000 ms,
// norrd), against one listener that accepts every connection and closes it at once. Both
// run in a network namespace of their own, where the listener can take every 127.x
// address on one port (it is bound to the namespace's any-address, which only its lo
// has). After every order has a result it watches -tcp.steps steps: every order's
// last_result must be updated in every step with no loss. It reports the daemon's CPU,
// per connect and in all, its wake-ups and RSS.
//
//	go test -run '^$' -bench TCPDaemon -benchtime 1x ./bench/
func BenchmarkTCPDaemon(b *testing.B) {
	ns := pingtest.NewNamespace(b)
	bin := daemonBinary(b)
	port := acceptInNamespace(b, ns)
	n, step := *tcpOrders, 5
	base := filepath.Join(b.TempDir(), "base")
	ids := make([]string, n)
	for i, addr := range loopbackTargets(n) {
		ids[i] = fmt.Sprintf("tcp/%03d/target%d", i/1000, i)
		path := filepath.Join(base, "orders", filepath.FromSlash(ids[i]))
		os.MkdirAll(filepath.Dir(path), 0o755)
		order := fmt.Sprintf("user: bench\nstep: %d\npings: 5\nprobe: tcp\ntcp: {host: %s, port: %d, interval: 1000}\nrrd_template: norrd\n",
			step, addr, port)
		if err := os.WriteFile(path, []byte(order), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		cmd := ns.Command(bin, "--basedir", base)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		logDone := make(chan []string)
		go func() {
			var problems []string
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if line := sc.Text(); strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
					problems = append(problems, line)
				}
			}
			logDone <- problems
		}()
		pid := cmd.Process.Pid

		deadline := time.Now().Add(time.Minute)
		for have := 0; have < n; {
			have = 0
			for _, id := range ids {
				if t, _ := readTime(base, id); t != 0 {
					have++
				}
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				b.Fatalf("after a minute only %d of %d orders have a result", have, n)
			}
			time.Sleep(time.Second)
		}

		cpu0, _ := treeCPU(pid)
		wake0, t0 := wakeups(pid), time.Now()
		window := time.Duration(*tcpSteps*step) * time.Second
		seen := make([]map[int64]bool, n)
		for i := range seen {
			seen[i] = map[int64]bool{}
		}
		var lost int
		for time.Since(t0) < window {
			for i, id := range ids {
				t, loss := readTime(base, id)
				if t != 0 && !seen[i][t] {
					seen[i][t] = true
					lost += loss
				}
			}
			time.Sleep(time.Second)
		}
		cpu1, _ := treeCPU(pid)
		wake1, elapsed := wakeups(pid), time.Since(t0)
		rss, hwm := memory(pid)
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
			missed += int((hi-lo)/int64(step)) + 1 - len(seen[i])
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		problems := <-logDone

		connects := elapsed.Seconds() * float64(n) // one a second each
		b.ReportMetric(float64(n), "orders")
		b.ReportMetric(float64(rounds), "rounds")
		b.ReportMetric(float64(missed), "missed-steps")
		b.ReportMetric(float64(lost), "lost-pings")
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "cpu-%")
		b.ReportMetric(1e6*(cpu1-cpu0).Seconds()/connects, "µs/connect")
		b.ReportMetric(float64(wake1-wake0)/elapsed.Seconds(), "wakeups/s")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MiB")
		if missed > 0 || lost > 0 {
			b.Errorf("%d steps without an update, %d pings lost in %d rounds of %d orders", missed, lost, rounds, n)
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

// acceptInNamespace listens on the any-address of ns, where only lo is, and accepts and
// closes every connection until the benchmark ends; it returns the port.
func acceptInNamespace(b *testing.B, ns *pingtest.Namespace) int {
	b.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp4", "0.0.0.0:0")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	// Two acceptors, so that the accept queue (somaxconn) never fills at a few thousand
	// connects a second.
	for range 2 {
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		})
	}
	b.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).Port
}
