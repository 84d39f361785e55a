package view_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/orders"
	"pingmachine/store"
	"pingmachine/store/storetest"
	"pingmachine/store/view"
	"pingmachine/store/view/viewtest"
)

var now = time.Unix(1_700_000_000, 0)

// sample reads the sample tree as it is at now.
func sample(t *testing.T) (*viewtest.Tree, *view.View) {
	t.Helper()
	tree := viewtest.New(t)
	tree.Sample(now)
	v, err := view.Read(tree.Base)
	if err != nil {
		t.Fatal(err)
	}
	v.Time = now
	return tree, v
}

// TestReadSample reads an order of each kind: every probe, a nested id, no result yet,
// a stale result, an unreadable one, an invalid order.
func TestReadSample(t *testing.T) {
	tree, v := sample(t)
	type want struct {
		state         view.State
		target        string
		iface, source string
		loss          int
		median        time.Duration
		age           time.Duration
	}
	wants := map[string]want{
		"bad/pings":      {state: view.Invalid},
		"http/intranet":  {state: view.OK, target: "https://intranet.example.com/health", median: 45 * time.Millisecond, age: 100 * time.Second},
		"new":            {state: view.NoResult, target: "192.0.2.3"},
		"odd":            {state: view.Unreadable, target: "192.0.2.4"},
		"scion/pping1":   {state: view.Stale, target: "1-ff00:0:110,[192.0.2.2]", source: "1-ff00:0:111,[192.0.2.9]", median: 31 * time.Millisecond, age: 10 * time.Minute},
		"scion/sping1":   {state: view.OK, target: "1-ff00:0:110,[192.0.2.1]", loss: 10, median: -1, age: 10 * time.Second},
		"site/zurich/gw": {state: view.OK, target: "2001:db8::1", loss: 2, median: 25 * time.Millisecond, age: 30 * time.Second},
		"web1":           {state: view.OK, target: "192.0.2.1", iface: "eth0", source: "192.0.2.9", loss: 1, median: 12300 * time.Microsecond, age: 12 * time.Second},
	}
	var ids []string
	for i := range v.Orders {
		o := &v.Orders[i]
		ids = append(ids, o.ID)
		w, ok := wants[o.ID]
		if !ok {
			t.Errorf("unexpected order %s", o.ID)
			continue
		}
		if s := o.State(now); s != w.state {
			t.Errorf("%s: state %s, want %s", o.ID, s, w.state)
		}
		var target string
		if o.Order != nil {
			target = o.Order.Destination()
		}
		iface, source := o.Via()
		if target != w.target || iface != w.iface || source != w.source {
			t.Errorf("%s: target %q via %q from %q, want %q via %q from %q", o.ID, target, iface, source, w.target, w.iface, w.source)
		}
		if r := o.Result; r != nil && (r.Loss != w.loss || r.Median != w.median || o.Age(now) != w.age) {
			t.Errorf("%s: loss %d, median %v, age %v; want %d, %v, %v", o.ID, r.Loss, r.Median, o.Age(now), w.loss, w.median, w.age)
		}
		if (o.Result != nil) != (w.age != 0) {
			t.Errorf("%s: result %+v", o.ID, o.Result)
		}
	}
	if want := []string{"bad/pings", "http/intranet", "new", "odd", "scion/pping1", "scion/sping1", "site/zurich/gw", "web1"}; !slices.Equal(ids, want) {
		t.Errorf("orders %q, want %q", ids, want)
	}
	bad := v.Orders[0]
	var perr *orders.Error
	if !errors.As(bad.Err, &perr) || bad.Err.Error() != `orders/bad/pings: line 3: pings: expected a whole number of pings, got "two"` {
		t.Errorf("bad/pings: %v, want the parser's *orders.Error", bad.Err)
	}
	odd := v.Orders[3]
	if want := filepath.Join(tree.Base, "output/odd/last_result") + `: line 1: time: expected a whole number, got "soon"`; odd.ResultErr == nil || odd.ResultErr.Error() != want {
		t.Errorf("odd: %v, want %s", odd.ResultErr, want)
	}
	if v.Daemon.Running || v.Daemon.Err != nil || v.Daemon.Lock != filepath.Join(tree.Base, ".lock") {
		t.Errorf("Daemon = %+v, want not running", v.Daemon)
	}
}

// TestStale: an order is stale when its last result is more than two steps old, of its
// order's step, or of the result's own when the order file is not valid.
func TestStale(t *testing.T) {
	result := &store.LastResult{Updated: now, Step: 10 * time.Second, Pings: 1, Loss: 1, Min: -1, Median: -1, Max: -1}
	valid := view.Order{ID: "x", Order: &orders.Order{Step: time.Minute}, Result: result}
	invalid := view.Order{ID: "x", Err: errors.New("invalid"), Result: result}
	for _, tt := range []struct {
		age          time.Duration
		valid, stale bool // whether the valid order is stale, and the invalid one would be
	}{
		{0, false, false},
		{20 * time.Second, false, false},
		{21*time.Second - time.Nanosecond, false, false}, // 20 s in whole seconds
		{21 * time.Second, false, true},
		{2 * time.Minute, false, true},
		{2*time.Minute + 999*time.Millisecond, false, true},
		{2*time.Minute + time.Second, true, true},
		{-time.Hour, false, false},
	} {
		if got := valid.State(now.Add(tt.age)) == view.Stale; got != tt.valid {
			t.Errorf("age %v: stale %v, want %v", tt.age, got, tt.valid)
		}
		if got := invalid.Age(now.Add(tt.age)) > 2*invalid.Step(); got != tt.stale {
			t.Errorf("age %v, invalid order: past two steps %v, want %v", tt.age, got, tt.stale)
		}
		if s := invalid.State(now.Add(tt.age)); s != view.Invalid {
			t.Errorf("invalid order: %s", s)
		}
	}
}

// TestReadPrefixes reads the orders that prefixes select, each once.
func TestReadPrefixes(t *testing.T) {
	tree := viewtest.New(t)
	tree.Sample(now)
	for _, tt := range []struct {
		prefixes []string
		want     []string
	}{
		{[]string{"scion"}, []string{"scion/pping1", "scion/sping1"}},
		{[]string{"scion/", "web1"}, []string{"scion/pping1", "scion/sping1", "web1"}},
		{[]string{"scion", "scion/sping1"}, []string{"scion/pping1", "scion/sping1"}},
		{[]string{"site/zurich/gw"}, []string{"site/zurich/gw"}},
		{[]string{"sc"}, nil},
		{[]string{"missing"}, nil},
	} {
		v, err := view.Read(tree.Base, tt.prefixes...)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range v.Orders {
			ids = append(ids, o.ID)
			if o.Result == nil && o.ID != "new" {
				t.Errorf("%v: %s read without its result", tt.prefixes, o.ID)
			}
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("Read(%q) = %q, want %q", tt.prefixes, ids, tt.want)
		}
	}
}

func TestSelects(t *testing.T) {
	for _, tt := range []struct {
		prefix, id string
		want       bool
	}{
		{"", "a/b", true},
		{"a", "a", true},
		{"a", "a/b", true},
		{"a/", "a/b/c", true},
		{"a/b", "a/b", true},
		{"a", "ab", false},
		{"a/b", "a", false},
		{"a/", "a", true},
	} {
		if got := view.Selects(tt.prefix, tt.id); got != tt.want {
			t.Errorf("Selects(%q, %q) = %v", tt.prefix, tt.id, got)
		}
	}
}

// TestReadBase: a base directory that cannot be read is an error; one without orders/
// has no orders.
func TestReadBase(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for base, want := range map[string]string{
		filepath.Join(dir, "missing"): "reading the base directory: stat " + filepath.Join(dir, "missing") + ": no such file or directory",
		file:                          "reading the base directory: " + file + " is not a directory",
	} {
		if _, err := view.Read(base); err == nil || err.Error() != want {
			t.Errorf("Read(%s) = %v, want %s", base, err, want)
		}
	}
	if _, err := view.Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing base: %v, want fs.ErrNotExist", err)
	}
	v, err := view.Read(dir)
	if err != nil || len(v.Orders) != 0 {
		t.Errorf("Read of an empty base = %+v, %v", v, err)
	}
}

// TestReadWritesNothing: reading leaves the tree as it was, down to the modification
// times, and makes no .lock.
func TestReadWritesNothing(t *testing.T) {
	tree := viewtest.New(t)
	tree.Sample(now)
	before := snapshot(t, tree.Base)
	if _, err := view.Read(tree.Base); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, tree.Base)
	if !slices.Equal(before, after) {
		t.Errorf("the tree changed:\n%q\n%q", before, after)
	}
	if _, err := os.Stat(filepath.Join(tree.Base, ".lock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf(".lock: %v", err)
	}
}

func snapshot(t *testing.T, base string) []string {
	var s []string
	for _, p := range storetest.Tree(t, base) {
		fi, err := os.Lstat(filepath.Join(base, p))
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, p+" "+fi.ModTime().String()+" "+fi.Mode().String())
	}
	return s
}

// TestDaemon tells a daemon's lock, held by another open file description or by another
// process, from none, and never keeps the lock.
func TestDaemon(t *testing.T) {
	base := t.TempDir()
	lock := filepath.Join(base, ".lock")
	running := func() bool {
		t.Helper()
		v, err := view.Read(base)
		if err != nil {
			t.Fatal(err)
		}
		if v.Daemon.Err != nil {
			t.Fatal(v.Daemon.Err)
		}
		return v.Daemon.Running
	}
	// free checks that no lock is left behind: a daemon could take it now.
	free := func() {
		t.Helper()
		f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Errorf("the lock is taken after Read: %v", err)
		}
	}
	if running() {
		t.Error("running without a .lock")
	}
	free()
	if running() {
		t.Error("running with a .lock nobody holds")
	}
	free()

	hold := func(how int) func() {
		f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		return func() { f.Close() }
	}
	release := hold(unix.LOCK_EX)
	if !running() {
		t.Error("not running while another open file holds the lock, as the daemon does")
	}
	release()
	free()
	// Another reader at the same time is no daemon.
	release = hold(unix.LOCK_SH)
	if running() {
		t.Error("running while another reader holds a shared lock")
	}
	release()
	free()

	// Another process, as the daemon is.
	cmd := exec.Command("flock", "--exclusive", lock, "sleep", "60")
	// In a group of its own: sleep, which holds the lock too, ends with flock.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("flock(1) from util-linux: %v", err)
	}
	storetest.WaitFor(t, "flock(1) to take the lock", 5*time.Second, running)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	storetest.WaitFor(t, "the lock to be free once the process that held it ended", 5*time.Second, func() bool { return !running() })
	free()
}

// TestDaemonUnknown: a lock that cannot be opened (a link to itself) is neither running
// nor not.
func TestDaemonUnknown(t *testing.T) {
	base := t.TempDir()
	if err := os.Symlink(".lock", filepath.Join(base, ".lock")); err != nil {
		t.Fatal(err)
	}
	v, err := view.Read(base)
	if err != nil {
		t.Fatal(err)
	}
	if v.Daemon.Running || v.Daemon.Err == nil {
		t.Errorf("Daemon = %+v, want an error", v.Daemon)
	}
	if got := v.Daemon.String(); !strings.HasPrefix(got, "daemon: unknown (") {
		t.Errorf("Daemon.String() = %q", got)
	}
}
