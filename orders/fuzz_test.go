package orders

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzParse: whatever an order file holds, Parse returns a valid order or an *Error,
// never panics, and a valid order's values are within the limits. The seeds are in
// testdata/fuzz/FuzzParse.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 1m ./orders/
func FuzzParse(f *testing.F) {
	f.Add([]byte("user: a\nstep: 300\npings: 20\nprobe: fping\nfping: {host: 192.0.2.1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse("orders/fuzz", "fuzz", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 || !strings.HasPrefix(err.Error(), "orders/fuzz: ") {
				t.Fatalf("error %v is not an *Error naming the file", err)
			}
			return
		}
		if o.Step < time.Second || o.Step > MaxStep || o.Pings < 1 || o.Pings > MaxPings || int(o.Step/time.Second) < o.Pings {
			t.Fatalf("step %v and pings %d out of the limits", o.Step, o.Pings)
		}
		set := 0
		for _, p := range []bool{o.FPing != nil, o.HTTPing != nil, o.SCION != nil, o.DNS != nil, o.TCP != nil} {
			if p {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("probe %q with %d probe settings", o.Probe, set)
		}
		if strings.Contains(o.Target(), ": -") {
			t.Fatalf("target %q looks like an option", o.Target())
		}
		if gap, timeout := o.Timing(); gap < time.Millisecond || time.Duration(o.Pings-1)*gap+timeout > o.Step {
			t.Fatalf("infeasible round accepted: gap %v timeout %v", gap, timeout)
		}
	})
}

// TestYAMLBomb: a document whose aliases would expand to billions of nodes is read in
// no time, because aliases are never expanded.
func TestYAMLBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), ", "))
	}
	b.WriteString("user: *l11\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\ntags: *l11\n")
	start := time.Now()
	_, err := Parse("orders/bomb", "bomb", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "user: expected a text value, got a list") {
		t.Errorf("error %v, want the alias refused as a list", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("parsing took %v", took)
	}
}
