// Package rrdtest runs the real rrdtool and rrdcached for tests: what pingmachine writes is
// checked with the tools its users read it with. The tests of rrdfmt, rrdfmt/rrdcached,
// store, cmd/pingmachine and bench start both tools from here, so every test fails alike
// when a tool is missing and reads rrdtool's output the same way.
//
// The package imports nothing of pingmachine, so that rrdfmt's own tests can use it.
package rrdtest

import (
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Run runs rrdtool with args and returns what it printed. The test fails if rrdtool is
// not installed or exits with an error.
func Run(tb testing.TB, args ...string) string {
	tb.Helper()
	if _, err := exec.LookPath("rrdtool"); err != nil {
		tb.Fatal("rrdtool is not installed: the tests need it as the yardstick (make test installs it)")
	}
	out, err := exec.Command("rrdtool", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("rrdtool %s: %v\n%s", shortArgs(args), err, out)
	}
	return string(out)
}

// shortArgs is args for an error message: an update can carry thousands of readings.
func shortArgs(args []string) string {
	const most = 4
	if len(args) <= most {
		return strings.Join(args, " ")
	}
	return fmt.Sprintf("%s ... (%d more arguments)", strings.Join(args[:most], " "), len(args)-most)
}

// Info is rrdtool info of path, its "key = value" lines as a map. The test fails if
// rrdtool cannot read the file.
func Info(tb testing.TB, path string) map[string]string {
	tb.Helper()
	info := map[string]string{}
	for l := range strings.SplitSeq(Run(tb, "info", path), "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok {
			info[k] = v
		}
	}
	if len(info) == 0 {
		tb.Fatalf("rrdtool info %s printed nothing", path)
	}
	return info
}

// Fetch is rrdtool fetch path AVERAGE from start to end: the rows by time, with NaN for
// unknown values, and the names of the data sources.
func Fetch(tb testing.TB, path string, start, end int64) (rows map[int64][]float64, names []string) {
	tb.Helper()
	return fetch(tb, path, "-s", strconv.FormatInt(start, 10), "-e", strconv.FormatInt(end, 10))
}

// FetchRow is the AVERAGE row at time ts of the archive of path whose resolution is step,
// as rrdtool fetch prints it, with NaN for unknown values. The test fails if there is no
// such row.
func FetchRow(tb testing.TB, path string, ts int64, step time.Duration) []float64 {
	tb.Helper()
	s := int64(step / time.Second)
	rows, _ := fetch(tb, path, "-r", strconv.FormatInt(s, 10),
		"-s", strconv.FormatInt(ts-s, 10), "-e", strconv.FormatInt(ts, 10))
	row, ok := rows[ts]
	if !ok {
		tb.Fatalf("rrdtool fetch %s: no row at %d: %v", path, ts, rows)
	}
	return row
}

func fetch(tb testing.TB, path string, args ...string) (map[int64][]float64, []string) {
	tb.Helper()
	out := Run(tb, append([]string{"fetch", path, "AVERAGE"}, args...)...)
	rows := map[int64][]float64{}
	var names []string
	for i, l := range strings.Split(out, "\n") {
		if i == 0 {
			names = strings.Fields(l)
			continue
		}
		ts, vals, ok := strings.Cut(l, ":")
		sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		if !ok || err != nil {
			continue // the blank line after the names
		}
		var row []float64
		for _, f := range strings.Fields(vals) {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				v = math.NaN() // rrdtool prints "-nan" on some systems
			}
			row = append(row, v)
		}
		rows[sec] = row
	}
	return rows, names
}
