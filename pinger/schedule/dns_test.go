package schedule

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"pingmachine/pinger/dnsping"
	"pingmachine/store"
)

// fakeDNS ends each round when its last query's timeout has passed, every query answered
// in 3 ms, and ends the rounds it holds with dnsping.ErrClosed when its context is done.
type fakeDNS struct {
	mu        sync.Mutex
	rounds    []dnsping.Round // copies of the rounds submitted
	pending   map[*dnsping.Round]bool
	submitErr error
	sendErr   error
	quit      chan struct{} // closed when the engine stops
}

func (f *fakeDNS) Submit(r *dnsping.Round) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending == nil {
		return dnsping.ErrClosed
	}
	if f.submitErr != nil {
		return f.submitErr
	}
	f.rounds = append(f.rounds, *r)
	f.pending[r] = true
	end := r.Start.Add(time.Duration(r.Count-1)*r.Gap + r.Timeout)
	go func() {
		select {
		case <-time.After(time.Until(end)):
		case <-f.quit:
			return
		}
		f.mu.Lock()
		if !f.pending[r] {
			f.mu.Unlock()
			return
		}
		delete(f.pending, r)
		r.RTTs = rtts(r.Count, 3*time.Millisecond)
		r.Err = f.sendErr
		f.mu.Unlock()
		r.Done(r)
	}()
	return nil
}

func (f *fakeDNS) run(ctx context.Context) {
	<-ctx.Done()
	close(f.quit)
	f.mu.Lock()
	var cut []*dnsping.Round
	for r := range f.pending {
		cut = append(cut, r)
	}
	f.pending = nil
	f.mu.Unlock()
	for _, r := range cut {
		r.RTTs = rtts(r.Count, dnsping.Lost)
		r.Err = dnsping.ErrClosed
		r.Done(r)
	}
}

func (f *fakeDNS) seen() []dnsping.Round {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rounds)
}

// withDNS gives w's scheduler a fake DNS engine that stops with it, or none when f is nil.
func withDNS(w *world, f *fakeDNS) {
	if f == nil {
		return
	}
	f.pending, f.quit = make(map[*dnsping.Round]bool), make(chan struct{})
	w.s.mu.Lock()
	w.s.cfg.DNS = f
	w.s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		f.run(ctx)
		close(done)
	}()
	// Before the scheduler waits for its rounds, as the daemon stops both with one context.
	stop := w.stop
	w.stop = func() {
		cancel()
		<-done
		stop()
	}
}

const dnsOrderText = "user: test\nstep: 10\npings: 3\nprobe: dns\ndns:\n  server: 127.0.0.1:5353\n  name: ok.test\n  type: MX\n  protocol: tcp\n  source_ip: 127.0.0.2\n  rcodes_as_failure: [NXDOMAIN]\n"

// TestDNSRounds runs a dns order's rounds on the step clock with the DNS engine, and the
// ways they fail.
func TestDNSRounds(t *testing.T) {
	lost := rtts(3, dnsping.Lost)
	answered := rtts(3, 3*time.Millisecond)
	tests := []struct {
		name    string
		engine  *fakeDNS // nil: the scheduler has none
		want    []time.Duration
		wantLog string // logged once
	}{
		{"answered", &fakeDNS{}, answered, ""},
		{"engine refuses", &fakeDNS{submitErr: errors.New("no socket")}, lost, "cannot query the DNS server; results are full loss"},
		{"send errors", &fakeDNS{sendErr: errors.New("network is unreachable")}, answered, "cannot send DNS queries"},
		{"no engine", nil, lost, "the daemon has no DNS engine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				withDNS(w, tt.engine)
				o := order(t, "dns/o", dnsOrderText)
				w.s.Update(o)
				start := firstStart(o, time.Now())
				sleepUntil(start.Add(27 * time.Second)) // the third round ends at 26 s
				w.shutdown()
				var want []store.Result
				for k := range 3 {
					want = append(want, store.Result{ID: "dns/o", Time: store.Stamp(start, o.Step).Add(time.Duration(k) * o.Step), Step: o.Step, RTTs: tt.want})
				}
				got := w.store.written()
				sameResults(t, got, want)
				for _, r := range got {
					if r.Addr != netip.MustParseAddr("127.0.0.1") {
						t.Errorf("a result of %v, want the server's address for the metrics", r.Addr)
					}
				}
				if len(w.engine.seen()) != 0 {
					t.Errorf("the ICMP engine got rounds of a dns order")
				}
				if tt.wantLog != "" {
					if n := strings.Count(w.log.String(), tt.wantLog); n != 1 {
						t.Errorf("%d lines %q for 3 rounds, want 1:\n%s", n, tt.wantLog, w.log)
					}
				} else if strings.Contains(w.log.String(), "level=WARN") {
					t.Errorf("warnings for good rounds:\n%s", w.log)
				}
				if tt.engine == nil || tt.engine.submitErr != nil {
					return
				}
				gap, timeout := o.Timing()
				for k, r := range tt.engine.seen() {
					if at := start.Add(time.Duration(k) * o.Step); !r.Start.Equal(at) {
						t.Errorf("round %d starts at %v, want %v", k, r.Start, at)
					}
					if r.Server != netip.MustParseAddrPort("127.0.0.1:5353") || r.Source != netip.MustParseAddr("127.0.0.2") ||
						!r.TCP || r.Name != "ok.test" || r.Type != dns.TypeMX || !slices.Equal(r.FailRcodes, []int{dns.RcodeNameError}) ||
						r.Count != 3 || r.Gap != gap.Truncate(grid) || r.Timeout != timeout {
						t.Errorf("round %d: %+v, want the order's", k, r)
					}
				}
			})
		})
	}
}

// TestDNSStopAndChange: a round cut short by the stop is not written, nor is one whose
// order changed its server while it ran.
func TestDNSStopAndChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		f := &fakeDNS{}
		withDNS(w, f)
		o := order(t, "dns/o", dnsOrderText)
		w.s.Update(o)
		start := firstStart(o, time.Now())
		sleepUntil(start.Add(time.Second))
		w.s.Update(order(t, "dns/o", strings.Replace(dnsOrderText, "5353", "5354", 1)))
		sleepUntil(start.Add(11 * time.Second))
		w.shutdown()
		if got := w.store.written(); len(got) != 0 {
			t.Errorf("results %s, want none", describeResults(got))
		}
		if n := len(f.seen()); n != 2 {
			t.Errorf("%d rounds, want 2", n)
		}
	})
}

func TestDNSSameMeasurement(t *testing.T) {
	a := order(t, "o", dnsOrderText)
	tests := []struct {
		text string
		want bool
	}{
		{dnsOrderText, true},
		{dnsOrderText + "rrd_template: norrd\n", true},
		{strings.Replace(dnsOrderText, "ok.test", "nx.test", 1), false},
		{strings.Replace(dnsOrderText, "MX", "A", 1), false},
		{strings.Replace(dnsOrderText, "tcp", "udp", 1), false},
		{strings.Replace(dnsOrderText, "NXDOMAIN", "SERVFAIL", 1), false},
	}
	for i, tt := range tests {
		if got := sameMeasurement(a, order(t, "o", tt.text)); got != tt.want {
			t.Errorf("%d: sameMeasurement = %v, want %v", i, got, tt.want)
		}
	}
}
