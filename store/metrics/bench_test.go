package metrics

import (
	"compress/gzip"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/store"
	"pingmachine/store/live"
)

// discard is a ResponseWriter that counts what is written.
type discard struct {
	h     http.Header
	bytes int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(b []byte) (int, error) { d.bytes += len(b); return len(b), nil }

// cpuTime is the process' user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchOrders feeds m ten rounds of 20 pings of n orders with two tags each, RTTs
// spread over a dozen buckets and a lost ping a round.
func benchOrders(m *Metrics, n int) []*orders.Order {
	list := make([]*orders.Order, n)
	for i := range list {
		o := &orders.Order{ID: "site-" + strconv.Itoa(i/100) + "/host-" + strconv.Itoa(i), Step: time.Minute, Pings: 20, Probe: "fping",
			FPing:    &orders.FPing{Host: "host-" + strconv.Itoa(i) + ".example"},
			Telegraf: orders.Telegraf{Tags: map[string]string{"site": "site-" + strconv.Itoa(i/100), "role": "router"}}}
		list[i] = o
		for r := range 10 {
			rtts := make([]time.Duration, 20)
			for p := range rtts {
				rtts[p] = time.Duration(30+(i+r*7+p*13)%5000) * time.Microsecond * time.Duration(1+p%4)
			}
			rtts[r%20] = pinger.Lost
			round(m, o, "127.0.0.1", rtts)
		}
	}
	return list
}

// scrapeCost reports what serving h costs per scrape: CPU seconds (user and system, of
// the whole process: the garbage collector's share included) and bytes.
func scrapeCost(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	w := &discard{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		w.bytes = 0
		h.ServeHTTP(w, req)
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/scrape")
	b.ReportMetric(float64(w.bytes), "bytes/scrape")
}

// BenchmarkScrape is a scrape of /metrics with 10,000 orders of 20 pings: the
// per-order families written by hand, the rest by client_golang.
func BenchmarkScrape(b *testing.B) {
	m := New(Sources{Engine: func() pinger.Stats { return pinger.Stats{} }, Orders: func() live.Counts { return live.Counts{} }})
	benchOrders(m, 10000)
	scrapeCost(b, m.Handler())
}

// gzipped compresses what h writes at gzip's fastest level.
type gzipped struct{ h http.Handler }

func (g gzipped) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	g.h.ServeHTTP(&gzipWriter{ResponseWriter: w, z: z}, r)
	z.Close()
}

type gzipWriter struct {
	http.ResponseWriter
	z *gzip.Writer
}

func (g *gzipWriter) Write(b []byte) (int, error) { return g.z.Write(b) }

// BenchmarkScrapeGzip is BenchmarkScrape compressed at gzip's fastest level, which
// Prometheus asks for: what serving it compressed would cost (bytes/scrape are those
// sent).
func BenchmarkScrapeGzip(b *testing.B) {
	m := New(Sources{})
	benchOrders(m, 10000)
	scrapeCost(b, gzipped{m.Handler()})
}

// constOrders collects the per-order families through client_golang, as const metrics:
// the road not taken, measured against the hand-written one.
type constOrders struct {
	m                  *Metrics
	requests, duration *prometheus.Desc
	own                [6]*prometheus.Desc // pingmachine's per-order families
}

func (c *constOrders) Describe(chan<- *prometheus.Desc) {}

func (c *constOrders) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	list := make([]*series, 0, len(c.m.series))
	for _, s := range c.m.series {
		list = append(list, s)
	}
	c.m.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		f := s.figures
		s.mu.Unlock()
		values := []string{s.id, "host-" + s.id + ".example", "127.0.0.1", "", "", "router", "site-12"}
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(f.requests), values...)
		buckets := make(map[float64]uint64, len(bounds))
		var n uint64
		for i, b := range bounds {
			n += f.buckets[i]
			buckets[b] = n
		}
		n += f.buckets[len(bounds)]
		ch <- prometheus.MustNewConstHistogram(c.duration, n, f.sum, buckets, values...)
		for _, d := range c.own {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, f.median, values...)
		}
	}
}

// BenchmarkScrapeClientGolang is the same scrape with every family through
// client_golang's Gather and text encoder (uncompressed, as the hand-written one).
func BenchmarkScrapeClientGolang(b *testing.B) {
	m := New(Sources{})
	benchOrders(m, 10000)
	labels := []string{"id", "host", "ip", "source", "tos", "role", "site"}
	c := &constOrders{m: m,
		requests: prometheus.NewDesc("smokeping_requests_total", "h", labels, nil),
		duration: prometheus.NewDesc("smokeping_response_duration_seconds", "h", labels, nil),
	}
	for i := range c.own {
		c.own[i] = prometheus.NewDesc("pingmachine_own_"+strconv.Itoa(i), "h", labels, nil)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	w := &discard{h: http.Header{}}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, &http.Request{Header: http.Header{}})
	if w.h.Get("Content-Type") == "text/plain; charset=utf-8" {
		b.Fatal("client_golang's handler answered with an error")
	}
	scrapeCost(b, promhttp.HandlerFor(reg, promhttp.HandlerOpts{DisableCompression: true}))
}

// BenchmarkRound is what a round costs the writing goroutine.
func BenchmarkRound(b *testing.B) {
	m := New(Sources{})
	o := benchOrders(m, 1)[0]
	rtts := make([]time.Duration, 20)
	for i := range rtts {
		rtts[i] = time.Duration(50+i*30) * time.Microsecond
	}
	r := store.Result{ID: o.ID, Time: time.Unix(6000, 0), Step: time.Minute, RTTs: rtts}
	last := store.LastResult{Time: r.Time, Step: time.Minute, Pings: 20, Min: rtts[0], Median: rtts[10], Max: rtts[19]}
	b.ReportAllocs()
	for b.Loop() {
		m.Round(o, r, last)
	}
}
