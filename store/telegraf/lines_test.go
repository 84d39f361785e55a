package telegraf

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

var t0 = time.Unix(1310116500, 0)

// line is a decoded line-protocol line.
type line struct {
	measurement string
	tags        [][2]string
	fields      map[string]float64
	time        time.Time
}

// decode parses b back with lineprotocol's own decoder, insisting that every
// field is a float.
func decode(t *testing.T, b []byte) []line {
	t.Helper()
	var lines []line
	dec := lineprotocol.NewDecoderWithBytes(b)
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil {
			t.Fatalf("measurement: %v", err)
		}
		l := line{measurement: string(m), fields: map[string]float64{}}
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatalf("tag: %v", err)
			}
			if k == nil {
				break
			}
			l.tags = append(l.tags, [2]string{string(k), string(v)})
		}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				t.Fatalf("field: %v", err)
			}
			if k == nil {
				break
			}
			if v.Kind() != lineprotocol.Float {
				t.Errorf("field %s=%v is %v, want Float", k, v, v.Kind())
			}
			l.fields[string(k)] = v.FloatV()
		}
		l.time, err = dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			t.Fatalf("time: %v", err)
		}
		lines = append(lines, l)
	}
	if err := dec.Err(); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return lines
}

func TestAppendLines(t *testing.T) {
	ms := time.Millisecond
	tunnelTags := [][2]string{{"interface", "eth2"}, {"remote_host", "5292"}}
	tests := []struct {
		name     string
		p        Point
		wantText string // exact output, when set
		want     []line
	}{
		{
			name: "all received, odd count",
			p: Point{
				Measurement: "tunnel",
				Tags:        map[string]string{"remote_host": "5292", "interface": "eth2"},
				Time:        t0,
				Step:        300 * time.Second,
				RTTs:        []time.Duration{812 * time.Microsecond, 570 * time.Microsecond, 655 * time.Microsecond},
			},
			wantText: "tunnel,interface=eth2,remote_host=5292 loss=0,max_rtt=0.000812,median_rtt=0.000655,min_rtt=0.00057 1310116500000000000\n" +
				"tunnel,interface=eth2,remote_host=5292 individual_rtt=0.000812 1310116500000000000\n" +
				"tunnel,interface=eth2,remote_host=5292 individual_rtt=0.00057 1310116600000000000\n" +
				"tunnel,interface=eth2,remote_host=5292 individual_rtt=0.000655 1310116700000000000\n",
			want: []line{
				{"tunnel", tunnelTags, map[string]float64{"loss": 0, "max_rtt": 0.000812, "median_rtt": 0.000655, "min_rtt": 0.00057}, t0},
				{"tunnel", tunnelTags, map[string]float64{"individual_rtt": 0.000812}, t0},
				{"tunnel", tunnelTags, map[string]float64{"individual_rtt": 0.00057}, t0.Add(100 * time.Second)},
				{"tunnel", tunnelTags, map[string]float64{"individual_rtt": 0.000655}, t0.Add(200 * time.Second)},
			},
		},
		{
			name: "some lost",
			p: Point{
				Measurement: "ping",
				Time:        t0,
				Step:        60 * time.Second,
				RTTs:        []time.Duration{10 * ms, -1, 30 * ms, -1, 20 * ms},
			},
			want: []line{
				{"ping", nil, map[string]float64{"loss": 40, "max_rtt": 0.03, "median_rtt": 0.02, "min_rtt": 0.01}, t0},
				{"ping", nil, map[string]float64{"individual_rtt": 0.01}, t0},
				{"ping", nil, map[string]float64{"individual_rtt": 0.03}, t0.Add(24 * time.Second)},
				{"ping", nil, map[string]float64{"individual_rtt": 0.02}, t0.Add(48 * time.Second)},
			},
		},
		{
			name: "one of three lost",
			p: Point{
				Measurement: "ping",
				Time:        t0,
				Step:        time.Second,
				RTTs:        []time.Duration{-1, 2 * ms, 1 * ms},
			},
			want: []line{
				// Upper median of two: the larger.
				{"ping", nil, map[string]float64{"loss": 100.0 / 3, "max_rtt": 0.002, "median_rtt": 0.002, "min_rtt": 0.001}, t0},
				{"ping", nil, map[string]float64{"individual_rtt": 0.002}, t0.Add(time.Second / 3)},
				{"ping", nil, map[string]float64{"individual_rtt": 0.001}, t0.Add(2 * time.Second / 3)},
			},
		},
		{
			name:     "all lost",
			p:        Point{Measurement: "ping", Time: t0, Step: time.Minute, RTTs: []time.Duration{-1, -1, -1}},
			wantText: "ping loss=100 1310116500000000000\n",
		},
		{
			name:     "no pings",
			p:        Point{Measurement: "ping", Time: t0, Step: time.Minute},
			wantText: "ping loss=100 1310116500000000000\n",
		},
		{
			name: "even count takes the upper median",
			p: Point{
				Measurement: "ping",
				Time:        t0,
				Step:        4 * time.Second,
				RTTs:        []time.Duration{4 * ms, 1 * ms, 3 * ms, 2 * ms},
			},
			want: []line{
				{"ping", nil, map[string]float64{"loss": 0, "max_rtt": 0.004, "median_rtt": 0.003, "min_rtt": 0.001}, t0},
				{"ping", nil, map[string]float64{"individual_rtt": 0.004}, t0},
				{"ping", nil, map[string]float64{"individual_rtt": 0.001}, t0.Add(time.Second)},
				{"ping", nil, map[string]float64{"individual_rtt": 0.003}, t0.Add(2 * time.Second)},
				{"ping", nil, map[string]float64{"individual_rtt": 0.002}, t0.Add(3 * time.Second)},
			},
		},
		{
			name: "tags sorted, escaped, empty ones skipped",
			p: Point{
				Measurement: "my m,x",
				Tags:        map[string]string{"z": "last", "a b": "x,y=z w", "": "no key", "empty": ""},
				Time:        t0,
				Step:        time.Minute,
				RTTs:        []time.Duration{ms},
			},
			wantText: `my\ m\,x,a\ b=x\,y\=z\ w,z=last loss=0,max_rtt=0.001,median_rtt=0.001,min_rtt=0.001 1310116500000000000` + "\n" +
				`my\ m\,x,a\ b=x\,y\=z\ w,z=last individual_rtt=0.001 1310116500000000000` + "\n",
			want: []line{
				{"my m,x", [][2]string{{"a b", "x,y=z w"}, {"z", "last"}}, map[string]float64{"loss": 0, "max_rtt": 0.001, "median_rtt": 0.001, "min_rtt": 0.001}, t0},
				{"my m,x", [][2]string{{"a b", "x,y=z w"}, {"z", "last"}}, map[string]float64{"individual_rtt": 0.001}, t0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("previous\n")
			got, err := AppendLines(bytes.Clone(prefix), tt.p)
			if err != nil {
				t.Fatalf("AppendLines: %v", err)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("AppendLines lost dst: %q", got)
			}
			got = got[len(prefix):]
			if tt.wantText != "" && string(got) != tt.wantText {
				t.Errorf("got\n%s\nwant\n%s", got, tt.wantText)
			}
			want := tt.want
			if want == nil {
				want = decode(t, []byte(tt.wantText))
			}
			compareLines(t, decode(t, got), want)
		})
	}
}

func compareLines(t *testing.T, got, want []line) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.measurement != w.measurement || !g.time.Equal(w.time) || len(g.tags) != len(w.tags) || len(g.fields) != len(w.fields) {
			t.Errorf("line %d: got %+v, want %+v", i, g, w)
			continue
		}
		for j := range g.tags {
			if g.tags[j] != w.tags[j] {
				t.Errorf("line %d tag %d: got %q, want %q", i, j, g.tags[j], w.tags[j])
			}
		}
		for k, wv := range w.fields {
			if gv, ok := g.fields[k]; !ok || gv != wv {
				t.Errorf("line %d field %s: got %v (present %v), want %v", i, k, gv, ok, wv)
			}
		}
	}
}

func TestAppendLinesErrors(t *testing.T) {
	tests := []struct {
		name    string
		p       Point
		wantErr string
	}{
		{"empty measurement", Point{Time: t0, RTTs: []time.Duration{1}}, "no measurement"},
		{"no time stamp", Point{Measurement: "m", RTTs: []time.Duration{1}}, "no time stamp"},
		{"control character in tag", Point{Measurement: "m", Tags: map[string]string{"k": "a\nb"}, Time: t0}, "invalid tag value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep\n")
			got, err := AppendLines(dst, tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("AppendLines error = %v, want one containing %q", err, tt.wantErr)
			}
			if string(got) != "keep\n" {
				t.Errorf("AppendLines changed dst to %q on error", got)
			}
		})
	}
}
