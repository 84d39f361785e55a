package store

import (
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Result is one round of an order.
type Result struct {
	ID string
	// Time is the RRD time stamp: for a round that started in step k (k*step <= start <
	// (k+1)*step), (k-1)*step, as the Perl version writes it.
	Time time.Time
	Step time.Duration
	// RTTs holds one entry per ping in send order, negative for a lost ping.
	RTTs []time.Duration
	// Addr is the address an ICMP order pinged (its host, resolved); zero for others.
	Addr netip.Addr
}

// Stamp returns the RRD time stamp of a round that starts at start.
func Stamp(start time.Time, step time.Duration) time.Time {
	t, s := start.Unix(), int64(step/time.Second)
	return time.Unix(t-t%s-s, 0)
}

// received returns the answered pings' RTTs in ascending order.
func (r *Result) received() []time.Duration {
	rtts := make([]time.Duration, 0, len(r.RTTs))
	for _, d := range r.RTTs {
		if d >= 0 {
			rtts = append(rtts, d)
		}
	}
	slices.Sort(rtts)
	return rtts
}

// summary is a round's figures as last_result and main.rrd hold them.
type summary struct {
	loss             int // pings without an answer
	sorted           []time.Duration
	min, median, max time.Duration // valid only if sorted is not empty
}

func (r *Result) summarize() summary {
	s := summary{sorted: r.received()}
	s.loss = len(r.RTTs) - len(s.sorted)
	if n := len(s.sorted); n > 0 {
		// The upper median, as the Perl version takes it everywhere but telegraf.
		s.min, s.median, s.max = s.sorted[0], s.sorted[n/2], s.sorted[n-1]
	}
	return s
}

// rrdValues is the update for main.rrd after the time: loss, median, then the sorted
// RTTs centred among the pings with the lost ones as U, int(loss/2) of them below and
// the rest above (Smokeping's convention).
func (s summary) rrdValues() []string {
	v := make([]string, 0, 2+len(s.sorted)+s.loss)
	v = append(v, strconv.Itoa(s.loss))
	if len(s.sorted) == 0 {
		v = append(v, "U")
	} else {
		v = append(v, seconds(s.median))
	}
	for range s.loss / 2 {
		v = append(v, "U")
	}
	for _, d := range s.sorted {
		v = append(v, seconds(d))
	}
	for range s.loss - s.loss/2 {
		v = append(v, "U")
	}
	return v
}

// seconds formats a duration as the Perl version does: "%.6e" seconds.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'e', 6, 64)
}
