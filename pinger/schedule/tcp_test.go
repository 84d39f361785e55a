package schedule

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"pingmachine/pinger/tcpping"
)

// fakeTCP stands in for the TCP engine: each round ends when its last ping's timeout
// has passed, every ping answered in 3 ms unless lost says otherwise; a stop ends the
// rounds pending with tcpping.ErrClosed.
type fakeTCP struct {
	mu        sync.Mutex
	closed    bool
	pending   map[*tcpping.Round]bool
	rounds    []tcpping.Round // copies of the request fields
	lost      bool            // every ping lost
	submitErr error
	sendErr   error
	quit      chan struct{} // closed when the engine stops
}

func (e *fakeTCP) Submit(r *tcpping.Round) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return tcpping.ErrClosed
	}
	if e.submitErr != nil {
		return e.submitErr
	}
	e.rounds = append(e.rounds, tcpping.Round{Target: r.Target, Source: r.Source, Interface: r.Interface, Count: r.Count,
		Gap: r.Gap, Timeout: r.Timeout, Start: r.Start, RefusedIsAnswer: r.RefusedIsAnswer, Banner: r.Banner})
	if e.pending == nil {
		e.pending = map[*tcpping.Round]bool{}
	}
	e.pending[r] = true
	lost, sendErr := e.lost, e.sendErr
	go func() {
		select {
		case <-time.After(time.Until(r.Start.Add(time.Duration(r.Count-1)*r.Gap + r.Timeout))):
		case <-e.quit:
			return
		}
		e.mu.Lock()
		if !e.pending[r] {
			e.mu.Unlock()
			return
		}
		delete(e.pending, r)
		r.RTTs = rtts(r.Count, 3*time.Millisecond)
		if lost {
			r.RTTs = rtts(r.Count, tcpping.Lost)
		}
		r.Err = sendErr
		e.mu.Unlock()
		r.Done(r)
	}()
	return nil
}

func (e *fakeTCP) run(ctx context.Context) {
	<-ctx.Done()
	close(e.quit)
	e.mu.Lock()
	e.closed = true
	var cut []*tcpping.Round
	for r := range e.pending {
		cut = append(cut, r)
	}
	clear(e.pending)
	e.mu.Unlock()
	for _, r := range cut {
		r.RTTs = rtts(r.Count, tcpping.Lost)
		r.Err = tcpping.ErrClosed
		r.Done(r)
	}
}

func (e *fakeTCP) seen() []tcpping.Round {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.rounds)
}

// TestTCPOrders runs tcp and ssh orders against the fake TCP engine: what each round
// asks of the engine, and what is written.
func TestTCPOrders(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		setup   func(w *world)
		want    tcpping.Round // Start aside
		lookups []string
		rtt     time.Duration // of every ping written; tcpping.Lost for full loss
		log     string
	}{
		{"tcp to an address", "probe: tcp\ntcp: {host: 127.0.0.1, port: 8080, refused_is_answer: true, interface: lo, source_ip: 127.0.0.2}\n",
			nil,
			tcpping.Round{Target: netip.MustParseAddrPort("127.0.0.1:8080"), Source: netip.MustParseAddr("127.0.0.2"), Interface: "lo",
				Count: 4, Gap: 11250 * time.Millisecond, Timeout: 3 * time.Second, RefusedIsAnswer: true},
			nil, 3 * time.Millisecond, ""},
		{"ssh to a name, the Perl order", "probe: ssh\nssh: {host: gw.test, key_type: rsa}\n",
			func(w *world) { w.resolver.addrs["gw.test"] = []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.9")} },
			tcpping.Round{Target: netip.MustParseAddrPort("127.0.0.9:22"), Count: 4, Gap: 11250 * time.Millisecond, Timeout: 3 * time.Second, Banner: "SSH-"},
			[]string{"ip4 gw.test"}, 3 * time.Millisecond, ""},
		{"ssh over IPv6 with an interval", "probe: ssh\nssh: {host: gw.test, ipv6: true, port: 2222, interval: 1500}\n",
			func(w *world) { w.resolver.addrs["gw.test"] = []netip.Addr{netip.MustParseAddr("::1")} },
			tcpping.Round{Target: netip.MustParseAddrPort("[::1]:2222"), Count: 4, Gap: 1500 * time.Millisecond, Timeout: 3 * time.Second, Banner: "SSH-"},
			[]string{"ip6 gw.test"}, 3 * time.Millisecond, ""},
		{"unresolvable host is full loss", "probe: tcp\ntcp: {host: gw.test, port: 1}\n",
			func(w *world) { w.resolver.err = errors.New("no such host") },
			tcpping.Round{}, []string{"ip4 gw.test"}, tcpping.Lost, "cannot resolve host"},
		{"engine refuses: full loss", "probe: tcp\ntcp: {host: 127.0.0.1, port: 1}\n",
			func(w *world) { w.tcp.submitErr = errors.New("bad round") },
			tcpping.Round{}, nil, tcpping.Lost, "cannot connect"},
		{"pings that cannot be sent", "probe: tcp\ntcp: {host: 127.0.0.1, port: 1}\n",
			func(w *world) { w.tcp.lost, w.tcp.sendErr = true, errors.New("no socket") },
			tcpping.Round{Target: netip.MustParseAddrPort("127.0.0.1:1"), Count: 4, Gap: 11250 * time.Millisecond, Timeout: 3 * time.Second},
			nil, tcpping.Lost, "cannot connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				if tc.setup != nil {
					tc.setup(w)
				}
				o := order(t, "o", "user: u\nstep: 60\npings: 4\n"+tc.text)
				w.s.Update(o)
				start := firstStart(o, time.Now())
				sleepUntil(start.Add(2*time.Minute + 59*time.Second)) // three rounds
				w.shutdown()
				rounds := w.tcp.seen()
				if tc.want.Count == 0 {
					if len(rounds) != 0 {
						t.Errorf("rounds submitted: %v", rounds)
					}
				} else if len(rounds) != 3 {
					t.Fatalf("%d rounds in three steps, want 3", len(rounds))
				}
				for k, r := range rounds {
					want := tc.want
					want.Start = start.Add(time.Duration(k) * time.Minute)
					if !reflect.DeepEqual(r, want) {
						t.Errorf("round %d: %+v, want %+v", k, r, want)
					}
				}
				if got := w.resolver.seen(); len(tc.lookups) > 0 && !slices.Equal(got[:1], tc.lookups) {
					t.Errorf("lookups %v, want %v first", got, tc.lookups)
				}
				results := w.store.written()
				if len(results) != 3 {
					t.Fatalf("%d results, want 3", len(results))
				}
				for _, res := range results {
					if !slices.Equal(res.RTTs, rtts(4, tc.rtt)) {
						t.Errorf("result %v, want every ping %v", res.RTTs, tc.rtt)
					}
				}
				if n := strings.Count(w.log.String(), tc.log); tc.log != "" && n != 1 {
					t.Errorf("%q logged %d times, want once:\n%s", tc.log, n, w.log)
				}
			})
		})
	}
}

// TestTCPShutdown: a round cut short by a stop is not written.
func TestTCPShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		o := order(t, "o", "user: u\nstep: 60\npings: 4\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 1}\n")
		w.s.Update(o)
		sleepUntil(firstStart(o, time.Now()).Add(5 * time.Second))
		w.shutdown()
		if n := len(w.tcp.seen()); n != 1 {
			t.Errorf("%d rounds, want 1", n)
		}
		if r := w.store.written(); len(r) != 0 {
			t.Errorf("results written of a round cut short: %v", r)
		}
	})
}
