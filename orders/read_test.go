package orders

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pingmachine/store/storetest"
)

// TestWalkAsWatcher reads a tree of valid, invalid and odd order files with Walk and
// with a Watcher: Walk finds the orders the Watcher hands on, and for every other file
// the very error text the Watcher logs.
func TestWalkAsWatcher(t *testing.T) {
	h := newHarness(t)
	files := map[string]string{
		"a":              validOrder("127.0.0.1"),
		"team/deep/b":    validOrder("::1"),
		"bad/yaml":       "user: alice\nstep: 300: 20\n",
		"bad/step":       invalidOrder,
		"bad/several":    "user: alice\nstep: abc\npings: 2000\nprobe: fping\nfping:\n  host: -x\n",
		"bad/empty":      "",
		"bad/big":        validOrder("127.0.0.2") + "# " + strings.Repeat("x", MaxSize) + "\n",
		"bad/noperm":     validOrder("127.0.0.3"),
		`bad/back\slash`: validOrder("127.0.0.4"),
		"team/.hidden":   validOrder("127.0.0.5"),
		"team/c.tmp":     validOrder("127.0.0.6"),
		"locked/d":       validOrder("127.0.0.7"),
		"team/empty":     "",
	}
	for id, data := range files {
		h.put(id, data)
	}
	if err := syscall.Mkfifo(h.path("bad/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"dirlink": h.path("team"), "dangling": h.path("nowhere")} {
		if err := os.Symlink(to, h.path(link)); err != nil {
			t.Fatal(err)
		}
	}
	asNobody(t, h.base)
	if err := os.Chmod(h.path("bad/noperm"), 0); err != nil {
		t.Fatal(err)
	}
	// The Watcher reports a scan only when it could read every directory.
	logged := watcherErrors(t, h.base)
	if err := os.Chmod(h.path("locked"), 0); err != nil {
		t.Fatal(err)
	}

	valid := map[string]*Order{}
	invalid := map[string]string{}
	var ids []string
	Walk(h.base, "", func(id string, o *Order, err error) {
		ids = append(ids, id)
		switch {
		case err != nil && o != nil:
			t.Errorf("%s: both an order and %v", id, err)
		case err != nil:
			invalid[id] = err.Error()
		default:
			valid[id] = o
		}
	})
	if !slices.IsSorted(ids) {
		t.Errorf("Walk went through %q, not in the order of ids", ids)
	}
	if got, want := slices.Sorted(maps.Keys(valid)), []string{"a", "team/deep/b"}; !slices.Equal(got, want) {
		t.Errorf("valid orders %q, want %q", got, want)
	}
	// A directory that cannot be read is not an order file: the Watcher logs it apart.
	locked := invalid["locked"]
	delete(invalid, "locked")
	if want := "orders/locked: cannot read the directory: open " + h.path("locked") + ": permission denied"; locked != want {
		t.Errorf("the locked directory: %q, want %q", locked, want)
	}

	if !maps.Equal(invalid, logged) {
		for _, id := range slices.Sorted(maps.Keys(logged)) {
			if invalid[id] != logged[id] {
				t.Errorf("%s:\nWalk    %q\nWatcher %q", id, invalid[id], logged[id])
			}
		}
		for id, msg := range invalid {
			if _, ok := logged[id]; !ok {
				t.Errorf("%s: Walk says %q, the Watcher nothing", id, msg)
			}
		}
	}
	// Each kind of problem is among them, so that the comparison means something.
	for id, want := range map[string]string{
		"bad/yaml":       "orders/bad/yaml: not valid YAML: line 2: mapping values are not allowed in this context",
		"bad/empty":      "orders/bad/empty: empty: expected a mapping with user, step, pings and probe",
		"bad/fifo":       "orders/bad/fifo: not a regular file but a named pipe (FIFO)",
		"bad/big":        "orders/bad/big: larger than the 65536 bytes an order may have",
		"bad/noperm":     "orders/bad/noperm: open " + h.path("bad/noperm") + ": permission denied",
		`bad/back\slash`: `orders/bad/back\slash: a backslash in the order id: the store takes none in the paths it writes`,
	} {
		if invalid[id] != want {
			t.Errorf("%s: %q, want %q", id, invalid[id], want)
		}
	}
	if n := len(invalid); n != 9 {
		t.Errorf("%d invalid files, want 9: %q", n, invalid)
	}
}

// TestWalkBelow walks below a directory, or to one order file, as check -i and status
// with an id prefix do: an ignored name or a link to a directory on the way leads to
// nothing, as for the Watcher, and so does a path that is not a clean one below orders/.
func TestWalkBelow(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"a", "ab", "team/x", "team/sub/y", "team/.hidden/z", "teamwork/w"} {
		h.put(id, validOrder("192.0.2.1"))
	}
	for link, to := range map[string]string{"dirlink": h.path("team"), "filelink": h.path("a")} {
		if err := os.Symlink(to, h.path(link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		dir  string
		want []string
	}{
		{"", []string{"a", "ab", "filelink", "team/sub/y", "team/x", "teamwork/w"}},
		{"a", []string{"a"}},
		{"team", []string{"team/sub/y", "team/x"}},
		{"team/sub", []string{"team/sub/y"}},
		{"team/x", []string{"team/x"}},
		{"filelink", []string{"filelink"}},
		{"te", nil},
		{"missing", nil},
		{"team/.hidden", nil},
		{"team/.hidden/z", nil},
		{"dirlink", nil},
		{"dirlink/x", nil},
		{"team/../a", nil},
		{"../orders/a", nil},
		{"/a", nil},
		{"team/", nil},
	} {
		var got []string
		Walk(h.base, tt.dir, func(id string, o *Order, err error) {
			if err != nil {
				t.Errorf("Walk %q: %s: %v", tt.dir, id, err)
			}
			got = append(got, id)
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("Walk %q found %q, want %q", tt.dir, got, tt.want)
		}
	}
}

// watcherErrors runs a Watcher's first scan of base and returns the error it logs for
// each invalid order.
func watcherErrors(t *testing.T, base string) map[string]string {
	t.Helper()
	var log storetest.LogBuffer
	rec := newRecorder()
	w := NewWatcher(base, rec, Options{Rescan: time.Hour, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx) }()
	storetest.WaitFor(t, "the Watcher's first scan", 5*time.Second, func() bool {
		return slices.ContainsFunc(rec.snapshot(), func(e event) bool { return e.kind == "scanned" })
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	errs := map[string]string{}
	for line := range strings.Lines(log.String()) {
		var rec struct{ Msg, ID, Err string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "invalid order" {
			errs[rec.ID] = rec.Err
		}
	}
	return errs
}

// TestReadFile reads order files anywhere, as validate does: the errors name each by the
// path given, and a directory is refused.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write(".order.tmp", validOrder("192.0.2.1"))
	if o, err := ReadFile(good); err != nil || o.FPing.Host != "192.0.2.1" {
		t.Errorf("ReadFile(%s) = %v, %v", good, o, err)
	}
	bad := write("bad", invalidOrder)
	_, want := Parse(bad, "bad", []byte(invalidOrder))
	if _, err := ReadFile(bad); err == nil || err.Error() != want.Error() {
		t.Errorf("ReadFile(%s) = %v, want %v", bad, err, want)
	}
	for path, want := range map[string]string{
		dir:                           dir + ": a directory, not an order file",
		filepath.Join(dir, "missing"): filepath.Join(dir, "missing") + ": stat " + filepath.Join(dir, "missing") + ": no such file or directory",
	} {
		_, err := ReadFile(path)
		if err == nil || err.Error() != want {
			t.Errorf("ReadFile(%s) = %v, want %q", path, err, want)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, not ErrNotExist", err)
	}
}
