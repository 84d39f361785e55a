package pinger

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/pinger/pingtest"
	"pingmachine/store/storetest"
)

// scripted runs rounds from the client namespace of a fresh link against a responder in
// the server namespace, once per socket mode and address family.
func scripted(t *testing.T, script pingtest.Script, check func(t *testing.T, e *Engine, targets func(int) netip.Addr)) {
	pingtest.RequireRoot(t)
	link := pingtest.NewLink(t)
	// Datagram sockets need the process's group in the client namespace's range.
	link.Client.Sysctl(t, "net.ipv4.ping_group_range", allGroups)
	pingtest.StartResponder(t, link.Server, script)
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		for _, fam := range []struct {
			name    string
			targets func(int) netip.Addr
		}{{"ipv4", pingtest.Target4}, {"ipv6", pingtest.Target6}} {
			t.Run(mode.String()+"/"+fam.name, func(t *testing.T) {
				check(t, runEngineIn(t, Options{Mode: mode}, link.Client), fam.targets)
			})
		}
	}
}

// Script indexes: each target address has its own behaviour.
const (
	tLoss = iota
	tDelay5
	tDelay20
	tDelay50
	tDuplicate
	tCorrupt
	tWrongSource
	tUnreachable
	tReorder
	tSilent
	tPlain
)

const pings = 10

// stallBound is how late a single reply may be when the test machine stalls a thread: a
// loaded VM has stalled one for 9 ms. Accuracy is judged by the median; a loose bound is
// enough to catch a reply taken for another ping, which is also always too early for one
// of the two.
const stallBound = 100 * time.Millisecond

// lossPattern is the set of ping indexes the responder drops for tLoss.
var lossPattern = map[int]bool{0: true, 3: true, 4: true, 9: true}

func behaviour(targets func(int) netip.Addr) pingtest.Script {
	index := map[netip.Addr]int{}
	for i := tLoss; i <= tPlain; i++ {
		index[targets(i)] = i
	}
	return func(dst netip.Addr, n int) pingtest.Action {
		switch index[dst] {
		case tLoss:
			return pingtest.Action{Drop: lossPattern[n%pings]}
		case tDelay5:
			return pingtest.Action{Delay: 5 * time.Millisecond}
		case tDelay20:
			return pingtest.Action{Delay: 20 * time.Millisecond}
		case tDelay50:
			return pingtest.Action{Delay: 50 * time.Millisecond}
		case tDuplicate:
			return pingtest.Action{Copies: 3}
		case tCorrupt:
			return pingtest.Action{Corrupt: true}
		case tWrongSource:
			return pingtest.Action{From: targets(tPlain)}
		case tUnreachable:
			return pingtest.Action{Unreachable: true}
		case tReorder:
			// Later pings are answered sooner, so replies arrive in reverse order.
			return pingtest.Action{Delay: time.Duration(pings-n%pings) * 10 * time.Millisecond}
		case tSilent:
			return pingtest.Action{Drop: true}
		}
		return pingtest.Action{}
	}
}

func bothFamilies(dst netip.Addr, n int) pingtest.Action {
	if dst.Is4() {
		return behaviour(pingtest.Target4)(dst, n)
	}
	return behaviour(pingtest.Target6)(dst, n)
}

func TestScripted(t *testing.T) {
	scripted(t, bothFamilies, func(t *testing.T, e *Engine, target func(int) netip.Addr) {
		rounds := make([]*Round, tPlain+1)
		for i := range rounds {
			rounds[i] = &Round{Target: target(i), Count: pings, Gap: 5 * time.Millisecond, Timeout: 400 * time.Millisecond}
		}
		before := e.Stats()
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		finished := map[int]time.Duration{}
		for i, r := range rounds {
			wg.Add(1)
			r.Done = func(*Round) {
				mu.Lock()
				finished[i] = time.Since(start)
				mu.Unlock()
				wg.Done()
			}
			if err := e.Submit(r); err != nil {
				t.Fatalf("Submit: %v", err)
			}
		}
		wg.Wait()
		// Late duplicates and corrupt copies may still be on their way.
		time.Sleep(50 * time.Millisecond)
		st := e.Stats()

		for i, r := range rounds {
			if r.Err != nil {
				t.Errorf("target %d (%s): %v", i, r.Target, r.Err)
			}
			for n, rtt := range r.RTTs {
				lost := rtt == Lost
				var wantLost bool
				switch i {
				case tLoss:
					wantLost = lossPattern[n]
				case tCorrupt, tWrongSource, tUnreachable, tSilent:
					wantLost = true
				}
				if lost != wantLost {
					t.Errorf("target %d (%s) ping %d: lost=%v, want lost=%v (RTTs %v)", i, r.Target, n, lost, wantLost, r.RTTs)
				}
			}
		}
		// Every RTT is at least the scripted delay, and the median is within 1 ms of it.
		// Single replies may be later: this VM stalls a thread for milliseconds now and
		// then (the responder measures about 1 in 500), so those are only bounded loosely.
		for i, delay := range map[int]time.Duration{tDelay5: 5 * time.Millisecond, tDelay20: 20 * time.Millisecond, tDelay50: 50 * time.Millisecond} {
			rtts := slices.Clone(rounds[i].RTTs)
			slices.Sort(rtts)
			if rtts[0] < delay || rtts[len(rtts)/2] > delay+time.Millisecond || rtts[len(rtts)-1] > delay+stallBound {
				t.Errorf("delay %v: measured %v, want none below, median within 1ms", delay, rounds[i].RTTs)
			}
		}
		for n, rtt := range rounds[tReorder].RTTs {
			// Scripted delays are 10 ms apart and the replies come back in reverse
			// order: replies matched to the wrong pings would make one of them at least
			// 10 ms early.
			delay := time.Duration(pings-n) * 10 * time.Millisecond
			if rtt < delay || rtt > delay+stallBound {
				t.Errorf("reordered ping %d: measured %v, want %v (replies attributed to the wrong ping?)", n, rtt, delay)
			}
		}
		if got := rounds[tPlain].Received(); got != pings {
			t.Errorf("plain target received %d of %d", got, pings)
		}

		wantDup := uint64(2 * pings)
		wantForeign := uint64(2 * pings) // corrupt payloads and replies from the wrong source
		if got := st.Duplicate - before.Duplicate; got != wantDup {
			t.Errorf("duplicates counted %d, want %d", got, wantDup)
		}
		if got := st.Foreign - before.Foreign; got != wantForeign {
			t.Errorf("foreign counted %d, want %d", got, wantForeign)
		}
		if got := st.ICMPErrors - before.ICMPErrors; got != pings {
			t.Errorf("ICMP errors counted %d, want %d", got, pings)
		}
		wantReceived := uint64(pings-len(lossPattern)) + 6*pings // loss, 3 delays, duplicate, reorder, plain
		if got := st.Received - before.Received; got != wantReceived {
			t.Errorf("received counted %d, want %d", got, wantReceived)
		}
		wantTimedOut := uint64(len(lossPattern)) + 3*pings // loss, corrupt, wrong source, silent
		if got := st.TimedOut - before.TimedOut; got != wantTimedOut {
			t.Errorf("timed out counted %d, want %d", got, wantTimedOut)
		}
		// Unreachable is answered at once: its round ends after its last send (up to
		// replyPoll later, when replies are read in batches), long before the silent
		// target's last timeout.
		if u, s := finished[tUnreachable], finished[tSilent]; u >= s-200*time.Millisecond {
			t.Errorf("unreachable round took %v, silent one %v: ICMP errors did not end pings early", u, s)
		}
		if t.Failed() {
			t.Logf("stats: %+v", st)
		}
	})
}

// TestManyRoundsSameTarget checks that rounds to one host share nothing: each gets its
// own pings and result.
func TestManyRoundsSameTarget(t *testing.T) {
	pingtest.RequireRoot(t)
	e := runEngine(t, Options{})
	const n = 50
	rounds := make([]*Round, n)
	for i := range rounds {
		rounds[i] = &Round{Target: netip.MustParseAddr("127.0.0.1"), Count: 4, Gap: time.Millisecond, Timeout: time.Second}
	}
	pingAll(t, e, rounds)
	for i, r := range rounds {
		if r.Received() != 4 {
			t.Errorf("round %d: %v", i, r.RTTs)
		}
	}
	if st := e.Stats(); st.Sent != 4*n || st.Received != 4*n || st.Duplicate != 0 {
		t.Errorf("stats %+v, want %d sent and received", st, 4*n)
	}
}

// TestShutdownCompletesRounds stops the engine while rounds still have pings to send and
// checks that it hands back each of them with ErrClosed, so that its caller does not count
// the pings that were never sent as lost, and that a send error from before the stop is
// still reported.
func TestShutdownCompletesRounds(t *testing.T) {
	pingtest.RequireRoot(t)
	tests := []struct {
		name     string
		target   string
		received int   // pings answered before the stop
		sendErr  error // what the first ping's send fails with, or nil
	}{
		{"first ping answered", "127.0.0.1", 1, nil},
		// lo's broadcast address: sendto refuses it with EACCES on a socket without
		// SO_BROADCAST, so nothing is sent at all.
		{"first ping not sent", "127.255.255.255", 0, unix.EACCES},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Options{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ran := make(chan error, 1)
			go func() { ran <- e.Run(ctx) }()

			finished := make(chan struct{})
			r := &Round{
				Target:  netip.MustParseAddr(tt.target),
				Count:   100,
				Gap:     time.Hour, // the second ping is due long after the stop
				Timeout: time.Second,
				Done:    func(*Round) { close(finished) },
			}
			if err := e.Submit(r); err != nil {
				t.Fatalf("Submit: %v", err)
			}
			storetest.WaitFor(t, "answer or send error of the first ping", 5*time.Second, func() bool {
				st := e.Stats()
				return st.Received+st.SendErrors > 0
			})
			cancel()
			if err := <-ran; err != nil {
				t.Fatalf("Run: %v", err)
			}
			<-finished

			if !errors.Is(r.Err, ErrClosed) {
				t.Errorf("Err = %v, want ErrClosed", r.Err)
			}
			if tt.sendErr != nil && !errors.Is(r.Err, tt.sendErr) {
				t.Errorf("Err = %v, want it to keep the send error %v", r.Err, tt.sendErr)
			}
			if got := r.Received(); got != tt.received || r.RTTs[99] != Lost {
				t.Errorf("received %d pings, last %v; want %d, lost", got, r.RTTs[99], tt.received)
			}
			if err := e.Submit(r); !errors.Is(err, ErrClosed) {
				t.Errorf("Submit after shutdown = %v, want ErrClosed", err)
			}
		})
	}
}
