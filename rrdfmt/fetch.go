package rrdfmt

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Fetched is the answer to Fetch: Rows[i] holds one value per data source (NaN for
// unknown) for the interval that ends at Start + (i+1)·Step, as rrdtool fetch prints it.
type Fetched struct {
	Start, End time.Time
	Step       time.Duration
	DS         []string
	Rows       [][]float64
}

// Fetch reads the rows of the RRA that best covers [start, end] with consolidation
// function cf at a resolution closest to resolution (0 means the finest), choosing the
// RRA, aligning the interval and filling rows outside the archive with NaN exactly as
// rrdtool fetch does. It holds rrdtool's read lock while reading.
func Fetch(path string, layout Layout, cf string, start, end time.Time, resolution time.Duration) (*Fetched, error) {
	f, h, err := openLocked(path, layout, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, e := start.Unix(), end.Unix()
	if e < s {
		return nil, fmt.Errorf("rrdfmt: fetch %s: start %d should be less than end %d", path, s, e)
	}
	wantStep := max(int64(resolution/time.Second), 1)
	ri, err := h.bestRRA(cf, s, e, wantStep)
	if err != nil {
		return nil, fmt.Errorf("rrdfmt: fetch %s: %w", path, err)
	}
	r := h.rra[ri]
	step := int64(h.step * r.PDPs)
	s -= s % step
	e += step - e%step

	rowCnt := int64(r.Rows)
	rraEnd := h.lastUp - h.lastUp%step
	rraStart := rraEnd - step*(rowCnt-1)
	startOffset := (s + step - rraStart) / step
	endOffset := (rraEnd - e) / step
	pointer := int64(0)
	if s <= rraEnd && e >= rraStart-step {
		pointer = int64(h.curRow[ri]) + 1
		if startOffset > 0 {
			pointer += startOffset
		}
		pointer %= rowCnt
	}

	out := &Fetched{Start: time.Unix(s, 0), End: time.Unix(e, 0), Step: time.Duration(step) * time.Second}
	for _, d := range h.ds {
		out.DS = append(out.DS, d.Name)
	}
	nds := len(h.ds)
	base := h.rraOffset(ri)
	buf := make([]byte, 8*nds)
	for i := startOffset; i < rowCnt-endOffset; i++ {
		row := make([]float64, nds)
		if i < 0 || i >= rowCnt {
			for j := range row {
				row[j] = h.layout.unknown()
			}
		} else {
			if pointer >= rowCnt {
				pointer -= rowCnt
			}
			if _, err := f.ReadAt(buf, base+pointer*int64(len(buf))); err != nil {
				return nil, fmt.Errorf("rrdfmt: fetch %s: %w", path, err)
			}
			for j := range row {
				row[j] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*j:]))
			}
			pointer++
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

// bestRRA picks the archive rrdtool fetch would: among those of the right CF (or any of
// AVERAGE, MIN, MAX, LAST at one PDP per row), one that reaches back to start with the
// step closest to the wanted one, else the one covering most of the interval.
func (h *header) bestRRA(cf string, start, end, wantStep int64) (int, error) {
	if !slices.Contains(knownCF, cf) {
		return 0, fmt.Errorf("consolidation function %q is not supported (want %v)", cf, knownCF)
	}
	bestFull, bestPart := -1, -1
	var fullDiff, partDiff, partMatch int64
	for i, r := range h.rra {
		if r.CF != cf && r.PDPs != 1 {
			continue
		}
		rraStep := int64(h.step * r.PDPs)
		calEnd := h.lastUp - h.lastUp%rraStep
		calStart := calEnd - rraStep*int64(r.Rows)
		diff := wantStep - rraStep
		if diff < 0 {
			diff = -diff
		}
		if calStart <= start {
			if bestFull < 0 || diff < fullDiff {
				bestFull, fullDiff = i, diff
			}
			continue
		}
		match := end - start - (calStart - start)
		if bestPart < 0 || partMatch < match || (partMatch == match && diff < partDiff) {
			bestPart, partMatch, partDiff = i, match, diff
		}
	}
	switch {
	case bestFull >= 0:
		return bestFull, nil
	case bestPart >= 0:
		return bestPart, nil
	}
	return 0, fmt.Errorf("no RRA matches consolidation function %s", cf)
}
