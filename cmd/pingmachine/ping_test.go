package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"pingmachine/pinger"
)

func TestFormatRTT(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{45 * time.Microsecond, "0.045"},
		{999 * time.Microsecond, "0.999"},
		{1234 * time.Microsecond, "1.23"},
		{12340 * time.Microsecond, "12.3"},
		{123400 * time.Microsecond, "123"},
		{1500 * time.Second, "1.500e+06"},
	}
	for _, tt := range tests {
		if got := formatRTT(tt.d); got != tt.want {
			t.Errorf("formatRTT(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestFormatLine(t *testing.T) {
	tests := []struct {
		name  string
		width int
		rtts  []time.Duration
		want  string
	}{
		{"127.0.0.1", 9, []time.Duration{50 * time.Microsecond, pinger.Lost}, "127.0.0.1 : 0.050 -"},
		{"::1", 9, []time.Duration{2 * time.Millisecond}, "::1       : 2.00"},
		{"host", 2, []time.Duration{pinger.Lost, pinger.Lost}, "host : - -"},
	}
	for _, tt := range tests {
		if got := formatLine(tt.name, tt.width, tt.rtts); got != tt.want {
			t.Errorf("formatLine = %q, want %q", got, tt.want)
		}
	}
}

func TestSplitJoinedFlags(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"-c5", "-p100", "127.0.0.1"}, []string{"-c", "5", "-p", "100", "127.0.0.1"}},
		{[]string{"-c", "5", "-v", "-6"}, []string{"-c", "5", "-v", "-6"}},
		{[]string{"-c=5", "--", "-c5"}, []string{"-c=5", "--", "-c5"}},
	}
	for _, tt := range tests {
		if got := splitJoinedFlags(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitJoinedFlags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadTargets(t *testing.T) {
	in := "127.0.0.1\n\n# a comment\n::1   # trailing comment\n  localhost  \n"
	got, err := readTargets(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1", "::1", "localhost"}; !slices.Equal(got, want) {
		t.Errorf("readTargets = %q, want %q", got, want)
	}
}

func TestParsePingArgs(t *testing.T) {
	tests := []struct {
		args    []string
		problem string // empty: valid
	}{
		{[]string{"127.0.0.1"}, ""},
		{[]string{"-c", "0", "x"}, "-c 0"},
		{[]string{"-c", "70000", "x"}, "-c 70000"},
		{[]string{"-s", "8", "x"}, "-s 8"},
		{[]string{"-4", "-6", "x"}, "exclude"},
		{[]string{"-Q", "300", "x"}, "-Q 300"},
		{[]string{"-S", "nonsense", "x"}, "not an IP address"},
		{[]string{"-4", "-S", "::1", "x"}, "family"},
		{[]string{"-p", "-5", "x"}, "milliseconds"},
		{[]string{"-t", "abc", "x"}, "milliseconds"},
		{[]string{}, "no targets"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		_, err := parsePingArgs(tt.args, &stderr)
		switch {
		case tt.problem == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.problem != "" && (err == nil || !strings.Contains(stderr.String(), tt.problem)):
			t.Errorf("%q: err %v, stderr %q; want a message with %q", tt.args, err, stderr.String(), tt.problem)
		}
	}
}

func TestPingDefaults(t *testing.T) {
	tests := []struct {
		args    []string
		timeout time.Duration
	}{
		{[]string{"x"}, time.Second},
		{[]string{"-p", "100", "x"}, 100 * time.Millisecond},
		{[]string{"-p", "5000", "x"}, 2 * time.Second},
		{[]string{"-p", "5000", "-t", "300.5", "x"}, 300500 * time.Microsecond},
	}
	for _, tt := range tests {
		c, err := parsePingArgs(tt.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if c.timeout != tt.timeout || c.count != 5 || c.size != pinger.DefaultSize {
			t.Errorf("%q: timeout %v count %d size %d; want timeout %v, 5 pings of %d bytes",
				tt.args, c.timeout, c.count, c.size, tt.timeout, pinger.DefaultSize)
		}
	}
}
