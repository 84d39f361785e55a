package store

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rtts builds a round's RTTs from milliseconds in send order; a negative entry is a lost
// ping.
func rtts(ms ...float64) []time.Duration {
	d := make([]time.Duration, len(ms))
	for i, v := range ms {
		if v < 0 {
			d[i] = -1
		} else {
			d[i] = time.Duration(v * float64(time.Millisecond))
		}
	}
	return d
}

func TestStamp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start time.Time
		step  time.Duration
		want  int64
	}{
		// 1_700_000_000 = 28_333_333*60 + 20: step k starts at 1_699_999_980.
		{"60 inside step", time.Unix(1_700_000_000, 0), time.Minute, 1_699_999_920},
		{"60 at boundary", time.Unix(1_699_999_980, 0), time.Minute, 1_699_999_920},
		{"60 last second of step", time.Unix(1_700_000_039, 999_999_999), time.Minute, 1_699_999_920},
		{"60 next boundary", time.Unix(1_700_000_040, 0), time.Minute, 1_699_999_980},
		{"60 just before boundary", time.Unix(1_699_999_979, 999_999_999), time.Minute, 1_699_999_860},
		// 1_700_000_000 = 5_666_666*300 + 200.
		{"300 inside step", time.Unix(1_700_000_000, 0), 5 * time.Minute, 1_699_999_500},
		{"300 at boundary", time.Unix(1_699_999_800, 0), 5 * time.Minute, 1_699_999_500},
		// 7 s does not divide a day: 1_700_000_000 = 242_857_142*7 + 6.
		{"7 inside step", time.Unix(1_700_000_000, 0), 7 * time.Second, 1_699_999_987},
		{"7 at boundary", time.Unix(1_699_999_994, 0), 7 * time.Second, 1_699_999_987},
		{"7 fraction at boundary", time.Unix(1_699_999_994, 500_000_000), 7 * time.Second, 1_699_999_987},
		{"7 last second", time.Unix(1_700_000_000, 900_000_000), 7 * time.Second, 1_699_999_987},
		{"7 next boundary", time.Unix(1_700_000_001, 0), 7 * time.Second, 1_699_999_994},
		{"20 README example", time.Unix(1_310_116_524, 0), 20 * time.Second, 1_310_116_500},
		{"1 s", time.Unix(1_700_000_000, 300), time.Second, 1_699_999_999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Stamp(tc.start, tc.step)
			if got.Unix() != tc.want || got.Nanosecond() != 0 {
				t.Errorf("Stamp(%v, %v) = %d.%09d, want %d", tc.start.Unix(), tc.step, got.Unix(), got.Nanosecond(), tc.want)
			}
			// The definition: a start in step k gives (k-1)*step.
			s := int64(tc.step / time.Second)
			k := tc.start.Unix() / s
			if got.Unix() != (k-1)*s {
				t.Errorf("Stamp = %d, want (k-1)*step = %d", got.Unix(), (k-1)*s)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name             string
		rtts             []time.Duration
		loss             int
		sorted           []time.Duration
		min, median, max time.Duration
	}{
		{"one", rtts(5), 0, rtts(5), 5 * ms, 5 * ms, 5 * ms},
		{"odd count", rtts(3, 1, 2), 0, rtts(1, 2, 3), ms, 2 * ms, 3 * ms},
		{"even count takes the upper median", rtts(4, 1, 3, 2), 0, rtts(1, 2, 3, 4), ms, 3 * ms, 4 * ms},
		{"two", rtts(9, 1), 0, rtts(1, 9), ms, 9 * ms, 9 * ms},
		{"losses odd received", rtts(-1, 7, -1, 3, 5), 2, rtts(3, 5, 7), 3 * ms, 5 * ms, 7 * ms},
		{"losses even received", rtts(8, -1, 2, 6, -1, -1, 4), 3, rtts(2, 4, 6, 8), 2 * ms, 6 * ms, 8 * ms},
		{"zero RTT counts as received", rtts(0, -1, 1), 1, rtts(0, 1), 0, ms, ms},
		{"duplicates", rtts(2, 2, 1, 2), 0, rtts(1, 2, 2, 2), ms, 2 * ms, 2 * ms},
		{"all lost", rtts(-1, -1, -1), 3, []time.Duration{}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.rtts)
			r := Result{RTTs: tc.rtts}
			s := r.summarize()
			if s.loss != tc.loss {
				t.Errorf("loss = %d, want %d", s.loss, tc.loss)
			}
			if !slices.Equal(s.sorted, tc.sorted) {
				t.Errorf("sorted = %v, want %v", s.sorted, tc.sorted)
			}
			if len(tc.sorted) > 0 && (s.min != tc.min || s.median != tc.median || s.max != tc.max) {
				t.Errorf("min/median/max = %v/%v/%v, want %v/%v/%v", s.min, s.median, s.max, tc.min, tc.median, tc.max)
			}
			if !slices.Equal(r.RTTs, in) {
				t.Errorf("summarize changed the RTTs in send order: %v, was %v", r.RTTs, in)
			}
		})
	}
}

func TestRRDValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		rtts []time.Duration
		want string
	}{
		{"no loss", rtts(0.57, 1.2, 0.8), "0:8.000000e-04:5.700000e-04:8.000000e-04:1.200000e-03"},
		{"even count", rtts(4, 1, 3, 2), "0:3.000000e-03:1.000000e-03:2.000000e-03:3.000000e-03:4.000000e-03"},
		// One lost: int(1/2) = 0 below, 1 above.
		{"one lost", rtts(2, -1, 1), "1:2.000000e-03:1.000000e-03:2.000000e-03:U"},
		{"two lost", rtts(-1, 3, 1, -1, 2), "2:2.000000e-03:U:1.000000e-03:2.000000e-03:3.000000e-03:U"},
		// Three lost: 1 below, 2 above.
		{"three lost", rtts(5, -1, -1, 4, -1), "3:5.000000e-03:U:4.000000e-03:5.000000e-03:U:U"},
		{"five lost of eight", rtts(-1, 10, -1, -1, 30, -1, 20, -1), "5:2.000000e-02:U:U:1.000000e-02:2.000000e-02:3.000000e-02:U:U:U"},
		{"one received", rtts(-1, -1, 7, -1), "3:7.000000e-03:U:7.000000e-03:U:U"},
		{"all lost", rtts(-1, -1, -1, -1), "4:U:U:U:U:U"},
		{"all lost odd", rtts(-1, -1, -1), "3:U:U:U:U"},
		{"single ping lost", rtts(-1), "1:U:U"},
		{"single ping", rtts(180000), "0:1.800000e+02:1.800000e+02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{RTTs: tc.rtts}
			v := r.summarize().rrdValues()
			if got := strings.Join(v, ":"); got != tc.want {
				t.Errorf("rrdValues = %s\nwant        %s", got, tc.want)
			}
			if len(v) != 2+len(tc.rtts) {
				t.Errorf("%d values, want loss, median and one per ping (%d)", len(v), 2+len(tc.rtts))
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{570 * time.Microsecond, "5.700000e-04"},
		{0, "0.000000e+00"},
		{time.Nanosecond, "1.000000e-09"},
		{45 * time.Microsecond, "4.500000e-05"},
		{123456789, "1.234568e-01"}, // rounded to 7 significant digits
		{999999940, "9.999999e-01"},
		{999999960, "1.000000e+00"}, // rounding carries into the exponent
		{1500 * time.Millisecond, "1.500000e+00"},
		{3 * time.Minute, "1.800000e+02"},
		{812345 * time.Nanosecond, "8.123450e-04"},
	} {
		got := seconds(tc.d)
		if got != tc.want {
			t.Errorf("seconds(%v) = %q, want %q", tc.d, got, tc.want)
		}
		if f := fmt.Sprintf("%.6e", tc.d.Seconds()); got != f {
			t.Errorf("seconds(%v) = %q, Go's %%.6e gives %q", tc.d, got, f)
		}
		// The same as C's (and Perl's) %.6e: coreutils printf calls the C library.
		c, err := exec.Command("/usr/bin/printf", "%.6e", strconv.FormatFloat(tc.d.Seconds(), 'g', -1, 64)).Output()
		if err != nil {
			t.Fatalf("/usr/bin/printf: %v", err)
		}
		if got != string(c) {
			t.Errorf("seconds(%v) = %q, C's %%.6e gives %q", tc.d, got, c)
		}
	}
}
