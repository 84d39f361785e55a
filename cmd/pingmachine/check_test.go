package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pingmachine/store/view/viewtest"
)

// TestCheckCommand runs the plugin on the sample tree: every exit status, the limits
// as flags, and arguments it refuses with UNKNOWN.
func TestCheckCommand(t *testing.T) {
	tree := sampleTree(t)
	// An order exactly at the limits given below: 1 of 5 pings lost (20%), a median of
	// 50 ms, a result 10 s old (exactly at --max-age 10 only if no second passes before
	// it is checked: that is left to the tests of package check).
	tree.Order("limit", "user: u\nstep: 60\npings: 5\nprobe: fping\nfping:\n  host: 192.0.2.7\n")
	tree.Result("limit", time.Minute, time.Now().Add(-10*time.Second).Truncate(time.Second),
		-1, 40*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond, 60*time.Millisecond)
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		args []string
		exit int
		out  string // the start of the line on stdout
	}{
		{[]string{"-i", "web1"}, 0, "PINGMACHINE OK - web1: 5% loss, median 12.3 ms, "},
		{[]string{"-i", "site/zurich/gw"}, 1, "PINGMACHINE WARNING - site/zurich/gw: 40% loss (more than 10%), median 25.0 ms, "},
		{[]string{"-i", "site/zurich/gw", "-w", "40%,1s", "-c", "50%,2s"}, 0, "PINGMACHINE OK - site/zurich/gw: 40% loss, median 25.0 ms, "},
		{[]string{"-i", "scion/sping1"}, 2, "PINGMACHINE CRITICAL - scion/sping1: 100% loss (more than 50%), no reply, "},
		{[]string{"-i", "scion"}, 2, "PINGMACHINE CRITICAL - scion/sping1: 100% loss (more than 50%), no reply, 10 s ago; 2 orders below scion: 1 critical, 1 unknown|"},
		{[]string{"-i", "scion/pping1"}, 3, "PINGMACHINE UNKNOWN - scion/pping1: last result 10 min ago, more than the 150 s allowed\n"},
		{[]string{"-i", "scion/pping1", "--max-age", "11m"}, 0, "PINGMACHINE OK - scion/pping1: 0% loss, median 31.0 ms, 10 min ago|loss=0%;10;50;0;100 rtt=0.031s;0.2;1;0;\n"},
		{[]string{"-i", "new"}, 3, "PINGMACHINE UNKNOWN - new: no result yet\n"},
		{[]string{"-i", "odd"}, 3, "PINGMACHINE UNKNOWN - odd: " + filepath.Join(tree.Base, "output/odd/last_result") + ": line 1: "},
		{[]string{"-i", "bad/pings"}, 3, `PINGMACHINE UNKNOWN - invalid order: orders/bad/pings: line 3: pings: expected a whole number of pings, got "two"` + "\n"},
		{[]string{"-i", "nothing"}, 3, "PINGMACHINE UNKNOWN - no order nothing in " + filepath.Join(tree.Base, "orders") + "\n"},
		{[]string{"-i", "limit", "-w", "20%,50ms", "-c", "20%,50ms", "--max-age", "12"}, 0, "PINGMACHINE OK - limit: 20% loss, median 50.0 ms, 10 s ago|loss=20%;20;20;0;100 rtt=0.05s;0.05;0.05;0;\n"},
		{[]string{"-i", "limit", "-w", "19.9%,50ms", "-c", "20%,50ms"}, 1, "PINGMACHINE WARNING - limit: 20% loss (more than 19.9%), median 50.0 ms, 10 s ago|"},
		{[]string{"-i", "limit", "-w", "20%,49ms", "-c", "20%,50ms"}, 1, "PINGMACHINE WARNING - limit: 20% loss, median 50.0 ms (more than 49.0 ms), 10 s ago|"},
		{[]string{"-i", "limit", "-c", "20%,0.049"}, 2, "PINGMACHINE CRITICAL - limit: 20% loss, median 50.0 ms (more than 49.0 ms), 10 s ago|loss=20%;10;20;0;100 rtt=0.05s;0.2;0.049;0;\n"},
		{[]string{"-i", "limit", "--max-age", "9"}, 3, "PINGMACHINE UNKNOWN - limit: last result 10 s ago, more than the 9 s allowed\n"},
		{[]string{"-i", "web1", "-b", missing}, 3, "PINGMACHINE UNKNOWN - reading the base directory: stat " + missing + ": no such file or directory\n"},
		{[]string{}, 3, "PINGMACHINE UNKNOWN - pingmachine check: -i ID is required\n"},
		{[]string{"-i", "web1", "-w", "10%"}, 3, "PINGMACHINE UNKNOWN - pingmachine check: invalid value \"10%\" for flag -w: \"10%\": expected LOSS%,RTT such as 10%,200ms\n"},
		{[]string{"-i", "web1", "--max-age", "0"}, 3, "PINGMACHINE UNKNOWN - pingmachine check: invalid value \"0\" for flag -max-age: must be more than 0\n"},
		{[]string{"-i", "web1", "extra"}, 3, "PINGMACHINE UNKNOWN - pingmachine check: unexpected argument \"extra\"\n"},
	}
	ago := regexp.MustCompile(`\b1?[0-9] s ago`)
	line := regexp.MustCompile(`^PINGMACHINE (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+(\|\S.*)?\n$`)
	for _, tt := range tests {
		args := append([]string{"check"}, tt.args...)
		if !strings.Contains(strings.Join(tt.args, " "), "-b ") {
			args = append(args, "-b", tree.Base)
		}
		stdout, _, code := runMain(t, args...)
		// The wall clock may pass a second between writing a result and checking it.
		if got := ago.ReplaceAllString(stdout, "N s ago"); code != tt.exit || !strings.HasPrefix(got, ago.ReplaceAllString(tt.out, "N s ago")) {
			t.Errorf("%q: exit %d\n%s\nwant exit %d\n%s", tt.args, code, stdout, tt.exit, tt.out)
		}
		if !line.MatchString(stdout) {
			t.Errorf("%q: not one line of plugin output: %q", tt.args, stdout)
		}
		if want := []string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[code]; !strings.HasPrefix(stdout, fmt.Sprintf("PINGMACHINE %s - ", want)) {
			t.Errorf("%q: exit %d with %q", tt.args, code, stdout)
		}
	}
}

// TestCheckManyOrders checks a directory of 500 orders: one critical is found and
// named, and the performance data sum them up.
func TestCheckManyOrders(t *testing.T) {
	tree := viewtest.New(t)
	now := time.Now().Truncate(time.Second)
	for i := range 500 {
		id := fmt.Sprintf("branch/%03d", i)
		tree.Order(id, fmt.Sprintf("user: u\nstep: 300\npings: 4\nprobe: fping\nfping:\n  host: 10.0.%d.%d\n", i/256, i%256))
		rtts := []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond}
		if i == 321 {
			rtts[0], rtts[1], rtts[2] = -1, -1, -1
		}
		tree.Result(id, 5*time.Minute, now, rtts...)
	}
	stdout, _, code := runMain(t, "check", "-b", tree.Base, "-i", "branch")
	want, counts := "PINGMACHINE CRITICAL - branch/321: 75% loss (more than 50%), median 4.00 ms, ", " s ago; 500 orders below branch: 1 critical, 499 ok|"
	if code != 2 || !strings.HasPrefix(stdout, want) || !strings.Contains(stdout, counts) {
		t.Errorf("exit %d\n%.300s\nwant exit 2\n%s...%s", code, stdout, want, counts)
	}
	// The worst figures and the counts, not a pair per order: Nagios keeps 8 KiB.
	if perf := "|loss=75%;10;50;0;100 rtt=0.004s;0.2;1;0; ok=499;;;0;500 warning=0;;;0;500 critical=1;;;0;500 unknown=0;;;0;500\n"; !strings.HasSuffix(stdout, perf) {
		t.Errorf("performance data:\n%.300s\nwant\n%s", stdout[strings.Index(stdout, "|"):], perf)
	}
	if len(stdout) > 8192 {
		t.Errorf("%d bytes of output, more than the 8 KiB Nagios keeps", len(stdout))
	}
}
