// Package promtest runs a real Prometheus server (Debian's /usr/bin/prometheus) that
// scrapes one target every second, and queries it through its HTTP API: what the tests
// of /metrics read it with, from the metrics' pieces up to the daemon's binary.
package promtest

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"pingmachine/store/storetest"
)

// Server is a Prometheus server scraping one target every second.
type Server struct {
	URL    string
	client *http.Client
}

// Options say where Prometheus runs; the zero value is the test's own network
// namespace.
type Options struct {
	// Command makes the command that runs Prometheus (exec.Command if nil): a test
	// namespace's Command runs it in there, next to a daemon it cannot reach from
	// outside.
	Command func(name string, args ...string) *exec.Cmd
	// Listen is its address; if empty, a free loopback port of the test's namespace.
	Listen string
	// Client reaches Listen (http.DefaultClient if nil).
	Client *http.Client
}

// Start runs /usr/bin/prometheus on a free loopback port with its data in a temporary
// directory, scraping target (host:port, path /metrics) every second, until the test
// ends. It fails the test if Prometheus is not installed: the tests of /metrics are
// about what a real Prometheus reads.
func Start(tb testing.TB, target string) *Server {
	tb.Helper()
	return StartWith(tb, target, Options{})
}

// StartWith is Start with Prometheus where o says.
func StartWith(tb testing.TB, target string, o Options) *Server {
	tb.Helper()
	if o.Command == nil {
		o.Command = exec.Command
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Listen == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		o.Listen = l.Addr().String()
		l.Close()
	}
	dir := tb.TempDir()
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pingmachine\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	logs := &storetest.LogBuffer{}
	cmd := o.Command("/usr/bin/prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+o.Listen)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting prometheus (Debian package prometheus, `make deps`): %v", err)
	}
	tb.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if tb.Failed() {
			tb.Logf("prometheus said:\n%s", logs)
		}
	})
	p := &Server{URL: "http://" + o.Listen, client: o.Client}
	storetest.WaitFor(tb, "prometheus ready", 20*time.Second, func() bool {
		resp, err := p.client.Get(p.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// Sample is one series of a query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Point is a raw sample: the time of its scrape in Unix milliseconds, and its value.
type Point struct {
	Millis int64
	Value  float64
}

// Query runs an instant PromQL query through the HTTP API, evaluated now.
func (p *Server) Query(tb testing.TB, q string) []Sample {
	tb.Helper()
	return p.QueryAt(tb, q, 0)
}

// QueryAt runs an instant PromQL query evaluated at the Unix time ms (now if 0).
func (p *Server) QueryAt(tb testing.TB, q string, ms int64) []Sample {
	tb.Helper()
	var out []Sample
	for _, r := range p.query(tb, q, ms) {
		out = append(out, Sample{r.Metric, parsePoint(tb, q, r.Value).Value})
	}
	return out
}

// Points runs a range-vector query that must select at most one series (such as
// `name{id="x"}[5m]`) and returns its raw samples, oldest first.
func (p *Server) Points(tb testing.TB, q string) []Point {
	tb.Helper()
	res := p.query(tb, q, 0)
	if len(res) > 1 {
		tb.Fatalf("query %s: %d series, want one", q, len(res))
	}
	var out []Point
	for _, r := range res {
		for _, v := range r.Values {
			out = append(out, parsePoint(tb, q, v))
		}
	}
	return out
}

type result struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`  // of an instant vector
	Values [][2]any          `json:"values"` // of a range vector
}

func (p *Server) query(tb testing.TB, q string, ms int64) []result {
	tb.Helper()
	params := url.Values{"query": {q}}
	if ms != 0 {
		params.Set("time", strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64))
	}
	resp, err := p.client.Get(p.URL + "/api/v1/query?" + params.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []result `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Status != "success" {
		tb.Fatalf("query %s: %v %s %s", q, err, doc.Status, doc.Error)
	}
	return doc.Data.Result
}

// parsePoint reads the API's [seconds, "value"] pair.
func parsePoint(tb testing.TB, q string, pair [2]any) Point {
	tb.Helper()
	t, tok := pair[0].(float64)
	s, _ := pair[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if !tok || err != nil {
		tb.Fatalf("query %s: sample %v", q, pair)
	}
	return Point{int64(math.Round(t * 1000)), v}
}

// One runs a query that must give at most one series, and returns its value; ok is
// false when there is none.
func (p *Server) One(tb testing.TB, q string) (float64, bool) {
	tb.Helper()
	return p.OneAt(tb, q, 0)
}

// OneAt is One evaluated at the Unix time ms (now if 0).
func (p *Server) OneAt(tb testing.TB, q string, ms int64) (float64, bool) {
	tb.Helper()
	s := p.QueryAt(tb, q, ms)
	if len(s) > 1 {
		tb.Fatalf("query %s: %d series, want one: %v", q, len(s), s)
	}
	if len(s) == 0 {
		return 0, false
	}
	return s[0].Value, true
}

// Round is what one scrape shows of an order's round.
type Round struct {
	// Quantile is histogram_quantile(0.5) over the round's observations only.
	Quantile float64
	// Median and Stamp are the round's gauges: its median RTT and its time stamp, in
	// seconds.
	Median, Stamp float64
}

// LoneRound reads the latest round of the order that sel selects (`{id="x"}`) that
// Prometheus saw alone: between two consecutive scrapes whose round counts differ by
// one (or in the first scrape, if it counts one round). ok is false while there is no
// such round yet.
//
// The histogram's median agrees with the round's within a bucket only over that round:
// over a window of several rounds, it is the median of all their answers, which on a
// busy machine's loopback may be ten times that of the last round.
func (p *Server) LoneRound(tb testing.TB, sel string) (r Round, ok bool) {
	tb.Helper()
	rounds := p.Points(tb, "pingmachine_rounds_total"+sel+"[5m]")
	for i := len(rounds) - 1; i >= 0; i-- {
		before := 0.0
		if i > 0 {
			before = rounds[i-1].Value
		}
		if rounds[i].Value-before != 1 {
			continue
		}
		at := rounds[i].Millis
		buckets := "smokeping_response_duration_seconds_bucket" + sel
		if i > 0 {
			buckets = fmt.Sprintf("%s - %s offset %dms", buckets, buckets, at-rounds[i-1].Millis)
		}
		var qok, mok, sok bool
		r.Quantile, qok = p.OneAt(tb, "histogram_quantile(0.5, sum by (le) ("+buckets+"))", at)
		r.Median, mok = p.OneAt(tb, "pingmachine_last_rtt_median_seconds"+sel, at)
		r.Stamp, sok = p.OneAt(tb, "pingmachine_last_round_timestamp_seconds"+sel, at)
		return r, qok && mok && sok
	}
	return Round{}, false
}

// BucketOf is the index of the smokeping_prober bucket that holds v seconds (bounds
// from 50 µs doubling, 20 of them, then +Inf): two estimates of a median agree when
// their buckets are at most one apart.
func BucketOf(v float64) int {
	i := 0
	for b := 0.00005; i < 20 && v > b; b *= 2 {
		i++
	}
	return i
}
