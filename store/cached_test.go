package store

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pingmachine/rrdfmt/rrdtest"
)

// waitRow polls rrdtool fetch until the row at ts is the wanted one: rrdcached's
// FLUSHALL (what Close sends) starts the writes without waiting for them.
func waitRow(t *testing.T, what, path string, ts int64, step time.Duration, want []float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		row := rrdtest.FetchRow(t, path, ts, step)
		if len(row) == len(want) && !math.IsNaN(row[0]) || time.Now().After(deadline) {
			checkRow(t, what, row, want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newCachedStore(t *testing.T) *testStore {
	t.Helper()
	base := newBase(t)
	return openStore(t, base, Options{RRDCached: "unix:" + rrdtest.StartCached(t, base).Sock})
}

func TestCachedBackend(t *testing.T) {
	ts := newCachedStore(t)
	se := Series{ID: "c/one", Step: time.Minute, Pings: 5, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	path := ts.out(se.ID, "main.rrd")
	perl := filepath.Join(t.TempDir(), "perl.rrd")
	rrdtest.Run(t, append([]string{"create", perl, "--step", "60"}, perlDefs(60, 5, "smokeping")...)...)
	want := rrdtest.Info(t, perl)
	got := rrdtest.Info(t, path)
	compareInfo(t, got, want, definitionKeys(want))
	if got["last_update"] != fmt.Sprint(now0-now0%60-120) {
		t.Errorf("last_update = %s, want %d", got["last_update"], now0-now0%60-120)
	}

	rounds := [][]time.Duration{rtts(1, 2, 3, 4, 5), rtts(-1, 9, 8, -1, 7), rtts(-1, -1, -1, -1, -1), rtts(5, 4, 3, 2, 1)}
	var stamps []int64
	for i, r := range rounds {
		now := int64(now0 + 60*i)
		ts.clock.Set(now)
		res := ts.round(t, se, r)
		stamps = append(stamps, res.Time.Unix())
		if got, want := string(readFile(t, ts.out(se.ID, "last_result"))), wantLastResult(res.Time.Unix(), now, se, r); got != want {
			t.Errorf("round %d: last_result =\n%s\nwant\n%s", i, got, want)
		}
	}
	// The daemon holds the rounds: the file has none of them yet.
	if row := rrdtest.FetchRow(t, path, stamps[0], se.Step); !math.IsNaN(row[0]) {
		t.Fatalf("row %d = %v before Close: the updates did not go through rrdcached", stamps[0], row)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, r := range rounds {
		waitRow(t, fmt.Sprintf("round %d after Close", i), path, stamps[i], se.Step, wantRow(r))
	}
}

// TestCachedStepChange: the old file is flushed before it is renamed, so it keeps every
// round, and the new file takes rounds stamped before the old file's last update.
func TestCachedStepChange(t *testing.T) {
	ts := newCachedStore(t)
	se := Series{ID: "c/step", Step: time.Minute, Pings: 3, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	r1 := ts.round(t, se, rtts(1, 2, 3))
	ts.clock.Set(now0 + 60)
	r2 := ts.round(t, se, rtts(4, -1, 6))

	se300 := se
	se300.Step = 5 * time.Minute
	ts.mustPrepare(t, se300)
	old := ts.out(se.ID, "main.step60.pings3.rrd")
	rows, _ := rrdtest.Fetch(t, old, r1.Time.Unix()-60, r2.Time.Unix())
	checkRow(t, "first round in the kept file", rows[r1.Time.Unix()], wantRow(rtts(1, 2, 3)))
	checkRow(t, "second round in the kept file", rows[r2.Time.Unix()], wantRow(rtts(4, -1, 6)))
	path := ts.out(se.ID, "main.rrd")
	if info := rrdtest.Info(t, path); info["step"] != "300" {
		t.Errorf("new main.rrd step %s, want 300", info["step"])
	}

	// Stamped 1_699_999_500, before the old file's last update 1_699_999_980.
	r3 := ts.round(t, se300, rtts(7, 8, 9))
	if r3.Time.Unix() >= r2.Time.Unix() {
		t.Fatalf("test setup: stamp %d is not before %d", r3.Time.Unix(), r2.Time.Unix())
	}
	ts.clock.Set(now0 + 360)
	r4 := ts.round(t, se300, rtts(-1, 1, -1))
	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitRow(t, "first round of the new step", path, r3.Time.Unix(), se300.Step, wantRow(rtts(7, 8, 9)))
	waitRow(t, "second round of the new step", path, r4.Time.Unix(), se300.Step, wantRow(rtts(-1, 1, -1)))
}

// TestCachedArchive: Archive flushes the daemon's rounds into the file it moves, and a
// restored order goes on in that file.
func TestCachedArchive(t *testing.T) {
	ts := newCachedStore(t)
	se := Series{ID: "c/a/b", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	r1 := ts.round(t, se, rtts(1, 2))
	if err := ts.Archive(se.ID); err != nil {
		t.Fatal(err)
	}
	checkRow(t, "round in the archive", rrdtest.FetchRow(t, ts.arch(se.ID, "main.rrd"), r1.Time.Unix(), se.Step), wantRow(rtts(1, 2)))
	if exists(ts.out("c")) {
		t.Error("empty output parents left behind")
	}
	ts.clock.Set(now0 + 60)
	ts.mustPrepare(t, se)
	r2 := ts.round(t, se, rtts(3, -1))
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	path := ts.out(se.ID, "main.rrd")
	waitRow(t, "round after the restore", path, r2.Time.Unix(), se.Step, wantRow(rtts(3, -1)))
	checkRow(t, "round before the archive", rrdtest.FetchRow(t, path, r1.Time.Unix(), se.Step), wantRow(rtts(1, 2)))
}

// TestCachedCorruptAtPrepare: a corrupt main.rrd is moved aside and created again
// through the daemon.
func TestCachedCorruptAtPrepare(t *testing.T) {
	ts := newCachedStore(t)
	se := Series{ID: "bad", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	ts.round(t, se, rtts(1, 2))
	ts.clock.Set(now0 + 60)
	ts.round(t, se, rtts(1, 2))
	writeFile(t, ts.out(se.ID, "main.rrd"), []byte("not an rrd at all"))
	ts.clock.Set(now0 + 120)
	ts.mustPrepare(t, se)
	if got := string(readFile(t, ts.out(se.ID, "corrupted_main.rrd"))); got != "not an rrd at all" {
		t.Errorf("corrupted_main.rrd = %q", got)
	}
	res := ts.round(t, se, rtts(5, -1))
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	waitRow(t, "round in the new file", ts.out(se.ID, "main.rrd"), res.Time.Unix(), se.Step, wantRow(rtts(5, -1)))
}

func TestCachedOpenError(t *testing.T) {
	base := newBase(t)
	if _, err := Open(t.Context(), base, Options{RRDCached: "unix:" + filepath.Join(base, "no-socket")}); err == nil {
		t.Error("Open with an rrdcached that is not there: no error")
	}
}

// cachedOutage is a store on a real rrdcached that the test can kill and restart, with
// the backend's retry pause off so that every write tries the daemon.
func cachedOutage(t *testing.T) (*testStore, *rrdtest.Cached, *cached) {
	t.Helper()
	base := newBase(t)
	d := rrdtest.StartCached(t, base)
	ts := openStore(t, base, Options{RRDCached: "unix:" + d.Sock})
	b := ts.rrd.(*cached)
	b.retry = 0
	return ts, d, b
}

// TestCachedAway: the rounds written while rrdcached is away are kept and reach main.rrd
// once it is back: a file's with its next update, another's when the store is closed.
// The outage and the return are logged once each, and Write reports no error. After a
// stop the daemon has everything; after a crash the round it took just before is lost
// with its journal's buffer, which the test leaves out.
func TestCachedAway(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			ts, d, _ := cachedOutage(t)
			a := Series{ID: "a", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
			b := Series{ID: "b", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
			ts.mustPrepare(t, a)
			ts.mustPrepare(t, b)
			rounds := [][]time.Duration{rtts(1, 2), rtts(3, -1), rtts(-1, -1), rtts(4, 5), rtts(6, 7)}
			var stamps []int64
			for i, r := range rounds {
				switch i {
				case 1:
					d.Stop(sig)
				case 4:
					d.Start()
				}
				ts.clock.Set(now0 + 60*int64(i))
				stamps = append(stamps, ts.round(t, a, r).Time.Unix())
				if i < 4 { // b's kept rounds go out only when the store is closed
					ts.round(t, b, r)
				}
			}
			log := ts.log.String()
			for msg, want := range map[string]int{"rrdcached cannot be reached": 1, "rrdcached is back": 1, "rrdcached refused": 0, "lost": 0} {
				if n := strings.Count(log, msg); n != want {
					t.Errorf("%d log lines with %q, want %d:\n%s", n, msg, want, log)
				}
			}
			if !strings.Contains(log, "kept=6") {
				t.Errorf("the return does not say how many updates were kept (6):\n%s", log)
			}
			if err := ts.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			first := 0
			if sig == syscall.SIGKILL {
				first = 1
			}
			for i := first; i < len(rounds); i++ {
				waitRow(t, fmt.Sprintf("a: round %d", i), ts.out("a", "main.rrd"), stamps[i], a.Step, wantRow(rounds[i]))
				if i < 4 {
					waitRow(t, fmt.Sprintf("b: round %d", i), ts.out("b", "main.rrd"), stamps[i], b.Step, wantRow(rounds[i]))
				}
			}
		})
	}
}

// TestCachedAwayRoom: with the room for kept updates used up, further ones are dropped
// (logged once, and counted when rrdcached is back); those kept still arrive.
func TestCachedAwayRoom(t *testing.T) {
	ts, d, b := cachedOutage(t)
	se := Series{ID: "room", Step: time.Minute, Pings: 2, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	d.Kill()
	b.room = 2 * len("1699999860:0:1.000000e-03:1.000000e-03:2.000000e-03") // two updates
	var stamps []int64
	for i := range 5 {
		ts.clock.Set(now0 + 60*int64(i))
		stamps = append(stamps, ts.round(t, se, rtts(1, 2)).Time.Unix())
	}
	if n := strings.Count(ts.log.String(), "no room left"); n != 1 {
		t.Errorf("%d log lines about the full backlog, want 1:\n%s", n, ts.log.String())
	}
	if st := ts.Stats(); st.RRDCachedBacklog != 2 || st.RRDCachedDropped != 3 {
		t.Errorf("stats %+v, want a backlog of 2 and 3 dropped", st)
	}
	d.Start()
	ts.clock.Set(now0 + 300)
	ts.round(t, se, rtts(3, 4)) // unknown: it follows a gap beyond the heartbeat
	ts.clock.Set(now0 + 360)
	last := ts.round(t, se, rtts(3, 4)).Time.Unix()
	if log := ts.log.String(); !strings.Contains(log, "kept=2 dropped=3") {
		t.Errorf("the return does not count the kept and dropped updates:\n%s", log)
	}
	if st := ts.Stats(); st.RRDCachedBacklog != 0 || st.RRDCachedDropped != 3 {
		t.Errorf("stats %+v once rrdcached is back, want no backlog and 3 dropped", st)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	path := ts.out(se.ID, "main.rrd")
	waitRow(t, "the round after the outage", path, last, se.Step, wantRow(rtts(3, 4)))
	for i, st := range stamps {
		row := rrdtest.FetchRow(t, path, st, se.Step)
		if kept := i < 2; kept == math.IsNaN(row[0]) {
			t.Errorf("round %d (kept %v): row %v", i, kept, row)
		}
	}
}

// TestCachedAwayAtClose: updates still kept when the store closes with rrdcached away
// are reported lost, in one error and without a log line per file.
func TestCachedAwayAtClose(t *testing.T) {
	ts, d, _ := cachedOutage(t)
	var series []Series
	for _, id := range []string{"x", "y", "z"} {
		se := Series{ID: id, Step: time.Minute, Pings: 1, RRDTemplate: "smokeping"}
		ts.mustPrepare(t, se)
		series = append(series, se)
	}
	d.Kill()
	for i := range 2 {
		ts.clock.Set(now0 + 60*int64(i))
		for _, se := range series {
			ts.round(t, se, rtts(1))
		}
	}
	err := ts.Close()
	if err == nil || !strings.Contains(err.Error(), "4 updates of 2 files, kept while it was away, are lost") {
		t.Errorf("Close: %v, want the loss of the 4 kept updates of the other 2 files", err)
	}
	log := ts.log.String()
	if n := strings.Count(log, "flushing through rrdcached"); n != 1 || !strings.Contains(log, "2 updates kept while rrdcached was away are lost") {
		t.Errorf("want one log line for the flushes at close, with the 2 updates of its file:\n%s", log)
	}
}

// TestCachedReplayRefused: a kept update the daemon already has (its answer was lost with
// the connection, say) is dropped quietly, and what comes after it goes on.
func TestCachedReplayRefused(t *testing.T) {
	ts, _, b := cachedOutage(t)
	se := Series{ID: "r", Step: time.Minute, Pings: 1, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	first := ts.round(t, se, rtts(1)).Time.Unix()
	path := ts.out(se.ID, "main.rrd")
	line := func(sec int64, rtt string) string { return fmt.Sprintf("%d:0:%s:%s", sec, rtt, rtt) }

	b.backlog[path] = []string{line(first, "1.000000e-03"), line(first+60, "2.000000e-03")}
	ts.clock.Set(now0 + 120)
	third := ts.round(t, se, rtts(3)).Time.Unix()
	if log := ts.log.String(); strings.Contains(log, "refused") {
		t.Errorf("the update rrdcached already had is logged:\n%s", log)
	}

	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitRow(t, "the kept round", path, first+60, se.Step, wantRow(rtts(2)))
	checkRow(t, "the round after it", rrdtest.FetchRow(t, path, third, se.Step), wantRow(rtts(3)))
}

// TestCachedReplayNoFile: a kept update for a file that is gone is refused by rrdcached,
// logged by name and dropped; the round that follows goes into a new file.
func TestCachedReplayNoFile(t *testing.T) {
	ts, _, b := cachedOutage(t)
	se := Series{ID: "gone", Step: time.Minute, Pings: 1, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	path := ts.out(se.ID, "main.rrd")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	kept := fmt.Sprintf("%d:0:1.000000e-03:1.000000e-03", now0-now0%60-60)
	b.backlog[path] = []string{kept}
	ts.clock.Set(now0 + 60)
	res := ts.round(t, se, rtts(5))
	if log := ts.log.String(); strings.Count(log, "rrdcached refused an update") != 1 || !strings.Contains(log, kept) {
		t.Errorf("want one log line naming the refused update %q:\n%s", kept, log)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitRow(t, "the round after it", path, res.Time.Unix(), se.Step, wantRow(rtts(5)))
}
