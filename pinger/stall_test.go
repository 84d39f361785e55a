package pinger

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// TestScriptedStall stops an engine goroutine for longer than the timeout while a reply
// that arrived in time waits to be handled, as a stop of the whole process would (SIGSTOP,
// a paused VM, a long GC pause): the ping must count as answered, with the round-trip
// time the kernel measured, not as lost. Either the clock goroutine stops when it wakes
// up, with the reply still queued, or a receive goroutine stops after reading the reply
// and before handling it, while the clock goroutine goes on.
func TestScriptedStall(t *testing.T) {
	pingtest.RequireRoot(t)
	link := pingtest.NewLink(t)
	link.Client.Sysctl(t, "net.ipv4.ping_group_range", allGroups)
	const delay, timeout, stall = 300 * time.Millisecond, time.Second, 1500 * time.Millisecond
	pingtest.StartResponder(t, link.Server, func(netip.Addr, int) pingtest.Action {
		return pingtest.Action{Delay: delay}
	})
	tests := []struct {
		name   string
		target netip.Addr
		prompt bool // Options.PromptReplies
		// openIPv4 opens the IPv4 socket first, so that the target's IPv6 socket is not
		// the only one
		openIPv4 bool
		// clock stops the clock goroutine; otherwise the target socket's receive goroutine
		clock bool
	}{
		// The clock goroutine stops when it wakes after the first send; the first reply
		// arrives meanwhile and is still queued when the goroutine goes on and finds
		// the first ping's deadline passed.
		{"reply queued, replies read in batches", pingtest.Target4(0), false, false, true},
		{"reply queued, replies read at once", pingtest.Target4(0), true, false, true},
		// The IPv6 goroutine stops after reading the first reply; the clock goroutine
		// reaches both pings' deadlines meanwhile.
		{"reply read on another socket", pingtest.Target6(0), true, true, false},
	}
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				e := New(Options{Mode: mode, PromptReplies: tt.prompt})
				e.openIn = link.Client.Do
				var stalled atomic.Bool
				e.stall = func(s *socket) {
					mine := s == nil
					if !tt.clock {
						mine = s != nil && s.v6 == tt.target.Is6()
					}
					if mine && e.Stats().Sent > 0 && stalled.CompareAndSwap(false, true) {
						time.Sleep(stall)
					}
				}
				start(t, e)
				if tt.openIPv4 {
					if err := e.Open(false, netip.Addr{}, ""); err != nil {
						t.Fatalf("Open: %v", err)
					}
				}
				r := &Round{Target: tt.target, Count: 2, Gap: 100 * time.Millisecond, Timeout: timeout}
				pingAll(t, e, []*Round{r})
				if !stalled.Load() {
					t.Fatal("the engine did not stall")
				}
				for i, rtt := range r.RTTs {
					if rtt < delay || rtt > delay+stallBound {
						t.Errorf("ping %d: RTT %v, want the responder's %v (all: %v, stats %+v)", i, rtt, delay, r.RTTs, e.Stats())
					}
				}
			})
		}
	}
}
