package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
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
		// fping's sprint_tm: below 1 ms three decimals, below 10 ms two, below 100 ms
		// one, below 1,000,000 ms none, then %.3e; rounding can carry across a boundary.
		{0, "0.000"},
		{45 * time.Microsecond, "0.045"},
		{999 * time.Microsecond, "0.999"},
		{999600 * time.Nanosecond, "1.000"},
		{time.Millisecond, "1.00"},
		{1234 * time.Microsecond, "1.23"},
		{9999 * time.Microsecond, "10.00"},
		{10 * time.Millisecond, "10.0"},
		{12340 * time.Microsecond, "12.3"},
		{99960 * time.Microsecond, "100.0"},
		{100 * time.Millisecond, "100"},
		{123400 * time.Microsecond, "123"},
		{2 * time.Second, "2000"},
		{999999 * time.Millisecond, "999999"},
		{1000 * time.Second, "1.000e+06"},
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
		{"localhost", 9, []time.Duration{12 * time.Millisecond, 150 * time.Millisecond, 2 * time.Second}, "localhost : 12.0 150 2000"},
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
		{[]string{"-4", "-S", "::1", "x"}, "not an IPv4 address"},
		{[]string{"-6", "-S", "127.0.0.1", "x"}, "not an IPv6 address"},
		{[]string{"-6", "-S", "::1", "-Q", "255", "-s", "65507", "-c", "65535", "x"}, ""},
		{[]string{"-c", "five", "x"}, "invalid value"},
		{[]string{"-p", "0", "x"}, "milliseconds"},
		{[]string{"-i", "0", "x"}, "milliseconds"},
		{[]string{"-t", "0", "x"}, "milliseconds"},
		{[]string{"-Q", "-1", "x"}, "-Q -1"},
		{[]string{"-s", "65508", "x"}, "-s 65508"},
		{[]string{"-x", "x"}, "usage:"},
		{[]string{"-f", "-"}, ""},
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

func TestPingIntervals(t *testing.T) {
	c, err := parsePingArgs([]string{"-p", "0.5", "-i", "0.025", "-t", "1.25", "x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.period != 500*time.Microsecond || c.interval != 25*time.Microsecond || c.timeout != 1250*time.Microsecond {
		t.Errorf("period %v interval %v timeout %v; want 500µs 25µs 1.25ms", c.period, c.interval, c.timeout)
	}
}

func TestChooseFamily(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		args        []string
		network     string
		allow, deny netip.Addr
	}{
		{[]string{"x"}, "ip", v4, netip.Addr{}},
		{[]string{"-4", "x"}, "ip4", v4, v6},
		{[]string{"-6", "x"}, "ip6", v6, v4},
		{[]string{"-S", "192.0.2.7", "x"}, "ip4", v4, v6},
		{[]string{"-S", "2001:db8::7", "x"}, "ip6", v6, v4},
	}
	for _, tt := range tests {
		c, err := parsePingArgs(tt.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if c.family.network != tt.network || !c.family.allows(tt.allow) ||
			(tt.deny.IsValid() && c.family.allows(tt.deny)) {
			t.Errorf("%q: family %+v; want %s allowing %v and not %v", tt.args, c.family, tt.network, tt.allow, tt.deny)
		}
	}
}

// TestResolveLiterals resolves IP literals only, so it asks no DNS server.
func TestResolveLiterals(t *testing.T) {
	names := []string{"127.0.0.1", "::1", "127.0.0.1", "::ffff:127.0.0.2"}
	tests := []struct {
		fam    family
		kept   []string
		failed []string
	}{
		{family{network: "ip"}, []string{"127.0.0.1", "::1", "127.0.0.1", "127.0.0.2"}, nil},
		{family{"ip4", "-4"}, []string{"127.0.0.1", "127.0.0.1", "127.0.0.2"}, []string{"::1: wrong family for -4"}},
		{family{"ip6", "-S ::1"}, []string{"::1"}, []string{
			"127.0.0.1: wrong family for -S ::1", "127.0.0.1: wrong family for -S ::1", "::ffff:127.0.0.2: wrong family for -S ::1"}},
	}
	for _, tt := range tests {
		got, errs := resolve(context.Background(), names, tt.fam)
		var kept, failed []string
		for _, g := range got {
			kept = append(kept, g.addr.String())
		}
		for _, err := range errs {
			failed = append(failed, err.Error())
		}
		if !slices.Equal(kept, tt.kept) || !slices.Equal(failed, tt.failed) {
			t.Errorf("%s: kept %q failed %q; want %q and %q", tt.fam.network, kept, failed, tt.kept, tt.failed)
		}
	}
}

func TestResolveErrorText(t *testing.T) {
	dnsErr := &net.DNSError{Err: "no such host", Name: "nonexistent.invalid", IsNotFound: true}
	err := error(&resolveError{"nonexistent.invalid", dnsErr})
	if got, want := err.Error(), "nonexistent.invalid: no such host"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, dnsErr) {
		t.Error("resolveError does not wrap the DNS error")
	}
}

func TestDaemonArgs(t *testing.T) {
	t.Setenv("SC", "")
	tests := []struct {
		args []string
		want daemonConfig
		fail string // part of the message on stderr when the flags are refused
	}{
		{nil, daemonConfig{basedir: "/var/lib/pingmachine", logFormat: "text", httping: "httping", scionDir: defaultSCION}, ""},
		{[]string{"--debug", "--user", "pm", "--basedir", "/srv/pm", "--telegraf", "localhost:8094"},
			daemonConfig{true, "pm", "/srv/pm", "localhost:8094", "", "text", "httping", defaultSCION, ""}, ""},
		{[]string{"-d", "-u", "pm", "-b", "/srv/pm", "-t", "localhost:8094", "--rrdcached", "unix:/run/rrdcached.sock", "--log-format", "json",
			"--httping", "/opt/bin/httping", "--scion-dir", "/opt/scion", "--listen", "127.0.0.1:9374"},
			daemonConfig{true, "pm", "/srv/pm", "localhost:8094", "unix:/run/rrdcached.sock", "json", "/opt/bin/httping", "/opt/scion", "127.0.0.1:9374"}, ""},
		{[]string{"--basedir=/srv/pm"}, daemonConfig{basedir: "/srv/pm", logFormat: "text", httping: "httping", scionDir: defaultSCION}, ""},
		{[]string{"--bogus"}, daemonConfig{}, "flag provided but not defined"},
		{[]string{"pnig", "127.0.0.1"}, daemonConfig{}, `unknown command "pnig"`},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		got, err := parseDaemonArgs(tt.args, &stderr)
		switch {
		case tt.fail != "":
			if err == nil || !strings.Contains(stderr.String(), tt.fail) || !strings.Contains(stderr.String(), "usage:") {
				t.Errorf("%q: err %v, stderr %q; want usage and %q", tt.args, err, stderr.String(), tt.fail)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case got != tt.want:
			t.Errorf("%q: %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

func TestDaemonHelp(t *testing.T) {
	tests := []struct {
		args []string
		exit int
		say  string
	}{
		{[]string{"--help"}, exitOK, "--basedir"},
		{[]string{"--log-format"}, exitBadArgs, "flag needs an argument"},
		{[]string{"-h"}, exitOK, "pingmachine ping [-c count]"},
		{[]string{"help"}, exitOK, "[--telegraf|-t HOST:PORT]"},
		{[]string{"--help"}, exitOK, "--listen ADDR, such as 127.0.0.1:9374"},
	}
	for _, tt := range tests {
		var stdout, stderr strings.Builder
		code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.exit || !strings.Contains(stderr.String(), tt.say) || !strings.Contains(stderr.String(), "usage: pingmachine") {
			t.Errorf("%q: exit %d, stderr %q; want exit %d, usage and %q", tt.args, code, stderr.String(), tt.exit, tt.say)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q, want nothing", tt.args, stdout.String())
		}
	}
}
