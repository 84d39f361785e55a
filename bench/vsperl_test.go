package bench

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

var vsPerlSteps = flag.Int("vsperl.steps", 3, "steps BenchmarkVsPerl measures after warm-up (1 with -short)")

// BenchmarkVsPerl runs the same order tree under the daemon and under perl-style.pl, a
// driver that runs fping as the Perl pingmachine does (one `fping -q -p <interval> -C
// <pings> -i 1 -t 3000` per step and per group of up to 1,000 orders sharing step and
// pings), both at once, for the cases of issue 11's table. After every order of both has
// a result, it measures both over the same window of whole steps: CPU of each process
// tree (fping children included), CPU per step, per probe, the ratio daemon/Perl, and
// how often each process wakes up (the Perl driver's own wake-ups, without fping's), and
// the orders that got no new result in the window and the pings lost in the latest ones.
//
// Each side runs in a network namespace of its own, so that fping's raw socket, which
// takes every ICMP reply of its namespace, does not also read the daemon's.
//
//	bench/vs-perl.sh                  # installs what it needs, then runs this
//	go test -run '^$' -bench VsPerl -benchtime 1x -timeout 60m ./bench/
func BenchmarkVsPerl(b *testing.B) {
	pingtest.RequireRoot(b)
	perl := exec.Command("perl", "-MAnyEvent", "-MEV", "-MRRDs", "-MYAML::XS", "-e", "1")
	if out, err := perl.CombinedOutput(); err != nil {
		b.Skipf("perl-style.pl's modules are missing (bench/vs-perl.sh installs them): %v\n%s", err, out)
	}
	if _, err := exec.LookPath("fping"); err != nil {
		b.Skip("fping is not installed (bench/vs-perl.sh installs it)")
	}
	bin := daemonBinary(b)
	for _, c := range []daemonCase{
		{orders: 20, step: 60, pings: 20, rrd: true},
		{orders: 1000, step: 20, pings: 5, rrd: true},
		{orders: 5000, step: 60, pings: 20},
		{orders: 10000, step: 60, pings: 20},
	} {
		b.Run(c.String(), func(b *testing.B) { benchVsPerl(b, bin, c) })
	}
}

// side is one of the two daemons under measurement.
type side struct {
	name string
	base string
	cmd  *exec.Cmd
	log  string // its stderr

	// counters at the start and end of the window, results at its start
	cpu0, cpu1   time.Duration
	wake0, wake1 int64
	times0       []int64
}

// start runs argv in a new network namespace whose loopback interface is up. unshare
// and sh exec, so the process started keeps the pid of the daemon.
func (s *side) start(b *testing.B, argv ...string) {
	b.Helper()
	args := append([]string{"--net", "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh"}, argv...)
	s.cmd = exec.Command("unshare", args...)
	s.log = s.base + ".log"
	log, err := os.Create(s.log)
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	s.cmd.Stderr = log
	if err := s.cmd.Start(); err != nil {
		b.Fatalf("%s: %v", s.name, err)
	}
	b.Cleanup(s.stop)
}

// tail returns the last lines of the side's log, for an error message.
func (s *side) tail() string {
	data, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// stop ends the process, if it has not been stopped yet.
func (s *side) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
	}
}

func benchVsPerl(b *testing.B, bin string, c daemonCase) {
	steps := *vsPerlSteps
	if testing.Short() {
		steps = 1
	}
	step := time.Duration(c.step) * time.Second
	dir := b.TempDir()
	pm := &side{name: "pingmachine", base: filepath.Join(dir, "pingmachine")}
	pl := &side{name: "perl", base: filepath.Join(dir, "perl")}
	ids := writeOrders(b, pm.base, c.orders, c.step, c.pings, c.rrd)
	writeOrders(b, pl.base, c.orders, c.step, c.pings, c.rrd)

	for range b.N {
		pm.start(b, bin, "--basedir", pm.base)
		pl.start(b, "perl", "perl-style.pl", pl.base)

		// Warm-up: every order of both sides has a result. The Perl side's first
		// rounds start up to a step after start, and creating the RRDs takes a while.
		deadline := time.Now().Add(3*step + 2*time.Minute)
		for _, s := range []*side{pm, pl} {
			for have := 0; have < len(ids); {
				if time.Now().After(deadline) || !running(s.cmd.Process.Pid) {
					b.Fatalf("%s: only %d of %d orders have a result after warm-up\n%s", s.name, have, len(ids), s.tail())
				}
				time.Sleep(time.Second)
				have = 0
				for _, id := range ids {
					if t, _ := readTime(s.base, id); t != 0 {
						have++
					}
				}
			}
		}

		// The RRD files both sides created (a gigabyte at 1,000 orders) are written back
		// before the window, so that it measures the steady state rather than the disk's
		// write-back of the start, which stalls either side's writes by chance.
		syscall.Sync()
		time.Sleep(5 * time.Second)

		// Both sides' counters are read together at each end of the window, the
		// result files (thousands of reads) only afterwards.
		for _, s := range []*side{pm, pl} {
			s.cpu0, _ = treeCPU(s.cmd.Process.Pid)
			s.wake0 = wakeups(s.cmd.Process.Pid)
		}
		t0 := time.Now()
		for _, s := range []*side{pm, pl} {
			s.times0 = resultTimes(s.base, ids)
		}
		time.Sleep(time.Duration(steps)*step - time.Since(t0))
		for _, s := range []*side{pm, pl} {
			s.cpu1, _ = treeCPU(s.cmd.Process.Pid)
			s.wake1 = wakeups(s.cmd.Process.Pid)
		}
		elapsed := time.Since(t0)
		cpu := map[string]float64{}
		for _, s := range []*side{pm, pl} {
			if !running(s.cmd.Process.Pid) {
				b.Fatalf("%s has exited\n%s", s.name, s.tail())
			}
			// Whether both did the work: orders without a new result in the window,
			// pings lost in the latest results.
			var stale, lost int
			for i, id := range ids {
				t, loss := readTime(s.base, id)
				if t <= s.times0[i] {
					stale++
				}
				lost += loss
			}
			used := (s.cpu1 - s.cpu0).Seconds()
			cpu[s.name] = used
			b.ReportMetric(100*used/elapsed.Seconds(), s.name+"-cpu-%")
			b.ReportMetric(used/(elapsed.Seconds()/float64(c.step)), s.name+"-cpu-s/step")
			b.ReportMetric(1e6*used/(elapsed.Seconds()/float64(c.step)*float64(c.orders*c.pings)), s.name+"-µs/probe")
			b.ReportMetric(float64(s.wake1-s.wake0)/elapsed.Seconds(), s.name+"-wakeups/s")
			b.ReportMetric(float64(stale), s.name+"-stale-orders")
			b.ReportMetric(float64(lost), s.name+"-lost-pings")
			// fping's losses are the yardstick's own; pingmachine must lose nothing on
			// loopback.
			if s == pm && (stale > 0 || lost > 0) {
				b.Errorf("%s: %d of %d orders got no result in %v, %d pings lost in the latest results\n%s",
					s.name, stale, len(ids), elapsed.Round(time.Second), lost, s.tail())
			}
		}
		pm.stop()
		pl.stop()
		if cpu["perl"] > 0 {
			b.ReportMetric(cpu["pingmachine"]/cpu["perl"], "ratio")
		}
	}
}

// resultTimes returns the time of each order's last_result, zero where there is none.
func resultTimes(base string, ids []string) []int64 {
	times := make([]int64, len(ids))
	for i, id := range ids {
		times[i], _ = readTime(base, id)
	}
	return times
}
