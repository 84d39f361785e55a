package telegraf

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"pingmachine/store/storetest"
)

// listener is a UDP socket on loopback that collects what it receives.
type listener struct {
	conn      *net.UDPConn
	datagrams chan []byte
}

// listen opens a UDP listener on addr ("127.0.0.1:0" or "[::1]:0") and reads
// from it until the test ends. A missing address family fails the test rather than
// skipping it: loopback has both on every machine the tests are meant for.
func listen(t *testing.T, addr string) *listener {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		t.Fatalf("no UDP on %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	// A big buffer so that a burst is not dropped while this test reads.
	if err := conn.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	l := &listener{conn: conn, datagrams: make(chan []byte, 1<<16)}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(l.datagrams)
				return
			}
			l.datagrams <- bytes.Clone(buf[:n])
		}
	}()
	return l
}

// receive collects datagrams until they hold n bytes, failing after a timeout.
func (l *listener) receive(t *testing.T, n int) [][]byte {
	t.Helper()
	var got [][]byte
	total := 0
	timeout := time.After(10 * time.Second)
	for total < n {
		select {
		case d, ok := <-l.datagrams:
			if !ok {
				t.Fatalf("listener closed after %d of %d bytes", total, n)
			}
			got = append(got, d)
			total += len(d)
		case <-timeout:
			t.Fatalf("received %d of %d bytes", total, n)
		}
	}
	return got
}

// testPoint returns the k-th point of a test stream; tag seq makes each unique.
func testPoint(k int) Point {
	return Point{
		Measurement: "tunnel",
		Tags:        map[string]string{"seq": fmt.Sprintf("%05d", k), "host": "a.example"},
		Time:        t0.Add(time.Duration(k) * time.Minute),
		Step:        time.Minute,
		RTTs: []time.Duration{
			time.Duration(k+1) * time.Microsecond,
			-1,
			time.Duration(2*k+1) * time.Microsecond,
			time.Duration(3*k+1) * time.Microsecond,
		},
	}
}

func encode(t *testing.T, p Point) []byte {
	t.Helper()
	b, err := AppendLines(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run starts s.Run and returns a function that cancels it and waits for it.
func run(t *testing.T, s *Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

// checkDatagrams checks that datagrams hold whole lines within MaxDatagram
// and together are exactly want.
func checkDatagrams(t *testing.T, datagrams [][]byte, want []byte) {
	t.Helper()
	for i, d := range datagrams {
		if !bytes.HasSuffix(d, []byte("\n")) {
			t.Errorf("datagram %d ends in a partial line: %q", i, d)
		}
		if len(d) > MaxDatagram && bytes.Count(d, []byte("\n")) != 1 {
			t.Errorf("datagram %d has %d bytes, more than MaxDatagram, and is not one line", i, len(d))
		}
	}
	if got := bytes.Join(datagrams, nil); !bytes.Equal(got, want) {
		t.Errorf("received lines differ from those sent (order or content):\ngot  %d bytes\nwant %d bytes", len(got), len(want))
	}
}

func TestSinkEndToEnd(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			l := listen(t, addr)
			s, err := Dial(l.conn.LocalAddr().String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, s)

			const points, burst = 1000, 50
			var want []byte
			var got [][]byte
			lines := 0
			for k := 0; k < points; k += burst {
				var sent []byte
				for i := k; i < k+burst; i++ {
					b := encode(t, testPoint(i))
					sent = append(sent, b...)
					s.Send(testPoint(i))
				}
				// Reading each burst before sending the next keeps the
				// listener's buffer from overflowing on a busy machine.
				got = append(got, l.receive(t, len(sent))...)
				want = append(want, sent...)
				lines += bytes.Count(sent, []byte("\n"))
			}
			stop()

			for i, d := range got {
				if len(d) > MaxDatagram {
					t.Errorf("datagram %d has %d bytes, more than MaxDatagram", i, len(d))
				}
			}
			checkDatagrams(t, got, want)
			wantStats := Stats{Points: points, Lines: uint64(lines), Datagrams: uint64(len(got))}
			if st := s.Stats(); st != wantStats {
				t.Errorf("Stats() = %+v, want %+v", st, wantStats)
			}
		})
	}
}

// TestSinkPacking queues points before Run starts, so Run sees a full queue and
// must pack datagrams as tightly as whole lines allow.
func TestSinkPacking(t *testing.T) {
	tests := []struct {
		name         string
		cancelBefore bool // Run's ctx is already done: Run must still drain the queue
	}{
		{"packs queued points", false},
		{"drains on cancel", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t, "127.0.0.1:0")
			s, err := Dial(l.conn.LocalAddr().String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for k := range 60 {
				p := testPoint(k)
				if k == 30 {
					// Every line of this point is longer than MaxDatagram.
					p.Tags["long"] = strings.Repeat("x", 2*MaxDatagram)
				}
				want = append(want, encode(t, p)...)
				s.Send(p)
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelBefore {
				cancel()
				if err := s.Run(ctx); err != nil {
					t.Fatalf("Run: %v", err)
				}
			} else {
				defer run(t, s)()
			}
			got := l.receive(t, len(want))

			checkDatagrams(t, got, want)
			for i := 0; i+1 < len(got); i++ {
				first := got[i+1][:bytes.IndexByte(got[i+1], '\n')+1]
				if len(got[i])+len(first) <= MaxDatagram {
					t.Errorf("datagram %d (%d bytes) was sent without the next line (%d bytes), which fit", i, len(got[i]), len(first))
				}
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		address string
		wantErr string
	}{
		{"foo", "missing port"},
		{":8094", "missing host"},
		{"[::1]:notaport", `port "notaport"`},
		{"[::1]:0", `port "0"`},
		{"127.0.0.1:65536", `port "65536"`},
		{"::1:8094", "too many colons"},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			_, err := Dial(tt.address, nil)
			if err == nil {
				t.Fatalf("Dial(%q) succeeded", tt.address)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("%q", tt.address)) || !strings.Contains(msg, tt.wantErr) {
				t.Errorf("Dial(%q) error %q, want it to name the address and say %q", tt.address, msg, tt.wantErr)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	// A port that was just in use on loopback and now has no listener, so
	// sends to it draw ICMP port unreachable, reported as ECONNREFUSED.
	l := listen(t, "127.0.0.1:0")
	addr := l.conn.LocalAddr().String()
	l.conn.Close()

	var logs storetest.LogBuffer
	s, err := Dial(addr, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for k := 0; s.Stats().SendErrors < 3; k++ {
		if time.Now().After(deadline) {
			t.Fatalf("no send errors counted: %+v", s.Stats())
		}
		s.Send(testPoint(k))
		time.Sleep(2 * time.Millisecond)
	}
	stop()

	if n := strings.Count(logs.String(), "sending to telegraf"); n != 1 {
		t.Errorf("send errors logged %d times, want once per minute:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "refused") {
		t.Errorf("log does not mention the refused connection:\n%s", logs.String())
	}
}

func TestQueueFull(t *testing.T) {
	l := listen(t, "127.0.0.1:0")
	var logs storetest.LogBuffer
	s, err := Dial(l.conn.LocalAddr().String(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	const extra = 10
	p := Point{Measurement: "m", Time: t0, Step: time.Minute, RTTs: []time.Duration{time.Millisecond}}
	for range queueLen + extra {
		s.Send(p) // Run is not running, so nothing leaves the queue.
	}
	if st := s.Stats(); st.Points != queueLen || st.Dropped != extra {
		t.Errorf("Stats() = %+v, want %d points and %d dropped", st, queueLen, extra)
	}
	if n := strings.Count(logs.String(), "queue full"); n != 1 {
		t.Errorf("queue full logged %d times, want once per minute:\n%s", n, logs.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.Lines != 2*queueLen {
		t.Errorf("after Run, Stats() = %+v, want the %d queued lines sent", st, 2*queueLen)
	}
	s.Send(p) // must not panic
	if st := s.Stats(); st.Dropped != extra+1 || st.Points != queueLen {
		t.Errorf("Send after Run returned: Stats() = %+v, want %d dropped", st, extra+1)
	}
}

// TestSendDuringShutdown checks that every point Send counted as queued is
// sent, even when Send races with Run's final drain.
func TestSendDuringShutdown(t *testing.T) {
	l := listen(t, "127.0.0.1:0")
	s, err := Dial(l.conn.LocalAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	const senders, each = 4, 500
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for k := range each {
				s.Send(testPoint(g*each + k))
			}
		})
	}
	time.Sleep(time.Millisecond)
	stop()
	wg.Wait()

	st := s.Stats()
	if st.Points+st.Dropped != senders*each {
		t.Errorf("Stats() = %+v: points and dropped do not add up to %d sends", st, senders*each)
	}
	const linesPerPoint = 4 // testPoint: a summary and three received pings
	if st.Lines != linesPerPoint*st.Points || st.SendErrors != 0 {
		t.Errorf("Stats() = %+v: not every queued point was sent", st)
	}
}
