package tcpping

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/pinger/tcpping/tcptest"
)

// startEngine runs an engine until the test ends; in, if set, runs Run (in a network
// namespace's Do, so that every socket is opened there).
func startEngine(t *testing.T, opts Options, in func(func() error) error) *Engine {
	t.Helper()
	e := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		run := func() error { return e.Run(ctx) }
		if in != nil {
			done <- in(run)
			return
		}
		done <- run()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

// measure submits r and waits for its Done.
func measure(t *testing.T, e *Engine, r *Round) *Round {
	t.Helper()
	ch := make(chan *Round, 1)
	r.Done = func(r *Round) { ch <- r }
	if err := e.Submit(r); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Duration(r.Count)*r.Gap + r.Timeout + 10*time.Second):
		t.Fatal("round not done")
		return nil
	}
}

// listen accepts on a loopback address until the test ends, writing greeting to every
// connection it accepts (nothing if empty).
func listen(t *testing.T, network, addr, greeting string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if greeting != "" {
				c.Write([]byte(greeting))
			}
			// Read until the client's RST, so that the greeting is not cut off.
			wg.Go(func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				bufio.NewReader(c).ReadString(0)
			})
		}
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func answered(rtts []time.Duration) int {
	n := 0
	for _, d := range rtts {
		if d != Lost {
			n++
		}
	}
	return n
}

// TestLoopback runs rounds against real listeners, a closed port and a real sshd on
// loopback, and checks which pings count.
func TestLoopback(t *testing.T) {
	plain := listen(t, "tcp4", "127.0.0.1:0", "")
	plain6 := listen(t, "tcp6", "[::1]:0", "")
	http := listen(t, "tcp4", "127.0.0.1:0", "HTTP/1.0 400 Bad Request\r\n\r\n")
	lines := listen(t, "tcp4", "127.0.0.1:0", "hello\r\nSSH is not here\r\nSSH-2.0-test\r\n")
	split := listen(t, "tcp4", "127.0.0.1:0", "S")
	long := listen(t, "tcp4", "127.0.0.1:0", strings.Repeat("x", maxBannerBytes+10)+"\nSSH-2.0-late\n")
	sshd := tcptest.StartSSHD(t)
	closed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tcptest.FreePort(t))
	e := startEngine(t, Options{}, nil)

	tests := []struct {
		name     string
		r        Round
		answered int
		stat     func(Stats) uint64
	}{
		{"listener", Round{Target: plain}, 5, func(s Stats) uint64 { return s.Answered }},
		{"listener IPv6", Round{Target: plain6}, 5, nil},
		{"from a source address", Round{Target: plain, Source: netip.MustParseAddr("127.0.0.2")}, 5, nil},
		{"on an interface", Round{Target: plain, Interface: "lo"}, 5, nil},
		{"refused is lost", Round{Target: closed}, 0, func(s Stats) uint64 { return s.Refused }},
		{"refused is an answer", Round{Target: closed, RefusedIsAnswer: true}, 5, nil},
		{"sshd", Round{Target: sshd, Banner: "SSH-"}, 5, nil},
		{"sshd as a plain port", Round{Target: sshd}, 5, nil},
		{"banner after other lines", Round{Target: lines, Banner: "SSH-"}, 5, nil},
		{"not SSH", Round{Target: http, Banner: "SSH-"}, 0, func(s Stats) uint64 { return s.TimedOut }},
		{"silent server", Round{Target: plain, Banner: "SSH-"}, 0, func(s Stats) uint64 { return s.TimedOut }},
		{"half a banner", Round{Target: split, Banner: "SSH-"}, 0, nil},
		{"banner too late in the stream", Round{Target: long, Banner: "SSH-"}, 0, func(s Stats) uint64 { return s.NotBanner }},
		{"closed port with a banner", Round{Target: closed, Banner: "SSH-", RefusedIsAnswer: true}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.Stats()
			r := tc.r
			r.Count, r.Gap, r.Timeout = 5, 20*time.Millisecond, 300*time.Millisecond
			measure(t, e, &r)
			if got := answered(r.RTTs); got != tc.answered {
				t.Fatalf("answered %d of 5, want %d: %v (err %v)", got, tc.answered, r.RTTs, r.Err)
			}
			if r.Err != nil {
				t.Errorf("Err = %v, want nil", r.Err)
			}
			for _, d := range r.RTTs {
				if d != Lost && (d <= 0 || d > 100*time.Millisecond) {
					t.Errorf("RTT %v on loopback", d)
				}
			}
			if tc.stat != nil {
				if d := tc.stat(e.Stats()) - tc.stat(before); d != 5 {
					t.Errorf("counter grew by %d, want 5", d)
				}
			}
		})
	}
	if t.Failed() {
		return
	}
	// Every socket has been closed: none is left in the process but the engine's own.
	var fds int
	for fd := range 4096 {
		if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err == nil {
			if proto, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); proto == unix.IPPROTO_TCP {
				if sa, err := unix.Getpeername(fd); err == nil && sa != nil {
					if p, ok := sa.(*unix.SockaddrInet4); ok && p.Port == int(plain.Port()) {
						fds++
					}
				}
			}
		}
	}
	if fds > 0 {
		t.Errorf("%d sockets connected to the listener are still open", fds)
	}
}

// TestScripted runs rounds against a namespace host that answers, delays, refuses and
// drops SYNs as scripted: the loss is exact, and the RTTs match the delays to 1 ms.
func TestScripted(t *testing.T) {
	delays := []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 0, 50 * time.Millisecond}
	resp := tcptest.StartResponder(t, func(dst netip.AddrPort, n int) tcptest.Action {
		switch dst.Addr() {
		case tcptest.Target(0):
			return tcptest.Action{Delay: delays[n%len(delays)]}
		case tcptest.Target(1):
			return tcptest.Action{Drop: true}
		case tcptest.Target(2):
			return tcptest.Action{Drop: n%2 == 1}
		case tcptest.Target(3):
			return tcptest.Action{Refuse: true, Delay: 10 * time.Millisecond}
		case tcptest.Target(4):
			return tcptest.Action{Delay: 250 * time.Millisecond}
		}
		return tcptest.Action{Drop: true}
	})
	e := startEngine(t, Options{}, resp.Namespace().Do)
	port := uint16(22)
	at := func(i int) netip.AddrPort { return netip.AddrPortFrom(tcptest.Target(i), port) }
	lost := Lost
	tests := []struct {
		name    string
		r       Round
		want    []time.Duration // Lost, or the scripted delay (0: answered)
		timeout uint64          // pings that timed out
		// slack is how much the RTT may exceed the delay applied: a SYN-ACK is timed by
		// the kernel (TCP_INFO), a refusal only when the engine sees it, which a loaded
		// machine delays.
		slack time.Duration
	}{
		{"delays", Round{Target: at(0)}, delays, 0, time.Millisecond},
		{"all dropped", Round{Target: at(1)}, []time.Duration{lost, lost, lost, lost, lost}, 5, 0},
		{"every other dropped", Round{Target: at(2)}, []time.Duration{0, lost, 0, lost, 0}, 2, time.Millisecond},
		{"refused", Round{Target: at(3)}, []time.Duration{lost, lost, lost, lost, lost}, 0, 0},
		{"refused is an answer", Round{Target: at(3), RefusedIsAnswer: true}, []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}, 0, 5 * time.Millisecond},
		{"answers after the timeout", Round{Target: at(4)}, []time.Duration{lost, lost, lost, lost, lost}, 5, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.Stats()
			from := len(resp.Answers())
			r := tc.r
			r.Count, r.Gap, r.Timeout = len(tc.want), 100*time.Millisecond, 200*time.Millisecond
			measure(t, e, &r)
			if r.Err != nil {
				t.Errorf("Err = %v", r.Err)
			}
			if got := e.Stats().TimedOut - before.TimedOut; got != tc.timeout {
				t.Errorf("%d pings timed out, want %d", got, tc.timeout)
			}
			answers := resp.Answers()[from:]
			for i, want := range tc.want {
				got := r.RTTs[i]
				if (want == Lost) != (got == Lost) {
					t.Errorf("ping %d: RTT %v, want %v", i, got, want)
					continue
				}
				if got == Lost {
					continue
				}
				if len(answers) == 0 {
					t.Fatalf("ping %d answered but the responder wrote nothing", i)
				}
				a := answers[0]
				answers = answers[1:]
				// The delay the responder really applied, which the RTT must match.
				applied := a.Written.Sub(a.Arrived)
				if applied < want {
					t.Errorf("ping %d: responder delayed %v, less than the %v scripted", i, applied, want)
				}
				if diff := got - applied; diff < 0 || diff > tc.slack {
					t.Errorf("ping %d: RTT %v, the responder's delay %v: off by %v, want 0 to %v", i, got, applied, diff, tc.slack)
				}
			}
		})
	}
	if got := resp.Attempts(at(1)); got != 5 {
		t.Errorf("%d connection attempts to the dropping host, want 5", got)
	}
}

// TestFailures checks the pings that cannot be sent: each is lost, and the round's Err
// says why.
func TestFailures(t *testing.T) {
	resp := tcptest.StartResponder(t, func(netip.AddrPort, int) tcptest.Action { return tcptest.Action{Drop: true} })
	target := netip.AddrPortFrom(tcptest.Target(0), 80)
	tests := []struct {
		name    string
		opts    Options
		r       Round
		lost    int
		errText string
	}{
		{"source address not local", Options{}, Round{Target: target, Source: netip.MustParseAddr("198.51.100.200")}, 3, "binding to source 198.51.100.200"},
		{"no such interface", Options{}, Round{Target: target, Interface: "nosuch0"}, 3, "binding to interface nosuch0"},
		{"no route", Options{}, Round{Target: netip.MustParseAddrPort("[2001:db8::1]:80")}, 3, "connecting to [2001:db8::1]:80"},
		{"too many in flight", Options{MaxInFlight: 2}, Round{Target: target}, 3, "2 connects in flight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEngine(t, tc.opts, resp.Namespace().Do)
			r := tc.r
			r.Count, r.Gap, r.Timeout = 3, 0, 200*time.Millisecond
			measure(t, e, &r)
			if got := 3 - answered(r.RTTs); got != tc.lost {
				t.Errorf("%d lost, want %d", got, tc.lost)
			}
			if r.Err == nil || !strings.Contains(r.Err.Error(), tc.errText) {
				t.Errorf("Err = %v, want one saying %q", r.Err, tc.errText)
			}
		})
	}
}

// TestSubmitChecks checks that bad rounds are refused with a reason.
func TestSubmitChecks(t *testing.T) {
	e := New(Options{})
	ok := Round{Target: netip.MustParseAddrPort("127.0.0.1:22"), Count: 1, Timeout: time.Second, Done: func(*Round) {}}
	tests := []struct {
		name   string
		change func(*Round)
		want   string
	}{
		{"no target", func(r *Round) { r.Target = netip.AddrPort{} }, "no target"},
		{"unspecified", func(r *Round) { r.Target = netip.MustParseAddrPort("0.0.0.0:22") }, "not a unicast"},
		{"multicast", func(r *Round) { r.Target = netip.MustParseAddrPort("[ff02::1]:22") }, "not a unicast"},
		{"port 0", func(r *Round) { r.Target = netip.MustParseAddrPort("127.0.0.1:0") }, "port 0"},
		{"no pings", func(r *Round) { r.Count = 0 }, "count 0"},
		{"negative gap", func(r *Round) { r.Gap = -1 }, "negative gap"},
		{"no timeout", func(r *Round) { r.Timeout = 0 }, "timeout"},
		{"families", func(r *Round) { r.Source = netip.MustParseAddr("::1") }, "different address families"},
		{"long banner", func(r *Round) { r.Banner = strings.Repeat("S", 65) }, "banner"},
		{"no Done", func(r *Round) { r.Done = nil }, "no Done"},
		{"unknown zone", func(r *Round) { r.Target = netip.MustParseAddrPort("[fe80::1%nosuch0]:22") }, "nosuch0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.change(&r)
			if err := e.Submit(&r); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Submit = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestStop checks that a stop ends the rounds in flight with ErrClosed, and that Submit
// refuses rounds afterwards.
func TestStop(t *testing.T) {
	resp := tcptest.StartResponder(t, func(netip.AddrPort, int) tcptest.Action { return tcptest.Action{Drop: true} })
	e := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- resp.Namespace().Do(func() error { return e.Run(ctx) }) }()
	ch := make(chan *Round, 1)
	r := &Round{Target: netip.AddrPortFrom(tcptest.Target(0), 80), Count: 3, Gap: 50 * time.Millisecond, Timeout: 5 * time.Second,
		Done: func(r *Round) { ch <- r }}
	if err := e.Submit(r); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("round not ended by the stop")
	}
	if !errors.Is(r.Err, ErrClosed) || answered(r.RTTs) != 0 {
		t.Errorf("Err %v, RTTs %v: want ErrClosed and no answer", r.Err, r.RTTs)
	}
	if err := e.Submit(r); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after the stop = %v, want ErrClosed", err)
	}
	if err := e.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}
