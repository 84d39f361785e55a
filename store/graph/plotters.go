package graph

import (
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The plotters draw in data coordinates: x in Unix seconds, y in seconds of RTT. Each
// row is drawn over the whole interval it covers, so a picture of coarse rows shows
// steps, as rrdtool draws them.

// frame maps rows and values to a canvas.
type frame struct {
	c        draw.Canvas
	d        *Data
	trX, trY func(float64) vg.Length
	top      float64
}

func newFrame(c draw.Canvas, p *plot.Plot, d *Data) frame {
	trX, trY := p.Transforms(&c)
	return frame{c: c, d: d, trX: trX, trY: trY, top: p.Y.Max}
}

// x returns the part of the canvas that row i covers; ok is false if it is outside.
func (f frame) x(i int) (x0, x1 vg.Length, ok bool) {
	t0 := float64(f.d.Start.Unix()) + float64(i)*f.d.Step.Seconds()
	x0 = max(f.trX(t0), f.c.Min.X)
	x1 = min(f.trX(t0+f.d.Step.Seconds()), f.c.Max.X)
	return x0, x1, x1 > x0
}

// y places a value, values above the top at the top, as Smokeping draws its smoke.
func (f frame) y(v float64) vg.Length {
	return f.trY(min(max(v, 0), f.top))
}

// runs calls fn for each run of consecutive rows for which known holds and that show on
// the canvas: a gap in the data ends a run, so that nothing is drawn across it.
func (f frame) runs(known func(i int) bool, fn func(from, to int)) {
	from := -1
	for i := 0; i <= len(f.d.Loss); i++ {
		_, _, show := f.x(i)
		ok := i < len(f.d.Loss) && show && known(i)
		switch {
		case ok && from < 0:
			from = i
		case !ok && from >= 0:
			fn(from, i)
			from = -1
		}
	}
}

func rect(x0, y0, x1, y1 vg.Length) []vg.Point {
	return []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
}

// outages shades, over the full height, the rows whose loss is known but no median is:
// every ping was lost (or most, in a consolidated row), which would otherwise look like
// a gap in the data. The shade is a pale loss colour, as Smokeping's loss background.
type outages struct{ g *picture }

func (o outages) Plot(c draw.Canvas, p *plot.Plot) {
	f := newFrame(c, p, o.g.d)
	for i, l := range f.d.Loss {
		if math.IsNaN(l) || !math.IsNaN(f.d.Median[i]) {
			continue
		}
		if x0, x1, ok := f.x(i); ok {
			c.FillPolygon(pastel(lossColor(o.g.buckets, l)), rect(x0, c.Min.Y, x1, c.Max.Y))
		}
	}
}

// smoke draws the band from ping i to ping N+1-i for i = 1..N/2 in Smokeping's greys,
// outermost (lightest) first, so each inner band lies on the outer ones.
type smoke struct{ g *picture }

// smokeGrey is Smokeping's grey for band i (from 1) of a round of n pings.
func smokeGrey(i, n int) color.Gray {
	half := float64(n) / 2
	return color.Gray{Y: uint8(int(190/half*(half-float64(i))) + 50)}
}

func (s smoke) Plot(c draw.Canvas, p *plot.Plot) {
	f := newFrame(c, p, s.g.d)
	n := f.d.Pings
	if n < 3 {
		return // as Smokeping: too few pings to draw smoke
	}
	for i := 1; i <= n/2; i++ {
		lo, hi := i-1, n-i
		known := func(r int) bool { return !math.IsNaN(f.d.RTT[r][lo]) && !math.IsNaN(f.d.RTT[r][hi]) }
		f.runs(known, func(from, to int) {
			var upper, lower []vg.Point
			for r := from; r < to; r++ {
				x0, x1, _ := f.x(r)
				yl, yh := f.y(f.d.RTT[r][lo]), f.y(f.d.RTT[r][hi])
				upper = append(upper, vg.Point{X: x0, Y: yh}, vg.Point{X: x1, Y: yh})
				lower = append(lower, vg.Point{X: x0, Y: yl}, vg.Point{X: x1, Y: yl})
			}
			slices.Reverse(lower)
			upper = append(upper, lower...)
			c.FillPolygon(smokeGrey(i, n), upper)
		})
	}
}

// grid draws light lines at the ticks of both axes, over the smoke and under the median.
type grid struct{}

func (grid) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	line := func(minor bool) draw.LineStyle {
		if minor {
			return draw.LineStyle{Color: minorGrid, Width: 1}
		}
		return draw.LineStyle{Color: majorGrid, Width: 1}
	}
	for _, t := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
		if x := trX(t.Value); c.ContainsX(x) {
			c.StrokeLine2(line(t.IsMinor()), x, c.Min.Y, x, c.Max.Y)
		}
	}
	for _, t := range p.Y.Tick.Marker.Ticks(p.Y.Min, p.Y.Max) {
		if y := trY(t.Value); y > c.Min.Y && y < c.Max.Y {
			c.StrokeLine2(line(t.IsMinor()), c.Min.X, y, c.Max.X, y)
		}
	}
}

// median draws the median as a step line, each row in the colour of its loss, joined by
// thin dark risers where it jumps, as Smokeping draws it.
type median struct{ g *picture }

func (m median) Plot(c draw.Canvas, p *plot.Plot) {
	f := newFrame(c, p, m.g.d)
	known := func(r int) bool { return !math.IsNaN(f.d.Median[r]) }
	riser := draw.LineStyle{Color: ink, Width: 1}
	f.runs(known, func(from, to int) {
		for r := from + 1; r < to; r++ {
			x, _, _ := f.x(r)
			c.StrokeLine2(riser, x, f.y(f.d.Median[r-1]), x, f.y(f.d.Median[r]))
		}
		for r := from; r < to; r++ {
			if math.IsNaN(f.d.Loss[r]) {
				continue // as in Smokeping: no loss colour without a known loss
			}
			x0, x1, _ := f.x(r)
			if r+1 < to {
				x1 += 0.5 // overlap the next row: no seam where antialiased edges meet
			}
			y := f.y(f.d.Median[r])
			c.FillPolygon(lossColor(m.g.buckets, f.d.Loss[r]), rect(x0, y-medianWidth/2, x1, y+medianWidth/2))
		}
	})
}
