package adapter

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// SCION measures round trips over SCION with the scmp_fping (sping) or pingpong (pping) tool.
//
// It is what the Perl SPing/PPing probes meant to run, with their bugs fixed: the command is an
// argv (no su, no shell, no "cd $SC &&": whoever runs it sets the user and the working directory),
// the timeout is given in milliseconds ("3000ms", not "3000s"), -local is left out when there is
// no source address (never "-local 0"), and each order runs its own process for its one remote.
//
// sping:
//
//	<Program> -id scmp_echo -interval <i>ms -c <pings> -timeout <t>ms -remote <Host> [-local <Source>] <Flags...>
//
// pping:
//
//	<Program> -id pingpong_client -mode client -interval <i>ms -count <pings> -timeout <t>ms
//	    -format "%[3]s : %[5]s" -remote <Host> [-local <Source>] -aggregate <Flags...>
//
// Both tools print an fping -C style summary on stdout, "<remote> : <v1> <v2> ... <vN>", with
// each value an RTT in milliseconds or "-" for a lost ping; see Parse.
type SCION struct {
	Program string   // full path of scmp_fping or pingpong (the daemon builds it from $SC or a flag)
	Pong    bool     // true: pingpong (pping) command line; false: scmp_fping (sping)
	Host    string   // the SCION remote address
	Source  string   // local address, "" for none
	Flags   []string // extra arguments, already split
}

// SCION program names, used as argv[0] (looked up in PATH) when Program is empty.
const (
	scmpFpingName = "scmp_fping"
	pingpongName  = "pingpong"
	// pingpongFormat makes pingpong print its aggregate line as "<remote> : <rtts>".
	pingpongFormat = "%[3]s : %[5]s"
)

// Argv is the tool's command line for one round. Interval and Timeout are passed as whole
// milliseconds (rounded to the nearest one, negative as 0) with an "ms" suffix. Flags follow
// at the end, each as its own argument, as given: nothing in them is interpreted.
func (s *SCION) Argv(r Round) []string {
	prog := s.Program
	if prog == "" {
		prog = scmpFpingName
		if s.Pong {
			prog = pingpongName
		}
	}
	argv := make([]string, 0, 20+len(s.Flags))
	argv = append(argv, prog)
	if s.Pong {
		argv = append(argv,
			"-id", "pingpong_client",
			"-mode", "client",
			"-interval", msArg(r.Interval),
			"-count", strconv.Itoa(r.Pings),
			"-timeout", msArg(r.Timeout),
			"-format", pingpongFormat,
			"-remote", s.Host)
	} else {
		argv = append(argv,
			"-id", "scmp_echo",
			"-interval", msArg(r.Interval),
			"-c", strconv.Itoa(r.Pings),
			"-timeout", msArg(r.Timeout),
			"-remote", s.Host)
	}
	if s.Source != "" {
		argv = append(argv, "-local", s.Source)
	}
	if s.Pong {
		argv = append(argv, "-aggregate")
	}
	return append(argv, s.Flags...)
}

// msArg formats d as whole milliseconds with an "ms" suffix, the form the SCION tools'
// duration flags take: 3s is "3000ms".
func msArg(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + "ms"
}

// Parse reads the tool's stdout, fping -C style, and always returns exactly r.Pings entries
// (none if r.Pings < 1).
//
// Summary lines: a line is a summary line when its first field is followed by a field that is
// exactly ":" and then by a value ("-" or a number), like fping's "<host> : <v1> ... <vN>".
// Other lines are ignored: headers, warnings, "host: message" errors, and lines for the host
// whose first word after the colon is not a value (progress lines such as "host : [0], 64 bytes").
//
// Which line: the first summary line whose first field equals s.Host exactly. If there is none,
// and every summary line in the output names one and the same remote, the first of them is taken:
// the tool measures only the one remote it was given, so its summary is about s.Host even when it
// prints the address in another notation (for example "1-ff00:0:110,127.0.0.1" for
// "1-ff00:0:110,[127.0.0.1]"). Summary lines for several other remotes are ambiguous: all lost.
//
// Values: up to r.Pings tokens after the colon are read in order. "-" is a lost ping. A number
// (digits with an optional decimal point, in milliseconds) is an RTT; 0 is kept as an RTT of 0.
// Anything else (garbage, a negative or signed number, an exponent, a value too large for a
// time.Duration) ends the reading: that ping and all after it are lost. Values beyond r.Pings
// are ignored; missing ones are lost.
//
// Cut output: the last token of the output is dropped (that ping counts as lost) when no
// whitespace follows it, because a process killed at the deadline may have been stopped in the
// middle of writing it ("12.3" of "12.345"). The tools end their lines with a newline, so a
// complete run loses nothing to this rule.
func (s *SCION) Parse(stdout []byte, r Round) []time.Duration {
	n := max(r.Pings, 0)
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = Lost
	}
	if n == 0 {
		return out
	}

	text := string(stdout)
	cut := text != "" && !isSpace(text[len(text)-1])
	lines := strings.Split(text, "\n")

	var exact, first []string // value tokens of the chosen summary lines
	remotes := 0
	var firstRemote string
	for i, line := range lines {
		f := strings.FieldsFunc(line, isSpaceRune)
		if cut && i == len(lines)-1 && len(f) > 0 {
			f = f[:len(f)-1] // the token being written when the output stopped
		}
		if !isSummary(f) {
			continue
		}
		if f[0] == s.Host {
			exact = f[2:]
			break
		}
		if first == nil {
			first, firstRemote, remotes = f[2:], f[0], 1
		} else if f[0] != firstRemote {
			remotes++
		}
	}
	vals := exact
	if vals == nil && remotes == 1 {
		vals = first
	}

	for i, tok := range vals {
		if i == n {
			break
		}
		if tok == "-" {
			continue
		}
		d, ok := msValue(tok)
		if !ok {
			break
		}
		out[i] = d
	}
	return out
}

// isSummary tells whether the fields of a line are "<remote> : <value> ...".
func isSummary(f []string) bool {
	if len(f) < 3 || f[1] != ":" {
		return false
	}
	if f[2] == "-" {
		return true
	}
	_, ok := msValue(f[2])
	return ok
}

// msValue parses an RTT in milliseconds: digits with at most one decimal point, at least one digit.
func msValue(tok string) (time.Duration, bool) {
	digits, dots := 0, 0
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return 0, false
		}
	}
	if digits == 0 || dots > 1 {
		return 0, false
	}
	v, err := strconv.ParseFloat(tok, 64)
	if err != nil {
		return 0, false
	}
	ns := math.Round(v * float64(time.Millisecond))
	if ns >= math.MaxInt64 {
		return 0, false
	}
	return time.Duration(ns), true
}

// isSpaceRune is isSpace for strings.FieldsFunc: fields are split on ASCII whitespace only.
func isSpaceRune(r rune) bool { return r < 0x80 && isSpace(byte(r)) }

// isSpace tells whether c is ASCII whitespace.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}
