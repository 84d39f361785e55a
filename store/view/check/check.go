// Package check judges orders as a Nagios or Icinga plugin does, after the Monitoring
// Plugins guidelines: a status (OK, WARNING, CRITICAL or UNKNOWN, the plugin's exit
// code) and one line of output, its performance data after a '|'. It judges the last
// result of each order, as the store's view reads it.
package check

import (
	"cmp"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"pingmachine/store/view"
)

// Status is a plugin's verdict, and its exit code.
type Status int

const (
	OK       Status = 0
	Warning  Status = 1
	Critical Status = 2
	Unknown  Status = 3
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// worse reports whether a is worse than b: OK, UNKNOWN, WARNING, CRITICAL from best to
// worst, as the Monitoring Plugins' max_state_alt has them, so that an order that cannot
// be judged is not hidden by others that are fine, nor hides one that is not.
func worse(a, b Status) bool {
	rank := [...]int{OK: 0, Unknown: 1, Warning: 2, Critical: 3}
	return rank[a] > rank[b]
}

// Limits are the thresholds of one level. An order reaches the level when its loss is
// above Loss percent or its median RTT above RTT. A value at the limit does not, as
// "10" in the Monitoring Plugins' ranges alerts above 10.
type Limits struct {
	Loss float64 // percent of the pings of a round
	RTT  time.Duration
}

// Config is what a check asks.
type Config struct {
	Warn, Crit Limits
	// MaxAge is how old a last result may be before the order is UNKNOWN; zero means
	// two steps of the order and 30 s.
	MaxAge time.Duration
}

// Defaults returns the default limits: WARNING above 10% loss (2 pings of 20) or a
// median of 200 ms, CRITICAL above 50% or 1 s.
func Defaults() Config {
	return Config{Warn: Limits{Loss: 10, RTT: 200 * time.Millisecond}, Crit: Limits{Loss: 50, RTT: time.Second}}
}

// defaultMaxAge is how old the last result of an order with the given step may be: two
// steps, after which status calls the order stale, and 30 s more, so that a check run
// just then does not alert on a round that is merely late.
func defaultMaxAge(step time.Duration) time.Duration {
	return 2*step + 30*time.Second
}

// Run reads the orders of base that prefix selects (see view.Selects) and checks them.
// A base directory that cannot be read is UNKNOWN.
func Run(base, prefix string, c Config) (Status, string) {
	v, err := view.Read(base, prefix)
	if err != nil {
		return Unknown, output(Unknown, err.Error(), nil)
	}
	return Check(v, prefix, c)
}

// Check judges the orders of v that prefix selects. One order is judged by its last
// result; the orders below a directory are each judged, and the worst is reported, by
// name, with how many of each status there were. Its output is one line without its
// newline.
func Check(v *view.View, prefix string, c Config) (Status, string) {
	var judged []verdict
	for i := range v.Orders {
		if o := &v.Orders[i]; view.Selects(prefix, o.ID) {
			judged = append(judged, judge(o, v.Time, c))
		}
	}
	if len(judged) == 0 {
		return Unknown, output(Unknown, fmt.Sprintf("no order %s in %s", prefix, filepath.Join(v.Base, "orders")), nil)
	}
	worst := slices.MaxFunc(judged, func(a, b verdict) int {
		switch {
		case worse(a.status, b.status):
			return 1
		case worse(b.status, a.status):
			return -1
		}
		// Of two alike, the one that lost more, then the slower, then the first by id.
		return cmp.Or(cmp.Compare(a.loss, b.loss), cmp.Compare(a.median, b.median), strings.Compare(b.id, a.id))
	})
	one := len(judged) == 1 && judged[0].id == strings.TrimRight(prefix, "/")
	var perf []string
	if len(judged) <= maxNamed {
		for _, j := range judged {
			if j.measured {
				perf = append(perf, j.perfdata(c, !one)...)
			}
		}
	} else {
		perf = summaryPerfdata(judged, c)
	}
	text := worst.text
	if !one {
		text += "; " + counts(judged, prefix)
	}
	return worst.status, output(worst.status, text, perf)
}

// verdict is what check found of one order.
type verdict struct {
	id       string
	status   Status
	text     string
	measured bool          // a recent result was judged: loss and median hold its figures
	loss     float64       // percent
	median   time.Duration // negative when no ping was answered
}

func judge(o *view.Order, now time.Time, c Config) verdict {
	j := verdict{id: o.ID, status: Unknown, median: -1}
	maxAge := cmp.Or(c.MaxAge, defaultMaxAge(o.Step()))
	switch {
	case o.Err != nil:
		j.text = "invalid order: " + o.Err.Error()
	case o.ResultErr != nil:
		j.text = o.ID + ": " + o.ResultErr.Error()
	case o.Result == nil:
		j.text = o.ID + ": no result yet"
	case o.Age(now) > maxAge:
		j.text = fmt.Sprintf("%s: last result %s ago, more than the %d s allowed", o.ID, view.FormatAge(o.Age(now)), maxAge/time.Second)
	default:
		j.measured, j.loss, j.median = true, o.LossPercent(), o.Result.Median
		j.status = OK
		var over []string
		for _, level := range []struct {
			status Status
			limits Limits
		}{{Critical, c.Crit}, {Warning, c.Warn}} {
			if j.loss > level.limits.Loss {
				over = append(over, "loss")
			}
			if j.median > level.limits.RTT {
				over = append(over, "rtt")
			}
			if len(over) > 0 {
				j.status = level.status
				j.text = j.describe(o, now, level.limits, over)
				return j
			}
		}
		j.text = j.describe(o, now, Limits{}, nil)
	}
	return j
}

// describe writes what was measured, and which limits were passed.
func (j verdict) describe(o *view.Order, now time.Time, l Limits, over []string) string {
	s := o.ID + ": " + strconv.FormatFloat(j.loss, 'g', 3, 64) + "% loss"
	if slices.Contains(over, "loss") {
		s += " (more than " + number(l.Loss) + "%)"
	}
	if j.median < 0 {
		s += ", no reply"
	} else {
		s += ", median " + view.FormatRTT(j.median)
	}
	if slices.Contains(over, "rtt") {
		s += " (more than " + view.FormatRTT(l.RTT) + ")"
	}
	return s + ", " + view.FormatAge(o.Age(now)) + " ago"
}

// perfdata is the performance data of a judged order: loss in percent and the median
// RTT in seconds, with the limits, "U" for a median of no reply. Labels name the order
// when a directory is checked.
func (j verdict) perfdata(c Config, named bool) []string {
	label := func(name string) string {
		if !named {
			return name
		}
		// A label may hold any character but '=' and, unless doubled, '\''.
		id := strings.ReplaceAll(strings.ReplaceAll(j.id, "=", "_"), "'", "''")
		return "'" + id + " " + name + "'"
	}
	rtt := "U"
	if j.median >= 0 {
		rtt = number(j.median.Seconds()) + "s"
	}
	return []string{
		fmt.Sprintf("%s=%s%%;%s;%s;0;100", label("loss"), number(j.loss), number(c.Warn.Loss), number(c.Crit.Loss)),
		fmt.Sprintf("%s=%s;%s;%s;0;", label("rtt"), rtt, number(c.Warn.RTT.Seconds()), number(c.Crit.RTT.Seconds())),
	}
}

// maxNamed is how many orders a check gives performance data of each, named: Nagios
// keeps 8 KiB of a plugin's output, about 40 orders' worth, and a graph per order of a
// large directory is not what its check is for.
const maxNamed = 20

// summaryPerfdata is the performance data of a check of more than maxNamed orders: the
// worst loss and the worst median of those measured, with the limits, and how many orders
// have each status.
func summaryPerfdata(judged []verdict, c Config) []string {
	worst := verdict{median: -1}
	n := make(map[Status]int)
	for _, j := range judged {
		n[j.status]++
		if j.measured {
			worst.measured = true
			worst.loss = max(worst.loss, j.loss)
			worst.median = max(worst.median, j.median)
		}
	}
	var perf []string
	if worst.measured {
		perf = worst.perfdata(c, false)
	}
	for _, s := range []Status{OK, Warning, Critical, Unknown} {
		perf = append(perf, fmt.Sprintf("%s=%d;;;0;%d", strings.ToLower(s.String()), n[s], len(judged)))
	}
	return perf
}

// number writes a figure of performance data: decimal, at most 6 digits after the point.
func number(f float64) string {
	return strconv.FormatFloat(math.Round(f*1e6)/1e6, 'f', -1, 64)
}

// counts says how many of the orders checked got each status.
func counts(judged []verdict, prefix string) string {
	n := make(map[Status]int)
	for _, j := range judged {
		n[j.status]++
	}
	var parts []string
	for _, s := range []Status{Critical, Warning, Unknown, OK} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], strings.ToLower(s.String())))
		}
	}
	where := ""
	if p := strings.TrimRight(prefix, "/"); p != "" {
		where = " below " + p
	}
	orders := "orders"
	if len(judged) == 1 {
		orders = "order"
	}
	return fmt.Sprintf("%d %s%s: %s", len(judged), orders, where, strings.Join(parts, ", "))
}

// output is the plugin's line: "PINGMACHINE STATUS - text|perfdata".
func output(s Status, text string, perf []string) string {
	// '|' would start the performance data, and the text must be one line.
	text = strings.NewReplacer("|", "/", "\n", " ").Replace(text)
	line := "PINGMACHINE " + s.String() + " - " + text
	if len(perf) > 0 {
		line += "|" + strings.Join(perf, " ")
	}
	return line
}

// ParseLimits reads the limits of -w and -c: "LOSS%,RTT", such as "10%,200ms" or
// "10,0.2" (the % may be left out; an RTT without a unit is in seconds).
func ParseLimits(s string) (Limits, error) {
	loss, rtt, ok := strings.Cut(s, ",")
	if !ok {
		return Limits{}, fmt.Errorf("%q: expected LOSS%%,RTT such as 10%%,200ms", s)
	}
	var l Limits
	var err error
	l.Loss, err = strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(loss), "%"), 64)
	if err != nil || !(l.Loss >= 0 && l.Loss <= 100) {
		return Limits{}, fmt.Errorf("%q: expected a loss of 0 to 100%%, got %q", s, loss)
	}
	if l.RTT, err = ParseSeconds(strings.TrimSpace(rtt)); err != nil {
		return Limits{}, fmt.Errorf("%q: RTT: %w", s, err)
	}
	return l, nil
}

// ParseSeconds reads a duration: a number of seconds ("0.2") or a Go duration with
// its unit ("200ms", "5m").
func ParseSeconds(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e9 {
			return 0, fmt.Errorf("expected seconds (0.2) or a duration with its unit (200ms), got %q", s)
		}
		d = time.Duration(math.Round(f * float64(time.Second)))
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}
