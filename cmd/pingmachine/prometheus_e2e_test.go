package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
	"pingmachine/store/metrics/promtest"
)

// promOrders are the orders of TestPrometheusScrapesDaemon: loopback hosts, one with
// telegraf tags, and a name that cannot resolve (the namespace has no route to a
// resolver), whose rounds are all loss.
var promOrders = []struct {
	id, host, ip, yaml string
	loss               int // of promPings, in every round
}{
	{"zurich/gw", "127.0.0.1", "127.0.0.1", icmpOrder("127.0.0.1", 10, promPings, ""), 0},
	{"zurich/printer", "127.0.0.2", "127.0.0.2", icmpOrder("127.0.0.2", 10, promPings, "rrd_template: norrd\ntags: {site: zurich, room: \"2.14\"}\n"), 0},
	{"geneva/gw", "::1", "::1", icmpOrder("::1", 10, promPings, "  ipv6: true\n"), 0},
	{"geneva/gone", "gone.invalid", "", icmpOrder("gone.invalid", 10, promPings, ""), promPings},
}

const promPings = 5

// TestPrometheusScrapesDaemon has a real Prometheus scrape the daemon binary's /metrics
// every second, both in a network namespace of the test's own, and reads through
// Prometheus' HTTP API what a dashboard would: each order's loss, as smokeping_prober's
// users compute it and as pingmachine's gauge has it, against last_result; the median
// from the histogram against last_result's; the telegraf tags as labels; and a deleted
// order's series gone while the others stay. /api/status, the daemon's live state, is
// then the document that status --json reads from the files.
func TestPrometheusScrapesDaemon(t *testing.T) {
	t.Parallel()
	build(t)
	ns := pingtest.NewNamespace(t)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext}}
	base := filepath.Join(t.TempDir(), "pingmachine")
	for _, o := range promOrders {
		writeOrder(t, base, o.id, o.yaml)
	}
	// The namespace is the test's: its ports are all free.
	const listen = "127.0.0.1:9374"
	d := startDaemonIn(t, ns, base, "--listen", listen)
	p := promtest.StartWith(t, listen, promtest.Options{Command: ns.Command, Listen: "127.0.0.1:9090", Client: client})

	// A scrape after a round of each order.
	d.waitFor("prometheus has a round of every order", 30*time.Second, func() bool {
		return len(p.Query(t, `pingmachine_rounds_total >= 1`)) == len(promOrders)
	})
	if v, ok := p.One(t, `up{job="pingmachine"}`); !ok || v != 1 {
		t.Fatalf("up = %v (found %v)", v, ok)
	}
	for _, o := range promOrders {
		sel := fmt.Sprintf(`{id=%q}`, o.id)
		// smokeping_prober's loss, requests less answers, per round: every round of an
		// order loses the same here, so it is last_result's loss.
		perRound := func(q string) float64 {
			v, ok := p.One(t, fmt.Sprintf(`sum(%s) / sum(pingmachine_rounds_total%s)`, q, sel))
			if !ok {
				t.Fatalf("%s: no answer to %s", o.id, q)
			}
			return v
		}
		requests := perRound("smokeping_requests_total" + sel)
		lost := perRound(fmt.Sprintf("smokeping_requests_total%s - smokeping_response_duration_seconds_count%s", sel, sel))
		// The gauges and last_result are of one round only when both have its time
		// stamp: a round may come between reading one and the other. The histogram is
		// read over that round only (promtest.LoneRound says why).
		var lr lastResult
		var r promtest.Round
		d.waitFor("a scrape of "+o.id+"'s last round alone", 25*time.Second, func() bool {
			lr, _ = readLastResult(t, base, o.id)
			var ok bool
			r, ok = p.LoneRound(t, sel)
			return ok && strconv.FormatFloat(r.Stamp, 'f', -1, 64) == lr.values["time"]
		})
		stamp := r.Stamp
		checkLastResult(t, o.id, lr, 10, promPings, o.loss)
		if requests != promPings || lost != float64(lr.int(t, "loss")) {
			t.Errorf("%s: %v requests and %v lost a round in Prometheus, last_result has %s of %s lost",
				o.id, requests, lost, lr.values["loss"], lr.values["pings"])
		}
		if v, ok := p.One(t, "pingmachine_last_loss_ratio"+sel); !ok || v != float64(o.loss)/promPings {
			t.Errorf("%s: pingmachine_last_loss_ratio %v (found %v) of the round at %v, last_result has %s of %s lost",
				o.id, v, ok, stamp, lr.values["loss"], lr.values["pings"])
		}
		s := p.Query(t, "smokeping_requests_total"+sel)
		if len(s) != 1 || s[0].Labels["host"] != o.host || s[0].Labels["ip"] != o.ip {
			t.Errorf("%s: series %v, want host %s and ip %s", o.id, s, o.host, o.ip)
		}
		if o.loss == promPings {
			if !math.IsNaN(r.Quantile) {
				t.Errorf("%s: median %v from a histogram without answers, want none (NaN)", o.id, r.Quantile)
			}
			continue
		}
		median, err := strconv.ParseFloat(lr.values["median"], 64)
		if err != nil || median != r.Median {
			t.Errorf("%s: last_result median %q (%v), the round's gauge %v", o.id, lr.values["median"], err, r.Median)
		}
		t.Logf("%s: histogram_quantile(0.5) %v, last_result's median %v", o.id, r.Quantile, median)
		if bq, bm := promtest.BucketOf(r.Quantile), promtest.BucketOf(median); math.IsNaN(r.Quantile) || bq-bm > 1 || bm-bq > 1 {
			t.Errorf("%s: histogram_quantile(0.5) %v (bucket %d), last_result's median %v (bucket %d)", o.id, r.Quantile, bq, median, bm)
		}
	}
	if s := p.Query(t, `smokeping_requests_total{site="zurich"}`); len(s) != 1 || s[0].Labels["id"] != "zurich/printer" || s[0].Labels["room"] != "2.14" {
		t.Errorf("the telegraf tags as labels: %v", s)
	}

	// A deleted order's series go with the next scrape (staleness markers), the
	// others stay.
	if err := os.Remove(filepath.Join(base, "orders", "zurich", "printer")); err != nil {
		t.Fatal(err)
	}
	d.waitFor("the deleted order's series gone from Prometheus", 10*time.Second, func() bool {
		return len(p.Query(t, `{id="zurich/printer"}`)) == 0
	})
	for _, o := range promOrders {
		if n := len(p.Query(t, fmt.Sprintf(`{id=%q}`, o.id))); o.id != "zurich/printer" && n < 8 {
			t.Errorf("%s: %d series after another order was deleted, want its 8 families", o.id, n)
		}
	}

	// The live state is what the files say. A round may be written between the two
	// readings, so a pair is compared only when /api/status was the same before and
	// after status --json.
	d.waitFor("/api/status equal to status --json", 15*time.Second, func() bool {
		before := apiStatus(t, client, "http://"+listen)
		out, stderr, code := runCmd(t, exec.Command(build(t), "status", "--json", "-b", base))
		if code != 0 {
			t.Fatalf("status --json: exit %d\n%s", code, stderr)
		}
		after := apiStatus(t, client, "http://"+listen)
		cli := stableStatus(t, []byte(out))
		if !reflect.DeepEqual(before, after) {
			return false
		}
		if !reflect.DeepEqual(before, cli) {
			t.Fatalf("/api/status:\n%v\nstatus --json:\n%v", before, cli)
		}
		if n := len(before["orders"].([]any)); n != len(promOrders)-1 {
			t.Fatalf("/api/status lists %d orders after one of %d was deleted: %v", n, len(promOrders), before)
		}
		return true
	})
}

// apiStatus reads /api/status as stableStatus has it.
func apiStatus(t *testing.T, client *http.Client, url string) map[string]any {
	t.Helper()
	resp, err := client.Get(url + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/status: %d %s, %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	return stableStatus(t, body)
}

// stableStatus decodes a status --json document without what depends on the moment it
// was read: its time, and the age of each result.
func stableStatus(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("a status document: %v\n%s", err, doc)
	}
	delete(v, "time")
	orders, _ := v["orders"].([]any)
	for _, o := range orders {
		if r, ok := o.(map[string]any)["result"].(map[string]any); ok {
			delete(r, "age")
		}
	}
	return v
}
