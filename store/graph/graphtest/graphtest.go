// Package graphtest writes main.rrd files of realistic rounds through pingmachine's own
// store, for the tests of the graph and for the README's example picture: an RTT that
// rises in office hours, jitter with a long tail, and episodes of congestion, loss, an
// outage and a stopped daemon (no rounds at all).
package graphtest

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pingmachine/store"
)

// Episode is a stretch of time with other conditions than the usual.
type Episode struct {
	From, To time.Duration // after the start of the day, in the data's time zone
	Extra    time.Duration // added to every RTT
	Loss     float64       // probability that a ping is lost
	Stopped  bool          // no rounds at all: the daemon was not running
}

// Day is the episodes of every day; the example picture shows one such day.
var Day = []Episode{
	{From: 2*time.Hour + 10*time.Minute, To: 2*time.Hour + 50*time.Minute, Stopped: true},
	{From: 7*time.Hour + 40*time.Minute, To: 8*time.Hour + 25*time.Minute, Extra: 12 * time.Millisecond, Loss: 0.04},
	{From: 11*time.Hour + 5*time.Minute, To: 11*time.Hour + 20*time.Minute, Loss: 1},
	{From: 14*time.Hour + 30*time.Minute, To: 15*time.Hour + 35*time.Minute, Extra: 30 * time.Millisecond, Loss: 0.25},
	{From: 19 * time.Hour, To: 19*time.Hour + 25*time.Minute, Extra: 4 * time.Millisecond, Loss: 0.06},
	{From: 21*time.Hour + 45*time.Minute, To: 22 * time.Hour, Extra: 60 * time.Millisecond, Loss: 0.45},
}

// Write writes the rounds of an order with the given step and pings from start to end
// (exclusive) into base/output/id/main.rrd through a store, as the daemon would; base
// gets the output/ and archive/ directories the store needs. Days follow Day in loc,
// and the seed makes the jitter and the losses.
func Write(tb testing.TB, base, id string, step time.Duration, pings int, start, end time.Time, loc *time.Location, seed uint64) {
	tb.Helper()
	for _, d := range []string{"output", "archive"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	now := start
	st, err := store.Open(context.Background(), base, store.Options{Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Prepare(store.Series{ID: id, Step: step, Pings: pings, RRDTemplate: "smokeping"}); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	for t := start.Truncate(step).Add(step); t.Before(end); t = t.Add(step) {
		now = t.Add(step)
		rtts, ok := Round(rng, t.In(loc), pings)
		if !ok {
			continue
		}
		if err := st.Write(store.Result{ID: id, Time: t, Step: step, RTTs: rtts}); err != nil {
			tb.Fatal(err)
		}
	}
}

// Round returns the RTTs of one round at t (negative for a lost ping), or false when the
// daemon was stopped.
func Round(rng *rand.Rand, t time.Time, pings int) ([]time.Duration, bool) {
	y, m, d := t.Date()
	since := t.Sub(time.Date(y, m, d, 0, 0, 0, 0, t.Location()))
	var ep Episode
	for _, e := range Day {
		if since >= e.From && since < e.To {
			ep = e
		}
	}
	if ep.Stopped {
		return nil, false
	}
	// Office hours: up to 7 ms more from 08:00 to 18:00, smoothly.
	hours := since.Hours()
	busy := 0.0
	if hours > 8 && hours < 18 {
		busy = math.Pow(math.Sin(math.Pi*(hours-8)/10), 2)
	}
	base := 18*time.Millisecond + time.Duration(busy*7e6) + ep.Extra
	loss := max(0.002, ep.Loss)
	rtts := make([]time.Duration, pings)
	for i := range rtts {
		if rng.Float64() < loss {
			rtts[i] = -1
			continue
		}
		jitter := time.Duration(math.Abs(rng.NormFloat64()) * 1.2e6 * (1 + busy))
		if rng.Float64() < 0.04 {
			jitter += time.Duration(rng.ExpFloat64() * 15e6) // the long tail
		}
		rtts[i] = base + jitter
	}
	return rtts, true
}
