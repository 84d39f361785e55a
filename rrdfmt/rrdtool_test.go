package rrdfmt

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pingmachine/rrdfmt/rrdtest"
)

// pingmachineSpec is main.rrd as the Perl pingmachine creates it for step and pings
// (its three RRA sets: step below 300, 300, and Smokeping's defaults above).
func pingmachineSpec(step time.Duration, pings int, start time.Time) Spec {
	s := uint64(step / time.Second)
	hb := 2 * s
	spec := Spec{Step: step, Start: start}
	spec.DS = append(spec.DS, DS{Name: "loss", Type: "GAUGE", Heartbeat: hb, Min: 0, Max: float64(pings)},
		DS{Name: "median", Type: "GAUGE", Heartbeat: hb, Min: 0, Max: 180})
	for i := 1; i <= pings; i++ {
		spec.DS = append(spec.DS, DS{Name: fmt.Sprintf("ping%d", i), Type: "GAUGE", Heartbeat: hb, Min: 0, Max: 180})
	}
	add := func(cfs string, pdps, rows uint64) {
		for _, cf := range strings.Split(cfs, ",") {
			spec.RRA = append(spec.RRA, RRA{CF: cf, XFF: 0.5, PDPs: pdps, Rows: rows})
		}
	}
	switch {
	case s < 300:
		add("AVERAGE", 1, 900)
		add("AVERAGE,MIN,MAX", 300/s, 864)
		add("AVERAGE,MIN,MAX", 1800/s, 480)
		add("AVERAGE,MIN,MAX", 3600/s, 960)
		add("AVERAGE,MAX,MIN", 43200/s, 800)
		add("AVERAGE,MAX,MIN", 604800/s, 520)
	case s == 300:
		add("AVERAGE", 1, 864)
		add("AVERAGE,MIN,MAX", 6, 480)
		add("AVERAGE,MIN,MAX", 12, 960)
		add("AVERAGE,MAX,MIN", 144, 800)
		add("AVERAGE,MAX,MIN", 2016, 520)
	default:
		add("AVERAGE", 1, 1008)
		add("AVERAGE,MIN,MAX", 12, 4320)
		add("AVERAGE,MAX,MIN", 144, 720)
	}
	return spec
}

// createArgs is the rrdtool create command line for spec.
func createArgs(path string, spec Spec) []string {
	args := []string{"create", path, "--start", strconv.FormatInt(spec.Start.Unix(), 10),
		"--step", strconv.Itoa(int(spec.Step / time.Second))}
	bound := func(v float64) string {
		if math.IsNaN(v) {
			return "U"
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, d := range spec.DS {
		args = append(args, fmt.Sprintf("DS:%s:%s:%d:%s:%s", d.Name, d.Type, d.Heartbeat, bound(d.Min), bound(d.Max)))
	}
	for _, r := range spec.RRA {
		args = append(args, fmt.Sprintf("RRA:%s:%g:%d:%d", r.CF, r.XFF, r.PDPs, r.Rows))
	}
	return args
}

// randomUpdates makes n readings in the shape pingmachine writes, with the awkward cases
// mixed in: gaps beyond the heartbeat, several updates within one step, unaligned times,
// unknown and out-of-range values.
func randomUpdates(rng *rand.Rand, spec Spec, n int) []Update {
	step := int64(spec.Step / time.Second)
	pings := len(spec.DS) - 2
	t := spec.Start.Unix()
	ups := make([]Update, n)
	for i := range ups {
		switch r := rng.IntN(100); {
		case r < 5:
			t += step * int64(3+rng.IntN(40)) // a gap: the heartbeat is 2 steps
		case r < 20:
			t += 1 + rng.Int64N(max(step/3, 1)) // within the step
		default:
			t += step - step/10 + rng.Int64N(step/5+1) // about one step, unaligned
		}
		vals := make([]string, 0, pings+2)
		loss := rng.IntN(pings + 1)
		switch rng.IntN(50) {
		case 0:
			vals = append(vals, "U")
		case 1:
			vals = append(vals, strconv.Itoa(pings+3)) // above max: unknown
		default:
			vals = append(vals, strconv.Itoa(loss))
		}
		rtts := make([]string, 0, pings)
		for range pings - loss {
			rtts = append(rtts, fmt.Sprintf("%.6e", rng.Float64()*0.2))
		}
		if len(rtts) > 0 {
			vals = append(vals, rtts[len(rtts)/2])
		} else {
			vals = append(vals, "U")
		}
		for range loss / 2 {
			vals = append(vals, "U")
		}
		vals = append(vals, rtts...)
		for range loss - loss/2 {
			vals = append(vals, "U")
		}
		if rng.IntN(100) == 0 {
			vals[2] = "-1" // below min
		}
		ups[i] = Update{Time: time.Unix(t, 0), Values: vals}
	}
	return ups
}

// rrdtoolUpdate applies updates with the real rrdtool, many per call.
func rrdtoolUpdate(t *testing.T, path string, ups []Update) {
	t.Helper()
	for len(ups) > 0 {
		n := min(len(ups), 1000)
		args := []string{"update", path, "--"}
		for _, u := range ups[:n] {
			args = append(args, strconv.FormatInt(u.Time.Unix(), 10)+":"+strings.Join(u.Values, ":"))
		}
		rrdtest.Run(t, args...)
		ups = ups[n:]
	}
}

// TestDumpEquivalence creates a file with rrdtool and one with rrdfmt, applies the same
// long randomized update sequence to both (rrdtool's own update for the first), and
// requires rrdtool dump of the two to be identical: every PDP and CDP state, every row of
// every RRA, for each of pingmachine's RRA sets.
func TestDumpEquivalence(t *testing.T) {
	tests := []struct {
		step    time.Duration
		pings   int
		updates int
	}{
		{60 * time.Second, 5, 10_000},
		{300 * time.Second, 3, 10_000},
		{600 * time.Second, 2, 10_000},
		{20 * time.Second, 1, 3_000},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("step=%v/pings=%d", tt.step, tt.pings), func(t *testing.T) {
			start := time.Unix(1_700_000_000-1_700_000_000%int64(tt.step/time.Second), 0)
			spec := pingmachineSpec(tt.step, tt.pings, start)
			ups := randomUpdates(rand.New(rand.NewPCG(uint64(tt.step), 1)), spec, tt.updates)
			theirs, _ := sameDumps(t, spec, ups, 97)
			compareFetch(t, theirs, spec)
		})
	}
}

// sameDumps creates spec with rrdtool and with rrdfmt, applies ups to both (rrdtool's own
// update for the first; ours in batches of varying size below batch, as the daemon and a
// restart would), and fails unless rrdtool dump of the two is identical after create and
// after the updates. It returns the two files.
func sameDumps(t *testing.T, spec Spec, ups []Update, batch int) (theirs, ours string) {
	t.Helper()
	dir := t.TempDir()
	theirs, ours = filepath.Join(dir, "rrdtool.rrd"), filepath.Join(dir, "rrdfmt.rrd")
	rrdtest.Run(t, createArgs(theirs, spec)...)
	if err := Create(ours, spec); err != nil {
		t.Fatal(err)
	}
	if got, want := rrdtest.Run(t, "dump", ours), rrdtest.Run(t, "dump", theirs); got != want {
		t.Fatalf("dumps differ right after create:\n%s", firstDiff(got, want))
	}
	rrdtoolUpdate(t, theirs, ups)
	for rest := ups; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%batch)
		if err := UpdateFile(ours, LP64, rest[:n]...); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if got, want := rrdtest.Run(t, "dump", ours), rrdtest.Run(t, "dump", theirs); got != want {
		t.Fatalf("dumps differ after %d updates:\n%s", len(ups), firstDiff(got, want))
	}
	return theirs, ours
}

// compareFetch checks that Fetch of a file returns what rrdtool fetch prints, for each
// CF and for windows inside, across and beyond the archives, at several resolutions.
func compareFetch(t *testing.T, path string, spec Spec) {
	t.Helper()
	last := lastUpdate(t, path, LP64)
	step := int64(spec.Step / time.Second)
	windows := []struct{ start, end, res int64 }{
		{last - 3600, last, 0},
		{last - 86400, last - 3600, 0},
		{last - 7*86400, last, 3600},
		{last - 400*86400, last + 86400, 86400},
		{last - 50*step - 7, last - 3*step + 11, step},
		{last + 10*step, last + 20*step, 0},
	}
	for _, cf := range []string{"AVERAGE", "MIN", "MAX"} {
		for _, w := range windows {
			args := []string{"fetch", path, cf, "--start", strconv.FormatInt(w.start, 10), "--end", strconv.FormatInt(w.end, 10)}
			if w.res > 0 {
				args = append(args, "--resolution", strconv.FormatInt(w.res, 10))
			}
			want := strings.TrimSpace(rrdtest.Run(t, args...))
			got, err := Fetch(path, LP64, cf, time.Unix(w.start, 0), time.Unix(w.end, 0), time.Duration(w.res)*time.Second)
			if err != nil {
				t.Fatalf("Fetch %v: %v", args, err)
			}
			if g := formatFetch(got); g != want {
				t.Fatalf("%v:\n%s", args, firstDiff(g, want))
			}
		}
	}
}

// formatFetch prints a Fetched the way rrdtool fetch does.
func formatFetch(f *Fetched) string {
	var b strings.Builder
	for _, name := range f.DS {
		fmt.Fprintf(&b, "%20s", name)
	}
	b.WriteString("\n\n")
	step := int64(f.Step / time.Second)
	for i, row := range f.Rows {
		ts := f.Start.Unix() + int64(i+1)*step
		if ts > f.End.Unix() {
			break
		}
		fmt.Fprintf(&b, "%10d:", ts)
		for _, v := range row {
			if math.IsNaN(v) {
				// printf shows the sign of the NaN, which differs between CPUs.
				if math.Signbit(v) {
					b.WriteString(" -nan")
				} else {
					b.WriteString(" nan")
				}
				continue
			}
			fmt.Fprintf(&b, " %0.10e", v)
		}
		b.WriteString("\n")
	}
	return strings.TrimSpace(b.String())
}

// firstDiff shows the first differing line of two dumps with some context.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			lo := max(i-3, 0)
			return fmt.Sprintf("line %d\nrrdfmt:  %s\nrrdtool: %s\ncontext:\n%s", i+1, g[i], w[i], strings.Join(w[lo:i+1], "\n"))
		}
	}
	return fmt.Sprintf("lengths differ: %d vs %d lines", len(g), len(w))
}

// TestCreateMode: rrdfmt's files get the mode rrdtool gives its own, 0644 whatever the
// umask, so that tools running as another user can read them.
func TestCreateMode(t *testing.T) {
	for _, umask := range []int{0o022, 0o027, 0o002} {
		t.Run(fmt.Sprintf("umask=%03o", umask), func(t *testing.T) {
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			dir := t.TempDir()
			spec := pingmachineSpec(60*time.Second, 2, time.Unix(1_700_000_000, 0))
			theirs, ours := filepath.Join(dir, "rrdtool.rrd"), filepath.Join(dir, "rrdfmt.rrd")
			rrdtest.Run(t, createArgs(theirs, spec)...)
			if err := Create(ours, spec); err != nil {
				t.Fatal(err)
			}
			const want fs.FileMode = 0o644
			for _, path := range []string{theirs, ours} {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), want)
				}
			}
			if tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmps) != 0 {
				t.Errorf("temporary files left: %v", tmps)
			}
		})
	}
}
