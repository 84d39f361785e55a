// Package promtest runs a real Prometheus server (Debian's /usr/bin/prometheus) that
// scrapes one target every second, and queries it through its HTTP API: what the tests
// of /metrics read it with, from the metrics' pieces up to the daemon's binary.
package promtest

import (
	"encoding/json"
	"fmt"
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

// Query runs an instant PromQL query through the HTTP API.
func (p *Server) Query(tb testing.TB, q string) []Sample {
	tb.Helper()
	resp, err := p.client.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Status != "success" {
		tb.Fatalf("query %s: %v %s %s", q, err, doc.Status, doc.Error)
	}
	var out []Sample
	for _, r := range doc.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			tb.Fatalf("query %s: value %v", q, r.Value)
		}
		out = append(out, Sample{r.Metric, v})
	}
	return out
}

// One runs a query that must give at most one series, and returns its value; ok is
// false when there is none.
func (p *Server) One(tb testing.TB, q string) (float64, bool) {
	tb.Helper()
	s := p.Query(tb, q)
	if len(s) > 1 {
		tb.Fatalf("query %s: %d series, want one: %v", q, len(s), s)
	}
	if len(s) == 0 {
		return 0, false
	}
	return s[0].Value, true
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
