package metrics_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"pingmachine/store"
	"pingmachine/store/live/livetest"
	"pingmachine/store/metrics/promtest"
)

// TestPrometheus has a real Prometheus scrape the metrics of the daemon's pieces pinging
// loopback, and checks through its HTTP API each order's loss and median against its
// last_result, smokeping_prober's derived loss, and that a deleted order's series go.
func TestPrometheus(t *testing.T) {
	base := t.TempDir()
	d := livetest.Start(t, base, livetest.Hosts{"loopback.test": netip.MustParseAddr("127.0.0.2")})
	// Label values with every character the text format escapes.
	up := `up "quoted"`
	note := "a\"b\\c\nd"
	// An odd number of pings: the median is then an answer, in the bucket where the
	// histogram's median falls.
	d.Order(t, up, livetest.ICMP("127.0.0.1", 3, 3, ""))
	d.Order(t, "site/named", livetest.ICMP("loopback.test", 3, 3, "tags: {site: lab, bad-name: x, note: "+strconv.Quote(note)+"}\n"))
	d.Order(t, "down", livetest.ICMP("nowhere.test", 3, 3, ""))
	srv := httptest.NewServer(d.Metrics.Handler())
	defer srv.Close()
	p := promtest.Start(t, srv.Listener.Addr().String())

	// A round of each order between two scrapes: rate() sees it.
	livetest.Wait(t, 20*time.Second, "prometheus saw a round of every order", func() bool {
		return len(p.Query(t, `changes(pingmachine_rounds_total[30s]) >= 1`)) == 3
	})
	if v, ok := p.One(t, `up{job="pingmachine"}`); !ok || v != 1 {
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
		loss, ok := p.One(t, "pingmachine_last_loss_ratio"+sel)
		if want := float64(lr.Loss) / float64(lr.Pings); !ok || loss != want {
			t.Errorf("%s: loss ratio %v, last_result says %d of %d", c.id, loss, lr.Loss, lr.Pings)
		}
		// smokeping_prober's loss: requests less answers.
		lost, lok := p.One(t, fmt.Sprintf(`smokeping_requests_total%s - smokeping_response_duration_seconds_count%s`, sel, sel))
		reqs, rok := p.One(t, "smokeping_requests_total"+sel)
		if !lok || !rok || c.id == "down" && (lost != reqs || reqs < 4) || c.id != "down" && (lost != 0 || reqs < 4) {
			t.Errorf("%s: %v lost of %v requests", c.id, lost, reqs)
		}
		s := p.Query(t, "smokeping_requests_total"+sel)
		if len(s) != 1 || s[0].Labels["host"] != c.host || s[0].Labels["ip"] != c.ip {
			t.Errorf("%s: series %v, want host %s and ip %s", c.id, s, c.host, c.ip)
		}
		if c.id == "down" {
			if q, ok := p.One(t, fmt.Sprintf(`histogram_quantile(0.5, rate(smokeping_response_duration_seconds_bucket%s[30s]))`, sel)); ok && !isNaN(q) {
				t.Errorf("down: median %v, want none", q)
			}
			continue
		}
		// The round that last_result holds, as a scrape has it alone.
		var r promtest.Round
		var last store.LastResult
		livetest.Wait(t, 10*time.Second, "prometheus saw the round in "+c.id+"'s last_result alone", func() bool {
			var ok bool
			r, ok = p.LoneRound(t, sel)
			last = lastResult(c.id)
			return ok && r.Stamp == float64(last.Time.Unix())
		})
		if r.Median != last.Median.Seconds() {
			t.Errorf("%s: median %v, last_result says %v", c.id, r.Median, last.Median)
		}
		t.Logf("%s: histogram_quantile(0.5) %v, the round's median %v", c.id, r.Quantile, r.Median)
		if bq, bm := promtest.BucketOf(r.Quantile), promtest.BucketOf(r.Median); isNaN(r.Quantile) || bq-bm > 1 || bm-bq > 1 {
			t.Errorf("%s: histogram_quantile(0.5) %v (bucket %d), the same round's median %v (bucket %d)", c.id, r.Quantile, bq, r.Median, bm)
		}
	}
	if s := p.Query(t, `smokeping_requests_total{site="lab"}`); len(s) != 1 || s[0].Labels["id"] != "site/named" || s[0].Labels["note"] != note {
		t.Errorf("the telegraf tag as a label: %v", s)
	}
	if v, ok := p.One(t, `pingmachine_orders{state="active"}`); !ok || v != 3 {
		t.Errorf("active orders %v", v)
	}

	// A deleted order's series go with the next scrape (its staleness markers).
	os.Remove(filepath.Join(base, "orders", "site", "named"))
	livetest.Wait(t, 10*time.Second, "the deleted order's series are gone", func() bool {
		return len(p.Query(t, `{id="site/named"}`)) == 0
	})
	if s := p.Query(t, fmt.Sprintf(`{id=%q}`, up)); len(s) < 8 {
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
