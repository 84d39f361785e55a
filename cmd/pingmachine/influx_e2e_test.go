package main

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
	"pingmachine/rrdfmt/rrdtest"
	"pingmachine/store/storetest"
	"pingmachine/store/telegraf/influxtest"
)

// influxOrder is an order of TestTelegrafIntoInfluxDB and the series its rounds must
// make in InfluxDB.
type influxOrder struct {
	id          string
	host        netip.Addr
	step, pings int
	settings    string // the order's telegraf settings, YAML
	measurement string
	tags        map[string]string
}

// TestTelegrafIntoInfluxDB runs the daemon with --telegraf pointing at a real InfluxDB
// 1.x's UDP listener, both in a test namespace whose server drops some pings, and reads
// every round back with InfluxQL: each field with the float type, each tag however it had
// to be escaped, and the nanosecond times, against main.rrd (read by rrdtool) and
// last_result.
func TestTelegrafIntoInfluxDB(t *testing.T) {
	t.Parallel()
	build(t)
	link := pingtest.NewLink(t)
	half, silent := pingtest.Target4(0), pingtest.Target4(1)
	pingtest.StartResponder(t, link.Server, func(dst netip.Addr, n int) pingtest.Action {
		return pingtest.Action{Drop: dst == silent || dst == half && n%2 == 1}
	})
	influx := influxtest.Start(t, link.Client)

	orders := []influxOrder{
		{
			id: "escaped/tags", host: netip.MustParseAddr("127.0.0.1"), step: 2, pings: 2,
			settings:    "measurement_name: ping rtt,v4\ntags: {site name: \"zürich, HQ\", k=ey: a=b, plain: \"1\", path: 'C:\\dir'}\n",
			measurement: "ping rtt,v4",
			tags:        map[string]string{"site name": "zürich, HQ", "k=ey": "a=b", "plain": "1", "path": `C:\dir`},
		},
		{
			id: "lossy/half", host: half, step: 3, pings: 3,
			settings:    "telegraf: {measurement_name: lossy, tags: {target: half}}\n",
			measurement: "lossy", tags: map[string]string{"target": "half"},
		},
		{
			id: "lossy/all", host: silent, step: 2, pings: 2,
			settings:    "measurement_name: lossy\ntags: {target: all}\n",
			measurement: "lossy", tags: map[string]string{"target": "all"},
		},
		{
			// telegraf/<id> replaces the order's own settings.
			id: "v6", host: pingtest.Target6(0), step: 2, pings: 2,
			settings:    "measurement_name: replaced\n",
			measurement: "v6", tags: map[string]string{"from": "file"},
		},
	}
	base := t.TempDir()
	for _, o := range orders {
		writeOrder(t, base, o.id, icmpOrder(o.host.String(), o.step, o.pings, o.settings))
	}
	writeOrder(t, base, "untagged", icmpOrder("127.0.0.2", 2, 2, "")) // no measurement: no lines
	if err := os.MkdirAll(filepath.Join(base, "telegraf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "telegraf", "v6"), []byte("measurement_name: v6\ntags: {from: file}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemonIn(t, link.Client, base, "--telegraf", influx.UDP)

	// Three rounds of each order, then a clean stop, which sends what is queued.
	for _, o := range orders {
		first := d.waitResult(o.id, 0, 15*time.Second).int(t, "time")
		d.waitResult(o.id, first+int64(2*o.step)-1, time.Duration(3*o.step+5)*time.Second)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}

	last := map[string]int64{} // each order's last round, as last_result has it
	for _, o := range orders {
		lr, ok := readLastResult(t, base, o.id)
		if !ok {
			t.Fatalf("%s: no last_result", o.id)
		}
		last[o.id] = lr.int(t, "time")
	}
	const everything = `SELECT * FROM /.*/ GROUP BY *`
	var got influxtest.Rows
	storetest.WaitFor(t, "every order's last round in InfluxDB", 10*time.Second, func() bool {
		got = influxRows(t, influx, everything)
		for _, o := range orders {
			if _, ok := got[influxtest.SeriesKey(o.measurement, o.tags)][last[o.id]*1e9]; !ok {
				return false
			}
		}
		return true
	})
	// The lines of a round may span datagrams, and InfluxDB writes what its UDP
	// listener read every 50 ms: the last rounds' individual_rtt lines may land a
	// batch after their summaries.
	time.Sleep(300 * time.Millisecond)
	got = influxRows(t, influx, everything)

	series := slices.Sorted(maps.Keys(got))
	var want []string
	for _, o := range orders {
		want = append(want, influxtest.SeriesKey(o.measurement, o.tags))
	}
	if slices.Sort(want); !slices.Equal(series, want) {
		t.Errorf("series in InfluxDB:\n%s\nwant\n%s", strings.Join(series, "\n"), strings.Join(want, "\n"))
	}
	for _, o := range orders {
		t.Run(o.id, func(t *testing.T) {
			checkInfluxRounds(t, o, got[influxtest.SeriesKey(o.measurement, o.tags)], d.path("output", o.id, "main.rrd"), last[o.id])
		})
	}

	// Every field is a float, as the lines say (no "i" suffix), in every measurement.
	measurements := influxColumn(t, influx, "SHOW MEASUREMENTS", 0)
	if !slices.Equal(measurements, []string{"lossy", "ping rtt,v4", "v6"}) {
		t.Errorf("measurements %q, want lossy, \"ping rtt,v4\" and v6", measurements)
	}
	for _, m := range measurements {
		q := fmt.Sprintf("SHOW FIELD KEYS FROM %q", m)
		fields, types := influxColumn(t, influx, q, 0), influxColumn(t, influx, q, 1)
		wantFields := []string{"individual_rtt", "loss", "max_rtt", "median_rtt", "min_rtt"}
		if !slices.Equal(fields, wantFields) || slices.ContainsFunc(types, func(s string) bool { return s != "float" }) {
			t.Errorf("%s: fields %q of types %q, want %q, all float", m, fields, types, wantFields)
		}
	}
}

// checkInfluxRounds checks the rows of one order's series: one summary per step, the
// last at last_result's time, each with the loss, min, median and max of the RRD row of
// its time, and one individual_rtt per received ping at its share of the step, the RRD's
// pings exactly.
func checkInfluxRounds(t *testing.T, o influxOrder, rows map[int64]map[string]float64, rrd string, last int64) {
	t.Helper()
	step := int64(o.step) * 1e9
	var rounds []int64
	for ts, fields := range rows {
		if _, ok := fields["loss"]; ok {
			rounds = append(rounds, ts)
		}
	}
	slices.Sort(rounds)
	if len(rounds) < 3 {
		t.Fatalf("%d rounds in InfluxDB, want at least 3: %v", len(rounds), rows)
	}
	for i, ts := range rounds {
		if ts%step != 0 || i > 0 && ts != rounds[i-1]+step {
			t.Errorf("round times %v: want consecutive multiples of the step, %d ns", rounds, step)
			break
		}
	}
	if rounds[len(rounds)-1] != last*1e9 {
		t.Errorf("last round at %d, want last_result's time %d s in ns", rounds[len(rounds)-1], last)
	}

	want := map[int64]map[string]float64{}
	var lostAt [][]bool // per round, per ping: lost
	for _, ts := range rounds {
		row := rrdtest.FetchRow(t, rrd, ts/1e9, time.Duration(o.step)*time.Second)
		lost, pings := row[0], row[2:]
		received := slices.DeleteFunc(slices.Clone(pings), math.IsNaN)
		if len(pings) != o.pings || int(lost) != o.pings-len(received) {
			t.Fatalf("RRD row at %d: %v, want loss and median then %d pings", ts/1e9, row, o.pings)
		}
		summary := map[string]float64{"loss": 100 * lost / float64(o.pings)}
		if len(received) > 0 {
			summary["median_rtt"] = row[1]
			summary["min_rtt"] = received[0]
			summary["max_rtt"] = received[len(received)-1]
		}
		want[ts] = summary

		// Which ping of the round was lost the RRD does not say: the received RTTs must
		// be its pings, at times the pings of a round are spread over.
		var individual []float64
		var lostPings []bool
		for i := range o.pings {
			at := ts + step*int64(i)/int64(o.pings)
			rtt, ok := rows[at]["individual_rtt"]
			lostPings = append(lostPings, !ok)
			if ok {
				individual = append(individual, rtt)
				if want[at] == nil {
					want[at] = map[string]float64{}
				}
				want[at]["individual_rtt"] = rtt
			}
		}
		slices.Sort(individual)
		if !floatsEqual(individual, received) {
			t.Errorf("round %d: individual_rtt %v, want the RRD's pings %v", ts/1e9, individual, received)
		}
		lostAt = append(lostAt, lostPings)
	}
	// Nothing else in the series but the rows of these rounds, and every value as the
	// RRD has it.
	if !slices.Equal(slices.Sorted(maps.Keys(rows)), slices.Sorted(maps.Keys(want))) {
		t.Errorf("row times %v, want %v", slices.Sorted(maps.Keys(rows)), slices.Sorted(maps.Keys(want)))
	}
	for ts, fields := range want {
		for k, v := range fields {
			if g, ok := rows[ts][k]; !ok || !floatsEqual([]float64{g}, []float64{v}) {
				t.Errorf("%d: %s = %v (present %v), want %v", ts, k, g, ok, v)
			}
		}
		if len(rows[ts]) != len(fields) {
			t.Errorf("%d: fields %v, want %v", ts, rows[ts], fields)
		}
	}

	// The responder drops every other request to the half-lossy target, so the lost
	// pings of consecutive rounds alternate: each individual_rtt is at its own ping's time.
	if o.id == "lossy/half" {
		for _, parity := range []int{0, 1} {
			ok := true
			for k, lost := range lostAt {
				for i, l := range lost {
					ok = ok && l == ((parity+k*o.pings+i)%2 == 1)
				}
			}
			if ok {
				return
			}
		}
		t.Errorf("lost pings per round %v, want every other ping", lostAt)
	}
}

// floatsEqual compares RTTs to rrdtool's 11 significant digits.
func floatsEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9*math.Abs(b[i]) {
			return false
		}
	}
	return true
}

// influxColumn runs a SHOW statement and returns column col of its single series.
func influxColumn(t *testing.T, influx *influxtest.Server, q string, col int) []string {
	t.Helper()
	series, err := influx.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 {
		t.Fatalf("%s: %d series, want one: %+v", q, len(series), series)
	}
	var values []string
	for _, v := range series[0].Values {
		values = append(values, fmt.Sprint(v[col]))
	}
	return values
}

// influxRows runs q against influx, failing the test on an error.
func influxRows(t *testing.T, influx *influxtest.Server, q string) influxtest.Rows {
	t.Helper()
	rows, err := influx.Rows(q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
