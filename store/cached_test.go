package store

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startCached runs a real rrdcached for one test on a unix socket, restricted to base
// (-B -b base; absolute paths inside base are accepted). It writes files only on FLUSH
// (-w 3600), so that the tests see what the store flushes. It returns the socket.
func startCached(t *testing.T, base string) string {
	t.Helper()
	if _, err := exec.LookPath("rrdcached"); err != nil {
		t.Fatal("rrdcached is not installed: the tests need it (apt-get install rrdcached)")
	}
	root := t.TempDir()
	sock := filepath.Join(root, "sock")
	journal := filepath.Join(root, "journal")
	if err := os.Mkdir(journal, 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command("rrdcached", "-g", "-B", "-b", base, "-F", "-w", "3600", "-z", "1", "-f", "7200",
		"-j", journal, "-p", filepath.Join(root, "pid"), "-l", "unix:"+sock)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("rrdcached output:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("rrdcached did not start listening; output:\n%s", log.String())
		}
	}
}

// waitRow polls rrdtool fetch until the row at ts is the wanted one: rrdcached's
// FLUSHALL (what Close sends) starts the writes without waiting for them.
func waitRow(t *testing.T, what, path string, ts int64, step time.Duration, want []float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		row := fetchRow(t, path, ts, step)
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
	sock := startCached(t, base)
	return openStore(t, base, Options{RRDCached: "unix:" + sock})
}

func TestCachedBackend(t *testing.T) {
	ts := newCachedStore(t)
	se := Series{ID: "c/one", Step: time.Minute, Pings: 5, RRDTemplate: "smokeping"}
	ts.mustPrepare(t, se)
	path := ts.out(se.ID, "main.rrd")
	perl := filepath.Join(t.TempDir(), "perl.rrd")
	rrdtool(t, append([]string{"create", perl, "--step", "60"}, perlDefs(60, 5, "smokeping")...)...)
	want := rrdInfo(t, perl)
	got := rrdInfo(t, path)
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
	if row := fetchRow(t, path, stamps[0], se.Step); !math.IsNaN(row[0]) {
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
	rows, _ := rrdFetch(t, old, r1.Time.Unix()-60, r2.Time.Unix())
	checkRow(t, "first round in the kept file", rows[r1.Time.Unix()], wantRow(rtts(1, 2, 3)))
	checkRow(t, "second round in the kept file", rows[r2.Time.Unix()], wantRow(rtts(4, -1, 6)))
	path := ts.out(se.ID, "main.rrd")
	if info := rrdInfo(t, path); info["step"] != "300" {
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
	checkRow(t, "round in the archive", fetchRow(t, ts.arch(se.ID, "main.rrd"), r1.Time.Unix(), se.Step), wantRow(rtts(1, 2)))
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
	checkRow(t, "round before the archive", fetchRow(t, path, r1.Time.Unix(), se.Step), wantRow(rtts(1, 2)))
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
