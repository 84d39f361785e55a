package pinger

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/pinger/pingtest"
)

// TestWakeups pings many loopback targets whose sends share a few ticks, as the
// scheduler's 10 ms grid makes them do: the engine must wake up about once per tick with
// sends, not per reply nor at the deadlines of answered probes, and still attribute every
// reply with a plausible RTT. With PromptReplies, replies wake it as they come, but a
// round is done as soon as its last reply is in.
func TestWakeups(t *testing.T) {
	pingtest.RequireRoot(t)
	const targets, count = 50, 4
	const gap, timeout = 100 * time.Millisecond, 250 * time.Millisecond
	tests := []struct {
		prompt bool
		// maxWakeups bounds the engine's wake-ups; 0 for no bound
		maxWakeups int64
	}{
		// One wake-up per send tick, and a few to spare for Submit and a poll for
		// replies that were not in yet when the sends' tick read the socket. The engine
		// that read each reply at once and woke up at every deadline, answered or not
		// (count more), took over 3 per send tick.
		{false, count + 4},
		{true, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("prompt=%v", tt.prompt), func(t *testing.T) {
			e := New(Options{Mode: ModeRaw, PromptReplies: tt.prompt})
			var wakeups atomic.Int64
			e.stall = func(*socket) { wakeups.Add(1) }
			start(t, e)
			if err := e.Open(false, netip.Addr{}, ""); err != nil {
				t.Fatalf("Open: %v", err)
			}
			// Past the wake-ups of the start: the first pings go out in 50 ms, all in
			// the same tick.
			t0 := time.Now().Add(50 * time.Millisecond)
			var rounds []*Round
			for i := range targets {
				rounds = append(rounds, &Round{Target: netip.AddrFrom4([4]byte{127, 0, 1, byte(1 + i)}),
					Count: count, Gap: gap, Timeout: timeout, Start: t0})
			}
			time.Sleep(10 * time.Millisecond)
			before := wakeups.Load()
			pingAll(t, e, rounds)
			doneAfter := time.Since(t0)
			// The deadlines of the last pings pass meanwhile; they must not wake the engine.
			time.Sleep(timeout + 50*time.Millisecond)
			woke := wakeups.Load() - before

			e.mu.Lock()
			noStamps := slices.ContainsFunc(e.socks, func(s *socket) bool { return s.timestampErr != nil })
			e.mu.Unlock()
			plausible := 50 * time.Millisecond
			if noStamps {
				plausible = 500 * time.Millisecond // see TestLoopback
			}
			for _, r := range rounds {
				if got := r.Received(); got != count {
					t.Errorf("%s: received %d of %d: %v", r.Target, got, count, r.RTTs)
				}
				for i, rtt := range r.RTTs {
					if rtt <= 0 || rtt > plausible {
						t.Errorf("%s ping %d: implausible loopback RTT %v", r.Target, i, rtt)
					}
				}
			}
			t.Logf("%d wake-ups for %d probes in %d send ticks; all done %v after the first send",
				woke, targets*count, count, doneAfter)
			if last := time.Duration(count-1) * gap; doneAfter > last+plausible {
				t.Errorf("rounds done %v after the first send, want within %v of the last send at %v",
					doneAfter, plausible, last)
			}
			if tt.maxWakeups > 0 && !noStamps && woke > tt.maxWakeups {
				t.Errorf("%d wake-ups, want at most %d", woke, tt.maxWakeups)
			}
		})
	}
}

// TestBatchSendErrors sends pings due in the same tick, some to a broadcast address that
// the kernel refuses (EACCES), in one batch: each refused ping is lost with the error,
// and the others, before and after it in the batch, are sent and answered.
func TestBatchSendErrors(t *testing.T) {
	pingtest.RequireRoot(t)
	targets := []struct {
		addr    string
		sendErr error
	}{
		{"127.0.0.1", nil},
		{"127.255.255.255", unix.EACCES},
		{"127.255.255.255", unix.EACCES},
		{"127.0.0.2", nil},
		{"127.255.255.255", unix.EACCES},
		{"127.0.0.3", nil},
	}
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		t.Run(mode.String(), func(t *testing.T) {
			e := loopbackEngine(t, mode)
			if err := e.Open(false, netip.Addr{}, ""); err != nil {
				t.Fatalf("Open: %v", err)
			}
			t0 := time.Now().Add(20 * time.Millisecond)
			var rounds []*Round
			for _, tg := range targets {
				rounds = append(rounds, &Round{Target: netip.MustParseAddr(tg.addr), Count: 2,
					Gap: 10 * time.Millisecond, Timeout: time.Second, Start: t0})
			}
			pingAll(t, e, rounds)
			for i, r := range rounds {
				want := targets[i].sendErr
				switch {
				case want == nil && (r.Err != nil || r.Received() != r.Count):
					t.Errorf("%s: received %d of %d, err %v; want all", r.Target, r.Received(), r.Count, r.Err)
				case want != nil && (!errors.Is(r.Err, want) || r.Received() != 0):
					t.Errorf("%s: received %d, err %v; want none, %v", r.Target, r.Received(), r.Err, want)
				}
			}
			if st := e.Stats(); st.Sent != 6 || st.SendErrors != 6 || st.Received != 6 {
				t.Errorf("stats %+v, want 6 sent, 6 send errors and 6 received", st)
			}
		})
	}
}
