package metrics

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/store"
	"pingmachine/store/live"
	"pingmachine/store/telegraf"
)

func TestBuckets(t *testing.T) {
	want := prometheus.ExponentialBuckets(0.00005, 2, 20)
	for i, b := range bounds {
		if b != want[i] {
			t.Errorf("bound %d = %v, want smokeping_prober's %v", i, b, want[i])
		}
	}
	if leLabels[0] != `,le="5e-05"} ` || leLabels[19] != `,le="26.2144"} ` || leLabels[20] != `,le="+Inf"} ` {
		t.Errorf("le labels %q", leLabels)
	}
	for _, c := range []struct {
		v    float64
		want int
	}{{0, 0}, {0.00005, 0}, {0.0000500001, 1}, {0.0001, 1}, {0.00015, 2}, {1, 15}, {26.2144, 19}, {26.3, 20}, {3600, 20}} {
		if got := bucketOf(c.v); got != c.want {
			t.Errorf("bucketOf(%v) = %d, want %d", c.v, got, c.want)
		}
	}
}

func TestLabels(t *testing.T) {
	icmp := func(id string, tags map[string]string) *orders.Order {
		return &orders.Order{ID: id, Probe: "fping", FPing: &orders.FPing{Host: "gw.example", Source: netip.MustParseAddr("127.0.0.9")},
			Telegraf: orders.Telegraf{Tags: tags}}
	}
	addr := store.Result{Addr: netip.MustParseAddr("::1")}
	for _, c := range []struct {
		name string
		o    *orders.Order
		r    store.Result
		want string
	}{
		{"icmp", icmp("a/b", nil), addr, `id="a/b",host="gw.example",ip="::1",source="127.0.0.9",tos=""`},
		{"not resolved", icmp("a", nil), store.Result{}, `id="a",host="gw.example",ip="",source="127.0.0.9",tos=""`},
		{"tags sorted, invalid names and clashes left out", icmp("a", map[string]string{
			"site": "zrh", "host": "clash", "le": "clash", "id": "clash", "9lives": "bad", "__name__": "bad", "a-b": "bad", "ünï": "bad", "_ok": "1", "Rack2": "r",
		}), addr, `id="a",host="gw.example",ip="::1",source="127.0.0.9",tos="",Rack2="r",_ok="1",site="zrh"`},
		{"escaped", icmp("q\"\\\n", map[string]string{"t": "x\"y\\z\nw"}), addr,
			`id="q\"\\\n",host="gw.example",ip="::1",source="127.0.0.9",tos="",t="x\"y\\z\nw"`},
		{"not UTF-8", icmp("bad\xffname\xc3", map[string]string{"t": "ü"}), addr, `id="bad\\xffname\\xc3",host="gw.example",ip="::1",source="127.0.0.9",tos="",t="ü"`},
		{"httping", &orders.Order{ID: "h", Probe: "httping", HTTPing: &orders.HTTPing{URL: "http://127.0.0.1/"}}, store.Result{},
			`id="h",host="http://127.0.0.1/",ip="",source="",tos=""`},
		{"sping", &orders.Order{ID: "s", Probe: "sping", SCION: &orders.SCION{Host: "1-ff00:0:110,127.0.0.1", Source: "127.0.0.2"}}, store.Result{},
			`id="s",host="1-ff00:0:110,127.0.0.1",ip="",source="127.0.0.2",tos=""`},
	} {
		if got := labelsOf(c.o, c.r); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// scrape serves m's handler once and parses what it gives as Prometheus does.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return mfs
}

// value is the value of the sample of family name whose labels include want; ok is
// false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func ms(v ...float64) []time.Duration {
	d := make([]time.Duration, len(v))
	for i, x := range v {
		d[i] = time.Duration(x * float64(time.Millisecond))
		if x < 0 {
			d[i] = pinger.Lost
		}
	}
	return d
}

// round feeds m a round of o as the store reports it.
func round(m *Metrics, o *orders.Order, addr string, rtts []time.Duration) {
	r := store.Result{ID: o.ID, Time: time.Unix(6000, 0), Step: o.Step, RTTs: rtts}
	if addr != "" {
		r.Addr = netip.MustParseAddr(addr)
	}
	last := store.LastResult{Time: r.Time, Step: o.Step, Pings: len(rtts), Min: -1, Median: -1, Max: -1}
	var got []time.Duration
	for _, d := range rtts {
		if d >= 0 {
			got = append(got, d)
		} else {
			last.Loss++
		}
	}
	if len(got) > 0 {
		last.Min, last.Median, last.Max = got[0], got[len(got)/2], got[len(got)-1] // sorted in the tests
	}
	m.Round(o, r, last)
}

func TestExposition(t *testing.T) {
	m := New(Sources{
		Engine: func() pinger.Stats {
			return pinger.Stats{Sent: 10, Received: 7, TimedOut: 3, Late: 1, Duplicate: 2, Foreign: 4, ICMPErrors: 5, KernelDrops: 6}
		},
		Sockets: func() []pinger.Socket {
			return []pinger.Socket{{Mode: pinger.ModeRaw}, {IPv6: true, Mode: pinger.ModeDatagram}}
		},
		Store: func() store.Stats {
			return store.Stats{RRDErrors: 1, LastResultErrors: 2, RRDCachedBacklog: 3, RRDCachedDropped: 4}
		},
		Telegraf: func() telegraf.Stats { return telegraf.Stats{SendErrors: 5, Dropped: 6} },
		Orders:   func() live.Counts { return live.Counts{Active: 2, Invalid: 1, Expired: 3} },
	})
	a := &orders.Order{ID: "a", Step: time.Minute, Probe: "fping", FPing: &orders.FPing{Host: "127.0.0.1"}}
	b := &orders.Order{ID: "b", Step: time.Minute, Probe: "fping", FPing: &orders.FPing{Host: "down.test"}}
	round(m, a, "127.0.0.1", ms(0.04, 0.08, 0.3, -1))
	round(m, a, "127.0.0.1", ms(0.05, 30000))
	round(m, b, "", ms(-1, -1, -1))
	mfs := scrape(t, m)
	la, lb := map[string]string{"id": "a", "ip": "127.0.0.1", "host": "127.0.0.1"}, map[string]string{"id": "b", "host": "down.test", "ip": ""}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"smokeping_requests_total", la, 6},
		{"smokeping_response_duration_seconds", la, 5},
		{"smokeping_requests_total", lb, 3},
		{"smokeping_response_duration_seconds", lb, 0},
		{"pingmachine_rounds_total", la, 2},
		{"pingmachine_last_loss_ratio", la, 0},
		{"pingmachine_last_loss_ratio", lb, 1},
		{"pingmachine_last_rtt_min_seconds", la, 0.00005},
		{"pingmachine_last_rtt_median_seconds", la, 30},
		{"pingmachine_last_rtt_max_seconds", la, 30},
		{"pingmachine_last_round_timestamp_seconds", la, 6000},
		{"pingmachine_icmp_sent_total", nil, 10},
		{"pingmachine_icmp_received_total", nil, 7},
		{"pingmachine_icmp_timed_out_total", nil, 3},
		{"pingmachine_icmp_late_replies_total", nil, 1},
		{"pingmachine_icmp_duplicate_replies_total", nil, 2},
		{"pingmachine_icmp_foreign_replies_total", nil, 4},
		{"pingmachine_icmp_errors_total", nil, 5},
		{"pingmachine_icmp_kernel_drops_total", nil, 6},
		{"pingmachine_icmp_sockets", map[string]string{"family": "ipv4", "mode": "raw"}, 1},
		{"pingmachine_icmp_sockets", map[string]string{"family": "ipv6", "mode": "datagram"}, 1},
		{"pingmachine_icmp_sockets", map[string]string{"family": "ipv6", "mode": "raw"}, 0},
		{"pingmachine_orders", map[string]string{"state": "active"}, 2},
		{"pingmachine_orders", map[string]string{"state": "invalid"}, 1},
		{"pingmachine_orders_expired_total", nil, 3},
		{"pingmachine_write_errors_total", map[string]string{"output": "main.rrd"}, 1},
		{"pingmachine_write_errors_total", map[string]string{"output": "last_result"}, 2},
		{"pingmachine_write_errors_total", map[string]string{"output": "telegraf"}, 5},
		{"pingmachine_rrdcached_backlog_updates", nil, 3},
		{"pingmachine_rrdcached_dropped_updates_total", nil, 4},
		{"pingmachine_telegraf_dropped_points_total", nil, 6},
		{"pingmachine_build_info", nil, 1},
	} {
		if got, ok := value(mfs, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, name := range []string{"pingmachine_last_rtt_min_seconds", "pingmachine_last_rtt_median_seconds", "pingmachine_last_rtt_max_seconds"} {
		if got, _ := value(mfs, name, lb); !math.IsNaN(got) {
			t.Errorf("%s of a round without replies = %v, want NaN", name, got)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "go_build_info"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// The histogram: 40 µs and 50 µs in the first bucket, 80 µs in the second, 300 µs
	// in the fourth (400 µs), 30 s above all.
	h := mfs["smokeping_response_duration_seconds"].Metric[0].Histogram
	cum := map[float64]uint64{}
	for _, bk := range h.Bucket {
		cum[bk.GetUpperBound()] = bk.GetCumulativeCount()
	}
	if cum[0.00005] != 2 || cum[0.0001] != 3 || cum[0.0002] != 3 || cum[0.0004] != 4 || cum[26.2144] != 4 || cum[math.Inf(1)] != 5 || len(h.Bucket) != 21 {
		t.Errorf("buckets %v", cum)
	}
	if want := 0.00004 + 0.00008 + 0.0003 + 0.00005 + 30; math.Abs(h.GetSampleSum()-want) > 1e-9 {
		t.Errorf("sum %v, want %v", h.GetSampleSum(), want)
	}

	// New labels (another address) start the counts again; a gone order takes all its
	// series with it.
	round(m, a, "127.0.0.2", ms(0.1))
	m.Gone("b")
	mfs = scrape(t, m)
	if got, ok := value(mfs, "smokeping_requests_total", map[string]string{"id": "a", "ip": "127.0.0.2"}); !ok || got != 1 {
		t.Errorf("after the address changed: requests %v, want 1", got)
	}
	if _, ok := value(mfs, "smokeping_requests_total", la); ok {
		t.Errorf("the series of the old address is still there")
	}
	for name, mf := range mfs {
		for _, s := range mf.Metric {
			for _, l := range s.Label {
				if l.GetName() == "id" && l.GetValue() == "b" {
					t.Errorf("%s: a series of the gone order b", name)
				}
			}
		}
	}
	m.Gone("never there")
}

// failing is a collector whose metrics do not match its description.
type failing struct{}

func (failing) Describe(chan<- *prometheus.Desc) {}
func (failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("broken", "h", nil, nil), errors.New("cannot read"))
}

func TestGatherFails(t *testing.T) {
	m := New(Sources{})
	m.reg.MustRegister(failing{})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body, _ := io.ReadAll(rec.Body); rec.Code != http.StatusInternalServerError || !strings.Contains(string(body), "cannot read") {
		t.Errorf("status %d, body %q", rec.Code, body)
	}
}

// brokenWriter fails every write after the first n bytes, as a client that goes away.
type brokenWriter struct {
	httptest.ResponseRecorder
	n int
}

func (w *brokenWriter) Write(b []byte) (int, error) {
	if w.n -= len(b); w.n < 0 {
		return 0, errors.New("connection reset")
	}
	return len(b), nil
}

// TestClientGone checks that a scrape ends when the client goes away, whatever part
// it is writing.
func TestClientGone(t *testing.T) {
	m := New(Sources{})
	o := &orders.Order{ID: "a", Step: time.Minute, Probe: "fping", FPing: &orders.FPing{Host: "127.0.0.1"}}
	for i := range 2000 {
		o := *o
		o.ID = "order-" + strconv.Itoa(i)
		round(m, &o, "127.0.0.1", ms(0.1, 0.2))
	}
	for _, n := range []int{0, 100 << 10, 1 << 20} {
		w := &brokenWriter{ResponseRecorder: *httptest.NewRecorder(), n: n}
		m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		if w.n >= 0 {
			t.Errorf("after %d bytes: the whole exposition fit, test nothing", n)
		}
	}
}
