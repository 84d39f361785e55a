package graph

import (
	"math"
	"strconv"
	"time"

	"gonum.org/v1/plot"
)

// every is a calendar interval in local time: n seconds from midnight, n days (7 from
// Monday), or n months from January. Exactly one field is set.
type every struct {
	secs, days, months int
}

// approx is the interval's length in seconds, for choosing a scale.
func (e every) approx() float64 {
	return float64(e.secs) + float64(e.days)*86400 + float64(e.months)*30.44*86400
}

// times returns the instants from min to max (inclusive) on the interval's grid in loc.
func (e every) times(min, max time.Time, loc *time.Location) []time.Time {
	y, m, d := min.In(loc).Date()
	var at func(k int) time.Time
	switch {
	case e.secs > 0:
		at = func(k int) time.Time { return time.Date(y, m, d, 0, 0, k*e.secs, 0, loc) }
	case e.days > 0:
		if e.days == 7 {
			d -= (int(time.Date(y, m, d, 0, 0, 0, 0, loc).Weekday()) + 6) % 7 // back to Monday
		}
		at = func(k int) time.Time { return time.Date(y, m, d+k*e.days, 0, 0, 0, 0, loc) }
	default:
		mon := (int(m)-1)/e.months*e.months + 1
		at = func(k int) time.Time { return time.Date(y, time.Month(mon+k*e.months), 1, 0, 0, 0, 0, loc) }
	}
	var ts []time.Time
	for k := 0; ; k++ {
		t := at(k)
		if t.After(max) {
			return ts
		}
		if !t.Before(min) {
			ts = append(ts, t)
		}
	}
}

// timeScale is a choice of labelled (major) and unlabelled (minor) ticks on the time axis.
type timeScale struct {
	major, minor every
	format       string // time.Format layout of the labels
}

// timeScales run from the finest to the coarsest; a graph takes the finest whose labels
// do not crowd each other.
var timeScales = []timeScale{
	{every{secs: 60}, every{secs: 15}, "15:04"},
	{every{secs: 120}, every{secs: 30}, "15:04"},
	{every{secs: 300}, every{secs: 60}, "15:04"},
	{every{secs: 600}, every{secs: 120}, "15:04"},
	{every{secs: 900}, every{secs: 300}, "15:04"},
	{every{secs: 1800}, every{secs: 600}, "15:04"},
	{every{secs: 3600}, every{secs: 900}, "15:04"},
	{every{secs: 7200}, every{secs: 1800}, "15:04"},
	{every{secs: 10800}, every{secs: 3600}, "15:04"},
	{every{secs: 21600}, every{secs: 3600}, "15:04"},
	{every{secs: 43200}, every{secs: 10800}, "Mon 15:04"},
	{every{days: 1}, every{secs: 21600}, "Mon 2"},
	{every{days: 2}, every{secs: 43200}, "Jan 2"},
	{every{days: 7}, every{days: 1}, "Jan 2"},
	{every{months: 1}, every{days: 7}, "Jan"},
	{every{months: 3}, every{months: 1}, "Jan 2006"},
	{every{months: 12}, every{months: 3}, "2006"},
}

// chooseTimeScale returns the finest scale whose labels, each width(label) wide, leave
// at least gap between them when the span is drawn over pixels.
func chooseTimeScale(span time.Duration, pixels float64, width func(string) float64, gap float64) timeScale {
	perSec := pixels / span.Seconds()
	// A wide sample label: two-digit days, hours and minutes.
	sample := time.Date(2006, time.December, 28, 23, 58, 0, 0, time.UTC)
	for _, s := range timeScales {
		if s.major.approx()*perSec >= width(sample.Format(s.format))+gap {
			return s
		}
	}
	return timeScales[len(timeScales)-1]
}

// timeTicks marks the time axis, whose values are Unix seconds, in local time.
type timeTicks struct {
	scale timeScale
	loc   *time.Location
}

func (t timeTicks) Ticks(min, max float64) []plot.Tick {
	from, to := time.Unix(int64(math.Ceil(min)), 0), time.Unix(int64(math.Floor(max)), 0)
	var ticks []plot.Tick
	major := map[int64]bool{}
	for _, at := range t.scale.major.times(from, to, t.loc) {
		major[at.Unix()] = true
		ticks = append(ticks, plot.Tick{Value: float64(at.Unix()), Label: at.In(t.loc).Format(t.scale.format)})
	}
	for _, at := range t.scale.minor.times(from, to, t.loc) {
		if !major[at.Unix()] {
			ticks = append(ticks, plot.Tick{Value: float64(at.Unix())})
		}
	}
	return ticks
}

// rttUnit is how the RTT axis and the legend write seconds: in µs, ms or s, whichever
// keeps the axis's figures between 1 and 1000.
type rttUnit struct {
	name  string
	scale float64 // units per second
}

func unitFor(top float64) rttUnit {
	switch {
	case top < 1e-3:
		return rttUnit{"µs", 1e6}
	case top < 1:
		return rttUnit{"ms", 1e3}
	}
	return rttUnit{"s", 1}
}

// format writes seconds in the unit with the given number of decimals.
func (u rttUnit) format(seconds float64, decimals int) string {
	return strconv.FormatFloat(seconds*u.scale, 'f', decimals, 64) + " " + u.name
}

// rttScale is the RTT axis: from 0 to top, labelled every step seconds.
type rttScale struct {
	top, step float64
	unit      rttUnit
	decimals  int // for the labels, so that each step shows
}

// newRTTScale makes an axis that holds want, about 4 to 8 labelled steps high, with a
// round step (1, 2 or 5 times a power of ten in its unit).
func newRTTScale(want float64) rttScale {
	if !(want > 0) || math.IsInf(want, 0) {
		want = 1e-3 // nothing to show: 1 ms
	}
	raw := want / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * pow
	for _, m := range []float64{1, 2, 5} {
		if m*pow >= raw {
			step = m * pow
			break
		}
	}
	top := math.Ceil(want/step-1e-9) * step
	u := unitFor(top)
	decimals := 0
	for s := step * u.scale; decimals < 9 && math.Abs(s-math.Round(s)) > 1e-9*s; s *= 10 {
		decimals++
	}
	return rttScale{top: top, step: step, unit: u, decimals: decimals}
}

func (r rttScale) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for k := 0; ; k++ {
		v := float64(k) * r.step
		if v > max*(1+1e-9) {
			return ticks
		}
		if v >= min {
			label := r.unit.format(v, r.decimals)
			if v == 0 {
				label = "0"
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
}
