package graph

import (
	"bytes"
	"encoding/xml"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/recorder"
)

// segment is a stretch of rows of the synthetic data: loss lost pings per round, or no
// data at all.
type segment struct {
	loss float64
	gap  bool
}

// segments are drawn in this order, rowsPerSegment rows each: every loss colour, a gap,
// and rounds whose pings were all lost.
var segments = []segment{
	{loss: 0}, {loss: 1}, {loss: 2}, {loss: 3}, {loss: 5}, {gap: true}, {loss: 0},
	{loss: 10}, {loss: 19}, {loss: 20}, {loss: 0},
}

const rowsPerSegment = 20

// synthetic is 20 pings per round every minute, each segment of rows as segments says.
// Ping k (from 1) of a round without loss is 10 ms + k/2 ms, so every band of the smoke
// is several pixels high; lost pings take the places at both ends as in main.rrd.
func synthetic() *Data {
	const pings = 20
	end := time.Unix(1_773_100_800, 0) // a multiple of the step
	n := len(segments) * rowsPerSegment
	d := &Data{
		Span:  Span{Start: end.Add(-time.Duration(n) * time.Minute), End: end, Width: 2 * n},
		Start: end.Add(-time.Duration(n) * time.Minute), Step: time.Minute, Round: time.Minute, Pings: pings,
	}
	for i := range n {
		s := segments[i/rowsPerSegment]
		rtt := make([]float64, pings)
		loss, median := s.loss, math.NaN()
		for k := range rtt {
			rtt[k] = math.NaN()
			below := int(s.loss) / 2
			if !s.gap && k >= below && k < pings-(int(s.loss)-below) {
				rtt[k] = 0.010 + float64(k+1)*0.0005
			}
		}
		if s.gap {
			loss = math.NaN()
		} else if received := pings - int(s.loss); received > 0 {
			median = rtt[int(s.loss)/2+received/2]
		}
		d.Loss, d.Median, d.RTT = append(d.Loss, loss), append(d.Median, median), append(d.RTT, rtt)
	}
	return d
}

// drawn draws d into a PNG and returns the decoded picture and the data area in its
// pixels.
func drawn(t *testing.T, d *Data, o Options) (image.Image, image.Rectangle) {
	t.Helper()
	var b bytes.Buffer
	o.Format = PNG
	if err := Draw(&b, d, o); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	g := newPicture(d, o, time.UTC)
	w, h := g.size()
	if img.Bounds().Dx() != int(w) || img.Bounds().Dy() != int(h) {
		t.Errorf("picture of %v, want %vx%v", img.Bounds().Size(), w, h)
	}
	c := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: w, Y: h}}}
	r := g.dataArea(c)
	if dc := g.plot.DataCanvas(g.plotArea(c)); dc.Rectangle != r {
		t.Errorf("the plot puts its data at %v, not at %v", dc.Rectangle, r)
	}
	area := image.Rect(int(r.Min.X), int(h-r.Max.Y), int(r.Max.X), int(h-r.Min.Y))
	if float64(r.Min.X) != float64(area.Min.X) || float64(r.Max.Y) != float64(h)-float64(area.Min.Y) ||
		area.Dx() != d.Span.Width || area.Dy() != o.Height {
		t.Errorf("data area %v (%v), want whole pixels, %dx%d", area, r, d.Span.Width, o.Height)
	}
	return img, area
}

// colours counts the pixels of each colour in the columns from x0 to x1 of area.
func colours(img image.Image, area image.Rectangle, x0, x1 int) map[color.NRGBA]int {
	n := map[color.NRGBA]int{}
	for x := max(x0, area.Min.X); x < min(x1, area.Max.X); x++ {
		for y := area.Min.Y; y < area.Max.Y; y++ {
			n[color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)]++
		}
	}
	return n
}

// TestPNGContent looks at the pixels of a picture of the synthetic data: every grey of
// the smoke, the median in the colour of each segment's loss and no other loss colour,
// rounds whose pings were all lost shaded pale, and nothing at all drawn in the gap.
func TestPNGContent(t *testing.T) {
	d := synthetic()
	img, area := drawn(t, d, Options{Title: "synthetic", Height: 250})
	buckets := lossBuckets(d.Pings)
	var greys []color.NRGBA
	for i := 1; i <= d.Pings/2; i++ {
		g := smokeGrey(i, d.Pings).Y
		greys = append(greys, color.NRGBA{g, g, g, 0xff})
	}
	if want := []uint8{0xdd, 0xca, 0xb7, 0xa4, 0x91, 0x7e, 0x6b, 0x58, 0x45, 0x32}; !slices.EqualFunc(greys, want,
		func(c color.NRGBA, v uint8) bool { return c.R == v }) {
		t.Errorf("smoke greys %v, want Smokeping's %x", greys, want)
	}
	pxPerSeg := d.Span.Width / len(segments)
	for si, s := range segments {
		// Leave out the edges, where the risers and antialiasing of the next segment are.
		got := colours(img, area, area.Min.X+si*pxPerSeg+3, area.Min.X+(si+1)*pxPerSeg-3)
		var want color.NRGBA
		switch {
		case s.gap:
		case s.loss == float64(d.Pings):
			want = pastel(lossColor(buckets, s.loss))
		default:
			want = lossColor(buckets, s.loss)
		}
		for _, b := range buckets {
			if n := got[b.Color]; n > 0 && b.Color != want {
				t.Errorf("segment %d (%+v): %d pixels of the loss colour %s, want only %v", si, s, n, b.Label, want)
			}
		}
		switch {
		case s.gap:
			for c, n := range got {
				if c.R != c.G || c.G != c.B {
					t.Errorf("gap: %d pixels of %v: something was drawn where there is no data", n, c)
				}
			}
		case got[want] < 10:
			t.Errorf("segment %d (%+v): %d pixels of %v, want the median in that colour", si, s, got[want], want)
		}
		if s.loss == 0 && !s.gap {
			for _, g := range greys {
				if got[g] == 0 {
					t.Errorf("segment %d: no pixel of the smoke grey %v", si, g)
				}
			}
		}
	}
}

// TestGapsStayGaps records the drawing of the synthetic data with a gap of four rows in
// its first segment, and checks that no edge of the smoke, the median or a shade crosses
// that gap or the gap segment: a gap in the data stays a gap, however narrow.
func TestGapsStayGaps(t *testing.T) {
	d := synthetic()
	for i := 8; i < 12; i++ {
		d.Loss[i], d.Median[i] = math.NaN(), math.NaN()
		for k := range d.RTT[i] {
			d.RTT[i][k] = math.NaN()
		}
	}
	g := newPicture(d, Options{Height: 250}, time.UTC)
	w, h := g.size()
	rec := &recorder.Canvas{}
	c := draw.NewCanvas(rec, w, h)
	g.draw(c)
	area := g.dataArea(c)
	dc := draw.Canvas{Canvas: rec, Rectangle: area}
	trX, _ := g.plot.Transforms(&dc)
	at := func(row int) vg.Length { return trX(float64(d.Start.Unix() + int64(row)*60)) }
	gaps := [][2]vg.Length{{at(8), at(12)}, {at(5 * rowsPerSegment), at(6 * rowsPerSegment)}}
	inside := func(p vg.Point) bool {
		return p.X >= area.Min.X && p.X <= area.Max.X && p.Y >= area.Min.Y && p.Y <= area.Max.Y
	}
	var colour color.Color
	drawn := 0
	check := func(path vg.Path) {
		if colour == majorGrid || colour == minorGrid || colour == greyText {
			return // the grid, axes and frame
		}
		var pts []vg.Point
		for _, pc := range path {
			switch pc.Type {
			case vg.MoveComp, vg.LineComp:
				pts = append(pts, pc.Pos)
			case vg.CloseComp:
				pts = append(pts, pts[0])
			default:
				t.Fatalf("a path with a component of type %d", pc.Type)
			}
		}
		if !slices.ContainsFunc(pts, inside) {
			return // the legend
		}
		drawn++
		for i := 1; i < len(pts); i++ {
			lo, hi := min(pts[i-1].X, pts[i].X), max(pts[i-1].X, pts[i].X)
			for _, gap := range gaps {
				if hi > gap[0]+0.6 && lo < gap[1]-0.6 {
					t.Errorf("%v drawn from x %.1f to %.1f, across the gap from %.1f to %.1f", colour, lo, hi, gap[0], gap[1])
				}
			}
		}
	}
	for _, a := range rec.Actions {
		switch a := a.(type) {
		case *recorder.SetColor:
			colour = a.Color
		case *recorder.Fill:
			check(a.Path)
		case *recorder.Stroke:
			check(a.Path)
		}
	}
	if drawn < 100 {
		t.Errorf("only %d paths drawn in the data area", drawn)
	}
}

// svgTexts returns the text of every <text> element of an SVG document, and the fill
// colours of its other elements.
func svgTexts(t *testing.T, r io.Reader) (texts []string, fills map[string]bool) {
	t.Helper()
	fills = map[string]bool{}
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return texts, fills
		}
		if err != nil {
			t.Fatalf("the SVG does not parse: %v", err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if el.Name.Local == "text" {
			var s string
			if err := dec.DecodeElement(&s, &el); err != nil {
				t.Fatal(err)
			}
			texts = append(texts, s)
			continue
		}
		for _, a := range el.Attr {
			if a.Name.Local == "style" {
				for p := range strings.SplitSeq(a.Value, ";") {
					if v, ok := strings.CutPrefix(p, "fill:"); ok {
						fills[strings.ToLower(v)] = true
					}
				}
			}
		}
	}
}

// TestSVGContent parses the SVG of the synthetic data and looks for the title, the legend
// with its figures and loss colours, the axes' labels, and the colours of the smoke and
// the median.
func TestSVGContent(t *testing.T) {
	d := synthetic()
	var b bytes.Buffer
	if err := Draw(&b, d, Options{Format: SVG, Title: "office/gw — fping: gw.zurich.example", Height: 250, Location: time.UTC}); err != nil {
		t.Fatal(err)
	}
	texts, fills := svgTexts(t, &b)
	st := d.Stats()
	want := []string{
		"office/gw — fping: gw.zurich.example", "2026-03-09 20:20 to 2026-03-10 00:00 UTC",
		"now", "avg", "max", "min", "sd", "median RTT", "packet loss", "lost pings", "probe",
		rtt(st.Median.Now), rtt(st.Median.Avg), rtt(st.Median.Max), rtt(st.Median.Min), rtt(st.Median.StdDev),
		percent(st.Loss.Now), percent(st.Loss.Avg), percent(st.Loss.Max),
		"0", "1", "2", "3", "4-5", "6-10", "11-19", "20/20", "20 pings every 60 s",
		"20 ms", "10 ms", "21:00", "22:00", "23:00", "00:00",
	}
	for _, w := range want {
		if !slices.Contains(texts, w) {
			t.Errorf("no text %q in the SVG; its texts: %q", w, texts)
		}
	}
	// The figures worked out by hand: medians of 15.5 ms in five segments and 15.0 ms in
	// four, and 60 of 200 pings lost on average in ten segments.
	for _, w := range []string{"15.3 ms", "15.0 ms", "248 µs", "30.0 %", "100 %"} {
		if !slices.Contains(texts, w) {
			t.Errorf("no figure %q in the SVG; its texts: %q", w, texts)
		}
	}
	if slices.Contains(texts, "no data") {
		t.Errorf("a graph with data says it has none")
	}
	// A span without any round says so.
	for i := range d.Loss {
		d.Loss[i], d.Median[i] = math.NaN(), math.NaN()
		for k := range d.RTT[i] {
			d.RTT[i][k] = math.NaN()
		}
	}
	b.Reset()
	if err := Draw(&b, d, Options{Format: SVG, Height: 250}); err != nil {
		t.Fatal(err)
	}
	if empty, _ := svgTexts(t, &b); !slices.Contains(empty, "no data") || !slices.Contains(empty, "–") {
		t.Errorf("a graph without data: %q, want \"no data\" and – for the figures", empty)
	}
	for _, c := range []string{"#dddddd", "#cacaca", "#b7b7b7", "#a4a4a4", "#919191", "#7e7e7e", "#6b6b6b", "#585858", "#454545", "#323232",
		"#26ff00", "#00b8ff", "#0059ff", "#7e00ff", "#ff00ff", "#ff5500", "#ff0000", "#a00000"} {
		if !fills[c] {
			t.Errorf("no fill %s in the SVG; its fills: %v", c, fills)
		}
	}
}

// TestSizes draws the synthetic data at the smallest size Draw takes, where a single time
// label is nearly as wide as the plot, and at a large one, and refuses a smaller one.
func TestSizes(t *testing.T) {
	for _, c := range []struct {
		width, height int
		err           string
	}{
		{MinWidth, MinHeight, ""},
		{1500, 800, ""},
		{MinWidth - 1, MinHeight, "graph: a plot of 99x50 pixels: want at least 100x50"},
		{MinWidth, MinHeight - 1, "graph: a plot of 100x49 pixels: want at least 100x50"},
	} {
		d := synthetic()
		d.Span.Width = c.width
		if c.err != "" {
			if err := Draw(io.Discard, d, Options{Height: c.height}); err == nil || err.Error() != c.err {
				t.Errorf("%dx%d: %v, want %q", c.width, c.height, err, c.err)
			}
			continue
		}
		drawn(t, d, Options{Height: c.height})
	}
}
