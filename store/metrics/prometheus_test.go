package metrics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"pingmachine/store"
	"pingmachine/store/live/livetest"
	"pingmachine/store/storetest"
)

// prometheus is a Prometheus server scraping one target every second.
type prometheus struct {
	url string
}

// startPrometheus runs /usr/bin/prometheus (Debian's prometheus) on a free loopback
// port with its data in a temporary directory, scraping target (host:port) every
// second, until the test ends.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pingmachine\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logs := &storetest.LogBuffer{}
	cmd := exec.Command("/usr/bin/prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus (Debian package prometheus, `make deps`): %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus said:\n%s", logs)
		}
	})
	p := &prometheus{url: "http://" + addr}
	livetest.Wait(t, 20*time.Second, "prometheus is ready", func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// sample is one series of a query's answer.
type sample struct {
	labels map[string]string
	value  float64
}

// query runs an instant PromQL query through the HTTP API.
func (p *prometheus) query(t *testing.T, q string) []sample {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
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
		t.Fatalf("query %s: %v %s %s", q, err, doc.Status, doc.Error)
	}
	var out []sample
	for _, r := range doc.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, r.Value)
		}
		out = append(out, sample{r.Metric, v})
	}
	return out
}

// one runs a query that must give one series, and returns its value; ok is false when
// there is none yet.
func (p *prometheus) one(t *testing.T, q string) (float64, bool) {
	t.Helper()
	s := p.query(t, q)
	if len(s) > 1 {
		t.Fatalf("query %s: %d series, want one: %v", q, len(s), s)
	}
	if len(s) == 0 {
		return 0, false
	}
	return s[0].value, true
}

// bucketOf is the index of the smokeping_prober bucket that holds v seconds.
func bucketOf(v float64) int {
	i := 0
	for b := 0.00005; i < 20 && v > b; b *= 2 {
		i++
	}
	return i
}

// TestPrometheus has a real Prometheus scrape the metrics of the daemon's pieces pinging
// loopback, and checks through its HTTP API each order's loss and median against its
// last_result, smokeping_prober's derived loss, and that a deleted order's series go.
func TestPrometheus(t *testing.T) {
	base := t.TempDir()
	d := livetest.Start(t, base, livetest.Hosts{"loopback.test": netip.MustParseAddr("127.0.0.2")})
	// Label values with every character the text format escapes.
	up := `up "quoted"`
	note := "a\"b\\c\nd"
	d.Order(t, up, livetest.ICMP("127.0.0.1", 2, 2, ""))
	d.Order(t, "site/named", livetest.ICMP("loopback.test", 2, 2, "tags: {site: lab, bad-name: x, note: "+strconv.Quote(note)+"}\n"))
	d.Order(t, "down", livetest.ICMP("nowhere.test", 2, 2, ""))
	srv := httptest.NewServer(d.Metrics.Handler())
	defer srv.Close()
	p := startPrometheus(t, srv.Listener.Addr().String())

	// A round of each order between two scrapes: rate() sees it.
	livetest.Wait(t, 20*time.Second, "prometheus saw a round of every order", func() bool {
		return len(p.query(t, `changes(pingmachine_rounds_total[30s]) >= 1`)) == 3
	})
	if v, ok := p.one(t, `up{job="pingmachine"}`); !ok || v != 1 {
		t.Fatalf("up = %v", v)
	}
	lastResult := func(id string) store.LastResult {
		r, err := store.ReadLastResult(filepath.Join(base, "output", id, "last_result"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		id, host, ip string
	}{{up, "127.0.0.1", "127.0.0.1"}, {"site/named", "loopback.test", "127.0.0.2"}, {"down", "nowhere.test", ""}} {
		sel := fmt.Sprintf(`{id=%q}`, c.id)
		lr := lastResult(c.id)
		loss, ok := p.one(t, "pingmachine_last_loss_ratio"+sel)
		if want := float64(lr.Loss) / float64(lr.Pings); !ok || loss != want {
			t.Errorf("%s: loss ratio %v, last_result says %d of %d", c.id, loss, lr.Loss, lr.Pings)
		}
		// smokeping_prober's loss: requests less answers.
		lost, lok := p.one(t, fmt.Sprintf(`smokeping_requests_total%s - smokeping_response_duration_seconds_count%s`, sel, sel))
		reqs, rok := p.one(t, "smokeping_requests_total"+sel)
		if !lok || !rok || c.id == "down" && (lost != reqs || reqs < 4) || c.id != "down" && (lost != 0 || reqs < 4) {
			t.Errorf("%s: %v lost of %v requests", c.id, lost, reqs)
		}
		s := p.query(t, "smokeping_requests_total"+sel)
		if len(s) != 1 || s[0].labels["host"] != c.host || s[0].labels["ip"] != c.ip {
			t.Errorf("%s: series %v, want host %s and ip %s", c.id, s, c.host, c.ip)
		}
		if c.id == "down" {
			if q, ok := p.one(t, fmt.Sprintf(`histogram_quantile(0.5, rate(smokeping_response_duration_seconds_bucket%s[30s]))`, sel)); ok && !isNaN(q) {
				t.Errorf("down: median %v, want none", q)
			}
			continue
		}
		q, ok := p.one(t, fmt.Sprintf(`histogram_quantile(0.5, rate(smokeping_response_duration_seconds_bucket%s[30s]))`, sel))
		median, mok := p.one(t, "pingmachine_last_rtt_median_seconds"+sel)
		if !ok || !mok || isNaN(q) {
			t.Errorf("%s: histogram_quantile(0.5) %v (found %v), median %v (found %v)", c.id, q, ok, median, mok)
			continue
		}
		if lr := lastResult(c.id); lr.Median.Seconds() != median && lastResult(c.id).Time == lr.Time {
			t.Errorf("%s: median %v, last_result says %v", c.id, median, lr.Median)
		}
		t.Logf("%s: histogram_quantile(0.5) %v, last round's median %v", c.id, q, median)
		if bq, bm := bucketOf(q), bucketOf(median); bq-bm > 1 || bm-bq > 1 {
			t.Errorf("%s: histogram_quantile(0.5) %v (bucket %d), last round's median %v (bucket %d)", c.id, q, bq, median, bm)
		}
	}
	if s := p.query(t, `smokeping_requests_total{site="lab"}`); len(s) != 1 || s[0].labels["id"] != "site/named" || s[0].labels["note"] != note {
		t.Errorf("the telegraf tag as a label: %v", s)
	}
	if v, ok := p.one(t, `pingmachine_orders{state="active"}`); !ok || v != 3 {
		t.Errorf("active orders %v", v)
	}

	// A deleted order's series go with the next scrape (its staleness markers).
	os.Remove(filepath.Join(base, "orders", "site", "named"))
	livetest.Wait(t, 10*time.Second, "the deleted order's series are gone", func() bool {
		return len(p.query(t, `{id="site/named"}`)) == 0
	})
	if s := p.query(t, fmt.Sprintf(`{id=%q}`, up)); len(s) < 8 {
		t.Errorf("the series of order up: %d, want its 8 families", len(s))
	}

	// promtool, Prometheus' own linter, on a scrape.
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command("/usr/bin/promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func isNaN(v float64) bool { return v != v }
