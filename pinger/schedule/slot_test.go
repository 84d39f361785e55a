package schedule

import (
	"fmt"
	"testing"
	"time"

	"pingmachine/store"
)

func TestSlotAfter(t *testing.T) {
	at := func(s int64, ms int) time.Time { return time.Unix(s, 0).Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		now   time.Time
		step  time.Duration
		phase time.Duration
		last  time.Time
		want  time.Time
	}{
		{at(600, 0), 60 * time.Second, 0, time.Time{}, at(600, 0)},
		{at(600, 1), 60 * time.Second, 0, time.Time{}, at(660, 0)},
		{at(605, 0), 60 * time.Second, 10 * time.Second, time.Time{}, at(610, 0)},
		{at(615, 0), 60 * time.Second, 10 * time.Second, time.Time{}, at(670, 0)},
		// Never twice in one step: the first round of a new order ran at 601, late in
		// no step, so the next is in the following step even though 610 is still ahead.
		{at(601, 0), 60 * time.Second, 10 * time.Second, at(601, 0), at(670, 0)},
		// After a round that overran its step, the next slot still ahead.
		{at(725, 0), 60 * time.Second, 10 * time.Second, at(610, 0), at(730, 0)},
		// A step that does not divide a day: slots are multiples of the step in Unix time.
		{at(100, 0), 7 * time.Second, 2 * time.Second, time.Time{}, at(100, 0)},
		{at(100, 1), 7 * time.Second, 2 * time.Second, time.Time{}, at(107, 0)},
		// A changed step: last is judged with the new step.
		{at(1000, 0), 300 * time.Second, 0, at(960, 0), at(1200, 0)},
	}
	for _, tt := range tests {
		got := slotAfter(tt.now, tt.step, tt.phase, tt.last)
		if !got.Equal(tt.want) {
			t.Errorf("slotAfter(%d.%03d, %v, %v, %v) = %d.%03d, want %d.%03d", tt.now.Unix(), tt.now.Nanosecond()/1e6,
				tt.step, tt.phase, tt.last.Unix(), got.Unix(), got.Nanosecond()/1e6, tt.want.Unix(), tt.want.Nanosecond()/1e6)
		}
		// Every slot stamps its round uniquely: one step after last's.
		if !tt.last.IsZero() && !store.Stamp(got, tt.step).After(store.Stamp(tt.last, tt.step)) {
			t.Errorf("slot %v has the stamp of the previous round %v", got, tt.last)
		}
	}
}

func TestPhaseSpread(t *testing.T) {
	const orders, buckets = 10000, 10
	step := 60 * time.Second
	var count [buckets]int
	for i := range orders {
		id := fmt.Sprintf("app/target%d", i)
		p := phaseOf(id, step)
		if p < 0 || p >= step || p%grid != 0 {
			t.Fatalf("phase %v of %s outside [0, %v) or not on the %v grid", p, id, step, grid)
		}
		if phaseOf(id, step) != p {
			t.Fatalf("phase of %s not stable", id)
		}
		count[p*buckets/step]++
	}
	// A smooth packet rate needs phases spread evenly: each tenth of the step within
	// 10% of its share.
	for i, n := range count {
		if n < orders/buckets*9/10 || n > orders/buckets*11/10 {
			t.Errorf("phases in tenth %d of the step: %d of %d, want about %d", i, n, orders, orders/buckets)
		}
	}
}

func TestCeilTo(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(1_700_000_000_000 + ms) }
	for _, tt := range []struct {
		in   time.Time
		q    time.Duration
		want time.Time
	}{
		{at(0), grid, at(0)},
		{at(1), grid, at(10)},
		{at(9), grid, at(10)},
		{at(10), grid, at(10)},
		{at(995).Add(time.Microsecond), grid, at(1000)},
		{at(1), time.Second, at(1000)},
		{at(500), 500 * time.Millisecond, at(500)},
	} {
		if got := ceilTo(tt.in, tt.q); !got.Equal(tt.want) {
			t.Errorf("ceilTo(%v, %v) = %v, want %v", tt.in.UnixMicro(), tt.q, got.UnixMicro(), tt.want.UnixMicro())
		}
	}
}

func TestQuantum(t *testing.T) {
	tests := []struct {
		name string
		rate float64 // pings a second
		gap  time.Duration
		want time.Duration
	}{
		{"20 orders, 60 s / 20 pings", 20 * 20.0 / 60, 2250 * time.Millisecond, 2 * time.Second},
		{"20 orders, 300 s / 20 pings", 20 * 20.0 / 300, 11850 * time.Millisecond, time.Second},
		{"a gap 23% off 1 s and 2 s", 1, 2600 * time.Millisecond, 500 * time.Millisecond},
		{"one order, a short gap", 1, 900 * time.Millisecond, 100 * time.Millisecond},
		{"one order, a gap of 1 s", 1, time.Second, time.Second},
		{"a gap of 3.9 s", 1, 3900 * time.Millisecond, 500 * time.Millisecond},
		{"a gap below 100 ms", 1, 90 * time.Millisecond, grid},
		{"1,000 orders, 20 s / 5 pings", 1000 * 5.0 / 20, 2600 * time.Millisecond, 500 * time.Millisecond},
		{"at the limit", burst / 0.5, 2600 * time.Millisecond, 500 * time.Millisecond},
		{"just past it", burst/0.5 + 1, 2600 * time.Millisecond, 100 * time.Millisecond},
		{"5,000 orders, 60 s / 20 pings", 5000 * 20.0 / 60, 2250 * time.Millisecond, 50 * time.Millisecond},
		{"10,000 orders, 60 s / 20 pings", 10000 * 20.0 / 60, 2250 * time.Millisecond, grid},
		{"100,000 orders", 100000 * 5.0 / 60, 2600 * time.Millisecond, grid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := quantum(tt.rate, tt.gap)
			if got != tt.want {
				t.Errorf("quantum(%v, %v) = %v, want %v", tt.rate, tt.gap, got, tt.want)
			}
			if 2*time.Second%got != 0 || got%grid != 0 {
				t.Errorf("quantum %v does not divide 2 s or is off the grid", got)
			}
			if lost := tt.gap % got; lost > tt.gap*15/100 {
				t.Errorf("the gap loses %v of %v to the quantum", lost, tt.gap)
			}
		})
	}
}
