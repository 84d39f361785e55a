package telegraf

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"pingmachine/store/storetest"
	"pingmachine/store/telegraf/influxtest"
)

// TestSinkIntoInfluxDB sends points through a Sink to a real InfluxDB 1.x and reads them
// back with InfluxQL: every field of every point with the float type, every tag, however
// it had to be escaped, and the time stamps to the nanosecond.
func TestSinkIntoInfluxDB(t *testing.T) {
	influx := influxtest.Start(t, nil)
	sink, err := Dial(influx.UDP, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, sink)

	ms := time.Millisecond
	t0 := time.Unix(1764600000, 0)
	points := []Point{
		{
			Measurement: "ping",
			Tags:        map[string]string{"site": "zürich HQ", "a,b": "c=d", "k=ey": "va lue,x", "path": `C:\dir\x`, "empty": ""},
			Time:        t0, Step: 20 * time.Second,
			RTTs: []time.Duration{3 * ms, -1, 1500 * time.Microsecond, 2 * ms, -1},
		},
		{
			Measurement: "ping",
			Tags:        map[string]string{"site": "zürich HQ", "a,b": "c=d", "k=ey": "va lue,x", "path": `C:\dir\x`},
			Time:        t0.Add(20 * time.Second), Step: 20 * time.Second,
			RTTs: []time.Duration{17 * time.Microsecond, 18 * time.Microsecond, 123456789 * time.Nanosecond, 19 * time.Microsecond, 20 * time.Microsecond},
		},
		{
			Measurement: "ping",
			Tags:        map[string]string{"site": "bern"},
			Time:        t0.Add(123456789 * time.Nanosecond), Step: 3 * time.Second,
			RTTs: []time.Duration{-1, -1, -1},
		},
		{
			Measurement: "round trip, ms",
			Tags:        map[string]string{"x": "1"},
			Time:        t0, Step: 7 * time.Second,
			RTTs: []time.Duration{time.Second, 2 * time.Second, 0},
		},
	}
	for _, p := range points {
		sink.Send(p)
		// Line protocol cannot end a tag value in a backslash (it would escape the
		// separator), so the encoder refuses such a point; the others still arrive.
		sink.Send(Point{Measurement: "ping", Tags: map[string]string{"dir": `C:\`}, Time: p.Time.Add(time.Millisecond),
			Step: time.Second, RTTs: []time.Duration{ms}})
	}
	stop()
	if st := sink.Stats(); st.Points != uint64(len(points)) || st.Dropped != 0 || st.SendErrors != 0 {
		t.Errorf("sink stats %+v, want %d points queued, none dropped, no send errors", st, len(points))
	}

	want := influxtest.Rows{}
	wantRows := 0
	for _, p := range points {
		key := influxtest.SeriesKey(p.Measurement, p.Tags)
		if want[key] == nil {
			want[key] = map[int64]map[string]float64{}
		}
		wantRows -= len(want[key])
		addExpected(want[key], p)
		wantRows += len(want[key])
	}
	var got influxtest.Rows
	storetest.WaitFor(t, "every point in InfluxDB", 10*time.Second, func() bool {
		var err error
		if got, err = influx.Rows(`SELECT * FROM "ping", "round trip, ms" GROUP BY *`); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range got {
			n += len(s)
		}
		return n >= wantRows
	})
	if a, b := mustJSON(t, got), mustJSON(t, want); a != b {
		t.Errorf("InfluxDB holds\n%s\nwant\n%s", a, b)
	}

	// Every field a float, in every measurement.
	for _, name := range []string{"ping", "round trip, ms"} {
		series, err := influx.Query(fmt.Sprintf("SHOW FIELD KEYS FROM %q", name))
		if err != nil {
			t.Fatal(err)
		}
		if len(series) != 1 {
			t.Fatalf("SHOW FIELD KEYS FROM %q: %+v", name, series)
		}
		types := map[string]string{}
		for _, v := range series[0].Values {
			types[v[0].(string)] = v[1].(string)
		}
		wantTypes := map[string]string{"loss": "float", "min_rtt": "float", "median_rtt": "float", "max_rtt": "float", "individual_rtt": "float"}
		if !maps.Equal(types, wantTypes) {
			t.Errorf("%s: field types %v, want %v", name, types, wantTypes)
		}
	}
}

// addExpected adds the rows that p's lines should give: the summary at p.Time, each
// received ping at its share of the step.
func addExpected(rows map[int64]map[string]float64, p Point) {
	row := func(ts time.Time) map[string]float64 {
		if rows[ts.UnixNano()] == nil {
			rows[ts.UnixNano()] = map[string]float64{}
		}
		return rows[ts.UnixNano()]
	}
	var received []time.Duration
	for _, r := range p.RTTs {
		if r >= 0 {
			received = append(received, r)
		}
	}
	summary := row(p.Time)
	summary["loss"] = 100 * float64(len(p.RTTs)-len(received)) / float64(len(p.RTTs))
	if len(received) > 0 {
		slices.Sort(received)
		summary["min_rtt"] = received[0].Seconds()
		summary["median_rtt"] = received[len(received)/2].Seconds()
		summary["max_rtt"] = received[len(received)-1].Seconds()
	}
	for i, r := range p.RTTs {
		if r >= 0 {
			row(p.Time.Add(p.Step * time.Duration(i) / time.Duration(len(p.RTTs))))["individual_rtt"] = r.Seconds()
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
