package dnsping

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"pingmachine/pinger/dnsping/dnstest"
)

// start runs e until the test ends.
func start(t testing.TB, e *Engine) *Engine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return e
}

// run submits r and waits for it.
func run(t testing.TB, e *Engine, r *Round) {
	t.Helper()
	done := make(chan struct{})
	r.Done = func(*Round) { close(done) }
	if err := e.Submit(r); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("round not done after 10 s")
	}
}

// silentUDP is a UDP port with a socket that reads nothing: queries to it go
// unanswered, without an ICMP error.
func silentUDP(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// silentTCP is a port that accepts connections and never answers on them.
func silentTCP(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// closedPort is a port of 127.0.0.1 with nothing on it: UDP gets an ICMP port
// unreachable, TCP a reset.
func closedPort(t testing.TB) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dnstest.FreePort(t))
}

// TestRounds runs rounds against the real dnsmasq, scripted servers and ports that do
// not answer, over UDP and TCP, and checks each query's fate and the counters.
func TestRounds(t *testing.T) {
	dnsmasq := dnstest.StartDNSMasq(t)
	stopped := dnstest.StartStoppedDNSMasq(t)
	servfail := dnstest.StartServer(t, 0, dnstest.Answer(dns.RcodeServerFailure)).Addr
	refused := dnstest.StartServer(t, 0, dnstest.Answer(dns.RcodeRefused)).Addr
	// Answers first with another id, then with another question, then right: only the
	// last matches.
	tricky := dnstest.StartServer(t, 0, func(q *dns.Msg) []*dns.Msg {
		wrongID := dnstest.Answer(dns.RcodeSuccess)(q)[0]
		wrongID.Id++
		other := q.Copy()
		other.Question[0].Name = "other.test."
		wrongQ := dnstest.Answer(dns.RcodeSuccess)(other)[0]
		wrongQ.Id = q.Id
		notResponse := dnstest.Answer(dns.RcodeSuccess)(q)[0]
		notResponse.Response = false
		return []*dns.Msg{wrongID, wrongQ, notResponse, dnstest.Answer(dns.RcodeSuccess)(q)[0]}
	}).Addr
	ipv6 := dnstest.StartServerAt(t, netip.MustParseAddr("::1"), 0, dnstest.Answer(dns.RcodeSuccess)).Addr
	const delay = 40 * time.Millisecond
	slow := dnstest.StartServer(t, delay, dnstest.Answer(dns.RcodeSuccess)).Addr

	type want struct {
		received int
		stats    Stats // the counters checked: those set here, and Received, TimedOut
		minRTT   time.Duration
		maxRTT   time.Duration
		// tcpMismatched is Mismatched over TCP, when it differs: there an answer with
		// another id comes on the query's own connection.
		tcpMismatched uint64
	}
	const count = 3
	tests := []struct {
		name   string
		server netip.AddrPort
		tcp    []bool // the protocols this case runs with
		qname  string
		qtype  uint16
		fail   []int
		want   want
	}{
		{"dnsmasq answers", dnsmasq, []bool{false, true}, dnstest.OK, dns.TypeA, nil,
			want{received: count, stats: Stats{Received: count}}},
		{"dnsmasq NXDOMAIN is an answer", dnsmasq, []bool{false, true}, "host." + dnstest.NX, dns.TypeA, nil,
			want{received: count, stats: Stats{Received: count}}},
		{"dnsmasq NXDOMAIN listed as failure", dnsmasq, []bool{false, true}, "host." + dnstest.NX, dns.TypeAAAA, []int{dns.RcodeNameError},
			want{received: 0, stats: Stats{Failed: count}}},
		{"dnsmasq REFUSED is lost", dnsmasq, []bool{false, true}, "elsewhere.example", dns.TypeA, nil,
			want{received: 0, stats: Stats{Failed: count}}},
		{"IPv6", ipv6, []bool{false, true}, dnstest.OK, dns.TypeAAAA, nil,
			want{received: count, stats: Stats{Received: count}}},
		{"SERVFAIL is lost", servfail, []bool{false, true}, dnstest.OK, dns.TypeA, nil,
			want{received: 0, stats: Stats{Failed: count}}},
		{"SERVFAIL with no failure codes is an answer", servfail, []bool{false, true}, dnstest.OK, dns.TypeA, []int{},
			want{received: count, stats: Stats{Received: count}}},
		{"REFUSED is lost", refused, []bool{false, true}, dnstest.OK, dns.TypeMX, nil,
			want{received: 0, stats: Stats{Failed: count}}},
		{"mismatched answers are ignored", tricky, []bool{false, true}, dnstest.OK, dns.TypeA, nil,
			want{received: count, stats: Stats{Received: count, Mismatched: 2 * count}, tcpMismatched: 3 * count}},
		{"delayed answers", slow, []bool{false, true}, dnstest.OK, dns.TypeA, nil,
			want{received: count, stats: Stats{Received: count}, minRTT: delay, maxRTT: delay + 15*time.Millisecond}},
		{"stopped dnsmasq times out", stopped, []bool{false, true}, dnstest.OK, dns.TypeA, nil,
			want{received: 0, stats: Stats{TimedOut: count}}},
		{"silent UDP port times out", silentUDP(t), []bool{false}, dnstest.OK, dns.TypeA, nil,
			want{received: 0, stats: Stats{TimedOut: count}}},
		{"closed UDP port times out", closedPort(t), []bool{false}, dnstest.OK, dns.TypeA, nil,
			want{received: 0, stats: Stats{TimedOut: count}}},
		{"silent TCP server times out", silentTCP(t), []bool{true}, dnstest.OK, dns.TypeA, nil,
			want{received: 0, stats: Stats{TimedOut: count}}},
		{"refused TCP connection is lost", closedPort(t), []bool{true}, dnstest.OK, dns.TypeA, nil,
			want{received: 0, stats: Stats{ConnFailed: count}}},
	}
	for _, tc := range tests {
		for _, tcp := range tc.tcp {
			name := tc.name + "/udp"
			if tcp {
				name = tc.name + "/tcp"
			}
			t.Run(name, func(t *testing.T) {
				e := start(t, New(Options{}))
				r := &Round{Server: tc.server, TCP: tcp, Name: tc.qname, Type: tc.qtype, FailRcodes: tc.fail,
					Count: count, Gap: 20 * time.Millisecond, Timeout: 300 * time.Millisecond}
				began := time.Now()
				run(t, e, r)
				took := time.Since(began)
				if r.Err != nil {
					t.Errorf("Err = %v", r.Err)
				}
				if got := r.Received(); got != tc.want.received {
					t.Errorf("received %d of %d, want %d: %v", got, count, tc.want.received, r.RTTs)
				}
				for _, rtt := range r.RTTs {
					if rtt == Lost {
						continue
					}
					if rtt <= 0 || rtt < tc.want.minRTT || tc.want.maxRTT > 0 && rtt > tc.want.maxRTT {
						t.Errorf("RTT %v, want between %v and %v", rtt, tc.want.minRTT, tc.want.maxRTT)
					}
				}
				// A round ends when its last query is answered or timed out: no later.
				if limit := 2*r.Gap + r.Timeout + grace + 200*time.Millisecond; took > limit {
					t.Errorf("round took %v, more than %v", took, limit)
				}
				s := e.Stats()
				w := tc.want.stats
				if tcp && tc.want.tcpMismatched != 0 {
					w.Mismatched = tc.want.tcpMismatched
				}
				got := Stats{Received: s.Received, Failed: s.Failed, TimedOut: s.TimedOut,
					ConnFailed: s.ConnFailed, Mismatched: s.Mismatched}
				if got != w {
					t.Errorf("stats %+v, want %+v", got, w)
				}
				if s.SendErrors != 0 || s.Late != 0 {
					t.Errorf("send errors %d, late %d, want none", s.SendErrors, s.Late)
				}
				if tcp && s.ConnFailed == 0 && s.Sent != count {
					t.Errorf("sent %d over TCP, want %d", s.Sent, count)
				}
				if !tcp && s.Sent != count {
					t.Errorf("sent %d, want %d", s.Sent, count)
				}
			})
		}
	}
}

// TestWrongIDCountsForeign: an answer with an id no query has is foreign, and the query
// still gets its own answer.
func TestWrongIDCountsForeign(t *testing.T) {
	srv := dnstest.StartServer(t, 0, func(q *dns.Msg) []*dns.Msg {
		wrong := dnstest.Answer(dns.RcodeSuccess)(q)[0]
		wrong.Id++
		return []*dns.Msg{wrong, dnstest.Answer(dns.RcodeSuccess)(q)[0]}
	})
	e := start(t, New(Options{Sockets: 1}))
	r := &Round{Server: srv.Addr, Name: dnstest.OK, Type: dns.TypeA, Count: 2, Gap: 10 * time.Millisecond, Timeout: time.Second}
	run(t, e, r)
	if r.Received() != 2 {
		t.Errorf("RTTs %v, want 2 answers", r.RTTs)
	}
	if s := e.Stats(); s.Foreign != 2 {
		t.Errorf("foreign %d, want 2", s.Foreign)
	}
}

// TestLateAnswer: an answer after the timeout is late and not an RTT.
func TestLateAnswer(t *testing.T) {
	srv := dnstest.StartServer(t, 150*time.Millisecond, dnstest.Answer(dns.RcodeSuccess))
	e := start(t, New(Options{}))
	r := &Round{Server: srv.Addr, Name: dnstest.OK, Type: dns.TypeA, Count: 1, Timeout: 50 * time.Millisecond}
	run(t, e, r)
	if r.Received() != 0 {
		t.Errorf("RTTs %v, want the query lost", r.RTTs)
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.Stats().Late != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := e.Stats(); s.Late != 1 || s.TimedOut != 1 {
		t.Errorf("late %d, timed out %d, want 1 and 1", s.Late, s.TimedOut)
	}
}

// TestTCPBound: with one TCP query allowed in flight, the others wait for it; a query
// that waits past its timeout is lost, without a connection.
func TestTCPBound(t *testing.T) {
	const delay = 100 * time.Millisecond
	srv := dnstest.StartServer(t, delay, dnstest.Answer(dns.RcodeSuccess))
	e := start(t, New(Options{MaxTCP: 1}))
	var wg sync.WaitGroup
	rounds := make([]*Round, 3)
	for i := range rounds {
		rounds[i] = &Round{Server: srv.Addr, TCP: true, Name: dnstest.OK, Type: dns.TypeA, Count: 1,
			Timeout: 250 * time.Millisecond, Done: func(*Round) { wg.Done() }}
		wg.Add(1)
		if err := e.Submit(rounds[i]); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	// The first is answered after 100 ms, the second starts then and is answered at
	// 200 ms; the third would start at 200 ms and needs until 300 ms, past its 250 ms.
	got := 0
	for _, r := range rounds {
		got += r.Received()
	}
	if got != 2 {
		t.Errorf("answered %d of 3, want 2", got)
	}
	if s := e.Stats(); s.Queued != 2 || srv.Queries() < 2 {
		t.Errorf("queued %d, server saw %d queries; want 2 queued and at least 2 queries", s.Queued, srv.Queries())
	}
}

// TestSource: queries go out from the round's source address, over UDP and TCP.
func TestSource(t *testing.T) {
	srv := dnstest.StartServer(t, 0, dnstest.Answer(dns.RcodeSuccess))
	e := start(t, New(Options{}))
	source := netip.MustParseAddr("127.0.0.2")
	for _, tcp := range []bool{false, true} {
		r := &Round{Server: srv.Addr, Source: source, TCP: tcp, Name: dnstest.OK, Type: dns.TypeA, Count: 2,
			Gap: 10 * time.Millisecond, Timeout: time.Second}
		run(t, e, r)
		if r.Received() != 2 {
			t.Errorf("tcp %v: RTTs %v, want 2 answers", tcp, r.RTTs)
		}
	}
	if got := srv.Clients(); len(got) != 4 || slices.ContainsFunc(got, func(a netip.Addr) bool { return a != source }) {
		t.Errorf("the server saw queries from %v, want 4 from %v", got, source)
	}
}

// TestTCPNoTimeWait: TCP queries leave no connection in TIME_WAIT, which at a few
// hundred queries a second would take every local port.
func TestTCPNoTimeWait(t *testing.T) {
	srv := dnstest.StartServer(t, 0, dnstest.Answer(dns.RcodeSuccess))
	e := start(t, New(Options{}))
	r := &Round{Server: srv.Addr, TCP: true, Name: dnstest.OK, Type: dns.TypeA, Count: 5, Gap: 10 * time.Millisecond, Timeout: time.Second}
	run(t, e, r)
	if r.Received() != 5 {
		t.Fatalf("RTTs %v, want 5 answers", r.RTTs)
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	// Columns: sl local_address rem_address st ...; TIME_WAIT is state 06.
	port := fmt.Sprintf(":%04X", srv.Addr.Port())
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == "06" && (strings.HasSuffix(f[1], port) || strings.HasSuffix(f[2], port)) {
			t.Errorf("a connection in TIME_WAIT: %s", line)
		}
	}
}

// TestIDsRunOut: with every id of a socket in flight to one server, a query cannot be
// sent: it is lost, counted, and the round says why.
func TestIDsRunOut(t *testing.T) {
	e := start(t, New(Options{Sockets: 1}))
	r := &Round{Server: silentUDP(t), Name: dnstest.OK, Type: dns.TypeA, Count: MaxCount, Timeout: 500 * time.Millisecond}
	run(t, e, r)
	s := e.Stats()
	if r.Received() != 0 || s.SendErrors == 0 || s.Sent+s.SendErrors != MaxCount || s.Sent > 1<<16 {
		t.Errorf("sent %d, send errors %d of %d queries, want some that found no id", s.Sent, s.SendErrors, MaxCount)
	}
	if r.Err == nil || !strings.Contains(r.Err.Error(), "no free query id") {
		t.Errorf("Err = %v, want no free query id", r.Err)
	}
}

// TestSubmitErrors: rounds the engine refuses, and each reason named.
func TestSubmitErrors(t *testing.T) {
	server := netip.MustParseAddrPort("127.0.0.1:53")
	done := func(*Round) {}
	tests := []struct {
		name string
		r    Round
		want string
	}{
		{"no server", Round{Name: "a.test", Type: dns.TypeA, Count: 1, Timeout: time.Second, Done: done}, "want an address and a port"},
		{"port 0", Round{Server: netip.MustParseAddrPort("127.0.0.1:0"), Name: "a.test", Type: dns.TypeA, Count: 1, Timeout: time.Second, Done: done}, "want an address and a port"},
		{"source of the other family", Round{Server: server, Source: netip.MustParseAddr("::1"), Name: "a.test", Type: dns.TypeA, Count: 1, Timeout: time.Second, Done: done}, "address family"},
		{"no count", Round{Server: server, Name: "a.test", Type: dns.TypeA, Timeout: time.Second, Done: done}, "count 0"},
		{"no timeout", Round{Server: server, Name: "a.test", Type: dns.TypeA, Count: 1, Done: done}, "positive timeout"},
		{"no type", Round{Server: server, Name: "a.test", Count: 1, Timeout: time.Second, Done: done}, "no query type"},
		{"no Done", Round{Server: server, Name: "a.test", Type: dns.TypeA, Count: 1, Timeout: time.Second}, "without Done"},
		{"bad name", Round{Server: server, Name: "a..test", Type: dns.TypeA, Count: 1, Timeout: time.Second, Done: done}, "not a domain name"},
		{"source not here", Round{Server: server, Source: netip.MustParseAddr("127.0.0.1"), Name: "a.test", Type: dns.TypeA, Count: 1, Timeout: time.Second, Done: done}, ""},
	}
	e := New(Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Submit(&tc.r)
			if tc.want == "" {
				if err != nil {
					t.Errorf("Submit = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Submit = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestUnusableSource: a source address that is not the machine's cannot be bound.
func TestUnusableSource(t *testing.T) {
	e := New(Options{})
	r := &Round{Server: netip.MustParseAddrPort("127.0.0.1:53"), Source: netip.MustParseAddr("::2"),
		Name: "a.test", Type: dns.TypeA, Count: 1, Timeout: time.Second, Done: func(*Round) {}}
	r.Server = netip.MustParseAddrPort("[::1]:53")
	err := e.Submit(r)
	if err == nil || !strings.Contains(err.Error(), "opening a UDP socket for IPv6 from ::2") {
		t.Errorf("Submit = %v, want an error naming the socket", err)
	}
}

// TestDescriptorLimit: the engine opens no UDP sockets that would leave the process
// short of file descriptors, and says why.
func TestDescriptorLimit(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 70, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
	e := New(Options{Sockets: 16})
	if e.maxTCP != 70/8 {
		t.Errorf("maxTCP %d under a limit of 70, want %d", e.maxTCP, 70/8)
	}
	r := &Round{Server: netip.MustParseAddrPort("127.0.0.1:53"), Name: "a.test", Type: dns.TypeA, Count: 1,
		Timeout: time.Second, Done: func(*Round) {}}
	err := e.Submit(r)
	if !errors.Is(err, unix.EMFILE) || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Errorf("Submit = %v, want EMFILE naming RLIMIT_NOFILE", err)
	}
}

// TestStop: rounds under way when the engine stops end with ErrClosed, and Submit then
// refuses.
func TestStop(t *testing.T) {
	e := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	done := make(chan *Round, 2)
	for _, tcp := range []bool{false, true} {
		server := silentUDP(t)
		if tcp {
			server = silentTCP(t)
		}
		r := &Round{Server: server, TCP: tcp, Name: dnstest.OK, Type: dns.TypeA, Count: 5, Gap: time.Second,
			Timeout: 5 * time.Second, Done: func(r *Round) { done <- r }}
		if err := e.Submit(r); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run = %v", err)
	}
	for range 2 {
		select {
		case r := <-done:
			if !errors.Is(r.Err, ErrClosed) {
				t.Errorf("Err = %v, want ErrClosed", r.Err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a round was not ended by the stop")
		}
	}
	r := &Round{Server: silentUDP(t), Name: dnstest.OK, Type: dns.TypeA, Count: 1, Timeout: time.Second, Done: func(*Round) {}}
	if err := e.Submit(r); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after the stop = %v, want ErrClosed", err)
	}
	if err := e.Run(context.Background()); err == nil {
		t.Error("a second Run = nil, want an error")
	}
}
