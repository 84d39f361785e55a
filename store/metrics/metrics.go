// Package metrics serves the daemon's Prometheus metrics: per order, smokeping_prober's
// smokeping_requests_total and smokeping_response_duration_seconds with its labels and
// buckets, so that its dashboards and recording rules work unchanged, and pingmachine's
// own figures of the last round; per daemon, the ICMP engine's counters, the orders, the
// outputs' write errors, and the Go, process and build collectors.
//
// The per-order families, tens of lines per order, are written by hand (exposition.go):
// client_golang's Gather builds a protobuf message per line and would cost several
// times the scrape budget at 10,000 orders (bench/README.md). client_golang serves the
// rest, a few dozen lines.
package metrics

import (
	"bufio"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/store"
	"pingmachine/store/live"
	"pingmachine/store/telegraf"
)

// Sources are where the daemon-wide figures are read at each scrape. A nil function
// leaves its metrics out.
type Sources struct {
	Engine   func() pinger.Stats
	Sockets  func() []pinger.Socket
	Store    func() store.Stats
	Telegraf func() telegraf.Stats
	Orders   func() live.Counts
	Logger   *slog.Logger // nil discards
}

// Metrics holds the per-order series and serves every metric. It is the live.Observer
// of the daemon's live state; its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	mu     sync.Mutex
	series map[string]*series
	sorted []*series // by id; nil when a series came or went since
}

// New returns the Metrics of a daemon reading its figures from src.
func New(src Sources) *Metrics {
	log := src.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log, series: make(map[string]*series)}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		buildInfo(),
		&daemon{src: src},
	)
	return m
}

// buildInfo is pingmachine_build_info: the module's version and the Go release.
func buildInfo() prometheus.Collector {
	version, goVersion := "(unknown)", "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = bi.Main.Version, bi.GoVersion
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pingmachine_build_info",
		Help:        "Always 1; its labels say which pingmachine runs and with which Go it was built.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// Round counts a round of an order (live.Observer).
func (m *Metrics) Round(o *orders.Order, r store.Result, last store.LastResult) {
	labels := labelsOf(o, r)
	m.mu.Lock()
	s := m.series[o.ID]
	if s == nil {
		s = &series{id: o.ID}
		m.series[o.ID] = s
		m.sorted = nil
	}
	m.mu.Unlock()
	s.add(labels, r, last)
}

// Gone drops an order's series (live.Observer): the next scrape no longer has them.
func (m *Metrics) Gone(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.series[id] != nil {
		delete(m.series, id)
		m.sorted = nil
	}
}

// snapshot copies every series' figures, sorted by id. Each series is locked only while
// it is copied, so that a scrape never holds up a round for long.
func (m *Metrics) snapshot() []figures {
	m.mu.Lock()
	if m.sorted == nil {
		m.sorted = make([]*series, 0, len(m.series))
		for _, s := range m.series {
			m.sorted = append(m.sorted, s)
		}
		slices.SortFunc(m.sorted, func(a, b *series) int { return strings.Compare(a.id, b.id) })
	}
	list := m.sorted
	m.mu.Unlock()
	out := make([]figures, len(list))
	for i, s := range list {
		s.mu.Lock()
		out[i] = s.figures
		s.mu.Unlock()
	}
	return out
}

// Handler serves every metric in Prometheus' text format, uncompressed: gzip would cost
// more CPU than the scrape itself at 10,000 orders, so it is not to be wrapped in a
// compressing handler either. It holds no lock while it writes: a slow client holds up
// nothing but its own answer.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(m.serve)
}

func (m *Metrics) serve(w http.ResponseWriter, _ *http.Request) {
	mfs, err := m.reg.Gather()
	if err != nil {
		m.log.Error("gathering metrics", "err", err)
		http.Error(w, "gathering metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(bw, mf); err != nil {
			return // the client went away
		}
	}
	if err := writeOrders(bw, m.snapshot()); err != nil {
		return
	}
	bw.Flush()
}

// series is one order's figures and the labels they were counted under.
type series struct {
	id string
	mu sync.Mutex
	figures
}

// figures are what a scrape shows of an order.
type figures struct {
	labels   string // rendered, without braces
	requests uint64
	buckets  [len(bounds) + 1]uint64 // per bucket, not cumulative; the last above every bound
	sum      float64                 // seconds, of the received pings
	rounds   uint64
	// The last round: loss as a ratio, RTTs in seconds (NaN when none was answered),
	// and its time stamp in Unix seconds.
	loss, min, median, max, stamp float64
}

// add counts a round. Under new labels (the address or the tags changed) the counts
// start again: they belong to another series.
func (s *series) add(labels string, r store.Result, last store.LastResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.labels != labels {
		s.figures = figures{labels: labels}
	}
	s.rounds++
	for _, d := range r.RTTs {
		s.requests++
		if d < 0 {
			continue
		}
		v := d.Seconds()
		s.buckets[bucketOf(v)]++
		s.sum += v
	}
	s.loss = float64(last.Loss) / float64(last.Pings)
	s.min, s.median, s.max = seconds(last.Min), seconds(last.Median), seconds(last.Max)
	s.stamp = float64(last.Time.Unix())
}

// seconds is a last_result RTT in seconds, NaN for none.
func seconds(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return d.Seconds()
}
