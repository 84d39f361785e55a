package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pingmachine/rrdfmt"
	"pingmachine/rrdfmt/rrdcached"
	"pingmachine/rrdfmt/rrdtest"
)

// mainRRD is pingmachine's main.rrd for step 300 and 20 pings: 22 data sources and
// 13 RRAs, as the Perl pingmachine creates it.
func mainRRD(start time.Time) (rrdfmt.Spec, []string) {
	spec := rrdfmt.Spec{Step: 300 * time.Second, Start: start, Layout: rrdfmt.NativeLayout()}
	defs := []string{}
	addDS := func(name string, max float64) {
		spec.DS = append(spec.DS, rrdfmt.DS{Name: name, Type: "GAUGE", Heartbeat: 600, Min: 0, Max: max})
		defs = append(defs, fmt.Sprintf("DS:%s:GAUGE:600:0:%g", name, max))
	}
	addDS("loss", 20)
	addDS("median", 180)
	for i := 1; i <= 20; i++ {
		addDS(fmt.Sprintf("ping%d", i), 180)
	}
	addRRA := func(cfs string, pdps, rows uint64) {
		for _, cf := range strings.Split(cfs, ",") {
			spec.RRA = append(spec.RRA, rrdfmt.RRA{CF: cf, XFF: 0.5, PDPs: pdps, Rows: rows})
			defs = append(defs, fmt.Sprintf("RRA:%s:0.5:%d:%d", cf, pdps, rows))
		}
	}
	addRRA("AVERAGE", 1, 864)
	addRRA("AVERAGE,MIN,MAX", 6, 480)
	addRRA("AVERAGE,MIN,MAX", 12, 960)
	addRRA("AVERAGE,MAX,MIN", 144, 800)
	addRRA("AVERAGE,MAX,MIN", 2016, 520)
	return spec, defs
}

// reading is the update for step i: loss, median and 20 sorted RTTs.
func reading(start time.Time, i int) (time.Time, []string) {
	vals := []string{"0", "2.500000e-02"}
	for p := range 20 {
		vals = append(vals, fmt.Sprintf("%.6e", 0.02+float64(p)/2000))
	}
	return start.Add(time.Duration(i) * 300 * time.Second), vals
}

// writtenBytes is the process's write(2) byte count from /proc/self/io.
func writtenBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkRRDUpdate is one update of a main.rrd per op through each backend: rrdfmt in
// process, rrdcached (queued and journalled as Debian runs it, with the final FLUSH in the
// timing), and one rrdtool update process per update, which is what the Perl pingmachine's RRDs module replaces.
func BenchmarkRRDUpdate(b *testing.B) {
	start := time.Unix(1_699_999_800, 0)
	spec, defs := mainRRD(start)

	b.Run("rrdfmt", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "main.rrd")
		if err := rrdfmt.Create(path, spec); err != nil {
			b.Fatal(err)
		}
		w0 := writtenBytes(b)
		b.ResetTimer()
		for i := range b.N {
			t, vals := reading(start, i+1)
			if err := rrdfmt.UpdateFile(path, spec.Layout, rrdfmt.Update{Time: t, Values: vals}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(writtenBytes(b)-w0)/float64(b.N), "bytes-written/update")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})

	b.Run("rrdtool-process", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "main.rrd")
		if err := rrdfmt.Create(path, spec); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			t, vals := reading(start, i+1)
			arg := strconv.FormatInt(t.Unix(), 10) + ":" + strings.Join(vals, ":")
			rrdtest.Run(b, "update", path, arg)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})

	b.Run("rrdcached", func(b *testing.B) {
		d := rrdtest.StartCached(b, b.TempDir())
		ctx := context.Background()
		c, err := rrdcached.Dial(ctx, "unix:"+d.Sock)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.Create(ctx, "main.rrd", spec.Step, start, true, defs...); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			t, vals := reading(start, i+1)
			if err := c.Update(ctx, "main.rrd", strconv.FormatInt(t.Unix(), 10)+":"+strings.Join(vals, ":")); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Flush(ctx, "main.rrd"); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
}
