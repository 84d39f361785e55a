package bench

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

var (
	vsSMPWarmup = flag.Duration("vssmp.warmup", 30*time.Second, "BenchmarkVsSmokepingProber's warm-up before the window")
	vsSMPWindow = flag.Duration("vssmp.window", time.Minute, "BenchmarkVsSmokepingProber's measured window")
)

// smokepingProber is the binary of Debian's prometheus-smokeping-prober package.
const smokepingProber = "prometheus-smokeping-prober"

// The pingmachine side of BenchmarkVsSmokepingProber: 20 pings per 20 s step is one ping
// per second per target, as smokeping_prober's --ping.interval=1s.
const (
	vsSMPStep  = 20
	vsSMPPings = 20
)

// BenchmarkVsSmokepingProber runs Debian's prometheus-smokeping-prober and the daemon on
// the same loopback targets (127.1.x.y) at one ping per second per target, one after the
// other, each in a network namespace of its own, so that neither reads the other's
// replies nor anyone else's. Each gets -vssmp.warmup, then is measured over -vssmp.window:
// CPU of its process tree, and false loss (on loopback every ping is answered). For
// smokeping_prober that is 1 - Δsmokeping_response_duration_seconds_count /
// Δsmokeping_requests_total over all targets, scraped from its /metrics at both ends of
// the window; for pingmachine the loss of the rounds whose last_result appeared in the
// window (orders at step 20 with 20 pings and main.rrd).
//
//	bench/vs-smokeping-prober.sh       # installs the package, then runs this
//	go test -run '^$' -bench 'VsSmokepingProber/targets=100$' -benchtime 1x ./bench/
func BenchmarkVsSmokepingProber(b *testing.B) {
	pingtest.RequireRoot(b)
	prober, err := exec.LookPath(smokepingProber)
	if err != nil {
		b.Fatalf("%v (bench/vs-smokeping-prober.sh installs Debian's prometheus-smokeping-prober)", err)
	}
	bin := daemonBinary(b)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			for range b.N {
				smp := runSmokepingProber(b, prober, n)
				pm := runPingmachine(b, bin, n)
				for _, r := range []sideResult{smp, pm} {
					b.ReportMetric(r.cpuPercent, r.name+"-cpu-%")
					b.ReportMetric(r.lossPercent, r.name+"-false-loss-%")
					b.ReportMetric(float64(r.sent), r.name+"-pings")
				}
				b.ReportMetric(smp.scrape.Seconds(), "smokeping_prober-scrape-s")
				b.ReportMetric(smp.startup.Seconds(), "smokeping_prober-startup-s")
				if pm.cpuPercent > 0 {
					b.ReportMetric(smp.cpuPercent/pm.cpuPercent, "cpu-ratio")
				}
			}
		})
	}
}

// sideResult is what one program did in the window.
type sideResult struct {
	name        string
	cpuPercent  float64       // of one core
	sent        int64         // pings sent in the window
	lossPercent float64       // of those
	scrape      time.Duration // the longer of the two scrapes of /metrics (smokeping_prober)
	startup     time.Duration // from start to the first answer on /metrics (smokeping_prober)
}

// runSmokepingProber measures smokeping_prober pinging n loopback targets.
func runSmokepingProber(b *testing.B, prober string, n int) sideResult {
	b.Helper()
	ns := pingtest.NewNamespace(b)
	dir := b.TempDir()
	var hosts strings.Builder
	for _, a := range loopbackTargets(n) {
		fmt.Fprintf(&hosts, "  - %s\n", a)
	}
	config := filepath.Join(dir, "smokeping_prober.yml")
	// Protocol icmp needs --privileged (raw sockets) as root: the namespace's
	// ping_group_range is the kernel's default, which allows no datagram ICMP sockets.
	err := os.WriteFile(config, []byte("targets:\n- hosts:\n"+hosts.String()+
		"  interval: 1s\n  network: ip4\n  protocol: icmp\n  size: 56\n"), 0o644)
	if err != nil {
		b.Fatal(err)
	}
	const listen = "127.0.0.1:9374" // the namespace is new, so the port is free
	cmd := ns.Command(prober, "--config.file="+config, "--privileged", "--ping.interval=1s",
		"--web.listen-address="+listen, "--log.level=warn")
	p := startProcess(b, cmd, filepath.Join(dir, "smokeping_prober.log"))
	// Far longer than Prometheus's default scrape timeout of 10 s: smokeping_prober at
	// 1,000 targets takes longer than that, and its counters are still wanted.
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DialContext: ns.DialContext}}
	url := "http://" + listen + "/metrics"

	// It starts its pingers one by one before it listens: at 1,000 targets that takes
	// about 30 s. The warm-up begins once /metrics answers.
	began := time.Now()
	for _, _, err := scrapeSmokeping(client, url); err != nil; _, _, err = scrapeSmokeping(client, url) {
		if time.Since(began) > 3*time.Minute || !running(p.pid()) {
			b.Fatalf("smokeping_prober: no /metrics %v after start: %v\n%s", time.Since(began).Round(time.Second), err, p.tail())
		}
		time.Sleep(time.Second)
	}
	startup := time.Since(began)
	time.Sleep(*vsSMPWarmup)
	// The window runs from one CPU reading to the other; each scrape follows its
	// reading, and an overloaded prober may take seconds to answer it.
	cpu0, err0 := treeCPU(p.pid())
	t0 := time.Now()
	requests0, responses0, errScrape0 := scrapeSmokeping(client, url)
	scrape := time.Since(t0)
	time.Sleep(*vsSMPWindow - scrape)
	cpu1, err1 := treeCPU(p.pid())
	elapsed := time.Since(t0)
	t1 := time.Now()
	requests1, responses1, errScrape1 := scrapeSmokeping(client, url)
	scrape = max(scrape, time.Since(t1))
	for _, err := range []error{err0, errScrape0, err1, errScrape1} {
		if err != nil {
			b.Fatalf("smokeping_prober: %v\n%s", err, p.tail())
		}
	}
	p.stop()
	sent, answered := requests1-requests0, responses1-responses0
	if sent <= 0 {
		b.Fatalf("smokeping_prober sent no pings in the window\n%s", p.tail())
	}
	return sideResult{
		name:        "smokeping_prober",
		cpuPercent:  100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds(),
		sent:        sent,
		lossPercent: 100 * float64(sent-answered) / float64(sent),
		scrape:      scrape,
		startup:     startup,
	}
}

// runPingmachine measures the daemon with one order per loopback target, each a round of
// 20 pings every 20 s.
func runPingmachine(b *testing.B, bin string, n int) sideResult {
	b.Helper()
	ns := pingtest.NewNamespace(b)
	base := filepath.Join(b.TempDir(), "base")
	ids := writeOrders(b, base, n, vsSMPStep, vsSMPPings, true)
	p := startProcess(b, ns.Command(bin, "--basedir", base), base+".log")

	time.Sleep(*vsSMPWarmup)
	deadline := time.Now().Add(3 * vsSMPStep * time.Second)
	for have := 0; have < n; {
		if time.Now().After(deadline) || !running(p.pid()) {
			b.Fatalf("pingmachine: only %d of %d orders have a result after warm-up\n%s", have, n, p.tail())
		}
		have = 0
		for _, id := range ids {
			if t, _ := readTime(base, id); t != 0 {
				have++
			}
		}
		time.Sleep(time.Second)
	}

	// Every round is seen: last_result is sampled four times a step.
	cpu0, err0 := treeCPU(p.pid())
	t0 := time.Now()
	last := resultTimes(base, ids)
	var rounds, lost int64
	for time.Since(t0) < *vsSMPWindow {
		time.Sleep(min(vsSMPStep*time.Second/4, *vsSMPWindow-time.Since(t0)))
		for i, id := range ids {
			if t, loss := readTime(base, id); t > last[i] {
				last[i] = t
				rounds++
				lost += int64(loss)
			}
		}
	}
	cpu1, err1 := treeCPU(p.pid())
	elapsed := time.Since(t0)
	for _, err := range []error{err0, err1} {
		if err != nil {
			b.Fatalf("pingmachine: %v\n%s", err, p.tail())
		}
	}
	p.stop()
	sent := rounds * vsSMPPings
	if sent == 0 {
		b.Fatalf("pingmachine finished no round in the window\n%s", p.tail())
	}
	return sideResult{
		name:        "pingmachine",
		cpuPercent:  100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds(),
		sent:        sent,
		lossPercent: 100 * float64(lost) / float64(sent),
	}
}

// scrapeSmokeping sums smokeping_requests_total and smokeping_response_duration_seconds_count
// over all targets of a smokeping_prober's /metrics.
func scrapeSmokeping(client *http.Client, url string) (requests, responses int64, err error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, 0, fmt.Errorf("scraping: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, 0, fmt.Errorf("scraping %s: %s: %s", url, resp.Status, body)
	}
	var series int
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), "{")
		if !ok || (name != "smokeping_requests_total" && name != "smokeping_response_duration_seconds_count") {
			continue
		}
		_, value, _ := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("scraping %s: line %q: %w", url, sc.Text(), err)
		}
		if name == "smokeping_requests_total" {
			requests += int64(v)
			series++
		} else {
			responses += int64(v)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("scraping %s: %w", url, err)
	}
	if series == 0 {
		return 0, 0, fmt.Errorf("scraping %s: no smokeping_requests_total", url)
	}
	return requests, responses, nil
}

// process is a program under measurement, its stderr in a file.
type process struct {
	cmd *exec.Cmd
	log string
}

// startProcess starts cmd with its stderr in log; the benchmark's cleanup stops it.
func startProcess(b *testing.B, cmd *exec.Cmd, log string) *process {
	b.Helper()
	f, err := os.Create(log)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", cmd.Args[0], err)
	}
	p := &process{cmd: cmd, log: log}
	b.Cleanup(p.stop)
	return p
}

// pid is the program's: `ip netns exec` execs it, so it keeps the pid started.
func (p *process) pid() int { return p.cmd.Process.Pid }

// tail returns the last lines of the program's log, for an error message.
func (p *process) tail() string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// stop ends the program, if it has not been stopped yet.
func (p *process) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
}

func TestScrapeSmokeping(t *testing.T) {
	const metrics = `# HELP smokeping_requests_total Number of packets sent
# TYPE smokeping_requests_total counter
smokeping_requests_total{host="127.1.0.1",ip="127.1.0.1"} 61
smokeping_requests_total{host="127.1.0.2",ip="127.1.0.2"} 60
smokeping_response_duration_seconds_bucket{host="127.1.0.1",ip="127.1.0.1",le="5e-05"} 3
smokeping_response_duration_seconds_count{host="127.1.0.1",ip="127.1.0.1"} 60
smokeping_response_duration_seconds_count{host="127.1.0.2",ip="127.1.0.2"} 1.2e+01
`
	for _, tt := range []struct {
		name, status, body  string
		requests, responses int64
		err                 string
	}{
		{"two targets", "200 OK", metrics, 121, 72, ""},
		{"not served", "404 Not Found", "404 page not found", 0, 0, "404 Not Found: 404 page not found"},
		{"bad value", "200 OK", `smokeping_requests_total{host="a"} many`, 0, 0, `line "smokeping_requests_total{host=\"a\"} many": strconv.ParseFloat`},
		{"no targets", "200 OK", "# HELP smokeping_requests_total Number of packets sent\n", 0, 0, "no smokeping_requests_total"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _ := strconv.Atoi(tt.status[:3])
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			requests, responses, err := scrapeSmokeping(srv.Client(), srv.URL+"/metrics")
			if requests != tt.requests || responses != tt.responses || (err == nil) != (tt.err == "") ||
				err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("scrapeSmokeping: %d, %d, %v; want %d, %d and an error saying %q", requests, responses, err, tt.requests, tt.responses, tt.err)
			}
		})
	}
	// A prober that does not listen (yet).
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	if _, _, err := scrapeSmokeping(srv.Client(), srv.URL+"/metrics"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("scraping a closed port: %v, want connection refused", err)
	}
}
