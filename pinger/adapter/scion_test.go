package adapter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var _ Tool = (*SCION)(nil)

// ms is an RTT of v milliseconds.
func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

const L = Lost

func TestSCIONArgv(t *testing.T) {
	r := Round{Pings: 20, Interval: 11849 * time.Millisecond, Timeout: 3 * time.Second}
	const sp, pp = "/sc/bin/scmp_fping", "/sc/bin/pingpong"
	tests := []struct {
		name string
		s    SCION
		r    Round
		want []string
	}{
		{"sping", SCION{Program: sp, Host: "1-ff00:0:110,[127.0.0.1]"}, r,
			[]string{sp, "-id", "scmp_echo", "-interval", "11849ms", "-c", "20", "-timeout", "3000ms",
				"-remote", "1-ff00:0:110,[127.0.0.1]"}},
		{"sping with source", SCION{Program: sp, Host: "1-ff00:0:110,[127.0.0.1]", Source: "1-ff00:0:111,[127.0.0.2]"}, r,
			[]string{sp, "-id", "scmp_echo", "-interval", "11849ms", "-c", "20", "-timeout", "3000ms",
				"-remote", "1-ff00:0:110,[127.0.0.1]", "-local", "1-ff00:0:111,[127.0.0.2]"}},
		{"sping with source and flags", SCION{Program: sp, Host: "1-ff00:0:110,[::1]", Source: "1-ff00:0:111,[::1]",
			Flags: []string{"-sciond", "127.0.0.1:30255", "-log.level", "debug"}}, r,
			[]string{sp, "-id", "scmp_echo", "-interval", "11849ms", "-c", "20", "-timeout", "3000ms",
				"-remote", "1-ff00:0:110,[::1]", "-local", "1-ff00:0:111,[::1]",
				"-sciond", "127.0.0.1:30255", "-log.level", "debug"}},
		{"sping flags without source", SCION{Program: sp, Host: "h", Flags: []string{"-x", "a b; $(c)"}}, r,
			[]string{sp, "-id", "scmp_echo", "-interval", "11849ms", "-c", "20", "-timeout", "3000ms",
				"-remote", "h", "-x", "a b; $(c)"}},
		{"pping", SCION{Program: pp, Pong: true, Host: "1-ff00:0:110,[127.0.0.1]"}, r,
			[]string{pp, "-id", "pingpong_client", "-mode", "client", "-interval", "11849ms", "-count", "20",
				"-timeout", "3000ms", "-format", "%[3]s : %[5]s", "-remote", "1-ff00:0:110,[127.0.0.1]", "-aggregate"}},
		{"pping with source", SCION{Program: pp, Pong: true, Host: "1-ff00:0:110,[127.0.0.1]", Source: "1-ff00:0:111,[127.0.0.2]"}, r,
			[]string{pp, "-id", "pingpong_client", "-mode", "client", "-interval", "11849ms", "-count", "20",
				"-timeout", "3000ms", "-format", "%[3]s : %[5]s", "-remote", "1-ff00:0:110,[127.0.0.1]",
				"-local", "1-ff00:0:111,[127.0.0.2]", "-aggregate"}},
		{"pping with source and flags", SCION{Program: pp, Pong: true, Host: "h", Source: "s",
			Flags: []string{"-sciond", "127.0.0.1:30255", ""}}, r,
			[]string{pp, "-id", "pingpong_client", "-mode", "client", "-interval", "11849ms", "-count", "20",
				"-timeout", "3000ms", "-format", "%[3]s : %[5]s", "-remote", "h", "-local", "s", "-aggregate",
				"-sciond", "127.0.0.1:30255", ""}},
		{"pping flags without source", SCION{Program: pp, Pong: true, Host: "h", Flags: []string{"-v"}}, r,
			[]string{pp, "-id", "pingpong_client", "-mode", "client", "-interval", "11849ms", "-count", "20",
				"-timeout", "3000ms", "-format", "%[3]s : %[5]s", "-remote", "h", "-aggregate", "-v"}},
		{"sub-millisecond durations round to the nearest ms", SCION{Program: sp, Host: "h"},
			Round{Pings: 1, Interval: 1499*time.Microsecond + 999*time.Nanosecond, Timeout: 2500 * time.Microsecond},
			[]string{sp, "-id", "scmp_echo", "-interval", "1ms", "-c", "1", "-timeout", "3ms", "-remote", "h"}},
		{"zero and negative durations", SCION{Program: sp, Host: "h"}, Round{Pings: 1, Interval: 0, Timeout: -time.Second},
			[]string{sp, "-id", "scmp_echo", "-interval", "0ms", "-c", "1", "-timeout", "0ms", "-remote", "h"}},
		{"sping without program uses the name", SCION{Host: "h"}, Round{Pings: 3, Interval: time.Second, Timeout: time.Second},
			[]string{"scmp_fping", "-id", "scmp_echo", "-interval", "1000ms", "-c", "3", "-timeout", "1000ms", "-remote", "h"}},
		{"pping without program uses the name", SCION{Pong: true, Host: "h"}, Round{Pings: 3, Interval: time.Second, Timeout: time.Second},
			[]string{"pingpong", "-id", "pingpong_client", "-mode", "client", "-interval", "1000ms", "-count", "3",
				"-timeout", "1000ms", "-format", "%[3]s : %[5]s", "-remote", "h", "-aggregate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := slices.Clone(tt.s.Flags)
			got := tt.s.Argv(tt.r)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Argv:\n got %q\nwant %q", got, tt.want)
			}
			if slices.Contains(got, "0") && tt.s.Source == "" {
				t.Errorf("Argv has a 0 argument without a source: %q", got)
			}
			// The argv does not share the order's Flags.
			for i := range got {
				got[i] = "changed"
			}
			if !slices.Equal(tt.s.Flags, flags) {
				t.Errorf("changing the argv changed Flags: %q", tt.s.Flags)
			}
		})
	}
}

func TestSCIONParse(t *testing.T) {
	five := Round{Pings: 5, Interval: time.Second, Timeout: 3 * time.Second}
	all := []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5)}
	none := []time.Duration{L, L, L, L, L}
	tests := []struct {
		name string
		host string // "" is "h"
		out  string
		want []time.Duration
	}{
		{"full", "", "h : 1.25 2.5 3 0.75 10\n", []time.Duration{ms(1.25), ms(2.5), ms(3), ms(0.75), ms(10)}},
		{"lossy", "", "h : 1.25 - 3.25 - 5.25\n", []time.Duration{ms(1.25), L, ms(3.25), L, ms(5.25)}},
		{"all lost", "", "h : - - - - -\n", none},
		{"fractions and zero", "", "h : 0.001 1234.5678 0 .5 7.\n",
			[]time.Duration{time.Microsecond, 1234567800 * time.Nanosecond, 0, 500 * time.Microsecond, ms(7)}},
		{"sub-nanosecond rounds", "", "h : 0.0000004 0.0000006 1 1 1\n", []time.Duration{0, 1, ms(1), ms(1), ms(1)}},
		{"tabs and extra spaces", "", "h\t:\t1  2\t 3 4   5  \n", all},
		{"CRLF line ends", "", "h : 1 2 3 4 5\r\n", all},
		{"SCION address", "1-ff00:0:110,[127.0.0.1]", "1-ff00:0:110,[127.0.0.1] : 1 2 3 4 5\n", all},
		{"SCION IPv6 address", "1-ff00:0:110,[::1]", "1-ff00:0:110,[::1] : 1 2 3 4 5\n", all},

		// Which line.
		{"header lines ignored", "", "PING h (scmp echo)\nUsing local address: 1-ff00:0:111,[127.0.0.2]\n" +
			"h : [scmp_fping] 5 pings\nh : [0], 64 bytes, 1.2 ms (1.2 avg, 0% loss)\nh : 1 2 3 4 5\n", all},
		{"trailing lines ignored", "", "h : 1 2 3 4 5\nh : xmt/rcv/%loss = 5/5/0%\nbye\n", all},
		{"first summary line for the host wins", "", "h : 1 2 3 4 5\nh : 9 9 9 9 9\n", all},
		{"other host before", "", "other : 9 9 9 9 9\nh : 1 2 3 4 5\n", all},
		{"other host after", "", "h : 1 2 3 4 5\nother : 9 9 9 9 9\n", all},
		{"host name is compared whole", "", "hh : 9 9 9 9 9\nh. : 8 8 8 8 8\nh : 1 2 3 4 5\n", all},
		{"host is case sensitive", "", "H : 9 9 9 9 9\nother : 8 8 8 8 8\n", none},
		{"one other notation is the host", "1-ff00:0:110,[127.0.0.1]",
			"remote 1-ff00:0:110,127.0.0.1\n1-ff00:0:110,127.0.0.1 : 1 2 3 4 5\n", all},
		{"one other notation on two lines: the first", "", "x : 1 2 3 4 5\nx : 9 9 9 9 9\n", all},
		{"two other hosts are ambiguous", "", "x : 1 2 3 4 5\ny : 9 9 9 9 9\n", none},
		{"a line for the host that is not a summary does not count", "",
			"h : [0], 64 bytes\nx : 1 2 3 4 5\n", all},
		{"progress lines only", "", "h : [0], 64 bytes, 1.2 ms\nh : [1], 64 bytes, 1.3 ms\n", none},
		{"colon attached to the host is an error line", "", "h: Name or service not known\nh:1 2 3 4 5\n", none},
		{"empty", "", "", none},
		{"only newlines", "", "\n\n\n", none},
		{"host without values", "", "h :\n", none},

		// Values.
		{"more values than pings", "", "h : 1 2 3 4 5 6 7\n", all},
		{"fewer values than pings", "", "h : 1 2\n", []time.Duration{ms(1), ms(2), L, L, L}},
		{"garbled in the middle", "", "h : 1.25 2.25 x? 4.25 5.25\n", []time.Duration{ms(1.25), ms(2.25), L, L, L}},
		{"garbled after a loss", "", "h : - 2 ??? 4 5\n", []time.Duration{L, ms(2), L, L, L}},
		{"value too large for a duration", "", "h : 1 99999999999999999 3 4 5\n", []time.Duration{ms(1), L, L, L, L}},

		// Cut output (a run killed at the deadline).
		{"cut in the middle of a number", "", "h : [x] 5 pings\nh : 1.25 2.25 3.", []time.Duration{ms(1.25), ms(2.25), L, L, L}},
		{"cut right after a number", "", "h : 1 2 3 4 5", []time.Duration{ms(1), ms(2), ms(3), ms(4), L}},
		{"cut after a space", "", "h : 1.25 2.25 ", []time.Duration{ms(1.25), ms(2.25), L, L, L}},
		{"cut after a dash", "", "h : 1 -", []time.Duration{ms(1), L, L, L, L}},
		{"cut after the first value", "", "h : 1", none},
		{"cut after the colon", "", "h :", none},
		{"cut in the host", "", "header\nh", none},
		{"cut in another line", "", "h : 1 2 3 4 5\nother : 9", all},
		{"cut in the line after a progress line", "", "h : [0] 64 bytes\nh : 1 2 3 4", []time.Duration{ms(1), ms(2), ms(3), L, L}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &SCION{Host: tt.host}
			if s.Host == "" {
				s.Host = "h"
			}
			for _, pong := range []bool{false, true} {
				s.Pong = pong
				got := s.Parse([]byte(tt.out), five)
				if !slices.Equal(got, tt.want) {
					t.Errorf("Pong=%v: Parse(%q) =\n %v\nwant\n %v", pong, tt.out, got, tt.want)
				}
			}
		})
	}
}

// TestSCIONParseTokens checks which tokens are RTTs: any other token ends the reading.
func TestSCIONParseTokens(t *testing.T) {
	r := Round{Pings: 3, Interval: time.Second, Timeout: time.Second}
	tests := []struct {
		tok  string
		want time.Duration // the second ping
	}{
		{"-", L}, {"0", 0}, {"12", ms(12)}, {"12.5", ms(12.5)}, {"012.50", ms(12.5)}, {".5", ms(0.5)}, {"5.", ms(5)},
	}
	for _, tt := range tests {
		got := (&SCION{Host: "h"}).Parse([]byte("h : 1 "+tt.tok+" 3\n"), r)
		if want := []time.Duration{ms(1), tt.want, ms(3)}; !slices.Equal(got, want) {
			t.Errorf("token %q: got %v, want %v", tt.tok, got, want)
		}
	}
	for _, tok := range []string{"--", "-1", "+1", "1e3", "1E3", "1.2.3", ".", "NaN", "Inf", "0x10", "1,5", "12ms",
		"1_000", "[1]", "1.2\u00a0", "１"} {
		got := (&SCION{Host: "h"}).Parse([]byte("h : 1 "+tok+" 3\n"), r)
		if want := []time.Duration{ms(1), L, L}; !slices.Equal(got, want) {
			t.Errorf("garbled token %q: got %v, want %v", tok, got, want)
		}
	}
}

func TestSCIONParsePingCounts(t *testing.T) {
	s := &SCION{Host: "h"}
	out := []byte("h : 1 2 3\n")
	for _, tt := range []struct {
		pings int
		want  []time.Duration
	}{
		{-1, []time.Duration{}},
		{0, []time.Duration{}},
		{1, []time.Duration{ms(1)}},
		{3, []time.Duration{ms(1), ms(2), ms(3)}},
		{4, []time.Duration{ms(1), ms(2), ms(3), L}},
	} {
		got := s.Parse(out, Round{Pings: tt.pings, Interval: time.Second, Timeout: time.Second})
		if got == nil || !slices.Equal(got, tt.want) {
			t.Errorf("pings %d: got %#v, want %v", tt.pings, got, tt.want)
		}
	}
}

func FuzzSCIONParse(f *testing.F) {
	for _, s := range []string{"", "h : 1 2 3\n", "h : 1.25 - x 4", "x : 1\ny : 2\n", "h :", "h : 99999999999999999999 1"} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, out []byte, pings int) {
		pings %= 1000
		got := (&SCION{Host: "h"}).Parse(out, Round{Pings: pings})
		if len(got) != max(pings, 0) {
			t.Fatalf("got %d entries for %d pings", len(got), pings)
		}
		for _, d := range got {
			if d != Lost && d < 0 {
				t.Fatalf("negative RTT %v", d)
			}
		}
	})
}

// standIn is the absolute path of a stand-in program in testdata/scion/bin.
func standIn(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "scion", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is not executable (mode %v); it must be committed as 755", p, fi.Mode())
	}
	return p
}

// runStandIn runs argv with SCION_ARGV_LOG set, and returns stdout, stderr, the exit
// code (-1 if killed), and the argv the program recorded.
func runStandIn(t *testing.T, ctx context.Context, argv []string) (stdout, stderr string, code int, logged []string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "argv")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "SCION_ARGV_LOG="+log)
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code = 0
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("running %q: %v", argv, err)
	}
	if b, err := os.ReadFile(log); err == nil {
		logged = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	} else {
		t.Errorf("no argv log: %v", err)
	}
	return out.String(), errOut.String(), code, logged
}

// scionTools are both tools with their stand-ins, for a host.
func scionTools(t *testing.T, host, source string, flags []string) map[string]*SCION {
	return map[string]*SCION{
		"sping": {Program: standIn(t, "scmp_fping"), Host: host, Source: source, Flags: flags},
		"pping": {Program: standIn(t, "pingpong"), Pong: true, Host: host, Source: source, Flags: flags},
	}
}

func TestSCIONStandIns(t *testing.T) {
	r := Round{Pings: 5, Interval: 1500 * time.Millisecond, Timeout: 3 * time.Second}
	all := []time.Duration{ms(1.25), ms(2.25), ms(3.25), ms(4.25), ms(5.25)}
	tests := []struct {
		host   string
		source string
		code   int
		lines  int // of stdout
		want   []time.Duration
	}{
		{"1-ff00:0:110,[ok.example]", "", 0, 2, all},
		{"1-ff00:0:110,[ok.example]", "1-ff00:0:111,[127.0.0.2]", 0, 2, all},
		{"1-ff00:0:110,[lossy.example]", "", 0, 2, []time.Duration{ms(1.25), L, ms(3.25), L, ms(5.25)}},
		{"1-ff00:0:110,[garbled.example]", "", 0, 2, []time.Duration{ms(1.25), ms(2.25), L, L, L}},
		{"1-ff00:0:110,[down.example]", "", 1, 2, []time.Duration{L, L, L, L, L}},
		{"1-ff00:0:110,[silent.example]", "", 1, 0, []time.Duration{L, L, L, L, L}},
		{"1-ff00:0:110,[notation.example]", "", 0, 2, all},
		{"1-ff00:0:110,[decoy.example]", "", 0, 3, all},
	}
	for _, tt := range tests {
		for name, s := range scionTools(t, tt.host, tt.source, nil) {
			t.Run(fmt.Sprintf("%s/%s/source=%q", name, tt.host, tt.source), func(t *testing.T) {
				argv := s.Argv(r)
				stdout, stderr, code, logged := runStandIn(t, context.Background(), argv)
				if code != tt.code || stderr != "" {
					t.Errorf("exit %d, stderr %q; want exit %d and no stderr", code, stderr, tt.code)
				}
				if !slices.Equal(logged, argv) {
					t.Errorf("stand-in got argv\n %q\nwant\n %q", logged, argv)
				}
				if n := strings.Count(stdout, "\n"); n != tt.lines {
					t.Errorf("stdout has %d lines, want %d: %q", n, tt.lines, stdout)
				}
				if got := s.Parse([]byte(stdout), r); !slices.Equal(got, tt.want) {
					t.Errorf("Parse(%q) =\n %v\nwant\n %v", stdout, got, tt.want)
				}
			})
		}
	}
}

// TestSCIONStandInLiteralFlags checks that flags reach the program as they are, one
// argument each, with nothing run by a shell.
func TestSCIONStandInLiteralFlags(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	flags := []string{
		"-sciond", "127.0.0.1:30255",
		"-log.level", "debug info",
		"$(touch " + pwned + ")",
		"`touch " + pwned + "`",
		"; rm -rf " + dir + "; touch " + pwned,
		"| touch " + pwned,
		"* ?",
		`'single' "double" \back`,
		"%[3]s : %[5]s",
		"-local", // an extra flag looking like an option stays an extra flag
		"",
		"  leading and trailing  ",
	}
	r := Round{Pings: 3, Interval: time.Second, Timeout: 3 * time.Second}
	for name, s := range scionTools(t, "1-ff00:0:110,[ok.example]", "1-ff00:0:111,[127.0.0.2]", flags) {
		t.Run(name, func(t *testing.T) {
			argv := s.Argv(r)
			if got := argv[len(argv)-len(flags):]; !slices.Equal(got, flags) {
				t.Fatalf("argv does not end with the flags: %q", argv)
			}
			stdout, stderr, code, logged := runStandIn(t, context.Background(), argv)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !slices.Equal(logged, argv) {
				t.Errorf("stand-in got argv\n %q\nwant\n %q", logged, argv)
			}
			if got, want := s.Parse([]byte(stdout), r), []time.Duration{ms(1.25), ms(2.25), ms(3.25)}; !slices.Equal(got, want) {
				t.Errorf("Parse(%q) = %v, want %v", stdout, got, want)
			}
			if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a flag was run by a shell: %s exists (%v)", pwned, err)
			}
		})
	}
}

// TestSCIONStandInRejects checks that the stand-ins refuse command lines the real tools
// would not be called with, so that TestSCIONStandIns proves Argv's shape.
func TestSCIONStandInRejects(t *testing.T) {
	r := Round{Pings: 3, Interval: time.Second, Timeout: 3 * time.Second}
	// edit changes a good argv: replace the value after opt (or drop opt and its value if val is "").
	edit := func(argv []string, opt, val string) []string {
		i := slices.Index(argv, opt)
		if i < 0 {
			t.Fatalf("no %s in %q", opt, argv)
		}
		if opt == "-aggregate" {
			return slices.Delete(slices.Clone(argv), i, i+1)
		}
		if val == "" {
			return slices.Delete(slices.Clone(argv), i, i+2)
		}
		out := slices.Clone(argv)
		out[i+1] = val
		return out
	}
	tests := []struct {
		tool, opt, val, msg string
	}{
		{"sping", "-id", "", "-id must be scmp_echo"},
		{"sping", "-id", "pingpong_client", "-id must be scmp_echo"},
		{"sping", "-interval", "", "-interval must be"},
		{"sping", "-interval", "1000", "-interval must be"},
		{"sping", "-c", "", "-c must be"},
		{"sping", "-c", "0", "-c must be"},
		{"sping", "-timeout", "", "-timeout must be"},
		{"sping", "-timeout", "3000s", "-timeout must be"},
		{"sping", "-remote", "", "-remote is missing"},
		{"sping", "-local", "0", "-local must be an address"},
		{"pping", "-id", "scmp_echo", "-id must be pingpong_client"},
		{"pping", "-mode", "", "-mode must be client"},
		{"pping", "-mode", "server", "-mode must be client"},
		{"pping", "-count", "", "-count must be"},
		{"pping", "-timeout", "3000s", "-timeout must be"},
		{"pping", "-format", "", "-format must be"},
		{"pping", "-format", `"%[3]s : %[5]s"`, "-format must be"},
		{"pping", "-format", "%[3]s", "-format must be"},
		{"pping", "-remote", "", "-remote is missing"},
		{"pping", "-local", "0", "-local must be an address"},
		{"pping", "-aggregate", "", "-aggregate is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.tool+tt.opt+"="+tt.val, func(t *testing.T) {
			s := scionTools(t, "1-ff00:0:110,[ok.example]", "1-ff00:0:111,[127.0.0.2]", nil)[tt.tool]
			argv := edit(s.Argv(r), tt.opt, tt.val)
			stdout, stderr, code, _ := runStandIn(t, context.Background(), argv)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tt.msg) {
				t.Errorf("argv %q: exit %d, stdout %q, stderr %q; want exit 2, no stdout, stderr with %q",
					argv, code, stdout, stderr, tt.msg)
			}
		})
	}
	t.Run("option without value", func(t *testing.T) {
		argv := []string{standIn(t, "scmp_fping"), "-id", "scmp_echo", "-interval", "1000ms", "-c", "3", "-timeout", "3000ms", "-remote"}
		if _, stderr, code, _ := runStandIn(t, context.Background(), argv); code != 2 || !strings.Contains(stderr, "needs a value") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestSCIONStandInKilled runs the stand-ins that do not finish, kills them after a second,
// and parses what they printed until then.
func TestSCIONStandInKilled(t *testing.T) {
	r := Round{Pings: 5, Interval: time.Second, Timeout: 3 * time.Second}
	tests := []struct {
		host string
		want []time.Duration
	}{
		{"1-ff00:0:110,[partial.example]", []time.Duration{ms(1.25), ms(2.25), L, L, L}},
		{"1-ff00:0:110,[hang.example]", []time.Duration{L, L, L, L, L}},
	}
	for _, tt := range tests {
		for name, s := range scionTools(t, tt.host, "", nil) {
			t.Run(name+"/"+tt.host, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				start := time.Now()
				stdout, _, code, _ := runStandIn(t, ctx, s.Argv(r))
				if d := time.Since(start); code != -1 || d > 10*time.Second {
					t.Errorf("exit %d after %v; want it killed after about 1 s", code, d)
				}
				if got := s.Parse([]byte(stdout), r); !slices.Equal(got, tt.want) {
					t.Errorf("Parse(%q) =\n %v\nwant\n %v", stdout, got, tt.want)
				}
			})
		}
	}
}
