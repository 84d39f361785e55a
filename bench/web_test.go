package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// BenchmarkServing runs the daemon with --listen over -daemon.orders (10,000) orders at
// step 60 (norrd unless -daemon.rrd), as BenchmarkDaemon's largest case, and measures
// what its web server costs it: the daemon's CPU over -daemon.steps steps without any
// request, then over as many steps with a /metrics scrape every 15 s (Prometheus'
// usual interval) and a load of the status page every 15 s, half-way between the
// scrapes. It reports both, the difference as % of a core, the wall time and the
// daemon's CPU of each kind of request (its /proc CPU before and after, so that it
// includes what the daemon did meanwhile), and, over both windows, the steps without an
// update and the pings lost, which must be none.
//
//	go test -run '^$' -bench Serving -benchtime 1x -timeout 30m ./bench/
func BenchmarkServing(b *testing.B) {
	pingtest.RequireRoot(b)
	bin := daemonBinary(b)
	c := daemonCase{orders: *daemonOrders, step: 60, pings: 20, rrd: *daemonRRD}
	b.Run(c.String(), func(b *testing.B) { benchServing(b, bin, c) })
}

// listening matches the daemon's log line that gives the web server's address.
var listening = regexp.MustCompile(`msg="web server listening" addr=(\S+)`)

// requestCost is what requests of one kind cost the daemon.
type requestCost struct {
	n          int
	wall, cpu  time.Duration // in all
	maxWall    time.Duration
	maxCPU     time.Duration
	bytes      int64 // of the last answer
	failures   []string
	pid        int
	url        string
	httpClient *http.Client
}

// do makes one request and adds what it cost: the wall time until the whole answer
// was read, and the daemon's CPU (its threads' schedstat) meanwhile.
func (r *requestCost) do() {
	cpu0, _ := threadsCPU(r.pid)
	t0 := time.Now()
	resp, err := r.httpClient.Get(r.url)
	var n int64
	if err == nil {
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
	}
	wall := time.Since(t0)
	cpu1, _ := threadsCPU(r.pid)
	if err != nil {
		r.failures = append(r.failures, fmt.Sprintf("%s: %v", r.url, err))
		return
	}
	r.n++
	r.wall += wall
	r.cpu += cpu1 - cpu0
	r.maxWall = max(r.maxWall, wall)
	r.maxCPU = max(r.maxCPU, cpu1-cpu0)
	r.bytes = n
}

func benchServing(b *testing.B, bin string, c daemonCase) {
	steps := *daemonSteps
	if testing.Short() {
		steps = 1
	}
	step := time.Duration(c.step) * time.Second
	window := time.Duration(steps) * step
	base := filepath.Join(b.TempDir(), "base")
	ids := writeOrders(b, base, c.orders, c.step, c.pings, c.rrd)

	for range b.N {
		cmd := exec.Command(bin, "--basedir", base, "--listen", "127.0.0.1:0")
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		addr := make(chan string, 1)
		logDone := make(chan []string)
		go func() {
			var problems []string
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				line := sc.Text()
				if m := listening.FindStringSubmatch(line); m != nil {
					addr <- m[1]
				}
				if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
					problems = append(problems, line)
				}
			}
			logDone <- problems
		}()
		pid := cmd.Process.Pid
		var url string
		select {
		case a := <-addr:
			url = "http://" + a
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			b.Fatal("the daemon did not say where it listens within 30 s")
		}
		waitResults(b, cmd, base, ids, 4*step+time.Minute)

		// Each window is ticks of 3.75 s: a scrape on the first of every four, a
		// sample of the results (10,000 files, read by this process) on the second, a
		// page load on the third, so that they do not compete for the two cores.
		client := &http.Client{Timeout: 30 * time.Second}
		scrape := &requestCost{pid: pid, url: url + "/metrics", httpClient: client}
		page := &requestCost{pid: pid, url: url + "/", httpClient: client}
		watch := newRoundWatch(base, ids)
		const tick = 15 * time.Second / 4
		measure := func(serve bool) float64 {
			cpu0, _ := treeCPU(pid)
			t0 := time.Now()
			for k := 0; time.Since(t0) < window; k++ {
				switch k % 4 {
				case 0:
					if serve {
						scrape.do()
					}
				case 1:
					watch.sample()
				case 2:
					if serve {
						page.do()
					}
				}
				time.Sleep(time.Until(t0.Add(time.Duration(k+1) * tick)))
			}
			cpu1, _ := treeCPU(pid)
			return 100 * (cpu1 - cpu0).Seconds() / time.Since(t0).Seconds()
		}
		quiet := measure(false)
		busy := measure(true)
		watch.sample()
		missed, rounds := watch.missed(c.step, 2*steps)
		if !running(pid) {
			b.Fatal("the daemon has exited")
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		problems := <-logDone

		b.ReportMetric(float64(c.orders), "orders")
		b.ReportMetric(quiet, "quiet-cpu-%")
		b.ReportMetric(busy, "serving-cpu-%")
		b.ReportMetric(busy-quiet, "added-cpu-%")
		// The same from the requests alone: their CPU over the window, which counts
		// what the daemon did besides during each request too.
		b.ReportMetric(100*(scrape.cpu+page.cpu).Seconds()/window.Seconds(), "requests-cpu-%")
		for _, r := range []struct {
			name string
			cost *requestCost
		}{{"scrape", scrape}, {"page", page}} {
			if r.cost.n == 0 {
				b.Errorf("no %s answered: %v", r.name, r.cost.failures)
				continue
			}
			b.ReportMetric(r.cost.wall.Seconds()/float64(r.cost.n), r.name+"-s")
			b.ReportMetric(r.cost.maxWall.Seconds(), r.name+"-max-s")
			b.ReportMetric(r.cost.cpu.Seconds()/float64(r.cost.n), r.name+"-cpu-s")
			b.ReportMetric(r.cost.maxCPU.Seconds(), r.name+"-max-cpu-s")
			b.ReportMetric(float64(r.cost.bytes)/(1<<20), r.name+"-MiB")
			if len(r.cost.failures) > 0 {
				b.Errorf("%d of %d %ss failed: %v", len(r.cost.failures), len(r.cost.failures)+r.cost.n, r.name, r.cost.failures)
			}
		}
		b.ReportMetric(float64(rounds), "rounds")
		b.ReportMetric(float64(missed), "missed-steps")
		b.ReportMetric(float64(watch.lost), "lost-pings")
		if missed > 0 || watch.lost > 0 {
			b.Errorf("%d steps without an update, %d pings lost in %d rounds of %d orders", missed, watch.lost, watch.lossy, c.orders)
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
