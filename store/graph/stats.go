package graph

import "math"

// Summary is what rrdtool's VDEF computes of a series over the rows of a graph: Now is
// LAST (the last known value), Avg, Min, Max and StdDev are AVERAGE, MINIMUM, MAXIMUM
// and STDEV (the population standard deviation) of the known values. Each is NaN when
// no value is known.
type Summary struct {
	Now, Avg, Min, Max, StdDev float64
}

// Stats are the figures of a graph's legend.
type Stats struct {
	Median Summary // seconds
	Loss   Summary // percent of the pings
}

// Stats computes the legend's figures from the rows, in the order of operations of
// rrdtool graph, so that they equal what it prints for
// DEF:median=main.rrd:median:AVERAGE and CDEF:ploss=loss,N,/,100,*.
func (d *Data) Stats() Stats {
	ploss := make([]float64, len(d.Loss))
	for i, l := range d.Loss {
		ploss[i] = l / float64(d.Pings) * 100
	}
	return Stats{Median: summarize(d.Median), Loss: summarize(ploss)}
}

func summarize(xs []float64) Summary {
	s := Summary{Now: math.NaN(), Avg: math.NaN(), Min: math.NaN(), Max: math.NaN(), StdDev: math.NaN()}
	var sum float64
	n := 0
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue
		}
		if n == 0 || x < s.Min {
			s.Min = x
		}
		if n == 0 || x > s.Max {
			s.Max = x
		}
		s.Now = x
		sum += x
		n++
	}
	if n == 0 {
		return s
	}
	s.Avg = sum / float64(n)
	var sq float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			sq += (x - s.Avg) * (x - s.Avg)
		}
	}
	s.StdDev = math.Sqrt(sq / float64(n))
	return s
}
