package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"pingmachine/pinger/dnsping"
	"pingmachine/pinger/dnsping/dnstest"
	"pingmachine/pinger/pingtest"
)

// BenchmarkDNS runs the DNS engine as the daemon runs it (one Go processor) against one
// local dnsmasq or a scripted server: targets rounds of count queries a second each, the
// targets' first queries spread over a second, over UDP and over TCP. Every query asks dnsmasq for a
// name it answers itself, so any loss is the engine's or dnsmasq's (false loss). It
// reports queries/s, loss%, the engine process's CPU per query (dnsmasq's own is not
// counted), the median RTT and peak RSS.
//
//	go test -run '^$' -bench DNS -benchtime 1x ./bench/
func BenchmarkDNS(b *testing.B) {
	for _, c := range []struct {
		targets, count int
		tcp, scripted  bool
	}{
		{1000, 30, false, false},
		// dnsmasq forks a process per TCP connection: at 1,000 a second on a busy 2-core
		// machine its listen queue overflows (TcpExtListenOverflows), so TCP runs against
		// it at 200 a second, and at 1,000 against a Go server in this process, whose
		// CPU time is then counted with the engine's.
		{200, 10, true, false},
		{1000, 10, true, true},
	} {
		proto, serverName := "udp", "dnsmasq"
		if c.tcp {
			proto = "tcp"
		}
		if c.scripted {
			serverName = "scripted"
		}
		b.Run(fmt.Sprintf("targets=%d/queries=%d/%s/%s", c.targets, c.count, proto, serverName), func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			var server netip.AddrPort
			if c.scripted {
				server = dnstest.StartServer(b, 0, dnstest.Answer(dns.RcodeSuccess)).Addr
			} else {
				server = dnstest.StartDNSMasq(b)
			}
			e := dnsping.New(dnsping.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			var ran sync.WaitGroup
			ran.Go(func() { e.Run(ctx) })
			defer func() {
				cancel()
				ran.Wait()
			}()
			rounds := make([]*dnsping.Round, c.targets)
			for i := range rounds {
				rounds[i] = &dnsping.Round{Server: server, TCP: c.tcp, Name: fmt.Sprintf("t%d.%s", i, dnstest.OK),
					Type: dns.TypeA, Gap: time.Second, Timeout: time.Second}
			}
			runRounds := func(count int) {
				var wg sync.WaitGroup
				t0 := time.Now().Add(50 * time.Millisecond)
				for i, r := range rounds {
					r.Count, r.Start = count, t0.Add(time.Duration(i)*time.Second/time.Duration(len(rounds)))
					r.Done = func(*dnsping.Round) { wg.Done() }
					wg.Add(1)
					if err := e.Submit(r); err != nil {
						b.Fatalf("Submit: %v", err)
					}
				}
				wg.Wait()
			}
			runRounds(1) // warm-up: sockets open, tables grown
			st0 := e.Stats()
			cpu0, t0 := cpuTime(), time.Now()
			b.ResetTimer()
			for range b.N {
				runRounds(c.count)
			}
			b.StopTimer()
			wall, cpu := time.Since(t0), cpuTime()-cpu0
			st := e.Stats()
			var rtts []time.Duration
			lost := 0
			for _, r := range rounds {
				lost += len(r.RTTs) - r.Received()
				for _, rtt := range r.RTTs {
					if rtt != dnsping.Lost {
						rtts = append(rtts, rtt)
					}
				}
			}
			slices.Sort(rtts)
			total := c.targets * c.count
			queries := float64(total * b.N)
			b.ReportMetric(queries/wall.Seconds(), "queries/s")
			b.ReportMetric(100*float64(lost)/float64(total), "loss%")
			b.ReportMetric(float64(cpu.Nanoseconds())/queries, "cpu-ns/query")
			b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
			if len(rtts) > 0 {
				b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "median-rtt-µs")
			}
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
			if lost > 0 {
				b.Errorf("false loss: %d of %d queries lost (counters %+v, before the run %+v)", lost, total, st, st0)
			}
		})
	}
}

// BenchmarkDaemonDNS runs the real daemon with 1,000 dns orders (step 20, 15 queries a
// second apart, UDP, no main.rrd) against one dnsmasq, waits until every order has a
// result, then watches two steps: every order must get a result a step without loss. It
// reports the daemon's CPU and RSS (dnsmasq's are not counted).
//
//	go test -run '^$' -bench DaemonDNS -benchtime 1x ./bench/
func BenchmarkDaemonDNS(b *testing.B) {
	const n, step, pings = 1000, 20, 15
	pingtest.RequireRoot(b)
	bin := daemonBinary(b)
	server := dnstest.StartDNSMasq(b)
	base := filepath.Join(b.TempDir(), "base")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dns/%03d/target%d", i/1000, i)
		path := filepath.Join(base, "orders", filepath.FromSlash(ids[i]))
		os.MkdirAll(filepath.Dir(path), 0o755)
		order := fmt.Sprintf("user: bench\nstep: %d\npings: %d\nprobe: dns\ndns:\n  server: %s\n  name: t%d.%s\n  interval: 1000\nrrd_template: norrd\n",
			step, pings, server, i, dnstest.OK)
		if err := os.WriteFile(path, []byte(order), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "--basedir", base)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pid := cmd.Process.Pid
		deadline := time.Now().Add(4 * step * time.Second)
		for {
			have := 0
			for _, id := range ids {
				if t, _ := readTime(base, id); t != 0 {
					have++
				}
			}
			if have == n {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				b.Fatalf("only %d of %d orders have a result:\n%s", have, n, &stderr)
			}
			time.Sleep(time.Second)
		}
		cpu0, _ := treeCPU(pid)
		t0 := time.Now()
		seen := make([]map[int64]int, n) // stamp -> loss
		for i := range seen {
			seen[i] = map[int64]int{}
		}
		for time.Since(t0) < 2*step*time.Second {
			for i, id := range ids {
				if t, loss := readTime(base, id); t != 0 {
					seen[i][t] = loss
				}
			}
			time.Sleep(2 * time.Second)
		}
		cpu1, _ := treeCPU(pid)
		elapsed := time.Since(t0)
		rss, hwm := memory(pid)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		lost, rounds, short := 0, 0, 0
		for i := range seen {
			rounds += len(seen[i])
			if len(seen[i]) < 2 {
				short++
			}
			for _, loss := range seen[i] {
				lost += loss
			}
		}
		queries := elapsed.Seconds() / step * n * pings
		b.ReportMetric(float64(rounds), "rounds")
		b.ReportMetric(float64(lost), "lost-queries")
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "cpu-%")
		b.ReportMetric(1e6*(cpu1-cpu0).Seconds()/queries, "µs/query")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MiB")
		if lost > 0 || short > 0 {
			b.Errorf("%d queries lost in %d rounds; %d orders with fewer than 2 results in 2 steps", lost, rounds, short)
		}
	}
}
