// Package graph draws Smokeping-style pictures of a pingmachine main.rrd, as PNG or SVG:
// the spread of each round's RTTs as grey smoke, the median as a line coloured by the
// round's loss, and a legend whose figures are those rrdtool graph prints for the same
// file and span. Read takes the rows from the file as rrdtool graph does, Stats computes
// the figures, and Draw lays out the picture with gonum/plot.
package graph

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Format is the kind of picture Draw writes.
type Format int

// The formats Draw writes, from the same drawing.
const (
	PNG Format = iota
	SVG
)

// The smallest plot area Draw draws, in pixels.
const (
	MinWidth  = 100
	MinHeight = 50
)

// Options say how Draw lays out a graph.
type Options struct {
	Format Format
	Title  string // the first line: what was measured, such as the order's id and target
	// Height is that of the plot area in pixels, as rrdtool graph's --height; its width
	// is the span's. The title, axes and legend come around it.
	Height   int
	Location *time.Location // of the time axis; nil means time.Local
}

// Sizes in pixels (a PNG is drawn at 72 dpi, so one point is one pixel). The text is
// large for a picture of this size so that it stays readable when a phone shrinks the
// picture to its screen.
const (
	margin      = 14
	titleSize   = 22
	textSize    = 18
	tickSize    = 16
	lineGap     = 7  // between legend lines
	medianWidth = 4  // the loss-coloured median line
	swatchSize  = 14 // the loss colour squares in the legend
)

var (
	sans      = font.Font{Typeface: "Liberation", Variant: "Sans"}
	sansBold  = font.Font{Typeface: "Liberation", Variant: "Sans", Weight: xfont.WeightBold}
	ink       = color.NRGBA{0x20, 0x20, 0x20, 0xff}
	greyText  = color.NRGBA{0x55, 0x55, 0x55, 0xff}
	majorGrid = color.NRGBA{0x00, 0x00, 0x00, 0x2a}
	minorGrid = color.NRGBA{0x00, 0x00, 0x00, 0x12}
)

func style(f font.Font, size vg.Length, c color.Color) text.Style {
	return text.Style{Color: c, Font: font.From(f, size), Handler: plot.DefaultTextHandler}
}

// Draw writes a Smokeping-style picture of d: for each pair of pings i and N+1-i, the
// band between them in grey, the outermost lightest (the "smoke"); the median as a line
// coloured by the row's loss in Smokeping's colours, where rows whose pings were all lost
// are shaded in a pale loss colour; and a legend with the figures of Stats, the loss
// colours and the probe's pings and step. Rows without data stay empty, and a span
// without any says "no data".
func Draw(w io.Writer, d *Data, o Options) error {
	// Smaller, a time label can be wider than the plot, which gonum/plot cannot place.
	if d.Span.Width < MinWidth || o.Height < MinHeight {
		return fmt.Errorf("graph: a plot of %dx%d pixels: want at least %dx%d", d.Span.Width, o.Height, MinWidth, MinHeight)
	}
	loc := o.Location
	if loc == nil {
		loc = time.Local
	}
	g := newPicture(d, o, loc)
	width, height := g.size()
	switch o.Format {
	case PNG:
		c := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(72), vgimg.UseBackgroundColor(color.White))
		g.draw(draw.New(c))
		if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
			return fmt.Errorf("graph: writing PNG: %w", err)
		}
	case SVG:
		c := vgsvg.New(width, height)
		g.draw(draw.New(c))
		var b bytes.Buffer
		if _, err := c.WriteTo(&b); err != nil {
			return fmt.Errorf("graph: writing SVG: %w", err)
		}
		// The text was measured with Liberation Sans; where a browser lacks it, the
		// metric-compatible Arial or Helvetica keep the layout, where its default
		// (often a serif) would not.
		svg := bytes.ReplaceAll(b.Bytes(), []byte("font-family:Liberation Sans;"),
			[]byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
		if _, err := w.Write(svg); err != nil {
			return fmt.Errorf("graph: writing SVG: %w", err)
		}
	default:
		return fmt.Errorf("graph: unknown format %d", o.Format)
	}
	return nil
}

// picture is a graph laid out: the title lines, the plot and the legend, top to bottom.
type picture struct {
	d       *Data
	o       Options
	loc     *time.Location
	plot    *plot.Plot
	stats   Stats
	buckets []lossBucket
	legend  legend
	// The plot's margins around its data area: the axes with their labels.
	left, right, bottom, top       vg.Length
	title, sub, label, value, head text.Style
}

func newPicture(d *Data, o Options, loc *time.Location) *picture {
	g := &picture{
		d: d, o: o, loc: loc, stats: d.Stats(), buckets: lossBuckets(d.Pings),
		title: style(sansBold, titleSize, ink),
		sub:   style(sans, tickSize, greyText),
		label: style(sansBold, textSize, ink),
		value: style(sans, textSize, ink),
		head:  style(sans, textSize, greyText),
	}
	tick := style(sans, tickSize, greyText)
	// Smokeping's top: 1.2 times the largest median, so that outliers in the smoke do
	// not flatten the picture (they are cut at the top).
	top := 1.2 * g.stats.Median.Max
	if math.IsNaN(top) {
		top = maxRTT(d)
	}
	rtt := newRTTScale(top)
	p := plot.New()
	p.BackgroundColor = nil
	p.X.Min, p.X.Max = float64(d.Span.Start.Unix()), float64(d.Span.End.Unix())
	p.Y.Min, p.Y.Max = 0, rtt.top
	p.X.Tick.Marker = timeTicks{chooseTimeScale(d.Span.End.Sub(d.Span.Start), float64(d.Span.Width),
		func(s string) float64 { return tick.Width(s).Points() }, textSize), loc}
	p.Y.Tick.Marker = rtt
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Padding = 0
		a.Color, a.Width = greyText, 1
		a.Tick.Color, a.Tick.Width = greyText, 1
		a.Tick.Label.Font = tick.Font
		a.Tick.Label.Color = tick.Color
		a.Tick.Length = 5
	}
	p.Add(outages{g}, smoke{g}, grid{}, median{g})
	g.plot = p
	g.legend = g.makeLegend()
	g.fitMargins()
	return g
}

// maxRTT is the largest RTT in the data (NaN if none), for a top when no median is known.
func maxRTT(d *Data) float64 {
	top := math.NaN()
	for _, row := range d.RTT {
		for _, v := range row {
			if !math.IsNaN(v) && !(v <= top) {
				top = v
			}
		}
	}
	return top
}

// fitMargins measures the axes around the data area so that it is exactly the span's
// width and the height asked for. gonum/plot places the data area inside a given
// rectangle, and its margins depend a little on the rectangle's size (it keeps the tick
// labels at the ends inside), so the measure is repeated until it settles.
func (g *picture) fitMargins() {
	w, h := vg.Length(g.d.Span.Width), vg.Length(g.o.Height)
	outer := vg.Rectangle{Max: vg.Point{X: w + 200, Y: h + 100}}
	for range 3 {
		dc := g.plot.DataCanvas(draw.Canvas{Rectangle: outer})
		g.left, g.right = dc.Min.X-outer.Min.X, outer.Max.X-dc.Max.X
		g.bottom, g.top = dc.Min.Y-outer.Min.Y, outer.Max.Y-dc.Max.Y
		outer.Max = vg.Point{X: w + g.left + g.right, Y: h + g.bottom + g.top}
	}
}

func lineHeight(s text.Style) vg.Length {
	e := s.FontExtents()
	return e.Ascent + e.Descent
}

func (g *picture) titleHeight() vg.Length {
	return lineHeight(g.title) + lineGap + lineHeight(g.sub)
}

// size is the whole picture's, in whole pixels.
func (g *picture) size() (w, h vg.Length) {
	w = max(ceil(g.left)+vg.Length(g.d.Span.Width)+g.right, g.legendWidth()) + 2*margin
	h = ceil(margin+g.titleHeight()+margin+g.top) + vg.Length(g.o.Height) + g.bottom + margin + g.legendHeight() + margin
	return ceil(w), ceil(h)
}

func ceil(l vg.Length) vg.Length { return vg.Length(math.Ceil(float64(l))) }

func (g *picture) draw(c draw.Canvas) {
	g.drawTitle(c, c.Max.Y-margin)
	plotArea := g.plotArea(c)
	g.plot.Draw(plotArea)
	// A frame around the data area, as rrdtool draws one.
	r := g.dataArea(c)
	c.StrokeLines(draw.LineStyle{Color: greyText, Width: 1}, []vg.Point{
		r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}, r.Min})
	if math.IsNaN(g.stats.Loss.Now) { // no round in the span: say so, rather than look empty
		s := g.head
		s.XAlign, s.YAlign = draw.XCenter, draw.YCenter
		c.FillText(s, vg.Point{X: (r.Min.X + r.Max.X) / 2, Y: (r.Min.Y + r.Max.Y) / 2}, "no data")
	}
	g.drawLegend(c, c.Min.X+margin, plotArea.Min.Y-margin)
}

// dataArea is where the data go on the picture's canvas c, below the title: on whole
// pixels, so that the edges of rows and the grid fall on pixel boundaries in a PNG.
func (g *picture) dataArea(c draw.Canvas) vg.Rectangle {
	x := c.Min.X + margin + ceil(g.left)
	top := c.Max.Y - ceil(margin+g.titleHeight()+margin+g.top)
	return vg.Rectangle{Min: vg.Point{X: x, Y: top - vg.Length(g.o.Height)}, Max: vg.Point{X: x + vg.Length(g.d.Span.Width), Y: top}}
}

// plotArea is the part of c that the plot takes: the data area and the axes around it.
func (g *picture) plotArea(c draw.Canvas) draw.Canvas {
	r := g.dataArea(c)
	return draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
		Min: vg.Point{X: r.Min.X - g.left, Y: r.Min.Y - g.bottom},
		Max: vg.Point{X: r.Max.X + g.right, Y: r.Max.Y + g.top},
	}}
}

// drawTitle writes the title and, below it, the span in local time, both centred.
func (g *picture) drawTitle(c draw.Canvas, y vg.Length) {
	room := c.Max.X - c.Min.X - 2*margin
	title := fit(g.title, g.o.Title, room)
	const layout = "2006-01-02 15:04"
	from, to := g.d.Span.Start.In(g.loc), g.d.Span.End.In(g.loc)
	sub := from.Format(layout) + " to " + to.Format(layout) + " " + to.Format("MST")
	for _, l := range []struct {
		s   text.Style
		txt string
	}{{g.title, title}, {g.sub, sub}} {
		l.s.XAlign, l.s.YAlign = draw.XCenter, draw.YTop
		c.FillText(l.s, vg.Point{X: c.Center().X, Y: y}, l.txt)
		y -= lineHeight(l.s) + lineGap
	}
}

// fit shortens s with an ellipsis until it is at most room wide.
func fit(sty text.Style, s string, room vg.Length) string {
	r := []rune(s)
	for len(r) > 1 && sty.Width(string(r)) > room {
		r = r[:len(r)-2]
		r = append(r, '…')
	}
	return string(r)
}

// legend is what goes below the plot: a table of the figures, with a header row, then
// lines whose items follow each other, each line and row after a bold label.
type legend struct {
	header []string
	rows   []legendLine
	lines  []legendLine
}

type legendLine struct {
	label string
	items []string
	// swatches, if set, puts a colour square before each item.
	swatches []color.Color
}

const (
	colGap  = 22 // between the table's columns
	itemGap = 14 // between the items of a line
)

func (g *picture) makeLegend() legend {
	m, l := g.stats.Median, g.stats.Loss
	lg := legend{
		header: []string{"now", "avg", "max", "min", "sd"},
		rows: []legendLine{
			{label: "median RTT", items: []string{rtt(m.Now), rtt(m.Avg), rtt(m.Max), rtt(m.Min), rtt(m.StdDev)}},
			{label: "packet loss", items: []string{percent(l.Now), percent(l.Avg), percent(l.Max)}},
		},
	}
	colours := legendLine{label: "lost pings"}
	for _, b := range g.buckets {
		colours.items = append(colours.items, b.Label)
		colours.swatches = append(colours.swatches, b.Color)
	}
	probe := strconv.Itoa(g.d.Pings) + " pings every " + strconv.FormatFloat(g.d.Round.Seconds(), 'f', -1, 64) + " s"
	if g.d.Pings < 3 {
		probe += " (too few for smoke)"
	}
	lg.lines = []legendLine{colours, {label: "probe", items: []string{probe}}}
	return lg
}

// layout returns the width of the labels, where the table's columns end (their items
// are right-aligned) counting from the labels' start, and the legend's width.
func (g *picture) layout(lg legend) (labelW vg.Length, colEnds []vg.Length, width vg.Length) {
	for _, l := range slices.Concat(lg.rows, lg.lines) {
		labelW = max(labelW, g.label.Width(l.label))
	}
	x := labelW
	for i, h := range lg.header {
		w := g.head.Width(h)
		for _, r := range lg.rows {
			if i < len(r.items) {
				w = max(w, g.value.Width(r.items[i]))
			}
		}
		x += colGap + w
		colEnds = append(colEnds, x)
	}
	width = x
	for _, l := range lg.lines {
		width = max(width, labelW+colGap+g.flowWidth(l))
	}
	return labelW, colEnds, width
}

// flowWidth is the width of a line whose items follow each other.
func (g *picture) flowWidth(l legendLine) vg.Length {
	var w vg.Length
	for i, it := range l.items {
		if i > 0 {
			w += itemGap
		}
		if l.swatches != nil {
			w += swatchSize + 5
		}
		w += g.value.Width(it)
	}
	return w
}

func (g *picture) legendWidth() vg.Length {
	_, _, w := g.layout(g.legend)
	return w
}

func (g *picture) legendHeight() vg.Length {
	n := vg.Length(1 + len(g.legend.rows) + len(g.legend.lines))
	return n*lineHeight(g.value) + (n-1)*lineGap
}

// drawLegend draws the legend with its top left corner at (x, y).
func (g *picture) drawLegend(c draw.Canvas, x, y vg.Length) {
	lg := g.legend
	labelW, colEnds, _ := g.layout(lg)
	lh := lineHeight(g.value)
	desc := g.value.FontExtents().Descent
	right := func(s text.Style) text.Style { s.XAlign = draw.XRight; return s }
	base := y - lh + desc
	for i, h := range lg.header {
		c.FillText(right(g.head), vg.Point{X: x + colEnds[i], Y: base}, h)
	}
	for _, r := range lg.rows {
		base -= lh + lineGap
		c.FillText(g.label, vg.Point{X: x, Y: base}, r.label)
		for i, it := range r.items {
			c.FillText(right(g.value), vg.Point{X: x + colEnds[i], Y: base}, it)
		}
	}
	for _, l := range lg.lines {
		base -= lh + lineGap
		c.FillText(g.label, vg.Point{X: x, Y: base}, l.label)
		ix := x + labelW + colGap
		for j, it := range l.items {
			if l.swatches != nil {
				c.FillPolygon(l.swatches[j], rect(ix, base-1, ix+swatchSize, base+swatchSize-1))
				ix += swatchSize + 5
			}
			c.FillText(g.value, vg.Point{X: ix, Y: base}, it)
			ix += g.value.Width(it) + itemGap
		}
	}
}

// rtt writes a time in seconds with three significant digits in µs, ms or s.
func rtt(s float64) string {
	if math.IsNaN(s) {
		return "–"
	}
	u := unitFor(s)
	if math.Round(s*u.scale) >= 1000 {
		u = unitFor(s * 1000) // 999.7 µs is 1.00 ms
	}
	return u.format(s, decimals(s*u.scale))
}

func percent(p float64) string {
	switch {
	case math.IsNaN(p):
		return "–"
	case p == 0:
		return "0 %"
	}
	return strconv.FormatFloat(p, 'f', decimals(p), 64) + " %"
}

// decimals is how many keep three significant digits of v (at most two decimals).
func decimals(v float64) int {
	switch {
	case v >= 100:
		return 0
	case v >= 10:
		return 1
	}
	return 2
}
