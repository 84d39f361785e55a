package pinger

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// allGroups is a net.ipv4.ping_group_range that lets every group open datagram ICMP
// sockets; the range applies to IPv6 datagram ICMP sockets too.
const allGroups = "0 2147483647"

// runEngine starts an engine whose Run ends with the test.
func runEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	return start(t, New(opts))
}

// runEngineIn starts an engine that opens all its sockets inside ns, whichever goroutine
// opens them, and whose Run ends with the test.
func runEngineIn(t testing.TB, opts Options, ns *pingtest.Namespace) *Engine {
	t.Helper()
	e := New(opts)
	e.openIn = ns.Do
	return start(t, e)
}

// loopbackEngine starts an engine in mode for a test that pings loopback addresses. Raw
// sockets are opened where the test runs. Datagram sockets need the process's group in
// net.ipv4.ping_group_range, which a fresh kernel sets to "1 0" (no group), so their engine
// opens every socket in a namespace of its own that allows all groups; the host's setting
// is neither needed nor changed.
func loopbackEngine(t testing.TB, mode Mode) *Engine {
	t.Helper()
	if mode != ModeDatagram {
		return runEngine(t, Options{Mode: mode})
	}
	ns := pingtest.NewNamespace(t)
	ns.Sysctl(t, "net.ipv4.ping_group_range", allGroups)
	return runEngineIn(t, Options{Mode: mode}, ns)
}

// start runs e until the test ends.
func start(t testing.TB, e *Engine) *Engine {
	t.Helper()
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
			e := loopbackEngine(t, mode)
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
			// Without kernel receive timestamps (qemu-user does not emulate them) an RTT
			// includes how long the process took to read the reply, and qemu's first run of
			// a code path can take tens of milliseconds.
			plausible := 50 * time.Millisecond
			e.mu.Lock()
			if slices.ContainsFunc(e.socks, func(s *socket) bool { return s.timestampErr != nil }) {
				plausible = 500 * time.Millisecond
			}
			e.mu.Unlock()
			for _, r := range rounds {
				if r.Err != nil {
					t.Errorf("%s: %v", r.Target, r.Err)
				}
				if got := r.Received(); got != r.Count {
					t.Errorf("%s: received %d of %d: %v", r.Target, got, r.Count, r.RTTs)
				}
				for i, rtt := range r.RTTs {
					if rtt <= 0 || rtt > plausible {
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
