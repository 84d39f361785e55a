package pinger

import (
	"bytes"
	"errors"
	"net/netip"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/pinger/pingtest"
	"pingmachine/store/storetest"
)

// TestReleaseSockets runs an engine under a file limit that leaves room for a few
// sockets beyond the reserve, as in issue 10, where 150 orders with a source address each
// used up the file descriptors of the whole daemon. Opening one source too many must fail
// with an error that names the limit while the other rounds go on; releasing the sources
// must close their sockets (once a round in flight on one has completed with its real
// answers) and end their goroutines; and new sources must work again afterwards.
func TestReleaseSockets(t *testing.T) {
	pingtest.RequireRoot(t)
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		t.Run(mode.String(), func(t *testing.T) {
			e := loopbackEngine(t, mode)
			// The default socket first, as the daemon opens it; it is never released.
			ping(t, e, &Round{Target: netip.MustParseAddr("127.0.0.1"), Count: 1, Timeout: time.Second})
			fds, receivers := openFDs(t), engineReceivers(t)
			const room = 8 // sockets that fit beside the reserve
			limitFiles(t, fds+room)

			sources := func(first int) []netip.Addr {
				addrs := make([]netip.Addr, room)
				for i := range addrs {
					addrs[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(first + i)})
				}
				return addrs
			}
			first := sources(10)
			for _, src := range first {
				ping(t, e, &Round{Target: src, Source: src, Count: 1, Timeout: time.Second})
			}
			tooMany := netip.MustParseAddr("127.0.0.99")
			err := e.Submit(&Round{Target: tooMany, Source: tooMany, Count: 1, Timeout: time.Second,
				Done: func(*Round) { t.Error("Done called for a refused round") }})
			if !errors.Is(err, unix.EMFILE) || !strings.Contains(err.Error(), "RLIMIT_NOFILE") ||
				!strings.Contains(err.Error(), tooMany.String()) {
				t.Errorf("Submit beyond the limit = %v, want an error naming the source and RLIMIT_NOFILE", err)
			}
			// Every other round keeps working, on open sockets.
			ping(t, e, &Round{Target: netip.MustParseAddr("127.0.0.2"), Count: 1, Timeout: time.Second})
			ping(t, e, &Round{Target: first[0], Source: first[0], Count: 1, Timeout: time.Second})

			// A round in flight when its source is released ends as if nothing happened.
			inFlight := &Round{Target: first[0], Source: first[0], Count: 3, Gap: 100 * time.Millisecond, Timeout: time.Second}
			finished := make(chan struct{})
			inFlight.Done = func(*Round) { close(finished) }
			if err := e.Submit(inFlight); err != nil {
				t.Fatalf("Submit: %v", err)
			}
			for _, src := range first {
				e.Release(false, src, "")
			}
			e.Release(false, netip.Addr{}, "") // the default: kept
			<-finished
			if inFlight.Received() != 3 || inFlight.Err != nil {
				t.Errorf("round in flight on a released source: RTTs %v, err %v; want 3 answers", inFlight.RTTs, inFlight.Err)
			}
			storetest.WaitFor(t, "close of the released sockets", 5*time.Second, func() bool { return openFDs(t) == fds })
			storetest.WaitFor(t, "end of their receive goroutines", 5*time.Second, func() bool { return engineReceivers(t) == receivers })
			e.mu.Lock()
			groups, blocks := len(e.groups), 0
			for _, b := range e.blocks {
				if b != nil {
					blocks++
				}
			}
			e.mu.Unlock()
			if groups != 1 || blocks != 1 {
				t.Errorf("%d socket groups and %d slot blocks left, want the default's 1 and 1", groups, blocks)
			}

			// As many new sources as before fit again, and work.
			for _, src := range sources(20) {
				ping(t, e, &Round{Target: src, Source: src, Count: 1, Timeout: time.Second})
				e.Release(false, src, "")
			}
			if st := e.Stats(); st.TimedOut != 0 || st.Foreign != 0 {
				t.Errorf("stats %+v: want nothing lost or foreign", st)
			}
		})
	}
}

// ping runs one round and fails the test unless every ping is answered.
func ping(t *testing.T, e *Engine, r *Round) {
	t.Helper()
	pingAll(t, e, []*Round{r})
	if r.Received() != r.Count || r.Err != nil {
		t.Fatalf("%s from %v: RTTs %v, err %v", r.Target, r.Source, r.RTTs, r.Err)
	}
}

// openFDs counts the test process's open file descriptors.
func openFDs(t *testing.T) uint64 {
	t.Helper()
	n, err := openDescriptors()
	if err != nil {
		t.Fatalf("counting file descriptors: %v", err)
	}
	return n
}

// limitFiles sets the soft RLIMIT_NOFILE so that the engine may open up to free more
// descriptors before it keeps to its reserve, and restores the limit at cleanup.
func limitFiles(t *testing.T, free uint64) {
	t.Helper()
	limit := free + fdReserveMin
	if fdReserve(limit) != fdReserveMin {
		t.Fatalf("%d file descriptors open: too many for a limit the reserve does not grow with", free)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatalf("reading RLIMIT_NOFILE: %v", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatalf("setting RLIMIT_NOFILE to %d: %v", limit, err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
	})
}

// engineReceivers counts the engines' receive goroutines in the process.
func engineReceivers(t *testing.T) int {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		t.Fatalf("listing goroutines: %v", err)
	}
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "pinger.(*Engine).receive(") {
			n++
		}
	}
	return n
}

// TestReleaseClockSocket releases the socket whose goroutine runs the timer wheel, the
// first one opened: another socket must take the wheel over, or, when none is left, the
// next socket opened.
func TestReleaseClockSocket(t *testing.T) {
	pingtest.RequireRoot(t)
	first, second := netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("127.0.0.6")
	tests := []struct {
		name        string
		next        Round // a round on another socket
		releaseSoon bool  // release first before next is submitted, leaving no socket open
	}{
		{"to the default socket", Round{Target: netip.MustParseAddr("127.0.0.1")}, false},
		{"to a later socket", Round{Target: second, Source: second}, true},
	}
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				e := loopbackEngine(t, mode)
				ping(t, e, &Round{Target: first, Source: first, Count: 1, Timeout: time.Second})
				if tt.releaseSoon {
					e.Release(false, first, "")
				}
				r := tt.next
				r.Count, r.Gap, r.Timeout = 5, 50*time.Millisecond, time.Second
				finished := make(chan struct{})
				r.Done = func(*Round) { close(finished) }
				if err := e.Submit(&r); err != nil {
					t.Fatalf("Submit: %v", err)
				}
				if !tt.releaseSoon {
					e.Release(false, first, "") // while r's pings are being sent
				}
				<-finished
				if r.Received() != r.Count || r.Err != nil {
					t.Errorf("RTTs %v, err %v: want every ping answered after the clock moved", r.RTTs, r.Err)
				}
			})
		}
	}
}
