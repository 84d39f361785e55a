// Package bench holds pingmachine's load benchmarks. They ping loopback addresses only
// (every 127.x.y.z answers on Linux) and need root or CAP_NET_RAW.
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/
package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger"
	"pingmachine/pinger/pingtest"
)

// loopbackTargets returns n distinct loopback addresses from 127.1.0.1 on.
func loopbackTargets(n int) []netip.Addr {
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		v := 127<<24 | 1<<16 + 1 + i
		addrs[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return addrs
}

func startEngine(b *testing.B) *pinger.Engine {
	b.Helper()
	pingtest.RequireRoot(b)
	e := pinger.New(pinger.Options{Mode: pinger.ModeRaw, RecvBuffer: 16 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.Run(ctx); err != nil {
			b.Errorf("Run: %v", err)
		}
	}()
	b.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return e
}

// job is one measured run: every target gets a round of count pings, period apart, and
// the targets' first pings are spread evenly over one period so the packet rate is flat.
type job struct {
	rounds []*pinger.Round
	left   atomic.Int64
	done   chan struct{}
}

func newJob(targets []netip.Addr, count int, period, timeout time.Duration) *job {
	j := &job{done: make(chan struct{})}
	finish := func(*pinger.Round) {
		if j.left.Add(-1) == 0 {
			close(j.done)
		}
	}
	for _, t := range targets {
		j.rounds = append(j.rounds, &pinger.Round{
			Target: t, Count: count, Gap: period, Timeout: timeout, Done: finish,
			RTTs: make([]time.Duration, count),
		})
	}
	return j
}

func (j *job) run(b *testing.B, e *pinger.Engine) {
	j.left.Store(int64(len(j.rounds)))
	j.done = make(chan struct{})
	period := j.rounds[0].Gap
	t0 := time.Now().Add(50 * time.Millisecond)
	for i, r := range j.rounds {
		r.Start = t0.Add(time.Duration(int64(period) * int64(i) / int64(len(j.rounds))))
		if err := e.Submit(r); err != nil {
			b.Fatalf("Submit: %v", err)
		}
	}
	<-j.done
}

// medianRTT is the median of every answered probe of the job.
func (j *job) medianRTT() time.Duration {
	var rtts []time.Duration
	for _, r := range j.rounds {
		for _, rtt := range r.RTTs {
			if rtt != pinger.Lost {
				rtts = append(rtts, rtt)
			}
		}
	}
	if len(rtts) == 0 {
		return 0
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

func (j *job) lost() (lost, total int) {
	for _, r := range j.rounds {
		total += len(r.RTTs)
		lost += len(r.RTTs) - r.Received()
	}
	return lost, total
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoopback runs the acceptance loads: probes/s, false loss (every loopback
// address answers, so any loss is ours), CPU and allocations per probe, and peak RSS.
func BenchmarkLoopback(b *testing.B) {
	cases := []struct {
		targets, count int
		period         time.Duration
	}{
		{1_000, 20, time.Second},
		{10_000, 20, time.Second},
		{100_000, 5, 2 * time.Second},
	}
	for _, c := range cases {
		name := fmt.Sprintf("targets=%d/pings=%d/period=%v", c.targets, c.count, c.period)
		b.Run(name, func(b *testing.B) {
			e := startEngine(b)
			targets := loopbackTargets(c.targets)
			// A short warm-up grows the engine's tables, so the measured run is steady state.
			warm := newJob(targets, 2, c.period, time.Second)
			warm.run(b, e)
			j := newJob(targets, c.count, c.period, time.Second)

			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			st0 := e.Stats()
			cpu0, t0 := cpuTime(), time.Now()
			b.ResetTimer()
			for range b.N {
				j.run(b, e)
			}
			b.StopTimer()
			wall, cpu := time.Since(t0), cpuTime()-cpu0
			runtime.ReadMemStats(&ms1)
			st := e.Stats()

			lost, total := j.lost()
			probes := float64(total * b.N)
			b.ReportMetric(probes/wall.Seconds(), "probes/s")
			b.ReportMetric(100*float64(lost)/float64(total), "loss%")
			b.ReportMetric(float64(cpu.Nanoseconds())/probes, "cpu-ns/probe")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/probes, "allocs/probe")
			b.ReportMetric(float64(j.medianRTT().Nanoseconds())/1e3, "median-rtt-µs")
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(st.KernelDrops-st0.KernelDrops), "kernel-drops")
			if lost > 0 {
				b.Errorf("false loss: %d of %d probes lost on loopback (stats %+v)", lost, total, st)
			}
		})
	}
}

// BenchmarkSteadyState measures one probe per op while rounds are resubmitted from their
// Done function, as a daemon does every step: -benchmem shows allocations per probe, and
// cpu-ns/probe the process's CPU time (user and system) per probe. The probe rate is
// fixed, so ns/op is the wall time per probe and does not show the engine's cost.
func BenchmarkSteadyState(b *testing.B) {
	e := startEngine(b)
	const targets = 1_000
	const gap = 20 * time.Millisecond // 50,000 probes/s over 1,000 targets
	var sent atomic.Int64
	var stopping atomic.Bool
	var wg sync.WaitGroup
	rounds := make([]*pinger.Round, targets)
	resubmit := func(r *pinger.Round) {
		if stopping.Load() || sent.Add(1) > int64(b.N) {
			wg.Done()
			return
		}
		r.Start = time.Now().Add(gap)
		if err := e.Submit(r); err != nil {
			b.Errorf("Submit: %v", err)
			wg.Done()
		}
	}
	for i, t := range loopbackTargets(targets) {
		rounds[i] = &pinger.Round{Target: t, Count: 1, Timeout: time.Second, Done: resubmit,
			RTTs: make([]time.Duration, 1)}
	}
	// Warm up: every target once, so tables have their final size.
	var warm sync.WaitGroup
	for _, r := range rounds {
		warm.Add(1)
		r.Done = func(*pinger.Round) { warm.Done() }
		if err := e.Submit(r); err != nil {
			b.Fatalf("Submit: %v", err)
		}
	}
	warm.Wait()
	for _, r := range rounds {
		r.Done = resubmit
	}

	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	wg.Add(targets)
	for _, r := range rounds {
		r.Start = time.Time{}
		if err := e.Submit(r); err != nil {
			b.Fatalf("Submit: %v", err)
		}
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/probe")
	stopping.Store(true)
	if st := e.Stats(); st.TimedOut > 0 {
		b.Errorf("%d probes timed out on loopback", st.TimedOut)
	}
}

// BenchmarkGrid runs daemon-like loads whose sends are aligned on a 10 ms grid, as the
// scheduler aligns them, so that many probes fall due in the same tick: it reports the CPU
// per probe and how often the process was woken (context switches, voluntary and not, of
// all its threads), the figures that the engine's sleeping and batching change.
func BenchmarkGrid(b *testing.B) {
	const grid = 10 * time.Millisecond
	cases := []struct {
		targets, count int
		gap            time.Duration
	}{
		{20, 5, time.Second},
		{1_000, 5, time.Second},
		{5_000, 5, time.Second},
	}
	for _, c := range cases {
		name := fmt.Sprintf("targets=%d/pings=%d/gap=%v", c.targets, c.count, c.gap)
		b.Run(name, func(b *testing.B) {
			e := startEngine(b)
			targets := loopbackTargets(c.targets)
			j := newJob(targets, c.count, c.gap, time.Second)
			slots := int(c.gap / grid)
			start := func() {
				j.left.Store(int64(len(j.rounds)))
				j.done = make(chan struct{})
				t0 := time.Now().Truncate(grid).Add(5 * grid)
				for i, r := range j.rounds {
					r.Start = t0.Add(time.Duration(i%slots) * grid)
					if err := e.Submit(r); err != nil {
						b.Fatalf("Submit: %v", err)
					}
				}
				<-j.done
			}
			start() // warm-up
			sw0, cpu0, t0 := contextSwitches(), cpuTime(), time.Now()
			b.ResetTimer()
			for range b.N {
				start()
			}
			b.StopTimer()
			wall, cpu, sw := time.Since(t0), cpuTime()-cpu0, contextSwitches()-sw0
			lost, total := j.lost()
			probes := float64(total * b.N)
			b.ReportMetric(float64(cpu.Nanoseconds())/probes, "cpu-ns/probe")
			b.ReportMetric(float64(sw)/wall.Seconds(), "wakeups/s")
			b.ReportMetric(float64(sw)/probes, "wakeups/probe")
			b.ReportMetric(float64(j.medianRTT().Nanoseconds())/1e3, "median-rtt-µs")
			if lost > 0 {
				b.Errorf("false loss: %d of %d probes lost on loopback", lost, total)
			}
		})
	}
}

// contextSwitches counts the context switches of all the process's threads: each is a
// thread going to sleep or being woken, so their rate is the process's wake-up rate.
func contextSwitches() int64 {
	dirs, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var n int64
	for _, d := range dirs {
		data, err := os.ReadFile("/proc/self/task/" + d.Name() + "/status")
		if err != nil {
			continue // the thread has exited
		}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}

// peakRSS is the process's high-water resident set in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss) * 1024
}
