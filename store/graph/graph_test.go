package graph

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLossBuckets(t *testing.T) {
	for _, c := range []struct {
		pings int
		want  string
	}{
		{20, "0 #26ff00, 1 #00b8ff, 2 #0059ff, 3 #7e00ff, 4-5 #ff00ff, 6-10 #ff5500, 11-19 #ff0000, 20/20 #a00000"},
		{100, "0 #26ff00, 1 #00b8ff, 2-5 #0059ff, 6-10 #7e00ff, 11-25 #ff00ff, 26-50 #ff5500, 51-99 #ff0000, 100/100 #a00000"},
		// Smokeping's table keyed by threshold: p-1 and p replace the equal thresholds.
		{5, "0 #26ff00, 1 #00b8ff, 2 #0059ff, 3 #7e00ff, 4 #ff0000, 5/5 #a00000"},
		{3, "0 #26ff00, 1 #00b8ff, 2 #ff0000, 3/3 #a00000"},
		{1, "0 #26ff00, 1/1 #a00000"},
	} {
		var got []string
		for _, b := range lossBuckets(c.pings) {
			got = append(got, fmt.Sprintf("%s #%02x%02x%02x", b.Label, b.Color.R, b.Color.G, b.Color.B))
		}
		if s := strings.Join(got, ", "); s != c.want {
			t.Errorf("%d pings: %s\nwant %s", c.pings, s, c.want)
		}
	}
}

func TestLossColor(t *testing.T) {
	b := lossBuckets(20)
	for _, c := range []struct {
		loss float64
		want uint32
	}{
		{0, 0x26ff00}, {0.2, 0x00b8ff}, {1, 0x00b8ff}, {1.01, 0x0059ff}, {4.5, 0xff00ff},
		{10, 0xff5500}, {19, 0xff0000}, {19.5, 0xa00000}, {20, 0xa00000},
	} {
		if got := lossColor(b, c.loss); got != rgb(c.want) {
			t.Errorf("loss %v: %v, want #%06x", c.loss, got, c.want)
		}
	}
}

func TestRTTScale(t *testing.T) {
	for _, c := range []struct {
		want   float64
		top    float64
		labels []string
	}{
		{0.0186, 0.020, []string{"0", "5 ms", "10 ms", "15 ms", "20 ms"}},
		{0.095, 0.100, []string{"0", "20 ms", "40 ms", "60 ms", "80 ms", "100 ms"}},
		{0.00047, 0.0005, []string{"0", "100 µs", "200 µs", "300 µs", "400 µs", "500 µs"}},
		{1.2, 1.5, []string{"0", "0.5 s", "1.0 s", "1.5 s"}},
		{math.NaN(), 0.001, []string{"0", "0.2 ms", "0.4 ms", "0.6 ms", "0.8 ms", "1.0 ms"}}, // no data
	} {
		s := newRTTScale(c.want)
		var labels []string
		for _, tk := range s.Ticks(0, s.top) {
			labels = append(labels, tk.Label)
		}
		if math.Abs(s.top-c.top) > 1e-12 || !slices.Equal(labels, c.labels) {
			t.Errorf("scale for %v: top %v, labels %q; want %v, %q", c.want, s.top, labels, c.top, c.labels)
		}
	}
}

func TestLegendFigures(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{rtt(0.0186432), "18.6 ms"}, {rtt(0.123456), "123 ms"}, {rtt(0.0012345), "1.23 ms"},
		{rtt(0.000248), "248 µs"}, {rtt(0.0009997), "1.00 ms"}, {rtt(0.9996), "1.00 s"},
		{rtt(2.5), "2.50 s"}, {rtt(math.NaN()), "–"},
		{percent(0), "0 %"}, {percent(3.1111), "3.11 %"}, {percent(35), "35.0 %"}, {percent(100), "100 %"},
		{percent(math.NaN()), "–"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// TestTimeTicks checks the labels of the time axis: local hours, also on the day the
// clocks go forward, and the scale a span of a given width gets.
func TestTimeTicks(t *testing.T) {
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	tick := style(sans, tickSize, greyText)
	width := func(s string) float64 { return tick.Width(s).Points() }
	// The clocks went forward at 02:00 on 29 March 2026.
	end := time.Date(2026, 3, 29, 22, 0, 0, 0, zurich)
	for _, c := range []struct {
		span   time.Duration
		labels []string
	}{
		{3 * time.Hour, []string{"19:00", "19:30", "20:00", "20:30", "21:00", "21:30", "22:00"}},
		// 24 hours back from 22:00 is 21:00 of the day before, and from 00:00 to 03:00
		// are two hours.
		{24 * time.Hour, []string{"21:00", "00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"}},
		{7 * 24 * time.Hour, []string{"Mon 23", "Tue 24", "Wed 25", "Thu 26", "Fri 27", "Sat 28", "Sun 29"}},
		{30 * 24 * time.Hour, []string{"Mar 2", "Mar 9", "Mar 16", "Mar 23"}},
		{365 * 24 * time.Hour, []string{"Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Jan", "Feb", "Mar"}},
	} {
		start := end.Add(-c.span)
		tt := timeTicks{chooseTimeScale(c.span, 600, width, textSize), zurich}
		var labels []string
		minor := 0
		for _, tk := range tt.Ticks(float64(start.Unix()), float64(end.Unix())) {
			if tk.IsMinor() {
				minor++
			} else {
				labels = append(labels, tk.Label)
			}
		}
		if !slices.Equal(labels, c.labels) || minor == 0 {
			t.Errorf("%v: labels %q and %d minor ticks, want %q and some", c.span, labels, minor, c.labels)
		}
	}
}

// TestReduce consolidates rows as rrd_reduce_data does: the average of the known values,
// a partial row at either end unknown, and the start moved back to the new step.
func TestReduce(t *testing.T) {
	nan := math.NaN()
	rows := [][]float64{{1, nan}, {2, nan}, {3, 7}, {nan, nan}, {5, 1}, {6, 2}}
	// Rows of 60 s from 60 to 420, to 120 s: 60-120 is half a row, 360-420 too.
	got, start, step, err := reduce(rows, 60, 420, 60, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{{nan, nan}, {2.5, 7}, {5, 1}, {nan, nan}}
	same := func(a, b []float64) bool {
		return slices.EqualFunc(a, b, func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) })
	}
	if start != 0 || step != 120 || !slices.EqualFunc(got, want, same) {
		t.Errorf("reduce: %v from %d every %d, want %v from 0 every 120", got, start, step, want)
	}
}

func TestLossColorExported(t *testing.T) {
	for _, c := range []struct {
		loss, pings int
		want        uint32
	}{
		{0, 20, 0x26ff00}, {1, 20, 0x00b8ff}, {5, 20, 0xff00ff}, {19, 20, 0xff0000}, {20, 20, 0xa00000},
		{0, 1, 0x26ff00}, {1, 1, 0xa00000}, {0, 0, 0x26ff00}, // no pings: no loss to colour
	} {
		if got := LossColor(c.loss, c.pings); got != rgb(c.want) {
			t.Errorf("%d of %d lost: %v, want #%06x", c.loss, c.pings, got, c.want)
		}
	}
}

func TestParsePeriod(t *testing.T) {
	const day = 24 * time.Hour
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"day", day, ""}, {"week", 7 * day, ""}, {"month", 30 * day, ""}, {"year", 365 * day, ""},
		{"5400", 90 * time.Minute, ""}, {"36h", 36 * time.Hour, ""}, {"1s", time.Second, ""},
		{"fortnight", 0, `"fortnight": want day, week, month, year, seconds or a duration`},
		{"0", 0, `"0"`}, {"-5", 0, `"-5"`}, {"500ms", 0, `"500ms"`}, {"99999999999999", 0, `"99999999999999"`}, {"87601h", 0, `"87601h"`},
	} {
		got, err := ParsePeriod(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, %v; want an error with %q", c.in, got, err, c.err)
			}
		case err != nil || got != c.want:
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
