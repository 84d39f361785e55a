// Package telegraf sends round results to telegraf as InfluxDB line protocol over UDP.
//
// The field names match those of the Perl pingmachine, so existing telegraf
// configurations and dashboards keep working.
package telegraf

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Point is one order's round as pingmachine reports it.
type Point struct {
	Measurement string
	Tags        map[string]string
	Time        time.Time       // the round's RRD time stamp
	Step        time.Duration   // the order's step
	RTTs        []time.Duration // per ping in send order; a negative value is a lost ping
}

// AppendLines appends p's lines, each ending in "\n", to dst.
//
// The first line summarises the round: the field loss (percent of lost pings)
// and, when at least one ping was received, max_rtt, median_rtt (the upper
// median) and min_rtt in seconds, stamped with p.Time. Then comes one line per
// received ping i with the field individual_rtt in seconds, stamped with
// p.Time + p.Step*i/len(p.RTTs) so that the pings of a round are spread over
// its step. Every field is a float, so a field's type never changes between
// rounds. Tags with an empty key or value are left out.
//
// On error dst is returned unchanged.
func AppendLines(dst []byte, p Point) ([]byte, error) {
	if p.Measurement == "" {
		return dst, errors.New("telegraf: point has no measurement")
	}
	// Without a time stamp telegraf would use its receive time, which is not
	// the round's RRD time.
	if p.Time.IsZero() {
		return dst, fmt.Errorf("telegraf: point %q has no time stamp", p.Measurement)
	}
	// The encoder insists on sorted tag keys.
	keys := slices.DeleteFunc(slices.Sorted(maps.Keys(p.Tags)), func(k string) bool {
		return k == "" || p.Tags[k] == ""
	})
	received := make([]time.Duration, 0, len(p.RTTs))
	for _, rtt := range p.RTTs {
		if rtt >= 0 {
			received = append(received, rtt)
		}
	}

	var e lineprotocol.Encoder
	e.SetBuffer(dst)
	e.SetPrecision(lineprotocol.Nanosecond)
	startLine := func() {
		e.StartLine(p.Measurement)
		for _, k := range keys {
			e.AddTag(k, p.Tags[k])
		}
	}

	startLine()
	loss := 100.0
	if n := len(p.RTTs); n > 0 {
		loss = 100 * float64(n-len(received)) / float64(n)
	}
	e.AddField("loss", floatValue(loss))
	if len(received) > 0 {
		slices.Sort(received)
		e.AddField("max_rtt", seconds(received[len(received)-1]))
		e.AddField("median_rtt", seconds(received[len(received)/2]))
		e.AddField("min_rtt", seconds(received[0]))
	}
	e.EndLine(p.Time)

	n := time.Duration(len(p.RTTs))
	for i, rtt := range p.RTTs {
		if rtt < 0 {
			continue
		}
		startLine()
		e.AddField("individual_rtt", seconds(rtt))
		e.EndLine(p.Time.Add(p.Step * time.Duration(i) / n))
	}

	if err := e.Err(); err != nil {
		return dst, fmt.Errorf("telegraf: encoding point %q: %w", p.Measurement, err)
	}
	return e.Bytes(), nil
}

func seconds(d time.Duration) lineprotocol.Value {
	return floatValue(d.Seconds())
}

// floatValue wraps x, which is always finite here (a percentage or a
// duration), so FloatValue's NaN/Inf check cannot fail.
func floatValue(x float64) lineprotocol.Value {
	v, _ := lineprotocol.FloatValue(x)
	return v
}
