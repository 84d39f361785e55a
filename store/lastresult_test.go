package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadLastResultRoundTrip reads back what Write leaves in last_result: the figures
// of the round, at the precision of "%.6e", and none for a round without an answer.
func TestReadLastResultRoundTrip(t *testing.T) {
	se := Series{ID: "site/a", Step: time.Minute, Pings: 5, RRDTemplate: "norrd"}
	for _, tc := range []struct {
		name             string
		rtts             []time.Duration
		loss             int
		min, median, max time.Duration
	}{
		{"all answered", rtts(0.5, 0.25, 12.5, 1, 0.75), 0, 250 * time.Microsecond, 750 * time.Microsecond, 12500 * time.Microsecond},
		{"some lost", rtts(-1, 3, -1, 1, 2), 2, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond},
		{"precision of %.6e", rtts(12.345678, -1, -1, -1, -1), 4, 12345680 * time.Nanosecond, 12345680 * time.Nanosecond, 12345680 * time.Nanosecond},
		{"all lost", rtts(-1, -1, -1, -1, -1), 5, -1, -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newStore(t, Options{})
			ts.mustPrepare(t, se)
			res := ts.round(t, se, tc.rtts)
			got, err := ReadLastResult(ts.out(se.ID, "last_result"))
			if err != nil {
				t.Fatal(err)
			}
			want := LastResult{Time: res.Time, Updated: time.Unix(now0, 0), Step: se.Step, Pings: se.Pings,
				Loss: tc.loss, Min: tc.min, Median: tc.median, Max: tc.max}
			if got != want {
				t.Errorf("ReadLastResult = %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestReadLastResultErrors(t *testing.T) {
	const good = "time: 1700000000\nupdated: 1700000075\nstep: 60\npings: 20\nloss: 1\nmin: 5.700000e-04\nmedian: 6.000000e-04\nmax: 3.100000e-03\n"
	for _, tc := range []struct {
		name, data, want string // want: the error after the file name, "" for none
	}{
		{"good", good, ""},
		{"without the last newline", strings.TrimSuffix(good, "\n"), ""},
		{"CRLF", strings.ReplaceAll(good, "\n", "\r\n"), ""},
		{"keys in another order, an extra key", "extra: 1\n" + good[strings.Index(good, "step"):] + good[:strings.Index(good, "step")], ""},
		{"plain seconds, as Perl's ssh orders", strings.Replace(good, "5.700000e-04", "0.00057", 1), ""},
		{"empty", "", "no time line"},
		{"a line missing", strings.Replace(good, "pings: 20\n", "", 1), "no pings line"},
		{"not key: value", strings.Replace(good, "loss: 1", "loss 1", 1), `line 5: expected "key: value", got "loss 1\n"`},
		{"a key twice", good + "loss: 2\n", "line 9: loss given twice"},
		{"time not a number", strings.Replace(good, "time: 1700000000", "time: soon", 1), `line 1: time: expected a whole number, got "soon"`},
		{"negative loss", strings.Replace(good, "loss: 1", "loss: -1", 1), `line 5: loss: expected a whole number, got "-1"`},
		{"RTT not a number", strings.Replace(good, "median: 6.000000e-04", "median: fast", 1), `line 7: median: expected seconds (0 to 3600) or ~, got "fast"`},
		{"RTT negative", strings.Replace(good, "max: 3.100000e-03", "max: -1e-3", 1), `line 8: max: expected seconds (0 to 3600) or ~, got "-1e-3"`},
		{"RTT not finite", strings.Replace(good, "max: 3.100000e-03", "max: NaN", 1), `line 8: max: expected seconds (0 to 3600) or ~, got "NaN"`},
		{"step 0", strings.Replace(good, "step: 60", "step: 0", 1), "step: 0 seconds out of range"},
		{"pings 0", strings.Replace(good, "pings: 20", "pings: 0", 1), "pings: 0 out of range"},
		{"more lost than sent", strings.Replace(good, "loss: 1", "loss: 21", 1), "loss: 21 of 20 pings"},
		{"too long", good + strings.Repeat("#", maxLastResult), "longer than the 4096 bytes a last_result may have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "last_result")
			if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadLastResult(path)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("ReadLastResult: %v", err)
			case tc.want != "" && (err == nil || err.Error() != path+": "+tc.want):
				t.Errorf("ReadLastResult: %v\nwant %s: %s", err, path, tc.want)
			}
		})
	}
}

// TestReadLastResultFiles: a missing file is fs.ErrNotExist; a link or a FIFO in its
// place is not read (a FIFO would block).
func TestReadLastResultFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadLastResult(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLastResult(fifo); err == nil || err.Error() != fifo+": not a regular file" {
		t.Errorf("FIFO: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLastResult(link); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("link: %v, want ELOOP", err)
	}
}
