package store

import (
	"fmt"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it hears.
type recorder struct {
	calls []string
	last  LastResult // the last one written
}

func (r *recorder) Found(id string, last *LastResult, err error) {
	r.calls = append(r.calls, fmt.Sprintf("found %s %v %v", id, last != nil, err != nil))
}

func (r *recorder) Written(res Result, last LastResult, err error) {
	r.calls = append(r.calls, fmt.Sprintf("written %s %d loss %d %v", res.ID, last.Time.Unix(), last.Loss, err != nil))
	r.last = last
}

// TestObserver checks what the Observer hears at each Prepare and Write, that what it
// hears of last_result is what a reader of the file gets, and the store's error counts.
func TestObserver(t *testing.T) {
	rec := &recorder{}
	ts := newStore(t, Options{Observer: rec})
	se := Series{ID: "a", Step: time.Minute, Pings: 3, RRDTemplate: "smokeping"}
	check := func(what string, want []string, stats Stats) {
		t.Helper()
		if !reflect.DeepEqual(rec.calls, want) {
			t.Errorf("%s: heard %q, want %q", what, rec.calls, want)
		}
		if got := ts.Stats(); got != stats {
			t.Errorf("%s: stats %+v, want %+v", what, got, stats)
		}
		rec.calls = nil
	}
	ts.mustPrepare(t, se)
	check("prepared without output", []string{"found a false false"}, Stats{})

	first := ts.round(t, se, rtts(1.23456789, -1, 3))
	if file, err := ReadLastResult(ts.out("a", "last_result")); err != nil || file != rec.last {
		t.Errorf("heard %+v, the file says %+v (%v)", rec.last, file, err)
	}
	check("a round", []string{fmt.Sprintf("written a %d loss 1 false", first.Time.Unix())}, Stats{})

	ts.clock.Set(now0 + 5) // the same step: main.rrd refuses the stamp, last_result takes it
	ts.Write(Result{ID: "a", Time: first.Time, Step: se.Step, RTTs: rtts(1, 2, 3)})
	check("main.rrd fails", []string{fmt.Sprintf("written a %d loss 0 false", first.Time.Unix())}, Stats{RRDErrors: 1})

	// A spare file that is a directory with something in it cannot be made.
	os.Remove(ts.out("a", ".last_result.spare"))
	if err := os.MkdirAll(ts.out("a", ".last_result.spare", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	ts.clock.Set(now0 + 60)
	second := Result{ID: "a", Time: Stamp(ts.clock.Now(), se.Step), Step: se.Step, RTTs: rtts(-1, -1, -1)}
	if err := ts.Write(second); err == nil {
		t.Error("Write with no way to make last_result: no error")
	}
	check("last_result fails", []string{fmt.Sprintf("written a %d loss 3 true", second.Time.Unix())}, Stats{RRDErrors: 1, LastResultErrors: 1})

	os.RemoveAll(ts.out("a", ".last_result.spare"))
	os.Remove(ts.out("a", "last_result"))
	if err := syscall.Mkfifo(ts.out("a", "last_result"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts.mustPrepare(t, se)
	check("prepared with an unreadable last_result", []string{"found a false true"}, Stats{RRDErrors: 1, LastResultErrors: 1})
	os.Remove(ts.out("a", "last_result"))
	ts.clock.Set(now0 + 120)
	ts.round(t, se, rtts(1, 2, 3))
	rec.calls = nil
	if err := ts.Archive("a"); err != nil {
		t.Fatal(err)
	}
	ts.Write(Result{ID: "a", Time: Stamp(ts.clock.Now(), se.Step), Step: se.Step, RTTs: rtts(1, 2, 3)})
	check("a round of an archived order", nil, Stats{RRDErrors: 1, LastResultErrors: 1})
	ts.mustPrepare(t, se)
	check("restored from the archive", []string{"found a true false"}, Stats{RRDErrors: 1, LastResultErrors: 1})
}
