package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"pingmachine/orders"
	"pingmachine/store"
	"pingmachine/store/graph/graphtest"
	"pingmachine/store/view"
	"pingmachine/store/view/viewtest"
	"pingmachine/store/web"
)

// memoryView is a view of 10,000 orders in 100 directories of 100, each with a last
// result, held in memory as the daemon's own source of the status holds it: the
// benchmarks measure the server, not the reading of files.
func memoryView() *view.View {
	now := time.Now()
	v := &view.View{Base: "/var/lib/pingmachine", Time: now, Daemon: view.Daemon{Lock: "/var/lib/pingmachine/.lock", Running: true}}
	for i := range 10_000 {
		id := fmt.Sprintf("site%02d/host%04d", i/100, i)
		v.Orders = append(v.Orders, view.Order{
			ID: id,
			Order: &orders.Order{ID: id, User: fmt.Sprintf("team%d", i%7), Step: time.Minute, Pings: 20, Probe: "fping",
				FPing: &orders.FPing{Host: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Interface: "eth0"}},
			Result: &store.LastResult{Time: now.Add(-2 * time.Minute).Truncate(time.Minute), Updated: now.Add(-30 * time.Second),
				Step: time.Minute, Pings: 20, Loss: i % 4, Min: time.Millisecond, Median: time.Duration(1000+i) * time.Microsecond, Max: 5 * time.Millisecond},
		})
	}
	return v
}

// BenchmarkServe serves the status page (its first page, a page deep inside, and a
// filtered one) and /api/status over 10,000 orders; cpu-ms/op is the processor time per
// request, which other work on the machine does not lengthen.
func BenchmarkServe(b *testing.B) {
	v := memoryView()
	h := web.Handler(web.Config{Status: func() (*view.View, error) { return v, nil }})
	for _, target := range []string{"/", "/?page=50", "/?prefix=site42/&state=ok", "/?per=1000", "/api/status"} {
		b.Run(target, func(b *testing.B) {
			req := httptest.NewRequest("GET", target, nil)
			cpu := cpuTime(b)
			var size int
			for b.Loop() {
				w := &countingWriter{header: http.Header{}}
				h.ServeHTTP(w, req)
				if w.code != 0 && w.code != 200 {
					b.Fatalf("%s: %d", target, w.code)
				}
				size = w.n
			}
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// countingWriter is a ResponseWriter that keeps nothing but the size.
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header  { return w.header }
func (w *countingWriter) WriteHeader(code int) { w.code = code }
func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return io.Discard.Write(p)
}

// cpuTime is the processor time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGraph draws the graphs of an order page from a main.rrd with a day of rounds
// every minute.
func BenchmarkGraph(b *testing.B) {
	tr := viewtestTree(b)
	v, err := view.Read(tr)
	if err != nil {
		b.Fatal(err)
	}
	h := web.Handler(web.Config{Base: tr, Status: func() (*view.View, error) { return v, nil }})
	for _, target := range []string{"/graph/gw.svg?period=day", "/graph/gw.png?period=day", "/graph/gw.svg?period=year"} {
		b.Run(target, func(b *testing.B) {
			req := httptest.NewRequest("GET", target, nil)
			cpu := cpuTime(b)
			for b.Loop() {
				w := &countingWriter{header: http.Header{}}
				h.ServeHTTP(w, req)
				if w.code != 0 && w.code != 200 {
					b.Fatalf("%s: %d", target, w.code)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

func viewtestTree(b *testing.B) string {
	tr := viewtest.New(b)
	now := time.Now()
	tr.Order("gw", "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 127.0.0.1\n")
	graphtest.Write(b, tr.Base, "gw", time.Minute, 20, now.Add(-24*time.Hour), now, time.UTC, 1)
	return tr.Base
}
