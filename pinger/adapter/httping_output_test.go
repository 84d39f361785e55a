package adapter

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestHTTPingParseOutput(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Millisecond))) }
	const ok = "PING 127.0.0.1:18080 (/):\n" +
		"connected to 127.0.0.1:18080 (159 bytes), seq=0 time=  2.20 ms 200 OK\n" +
		"connected to 127.0.0.1:18080 (159 bytes), seq=1 time=  1.66 ms 200 OK\n" +
		"--- http://127.0.0.1:18080/ ping statistics ---\n" +
		"2 connects, 2 ok, 0.00% failed, time 404ms\nround-trip min/avg/max = 1.7/1.9/2.2 ms\n"
	tests := []struct {
		name  string
		fail  []int
		out   string
		pings int
		want  []time.Duration
	}{
		{"all answered", nil, ok, 2, []time.Duration{ms(2.20), ms(1.66)}},
		{"fewer pings than lines", nil, ok, 1, []time.Duration{ms(2.20)}},
		{"refused", nil, "PING 127.0.0.1:1 (/):\ncould not connect (Connection refused)\n\ncould not connect (Connection refused)\n\n" +
			"--- http://127.0.0.1:1/ ping statistics ---\n2 connects, 0 ok, 100.00% failed, time 401ms\n", 2, []time.Duration{Lost, Lost}},
		{"a failure then a reply", nil, "PING h:80 (/):\ntime out\nconnected to h:80 (10 bytes), seq=1 time= 3.00 ms 200 OK\n",
			2, []time.Duration{Lost, ms(3)}},
		{"status counted as failure", []int{403, 503},
			"connected to h:80 (9 bytes), seq=0 time=  1.00 ms 403 Forbidden\nconnected to h:80 (9 bytes), seq=1 time=  1.50 ms 200 OK\n",
			2, []time.Duration{Lost, ms(1.5)}},
		{"status answered unless listed", nil, "connected to h:80 (9 bytes), seq=0 time=  1.00 ms 403 Forbidden\n",
			1, []time.Duration{ms(1)}},
		{"zero is an answer", nil, "connected to h:80 (9 bytes), seq=0 time=  0.00 ms 200 OK\n", 1, []time.Duration{0}},
		{"a line cut by the kill", nil, "connected to h:80 (9 bytes), seq=0 time=  1.00 ms 200 OK\nconnected to h:80 (9 bytes), seq=1 time=  2.0",
			2, []time.Duration{ms(1), Lost}},
		{"garbage and seq out of range", nil, "\x00\xff junk\nconnected to h (1 bytes), seq=7 time= 1.00 ms\n", 2, []time.Duration{Lost, Lost}},
		{"empty", nil, "", 3, []time.Duration{Lost, Lost, Lost}},
	}
	for _, tt := range tests {
		h := &HTTPing{FailCodes: tt.fail}
		if got := h.Parse([]byte(tt.out), Round{Pings: tt.pings}); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHTTPingArgv(t *testing.T) {
	h := &HTTPing{URL: "-x", Proxy: "p:3128"}
	got := h.Argv(Round{Pings: 3, Interval: 1500 * time.Millisecond, Timeout: 12 * time.Second})
	want := []string{"httping", "-g", "-x", "-c", "3", "-i", "1500e-3", "-t", "12", "-I", DefaultUserAgent, "-s", "-x", "p:3128"}
	if !slices.Equal(got, want) {
		t.Errorf("Argv = %q, want %q", got, want)
	}
}
