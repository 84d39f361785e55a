package store

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pingmachine/rrdfmt"
	"pingmachine/rrdfmt/rrdtest"
	"pingmachine/store/storetest"
	"pingmachine/store/telegraf"
)

// wantLastResult is last_result for a round, built here from the Perl format: eight
// lines, %.6e seconds or ~ when nothing was received.
func wantLastResult(stamp, updated int64, se Series, r []time.Duration) string {
	var ok []time.Duration
	for _, d := range r {
		if d >= 0 {
			ok = append(ok, d)
		}
	}
	slices.Sort(ok)
	min, median, max := "~", "~", "~"
	if n := len(ok); n > 0 {
		min = fmt.Sprintf("%.6e", ok[0].Seconds())
		median = fmt.Sprintf("%.6e", ok[n/2].Seconds())
		max = fmt.Sprintf("%.6e", ok[n-1].Seconds())
	}
	return fmt.Sprintf("time: %d\nupdated: %d\nstep: %d\npings: %d\nloss: %d\nmin: %s\nmedian: %s\nmax: %s\n",
		stamp, updated, int64(se.Step/time.Second), se.Pings, len(r)-len(ok), min, median, max)
}

// lastResultValue parses a value of last_result: ~ is unknown.
func lastResultValue(t *testing.T, content, key string) float64 {
	t.Helper()
	for _, l := range strings.Split(content, "\n") {
		if v, ok := strings.CutPrefix(l, key+": "); ok {
			if v == "~" {
				return math.NaN()
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("last_result %s: %q: %v", key, v, err)
			}
			return f
		}
	}
	t.Fatalf("last_result has no %s:\n%s", key, content)
	return 0
}

// TestWriteFileBackend goes through rounds end to end: last_result line by line, and the
// row that the real rrdtool fetches from main.rrd.
func TestWriteFileBackend(t *testing.T) {
	twenty := rtts(0.9, 0.57, 1.2, 0.61, 0.8, 0.75, 0.66, 0.7, 0.59, 0.6, 3.1, 0.58, 0.62, 0.64, 0.63, 0.65, 0.67, 0.68, 0.69, 0.71)
	lossy := slices.Clone(twenty)
	for _, i := range []int{0, 4, 7, 15, 19} {
		lossy[i] = -1
	}
	for _, tc := range []struct {
		name   string
		se     Series
		rounds [][]time.Duration
	}{
		{"step60 pings20", Series{ID: "host1", Step: time.Minute, Pings: 20, RRDTemplate: "smokeping"},
			[][]time.Duration{twenty, lossy, rtts(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1), twenty}},
		{"step300 pings5 nested id", Series{ID: "site/a/host", Step: 5 * time.Minute, Pings: 5, RRDTemplate: "smokeping"},
			[][]time.Duration{rtts(10, 20, 30, 40, 50), rtts(-1, 12, -1, 11, -1), rtts(1, 2, -1, 3, 4)}},
		{"step7 pings3", Series{ID: "seven", Step: 7 * time.Second, Pings: 3, RRDTemplate: "smokeping"},
			[][]time.Duration{rtts(3, 1, 2), rtts(-1, 5, -1), rtts(0, 179999, 1)}},
		{"step600 default template", Series{ID: "slow", Step: 10 * time.Minute, Pings: 4, RRDTemplate: "smokeping"},
			[][]time.Duration{rtts(4, 3, 2, 1), rtts(-1, -1, -1, 8)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newStore(t, Options{})
			ts.mustPrepare(t, tc.se)
			step := int64(tc.se.Step / time.Second)
			rrd := ts.out(tc.se.ID, "main.rrd")
			var stamps []int64
			for i, r := range tc.rounds {
				// Collected a few seconds into the next step, as the scheduler does.
				now := int64(now0) + int64(i)*step
				ts.clock.Set(now)
				res := ts.round(t, tc.se, r)
				stamp := res.Time.Unix()
				stamps = append(stamps, stamp)
				if want := now - now%step - step; stamp != want {
					t.Fatalf("round %d stamped %d, want %d", i, stamp, want)
				}

				got := string(readFile(t, ts.out(tc.se.ID, "last_result")))
				if want := wantLastResult(stamp, now, tc.se, r); got != want {
					t.Errorf("round %d: last_result =\n%s\nwant\n%s", i, got, want)
				}
				if lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n"); len(lines) != 8 {
					t.Errorf("last_result has %d lines, want 8", len(lines))
				}
				// The spare is there from the second result on.
				want := []string{".last_result.spare", "last_result", "main.rrd"}
				if i == 0 {
					want = want[1:]
				}
				if names := storetest.Tree(t, ts.out(tc.se.ID)); !slices.Equal(names, want) {
					t.Errorf("output holds %v, want %v", names, want)
				}

				row := rrdtest.FetchRow(t, rrd, stamp, tc.se.Step)
				checkRow(t, fmt.Sprintf("round %d: rrdtool fetch at %d", i, stamp), row, wantRow(r))
				if len(row) == 2+tc.se.Pings {
					if loss := lastResultValue(t, got, "loss"); row[0] != loss {
						t.Errorf("round %d: rrd loss %v, last_result %v", i, row[0], loss)
					}
					if med := lastResultValue(t, got, "median"); !sameValue(row[1], med) {
						t.Errorf("round %d: rrd median %v, last_result %v", i, row[1], med)
					}
				}
			}
			// Every round is still there, each in its own row.
			rows, names := rrdtest.Fetch(t, rrd, stamps[0]-step, stamps[len(stamps)-1])
			if names[0] != "loss" || names[1] != "median" || names[2] != "ping1" || len(names) != 2+tc.se.Pings {
				t.Errorf("data sources %v", names)
			}
			for i, s := range stamps {
				checkRow(t, fmt.Sprintf("round %d in the whole range", i), rows[s], wantRow(tc.rounds[i]))
			}
			if info, err := rrdfmt.ReadInfo(rrd, rrdfmt.NativeLayout()); err != nil || info.LastUpdate.Unix() != stamps[len(stamps)-1] {
				t.Errorf("last update %v, %v; want %d", info, err, stamps[len(stamps)-1])
			}
		})
	}
}

// TestLastResultReplacedAtomically: a reader never finds last_result missing or partial;
// an open last_result keeps its content through the next result (it trades places with
// the spare, which is written instead); and no inode is made or freed per result.
func TestLastResultReplacedAtomically(t *testing.T) {
	ts := newStore(t, Options{})
	se := Series{ID: "atomic", Step: time.Minute, Pings: 3, RRDTemplate: "norrd"}
	ts.mustPrepare(t, se)
	ts.round(t, se, rtts(1, 2, 3))
	path := ts.out("atomic", "last_result")
	inodes := map[uint64]bool{inode(t, path): true}

	stop := make(chan struct{})
	var reads int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("reader: %v", err)
				return
			}
			if n := bytes.Count(b, []byte("\n")); n != 8 || !bytes.HasPrefix(b, []byte("time: ")) || !bytes.HasSuffix(b, []byte("\n")) {
				t.Errorf("reader found a partial last_result:\n%s", b)
				return
			}
			reads++
		}
	})
	for i := range 300 {
		ts.clock.Set(now0 + int64(i)*60)
		old, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		before := readFile(t, path)
		ts.round(t, se, rtts(float64(i), 2, -1))
		inodes[inode(t, path)] = true
		// The file a reader opened is not written by the next result: it becomes the
		// spare, written by the result after.
		b := make([]byte, 1024)
		n, _ := old.ReadAt(b, 0)
		old.Close()
		if !bytes.Equal(b[:n], before) {
			t.Fatalf("round %d: the open last_result changed: it was rewritten in place\n%s", i, b[:n])
		}
	}
	close(stop)
	wg.Wait()
	if reads == 0 {
		t.Error("the reader never ran")
	}
	// Two files trade places: no inode is made or freed per result.
	if len(inodes) != 2 {
		t.Errorf("last_result had %d inodes over 300 results, want 2", len(inodes))
	}
}

func TestNoRRD(t *testing.T) {
	ts := newStore(t, Options{})
	se := Series{ID: "n/orrd", Step: time.Minute, Pings: 4, RRDTemplate: "norrd"}
	ts.mustPrepare(t, se)
	if names := storetest.Tree(t, ts.out(se.ID)); len(names) != 0 {
		t.Errorf("Prepare of a norrd order made %v", names)
	}
	r := ts.round(t, se, rtts(4, -1, 2, 3))
	if got, want := string(readFile(t, ts.out(se.ID, "last_result"))), wantLastResult(r.Time.Unix(), now0, se, r.RTTs); got != want {
		t.Errorf("last_result =\n%s\nwant\n%s", got, want)
	}
	if names := storetest.Tree(t, ts.out(se.ID)); !slices.Equal(names, []string{"last_result"}) {
		t.Errorf("output holds %v, want last_result only", names)
	}
}

// sender records the points it is given.
type sender struct {
	mu     sync.Mutex
	points []telegraf.Point
}

func (s *sender) Send(p telegraf.Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.points = append(s.points, p)
}

func (s *sender) got() []telegraf.Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.points)
}

func TestTelegraf(t *testing.T) {
	snd := &sender{}
	ts := newStore(t, Options{Telegraf: snd})
	tags := map[string]string{"host": "h1", "site": "zrh"}
	with := Series{ID: "with", Step: time.Minute, Pings: 3, RRDTemplate: "smokeping", Measurement: "ping", Tags: tags}
	norrd := Series{ID: "norrd", Step: 20 * time.Second, Pings: 2, RRDTemplate: "norrd", Measurement: "tunnel"}
	without := Series{ID: "without", Step: time.Minute, Pings: 3, RRDTemplate: "smokeping", Tags: tags}
	for _, se := range []Series{with, norrd, without} {
		ts.mustPrepare(t, se)
	}
	r1 := ts.round(t, with, rtts(3, -1, 1))
	r2 := ts.round(t, norrd, rtts(-1, -1))
	ts.round(t, without, rtts(1, 2, 3))
	// A dropped result sends nothing either.
	if err := ts.Write(Result{ID: "with", Time: r1.Time.Add(time.Minute), Step: time.Hour, RTTs: rtts(1, 2, 3)}); err != nil {
		t.Fatal(err)
	}
	got := snd.got()
	want := []telegraf.Point{
		{Measurement: "ping", Tags: tags, Time: r1.Time, Step: time.Minute, RTTs: rtts(3, -1, 1)},
		{Measurement: "tunnel", Time: r2.Time, Step: 20 * time.Second, RTTs: rtts(-1, -1)},
	}
	if len(got) != len(want) {
		t.Fatalf("sent %d points %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Measurement != w.Measurement || !g.Time.Equal(w.Time) || g.Step != w.Step || !slices.Equal(g.RTTs, w.RTTs) || len(g.Tags) != len(w.Tags) {
			t.Errorf("point %d = %+v, want %+v", i, g, w)
		}
		for k, v := range w.Tags {
			if g.Tags[k] != v {
				t.Errorf("point %d tag %s = %q, want %q", i, k, g.Tags[k], v)
			}
		}
	}
	if !got[0].Time.Equal(time.Unix(now0-now0%60-60, 0)) {
		t.Errorf("point time %v, want the RRD stamp", got[0].Time.Unix())
	}

	// Without a sender, a measurement is no problem.
	ts2 := newStore(t, Options{})
	ts2.mustPrepare(t, with)
	ts2.round(t, with, rtts(1, 2, 3))
}

// TestWriteDropped: results for orders that are not (or no longer, or not so) prepared
// are dropped without an error and without touching a file.
func TestWriteDropped(t *testing.T) {
	se := Series{ID: "d/x", Step: time.Minute, Pings: 5, RRDTemplate: "smokeping"}
	stamp := Stamp(time.Unix(now0, 0), time.Minute)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, ts *testStore)
		res   Result
	}{
		{"not prepared", func(*testing.T, *testStore) {}, Result{ID: "d/x", Time: stamp, Step: time.Minute, RTTs: rtts(1, 2, 3, 4, 5)}},
		{"other id", func(t *testing.T, ts *testStore) { ts.mustPrepare(t, se) }, Result{ID: "d/y", Time: stamp, Step: time.Minute, RTTs: rtts(1, 2, 3, 4, 5)}},
		{"after archive", func(t *testing.T, ts *testStore) {
			ts.mustPrepare(t, se)
			ts.round(t, se, rtts(1, 2, 3, 4, 5))
			if err := ts.Archive(se.ID); err != nil {
				t.Fatal(err)
			}
		}, Result{ID: "d/x", Time: stamp.Add(time.Minute), Step: time.Minute, RTTs: rtts(1, 2, 3, 4, 5)}},
		{"other step", func(t *testing.T, ts *testStore) { ts.mustPrepare(t, se) }, Result{ID: "d/x", Time: stamp, Step: 5 * time.Minute, RTTs: rtts(1, 2, 3, 4, 5)}},
		{"fewer RTTs", func(t *testing.T, ts *testStore) { ts.mustPrepare(t, se) }, Result{ID: "d/x", Time: stamp, Step: time.Minute, RTTs: rtts(1, 2, 3, 4)}},
		{"more RTTs", func(t *testing.T, ts *testStore) { ts.mustPrepare(t, se) }, Result{ID: "d/x", Time: stamp, Step: time.Minute, RTTs: rtts(1, 2, 3, 4, 5, 6)}},
		{"prepared again with other pings", func(t *testing.T, ts *testStore) {
			ts.mustPrepare(t, se)
			se2 := se
			se2.Pings = 6
			ts.mustPrepare(t, se2)
		}, Result{ID: "d/x", Time: stamp, Step: time.Minute, RTTs: rtts(1, 2, 3, 4, 5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snd := &sender{}
			ts := newStore(t, Options{Telegraf: snd})
			tc.setup(t, ts)
			snap := snapshot(t, ts.base)
			sent := len(snd.got())
			if err := ts.Write(tc.res); err != nil {
				t.Errorf("Write: %v, want the result dropped silently", err)
			}
			if after := snapshot(t, ts.base); !maps2Equal(snap, after) {
				t.Errorf("Write of a dropped result changed files:\nbefore %v\nafter  %v", keys(snap), keys(after))
			}
			if len(snd.got()) != sent {
				t.Error("a dropped result was sent to telegraf")
			}
			if tc.name == "after archive" && exists(ts.out(se.ID)) {
				t.Error("output recreated for an archived order")
			}
		})
	}
}

// snapshot maps every path below root to its content ("/" for directories).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range storetest.Tree(t, root) {
		if strings.HasSuffix(p, "/") {
			m[p] = "/"
		} else {
			m[p] = string(readFile(t, filepath.Join(root, p)))
		}
	}
	return m
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	slices.Sort(k)
	return k
}

// TestOutputRemovedWhileActive: the round still finds a home, main.rrd included.
func TestOutputRemovedWhileActive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(ts *testStore) error
	}{
		{"output dir", func(ts *testStore) error { return os.RemoveAll(ts.out("r/m")) }},
		{"parent dir", func(ts *testStore) error { return os.RemoveAll(ts.out("r")) }},
		{"main.rrd only", func(ts *testStore) error { return os.Remove(ts.out("r/m", "main.rrd")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newStore(t, Options{})
			se := Series{ID: "r/m", Step: time.Minute, Pings: 4, RRDTemplate: "smokeping"}
			ts.mustPrepare(t, se)
			ts.round(t, se, rtts(1, 2, 3, 4))
			if err := tc.remove(ts); err != nil {
				t.Fatal(err)
			}
			ts.clock.Set(now0 + 60)
			r := rtts(5, -1, 7, 6)
			res := ts.round(t, se, r)
			if got, want := string(readFile(t, ts.out(se.ID, "last_result"))), wantLastResult(res.Time.Unix(), now0+60, se, r); got != want {
				t.Errorf("last_result =\n%s\nwant\n%s", got, want)
			}
			checkRow(t, "new main.rrd", rrdtest.FetchRow(t, ts.out(se.ID, "main.rrd"), res.Time.Unix(), se.Step), wantRow(r))
			info := rrdtest.Info(t, ts.out(se.ID, "main.rrd"))
			if info["step"] != "60" || info["ds[ping4].max"] != "1.8000000000e+02" {
				t.Errorf("recreated main.rrd: step %s, ping4 max %s", info["step"], info["ds[ping4].max"])
			}
		})
	}
}

// TestUpdateErrorKeepsFile: an ordinary update error (a round stamped at the file's last
// update) is reported, main.rrd is kept as it is, and last_result is still written, even
// for an id whose path contains words of the corruption messages.
func TestUpdateErrorKeepsFile(t *testing.T) {
	for _, id := range []string{"plain", "layout/x", "RRD version 2/y"} {
		t.Run(id, func(t *testing.T) {
			ts := newStore(t, Options{})
			se := Series{ID: id, Step: time.Minute, Pings: 3, RRDTemplate: "smokeping"}
			ts.mustPrepare(t, se)
			first := ts.round(t, se, rtts(1, 2, 3))
			rrd := readFile(t, ts.out(id, "main.rrd"))
			ts.clock.Set(now0 + 5) // the same step: the same stamp
			err := ts.Write(Result{ID: id, Time: first.Time, Step: se.Step, RTTs: rtts(4, 5, 6)})
			if err == nil || !strings.Contains(err.Error(), "error while updating") || !strings.Contains(err.Error(), "illegal attempt to update") {
				t.Errorf("Write of a round at the last update time: %v, want an update error", err)
			}
			if exists(ts.out(id, "corrupted_main.rrd")) {
				t.Error("main.rrd was taken for corrupt and moved aside")
			}
			if !bytes.Equal(readFile(t, ts.out(id, "main.rrd")), rrd) {
				t.Error("main.rrd changed")
			}
			checkRow(t, "first round", rrdtest.FetchRow(t, ts.out(id, "main.rrd"), first.Time.Unix(), se.Step), wantRow(rtts(1, 2, 3)))
			if got, want := string(readFile(t, ts.out(id, "last_result"))), wantLastResult(first.Time.Unix(), now0+5, se, rtts(4, 5, 6)); got != want {
				t.Errorf("last_result =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// corruptions turn a valid main.rrd into one the store must replace.
var corruptions = []struct {
	name    string
	corrupt func(t *testing.T, path string)
}{
	{"garbage", func(t *testing.T, path string) { writeFile(t, path, bytes.Repeat([]byte("garbage!"), 512)) }},
	{"empty", func(t *testing.T, path string) { writeFile(t, path, nil) }},
	{"truncated to half", func(t *testing.T, path string) {
		b := readFile(t, path)
		writeFile(t, path, b[:len(b)/2])
	}},
	{"truncated header", func(t *testing.T, path string) { writeFile(t, path, readFile(t, path)[:40]) }},
	{"one byte short", func(t *testing.T, path string) {
		b := readFile(t, path)
		writeFile(t, path, b[:len(b)-1])
	}},
	{"unknown version", func(t *testing.T, path string) {
		b := readFile(t, path)
		copy(b[4:], "0009")
		writeFile(t, path, b)
	}},
	{"other layout", func(t *testing.T, path string) {
		other := rrdfmt.LP64
		if rrdfmt.NativeLayout() == rrdfmt.LP64 {
			other = rrdfmt.ARM32
		}
		spec := rrdSpec(time.Minute, 4, "smokeping")
		spec.Layout = other
		os.Remove(path)
		if err := rrdfmt.Create(path, spec); err != nil {
			t.Fatal(err)
		}
	}},
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptAtPrepare(t *testing.T) {
	se := Series{ID: "c/p", Step: time.Minute, Pings: 4, RRDTemplate: "smokeping"}
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			ts := newStore(t, Options{})
			ts.mustPrepare(t, se)
			ts.round(t, se, rtts(1, 2, 3, 4))
			path := ts.out(se.ID, "main.rrd")
			tc.corrupt(t, path)
			bad := readFile(t, path)
			// An earlier corrupted_main.rrd is replaced, as in the Perl version.
			writeFile(t, ts.out(se.ID, "corrupted_main.rrd"), []byte("older"))

			ts2 := openStore(t, ts.base, Options{}) // as after a restart
			ts2.clock.Set(now0 + 60)
			ts2.mustPrepare(t, se)
			if got := readFile(t, ts.out(se.ID, "corrupted_main.rrd")); !bytes.Equal(got, bad) {
				t.Errorf("corrupted_main.rrd holds %d bytes, not the %d of the corrupt file", len(got), len(bad))
			}
			info := rrdtest.Info(t, path)
			if info["step"] != "60" || info["ds[ping4].index"] != "5" || info["last_update"] != strconv.Itoa(now0+60-(now0+60)%60-120) {
				t.Errorf("new main.rrd: step %s, ping4 index %s, last_update %s", info["step"], info["ds[ping4].index"], info["last_update"])
			}
			if !strings.Contains(ts2.log.String(), "corrupted") {
				t.Error("nothing logged about the corrupt file")
			}
			r := rtts(9, -1, 7, 8)
			res := ts2.round(t, se, r)
			checkRow(t, "round in the new file", rrdtest.FetchRow(t, path, res.Time.Unix(), se.Step), wantRow(r))
		})
	}
}

func TestCorruptAtWrite(t *testing.T) {
	se := Series{ID: "c/w", Step: time.Minute, Pings: 4, RRDTemplate: "smokeping"}
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			ts := newStore(t, Options{})
			ts.mustPrepare(t, se)
			ts.round(t, se, rtts(1, 2, 3, 4))
			path := ts.out(se.ID, "main.rrd")
			tc.corrupt(t, path)
			bad := readFile(t, path)

			ts.clock.Set(now0 + 60)
			r := rtts(-1, 6, 5, -1)
			res := ts.round(t, se, r) // fails the test on an error
			if got := readFile(t, ts.out(se.ID, "corrupted_main.rrd")); !bytes.Equal(got, bad) {
				t.Errorf("corrupted_main.rrd holds %d bytes, not the %d of the corrupt file", len(got), len(bad))
			}
			checkRow(t, "round in the new file", rrdtest.FetchRow(t, path, res.Time.Unix(), se.Step), wantRow(r))
			info := rrdtest.Info(t, path)
			if info["ds[ping4].index"] != "5" || info["last_update"] != strconv.FormatInt(res.Time.Unix(), 10) {
				t.Errorf("new main.rrd: ping4 index %s, last_update %s", info["ds[ping4].index"], info["last_update"])
			}
			if got, want := string(readFile(t, ts.out(se.ID, "last_result"))), wantLastResult(res.Time.Unix(), now0+60, se, r); got != want {
				t.Errorf("last_result =\n%s\nwant\n%s", got, want)
			}
			// And the next round goes on in the new file.
			ts.clock.Set(now0 + 120)
			res = ts.round(t, se, rtts(1, 1, 1, 1))
			checkRow(t, "next round", rrdtest.FetchRow(t, path, res.Time.Unix(), se.Step), wantRow(rtts(1, 1, 1, 1)))
		})
	}
}

// TestStepOrPingsChange: the old file is kept, byte for byte, under a name that says
// what it was made for, and a new main.rrd fits the new order.
func TestStepOrPingsChange(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to Series
		old      string
	}{
		{"step up", Series{Step: time.Minute, Pings: 20}, Series{Step: 5 * time.Minute, Pings: 20}, "main.step60.pings20.rrd"},
		{"step down", Series{Step: 5 * time.Minute, Pings: 5}, Series{Step: 20 * time.Second, Pings: 5}, "main.step300.pings5.rrd"},
		{"pings up", Series{Step: time.Minute, Pings: 5}, Series{Step: time.Minute, Pings: 20}, "main.step60.pings5.rrd"},
		{"pings down", Series{Step: time.Minute, Pings: 20}, Series{Step: time.Minute, Pings: 3}, "main.step60.pings20.rrd"},
		{"both", Series{Step: 7 * time.Second, Pings: 3}, Series{Step: 10 * time.Minute, Pings: 10}, "main.step7.pings3.rrd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newStore(t, Options{})
			from, to := tc.from, tc.to
			from.ID, to.ID = "s/c", "s/c"
			from.RRDTemplate, to.RRDTemplate = "smokeping", "smokeping"
			ts.mustPrepare(t, from)
			r := make([]time.Duration, from.Pings)
			for i := range r {
				r[i] = time.Duration(i+1) * time.Millisecond
			}
			ts.round(t, from, r)
			path := ts.out("s/c", "main.rrd")
			before := readFile(t, path)

			ts.clock.Set(now0 + 30)
			ts.mustPrepare(t, to)
			if got := readFile(t, ts.out("s/c", tc.old)); !bytes.Equal(got, before) {
				t.Errorf("%s differs from the old main.rrd", tc.old)
			}
			want := filepath.Join(t.TempDir(), "want.rrd")
			rrdtest.Run(t, append([]string{"create", want, "--step", strconv.FormatInt(int64(to.Step/time.Second), 10)},
				perlDefs(int(to.Step/time.Second), to.Pings, "smokeping")...)...)
			wantInfo := rrdtest.Info(t, want)
			compareInfo(t, rrdtest.Info(t, path), wantInfo, definitionKeys(wantInfo))

			// A result of the old order is dropped; one of the new goes to the new file.
			if err := ts.Write(Result{ID: "s/c", Time: Stamp(ts.clock.Now(), from.Step), Step: from.Step, RTTs: r}); err != nil {
				t.Errorf("Write of the old order's result: %v", err)
			}
			nr := make([]time.Duration, to.Pings)
			for i := range nr {
				nr[i] = time.Duration(10*i+1) * time.Millisecond
			}
			res := ts.round(t, to, nr)
			checkRow(t, "round of the new order", rrdtest.FetchRow(t, path, res.Time.Unix(), to.Step), wantRow(nr))

			// Prepared again the same: nothing moves.
			after := readFile(t, path)
			ts.mustPrepare(t, to)
			if !bytes.Equal(readFile(t, path), after) {
				t.Error("Prepare with the same definition changed main.rrd")
			}
			if names := storetest.Tree(t, ts.out("s/c")); !slices.Equal(names, []string{".last_result.spare", "last_result", "main.rrd", tc.old}) {
				t.Errorf("output holds %v", names)
			}
		})
	}
}

// TestStepFlipTakesKeptFileBack changes an order's step back and forth: the file of the
// step it leaves is kept, and the file of the step it returns to is taken back, so that
// each step's history goes on in one file and none is lost or overwritten.
func TestStepFlipTakesKeptFileBack(t *testing.T) {
	ts := newStore(t, Options{})
	short := Series{ID: "flip", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	long := short
	long.Step = 5 * time.Minute
	rtt := []time.Duration{time.Millisecond, 2 * time.Millisecond}
	var rounds []Result // two a change: after a gap, an RRD's first update is unknown
	for i, se := range []Series{short, long, short, long} {
		ts.clock.Set(now0 + int64(1200*i))
		last, err := ts.Prepare(se)
		if err != nil {
			t.Fatal(err)
		}
		// The later of last_result's stamp (the round before) and main.rrd's last update:
		// a new file starts two steps back; a file taken back holds older rounds.
		want := time.Unix(ts.clock.Now().Unix()-ts.clock.Now().Unix()%int64(se.Step/time.Second), 0).Add(-2 * se.Step)
		if i >= 2 || i == 1 && rounds[1].Time.After(want) {
			want = rounds[2*i-1].Time
		}
		if !last.Equal(want) {
			t.Errorf("change %d: Prepare says the last result is at %d, want %d", i, last.Unix(), want.Unix())
		}
		rounds = append(rounds, ts.round(t, se, rtt))
		ts.clock.Set(ts.clock.Now().Unix() + int64(se.Step/time.Second))
		rounds = append(rounds, ts.round(t, se, rtt))
	}
	want := []string{".last_result.spare", "last_result", "main.rrd", "main.step60.pings2.rrd"}
	if names := storetest.Tree(t, ts.out("flip")); !slices.Equal(names, want) {
		t.Fatalf("output holds %v, want %v", names, want)
	}
	for i := 1; i < len(rounds); i += 2 {
		r := rounds[i]
		file := map[time.Duration]string{short.Step: "main.step60.pings2.rrd", long.Step: "main.rrd"}[r.Step]
		checkRow(t, fmt.Sprintf("round %d in %s", i, file), rrdtest.FetchRow(t, ts.out("flip", file), r.Time.Unix(), r.Step), wantRow(rtt))
	}
}

// TestTakeBackChoosesLatest: of several kept files of the step an order returns to, the
// one updated last is taken back; files that are no RRD of that step and pings are not.
func TestTakeBackChoosesLatest(t *testing.T) {
	ts := newStore(t, Options{})
	short := Series{ID: "o", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	long := short
	long.Step = 5 * time.Minute
	ts.mustPrepare(t, long)
	rtt := []time.Duration{time.Millisecond, 2 * time.Millisecond}
	// Two kept files of the short step, the later one under .2, and decoys.
	for i, name := range []string{"main.step60.pings2.rrd", "main.step60.pings2.2.rrd"} {
		path := ts.out("o", name)
		spec := rrdSpec(short.Step, short.Pings, "smokeping")
		spec.Start = time.Unix(now0-now0%60-600, 0)
		if err := rrdfmt.Create(path, spec); err != nil {
			t.Fatal(err)
		}
		if err := rrdfmt.UpdateFile(path, rrdfmt.NativeLayout(), rrdfmt.Update{Time: spec.Start.Add(time.Duration(i+1) * time.Minute), Values: []string{"0", "0.001", "0.001", "0.002"}}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(ts.out("o", "main.step60.pings2.3.rrd"), []byte("not an RRD"), 0o644)
	os.Symlink(ts.out("o", "main.step60.pings2.rrd"), ts.out("o", "main.step60.pings2.4.rrd"))
	last, err := ts.Prepare(short)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(now0-now0%60-600+120, 0); !last.Equal(want) {
		t.Errorf("took back the file updated at %d, want the later one, at %d", last.Unix(), want.Unix())
	}
	want := []string{"last_result", "main.rrd", "main.step300.pings2.rrd", "main.step60.pings2.3.rrd", "main.step60.pings2.4.rrd", "main.step60.pings2.rrd"}
	ts.round(t, short, rtt)
	if names := storetest.Tree(t, ts.out("o")); !slices.Equal(names, want) {
		t.Errorf("output holds %v, want %v", names, want)
	}
}

// TestPrepareReportsLastResult: Prepare returns the stamp of the last result the output
// holds, from last_result where there is no main.rrd (norrd) or where main.rrd lags (an
// rrdcached that has not written its queue yet).
func TestPrepareReportsLastResult(t *testing.T) {
	ts := newStore(t, Options{})
	se := Series{ID: "n", Step: time.Minute, Pings: 2, RRDTemplate: "norrd"}
	if last, err := ts.Prepare(se); err != nil || !last.IsZero() {
		t.Errorf("new norrd order: Prepare = %v, %v; want no result yet", last, err)
	}
	res := ts.round(t, se, rtts(1, -1))
	if last, err := ts.Prepare(se); err != nil || !last.Equal(res.Time) {
		t.Errorf("norrd order with a result: Prepare = %v, %v; want %v", last, err, res.Time)
	}
	// last_result ahead of main.rrd.
	rrd := Series{ID: "r", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, rrd)
	ts.round(t, rrd, []time.Duration{time.Millisecond, time.Millisecond})
	ahead := time.Unix(now0+3600, 0)
	os.WriteFile(ts.out("r", "last_result"), []byte(fmt.Sprintf("time: %d\nupdated: 0\n", ahead.Unix())), 0o644)
	if last, err := ts.Prepare(rrd); err != nil || !last.Equal(ahead) {
		t.Errorf("Prepare = %v, %v; want last_result's %v", last, err, ahead)
	}
	// A last_result that is not a regular file is not read (a FIFO would block).
	os.Remove(ts.out("r", "last_result"))
	if err := syscall.Mkfifo(ts.out("r", "last_result"), 0o644); err != nil {
		t.Fatal(err)
	}
	if last, err := ts.Prepare(rrd); err != nil || last.Unix() != Stamp(ts.clock.Now(), rrd.Step).Unix() {
		t.Errorf("Prepare with a FIFO for last_result = %v, %v; want main.rrd's last update", last, err)
	}
}

// TestPrepareFailureRecovers: when Prepare cannot make main.rrd, the order is still
// active, and the next Write makes the file and keeps the round.
func TestPrepareFailureRecovers(t *testing.T) {
	ts := newStore(t, Options{})
	se := Series{ID: "blocked", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	// A directory where main.rrd belongs: unreadable as an RRD, and not corrupt either.
	os.MkdirAll(ts.out("blocked", "main.rrd"), 0o755)
	if _, err := ts.Prepare(se); err == nil {
		t.Fatal("Prepare succeeded with a directory in place of main.rrd")
	}
	os.Remove(ts.out("blocked", "main.rrd"))
	res := ts.round(t, se, []time.Duration{time.Millisecond, 3 * time.Millisecond})
	checkRow(t, "round after a failed Prepare", rrdtest.FetchRow(t, ts.out("blocked", "main.rrd"), res.Time.Unix(), se.Step),
		wantRow([]time.Duration{time.Millisecond, 3 * time.Millisecond}))
}

func TestArchive(t *testing.T) {
	t.Run("nested id", func(t *testing.T) {
		ts := newStore(t, Options{})
		se := Series{ID: "a/b/c", Step: time.Minute, Pings: 3, RRDTemplate: "smokeping"}
		other := Series{ID: "a/x", Step: time.Minute, Pings: 3, RRDTemplate: "norrd"}
		ts.mustPrepare(t, se)
		ts.mustPrepare(t, other)
		ts.round(t, se, rtts(1, 2, 3))
		before := snapshot(t, ts.out("a/b/c"))
		if err := ts.Archive("a/b/c"); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, ts.arch("a/b/c")); !maps2Equal(got, before) {
			t.Errorf("archive holds %v, want %v", keys(got), keys(before))
		}
		// output/a/b went (empty), output/a stays for a/x.
		if got := storetest.Tree(t, ts.output); !slices.Equal(got, []string{"a/", "a/x/"}) {
			t.Errorf("output/ holds %v", got)
		}
		if err := ts.Archive("a/x"); err != nil {
			t.Fatal(err)
		}
		if got := storetest.Tree(t, ts.output); len(got) != 0 {
			t.Errorf("output/ holds %v after archiving everything", got)
		}
		if !exists(ts.output) {
			t.Error("output/ itself was removed")
		}
		if got := storetest.Tree(t, ts.archive); !slices.Equal(got, []string{"a/", "a/b/", "a/b/c/", "a/b/c/last_result", "a/b/c/main.rrd", "a/x/"}) {
			t.Errorf("archive/ holds %v", got)
		}
	})
	t.Run("no output", func(t *testing.T) {
		ts := newStore(t, Options{})
		if err := ts.Archive("never/was"); err != nil {
			t.Errorf("Archive of an id without output: %v", err)
		}
		if got := storetest.Tree(t, ts.base); !slices.Equal(got, []string{"archive/", "output/"}) {
			t.Errorf("base holds %v", got)
		}
		ts.mustPrepare(t, Series{ID: "p", Step: time.Minute, Pings: 1, RRDTemplate: "norrd"})
		if err := ts.Archive("p"); err != nil { // prepared, nothing written yet
			t.Fatal(err)
		}
		if !exists(ts.arch("p")) || exists(ts.out("p")) {
			t.Error("an empty output was not archived")
		}
	})
	t.Run("archive not empty", func(t *testing.T) {
		ts := newStore(t, Options{})
		se := Series{ID: "k/v", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
		ts.mustPrepare(t, se)
		ts.round(t, se, rtts(1, 2))
		if err := os.MkdirAll(ts.arch("k/v"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, ts.arch("k/v", "last_result"), []byte("old"))
		before := snapshot(t, ts.out("k/v"))
		if err := ts.Archive("k/v"); err == nil {
			t.Error("Archive over a non-empty archive: no error")
		}
		if got := snapshot(t, ts.out("k/v")); !maps2Equal(got, before) {
			t.Errorf("output changed: %v", keys(got))
		}
		if got := string(readFile(t, ts.arch("k/v", "last_result"))); got != "old" {
			t.Errorf("archive changed: %q", got)
		}
	})
	t.Run("empty archive dir is replaced", func(t *testing.T) {
		ts := newStore(t, Options{})
		se := Series{ID: "e", Step: time.Minute, Pings: 2, RRDTemplate: "norrd"}
		ts.mustPrepare(t, se)
		ts.round(t, se, rtts(1, 2))
		if err := os.MkdirAll(ts.arch("e"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := ts.Archive("e"); err != nil {
			t.Fatal(err)
		}
		if !exists(ts.arch("e", "last_result")) {
			t.Error("output not moved into the empty archive directory")
		}
	})
}

func TestPrepareRestoresArchive(t *testing.T) {
	t.Run("restored", func(t *testing.T) {
		ts := newStore(t, Options{})
		se := Series{ID: "x/y/z", Step: time.Minute, Pings: 3, RRDTemplate: "smokeping"}
		ts.mustPrepare(t, se)
		first := ts.round(t, se, rtts(1, 2, 3))
		before := snapshot(t, ts.out(se.ID))
		if err := ts.Archive(se.ID); err != nil {
			t.Fatal(err)
		}
		ts.clock.Set(now0 + 60)
		ts.mustPrepare(t, se)
		if got := snapshot(t, ts.out(se.ID)); !maps2Equal(got, before) {
			t.Errorf("restored output differs: %v, want %v", keys(got), keys(before))
		}
		if got := storetest.Tree(t, ts.archive); len(got) != 0 {
			t.Errorf("archive/ holds %v after the restore (empty parents must go)", got)
		}
		if !exists(ts.archive) {
			t.Error("archive/ itself was removed")
		}
		if !strings.Contains(ts.log.String(), "revived") {
			t.Error("restore not logged")
		}
		// The history goes on in the same file.
		res := ts.round(t, se, rtts(4, 5, 6))
		rows, _ := rrdtest.Fetch(t, ts.out(se.ID, "main.rrd"), first.Time.Unix()-60, res.Time.Unix())
		checkRow(t, "first round", rows[first.Time.Unix()], wantRow(rtts(1, 2, 3)))
		checkRow(t, "round after restore", rows[res.Time.Unix()], wantRow(rtts(4, 5, 6)))
	})
	t.Run("both exist", func(t *testing.T) {
		ts := newStore(t, Options{})
		se := Series{ID: "both/o", Step: time.Minute, Pings: 3, RRDTemplate: "smokeping"}
		ts.mustPrepare(t, se)
		ts.round(t, se, rtts(1, 2, 3))
		if err := ts.Archive(se.ID); err != nil {
			t.Fatal(err)
		}
		archived := snapshot(t, ts.arch(se.ID))
		if err := os.MkdirAll(ts.out(se.ID), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, ts.out(se.ID, "last_result"), []byte("newer"))
		ts.mustPrepare(t, se)
		if got := snapshot(t, ts.arch(se.ID)); !maps2Equal(got, archived) {
			t.Errorf("archive changed: %v", keys(got))
		}
		if got := string(readFile(t, ts.out(se.ID, "last_result"))); got != "newer" {
			t.Errorf("output last_result = %q, want the output kept", got)
		}
		if !exists(ts.out(se.ID, "main.rrd")) {
			t.Error("no main.rrd created in the kept output")
		}
		if !strings.Contains(ts.log.String(), "both") {
			t.Error("the conflict was not logged")
		}
	})
	t.Run("output parent missing", func(t *testing.T) {
		ts := newStore(t, Options{})
		if err := os.MkdirAll(ts.arch("deep/er/id"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, ts.arch("deep/er/id", "last_result"), []byte("kept"))
		ts.mustPrepare(t, Series{ID: "deep/er/id", Step: time.Minute, Pings: 1, RRDTemplate: "norrd"})
		if got := string(readFile(t, ts.out("deep/er/id", "last_result"))); got != "kept" {
			t.Errorf("restored last_result = %q", got)
		}
		if exists(ts.arch("deep")) {
			t.Error("empty archive parents left behind")
		}
	})
}

func TestReconcile(t *testing.T) {
	base := newBase(t)
	// A previous run left outputs behind.
	prev := openStore(t, base, Options{})
	for _, id := range []string{"keep", "gone", "n/x/keep", "n/x/gone", "n/y/z/gone", "act"} {
		se := Series{ID: id, Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
		prev.mustPrepare(t, se)
		prev.round(t, se, rtts(1, 2))
	}
	// Outputs of norrd orders have only last_result; one with only main.rrd counts too.
	prev.mustPrepare(t, Series{ID: "n/onlylast", Step: time.Minute, Pings: 2, RRDTemplate: "norrd"})
	prev.round(t, Series{ID: "n/onlylast", Step: time.Minute, Pings: 2, RRDTemplate: "norrd"}, rtts(1, 2))
	prev.mustPrepare(t, Series{ID: "onlyrrd", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"})
	// Not outputs: an empty directory, one with another file.
	for _, d := range []string{"empty/dir", "junk"} {
		if err := os.MkdirAll(filepath.Join(base, "output", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(base, "output", "junk", "notes"), []byte("x"))

	ts := openStore(t, base, Options{})
	ts.mustPrepare(t, Series{ID: "act", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"})
	ts.Reconcile(map[string]bool{"keep": true, "n/x/keep": true, "not/there": true})

	for _, id := range []string{"keep", "n/x/keep", "act"} {
		if !exists(ts.out(id, "main.rrd")) || exists(ts.arch(id)) {
			t.Errorf("%s: not kept in output/", id)
		}
	}
	for _, id := range []string{"gone", "n/x/gone", "n/y/z/gone", "n/onlylast", "onlyrrd"} {
		if exists(ts.out(id)) || !exists(ts.arch(id)) {
			t.Errorf("%s: not archived", id)
		}
	}
	if !exists(ts.arch("gone", "main.rrd")) || !exists(ts.arch("n/onlylast", "last_result")) {
		t.Error("archived outputs lost files")
	}
	if got := storetest.Tree(t, ts.output); !slices.Equal(got, []string{
		"act/", "act/last_result", "act/main.rrd", "empty/", "empty/dir/", "junk/", "junk/notes",
		"keep/", "keep/last_result", "keep/main.rrd", "n/", "n/x/", "n/x/keep/", "n/x/keep/last_result", "n/x/keep/main.rrd",
	}) {
		t.Errorf("output/ after Reconcile: %v", got)
	}
	if exists(ts.out("not/there")) || exists(ts.arch("not/there")) {
		t.Error("a present order without output got a directory")
	}
	// Again: nothing more to do.
	before := snapshot(t, base)
	ts.Reconcile(map[string]bool{"keep": true, "n/x/keep": true})
	if after := snapshot(t, base); !maps2Equal(before, after) {
		t.Errorf("a second Reconcile changed files: %v -> %v", keys(before), keys(after))
	}
}

// TestEscapingIDs: an id that is not a path inside output/ is refused, and nothing is
// written anywhere.
func TestEscapingIDs(t *testing.T) {
	for _, id := range []string{"../x", "../../x", "/abs", "/abs/x", "a/../../x", "..", "", ".", "a/..", `a\..\..\x`, "output/../../x"} {
		t.Run(strconv.Quote(id), func(t *testing.T) {
			ts := newStore(t, Options{})
			// Something to lose: an order with its output.
			good := Series{ID: "good", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
			ts.mustPrepare(t, good)
			ts.round(t, good, rtts(1, 2))
			root := filepath.Dir(ts.base)
			before := snapshot(t, root)
			se := Series{ID: id, Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
			if _, err := ts.Prepare(se); err == nil {
				t.Errorf("Prepare(%q): no error", id)
			}
			if err := ts.Write(Result{ID: id, Time: Stamp(ts.clock.Now(), time.Minute), Step: time.Minute, RTTs: rtts(1, 2)}); err == nil {
				t.Errorf("Write(%q): no error", id)
			}
			if err := ts.Archive(id); err == nil {
				t.Errorf("Archive(%q): no error", id)
			}
			if after := snapshot(t, root); !maps2Equal(before, after) {
				t.Errorf("files changed:\nbefore %v\nafter  %v", keys(before), keys(after))
			}
			for _, p := range []string{"/abs", "/abs/x"} {
				if exists(p) {
					t.Errorf("%s exists", p)
				}
			}
		})
	}
	// Ids that look odd but stay inside are fine.
	ts := newStore(t, Options{})
	for _, id := range []string{"a/../b", "..x", "x..", "a/.hidden", "sp ace/é"} {
		se := Series{ID: id, Step: time.Minute, Pings: 1, RRDTemplate: "norrd"}
		ts.mustPrepare(t, se)
		ts.round(t, se, rtts(1))
		if !exists(ts.out(filepath.Clean(id), "last_result")) {
			t.Errorf("%q: no last_result in output/", id)
		}
	}
}

// TestConcurrentWrites runs many orders' rounds at once (run with -race).
func TestConcurrentWrites(t *testing.T) {
	snd := &sender{}
	ts := newStore(t, Options{Telegraf: snd})
	const orders, rounds = 16, 10
	series := make([]Series, orders)
	for i := range series {
		series[i] = Series{ID: fmt.Sprintf("g%d/h%d", i%4, i), Step: time.Minute, Pings: 3, RRDTemplate: "smokeping", Measurement: "m"}
		ts.mustPrepare(t, series[i])
	}
	for k := range rounds {
		var wg sync.WaitGroup
		for i, se := range series {
			wg.Go(func() {
				stamp := time.Unix(now0-now0%60+int64(k)*60, 0)
				if err := ts.Write(Result{ID: se.ID, Time: stamp, Step: se.Step, RTTs: rtts(float64(i), float64(k), -1)}); err != nil {
					t.Error(err)
				}
			})
		}
		// Archive and Prepare race with the writes of other orders in the same tree.
		wg.Go(func() {
			id := fmt.Sprintf("g%d/extra", k%4)
			se := Series{ID: id, Step: time.Minute, Pings: 3, RRDTemplate: "norrd"}
			if _, err := ts.Prepare(se); err != nil {
				t.Error(err)
			}
			if err := ts.Archive(id); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}
	if n := len(snd.got()); n != orders*rounds {
		t.Errorf("%d points sent, want %d", n, orders*rounds)
	}
	for i, se := range series {
		last := int64(now0 - now0%60 + (rounds-1)*60)
		rows, _ := rrdtest.Fetch(t, ts.out(se.ID, "main.rrd"), now0-now0%60-60, last)
		for k := range rounds {
			checkRow(t, fmt.Sprintf("%s round %d", se.ID, k), rows[now0-now0%60+int64(k)*60], wantRow(rtts(float64(i), float64(k), -1)))
		}
	}
}

// TestSymlinksNotFollowed: symbolic links planted in output/ or archive/ never lead a
// write outside the base directory.
func TestSymlinksNotFollowed(t *testing.T) {
	se := Series{ID: "site/host", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	tests := []struct {
		name  string
		plant func(ts *testStore, outside string)
	}{
		{"output dir is a link", func(ts *testStore, outside string) {
			os.MkdirAll(ts.out("site"), 0o755)
			os.Symlink(outside, ts.out("site", "host"))
		}},
		{"parent dir is a link", func(ts *testStore, outside string) {
			os.Symlink(outside, ts.out("site"))
		}},
		{"archive dir is a link", func(ts *testStore, outside string) {
			os.Symlink(outside, filepath.Join(ts.archive, "site"))
		}},
		{"last_result.tmp is a link", func(ts *testStore, outside string) {
			os.MkdirAll(ts.out("site", "host"), 0o755)
			os.Symlink(filepath.Join(outside, "victim"), ts.out("site", "host", "last_result.tmp"))
		}},
		{"main.rrd is a link", func(ts *testStore, outside string) {
			os.MkdirAll(ts.out("site", "host"), 0o755)
			os.Symlink(filepath.Join(outside, "victim"), ts.out("site", "host", "main.rrd"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newStore(t, Options{})
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			os.WriteFile(victim, []byte("precious"), 0o644)
			tt.plant(ts, outside)
			ts.Prepare(se)
			ts.Write(Result{ID: se.ID, Time: Stamp(ts.clock.Now(), se.Step), Step: se.Step, RTTs: rtts(1, 2)})
			ts.Archive(se.ID)
			if names := storetest.Tree(t, outside); !slices.Equal(names, []string{"victim"}) {
				t.Errorf("outside the base directory: %v, want only the victim", names)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Errorf("the file outside was changed: %q", b)
			}
		})
	}
}

// inode is the inode number of the file at path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestWriteAfterChangesUnderneath changes what a prepared order's output holds between
// two rounds, both where main.rrd is opened in one openat2 call and where the kernel has
// none: the second round is written all the same (into a main.rrd made anew where it is
// missing or unusable), except through a symbolic link, which nothing is written through.
func TestWriteAfterChangesUnderneath(t *testing.T) {
	se := Series{ID: "site/host", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	tests := []struct {
		name    string
		change  func(ts *testStore, outside string) error
		wantErr string // empty: the second round is in main.rrd
	}{
		{"nothing", func(*testStore, string) error { return nil }, ""},
		{"main.rrd removed", func(ts *testStore, _ string) error {
			return os.Remove(ts.out(se.ID, "main.rrd"))
		}, ""},
		{"output directory removed", func(ts *testStore, _ string) error {
			return os.RemoveAll(ts.out(se.ID))
		}, ""},
		{"main.rrd not an RRD", func(ts *testStore, _ string) error {
			return os.WriteFile(ts.out(se.ID, "main.rrd"), []byte("junk"), 0o644)
		}, ""},
		{"main.rrd a link", func(ts *testStore, outside string) error {
			os.Remove(ts.out(se.ID, "main.rrd"))
			return os.Symlink(filepath.Join(outside, "victim"), ts.out(se.ID, "main.rrd"))
		}, ""},
		{"output directory a link", func(ts *testStore, outside string) error {
			os.RemoveAll(ts.out(se.ID))
			return os.Symlink(outside, ts.out(se.ID))
		}, "is a symbolic link: nothing is written through it"},
	}
	for _, tt := range tests {
		bothWays(t, tt.name, func(t *testing.T, viaOpenat2 bool) {
			ts := newStore(t, Options{})
			ts.Store.base.openat2.Store(viaOpenat2)
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			os.WriteFile(victim, []byte("precious"), 0o644)
			ts.mustPrepare(t, se)
			ts.round(t, se, rtts(1, 2))
			if err := tt.change(ts, outside); err != nil {
				t.Fatal(err)
			}
			ts.clock.Set(ts.clock.Now().Unix() + 60)
			second := rtts(3, 4)
			res := Result{ID: se.ID, Time: Stamp(ts.clock.Now(), se.Step), Step: se.Step, RTTs: second}
			err := ts.Write(res)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Write: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Write: error %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr == "":
				checkRow(t, "the second round", rrdtest.FetchRow(t, ts.out(se.ID, "main.rrd"), res.Time.Unix(), se.Step), wantRow(second))
			}
			if names := storetest.Tree(t, outside); !slices.Equal(names, []string{"victim"}) {
				t.Errorf("outside the base directory: %v, want only the victim", names)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Errorf("the file outside was changed: %q", b)
			}
		})
	}
}
