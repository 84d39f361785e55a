package adapter

import (
	"bytes"
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// httping as installed (Debian package httping 2.5-5.2+b1, "HTTPing v2.5"), observed against
// servers on 127.0.0.1:
//
//   - Options used: -g URL (the URL is always the argument of -g), -c count (atoi),
//     -i interval and -t timeout (seconds, read with strtod: fractions work, -t 0 times out at
//     once, a negative -i is refused, a negative -t fails every request with "select()
//     failed"), -I user agent (sent as given, also "" and values starting with "-"; without
//     -I it is "HTTPing v2.5"), -x host:port (HTTP proxy: the request goes to the proxy with
//     the absolute URL, the URL's host is not resolved), -s (show the status after the time).
//     getopt_long takes the word after an option as its value even when it starts with "-".
//   - httping calls setlocale(LC_ALL, ""): under a locale with a decimal comma (de_DE)
//     "-t 0.5" reads as 0 and "-i 1.5" as 1, while "500e-3" reads as 0.5 in every locale.
//     Argv therefore writes whole seconds as integers and other values as "<ms>e-3".
//   - One line per request, flushed at once (a kill loses no whole line), numbered from
//     seq=0; failed requests use up their seq number too. A reply (-s):
//
//     connected to 127.0.0.1:18181 (60 bytes), seq=0 time=  0.64 ms 200 OK
//     connected to 127.0.0.1:18185 (25 bytes), seq=3 time=  0.53 ms 503 Busy
//     connected to 127.0.0.1:18181 (60 bytes), seq=1 time=301.45 ms 200 OK
//
//     Without -s the line ends in "ms " instead. The status text after the code is the
//     server's reason phrase, cut at CR or LF; a reply that is not HTTP ("garbage\r\n\r\n")
//     is an answer with no status. Under other locales the words and the decimal point are
//     translated: "verbinden met ... (60 bytes), volgnr=0 tijd=301,15 ms 200 OK" (nl),
//     "подключено к ... (25 bytes), поряд.н.=2 время=  0,41 мс 503 Busy" (ru), "time=  0,33 ms"
//     (de).
//   - Failures print a line without seq=: "could not connect (Connection refused)" followed by
//     an empty line, "timeout while receiving reply-headers from host", "short read during
//     receiving reply-headers from host", and among others "connect time out", "timeout
//     connecting to host", "connection prematurely closed by peer", "error sending request to
//     host", "select() failed: ..." (all translated under nl and ru too).
//   - Then "--- <url> ping statistics ---", "N connects, M ok, P% failed, time Tms" and, when
//     a request succeeded, "round-trip min/avg/max = a/b/c ms". With -s only 200 counts as
//     ok there. Exit status 127 when no request was ok, else 0; 1 for a usage error or a name
//     that does not resolve.
//   - httping sleeps the interval after every request (also after the last one): requests
//     start RTT+interval apart and a round of timeouts lasts pings*(timeout+interval).
//   - The URL's host must be a name or an IPv4 address: "-g http://[::1]:8080/" fails ("No
//     valid IPv4 or IPv6 address found for [:"), also with -6.

// DefaultUserAgent is sent by httping orders that set none (the Perl version sent an
// empty one by mistake).
const DefaultUserAgent = "pingmachine (httping)"

// HTTPing measures HTTP(S) round trips with httping.
type HTTPing struct {
	Program   string // path or name of httping; "" means "httping"
	URL       string
	UserAgent string // "" means DefaultUserAgent
	Proxy     string // host:port, "" for none
	FailCodes []int  // HTTP statuses that count as a lost ping (http_codes_as_failure)
}

// Argv is httping's command line for one round:
//
//	httping -g <URL> -c <pings> -i <interval> -t <timeout> -I <user agent> -s [-x <proxy>]
//
// Every order value is the argument of its option, so none is ever read as an option. The
// interval and timeout are seconds, rounded up to whole milliseconds (the timeout to at
// least 1 ms: -t 0 would time out at once), written so that every locale reads them. -s
// always: the status of each reply is then on its line, whether or not FailCodes is set.
func (h *HTTPing) Argv(r Round) []string {
	argv := []string{cmp.Or(h.Program, "httping"),
		"-g", h.URL,
		"-c", strconv.Itoa(r.Pings),
		"-i", httpingSeconds(r.Interval, 0),
		"-t", httpingSeconds(r.Timeout, 1),
		"-I", cmp.Or(h.UserAgent, DefaultUserAgent),
		"-s",
	}
	if h.Proxy != "" {
		argv = append(argv, "-x", h.Proxy)
	}
	return argv
}

// httpingSeconds writes d in seconds, rounded up to whole milliseconds and at least minMS
// of them: "15" for whole seconds, "1500e-3" otherwise. strtod reads the exponent form the
// same in every locale, a decimal point not.
func httpingSeconds(d time.Duration, minMS int64) string {
	ms := max(int64((d+time.Millisecond-1)/time.Millisecond), minMS)
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10)
	}
	return strconv.FormatInt(ms, 10) + "e-3"
}

// httpingReply matches a reply line by its shape, not by its words, which httping
// translates: ", <seq label>=<n> <time label>=<spaces><ms, decimal point or comma>
// <unit>" and, with -s, " <status>". The first match on a line is httping's own; text the
// server chose (the reason phrase) only follows it.
var httpingReply = regexp.MustCompile(`, [^\s=]+=(\d+) [^\s=]+=\s*(\d+(?:[.,]\d+)?) [^\s\d]+(?: (\d{3})(?:\s|$))?`)

// Parse reads httping's output: a reply line answers the ping of its seq number, unless its
// status is one of FailCodes; every other ping is lost (failure lines, lines that cannot be
// read, the statistics). Only whole lines are read: a line cut off by a kill at the deadline
// is not. Pings are placed by seq, so a missing line loses the right ping, and seq numbers
// beyond the round, or seen before, are ignored. An RTT of 0 is an answer.
func (h *HTTPing) Parse(stdout []byte, r Round) []time.Duration {
	rtts := lostRound(max(r.Pings, 0))
	seen := make([]bool, len(rtts))
	for {
		i := bytes.IndexByte(stdout, '\n')
		if i < 0 {
			break // nothing, or the start of a line the kill cut off
		}
		line := stdout[:i]
		stdout = stdout[i+1:]
		m := httpingReply.FindSubmatch(line)
		if m == nil {
			continue
		}
		seq, err := strconv.Atoi(string(m[1]))
		if err != nil || seq >= len(rtts) || seen[seq] {
			continue
		}
		rtt, ok := httpingMS(m[2])
		if !ok {
			continue
		}
		seen[seq] = true
		if len(m[3]) > 0 {
			status, _ := strconv.Atoi(string(m[3]))
			if slices.Contains(h.FailCodes, status) {
				continue
			}
		}
		rtts[seq] = rtt
	}
	return rtts
}

// httpingMS converts httping's milliseconds ("0.64", "301,15": two decimals, a point or a
// comma) to a Duration exactly.
func httpingMS(b []byte) (time.Duration, bool) {
	whole, frac := b, []byte(nil)
	if i := bytes.IndexAny(b, ".,"); i >= 0 {
		whole, frac = b[:i], b[i+1:]
	}
	w, err := strconv.ParseInt(string(whole), 10, 64)
	if err != nil || w > int64(time.Hour/time.Millisecond) {
		return 0, false
	}
	d := time.Duration(w) * time.Millisecond
	unit := time.Millisecond / 10
	for _, c := range frac {
		if unit == 0 {
			break // finer than a nanosecond
		}
		d += time.Duration(c-'0') * unit
		unit /= 10
	}
	return d, true
}
