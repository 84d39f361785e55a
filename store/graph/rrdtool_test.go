package graph_test

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pingmachine/rrdfmt"
	"pingmachine/rrdfmt/rrdtest"
	"pingmachine/store/graph"
	"pingmachine/store/graph/graphtest"
)

// rrdtoolStats is what rrdtool graph prints for the legend's figures of the file at path
// over span: VDEFs of the median and of the loss in percent, as Smokeping defines them.
func rrdtoolStats(t *testing.T, path string, pings int, span graph.Span) graph.Stats {
	t.Helper()
	args := []string{"graph", "/dev/null",
		"--start", strconv.FormatInt(span.Start.Unix(), 10), "--end", strconv.FormatInt(span.End.Unix(), 10),
		"--width", strconv.Itoa(span.Width),
		"DEF:median=" + path + ":median:AVERAGE", "DEF:loss=" + path + ":loss:AVERAGE",
		"CDEF:ploss=loss," + strconv.Itoa(pings) + ",/,100,*"}
	fns := []string{"LAST", "AVERAGE", "MINIMUM", "MAXIMUM", "STDEV"}
	for _, v := range []string{"median", "ploss"} {
		for _, fn := range fns {
			args = append(args, "VDEF:"+v+fn+"="+v+","+fn, "PRINT:"+v+fn+":%.17le")
		}
	}
	lines := strings.Fields(rrdtest.Run(t, args...))
	// The first line is the picture's size, here 0x0.
	if len(lines) != 1+2*len(fns) {
		t.Fatalf("rrdtool graph printed %q", lines)
	}
	vals := make([]float64, 0, 2*len(fns))
	for _, l := range lines[1:] {
		v, err := strconv.ParseFloat(l, 64)
		if strings.Contains(strings.ToLower(l), "nan") {
			v, err = math.NaN(), nil // "-nan" on glibc
		}
		if err != nil {
			t.Fatalf("rrdtool graph printed %q: %v", l, err)
		}
		vals = append(vals, v)
	}
	summary := func(v []float64) graph.Summary {
		return graph.Summary{Now: v[0], Avg: v[1], Min: v[2], Max: v[3], StdDev: v[4]}
	}
	return graph.Stats{Median: summary(vals[:5]), Loss: summary(vals[5:])}
}

// same reports whether two figures agree: both unknown, or equal. The standard deviation
// may differ in its last bits: rrdtool takes it with pow(), Go with Sqrt.
func same(a, b float64, exact bool) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if exact {
		return a == b
	}
	return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

func sameStats(got, want graph.Stats) bool {
	ok := true
	for _, p := range [][2]graph.Summary{{got.Median, want.Median}, {got.Loss, want.Loss}} {
		g, w := p[0], p[1]
		ok = ok && same(g.Now, w.Now, true) && same(g.Avg, w.Avg, true) && same(g.Min, w.Min, true) &&
			same(g.Max, w.Max, true) && same(g.StdDev, w.StdDev, false)
	}
	return ok
}

// TestStatsMatchRRDTool checks the legend's figures against rrdtool graph's PRINT for the
// same file and span: on a main.rrd written by pingmachine's store and on rrdtool's
// golden file, for a day, a week, a month and custom spans, which take every path of
// choosing and consolidating the rows (the step asked for is span/width, as rrdtool
// graph asks).
func TestStatsMatchRRDTool(t *testing.T) {
	if rrdfmt.NativeLayout() != rrdfmt.LP64 {
		t.Skip("the golden file is of the amd64 layout")
	}
	loc, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	end := time.Date(2026, 3, 10, 0, 0, 0, 0, loc)
	graphtest.Write(t, base, "office/gw", time.Minute, 20, end.Add(-8*24*time.Hour), end, loc, 1)
	golden, err := filepath.Abs("../../testdata/rrd/pm60-amd64.rrd")
	if err != nil {
		t.Fatal(err)
	}
	files := []struct {
		name  string
		path  string
		pings int
	}{
		{"store", filepath.Join(base, "output", "office", "gw", "main.rrd"), 20},
		{"rrdtool", golden, 5},
	}
	spans := []struct {
		name     string
		ago, len time.Duration // the span ends ago before the last update
		width    int
		step     time.Duration // of the rows read
	}{
		{"day", 0, 24 * time.Hour, 600, 5 * time.Minute},
		{"week", 0, 7 * 24 * time.Hour, 600, 30 * time.Minute},
		{"month", 0, 30 * 24 * time.Hour, 600, 2 * time.Hour}, // hourly rows, two per row
		{"10h-unaligned", 3*time.Hour - 7*time.Second, 10 * time.Hour, 300, 2 * time.Minute},
		{"2h-finer-than-pixels", time.Hour, 2 * time.Hour, 600, time.Minute},
		{"after-the-end", -48 * time.Hour, 24 * time.Hour, 600, 3 * time.Minute}, // every archive reaches back: the finest
	}
	for _, f := range files {
		info, err := rrdfmt.ReadInfo(f.path, rrdfmt.LP64)
		if err != nil {
			t.Fatal(err)
		}
		last := info.LastUpdate
		for _, s := range spans {
			t.Run(f.name+"/"+s.name, func(t *testing.T) {
				span := graph.Span{Start: last.Add(-s.ago - s.len), End: last.Add(-s.ago), Width: s.width}
				d, err := graph.Read(f.path, span)
				if err != nil {
					t.Fatal(err)
				}
				if d.Step != s.step || d.Pings != f.pings || d.Round != time.Minute {
					t.Errorf("rows of %v for %d pings every %v, want %v, %d, 1m0s", d.Step, d.Pings, d.Round, s.step, f.pings)
				}
				got, want := d.Stats(), rrdtoolStats(t, f.path, f.pings, span)
				if !sameStats(got, want) {
					t.Errorf("stats\n got %+v\nwant %+v (rrdtool graph)", got, want)
				}
				if s.name != "after-the-end" && (math.IsNaN(got.Median.Avg) || math.IsNaN(got.Loss.Max)) {
					t.Errorf("no data in the span: %+v", got)
				}
			})
		}
	}
}

// TestReadErrors checks that Read names the file and what is wrong with it.
func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	notRRD := filepath.Join(dir, "junk.rrd")
	if err := os.WriteFile(notRRD, []byte("not an rrd at all, but long enough to hold a header"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.rrd")
	spec := rrdfmt.Spec{Step: time.Minute, Layout: rrdfmt.NativeLayout(),
		DS:  []rrdfmt.DS{{Name: "in", Type: "GAUGE", Heartbeat: 120, Min: math.NaN(), Max: math.NaN()}},
		RRA: []rrdfmt.RRA{{CF: "AVERAGE", XFF: 0.5, PDPs: 1, Rows: 10}}}
	if err := rrdfmt.Create(other, spec); err != nil {
		t.Fatal(err)
	}
	foreign := "../../testdata/rrd/pm60-armhf.rrd"
	if rrdfmt.NativeLayout() != rrdfmt.LP64 {
		foreign = "../../testdata/rrd/pm60-amd64.rrd"
	}
	now := time.Now()
	day := graph.Span{Start: now.Add(-24 * time.Hour), End: now, Width: 600}
	for _, c := range []struct {
		name, path string
		span       graph.Span
		want       string
	}{
		{"missing", filepath.Join(dir, "none.rrd"), day, "none.rrd: no such file or directory"},
		{"not an RRD", notRRD, day, "junk.rrd: not an RRD file"},
		{"another layout", foreign, day, filepath.Base(foreign) + ": RRD file of another CPU layout"},
		{"not a main.rrd", other, day, "other.rrd is not a pingmachine main.rrd: data sources in: want loss, median, ping1..pingN"},
		{"no width", other, graph.Span{Start: day.Start, End: day.End}, "width 0"},
		{"empty span", other, graph.Span{Start: now, End: now, Width: 600}, "is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := graph.Read(c.path, c.span)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Read: %v, want an error with %q", err, c.want)
			}
		})
	}
}
