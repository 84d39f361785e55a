package rrdfmt

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// rowWrite is one row of an RRA to be written to the file.
type rowWrite struct {
	rra    int
	row    uint64
	values []float64
}

// update applies one reading at time t (whole seconds) to the header, in the order and
// with the arithmetic of rrdtool's rrd_update.c, and returns the rows to write.
//
// Products that are then added are converted with float64() explicitly: that stops the
// compiler from fusing them into one multiply-add (as it does on arm64), which rounds
// differently from rrdtool on amd64. Every build thus writes the same bits.
func (h *header) update(t int64, values []string, rows []rowWrite) ([]rowWrite, error) {
	if len(values) != len(h.ds) {
		return rows, fmt.Errorf("expected %d data source readings, got %d", len(h.ds), len(values))
	}
	if t <= h.lastUp {
		return rows, fmt.Errorf("illegal attempt to update using time %d when last update time is %d (minimum one second step)",
			t, h.lastUp)
	}
	interval := float64(t-h.lastUp) - float64(h.lastUpUsec)/1e6
	pdpNew, err := h.prepare(values, interval)
	if err != nil {
		return rows, err
	}

	step := uint64(h.step)
	last := uint64(h.lastUp)
	procStart := last - last%step
	occuAge := uint64(t) % step
	occuStart := uint64(t) - occuAge
	preInt, postInt := interval, 0.0
	if occuStart > procStart {
		preInt = float64(int64(occuStart)-h.lastUp) - float64(h.lastUpUsec)/1e6
		postInt = float64(occuAge)
	}
	procCount := procStart / step
	elapsed := (occuStart - procStart) / step

	if elapsed == 0 {
		h.simpleUpdate(interval, pdpNew)
	} else {
		if open := uint64(preInt) % step; elapsed > 1 && open > 0 {
			// The PDP that was open at the last update is closed on its own first, with
			// its share of the reading (rrdtool's "JKammler" fix).
			openNew := make([]float64, len(pdpNew))
			for i, v := range pdpNew {
				openNew[i] = h.layout.unknown()
				if !math.IsNaN(v) && interval > 0 {
					openNew[i] = v * float64(open) / interval
					pdpNew[i] -= openNew[i]
				}
			}
			pdpTemp := h.processPDPs(float64(open), float64(open), 0, 1, openNew)
			rows = h.consolidate(1, procCount, pdpTemp, rows)
			interval -= float64(open)
			preInt -= float64(open)
			elapsed--
			procCount++
		}
		pdpTemp := h.processPDPs(interval, preInt, postInt, elapsed, pdpNew)
		rows = h.consolidate(elapsed, procCount, pdpTemp, rows)
	}
	h.lastUp, h.lastUpUsec = t, 0
	return rows, nil
}

// prepare turns the readings into "rate × seconds" per data source (update_pdp_prep),
// NaN where the reading is unknown, out of range, or the heartbeat was exceeded.
func (h *header) prepare(values []string, interval float64) ([]float64, error) {
	pdpNew := make([]float64, len(h.ds))
	for i, d := range h.ds {
		p := &h.pdp[i]
		hb := float64(d.Heartbeat)
		if hb < interval {
			p.lastDS = "U"
		}
		pdpNew[i] = h.layout.unknown()
		if !strings.HasPrefix(values[i], "U") && hb >= interval {
			amount, rate, err := h.amount(d, values[i], p.lastDS, interval)
			if err != nil {
				return nil, fmt.Errorf("data source %s: %w", d.Name, err)
			}
			pdpNew[i] = amount
			if !math.IsNaN(rate) && ((!math.IsNaN(d.Max) && rate > d.Max) || (!math.IsNaN(d.Min) && rate < d.Min)) {
				pdpNew[i] = h.layout.unknown()
			}
		}
		p.lastDS = values[i]
		if len(p.lastDS) > lastDSSize-1 {
			p.lastDS = p.lastDS[:lastDSSize-1]
		}
	}
	return pdpNew, nil
}

// amount is what one known reading adds to its data source's PDP ("rate × seconds"), and
// the rate that is checked against the bounds, by the DS type's rules.
func (h *header) amount(d DS, value, last string, interval float64) (amount, rate float64, err error) {
	nan := h.layout.unknown()
	switch d.Type {
	case "GAUGE", "ABSOLUTE":
		v, ok := parseNumber(value)
		if !ok {
			return 0, 0, fmt.Errorf("%q is not a number", value)
		}
		if d.Type == "GAUGE" {
			return v * interval, v, nil
		}
		return v, v / interval, nil
	case "COUNTER", "DERIVE":
		if !simpleInteger(value, d.Type == "DERIVE") {
			kind := "unsigned"
			if d.Type == "DERIVE" {
				kind = "signed"
			}
			return 0, 0, fmt.Errorf("not a simple %s integer: %q", kind, value)
		}
		if strings.HasPrefix(last, "U") {
			return nan, nan, nil
		}
		diff := integerDiff(value, last)
		if d.Type == "COUNTER" {
			// rrdtool's wrap-around correction for 32- and 64-bit counters, with its
			// constants (the first is 2^32-1, not 2^32).
			if diff < 0 {
				diff += 4294967295.0
			}
			if diff < 0 {
				diff += 18446744069414584320.0
			}
		}
		return diff, diff / interval, nil
	case "DCOUNTER", "DDERIVE":
		if strings.HasPrefix(last, "U") {
			return nan, nan, nil
		}
		v, ok := parseNumber(value)
		if !ok {
			return 0, 0, fmt.Errorf("%q is not a number", value)
		}
		old, ok := parseNumber(last)
		if !ok {
			return 0, 0, fmt.Errorf("the previous reading %q is not a number", last)
		}
		// A DCOUNTER counts one way; a change of direction is a reset.
		if d.Type == "DCOUNTER" && ((v > 0 && old > v) || (v < 0 && v > old)) {
			return nan, nan, nil
		}
		diff := float64(v - old)
		return diff, diff / interval, nil
	}
	return 0, 0, fmt.Errorf("data source type %q is not supported", d.Type)
}

// simpleInteger says whether s is only digits, after one leading minus sign if signed.
func simpleInteger(s string, signed bool) bool {
	if signed {
		s = strings.TrimPrefix(s, "-")
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

// integerDiff is a - b for two integers written in decimal, exact however many digits
// they have, converted to a double as rrdtool's rrd_diff does: the digits of the exact
// difference read by rrdtool's own strtod. It is NaN where rrd_diff gives up: a side
// without digits, signs that differ, or more digits than a last_ds holds.
func integerDiff(a, b string) float64 {
	aNeg, aDigits := splitSign(a)
	bNeg, bDigits := splitSign(b)
	if aDigits == "" || bDigits == "" || aNeg != bNeg || max(len(aDigits), len(bDigits)) > lastDSSize {
		return math.NaN()
	}
	x, _ := new(big.Int).SetString(aDigits, 10)
	y, _ := new(big.Int).SetString(bDigits, 10)
	d := x.Sub(x, y)
	negative := d.Sign() < 0
	v, _ := parseNumber(d.Abs(d).String())
	if negative {
		v = -v
	}
	if aNeg {
		v = -v
	}
	return v
}

// splitSign finds rrd_diff's reading of a number: the leading digits after any non-digit
// prefix, negative when that prefix holds a minus sign.
func splitSign(s string) (negative bool, digits string) {
	start := strings.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' })
	if start < 0 {
		return strings.Contains(s, "-"), ""
	}
	negative = strings.Contains(s[:start], "-")
	end := start + 1
	for end < len(s) && isDigit(s[end]) {
		end++
	}
	return negative, s[start:end]
}

// simpleUpdate accumulates a reading that closes no PDP.
func (h *header) simpleUpdate(interval float64, pdpNew []float64) {
	for i, v := range pdpNew {
		p := &h.pdp[i]
		switch {
		case math.IsNaN(v):
			p.unknownSec = uint64(float64(p.unknownSec) + math.Floor(interval))
		case math.IsNaN(p.value):
			p.value = v
		default:
			p.value += v
		}
	}
}

// processPDPs closes the PDPs that elapsed and returns each data source's rate for them
// (process_pdp_st), leaving the part after the last PDP boundary in pdp_prep.
func (h *header) processPDPs(interval, preInt, postInt float64, elapsed uint64, pdpNew []float64) []float64 {
	pdpTemp := make([]float64, len(h.ds))
	diff := int64(elapsed * h.step)
	for i, d := range h.ds {
		p := &h.pdp[i]
		preUnknown := 0.0
		if math.IsNaN(pdpNew[i]) {
			preUnknown = preInt
		} else {
			if math.IsNaN(p.value) {
				p.value = 0
			}
			p.value += float64(pdpNew[i] / interval * preInt)
		}
		if interval > float64(d.Heartbeat) || float64(h.step)/2.0 < float64(int64(p.unknownSec)) {
			pdpTemp[i] = h.layout.unknown()
		} else {
			// 0/0 makes a new NaN, whose sign is the CPU's: use the layout's, as
			// rrdtool on that CPU would.
			pdpTemp[i] = sameNaN(p.value/(float64(diff-int64(p.unknownSec))-preUnknown), h.layout.unknown())
		}
		if math.IsNaN(pdpNew[i]) {
			p.unknownSec = uint64(math.Floor(postInt))
			p.value = h.layout.unknown()
		} else {
			p.unknownSec = 0
			p.value = pdpNew[i] / interval * postInt
		}
	}
	return pdpTemp
}

// consolidate feeds the closed PDPs into every RRA's CDP (update_all_cdp_prep and the
// plain-CF part of update_aberrant_cdps) and queues the rows that are complete.
func (h *header) consolidate(elapsed, procCount uint64, pdpTemp []float64, rows []rowWrite) []rowWrite {
	nds := len(h.ds)
	for ri, r := range h.rra {
		startOffset := r.PDPs - procCount%r.PDPs
		var stepCnt uint64
		if startOffset <= elapsed {
			stepCnt = min((elapsed-startOffset)/r.PDPs+1, r.Rows)
		}
		for di := range h.ds {
			c := &h.cdp[ri*nds+di]
			switch {
			case r.PDPs > 1:
				c.update(r, pdpTemp[di], stepCnt, elapsed, startOffset, h.layout.unknown())
			case elapsed > 2:
				c.primary, c.secondary = pdpTemp[di], pdpTemp[di]
			default:
				c.primary = pdpTemp[di]
				if elapsed == 2 {
					c.secondary = pdpTemp[di]
				}
			}
		}
		for k := range stepCnt {
			h.curRow[ri] = (h.curRow[ri] + 1) % r.Rows
			row := rowWrite{rra: ri, row: h.curRow[ri], values: make([]float64, nds)}
			for di := range h.ds {
				c := &h.cdp[ri*nds+di]
				row.values[di] = c.primary
				if k > 0 {
					row.values[di] = c.secondary
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// update consolidates one data source's new PDP rate into an RRA (update_cdp).
func (c *cdpPrep) update(r RRA, pdp float64, stepCnt, elapsed, startOffset uint64, nan float64) {
	if stepCnt == 0 {
		if math.IsNaN(pdp) {
			c.unknownPDP += elapsed
			return
		}
		c.value = sameNaN(accumulate(r.CF, c.value, pdp, elapsed), nan)
		return
	}
	if math.IsNaN(pdp) {
		c.unknownPDP += startOffset
		c.secondary = nan
	} else {
		c.secondary = pdp
	}
	if float64(c.unknownPDP) > float64(r.PDPs)*r.XFF {
		c.primary = nan
	} else {
		c.primary = sameNaN(c.first(r, pdp, startOffset), nan)
	}
	c.value = sameNaN(carryOver(r.CF, pdp, (elapsed-startOffset)%r.PDPs, nan), nan)
	if math.IsNaN(pdp) {
		c.unknownPDP = (elapsed - startOffset) % r.PDPs
	} else {
		c.unknownPDP = 0
	}
}

// first is the value of the row that this PDP completes (initialize_cdp_val).
func (c *cdpPrep) first(r RRA, pdp float64, startOffset uint64) float64 {
	switch r.CF {
	case "AVERAGE":
		return (ifNaN(c.value, 0) + float64(ifNaN(pdp, 0)*float64(startOffset))) / float64(r.PDPs-c.unknownPDP)
	case "MAX":
		return math.Max(ifNaN(c.value, math.Inf(-1)), ifNaN(pdp, math.Inf(-1)))
	case "MIN":
		return math.Min(ifNaN(c.value, math.Inf(1)), ifNaN(pdp, math.Inf(1)))
	}
	return pdp
}

// carryOver starts the next row with the PDPs after the last completed one
// (initialize_carry_over).
func carryOver(cf string, pdp float64, into uint64, nan float64) float64 {
	if into == 0 || math.IsNaN(pdp) {
		switch cf {
		case "MAX":
			return math.Inf(-1)
		case "MIN":
			return math.Inf(1)
		case "AVERAGE":
			return 0
		}
		return nan
	}
	if cf == "AVERAGE" {
		return pdp * float64(into)
	}
	return pdp
}

// accumulate adds PDPs to a row still open (calculate_cdp_val).
func accumulate(cf string, cdp, pdp float64, elapsed uint64) float64 {
	if math.IsNaN(cdp) {
		if cf == "AVERAGE" {
			return pdp * float64(elapsed)
		}
		return pdp
	}
	switch cf {
	case "AVERAGE":
		return cdp + float64(pdp*float64(elapsed))
	case "MIN":
		if pdp < cdp {
			return pdp
		}
		return cdp
	case "MAX":
		if pdp > cdp {
			return pdp
		}
		return cdp
	}
	return pdp
}

// sameNaN replaces any NaN by the given one, so NaNs made by arithmetic carry the bits of
// the layout's CPU rather than of the CPU running this code.
func sameNaN(v, nan float64) float64 {
	if math.IsNaN(v) {
		return nan
	}
	return v
}

func ifNaN(v, alt float64) float64 {
	if math.IsNaN(v) {
		return alt
	}
	return v
}
