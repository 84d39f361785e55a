package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pingmachine/rrdfmt"
	"pingmachine/rrdfmt/rrdtest"
)

// perlDefs are the definitions the Perl pingmachine passes to rrdtool create
// (Order.pm:228-249, Config.pm:45-108), written out from the reference, not from
// rrdSpec. Step counts that the step does not divide are truncated, as rrdtool's %lu
// reading of Perl's fraction did.
func perlDefs(step, pings int, template string) []string {
	hb := 2 * step
	defs := []string{
		fmt.Sprintf("DS:loss:GAUGE:%d:0:%d", hb, pings),
		fmt.Sprintf("DS:median:GAUGE:%d:0:180", hb),
	}
	for i := 1; i <= pings; i++ {
		defs = append(defs, fmt.Sprintf("DS:ping%d:GAUGE:%d:0:180", i, hb))
	}
	rra := func(cfs string, steps, rows int) {
		for cf := range strings.SplitSeq(cfs, ",") {
			defs = append(defs, fmt.Sprintf("RRA:%s:0.5:%d:%d", cf, steps, rows))
		}
	}
	switch {
	case template == "smokeping" && step < 300:
		rra("AVERAGE", 1, 900)
		rra("AVERAGE,MIN,MAX", 300/step, 864)
		rra("AVERAGE,MIN,MAX", 1800/step, 480)
		rra("AVERAGE,MIN,MAX", 3600/step, 960)
		rra("AVERAGE,MAX,MIN", 43200/step, 800)
		rra("AVERAGE,MAX,MIN", 604800/step, 520)
	case template == "smokeping" && step == 300:
		rra("AVERAGE", 1, 864)
		rra("AVERAGE,MIN,MAX", 6, 480)
		rra("AVERAGE,MIN,MAX", 12, 960)
		rra("AVERAGE,MAX,MIN", 144, 800)
		rra("AVERAGE,MAX,MIN", 2016, 520)
	default:
		rra("AVERAGE", 1, 1008)
		rra("AVERAGE,MIN,MAX", 12, 4320)
		rra("AVERAGE,MAX,MIN", 144, 720)
	}
	return defs
}

var specCases = []struct {
	step, pings int
	template    string
	rras        int
	steps       []string // pdp_per_row of every RRA, in order, to pin the arithmetic
}{
	{60, 20, "smokeping", 16, []string{"1", "5", "5", "5", "30", "30", "30", "60", "60", "60", "720", "720", "720", "10080", "10080", "10080"}},
	{300, 20, "smokeping", 13, []string{"1", "6", "6", "6", "12", "12", "12", "144", "144", "144", "2016", "2016", "2016"}},
	{600, 5, "smokeping", 7, []string{"1", "12", "12", "12", "144", "144", "144"}},
	{7, 3, "smokeping", 16, []string{"1", "42", "42", "42", "257", "257", "257", "514", "514", "514", "6171", "6171", "6171", "86400", "86400", "86400"}},
	{20, 10, "smokeping", 16, []string{"1", "15", "15", "15", "90", "90", "90", "180", "180", "180", "2160", "2160", "2160", "30240", "30240", "30240"}},
	// Any other template: Smokeping's defaults, whatever the step.
	{60, 20, "cacti", 7, []string{"1", "12", "12", "12", "144", "144", "144"}},
	{300, 3, "", 7, []string{"1", "12", "12", "12", "144", "144", "144"}},
}

// definitionKeys are the keys of rrdtool info that define a file, as opposed to its state.
func definitionKeys(info map[string]string) []string {
	var keys []string
	for k := range info {
		switch {
		case k == "step", k == "rrd_version", k == "header_size":
		case strings.HasPrefix(k, "ds[") && !strings.HasSuffix(k, ".last_ds") && !strings.HasSuffix(k, ".value") && !strings.HasSuffix(k, ".unknown_sec"):
		case strings.HasPrefix(k, "rra[") && !strings.Contains(k, ".cdp_prep[") && !strings.HasSuffix(k, ".cur_row"):
		default:
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func compareInfo(t *testing.T, got, want map[string]string, keys []string) {
	t.Helper()
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("rrdtool info %s = %q, rrdtool create gives %q", k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("rrdtool info has %s = %q, which rrdtool create does not make", k, got[k])
		}
	}
}

// TestRRDSpecMatchesRRDTool creates the Perl version's file with the real rrdtool and
// ours with rrdSpec, at the same start, and compares rrdtool info of both: every line
// but the file name and the random current rows, the state at creation included.
func TestRRDSpecMatchesRRDTool(t *testing.T) {
	for _, tc := range specCases {
		t.Run(fmt.Sprintf("%s/step%d/pings%d", tc.template, tc.step, tc.pings), func(t *testing.T) {
			dir := t.TempDir()
			start := int64(now0 - now0%tc.step - 2*tc.step)
			perl := filepath.Join(dir, "perl.rrd")
			args := append([]string{"create", perl, "--start", strconv.FormatInt(start, 10), "--step", strconv.Itoa(tc.step)},
				perlDefs(tc.step, tc.pings, tc.template)...)
			rrdtest.Run(t, args...)

			spec := rrdSpec(time.Duration(tc.step)*time.Second, tc.pings, tc.template)
			if spec.Layout != rrdfmt.NativeLayout() {
				t.Errorf("spec layout %v, want the native %v", spec.Layout, rrdfmt.NativeLayout())
			}
			spec.Start = time.Unix(start, 0)
			ours := filepath.Join(dir, "ours.rrd")
			if err := rrdfmt.Create(ours, spec); err != nil {
				t.Fatal(err)
			}
			want, got := rrdtest.Info(t, perl), rrdtest.Info(t, ours)
			var keys []string
			for k := range want {
				if k != "filename" && !strings.HasSuffix(k, ".cur_row") {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			compareInfo(t, got, want, keys)

			if n := len(spec.DS); n != tc.pings+2 {
				t.Errorf("%d data sources, want %d", n, tc.pings+2)
			}
			if len(spec.RRA) != tc.rras {
				t.Errorf("%d RRAs, want %d", len(spec.RRA), tc.rras)
			}
			for i, s := range tc.steps {
				if got := got[fmt.Sprintf("rra[%d].pdp_per_row", i)]; got != s {
					t.Errorf("rra[%d].pdp_per_row = %s, want %s", i, got, s)
				}
			}
		})
	}
}

// TestPrepareCreatesPerlRRD checks the main.rrd that Prepare makes, through the store's
// own clock, against rrdtool create of the Perl definitions: the same definitions, and
// a start two steps back, so that the first round (stamped one step back) is later.
func TestPrepareCreatesPerlRRD(t *testing.T) {
	for _, tc := range specCases {
		t.Run(fmt.Sprintf("%s/step%d/pings%d", tc.template, tc.step, tc.pings), func(t *testing.T) {
			ts := newStore(t, Options{})
			se := Series{ID: "x", Step: time.Duration(tc.step) * time.Second, Pings: tc.pings, RRDTemplate: tc.template}
			ts.mustPrepare(t, se)
			perl := filepath.Join(t.TempDir(), "perl.rrd")
			rrdtest.Run(t, append([]string{"create", perl, "--step", strconv.Itoa(tc.step)}, perlDefs(tc.step, tc.pings, tc.template)...)...)
			want, got := rrdtest.Info(t, perl), rrdtest.Info(t, ts.out("x", "main.rrd"))
			compareInfo(t, got, want, definitionKeys(want))
			wantStart := int64(now0 - now0%tc.step - 2*tc.step)
			if got["last_update"] != strconv.FormatInt(wantStart, 10) {
				t.Errorf("last_update = %s, want %d", got["last_update"], wantStart)
			}
			if s := Stamp(ts.clock.Now(), se.Step).Unix(); s <= wantStart {
				t.Errorf("the first round's stamp %d is not after the start %d", s, wantStart)
			}
			if tc.template != "smokeping" && !strings.Contains(ts.log.String(), "unknown rrd_template") {
				t.Errorf("no warning for template %q", tc.template)
			}
		})
	}
}
