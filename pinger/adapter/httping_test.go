package adapter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var _ Tool = (*HTTPing)(nil)

// hms is a Duration of f milliseconds, as httping prints them (two decimals).
func hms(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Millisecond))) }

// Outputs of the real httping 2.5 (Debian), captured with the Argv options (-s unless
// noted) against servers on 127.0.0.1; see the comment in httping.go.
const (
	// 18185 answered in turn: 200, closed at once, never, "503 Busy".
	httpingOutMixed = `PING 127.0.0.1:18185 (/):
connected to 127.0.0.1:18185 (42 bytes), seq=0 time=  0.31 ms 200 OK
short read during receiving reply-headers from host
timeout while receiving reply-headers from host
connected to 127.0.0.1:18185 (25 bytes), seq=3 time=  0.37 ms 503 Busy
connected to 127.0.0.1:18185 (42 bytes), seq=4 time=  0.38 ms 200 OK
short read during receiving reply-headers from host
timeout while receiving reply-headers from host
connected to 127.0.0.1:18185 (25 bytes), seq=7 time=  0.39 ms 503 Busy
--- http://127.0.0.1:18185/ ping statistics ---
8 connects, 2 ok, 75.00% failed, time 1805ms
round-trip min/avg/max = 0.3/0.4/0.4 ms
`
	// The same server under LC_ALL=nl_NL.UTF-8 and ru_RU.UTF-8: words and decimal
	// point translated.
	httpingOutNL = `PING 127.0.0.1:18185 (/):
verbinden met 127.0.0.1:18185 (42 bytes), volgnr=0 tijd=  0,37 ms 200 OK
ontvangprobleem bij metadata van systeem
geen reactie bij ontvangen metadata van systeem
verbinden met 127.0.0.1:18185 (25 bytes), volgnr=3 tijd=  0,30 ms 503 Busy
--- http://127.0.0.1:18185/ ping statistieken ---
4 verbindingen, 1 ok, 75,00% mislukt, tijd 302ms
retour min/gem/max = 0,3/0,3/0,4 ms
`
	httpingOutRU = `PING 127.0.0.1:18185 (/):
подключено к 127.0.0.1:18185 (42 bytes), поряд.н.=0 время=  0,45 мс 200 OK
короткое чтение во время получения заголовков ответа от хоста
тайм-аут при получении заголовков ответа от хоста
подключено к 127.0.0.1:18185 (25 bytes), поряд.н.=3 время=  0,32 мс 503 Busy
--- http://127.0.0.1:18185/ статистика пинга ---
4 подключений, 1 ok, 75,00% неудавшихся, время 302мс
туда-сюда мин/сред/макс = 0,3/0,4/0,5 ms
`
	// A handler sleeping 300 ms, under LC_ALL=de_DE.UTF-8 (decimal comma only).
	httpingOutDE = `PING 127.0.0.1:18181 (/slow):
connected to 127.0.0.1:18181 (60 bytes), seq=0 time=301,09 ms 200 OK
connected to 127.0.0.1:18181 (60 bytes), seq=1 time=301,07 ms 200 OK
--- http://127.0.0.1:18181/slow ping statistics ---
2 connects, 2 ok, 0,00% failed, time 602ms
round-trip min/avg/max = 301,1/301,1/301,1 ms
`
	// Without -s: no status, the line ends in "ms ".
	httpingOutNoStatus = "PING 127.0.0.1:18181 (/ok):\n" +
		"connected to 127.0.0.1:18181 (60 bytes), seq=0 time=  0.89 ms \n" +
		"connected to 127.0.0.1:18181 (60 bytes), seq=1 time=  0.49 ms \n" +
		"connected to 127.0.0.1:18181 (60 bytes), seq=2 time=  0.41 ms \n" +
		"--- http://127.0.0.1:18181/ok ping statistics ---\n" +
		"3 connects, 3 ok, 0.00% failed, time 602ms\n" +
		"round-trip min/avg/max = 0.4/0.6/0.9 ms\n"
	httpingOut403 = `PING 127.0.0.1:18181 (/403):
connected to 127.0.0.1:18181 (67 bytes), seq=0 time=  0.42 ms 403 Forbidden
connected to 127.0.0.1:18181 (67 bytes), seq=1 time=  0.21 ms 403 Forbidden
--- http://127.0.0.1:18181/403 ping statistics ---
2 connects, 0 ok, 100.00% failed, time 1ms
`
	httpingOutRefused = `PING 127.0.0.1:1 (/):
could not connect (Connection refused)

could not connect (Connection refused)

could not connect (Connection refused)

--- http://127.0.0.1:1/ ping statistics ---
3 connects, 0 ok, 100.00% failed, time 0ms
`
	// A server that accepts and never answers.
	httpingOutTimeout = `PING 127.0.0.1:18182 (/):
timeout while receiving reply-headers from host
timeout while receiving reply-headers from host
--- http://127.0.0.1:18182/ ping statistics ---
2 connects, 0 ok, 100.00% failed, time 601ms
`
	// A server answering "garbage\r\n\r\n": an answer without a status, even with -s.
	httpingOutGarbageReply = "PING 127.0.0.1:18184 (/):\n" +
		"connected to 127.0.0.1:18184 (15 bytes), seq=0 time=  0.27 ms \n" +
		"connected to 127.0.0.1:18184 (15 bytes), seq=1 time=  0.11 ms \n" +
		"--- http://127.0.0.1:18184/ ping statistics ---\n" +
		"2 connects, 2 ok, 0.00% failed, time 0ms\n" +
		"round-trip min/avg/max = 0.1/0.2/0.3 ms\n"
	// A server whose reason phrase imitates httping: "HTTP/1.1 200 seq=9 time=7.00 ms 503 x".
	httpingOutReasonPhrase = `PING 127.0.0.1:18187 (/):
connected to 127.0.0.1:18187 (45 bytes), seq=0 time=  0.40 ms 200 seq=9 time=7.00 ms 503 x
connected to 127.0.0.1:18187 (45 bytes), seq=1 time=  0.14 ms 200 seq=9 time=7.00 ms 503 x
--- http://127.0.0.1:18187/ ping statistics ---
2 connects, 2 ok, 0.00% failed, time 1ms
round-trip min/avg/max = 0.1/0.3/0.4 ms
`
	// Killed (SIGKILL) during the third request to the 300 ms handler: no statistics.
	httpingOutKilled = `PING 127.0.0.1:18181 (/slow):
connected to 127.0.0.1:18181 (60 bytes), seq=0 time=301.06 ms 200 OK
connected to 127.0.0.1:18181 (60 bytes), seq=1 time=301.21 ms 200 OK
`
)

func TestHTTPingParseCaptured(t *testing.T) {
	L := Lost
	all := []int{403, 407, 503}
	tests := []struct {
		name  string
		out   string
		pings int
		fail  []int
		want  []time.Duration
	}{
		{"mixed: failures hold their seq", httpingOutMixed, 8, nil,
			[]time.Duration{hms(0.31), L, L, hms(0.37), hms(0.38), L, L, hms(0.39)}},
		{"mixed with 503 a failure", httpingOutMixed, 8, []int{503},
			[]time.Duration{hms(0.31), L, L, L, hms(0.38), L, L, L}},
		{"mixed, fewer pings than lines", httpingOutMixed, 4, nil, []time.Duration{hms(0.31), L, L, hms(0.37)}},
		{"mixed, more pings than lines", httpingOutMixed, 10, nil,
			[]time.Duration{hms(0.31), L, L, hms(0.37), hms(0.38), L, L, hms(0.39), L, L}},
		{"nl", httpingOutNL, 4, nil, []time.Duration{hms(0.37), L, L, hms(0.30)}},
		{"nl with 503 a failure", httpingOutNL, 4, []int{503}, []time.Duration{hms(0.37), L, L, L}},
		{"ru", httpingOutRU, 4, nil, []time.Duration{hms(0.45), L, L, hms(0.32)}},
		{"ru with 503 a failure", httpingOutRU, 4, []int{200, 503}, []time.Duration{L, L, L, L}},
		{"de decimal comma", httpingOutDE, 2, nil, []time.Duration{hms(301.09), hms(301.07)}},
		{"without -s", httpingOutNoStatus, 3, nil, []time.Duration{hms(0.89), hms(0.49), hms(0.41)}},
		{"without -s failure codes cannot apply", httpingOutNoStatus, 3, []int{200}, []time.Duration{hms(0.89), hms(0.49), hms(0.41)}},
		{"403 answered unless listed", httpingOut403, 2, []int{404, 503}, []time.Duration{hms(0.42), hms(0.21)}},
		{"403 listed", httpingOut403, 2, all, []time.Duration{L, L}},
		{"refused", httpingOutRefused, 3, nil, []time.Duration{L, L, L}},
		{"timeouts", httpingOutTimeout, 2, all, []time.Duration{L, L}},
		{"reply without status", httpingOutGarbageReply, 2, all, []time.Duration{hms(0.27), hms(0.11)}},
		{"reason phrase imitating httping", httpingOutReasonPhrase, 2, []int{503}, []time.Duration{hms(0.40), hms(0.14)}},
		{"reason phrase, 200 a failure", httpingOutReasonPhrase, 10, []int{200}, slices.Repeat([]time.Duration{L}, 10)},
		{"killed", httpingOutKilled, 5, nil, []time.Duration{hms(301.06), hms(301.21), L, L, L}},
		{"killed in the middle of a line", httpingOutKilled +
			"connected to 127.0.0.1:18181 (60 bytes), seq=2 time=30", 3, nil, []time.Duration{hms(301.06), hms(301.21), L}},
		{"killed in the middle of the status", strings.TrimSuffix(httpingOutKilled, " 200 OK\n") + " 50",
			2, []int{503}, []time.Duration{hms(301.06), L}},
		{"no newline at all", "connected to 127.0.0.1:18181 (60 bytes), seq=0 time=  0.50 ms 200 OK", 1, nil, []time.Duration{L}},
		{"a missing line loses its own ping", strings.Replace(httpingOutNoStatus,
			"connected to 127.0.0.1:18181 (60 bytes), seq=1 time=  0.49 ms \n", "", 1),
			3, nil, []time.Duration{hms(0.89), L, hms(0.41)}},
		{"lines out of order", "x, seq=1 time=2.00 ms 200 OK\nx, seq=0 time=1.00 ms 200 OK\n", 2, nil,
			[]time.Duration{hms(1), hms(2)}},
		{"a repeated seq counts once", "x, seq=0 time=1.00 ms 503 A\nx, seq=0 time=2.00 ms 200 OK\n", 1, []int{503}, []time.Duration{L}},
		{"zero is an answer", "connected to h:80 (60 bytes), seq=0 time=  0.00 ms 200 OK\n", 1, nil, []time.Duration{0}},
		{"garbage", "\x00\xff\xfe junk\n=\n, seq=x time=1.00 ms\n, seq=0 time=abc ms\n, seq=-1 time=1.00 ms\n" +
			", seq=99999999999999999999 time=1.00 ms\n, seq=0 time=1.00\n, seq=0 time=1.2.3 ms\n" +
			"3 connects, 3 ok, 0.00% failed, time 602ms\nround-trip min/avg/max = 0.4/0.6/0.9 ms\n",
			2, nil, []time.Duration{L, L}},
		{"an absurd time", ", seq=0 time=99999999999999999999.00 ms 200 OK\n", 1, nil, []time.Duration{L}},
		{"empty", "", 3, nil, []time.Duration{L, L, L}},
		{"no pings", httpingOutMixed, 0, nil, []time.Duration{}},
	}
	for _, tt := range tests {
		h := &HTTPing{FailCodes: tt.fail}
		got := h.Parse([]byte(tt.out), Round{Pings: tt.pings, Interval: time.Second, Timeout: time.Second})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: Parse = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHTTPingParseMilliseconds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0.00": 0, "0.01": 10 * time.Microsecond, "2.20": 2200 * time.Microsecond, "1.66": 1660 * time.Microsecond,
		"301,15": 301150 * time.Microsecond, "15000.00": 15 * time.Second, "7": 7 * time.Millisecond,
		"1.234567891": 1234567 * time.Nanosecond,
	} {
		out := "connected to h:80 (1 bytes), seq=0 time=" + in + " ms 200 OK\n"
		if got := (&HTTPing{}).Parse([]byte(out), Round{Pings: 1}); got[0] != want {
			t.Errorf("time=%s: %v, want %v", in, got[0], want)
		}
	}
}

func FuzzHTTPingParse(f *testing.F) {
	for _, s := range []string{httpingOutMixed, httpingOutRU, httpingOutKilled, httpingOutReasonPhrase, httpingOutRefused} {
		f.Add([]byte(s), 8)
	}
	f.Fuzz(func(t *testing.T, out []byte, pings int) {
		pings = pings & 0x3ff
		got := (&HTTPing{FailCodes: []int{503}}).Parse(out, Round{Pings: pings})
		if len(got) != pings {
			t.Fatalf("%d entries for %d pings", len(got), pings)
		}
		for _, d := range got {
			if d != Lost && d < 0 {
				t.Fatalf("negative RTT %v", d)
			}
		}
	})
}

// httpingOptionsWithValue are the options of Argv that take the next argument as their value.
var httpingOptionsWithValue = map[string]bool{"-g": true, "-c": true, "-i": true, "-t": true, "-I": true, "-x": true}

func TestHTTPingArgvOrderValues(t *testing.T) {
	r := Round{Pings: 3, Interval: time.Second, Timeout: 12 * time.Second}
	for _, h := range []HTTPing{
		{URL: "http://h/"},
		{URL: "-x", UserAgent: "-s", Proxy: "-c:80"},
		{URL: "--url=http://evil/", UserAgent: "--count=99", Proxy: "--proxy=x:1", FailCodes: []int{503}},
		{URL: "-g", UserAgent: "-I", Proxy: "-x"},
		{Program: "/opt/bin/httping", URL: "http://h/ -c 5", UserAgent: "a b\tc", Proxy: "[::1]:3128"},
	} {
		argv := h.Argv(r)
		want := []string{httpingOr(h.Program, "httping"), "-g", h.URL, "-c", "3", "-i", "1", "-t", "12",
			"-I", httpingOr(h.UserAgent, DefaultUserAgent), "-s"}
		if h.Proxy != "" {
			want = append(want, "-x", h.Proxy)
		}
		if !slices.Equal(argv, want) {
			t.Errorf("%+v: Argv = %q, want %q", h, argv, want)
			continue
		}
		// Read argv as getopt does: every order value is the value of its option.
		values := map[string]string{}
		for i := 1; i < len(argv); i++ {
			opt := argv[i]
			switch {
			case httpingOptionsWithValue[opt] && i+1 < len(argv):
				values[opt] = argv[i+1]
				i++
			case opt == "-s":
			default:
				t.Errorf("%+v: argument %d %q is not an option of Argv", h, i, opt)
			}
		}
		if values["-g"] != h.URL || values["-I"] != httpingOr(h.UserAgent, DefaultUserAgent) || values["-x"] != h.Proxy {
			t.Errorf("%+v: option values %q", h, values)
		}
	}
}

func httpingOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestHTTPingArgvSeconds(t *testing.T) {
	tests := []struct {
		interval, timeout time.Duration
		i, t              string
	}{
		{time.Second, 15 * time.Second, "1", "15"},
		{200 * time.Millisecond, 1500 * time.Millisecond, "200e-3", "1500e-3"},
		{0, 0, "0", "1e-3"},
		{-time.Second, -time.Second, "0", "1e-3"},
		{time.Nanosecond, time.Nanosecond, "1e-3", "1e-3"},
		{999 * time.Microsecond, 1001 * time.Microsecond, "1e-3", "2e-3"},
		{12*time.Second + time.Nanosecond, 2400 * time.Millisecond, "12001e-3", "2400e-3"},
		{time.Hour, time.Minute, "3600", "60"},
	}
	for _, tt := range tests {
		argv := (&HTTPing{URL: "http://h/"}).Argv(Round{Pings: 1, Interval: tt.interval, Timeout: tt.timeout})
		i, to := argv[slices.Index(argv, "-i")+1], argv[slices.Index(argv, "-t")+1]
		if i != tt.i || to != tt.t {
			t.Errorf("interval %v, timeout %v: -i %q -t %q, want -i %q -t %q", tt.interval, tt.timeout, i, to, tt.i, tt.t)
		}
	}
}

// httpingProgram is the real httping: the tests below need it.
func httpingProgram(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("httping")
	if err != nil {
		t.Fatalf("httping is not installed (Debian package httping): %v", err)
	}
	return p
}

// runHTTPing runs h's command line for r with the real httping, in env (nil: this
// process's environment in the C locale), and returns its stdout and how long it ran.
func runHTTPing(t *testing.T, h *HTTPing, r Round, env []string) ([]byte, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.Pings)*(r.Interval+r.Timeout)+10*time.Second)
	defer cancel()
	argv := h.Argv(r)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if env == nil {
		env = append(os.Environ(), "LC_ALL=C", "LANGUAGE=") // the English output of httping.go
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("%q: %v (stderr %q)", argv, err, stderr.String())
	}
	t.Logf("%q ran %v, exit %d:\n%s", argv, elapsed.Round(time.Millisecond), cmd.ProcessState.ExitCode(), stdout.String())
	return stdout.Bytes(), elapsed
}

// httpingServers are what the end-to-end tests talk to, all on 127.0.0.1.
type httpingServers struct {
	web     *httptest.Server // /ok, /slow (300 ms), /status/<code>, /agent (records the user agent)
	proxy   *httptest.Server // answers every request, recording its request URI
	silent  string           // host:port that accepts connections and never answers
	refused string           // host:port nobody listens on
	silentN chan struct{}    // a value per connection the silent server accepted

	mu      sync.Mutex
	agents  []string
	proxied []string
}

func (s *httpingServers) record(list *[]string, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*list = append(*list, v)
}

func (s *httpingServers) take(list *[]string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := *list
	*list = nil
	return v
}

func startHTTPingServers(t *testing.T) *httpingServers {
	s := &httpingServers{silentN: make(chan struct{}, 100)}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/slow", func(http.ResponseWriter, *http.Request) { time.Sleep(300 * time.Millisecond) })
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(r.PathValue("code"), &code)
		w.WriteHeader(code)
	})
	mux.HandleFunc("/agent/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.record(&s.agents, r.PathValue("id")+" "+r.Method+" "+r.Header.Get("User-Agent"))
	})
	s.web = httptest.NewServer(mux)
	t.Cleanup(s.web.Close)
	s.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(&s.proxied, r.Method+" "+r.RequestURI+" "+r.Header.Get("User-Agent"))
	}))
	t.Cleanup(s.proxy.Close)

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.silent = silent.Addr().String()
	var conns []net.Conn
	var connsMu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c) // held open, never read nor answered
			connsMu.Unlock()
			s.silentN <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		connsMu.Lock()
		defer connsMu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.refused = closed.Addr().String()
	closed.Close()
	return s
}

// TestHTTPingRealServer runs the real httping against servers the test starts on
// 127.0.0.1 and reads its output with Parse.
func TestHTTPingRealServer(t *testing.T) {
	prog := httpingProgram(t)
	s := startHTTPingServers(t)
	r := Round{Pings: 3, Interval: 200 * time.Millisecond, Timeout: time.Second}
	L := Lost

	t.Run("fast", func(t *testing.T) {
		t.Parallel()
		h := &HTTPing{Program: prog, URL: s.web.URL + "/ok"}
		out, elapsed := runHTTPing(t, h, r, nil)
		got := h.Parse(out, r)
		for i, d := range got {
			if d < 0 || d > 200*time.Millisecond {
				t.Errorf("ping %d: %v, want an answer within 200ms", i, d)
			}
		}
		// -i 200e-3: 200 ms after each request, read as such.
		if elapsed < 3*r.Interval-50*time.Millisecond || elapsed > 3*r.Interval+time.Second {
			t.Errorf("3 requests 200 ms apart took %v", elapsed)
		}
	})

	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		h := &HTTPing{Program: prog, URL: s.web.URL + "/slow"}
		out, _ := runHTTPing(t, h, r, nil)
		for i, d := range h.Parse(out, r) {
			if d < 300*time.Millisecond || d >= time.Second {
				t.Errorf("ping %d: %v, want 300ms <= RTT < 1s", i, d)
			}
		}
	})

	for _, code := range []int{403, 407, 503} {
		// Run with the order's failure codes, then read the same output as orders with
		// other codes would (FailCodes changes Parse only, never the command line).
		for _, fail := range [][]int{nil, {403, 407, 503}} {
			t.Run(fmt.Sprintf("status %d fail %v", code, fail), func(t *testing.T) {
				t.Parallel()
				h := &HTTPing{Program: prog, URL: fmt.Sprintf("%s/status/%d", s.web.URL, code), FailCodes: fail}
				out, _ := runHTTPing(t, h, r, nil)
				if !bytes.Contains(out, fmt.Appendf(nil, " ms %d ", code)) {
					t.Errorf("no status %d shown", code)
				}
				for _, fail := range [][]int{fail, {code}, {404, 500}, {}} {
					other := &HTTPing{Program: prog, URL: h.URL, FailCodes: fail}
					if !slices.Equal(other.Argv(r), h.Argv(r)) {
						t.Fatalf("FailCodes %v changes the command line", fail)
					}
					lost := slices.Contains(fail, code)
					for i, d := range other.Parse(out, r) {
						if (d == Lost) != lost || d != Lost && (d < 0 || d > 200*time.Millisecond) {
							t.Errorf("FailCodes %v, ping %d: %v; want lost=%v", fail, i, d, lost)
						}
					}
				}
			})
		}
	}

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		h := &HTTPing{Program: prog, URL: "http://" + s.refused + "/"}
		out, elapsed := runHTTPing(t, h, r, nil)
		if got := h.Parse(out, r); !slices.Equal(got, []time.Duration{L, L, L}) {
			t.Errorf("Parse = %v, want all lost", got)
		}
		if elapsed > 3*r.Interval+time.Second {
			t.Errorf("refused connections took %v", elapsed)
		}
	})

	t.Run("never answered", func(t *testing.T) {
		t.Parallel()
		r := Round{Pings: 3, Interval: 200 * time.Millisecond, Timeout: 700 * time.Millisecond} // -t 700e-3
		h := &HTTPing{Program: prog, URL: "http://" + s.silent + "/", FailCodes: []int{503}}
		out, elapsed := runHTTPing(t, h, r, nil)
		if got := h.Parse(out, r); !slices.Equal(got, []time.Duration{L, L, L}) {
			t.Errorf("Parse = %v, want all lost", got)
		}
		// Each request gives up after the timeout, then waits the interval.
		if lo, hi := 3*r.Timeout, 3*(r.Timeout+r.Interval)+time.Second; elapsed < lo || elapsed > hi {
			t.Errorf("3 timeouts of 700ms took %v, want %v..%v", elapsed, lo, hi)
		}
		if n := len(s.silentN); n != 3 {
			t.Errorf("%d connections to the silent server, want 3", n)
		}
		if n := bytes.Count(out, []byte("timeout while receiving reply-headers")); n != 3 {
			t.Errorf("%d timeout lines, want 3", n)
		}
	})

	t.Run("user agent", func(t *testing.T) {
		// Not parallel: it reads what the /agent handler recorded.
		r := Round{Pings: 2, Interval: 0, Timeout: time.Second}
		for i, tt := range []struct{ ua, want string }{
			{"", DefaultUserAgent},
			{"probe/1.0 (pingmachine; +https://example.org/)", "probe/1.0 (pingmachine; +https://example.org/)"},
			{"-c 99", "-c 99"},         // an option's value, not the option
			{"--count=7", "--count=7"}, // the same for a long option
			{"-x 127.0.0.1:1", "-x 127.0.0.1:1"},
		} {
			h := &HTTPing{Program: prog, URL: fmt.Sprintf("%s/agent/%d", s.web.URL, i), UserAgent: tt.ua}
			out, _ := runHTTPing(t, h, r, nil)
			if got := h.Parse(out, r); slices.Contains(got, L) {
				t.Errorf("%q: Parse = %v, want all answered", tt.ua, got)
			}
			want := []string{fmt.Sprintf("%d HEAD %s", i, tt.want), fmt.Sprintf("%d HEAD %s", i, tt.want)}
			if got := s.take(&s.agents); !slices.Equal(got, want) {
				t.Errorf("%q: the server saw %q, want %q", tt.ua, got, want)
			}
		}
	})

	t.Run("proxy", func(t *testing.T) {
		// Not parallel: it reads what the proxy recorded. Nothing listens at the URL's
		// port: only the proxy can answer.
		url := "http://" + s.refused + "/through/the/proxy?q=1"
		h := &HTTPing{Program: prog, URL: url, Proxy: s.proxy.Listener.Addr().String(), UserAgent: "via-proxy"}
		out, _ := runHTTPing(t, h, r, nil)
		got := h.Parse(out, r)
		for i, d := range got {
			if d < 0 || d > 200*time.Millisecond {
				t.Errorf("ping %d: %v, want an answer from the proxy", i, d)
			}
		}
		want := slices.Repeat([]string{"HEAD " + url + " via-proxy"}, 3)
		if seen := s.take(&s.proxied); !slices.Equal(seen, want) {
			t.Errorf("the proxy saw %q, want %q", seen, want)
		}
	})

	t.Run("killed at the deadline", func(t *testing.T) {
		t.Parallel()
		// Requests end at about 0.3 s and 1.0 s; the third would end at 1.7 s.
		r := Round{Pings: 4, Interval: 400 * time.Millisecond, Timeout: time.Second}
		h := &HTTPing{Program: prog, URL: s.web.URL + "/slow"}
		res := NewRunner(1).Run(context.Background(), h, r, time.Now().Add(1350*time.Millisecond))
		if !res.Killed || res.Err != nil {
			t.Fatalf("Killed %v, Err %v; want killed", res.Killed, res.Err)
		}
		for i, d := range res.RTTs {
			if answered := d != Lost; answered != (i < 2) || answered && (d < 300*time.Millisecond || d >= time.Second) {
				t.Errorf("ping %d: %v (RTTs %v), want the first two answered in 300ms..1s", i, d, res.RTTs)
			}
		}
	})
}

// TestHTTPingRealServerLocales runs the real httping in locales that translate its output
// and write numbers with a decimal comma, built with localedef for the test.
func TestHTTPingRealServerLocales(t *testing.T) {
	prog := httpingProgram(t)
	localedef, err := exec.LookPath("localedef")
	if err != nil {
		t.Fatal("no localedef to build the locales (package libc-bin):", err)
	}
	s := startHTTPingServers(t)
	locales := t.TempDir()
	for _, tt := range []struct{ locale, reply string }{{"de_DE", "seq=0 time=30"}, {"nl_NL", "volgnr=0 tijd=30"}} {
		t.Run(tt.locale, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(filepath.Join("/usr/share/i18n/locales", tt.locale)); err != nil {
				t.Fatal("no locale source (make test installs the locales package):", err)
			}
			name := tt.locale + ".UTF-8"
			if out, err := exec.Command(localedef, "-i", tt.locale, "-f", "UTF-8", filepath.Join(locales, name)).CombinedOutput(); err != nil {
				t.Fatalf("localedef: %v\n%s", err, out)
			}
			env := append(os.Environ(), "LOCPATH="+locales, "LC_ALL="+name, "LANGUAGE=")

			r := Round{Pings: 2, Interval: 200 * time.Millisecond, Timeout: 1500 * time.Millisecond}
			h := &HTTPing{Program: prog, URL: s.web.URL + "/slow"}
			out, elapsed := runHTTPing(t, h, r, env)
			if !bytes.Contains(out, []byte(tt.reply)) || !bytes.Contains(out, []byte("00% ")) || bytes.Contains(out, []byte(".00% ")) {
				t.Fatalf("not the output of %s", name)
			}
			for i, d := range h.Parse(out, r) {
				if d < 300*time.Millisecond || d >= time.Second {
					t.Errorf("ping %d: %v, want 300ms <= RTT < 1s", i, d)
				}
			}
			// "-i 200e-3" is 200 ms here too ("-i 0.2" would be 0).
			if elapsed < 2*(300+200)*time.Millisecond-50*time.Millisecond {
				t.Errorf("2 requests took %v: the interval was not read", elapsed)
			}

			// "-t 700e-3" is 700 ms ("-t 0.7" would be 0, an immediate timeout).
			r = Round{Pings: 2, Interval: 0, Timeout: 700 * time.Millisecond}
			h = &HTTPing{Program: prog, URL: "http://" + s.silent + "/"}
			out, elapsed = runHTTPing(t, h, r, env)
			if got := h.Parse(out, r); !slices.Equal(got, []time.Duration{Lost, Lost}) {
				t.Errorf("Parse = %v, want all lost", got)
			}
			if elapsed < 2*r.Timeout || elapsed > 2*r.Timeout+time.Second {
				t.Errorf("2 timeouts of 700ms took %v", elapsed)
			}
		})
	}
}
