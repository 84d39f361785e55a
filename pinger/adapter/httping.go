package adapter

import (
	"bytes"
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is sent by httping orders that set none (the Perl version sent an
// empty one by mistake).
const DefaultUserAgent = "pingmachine (httping)"

// HTTPing measures HTTP(S) round trips with httping (2.5, as Debian ships it). Its
// output, with -s, is a line per request in order:
//
//	connected to 127.0.0.1:8080 (159 bytes), seq=0 time=  2.20 ms 200 OK
//	could not connect (Connection refused)
//
// then a statistics block. A request that fails prints an error line without seq=.
type HTTPing struct {
	Program   string // path or name of httping; "" means "httping"
	URL       string
	UserAgent string // "" means DefaultUserAgent
	Proxy     string // host:port, "" for none
	FailCodes []int  // HTTP statuses that count as a lost ping
}

// Argv gives every order value as the argument of its option (-g for the URL), so none
// can be read as an option itself.
func (h *HTTPing) Argv(r Round) []string {
	argv := []string{cmp.Or(h.Program, "httping"),
		"-g", h.URL,
		"-c", strconv.Itoa(r.Pings),
		"-i", seconds(r.Interval),
		"-t", seconds(max(r.Timeout, time.Millisecond)),
		"-I", cmp.Or(h.UserAgent, DefaultUserAgent),
		"-s", // status codes: a failure code is a lost ping
	}
	if h.Proxy != "" {
		argv = append(argv, "-x", h.Proxy)
	}
	return argv
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

var (
	httpingReply = regexp.MustCompile(`seq=(\d+) time=\s*([0-9.]+) ms\s*(\d{3})?`)
	// The failures the Perl version recognised; the statistics line ("... failed")
	// is not one of them.
	httpingFailure = regexp.MustCompile(`could not connect|time out|timeout|short read`)
)

// Parse reads httping's output: a reply line answers the ping of its seq= number (lost
// if its status is a failure code), a failure line takes the next ping's place. A line
// cut off by a kill at the deadline is not read.
func (h *HTTPing) Parse(stdout []byte, r Round) []time.Duration {
	rtts := lostRound(r.Pings)
	if i := bytes.LastIndexByte(stdout, '\n'); i >= 0 {
		stdout = stdout[:i+1]
	} else {
		stdout = nil
	}
	next := 0
	for _, line := range strings.Split(string(stdout), "\n") {
		if m := httpingReply.FindStringSubmatch(line); m != nil {
			seq, err := strconv.Atoi(m[1])
			if err != nil {
				seq = next
			}
			next = seq + 1
			ms, err := strconv.ParseFloat(m[2], 64)
			status, _ := strconv.Atoi(m[3])
			if seq < len(rtts) && err == nil && !slices.Contains(h.FailCodes, status) {
				rtts[seq] = time.Duration(ms * float64(time.Millisecond))
			}
			continue
		}
		if httpingFailure.MatchString(line) {
			next++
		}
	}
	return rtts
}
