package tcpping

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// limitFiles sets the soft RLIMIT_NOFILE to cur, and restores it when the test ends.
func limitFiles(t *testing.T, cur uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: cur, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
	})
}

// openFiles counts the process's open file descriptors.
func openFiles(t *testing.T) uint64 {
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return uint64(len(names) - 1) // not the directory ReadDir had open
}

// TestDescriptorLimit: the connects in flight leave a quarter of the file descriptors,
// and at least 64, to the rest of the process; the pings beyond are lost with a reason.
func TestDescriptorLimit(t *testing.T) {
	limitFiles(t, openFiles(t)+fdReserveMin+3)
	l := listen(t, "tcp4", "127.0.0.1:0", "") // the listener's own descriptor: 2 are left
	e := startEngine(t, Options{}, nil)
	// A server that never sends: the ssh pings stay in flight until their timeout.
	r := measure(t, e, &Round{Target: l, Banner: "SSH-", Count: 4, Timeout: 300 * time.Millisecond})
	if r.Err == nil || !strings.Contains(r.Err.Error(), "connects in flight, the most allowed") {
		t.Errorf("Err = %v, want one about the connects in flight", r.Err)
	}
	if got := e.Stats().Connects; got >= 4 {
		t.Errorf("%d connects, want fewer than the 4 pings", got)
	}
}

// TestRunFails: when Run cannot start (no descriptor for its epoll), it says why and
// ends the rounds submitted with ErrClosed.
func TestRunFails(t *testing.T) {
	e := New(Options{})
	ch := make(chan *Round, 1)
	r := &Round{Target: netip.MustParseAddrPort("127.0.0.1:1"), Count: 1, Timeout: time.Second, Done: func(r *Round) { ch <- r }}
	if err := e.Submit(r); err != nil {
		t.Fatal(err)
	}
	// Descriptors 0 to 2 are taken: no new one is below the limit.
	limitFiles(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Run(ctx); err == nil || !strings.Contains(err.Error(), "tcpping: epoll") {
		t.Errorf("Run = %v, want an epoll error", err)
	}
	select {
	case r := <-ch:
		if !errors.Is(r.Err, ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", r.Err)
		}
	default:
		t.Error("the round was not ended")
	}
	if err := e.Submit(r); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after a failed Run = %v, want ErrClosed", err)
	}
}
