package check

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pingmachine/orders"
	"pingmachine/store"
	"pingmachine/store/view"
	"pingmachine/store/view/viewtest"
)

var now = time.Unix(1_700_000_000, 0)

// measured is an order of 20 pings every 60 s whose last result, age old, lost loss
// pings with the given median.
func measured(id string, age time.Duration, loss int, median time.Duration) view.Order {
	return view.Order{
		ID:    id,
		Order: &orders.Order{ID: id, User: "u", Step: time.Minute, Pings: 20, Probe: "fping", FPing: &orders.FPing{Host: "192.0.2.1"}},
		Result: &store.LastResult{Time: now.Add(-2 * time.Minute), Updated: now.Add(-age), Step: time.Minute, Pings: 20,
			Loss: loss, Min: median, Median: median, Max: median},
	}
}

// perfRE is one item of performance data as the Monitoring Plugins guidelines write
// it: 'label'=value[UOM];[warn];[crit];[min];[max].
const perfRE = `('(?:[^']|'')+'|[^ '=]+)=(?:U|-?[0-9]+(?:\.[0-9]+)?(?:s|%)?)(?:;(?:-?[0-9]+(?:\.[0-9]+)?)?){0,4}`

var perfItems = regexp.MustCompile(perfRE)

// lineRE is a whole line of plugin output.
var lineRE = regexp.MustCompile(`^PINGMACHINE (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+(\|` + perfRE + `( ` + perfRE + `)*)?$`)

// TestCheckOne judges one order, every exit status, with the thresholds exactly at and
// just above their limits: a value at the limit does not alert.
func TestCheckOne(t *testing.T) {
	ms := time.Millisecond
	defaults := Defaults()
	custom := Config{Warn: Limits{Loss: 5, RTT: 20 * ms}, Crit: Limits{Loss: 100, RTT: 50 * ms}, MaxAge: 10 * time.Second}
	perf := func(loss, rtt string) string {
		return fmt.Sprintf("|loss=%s%%;10;50;0;100 rtt=%s;0.2;1;0;", loss, rtt)
	}
	tests := []struct {
		name   string
		order  view.Order
		c      Config
		status Status
		out    string
	}{
		{"fine", measured("web1", 12*time.Second, 0, 12300*time.Microsecond), defaults, OK,
			"PINGMACHINE OK - web1: 0% loss, median 12.3 ms, 12 s ago" + perf("0", "0.0123s")},
		{"loss at the warning limit", measured("web1", 12*time.Second, 2, 10*ms), defaults, OK,
			"PINGMACHINE OK - web1: 10% loss, median 10.0 ms, 12 s ago" + perf("10", "0.01s")},
		{"loss above the warning limit", measured("web1", 12*time.Second, 3, 10*ms), defaults, Warning,
			"PINGMACHINE WARNING - web1: 15% loss (more than 10%), median 10.0 ms, 12 s ago" + perf("15", "0.01s")},
		{"loss at the critical limit", measured("web1", 12*time.Second, 10, 10*ms), defaults, Warning,
			"PINGMACHINE WARNING - web1: 50% loss (more than 10%), median 10.0 ms, 12 s ago" + perf("50", "0.01s")},
		{"loss above the critical limit", measured("web1", 12*time.Second, 11, 10*ms), defaults, Critical,
			"PINGMACHINE CRITICAL - web1: 55% loss (more than 50%), median 10.0 ms, 12 s ago" + perf("55", "0.01s")},
		{"all lost", measured("web1", 12*time.Second, 20, -1), defaults, Critical,
			"PINGMACHINE CRITICAL - web1: 100% loss (more than 50%), no reply, 12 s ago" + perf("100", "U")},
		{"RTT at the warning limit", measured("web1", 12*time.Second, 0, 200*ms), defaults, OK,
			"PINGMACHINE OK - web1: 0% loss, median 200 ms, 12 s ago" + perf("0", "0.2s")},
		{"RTT above the warning limit", measured("web1", 12*time.Second, 0, 200*ms+time.Microsecond), defaults, Warning,
			"PINGMACHINE WARNING - web1: 0% loss, median 200 ms (more than 200 ms), 12 s ago" + perf("0", "0.200001s")},
		{"RTT at the critical limit", measured("web1", 12*time.Second, 0, time.Second), defaults, Warning,
			"PINGMACHINE WARNING - web1: 0% loss, median 1000 ms (more than 200 ms), 12 s ago" + perf("0", "1s")},
		{"RTT above the critical limit", measured("web1", 12*time.Second, 0, time.Second+time.Microsecond), defaults, Critical,
			"PINGMACHINE CRITICAL - web1: 0% loss, median 1000 ms (more than 1000 ms), 12 s ago" + perf("0", "1.000001s")},
		{"loss and RTT above", measured("web1", 12*time.Second, 12, 2*time.Second), defaults, Critical,
			"PINGMACHINE CRITICAL - web1: 60% loss (more than 50%), median 2000 ms (more than 1000 ms), 12 s ago" + perf("60", "2s")},
		{"age at the default limit of two steps and 30 s", measured("web1", 150*time.Second, 0, 10*ms), defaults, OK,
			"PINGMACHINE OK - web1: 0% loss, median 10.0 ms, 2 min ago" + perf("0", "0.01s")},
		{"age above the default limit", measured("web1", 151*time.Second, 0, 10*ms), defaults, Unknown,
			"PINGMACHINE UNKNOWN - web1: last result 2 min ago, more than the 150 s allowed"},
		{"age at --max-age", measured("web1", 10*time.Second, 0, 10*ms), custom, OK,
			"PINGMACHINE OK - web1: 0% loss, median 10.0 ms, 10 s ago|loss=0%;5;100;0;100 rtt=0.01s;0.02;0.05;0;"},
		{"age above --max-age", measured("web1", 11*time.Second, 0, 10*ms), custom, Unknown,
			"PINGMACHINE UNKNOWN - web1: last result 11 s ago, more than the 10 s allowed"},
		{"all lost, at a critical limit of 100%", measured("web1", 10*time.Second, 20, -1), custom, Warning,
			"PINGMACHINE WARNING - web1: 100% loss (more than 5%), no reply, 10 s ago|loss=100%;5;100;0;100 rtt=U;0.02;0.05;0;"},
		{"loss at a fractional limit", measured("web1", 10*time.Second, 1, 10*ms), Config{Warn: Limits{Loss: 5, RTT: time.Second}, Crit: Limits{Loss: 4.99, RTT: time.Second}}, Critical,
			"PINGMACHINE CRITICAL - web1: 5% loss (more than 4.99%), median 10.0 ms, 10 s ago|loss=5%;5;4.99;0;100 rtt=0.01s;1;1;0;"},
		{"no result yet", view.Order{ID: "web1", Order: measured("web1", 0, 0, 0).Order}, defaults, Unknown,
			"PINGMACHINE UNKNOWN - web1: no result yet"},
		{"unreadable result", view.Order{ID: "web1", Order: measured("web1", 0, 0, 0).Order,
			ResultErr: errors.New("/b/output/web1/last_result: line 1: time: expected a whole number, got \"soon\"")}, defaults, Unknown,
			`PINGMACHINE UNKNOWN - web1: /b/output/web1/last_result: line 1: time: expected a whole number, got "soon"`},
		{"invalid order", view.Order{ID: "web1", Err: errors.New(`orders/web1: line 3: pings: expected a whole number of pings, got "two"`)}, defaults, Unknown,
			`PINGMACHINE UNKNOWN - invalid order: orders/web1: line 3: pings: expected a whole number of pings, got "two"`},
		{"a '|' in a message", view.Order{ID: "web1", Err: errors.New("orders/web1: not valid YAML: a|b")}, defaults, Unknown,
			"PINGMACHINE UNKNOWN - invalid order: orders/web1: not valid YAML: a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &view.View{Base: "/b", Time: now, Orders: []view.Order{tt.order}}
			status, out := Check(v, "web1", tt.c)
			if status != tt.status || out != tt.out {
				t.Errorf("Check = %v\n%s\nwant %v\n%s", status, out, tt.status, tt.out)
			}
			if !lineRE.MatchString(out) {
				t.Errorf("not a plugin's line: %q", out)
			}
		})
	}
}

// TestCheckPrefix checks the orders below a directory: the worst is named, and the
// performance data are each order's figures under its name, or for more than maxNamed
// orders the worst figures and the count of each status.
func TestCheckPrefix(t *testing.T) {
	ms := time.Millisecond
	var many []view.Order
	for i := range 200 {
		many = append(many, measured(fmt.Sprintf("site/host%03d", i), 10*time.Second, i%3, time.Duration(i)*ms/10))
	}
	many = append(many, measured("sitework/x", 10*time.Second, 20, -1)) // not below site/
	worst := func(orders []view.Order, i int, o view.Order) []view.Order {
		list := append([]view.Order(nil), orders...)
		list[i] = o
		return list
	}
	tests := []struct {
		name   string
		orders []view.Order
		prefix string
		status Status
		text   string // the text before the performance data
		perf   int    // items of performance data
	}{
		{"all fine", many, "site", OK,
			"PINGMACHINE OK - site/host197: 10% loss, median 19.7 ms, 10 s ago; 200 orders below site: 200 ok", 6},
		{"one critical among many", worst(many, 150, measured("site/host150", 10*time.Second, 15, 5*ms)), "site/", Critical,
			"PINGMACHINE CRITICAL - site/host150: 75% loss (more than 50%), median 5.00 ms, 10 s ago; 200 orders below site: 1 critical, 199 ok", 6},
		{"a warning is worse than an unknown", worst(worst(many, 7, view.Order{ID: "site/host007", Order: many[7].Order}), 9, measured("site/host009", time.Second, 0, 300*ms)), "site", Warning,
			"PINGMACHINE WARNING - site/host009: 0% loss, median 300 ms (more than 200 ms), 1 s ago; 200 orders below site: 1 warning, 1 unknown, 198 ok", 6},
		{"an unknown is worse than ok", worst(many, 7, view.Order{ID: "site/host007", Order: many[7].Order}), "site", Unknown,
			"PINGMACHINE UNKNOWN - site/host007: no result yet; 200 orders below site: 1 unknown, 199 ok", 6},
		{"of two alike, the one that lost more", worst(worst(many, 3, measured("site/host003", time.Second, 3, ms)), 4, measured("site/host004", time.Second, 4, ms)), "site", Warning,
			"PINGMACHINE WARNING - site/host004: 20% loss (more than 10%), median 1.00 ms, 1 s ago; 200 orders below site: 2 warning, 198 ok", 6},
		{"one order below a directory", many, "sitework", Critical,
			"PINGMACHINE CRITICAL - sitework/x: 100% loss (more than 50%), no reply, 10 s ago; 1 order below sitework: 1 critical", 2},
		{"no such order", many, "nowhere", Unknown, "PINGMACHINE UNKNOWN - no order nowhere in /b/orders", 0},
		{"a prefix that is not a directory", many, "site/host1", Unknown, "PINGMACHINE UNKNOWN - no order site/host1 in /b/orders", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &view.View{Base: "/b", Time: now, Orders: tt.orders}
			status, out := Check(v, tt.prefix, Defaults())
			text, perf, _ := strings.Cut(out, "|")
			if status != tt.status || text != tt.text {
				t.Errorf("Check = %v\n%s\nwant %v\n%s", status, text, tt.status, tt.text)
			}
			if n := len(perfItems.FindAllString(perf, -1)); n != tt.perf {
				t.Errorf("%d items of performance data, want %d", n, tt.perf)
			}
			if !lineRE.MatchString(out) {
				t.Errorf("not a plugin's line: %q", out)
			}
		})
	}
	// Up to maxNamed orders, each order's figures under its own label.
	_, out := Check(&view.View{Base: "/b", Time: now, Orders: many[:maxNamed]}, "site", Defaults())
	for _, want := range []string{"|'site/host000 loss'=0%;10;50;0;100 'site/host000 rtt'=0s;0.2;1;0; ",
		" 'site/host019 loss'=5%;10;50;0;100 'site/host019 rtt'=0.0019s;0.2;1;0;"} {
		if !strings.Contains(out, want) {
			t.Errorf("the performance data lacks %q", want)
		}
	}
	// More: the worst figures, and how many orders have each status.
	_, out = Check(&view.View{Base: "/b", Time: now, Orders: worst(many[:maxNamed+1], 3, measured("site/host003", time.Second, 20, -1))}, "site", Defaults())
	want := "|loss=100%;10;50;0;100 rtt=0.002s;0.2;1;0; ok=20;;;0;21 warning=0;;;0;21 critical=1;;;0;21 unknown=0;;;0;21"
	if !strings.HasSuffix(out, want) {
		t.Errorf("performance data of %d orders:\n%s\nwant\n%s", maxNamed+1, out, want)
	}
}

// TestPerfLabels quotes labels as the guidelines ask: a quote doubled, '=' replaced.
func TestPerfLabels(t *testing.T) {
	v := &view.View{Base: "/b", Time: now, Orders: []view.Order{measured("d/it's a=b", time.Second, 0, time.Millisecond)}}
	_, out := Check(v, "d", Defaults())
	if want := "|'d/it''s a_b loss'=0%;10;50;0;100 'd/it''s a_b rtt'=0.001s;0.2;1;0;"; !strings.HasSuffix(out, want) {
		t.Errorf("Check = %s\nwant it to end in %s", out, want)
	}
	if !lineRE.MatchString(out) {
		t.Errorf("not a plugin's line: %q", out)
	}
}

// TestRun checks base directories on disk: results written by the store, at the limit
// after their trip through last_result, and a base directory that is missing.
func TestRun(t *testing.T) {
	tree := viewtest.New(t)
	wall := time.Now().Truncate(time.Second)
	tree.Sample(wall)
	tree.Order("limit/rtt", "user: u\nstep: 300\npings: 3\nprobe: fping\nfping:\n  host: 192.0.2.9\n")
	tree.Result("limit/rtt", 5*time.Minute, wall, 200*time.Millisecond, 200*time.Millisecond, time.Second)
	tests := []struct {
		base, prefix string
		status       Status
		text         string
	}{
		{tree.Base, "limit/rtt", OK, "PINGMACHINE OK - limit/rtt: 0% loss, median 200 ms, "},
		{tree.Base, "web1", OK, "PINGMACHINE OK - web1: 5% loss, median 12.3 ms, "},
		{tree.Base, "site", Warning, "PINGMACHINE WARNING - site/zurich/gw: 40% loss (more than 10%), median 25.0 ms, "},
		{tree.Base, "scion", Critical, "PINGMACHINE CRITICAL - scion/sping1: 100% loss (more than 50%), no reply, "},
		{tree.Base, "new", Unknown, "PINGMACHINE UNKNOWN - new: no result yet"},
		{tree.Base, "odd", Unknown, "PINGMACHINE UNKNOWN - odd: " + filepath.Join(tree.Base, "output/odd/last_result") + ": line 1: time: expected a whole number"},
		{tree.Base, "scion/pping1", Unknown, "PINGMACHINE UNKNOWN - scion/pping1: last result 10 min ago, more than the 150 s allowed"},
		{tree.Base, "bad/pings", Unknown, `PINGMACHINE UNKNOWN - invalid order: orders/bad/pings: line 3: pings: expected a whole number of pings, got "two"`},
		{tree.Base, "missing", Unknown, "PINGMACHINE UNKNOWN - no order missing in " + filepath.Join(tree.Base, "orders")},
		{tree.Base + "/nowhere", "web1", Unknown, "PINGMACHINE UNKNOWN - reading the base directory: stat " + tree.Base + "/nowhere: no such file or directory"},
	}
	for _, tt := range tests {
		status, out := Run(tt.base, tt.prefix, Defaults())
		if status != tt.status || !strings.HasPrefix(out, tt.text) {
			t.Errorf("Run(%s, %s) = %v\n%s\nwant %v\n%s...", tt.base, tt.prefix, status, out, tt.status, tt.text)
		}
		if !lineRE.MatchString(out) {
			t.Errorf("not a plugin's line: %q", out)
		}
	}
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		in   string
		want Limits
		err  string
	}{
		{"10%,200ms", Limits{10, 200 * time.Millisecond}, ""},
		{"10,0.2", Limits{10, 200 * time.Millisecond}, ""},
		{"2.5%, 1s", Limits{2.5, time.Second}, ""},
		{"0%,0", Limits{0, 0}, ""},
		{"100%,1m", Limits{100, time.Minute}, ""},
		{"10%", Limits{}, `"10%": expected LOSS%,RTT such as 10%,200ms`},
		{"101%,1s", Limits{}, `"101%,1s": expected a loss of 0 to 100%, got "101%"`},
		{"-1%,1s", Limits{}, `"-1%,1s": expected a loss of 0 to 100%, got "-1%"`},
		{"x,1s", Limits{}, `"x,1s": expected a loss of 0 to 100%, got "x"`},
		{"10%,fast", Limits{}, `"10%,fast": RTT: expected seconds (0.2) or a duration with its unit (200ms), got "fast"`},
		{"10%,-1s", Limits{}, `"10%,-1s": RTT: "-1s" is negative`},
		{"10%,NaN", Limits{}, `"10%,NaN": RTT: expected seconds (0.2) or a duration with its unit (200ms), got "NaN"`},
	}
	for _, tt := range tests {
		got, err := ParseLimits(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseLimits(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("ParseLimits(%q) = %v; want the error %s", tt.in, err, tt.err)
		}
	}
}
