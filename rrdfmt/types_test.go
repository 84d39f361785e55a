package rrdfmt

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pingmachine/rrdfmt/rrdtest"
)

// typesSpec has one data source of each type rrdfmt updates, some bounded and some not.
func typesSpec(start time.Time) Spec {
	nan := math.NaN()
	return Spec{
		Step:  10 * time.Second,
		Start: start,
		DS: []DS{
			{Name: "counter", Type: "COUNTER", Heartbeat: 25, Min: nan, Max: nan},
			{Name: "counter_max", Type: "COUNTER", Heartbeat: 25, Min: 0, Max: 1e6},
			{Name: "derive", Type: "DERIVE", Heartbeat: 25, Min: nan, Max: nan},
			{Name: "derive_min", Type: "DERIVE", Heartbeat: 25, Min: 0, Max: nan},
			{Name: "absolute", Type: "ABSOLUTE", Heartbeat: 25, Min: nan, Max: 500},
			{Name: "dcounter", Type: "DCOUNTER", Heartbeat: 25, Min: nan, Max: nan},
			{Name: "dderive", Type: "DDERIVE", Heartbeat: 25, Min: -100, Max: 100},
			{Name: "gauge", Type: "GAUGE", Heartbeat: 25, Min: nan, Max: nan},
		},
		RRA: []RRA{
			// Enough rows to keep the whole run of typeReadings.
			{CF: "AVERAGE", XFF: 0.5, PDPs: 1, Rows: 12_000},
			{CF: "MIN", XFF: 0.5, PDPs: 6, Rows: 2_000},
			{CF: "MAX", XFF: 0.5, PDPs: 6, Rows: 2_000},
			{CF: "LAST", XFF: 0.5, PDPs: 3, Rows: 4_000},
			{CF: "AVERAGE", XFF: 0.3, PDPs: 60, Rows: 200},
		},
	}
}

// typeReadings makes n readings for typesSpec's data sources with the cases each type has
// rules for: counters that grow, wrap at 32 and 64 bits and get reset, numbers of more
// digits than a double holds exactly, derives that cross zero (rrdtool gives up on
// differences between numbers of unlike sign), floating counters that turn back, and
// unknown readings and gaps beyond the heartbeat.
func typeReadings(rng *rand.Rand, start time.Time, n int) []Update {
	counter := uint64(1 << 31)
	bigCounter := "98765432109876543210"
	derive := int64(0)
	dcounter, dderive := 0.0, 0.0
	t := start.Unix()
	ups := make([]Update, n)
	for i := range ups {
		switch r := rng.IntN(100); {
		case r < 3:
			t += 30 + rng.Int64N(60) // beyond the heartbeat
		case r < 20:
			t += 1 + rng.Int64N(4)
		default:
			t += 7 + rng.Int64N(7)
		}
		switch r := rng.IntN(100); {
		case r < 3:
			counter = uint64(rng.IntN(1000)) // a reset
		case r < 6:
			counter = 1<<32 - 1 - uint64(rng.IntN(100)) // about to wrap at 32 bits
		case r < 8:
			counter = 1<<64 - 1 - uint64(rng.IntN(1<<20)) // about to wrap at 64 bits
		default:
			counter += uint64(rng.IntN(20000))
		}
		derive = derive*9/10 + rng.Int64N(4001) - 2000 // crosses zero all along
		if rng.IntN(5) == 0 {
			bigCounter = strconv.Itoa(rng.IntN(1000)) + bigCounter[len(bigCounter)-17:]
		}
		if rng.IntN(20) == 0 {
			dcounter = rng.Float64() // turns back: a reset
		} else {
			dcounter += rng.Float64() * 1e3
		}
		dderive += rng.NormFloat64() * 300
		vals := []string{
			strconv.FormatUint(counter, 10),
			strconv.FormatUint(counter%2_000_000, 10),
			strconv.FormatInt(derive, 10),
			bigCounter,
			strconv.Itoa(rng.IntN(6000)),
			strconv.FormatFloat(dcounter, 'g', -1, 64),
			strconv.FormatFloat(dderive, 'e', 6, 64),
			fmt.Sprintf("%.6e", rng.NormFloat64()),
		}
		if rng.IntN(20) == 0 {
			vals[rng.IntN(len(vals))] = "U"
		}
		ups[i] = Update{Time: time.Unix(t, 0), Values: vals}
	}
	return ups
}

// TestDumpEquivalenceTypes is TestDumpEquivalence for the data source types other than
// GAUGE: the same readings through rrdtool and through rrdfmt give identical dumps and
// fetches.
func TestDumpEquivalenceTypes(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	spec := typesSpec(start)
	theirs, ours := sameDumps(t, spec, typeReadings(rand.New(rand.NewPCG(7, 8)), start, 10_000), 89)
	// Every data source must have known values, or the comparison proves little.
	f, err := Fetch(ours, LP64, "AVERAGE", start, start.Add(10_000*10*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range f.DS {
		known := 0
		for _, row := range f.Rows {
			if !math.IsNaN(row[i]) {
				known++
			}
		}
		if known < len(f.Rows)/4 {
			t.Errorf("%s: %d of %d rows known", name, known, len(f.Rows))
		}
	}
	compareFetch(t, theirs, spec)
	compareFetch(t, ours, spec)
}

// TestIntegerDiff checks rrd_diff's arithmetic where a double cannot follow it.
func TestIntegerDiff(t *testing.T) {
	tests := []struct {
		a, b string
		want float64
	}{
		{"10", "3", 7},
		{"3", "10", -7},
		{"-10", "-3", -7},
		{"-3", "-10", 7},
		{"18446744073709551615", "18446744073709551614", 1},
		{"100000000000000000001", "100000000000000000000", 1},
		{"5", "-5", math.NaN()},
		{"", "5", math.NaN()},
		{"-", "5", math.NaN()},
		{"1234567890123456789012345678901", "1", math.NaN()},
		{"12abc", "2", 10},
	}
	for _, tt := range tests {
		got := integerDiff(tt.a, tt.b)
		if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
			t.Errorf("integerDiff(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestTypeReadingErrors checks that readings a type does not take are refused as rrdtool
// refuses them, and that the file is left as it was.
func TestTypeReadingErrors(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	spec := typesSpec(start)
	good := []string{"1", "1", "1", "1", "1", "1", "1", "1"}
	tests := []struct {
		ds    int
		value string
		want  string
	}{
		{0, "1.5", `counter: not a simple unsigned integer: "1.5"`},
		{0, "-4", `counter: not a simple unsigned integer: "-4"`},
		{2, "4-", `derive: not a simple signed integer: "4-"`},
		{2, "1e3", `derive: not a simple signed integer: "1e3"`},
		{4, "many", `absolute: "many" is not a number`},
		{5, "x", `dcounter: "x" is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			dir := t.TempDir()
			ours, theirs := filepath.Join(dir, "ours.rrd"), filepath.Join(dir, "theirs.rrd")
			if err := Create(ours, spec); err != nil {
				t.Fatal(err)
			}
			rrdtest.Run(t, createArgs(theirs, spec)...)
			first := Update{Time: start.Add(10 * time.Second), Values: good}
			if err := UpdateFile(ours, LP64, first); err != nil {
				t.Fatal(err)
			}
			rrdtoolUpdate(t, theirs, []Update{first})

			bad := Update{Time: start.Add(20 * time.Second), Values: append([]string(nil), good...)}
			bad.Values[tt.ds] = tt.value
			before, _ := os.ReadFile(ours)
			err := UpdateFile(ours, LP64, bad)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want one with %q", err, tt.want)
			}
			if after, _ := os.ReadFile(ours); !bytes.Equal(before, after) {
				t.Error("the file changed")
			}
			line := strconv.FormatInt(bad.Time.Unix(), 10) + ":" + strings.Join(bad.Values, ":")
			if out, err := exec.Command("rrdtool", "update", theirs, line).CombinedOutput(); err == nil {
				t.Errorf("rrdtool took %q, which rrdfmt refuses", line)
			} else {
				t.Logf("rrdtool: %s", bytes.TrimSpace(out))
			}
		})
	}
}

// TestUpdateRefusesUnknownFeatures checks that a file made by rrdtool with a COMPUTE data
// source and Holt-Winters archives, whose update rules rrdfmt lacks, is read but never
// updated.
func TestUpdateRefusesUnknownFeatures(t *testing.T) {
	tests := []struct {
		name, def, want string
	}{
		{"compute", "DS:double:COMPUTE:a,2,*", `data source double has type "COMPUTE"`},
		{"holt-winters", "RRA:HWPREDICT:100:0.1:0.0035:20", `consolidation function "HWPREDICT"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.rrd")
			rrdtest.Run(t, "create", path, "--start", "1700000000", "--step", "10",
				"DS:a:GAUGE:20:U:U", "RRA:AVERAGE:0.5:1:100", tt.def)
			rrdtest.Run(t, "update", path, "1700000010:5", "1700000020:6", "1700000030:7")
			before, _ := os.ReadFile(path)
			err := UpdateFile(path, LP64, Update{Time: time.Unix(1_700_000_040, 0), Values: []string{"8"}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err %v, want one naming the file and %q", err, tt.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the file changed")
			}
			f, err := Fetch(path, LP64, "AVERAGE", time.Unix(1_700_000_000, 0), time.Unix(1_700_000_030, 0), 0)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := strings.TrimSpace(rrdtest.Run(t, "fetch", path, "AVERAGE", "--start", "1700000000", "--end", "1700000030"))
			if got := formatFetch(f); got != want {
				t.Errorf("Fetch:\n%s", firstDiff(got, want))
			}
		})
	}
}
