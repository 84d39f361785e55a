package pinger

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// runEngine starts an engine whose Run ends with the test.
func runEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return e
}

// pingAll submits one round per target and waits for all of them.
func pingAll(t testing.TB, e *Engine, rounds []*Round) {
	t.Helper()
	var wg sync.WaitGroup
	for _, r := range rounds {
		wg.Add(1)
		r.Done = func(*Round) { wg.Done() }
		if err := e.Submit(r); err != nil {
			t.Fatalf("Submit %s: %v", r.Target, err)
		}
	}
	wg.Wait()
}

func TestLoopback(t *testing.T) {
	pingtest.RequireRoot(t)
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		t.Run(mode.String(), func(t *testing.T) {
			e := runEngine(t, Options{Mode: mode})
			var rounds []*Round
			for _, a := range []string{"127.0.0.1", "127.0.0.2", "127.3.4.5", "::1"} {
				rounds = append(rounds, &Round{
					Target:  netip.MustParseAddr(a),
					Count:   5,
					Gap:     20 * time.Millisecond,
					Timeout: time.Second,
				})
			}
			pingAll(t, e, rounds)
			for _, r := range rounds {
				if r.Err != nil {
					t.Errorf("%s: %v", r.Target, r.Err)
				}
				if got := r.Received(); got != r.Count {
					t.Errorf("%s: received %d of %d: %v", r.Target, got, r.Count, r.RTTs)
				}
				for i, rtt := range r.RTTs {
					if rtt <= 0 || rtt > 50*time.Millisecond {
						t.Errorf("%s ping %d: implausible loopback RTT %v", r.Target, i, rtt)
					}
				}
			}
			st := e.Stats()
			if st.Sent != 20 || st.Received != 20 || st.Foreign != 0 || st.Duplicate != 0 || st.TimedOut != 0 {
				t.Errorf("stats = %+v, want 20 sent and received, nothing else", st)
			}
		})
	}
}
