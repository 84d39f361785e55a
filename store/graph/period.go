package graph

import (
	"fmt"
	"strconv"
	"time"
)

// MaxPeriod is the longest span ParsePeriod accepts: main.rrd's archives reach back ten
// years at most.
const MaxPeriod = 3650 * 24 * time.Hour

// ParsePeriod reads the span of a graph as the graph subcommand's -p and the web
// server's ?period= take it: a named period (day, week and month as the Perl
// pingmachine-graph names them, and year), whole seconds, or a Go duration such as 36h.
func ParsePeriod(s string) (time.Duration, error) {
	const day = 24 * time.Hour
	switch s {
	case "day":
		return day, nil
	case "week":
		return 7 * day, nil
	case "month":
		return 30 * day, nil
	case "year":
		return 365 * day, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n <= int64(MaxPeriod/time.Second) {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= time.Second && d <= MaxPeriod {
		return d, nil
	}
	return 0, fmt.Errorf("%q: want day, week, month, year, seconds or a duration such as 36h (1 s to 10 years)", s)
}
