package graph

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"pingmachine/rrdfmt"
)

// Span is the part of a main.rrd that a graph shows: a time range drawn over Width pixel
// columns. As in rrdtool graph, the width sets the resolution the data are read at.
type Span struct {
	Start, End time.Time
	Width      int
}

// Data is what a graph shows of one main.rrd: rows of Step seconds, the first covering
// (Start, Start+Step], read and consolidated exactly as rrdtool graph reads them, so that
// the figures in the legend are those rrdtool prints for the same file and span.
type Data struct {
	Span  Span
	Start time.Time
	Step  time.Duration
	// Round is the file's step: the time from one round of pings to the next.
	Round time.Duration
	Pings int // pings per round (the data sources ping1..pingN)
	// Per row, NaN where unknown: Loss counts lost pings (an average of counts in
	// consolidated rows), Median is in seconds, and RTT holds ping1..pingN in seconds,
	// ascending, with the lost pings as NaN at both ends.
	Loss, Median []float64
	RTT          [][]float64
}

// Read reads the rows of the main.rrd at path that a graph of span shows, with the
// consolidation function AVERAGE. It asks for a resolution of one row per pixel column
// and picks the archive as rrdtool fetch does; rows finer than that are consolidated as
// rrdtool graph does, so that there are at most about as many rows as columns.
func Read(path string, span Span) (*Data, error) {
	if span.Width < 1 {
		return nil, fmt.Errorf("graph: width %d: want at least one pixel", span.Width)
	}
	if !span.End.After(span.Start) {
		return nil, fmt.Errorf("graph: the span from %v to %v is empty", span.Start, span.End)
	}
	layout := rrdfmt.NativeLayout()
	// rrdfmt's errors name the file and what is wrong with it: missing, not an RRD, or
	// made on another CPU (with what to do about it).
	info, err := rrdfmt.ReadInfo(path, layout)
	if err != nil {
		return nil, err
	}
	pings, err := pingsOf(info.DS)
	if err != nil {
		return nil, fmt.Errorf("graph: %s is not a pingmachine main.rrd: %w", path, err)
	}
	// rrdtool graph asks for (end-start)/width seconds per row, in whole seconds.
	want := (span.End.Unix() - span.Start.Unix()) / int64(span.Width)
	f, err := rrdfmt.Fetch(path, layout, "AVERAGE", span.Start, span.End, time.Duration(want)*time.Second)
	if err != nil {
		return nil, err
	}
	start, end, step := f.Start.Unix(), f.End.Unix(), int64(f.Step/time.Second)
	rows := f.Rows
	if step < want {
		if rows, start, step, err = reduce(rows, start, end, step, want); err != nil {
			return nil, fmt.Errorf("graph: %s: %w", path, err)
		}
	}
	d := &Data{
		Span: span, Start: time.Unix(start, 0), Step: time.Duration(step) * time.Second,
		Round: info.Step, Pings: pings,
		Loss: make([]float64, len(rows)), Median: make([]float64, len(rows)), RTT: make([][]float64, len(rows)),
	}
	for i, r := range rows {
		d.Loss[i], d.Median[i], d.RTT[i] = r[0], r[1], r[2:]
	}
	return d, nil
}

// pingsOf checks that the data sources are those of a main.rrd (loss, median,
// ping1..pingN) and returns N.
func pingsOf(ds []rrdfmt.DS) (int, error) {
	if len(ds) < 3 || ds[0].Name != "loss" || ds[1].Name != "median" {
		return 0, fmt.Errorf("data sources %s: want loss, median, ping1..pingN", names(ds))
	}
	for i, d := range ds[2:] {
		if want := "ping" + strconv.Itoa(i+1); d.Name != want {
			return 0, fmt.Errorf("data source %d is %s: want %s", i+3, d.Name, want)
		}
	}
	return len(ds) - 2, nil
}

func names(ds []rrdfmt.DS) string {
	n := make([]string, len(ds))
	for i, d := range ds {
		n[i] = d.Name
	}
	return strings.Join(n, ", ")
}

// reduce consolidates rows of step cur, from start to end, into rows of the multiple of
// cur nearest above want, as rrdtool graph's rrd_reduce_data does for AVERAGE: the
// average of the known values. Like rrdtool it moves the start back and the end forward
// to the new step, and a partial row at either end becomes unknown.
func reduce(rows [][]float64, start, end, cur, want int64) ([][]float64, int64, int64, error) {
	factor := (want + cur - 1) / cur
	step := cur * factor
	n := (end - start) / cur
	unknown := func() []float64 {
		r := make([]float64, len(rows[0]))
		for i := range r {
			r[i] = math.NaN()
		}
		return r
	}
	var out [][]float64
	src := int64(0)
	if off := start % step; off != 0 {
		start -= off
		skip := factor - off/cur
		src += skip
		n -= skip
		out = append(out, unknown())
	}
	endOff := end % step
	if endOff != 0 {
		n -= endOff / cur
	}
	if n < 0 || n%factor != 0 || src+n > int64(len(rows)) {
		return nil, 0, 0, fmt.Errorf("%d rows of %d s cannot be consolidated by %d", len(rows), cur, factor)
	}
	for ; n >= factor; n -= factor {
		r := unknown()
		for c := range r {
			sum, known := math.NaN(), 0
			for _, row := range rows[src : src+factor] {
				if v := row[c]; !math.IsNaN(v) {
					if known == 0 {
						sum = v
					} else {
						sum += v
					}
					known++
				}
			}
			if known > 0 {
				r[c] = sum / float64(known)
			}
		}
		out = append(out, r)
		src += factor
	}
	if endOff != 0 {
		out = append(out, unknown())
	}
	return out, start, step, nil
}
