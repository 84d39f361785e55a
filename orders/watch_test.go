package orders

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"pingmachine/pinger/pingtest"
	"pingmachine/store/storetest"
)

// event is one call to a Handler.
type event struct {
	kind  string // "update", "remove" or "scanned"
	id    string
	order *Order
	why   Reason
	ids   map[string]bool
}

func (e event) String() string {
	switch e.kind {
	case "update":
		return "update " + dump(e.order)
	case "remove":
		return fmt.Sprintf("remove %s (%v)", e.id, e.why)
	}
	return fmt.Sprintf("scanned %v", slices.Sorted(maps.Keys(e.ids)))
}

// recorder is a Handler that keeps every call and signals each one.
type recorder struct {
	mu     sync.Mutex
	events []event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Update(o *Order)              { r.add(event{kind: "update", id: o.ID, order: o}) }
func (r *recorder) Remove(id string, why Reason) { r.add(event{kind: "remove", id: id, why: why}) }
func (r *recorder) Scanned(ids map[string]bool) {
	r.add(event{kind: "scanned", ids: maps.Clone(ids)})
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// harness runs a Watcher on a temporary base directory.
type harness struct {
	t                      *testing.T
	base, orders, telegraf string
	rec                    *recorder
	log                    *storetest.LogBuffer
	w                      *Watcher
	syncs                  int
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	base := t.TempDir()
	h := &harness{
		t:        t,
		base:     base,
		orders:   filepath.Join(base, "orders"),
		telegraf: filepath.Join(base, "telegraf"),
		rec:      newRecorder(),
		log:      &storetest.LogBuffer{},
	}
	for _, d := range []string{h.orders, h.telegraf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// start runs the watcher until the test ends. Unset Settle and Rescan get short test
// values; Rescan defaults to an hour so that file system events alone are tested.
func (h *harness) start(opt Options) {
	h.t.Helper()
	if opt.Settle == 0 {
		opt.Settle = 20 * time.Millisecond
	}
	if opt.Rescan == 0 {
		opt.Rescan = time.Hour
	}
	opt.Logger = slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.w = NewWatcher(h.base, h.rec, opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Watch(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Watch returned %v", err)
			}
		case <-time.After(5 * time.Second):
			h.t.Error("Watch did not return after its context was cancelled")
		}
	})
	h.waitScans(1)
}

func validOrder(host string) string {
	return "user: u\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: " + host + "\n"
}

const invalidOrder = "user: u\nstep: abc\npings: 20\nprobe: fping\nfping:\n  host: h\n"

func (h *harness) path(id string) string {
	return filepath.Join(h.orders, filepath.FromSlash(id))
}

// put writes an order as clients do: a hidden temporary file renamed into place.
func (h *harness) put(id, data string) {
	h.t.Helper()
	path := h.path(id)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		h.t.Fatal(err)
	}
}

// writeFile writes a file below base in place, making its directory.
func (h *harness) writeFile(rel, data string) {
	h.t.Helper()
	path := filepath.Join(h.base, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) chtimes(id string, mtime time.Time) {
	h.t.Helper()
	if err := os.Chtimes(h.path(id), mtime, mtime); err != nil {
		h.t.Fatal(err)
	}
}

// wait waits up to 5 s for cond to hold on the events so far.
func (h *harness) wait(what string, cond func([]event) bool) []event {
	h.t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		evs := h.rec.snapshot()
		if cond(evs) {
			return evs
		}
		select {
		case <-h.rec.notify:
		case <-deadline.C:
			h.t.Fatalf("timed out waiting for %s; events:\n%s\nthe watcher's log:\n%s", what, format(evs), h.log)
		}
	}
}

func format(evs []event) string {
	var b strings.Builder
	for i, e := range evs {
		fmt.Fprintf(&b, "  %d: %v\n", i, e)
	}
	return b.String()
}

func updates(evs []event, id string) []*Order {
	var list []*Order
	for _, e := range evs {
		if e.kind == "update" && e.id == id {
			list = append(list, e.order)
		}
	}
	return list
}

func removes(evs []event, id string) []Reason {
	var rs []Reason
	for _, e := range evs {
		if e.kind == "remove" && e.id == id {
			rs = append(rs, e.why)
		}
	}
	return rs
}

func scans(evs []event) []map[string]bool {
	var s []map[string]bool
	for _, e := range evs {
		if e.kind == "scanned" {
			s = append(s, e.ids)
		}
	}
	return s
}

// waitUpdates waits for the n-th Update of id and returns it.
func (h *harness) waitUpdates(id string, n int) *Order {
	h.t.Helper()
	evs := h.wait(fmt.Sprintf("update %d of %s", n, id), func(evs []event) bool { return len(updates(evs, id)) >= n })
	return updates(evs, id)[n-1]
}

func (h *harness) waitRemove(id string, why Reason) {
	h.t.Helper()
	h.wait(fmt.Sprintf("remove %s (%v)", id, why), func(evs []event) bool { return slices.Contains(removes(evs, id), why) })
}

func (h *harness) waitScans(n int) []event {
	h.t.Helper()
	return h.wait(fmt.Sprintf("scan %d", n), func(evs []event) bool { return len(scans(evs)) >= n })
}

// sync returns once the watcher has dealt with every change made before it was called:
// it writes a new order, waits for its Update (its events queue behind the earlier
// ones, or a scan found it, which saw the earlier changes too), then asks for a scan and
// waits for it. Scanned is never called in the middle of handling a batch of events.
func (h *harness) sync() []event {
	h.t.Helper()
	h.syncs++
	id := fmt.Sprintf("zz-sync-%d", h.syncs)
	h.put(id, validOrder("sync.example"))
	evs := h.wait("update of "+id, func(evs []event) bool { return len(updates(evs, id)) > 0 })
	after := slices.IndexFunc(evs, func(e event) bool { return e.kind == "update" && e.id == id })
	h.w.Rescan()
	return h.wait("scan after "+id, func(evs []event) bool {
		return slices.ContainsFunc(evs[after+1:], func(e event) bool { return e.kind == "scanned" })
	})
}

// withoutSync filters out the sync orders.
func withoutSync(evs []event) []event {
	var r []event
	for _, e := range evs {
		if !strings.HasPrefix(e.id, "zz-sync-") {
			r = append(r, e)
		}
	}
	return r
}

func (h *harness) exists(id string) bool {
	h.t.Helper()
	_, err := os.Stat(h.path(id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.t.Fatal(err)
	}
	return err == nil
}

func setOf(ids ...string) map[string]bool {
	m := make(map[string]bool)
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestWatchInitialScan(t *testing.T) {
	h := newHarness(t)
	h.put("a", validOrder("a.example"))
	h.put("app/x", validOrder("x.example"))
	h.put("app/deep/er/y", validOrder("y.example"))
	h.put("bad", invalidOrder)
	h.put("app/bad2", "not: [yaml\n")
	h.writeFile("orders/.hidden", validOrder("hidden.example"))
	h.writeFile("orders/app/z.tmp", validOrder("tmp.example"))
	h.writeFile("orders/y~", validOrder("tilde.example"))
	h.writeFile("orders/app/.y.swp", validOrder("swp.example"))
	h.writeFile("orders/.git/objects/o", validOrder("git.example"))
	h.writeFile("orders/app/.cache/c", validOrder("cache.example"))
	h.writeFile("orders/.x.tmp", validOrder("x.example"))
	if err := os.Mkdir(filepath.Join(h.orders, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.start(Options{})

	evs := h.rec.snapshot()
	first := slices.IndexFunc(evs, func(e event) bool { return e.kind == "scanned" })
	got := map[string]string{}
	for _, e := range evs[:first] {
		if e.kind != "update" {
			t.Errorf("unexpected %v before the first scan", e)
			continue
		}
		if _, dup := got[e.id]; dup {
			t.Errorf("%s updated twice", e.id)
		}
		got[e.id] = e.order.FPing.Host
	}
	want := map[string]string{"a": "a.example", "app/x": "x.example", "app/deep/er/y": "y.example"}
	if !maps.Equal(got, want) {
		t.Errorf("initial updates (id: host) = %v, want %v", got, want)
	}
	if ids, want := evs[first].ids, setOf("a", "app/x", "app/deep/er/y", "bad", "app/bad2"); !maps.Equal(ids, want) {
		t.Errorf("Scanned(%v), want %v", ids, want)
	}
	if o := updates(evs, "app/deep/er/y")[0]; o.ID != "app/deep/er/y" || o.User != "u" || o.Step != 300*time.Second {
		t.Errorf("order %s", dump(o))
	}

	// Later scans report the same orders and update nothing that did not change.
	evs = withoutSync(h.sync())
	for _, e := range evs[first+1:] {
		if e.kind != "scanned" {
			t.Errorf("unexpected %v after the first scan", e)
		}
	}
	last := scans(evs)[len(scans(evs))-1]
	if want := setOf("a", "app/x", "app/deep/er/y", "bad", "app/bad2", "zz-sync-1"); !maps.Equal(last, want) {
		t.Errorf("last Scanned(%v), want %v", last, want)
	}

	// Invalid files are logged once, with the file and the reason.
	log := h.log.String()
	if n := strings.Count(log, `msg="invalid order"`); n != 2 {
		t.Errorf("%d invalid orders logged, want 2:\n%s", n, log)
	}
	for _, w := range []string{"orders/bad: line 2: step: expected a whole number", "orders/app/bad2: not valid YAML"} {
		if !strings.Contains(log, w) {
			t.Errorf("log does not mention %q:\n%s", w, log)
		}
	}
}

func TestWatchNewOrder(t *testing.T) {
	h := newHarness(t)
	h.start(Options{})

	h.put("new", validOrder("new.example"))
	if o := h.waitUpdates("new", 1); o.FPing.Host != "new.example" || o.ID != "new" {
		t.Errorf("update %s", dump(o))
	}
	// A temporary file still being written is not an order.
	h.writeFile("orders/.slow.tmp", validOrder("slow.example"))
	h.writeFile("orders/slow.tmp", validOrder("slow.example"))
	h.writeFile("orders/slow~", validOrder("slow.example"))
	evs := withoutSync(h.sync())
	for _, e := range evs {
		if e.kind == "update" && e.id != "new" || e.kind == "remove" {
			t.Errorf("unexpected %v", e)
		}
		for id := range e.ids {
			if id != "new" && !strings.HasPrefix(id, "zz-sync-") {
				t.Errorf("unexpected %v", e)
			}
		}
	}
	if n := len(updates(evs, "new")); n != 1 {
		t.Errorf("%d updates of new, want 1", n)
	}
}

func TestWatchNewSubdirectory(t *testing.T) {
	h := newHarness(t)
	h.start(Options{})

	// A directory made while running, with a file written in place at once.
	h.writeFile("orders/grp/deeper/x", validOrder("x.example"))
	if o := h.waitUpdates("grp/deeper/x", 1); o.FPing.Host != "x.example" {
		t.Errorf("update %s", dump(o))
	}
	// The new directories are watched: a later file in them is seen.
	h.put("grp/deeper/y", validOrder("y.example"))
	h.waitUpdates("grp/deeper/y", 1)
	h.put("grp/z", validOrder("z.example"))
	h.waitUpdates("grp/z", 1)

	// A tree prepared in a hidden directory and renamed into place.
	h.writeFile("orders/.staging/a", validOrder("a.example"))
	h.writeFile("orders/.staging/sub/b", validOrder("b.example"))
	if err := os.Rename(filepath.Join(h.orders, ".staging"), filepath.Join(h.orders, "moved")); err != nil {
		t.Fatal(err)
	}
	h.waitUpdates("moved/a", 1)
	h.waitUpdates("moved/sub/b", 1)
	h.put("moved/sub/c", validOrder("c.example"))
	h.waitUpdates("moved/sub/c", 1)

	evs := withoutSync(h.sync())
	for _, e := range evs {
		if e.kind == "update" && strings.Contains(e.id, "staging") || e.kind == "remove" {
			t.Errorf("unexpected %v", e)
		}
	}
	for _, id := range []string{"grp/deeper/x", "grp/deeper/y", "grp/z", "moved/a", "moved/sub/b", "moved/sub/c"} {
		if n := len(updates(evs, id)); n != 1 {
			t.Errorf("%d updates of %s, want 1", n, id)
		}
	}
}

func TestWatchEdit(t *testing.T) {
	h := newHarness(t)
	h.put("e", validOrder("one.example"))
	h.start(Options{})
	h.waitUpdates("e", 1)

	// Edited in place.
	h.writeFile("orders/e", validOrder("two.example"))
	if o := h.waitUpdates("e", 2); o.FPing.Host != "two.example" {
		t.Errorf("second update %s", dump(o))
	}

	// Touched: only the mtime changes.
	later := time.Now().Add(5 * time.Second)
	h.chtimes("e", later)
	h.sync()
	// The same content written again, in place and by rename.
	h.writeFile("orders/e", validOrder("two.example"))
	h.sync()
	h.put("e", validOrder("two.example"))
	evs := h.sync()
	if n := len(updates(evs, "e")); n != 2 {
		t.Errorf("%d updates of e after touching and rewriting it, want 2:\n%s", n, format(evs))
	}

	// A new step by rename.
	h.put("e", strings.Replace(validOrder("two.example"), "step: 300", "step: 60", 1))
	if o := h.waitUpdates("e", 3); o.Step != time.Minute || o.FPing.Host != "two.example" {
		t.Errorf("third update %s", dump(o))
	}
	evs = h.sync()
	if rs := removes(evs, "e"); len(rs) != 0 {
		t.Errorf("edited order removed: %v", rs)
	}
	if n := len(updates(evs, "e")); n != 3 {
		t.Errorf("%d updates of e, want 3", n)
	}
}

func TestWatchInvalid(t *testing.T) {
	h := newHarness(t)
	h.put("bad", invalidOrder)
	h.put("good", validOrder("good.example"))
	h.start(Options{})
	h.waitUpdates("good", 1)

	// Another invalid version: still nothing.
	h.put("bad", "user: u\n")
	evs := h.sync()
	if n := len(updates(evs, "bad")); n != 0 {
		t.Fatalf("invalid order updated:\n%s", format(evs))
	}
	// Fixed.
	h.put("bad", validOrder("fixed.example"))
	if o := h.waitUpdates("bad", 1); o.FPing.Host != "fixed.example" {
		t.Errorf("update %s", dump(o))
	}

	// A valid order made invalid goes on: no Remove, no Update.
	h.writeFile("orders/good", "user: u\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: -bad\n")
	evs = h.sync()
	if rs := removes(evs, "good"); len(rs) != 0 {
		t.Errorf("order made invalid was removed: %v", rs)
	}
	if n := len(updates(evs, "good")); n != 1 {
		t.Errorf("%d updates of good, want 1", n)
	}
	if log := h.log.String(); !strings.Contains(log, "the previous version goes on") || !strings.Contains(log, `orders/good: line 6: fping.host: \"-bad\" is neither`) {
		t.Errorf("log does not tell that good is invalid:\n%s", log)
	}
	// Fixed again, with other values.
	h.writeFile("orders/good", validOrder("better.example"))
	if o := h.waitUpdates("good", 2); o.FPing.Host != "better.example" {
		t.Errorf("update %s", dump(o))
	}
	// An invalid file that is deleted is reported too: its output may need archiving.
	h.put("bad2", invalidOrder)
	h.sync()
	if err := os.Remove(h.path("bad2")); err != nil {
		t.Fatal(err)
	}
	h.waitRemove("bad2", Deleted)
}

func TestWatchDelete(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"d1", "grp/a", "grp/sub/b", "keep", "r1", "mv"} {
		h.put(id, validOrder("h.example"))
	}
	h.put("grp/invalid", invalidOrder)
	h.start(Options{})

	if err := os.Remove(h.path("d1")); err != nil {
		t.Fatal(err)
	}
	h.waitRemove("d1", Deleted)

	if err := os.RemoveAll(filepath.Join(h.orders, "grp")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"grp/a", "grp/sub/b", "grp/invalid"} {
		h.waitRemove(id, Deleted)
	}

	// A directory moved out of the tree: one event names the directory only.
	for _, id := range []string{"out/a", "out/sub/b"} {
		h.put(id, validOrder("h.example"))
		h.waitUpdates(id, 1)
	}
	if err := os.Rename(filepath.Join(h.orders, "out"), filepath.Join(h.base, "trash")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"out/a", "out/sub/b"} {
		h.waitRemove(id, Deleted)
	}

	// Renamed: the old id goes, the new one comes.
	if err := os.Rename(h.path("r1"), h.path("r2")); err != nil {
		t.Fatal(err)
	}
	h.waitRemove("r1", Deleted)
	h.waitUpdates("r2", 1)
	// Renamed to a hidden name: gone.
	if err := os.Rename(h.path("mv"), h.path(".mv.old")); err != nil {
		t.Fatal(err)
	}
	h.waitRemove("mv", Deleted)

	evs := h.sync()
	for _, id := range []string{"d1", "grp/a", "grp/sub/b", "grp/invalid", "out/a", "out/sub/b", "r1", "mv"} {
		if rs := removes(evs, id); len(rs) != 1 {
			t.Errorf("removes of %s: %v, want one", id, rs)
		}
	}
	for _, id := range []string{"keep", "r2"} {
		if rs := removes(evs, id); len(rs) != 0 {
			t.Errorf("%s removed: %v", id, rs)
		}
	}
	last := scans(evs)[len(scans(evs))-1]
	if want := setOf("keep", "r2", "zz-sync-1"); !maps.Equal(last, want) {
		t.Errorf("last Scanned(%v), want %v", last, want)
	}

	// A deleted order that comes back is a new order.
	h.put("d1", validOrder("back.example"))
	if o := h.waitUpdates("d1", 2); o.FPing.Host != "back.example" {
		t.Errorf("update %s", dump(o))
	}
}

func TestWatchTelegraf(t *testing.T) {
	own := "measurement_name: own\ntags:\n  a: 1\n"
	ownT := Telegraf{Measurement: "own", Tags: map[string]string{"a": "1"}}
	h := newHarness(t)
	h.put("app/t", validOrder("t.example")+own)
	h.put("app/u", validOrder("u.example")+own)
	h.put("app/w", validOrder("w.example")+own)
	h.put("new/v", validOrder("v.example")+own)
	h.writeFile("telegraf/app/u", "measurement_name: tf\ntags: {site: zrh}\n")
	h.writeFile("telegraf/app/w", "tags: [broken]\n")
	h.start(Options{})

	check := func(o *Order, want Telegraf) {
		t.Helper()
		if o.Telegraf.Measurement != want.Measurement || !maps.Equal(o.Telegraf.Tags, want.Tags) {
			t.Errorf("%s: telegraf %+v, want %+v", o.ID, o.Telegraf, want)
		}
	}
	check(h.waitUpdates("app/t", 1), ownT)
	check(h.waitUpdates("app/u", 1), Telegraf{Measurement: "tf", Tags: map[string]string{"site": "zrh"}})
	check(h.waitUpdates("app/w", 1), ownT)
	check(h.waitUpdates("new/v", 1), ownT)
	if log := h.log.String(); !strings.Contains(log, "ignoring invalid telegraf file") || !strings.Contains(log, "telegraf/app/w") {
		t.Errorf("invalid telegraf file not logged:\n%s", log)
	}

	// Created while running: it replaces the order's own settings.
	h.writeFile("telegraf/app/t", "measurement_name: file\n")
	check(h.waitUpdates("app/t", 2), Telegraf{Measurement: "file"})
	// Changed.
	h.writeFile("telegraf/app/t", "measurement_name: file2\ntags: {b: x}\n")
	check(h.waitUpdates("app/t", 3), Telegraf{Measurement: "file2", Tags: map[string]string{"b": "x"}})
	// Made invalid: the order's own settings again.
	h.writeFile("telegraf/app/t", "measurement_name: [\n")
	check(h.waitUpdates("app/t", 4), ownT)
	// Valid once more, then deleted: own settings.
	h.writeFile("telegraf/app/t", "measurement_name: file3\n")
	check(h.waitUpdates("app/t", 5), Telegraf{Measurement: "file3"})
	if err := os.Remove(filepath.Join(h.telegraf, "app", "t")); err != nil {
		t.Fatal(err)
	}
	check(h.waitUpdates("app/t", 6), ownT)

	// In a telegraf directory made while running.
	h.writeFile("telegraf/new/v", "measurement_name: newdir\n")
	check(h.waitUpdates("new/v", 2), Telegraf{Measurement: "newdir"})

	// Fixing app/w's file applies it.
	h.writeFile("telegraf/app/w", "measurement_name: fixed\n")
	check(h.waitUpdates("app/w", 2), Telegraf{Measurement: "fixed"})

	// A telegraf file without an order makes none.
	h.writeFile("telegraf/ghost", "measurement_name: g\n")
	evs := h.sync()
	for _, e := range evs {
		if e.id == "ghost" || e.kind == "remove" {
			t.Errorf("unexpected %v", e)
		}
		if e.kind == "scanned" && e.ids["ghost"] {
			t.Errorf("telegraf file taken for an order: %v", e)
		}
	}
	for id, n := range map[string]int{"app/t": 6, "app/u": 1, "app/w": 2, "new/v": 2} {
		if got := len(updates(evs, id)); got != n {
			t.Errorf("%d updates of %s, want %d", got, id, n)
		}
	}
}

// The clock of the expiry tests: T is when the orders were last refreshed.
var T = time.Unix(1_700_000_000, 0)

func TestWatchExpiry(t *testing.T) {
	h := newHarness(t)
	h.put("old", validOrder("old.example"))
	h.put("dir/oldbad", invalidOrder)
	h.put("edge", validOrder("edge.example"))
	h.put("later", validOrder("later.example"))
	h.chtimes("old", T.Add(-time.Second))
	h.chtimes("dir/oldbad", T.Add(-time.Second))
	h.chtimes("edge", T)
	h.chtimes("later", T)
	// The clock stands MaxAge after T: edge is exactly MaxAge old.
	h.start(Options{Now: func() time.Time { return T.Add(3660 * time.Second) }})

	evs := h.rec.snapshot()
	first := slices.IndexFunc(evs, func(e event) bool { return e.kind == "scanned" })
	for _, id := range []string{"old", "dir/oldbad"} {
		if rs := removes(evs[:first], id); !slices.Equal(rs, []Reason{Expired}) {
			t.Errorf("%s: removes %v, want [expired]", id, rs)
		}
		if n := len(updates(evs, id)); n != 0 {
			t.Errorf("expired %s updated", id)
		}
		if h.exists(id) {
			t.Errorf("expired %s still on disk", id)
		}
	}
	for _, id := range []string{"edge", "later"} {
		if n := len(updates(evs[:first], id)); n != 1 {
			t.Errorf("%d updates of %s, want 1", n, id)
		}
		if !h.exists(id) {
			t.Errorf("%s removed", id)
		}
	}
	if want := setOf("edge", "later"); !maps.Equal(evs[first].ids, want) {
		t.Errorf("Scanned(%v), want %v", evs[first].ids, want)
	}

	// Made older while running.
	h.chtimes("later", T.Add(-time.Second))
	h.waitRemove("later", Expired)
	// Remove comes before the file's deletion; sync waits for the watcher to finish.
	evs = h.sync()
	if h.exists("later") {
		t.Error("expired later still on disk")
	}
	for id, want := range map[string][]Reason{"old": {Expired}, "dir/oldbad": {Expired}, "later": {Expired}, "edge": nil} {
		if rs := removes(evs, id); !slices.Equal(rs, want) {
			t.Errorf("%s: removes %v, want %v", id, rs, want)
		}
	}
	if !h.exists("edge") {
		t.Error("edge removed")
	}
	if log := h.log.String(); !strings.Contains(log, "archiving old order") {
		t.Errorf("expiry not logged:\n%s", log)
	}
}

// The periodic scan finds changes by itself and expires orders as the clock moves on.
func TestWatchPeriodicRescan(t *testing.T) {
	var now atomic.Int64
	now.Store(T.Add(3600 * time.Second).UnixNano())
	h := newHarness(t)
	h.put("p", validOrder("p.example"))
	h.put("q", validOrder("q.example"))
	h.chtimes("p", T)
	h.chtimes("q", T.Add(10*time.Second))
	h.start(Options{Rescan: 200 * time.Millisecond, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	h.waitUpdates("p", 1)
	h.waitUpdates("q", 1)

	// Scans come without being asked for.
	h.waitScans(3)

	now.Store(T.Add(3661 * time.Second).UnixNano())
	h.waitRemove("p", Expired)
	// Remove comes before the file's deletion; sync waits for the watcher to finish.
	evs := h.sync()
	if h.exists("p") {
		t.Error("expired p still on disk")
	}
	if !h.exists("q") {
		t.Error("q removed before its time")
	}
	if rs := removes(evs, "q"); len(rs) != 0 {
		t.Errorf("q removed: %v", rs)
	}

	now.Store(T.Add(3671 * time.Second).UnixNano())
	h.waitRemove("q", Expired)
	evs = h.sync()
	for _, id := range []string{"p", "q"} {
		if rs := removes(evs, id); !slices.Equal(rs, []Reason{Expired}) {
			t.Errorf("%s: removes %v, want [expired]", id, rs)
		}
	}
}

func TestWatchRescan(t *testing.T) {
	h := newHarness(t)
	h.put("a", validOrder("a.example"))
	h.start(Options{Rescan: time.Hour})
	if n := len(scans(h.rec.snapshot())); n != 1 {
		t.Fatalf("%d scans at start, want 1", n)
	}
	h.w.Rescan()
	evs := h.waitScans(2)
	if ids := scans(evs)[1]; !maps.Equal(ids, setOf("a")) {
		t.Errorf("Scanned(%v) after Rescan", ids)
	}
	h.w.Rescan()
	h.waitScans(3)
	// Requests made while one is pending are one request; Rescan never blocks.
	done := make(chan struct{})
	go func() {
		for range 100 {
			h.w.Rescan()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Rescan blocked")
	}
	h.waitScans(4)
	if n := len(updates(h.rec.snapshot(), "a")); n != 1 {
		t.Errorf("%d updates of an unchanged order, want 1", n)
	}
}

// A scan forgets an order whose file went away without an event: here the target of a
// symbolic link, outside the watched tree.
func TestWatchScanForgets(t *testing.T) {
	h := newHarness(t)
	target := filepath.Join(h.base, "elsewhere")
	if err := os.WriteFile(target, []byte(validOrder("link.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, h.path("link")); err != nil {
		t.Fatal(err)
	}
	h.start(Options{})
	if o := h.waitUpdates("link", 1); o.FPing.Host != "link.example" {
		t.Errorf("update %s", dump(o))
	}
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	h.w.Rescan()
	h.waitRemove("link", Deleted)
	evs := h.sync()
	if rs := removes(evs, "link"); len(rs) != 1 {
		t.Errorf("removes of link: %v, want one", rs)
	}
	for _, ids := range scans(evs)[1:] {
		if ids["link"] {
			t.Errorf("dangling link in Scanned(%v)", ids)
		}
	}
}

func TestWatchHidden(t *testing.T) {
	h := newHarness(t)
	h.writeFile("orders/.git/HEAD", validOrder("head.example"))
	h.writeFile("orders/.git/objects/x", validOrder("x.example"))
	h.start(Options{})

	h.writeFile("orders/.git/new", validOrder("new.example"))
	h.writeFile("orders/.git/refs/heads/main", validOrder("main.example"))
	h.writeFile("orders/.hid/f", validOrder("f.example"))
	h.writeFile("orders/app/.x", validOrder("x.example"))
	h.writeFile("orders/app/x~", validOrder("x.example"))
	h.writeFile("orders/app/x.swp", validOrder("x.example"))
	h.writeFile("orders/app/.sub/y", validOrder("y.example"))
	evs := withoutSync(h.sync())
	for _, e := range evs {
		if e.kind == "update" || e.kind == "remove" {
			t.Errorf("unexpected %v", e)
		}
	}
	for _, s := range scans(evs) {
		for id := range s {
			if !strings.HasPrefix(id, "zz-sync-") {
				t.Errorf("hidden file %s scanned as an order", id)
			}
		}
	}
	// Removing hidden files reports nothing either.
	if err := os.RemoveAll(filepath.Join(h.orders, ".git")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.orders, "app", ".x")); err != nil {
		t.Fatal(err)
	}
	for _, e := range withoutSync(h.sync()) {
		if e.kind == "update" || e.kind == "remove" {
			t.Errorf("unexpected %v", e)
		}
	}
}

func TestWatchOversizedOrder(t *testing.T) {
	h := newHarness(t)
	h.put("big", validOrder("big.example")+"#"+strings.Repeat("x", MaxSize)+"\n")
	h.start(Options{})
	evs := h.rec.snapshot()
	if n := len(updates(evs, "big")); n != 0 {
		t.Errorf("oversized order updated")
	}
	if !scans(evs)[0]["big"] {
		t.Errorf("oversized order not in Scanned(%v)", scans(evs)[0])
	}
	if log := h.log.String(); !strings.Contains(log, "orders/big") || !strings.Contains(log, "bytes") {
		t.Errorf("oversized order not logged:\n%s", log)
	}
	h.put("big", validOrder("big.example"))
	h.waitUpdates("big", 1)
}

func TestNewWatcherDefaults(t *testing.T) {
	w := NewWatcher("/base", newRecorder(), Options{})
	if w.opt.MaxAge != 3660*time.Second || w.opt.Rescan != time.Minute || w.opt.Settle != 500*time.Millisecond ||
		w.opt.MaxSettle != 2*time.Second || w.opt.Now == nil {
		t.Errorf("defaults %+v", w.opt)
	}
	if w.orders != filepath.Join("/base", "orders") || w.telegraf != filepath.Join("/base", "telegraf") {
		t.Errorf("directories %s, %s", w.orders, w.telegraf)
	}
	if Deleted.String() != "deleted" || Expired.String() != "expired" {
		t.Errorf("reasons %v, %v", Deleted, Expired)
	}
}

// TestReadLimited reads what an order file's name leads to when it is opened, which may
// not be what it was when the watcher examined it: a regular file is read; anything
// else is refused at once. Above all a named pipe renamed over an order file: opening it
// for reading waits for a writer, and with it the watcher, for ever.
func TestReadLimited(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := syscall.Mkfifo(path("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path("fifo"), path("link-to-fifo")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("order"), []byte(validOrder("h.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("big"), make([]byte, MaxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, err string
	}{
		{"regular file", path("order"), ""},
		{"named pipe", path("fifo"), "not a regular file but a named pipe (FIFO)"},
		{"link to a named pipe", path("link-to-fifo"), "not a regular file but a named pipe (FIFO)"},
		{"character device", os.DevNull, "not a regular file but a character device"},
		{"directory", dir, "not a regular file but a directory"},
		{"too large", path("big"), "larger than the 65536 bytes an order may have"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type result struct {
				data []byte
				err  error
			}
			done := make(chan result, 1)
			go func() {
				data, err := readLimited(tt.path)
				done <- result{data, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				// Let the reader go: a writer that comes and goes.
				if f, err := os.OpenFile(tt.path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				t.Fatalf("readLimited(%s) blocked", tt.path)
			}
			switch {
			case tt.err == "" && (r.err != nil || string(r.data) != validOrder("h.example")):
				t.Errorf("readLimited = %q, %v; want the order", r.data, r.err)
			case tt.err != "" && (r.err == nil || !strings.Contains(r.err.Error(), tt.err)):
				t.Errorf("readLimited = %q, %v; want an error saying %q", r.data, r.err, tt.err)
			}
		})
	}
}

// TestWatchFIFOSwappedIn swaps a named pipe and an order file back and forth under the
// watcher (rename(2) with RENAME_EXCHANGE), so that the name is now and then a pipe
// between the watcher's stat and its open. The watcher is never blocked: it keeps
// seeing new orders, the order is never taken for deleted, and it stops when asked.
func TestWatchFIFOSwappedIn(t *testing.T) {
	h := newHarness(t)
	h.put("swapped", validOrder("swapped.example"))
	fifo := filepath.Join(h.orders, ".fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	h.start(Options{})
	h.waitUpdates("swapped", 1)

	swap := func() {
		if err := unix.Renameat2(unix.AT_FDCWD, fifo, unix.AT_FDCWD, h.path("swapped"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("exchanging the order and a named pipe: %v", err)
		}
	}
	// Pairs of swaps, so that the order is in place at the end; a scan now and then
	// reads the file too, besides the events of the swaps.
	for i, end := 0, time.Now().Add(time.Second); time.Now().Before(end); i++ {
		swap()
		swap()
		if i%100 == 0 {
			h.w.Rescan()
		}
	}
	evs := h.sync()
	if rs := removes(evs, "swapped"); len(rs) != 0 {
		t.Errorf("the swapped order was removed: %v", rs)
	}
	for _, ids := range scans(evs) {
		if !ids["swapped"] {
			t.Errorf("the swapped order missing from Scanned(%v)", ids)
		}
	}
	if log := h.log.String(); !strings.Contains(log, "orders/swapped: not a regular file but a named pipe (FIFO)") {
		t.Log("the pipe was never found in the order's place; the test proved nothing this time")
	}
}

// TestWatchSpecialFiles: a named pipe and a socket among the orders are not orders; each
// is reported once, like an invalid order, and left alone.
func TestWatchSpecialFiles(t *testing.T) {
	h := newHarness(t)
	if err := syscall.Mkfifo(h.path("pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", h.path("socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h.put("good", validOrder("good.example"))
	h.start(Options{})
	h.waitUpdates("good", 1)
	evs := h.sync()
	for _, id := range []string{"pipe", "socket"} {
		if n := len(updates(evs, id)); n != 0 {
			t.Errorf("%s updated", id)
		}
		if last := scans(evs)[len(scans(evs))-1]; !last[id] {
			t.Errorf("%s missing from Scanned(%v)", id, last)
		}
		if !h.exists(id) {
			t.Errorf("%s removed", id)
		}
	}
	log := h.log.String()
	for _, want := range []string{"orders/pipe: not a regular file but a named pipe (FIFO)", "orders/socket: not a regular file but a socket"} {
		if n := strings.Count(log, want); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", want, n, log)
		}
	}
}

// TestWatchRefusedIDs: an order whose id the store cannot take (CheckID) is refused when
// it is read, and reported once with the reason, instead of failing at every round; it
// is never handed to the handler, not even to archive an output when it goes.
func TestWatchRefusedIDs(t *testing.T) {
	h := newHarness(t)
	long := ""
	for n := 4096; n > 0 && long == ""; n-- {
		if CheckID(h.base, longID(n)) == nil {
			long = longID(n + 1)
		}
	}
	refused := map[string]string{
		`back\slash`: `orders/back\\slash: a backslash in the order id`,
		long:         fmt.Sprintf("the order id is %d bytes long", len(long)),
	}
	for id := range refused {
		h.put(id, validOrder("refused.example"))
	}
	h.put("good", validOrder("good.example"))
	h.start(Options{})
	h.waitUpdates("good", 1)
	evs := h.sync()
	for id, reason := range refused {
		if n := len(updates(evs, id)); n != 0 {
			t.Errorf("%.40s: updated", id)
		}
		if last := scans(evs)[len(scans(evs))-1]; !last[id] {
			t.Errorf("%.40s: missing from the last Scanned", id)
		}
		if n := strings.Count(h.log.String(), reason); n != 1 {
			t.Errorf("%q logged %d times, want once", reason, n)
		}
		if err := os.Remove(h.path(id)); err != nil {
			t.Fatal(err)
		}
	}
	evs = h.sync()
	for id := range refused {
		if rs := removes(evs, id); len(rs) != 0 {
			t.Errorf("%.40s: removed %v", id, rs)
		}
	}
}

// writeSlowly writes data to the order id in place, in parts gap apart.
func (h *harness) writeSlowly(id string, parts []string, gap time.Duration) {
	h.t.Helper()
	f, err := os.Create(h.path(id))
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	for i, part := range parts {
		if i > 0 {
			time.Sleep(gap)
		}
		if _, err := f.WriteString(part); err != nil {
			h.t.Fatal(err)
		}
	}
}

// TestWatchSlowWriter writes orders in place, slowly: a file is read once it has been
// left alone for Settle, not Settle after it was first changed; one that keeps changing
// is read MaxSettle after its first change all the same.
func TestWatchSlowWriter(t *testing.T) {
	h := newHarness(t)
	h.start(Options{Settle: 300 * time.Millisecond, MaxSettle: 800 * time.Millisecond})

	// Twelve parts, 50 ms apart. Every part but the last leaves a valid order of
	// another step (1) or none at all.
	order := "user: u\npings: 1\nprobe: fping\nfping:\n  host: slow.example\nstep: 1"
	var parts []string
	for i := 0; i < len(order); i += len(order)/11 + 1 {
		parts = append(parts, order[i:min(i+len(order)/11+1, len(order))])
	}
	parts = append(parts, "0\n")
	h.writeSlowly("slow", parts, 50*time.Millisecond)
	if o := h.waitUpdates("slow", 1); o.Step != 10*time.Second {
		t.Errorf("read half-way: %s", dump(o))
	}
	evs := h.sync()
	if n := len(updates(evs, "slow")); n != 1 {
		t.Errorf("%d updates of slow, want 1:\n%s", n, format(evs))
	}
	if log := h.log.String(); strings.Contains(log, "invalid order") {
		t.Errorf("read half-way:\n%s", log)
	}

	// Written on, 30 ms apart, for twice MaxSettle: without the bound it would be read
	// once, when done; with it, it is read before that too.
	comments := slices.Repeat([]string{"# still writing\n"}, 60)
	h.writeSlowly("busy", append([]string{validOrder("busy.example")}, comments...), 30*time.Millisecond)
	if n := len(updates(h.sync(), "busy")); n < 2 {
		t.Errorf("busy read %d times while written for 1.8 s, want it read before the end and again at the end", n)
	}
}

// asNobody chowns base to nobody and makes every thread of the test process use nobody's
// user id for file access until the test ends, so that permissions apply to the watcher
// as they do to a daemon run with --user (root ignores them). The real and saved user
// ids stay root's, which takes the effective one back.
func asNobody(t *testing.T, base string) {
	t.Helper()
	pingtest.RequireRoot(t)
	const nobody = 65534
	if err := os.Chmod(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(base, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setresuid(-1, nobody, -1); err != nil {
		t.Fatalf("taking nobody's user id: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			panic(fmt.Sprintf("taking root's user id back: %v", err))
		}
	})
}

// waitLog waits for a log line that contains text.
func (h *harness) waitLog(text string) {
	h.t.Helper()
	storetest.WaitFor(h.t, "a log line with "+text, 5*time.Second, func() bool { return strings.Contains(h.log.String(), text) })
}

// scanned asks for a scan and returns when it is over, also when it does not call
// Scanned: the watcher logs each scan asked for as it begins, one at a time.
func (h *harness) scanned() {
	h.t.Helper()
	for range 2 {
		n := strings.Count(h.log.String(), "rescanning orders")
		h.w.Rescan()
		storetest.WaitFor(h.t, "a rescan", 5*time.Second, func() bool { return strings.Count(h.log.String(), "rescanning orders") > n })
	}
}

// TestWatchUnreadableDirectory takes permissions away from a directory of orders, then
// gives them back. An unreadable directory is not a deleted one: the orders below it are
// kept (not removed, not expired), the problem is logged once, and when it can be read
// again all is as before.
func TestWatchUnreadableDirectory(t *testing.T) {
	tests := []struct {
		name string
		mode fs.FileMode
		// logged once each while team/ has mode, and after it has its permissions back
		blocked, again []string
	}{
		{"no permissions", 0,
			[]string{`msg="cannot read an orders directory: the orders below it are kept as they are" dir=orders/team`},
			[]string{`msg="the orders directory can be read again" dir=orders/team`}},
		{"no read permission", 0o311,
			[]string{`msg="cannot read an orders directory: the orders below it are kept as they are" dir=orders/team`},
			[]string{`msg="the orders directory can be read again" dir=orders/team`}},
		{"no search permission", 0o644,
			[]string{`msg="cannot read an orders directory: the orders below it are kept as they are" dir=orders/team/sub`,
				`msg="invalid order, the previous version goes on" id=team/a err="orders/team/a: stat`},
			[]string{`msg="the orders directory can be read again" dir=orders/team/sub`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for _, id := range []string{"team/a", "team/sub/b", "other/c"} {
				h.put(id, validOrder(strings.ReplaceAll(id, "/", "-")+".example"))
			}
			asNobody(t, h.base)
			h.start(Options{})
			for _, id := range []string{"team/a", "team/sub/b", "other/c"} {
				h.waitUpdates(id, 1)
			}
			scansBefore := len(scans(h.rec.snapshot()))

			if err := os.Chmod(filepath.Join(h.orders, "team"), tt.mode); err != nil {
				t.Fatal(err)
			}
			h.scanned()
			// Still watched: an order elsewhere comes and goes.
			h.put("other/d", validOrder("d.example"))
			h.waitUpdates("other/d", 1)
			if err := os.Remove(h.path("other/c")); err != nil {
				t.Fatal(err)
			}
			h.waitRemove("other/c", Deleted)
			h.scanned()
			evs := h.rec.snapshot()
			for _, id := range []string{"team/a", "team/sub/b"} {
				if rs := removes(evs, id); len(rs) != 0 {
					t.Errorf("%s removed (%v) while its directory could not be read", id, rs)
				}
			}
			if n := len(scans(evs)); n != scansBefore {
				t.Errorf("Scanned called %d times while a directory could not be read, want none: %v", n-scansBefore, scans(evs)[scansBefore:])
			}

			if err := os.Chmod(filepath.Join(h.orders, "team"), 0o755); err != nil {
				t.Fatal(err)
			}
			h.scanned()
			evs = h.rec.snapshot()
			if ids := scans(evs)[len(scans(evs))-1]; !maps.Equal(ids, setOf("team/a", "team/sub/b", "other/d")) {
				t.Errorf("Scanned(%v) once readable again", ids)
			}
			for _, id := range []string{"team/a", "team/sub/b"} {
				if n, rs := len(updates(evs, id)), removes(evs, id); n != 1 || len(rs) != 0 {
					t.Errorf("%s: %d updates, removes %v; want 1 update and no remove", id, n, rs)
				}
			}
			log := h.log.String()
			for _, want := range append(tt.blocked, tt.again...) {
				if n := strings.Count(log, want); n != 1 {
					t.Errorf("%q logged %d times, want once:\n%s", want, n, log)
				}
			}
		})
	}
}

// TestWatchRenamedDirectories renames and replaces directories, orders/ and telegraf/
// included: each is watched again under its new name at once, so that an order written
// into it afterwards is seen by its events (the harness's scans are an hour apart), under
// the right id.
func TestWatchRenamedDirectories(t *testing.T) {
	h := newHarness(t)
	h.put("a/x", validOrder("x.example"))
	h.put("a/sub/y", validOrder("y.example"))
	h.start(Options{})

	rename := func(from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(h.base, from), filepath.Join(h.base, to)); err != nil {
			t.Fatal(err)
		}
	}
	rename("orders/a", "orders/b")
	h.waitRemove("a/x", Deleted)
	h.waitRemove("a/sub/y", Deleted)
	h.waitUpdates("b/x", 1)
	h.waitUpdates("b/sub/y", 1)
	h.put("b/new", validOrder("new.example"))
	h.waitUpdates("b/new", 1)
	h.put("b/sub/new", validOrder("new.example"))
	h.waitUpdates("b/sub/new", 1)

	// Back again, and the same name made anew next to it.
	rename("orders/b", "orders/a")
	if err := os.Mkdir(filepath.Join(h.orders, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.put("a/sub/again", validOrder("again.example"))
	h.waitUpdates("a/sub/again", 1)
	h.put("b/fresh", validOrder("fresh.example"))
	h.waitUpdates("b/fresh", 1)

	// orders/ deleted and made anew.
	if err := os.RemoveAll(h.orders); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a/x", "a/sub/y", "a/new", "a/sub/new", "a/sub/again", "b/fresh"} {
		h.waitRemove(id, Deleted)
	}
	if err := os.Mkdir(h.orders, 0o755); err != nil {
		t.Fatal(err)
	}
	h.put("c/z", validOrder("z.example"))
	h.waitUpdates("c/z", 1)
	h.put("c/z2", validOrder("z2.example"))
	h.waitUpdates("c/z2", 1)

	// orders/ replaced by another tree, renamed into place.
	h.writeFile("staging/s/w", validOrder("w.example"))
	rename("orders", "orders.old")
	rename("staging", "orders")
	h.waitRemove("c/z", Deleted)
	h.waitUpdates("s/w", 1)
	h.put("s/w2", validOrder("w2.example"))
	h.waitUpdates("s/w2", 1)

	// telegraf/ made anew.
	if err := os.RemoveAll(h.telegraf); err != nil {
		t.Fatal(err)
	}
	h.writeFile("telegraf/s/w", "measurement_name: anew\n")
	if o := h.waitUpdates("s/w", 2); o.Telegraf.Measurement != "anew" {
		t.Errorf("telegraf settings %+v, want those of the new telegraf/", o.Telegraf)
	}
	h.writeFile("telegraf/s/w2", "measurement_name: anew2\n")
	if o := h.waitUpdates("s/w2", 2); o.Telegraf.Measurement != "anew2" {
		t.Errorf("telegraf settings %+v, want those of the new telegraf/", o.Telegraf)
	}

	for _, e := range h.sync() {
		if strings.HasPrefix(e.id, "staging") || strings.Contains(e.id, "orders") {
			t.Errorf("unexpected %v", e)
		}
	}
}

// TestChangedDirectoryRescans: a batch of events that names only a directory, as when
// under load a directory renamed away and another made under its name reach the watcher
// as one changed directory, is enough to tell the orders that went from those that came.
func TestChangedDirectoryRescans(t *testing.T) {
	tests := []struct {
		name   string
		events []string // the paths the batch names, below orders/
	}{
		{"the old name only", []string{"b"}},
		{"the new name only", []string{"a"}},
		{"both", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.put("b/x", validOrder("x.example"))
			h.put("b/sub/y", validOrder("y.example"))
			w := NewWatcher(h.base, h.rec, Options{})
			fw, err := fsnotify.NewWatcher()
			if err != nil {
				t.Fatal(err)
			}
			defer fw.Close()
			w.scan(fw)
			if err := os.Rename(filepath.Join(h.orders, "b"), filepath.Join(h.orders, "a")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(h.orders, "b"), 0o755); err != nil {
				t.Fatal(err)
			}
			before := len(h.rec.snapshot())
			paths := make(map[string]bool)
			for _, p := range tt.events {
				paths[filepath.Join(h.orders, p)] = true
			}
			w.changed(fw, paths)

			var got []string
			for _, e := range h.rec.snapshot()[before:] {
				if e.kind != "scanned" {
					got = append(got, e.kind+" "+e.id)
				}
			}
			slices.Sort(got)
			want := []string{"remove b/sub/y", "remove b/x", "update a/sub/y", "update a/x"}
			if !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
}

// TestScanRepairsWatches: a scan makes the watches match the directories of the trees,
// whatever events were missed: a lost watch comes back, and the watch of a directory
// renamed without the watcher hearing of it follows the new name.
func TestScanRepairsWatches(t *testing.T) {
	h := newHarness(t)
	h.put("a/sub/x", validOrder("x.example"))
	h.writeFile("orders/.hidden/y", validOrder("y.example"))
	h.writeFile("telegraf/a/sub/x", "measurement_name: m\n")
	w := NewWatcher(h.base, h.rec, Options{})
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	dirs := func(rel ...string) []string {
		var d []string
		for _, r := range rel {
			d = append(d, filepath.Join(h.base, filepath.FromSlash(r)))
		}
		slices.Sort(d)
		return d
	}
	check := func(want []string) {
		t.Helper()
		got := fw.WatchList()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("watching %q, want %q", got, want)
		}
	}
	w.scan(fw)
	check(dirs("orders", "orders/a", "orders/a/sub", "telegraf", "telegraf/a", "telegraf/a/sub"))

	// The watch of a/ lost, and a/ renamed: sub/ is watched still, under its old path.
	if err := fw.Remove(filepath.Join(h.orders, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(h.orders, "a"), filepath.Join(h.orders, "b")); err != nil {
		t.Fatal(err)
	}
	w.scan(fw)
	check(dirs("orders", "orders/b", "orders/b/sub", "telegraf", "telegraf/a", "telegraf/a/sub"))
	// The events of the renamed directory name it by its new path.
	h.writeFile("orders/b/sub/z", validOrder("z.example"))
	want := filepath.Join(h.orders, "b", "sub", "z")
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-fw.Events:
			if ev.Name == want {
				return
			}
			if strings.HasSuffix(ev.Name, "z") {
				t.Fatalf("event %v, want one for %s", ev, want)
			}
		case <-timeout:
			t.Fatalf("no event for %s", want)
		}
	}
}

// TestWatchLinkedOrders makes orders/ and telegraf/ symbolic links to directories
// elsewhere, as configuration management may: both are followed, and logged, while a
// link to a directory below them is not followed. Events come through the link; an
// expired order is removed where the link leads; a link pointed elsewhere is followed
// there.
func TestWatchLinkedOrders(t *testing.T) {
	h := newHarness(t)
	cm := t.TempDir()
	target := filepath.Join(cm, "orders")
	h.writeFile("elsewhere/x", validOrder("x.example"))
	for name, text := range map[string]string{
		"orders/a":          validOrder("a.example"),
		"orders/team/b":     validOrder("b.example"),
		"orders/old":        validOrder("old.example"),
		"telegraf/team/b":   "measurement_name: linked\n",
		"other-orders/back": validOrder("back.example"),
	} {
		path := filepath.Join(cm, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(target, "old"), old, old); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{
		h.orders:                        target,
		h.telegraf:                      filepath.Join(cm, "telegraf"),
		filepath.Join(target, "linked"): filepath.Join(h.base, "elsewhere"),
	} {
		if err := os.RemoveAll(link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
	}
	h.start(Options{})

	evs := h.rec.snapshot()
	if ids := scans(evs)[0]; !maps.Equal(ids, setOf("a", "team/b")) {
		t.Errorf("Scanned(%v), want a and team/b", ids)
	}
	h.waitRemove("old", Expired)
	if o := updates(evs, "team/b"); len(o) != 1 || o[0].Telegraf.Measurement != "linked" {
		t.Errorf("team/b: updates %v, want one with the linked telegraf settings", o)
	}
	log := h.log.String()
	for _, want := range []string{
		fmt.Sprintf(`msg="reading a directory through a symbolic link" dir=%s from=%s`, h.orders, target),
		fmt.Sprintf(`msg="reading a directory through a symbolic link" dir=%s from=%s`, h.telegraf, filepath.Join(cm, "telegraf")),
	} {
		if n := strings.Count(log, want); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", want, n, log)
		}
	}

	// New orders, through the link and straight into the directory it leads to.
	h.put("team/new", validOrder("new.example"))
	h.waitUpdates("team/new", 1)
	if err := os.MkdirAll(filepath.Join(target, "fresh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "fresh", "c"), []byte(validOrder("c.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitUpdates("fresh/c", 1)
	evs = h.sync()
	if _, err := os.Lstat(filepath.Join(target, "old")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the expired order is still where orders/ leads: %v", err)
	}
	for _, e := range evs {
		if strings.HasPrefix(e.id, "linked") {
			t.Errorf("the link to a directory below orders/ was followed: %v", e)
		}
	}

	// Pointed elsewhere, as ln -sfn does: the orders there replace those here.
	tmp := filepath.Join(h.base, ".orders.new")
	if err := os.Symlink(filepath.Join(cm, "other-orders"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.orders); err != nil {
		t.Fatal(err)
	}
	h.waitUpdates("back", 1)
	for _, id := range []string{"a", "team/b", "team/new", "fresh/c"} {
		h.waitRemove(id, Deleted)
	}
	h.put("later", validOrder("later.example"))
	h.waitUpdates("later", 1)
	h.waitLog(fmt.Sprintf("from=%s", filepath.Join(cm, "other-orders")))
}

// TestRemoveBelow removes expired order files: through a linked orders/, but through no
// link below it, even one swapped in for a directory after the walk.
func TestRemoveBelow(t *testing.T) {
	tests := []struct {
		name string
		id   string
		// gone must be gone afterwards, kept must not
		gone, kept []string
		err        string
	}{
		{"file", "team/x", []string{"orders/team/x"}, nil, ""},
		{"link to a file", "link", []string{"orders/link"}, []string{"outside/victim"}, ""},
		{"through a linked orders/", "y", []string{"linked/y", "real/y"}, nil, ""},
		{"through a linked directory", "swapped/victim", nil, []string{"outside/victim", "orders/swapped"}, "orders/swapped: not a directory"},
		{"missing", "none", nil, nil, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"orders/team/x", "outside/victim", "real/y"} {
				path := filepath.Join(dir, filepath.FromSlash(f))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for link, to := range map[string]string{"orders/link": "outside/victim", "orders/swapped": "outside", "linked": "real"} {
				if err := os.Symlink(filepath.Join(dir, filepath.FromSlash(to)), filepath.Join(dir, filepath.FromSlash(link))); err != nil {
					t.Fatal(err)
				}
			}
			root := filepath.Join(dir, "orders")
			if strings.HasPrefix(tt.name, "through a linked orders/") {
				root = filepath.Join(dir, "linked")
			}
			err := removeBelow(root, tt.id)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("removeBelow(%s) = %v, want an error saying %q", tt.id, err, tt.err)
			}
			for _, f := range tt.gone {
				if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f))); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s not removed: %v", f, err)
				}
			}
			for _, f := range tt.kept {
				if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
					t.Errorf("%s removed: %v", f, err)
				}
			}
		})
	}
}

// invalids records what Options.Invalid hears.
type invalids struct {
	mu    sync.Mutex
	calls []string
}

func (v *invalids) add(id string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	msg := "gone"
	if err != nil {
		msg = err.Error()
	}
	v.calls = append(v.calls, id+": "+msg)
}

func (v *invalids) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.calls
	v.calls = nil
	return c
}

// TestWatchInvalidHook checks that Options.Invalid hears of every file that is not a
// valid order, with the error logged, and of refused files that go away, deleted or
// expired, which the Handler never hears of.
func TestWatchInvalidHook(t *testing.T) {
	h := newHarness(t)
	v := &invalids{}
	h.put("bad", invalidOrder)
	h.put(`back\slash`, validOrder("refused.example"))
	h.put(`old\slash`, validOrder("refused.example"))
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(h.path(`old\slash`), old, old)
	h.start(Options{Invalid: v.add})
	h.sync()
	got := v.take()
	slices.Sort(got)
	want := []string{
		`back\slash: orders/back\slash: a backslash in the order id: the store takes none in the paths it writes`,
		`bad: orders/bad: line 2: step: expected a whole number of seconds, got "abc"`,
		`old\slash: gone`,
		`old\slash: orders/old\slash: a backslash in the order id: the store takes none in the paths it writes`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("heard\n%q\nwant\n%q", got, want)
	}
	h.put("bad", validOrder("fixed.example"))
	os.Remove(h.path(`back\slash`))
	h.sync()
	if got := v.take(); !slices.Equal(got, []string{`back\slash: gone`}) {
		t.Errorf("heard %q, want back\\slash gone", got)
	}
}
