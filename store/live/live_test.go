package live_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/orders"
	"pingmachine/store"
	"pingmachine/store/live"
	"pingmachine/store/live/livetest"
	"pingmachine/store/view"
)

// lockBase holds base/.lock as the daemon does, so that view.Read sees a daemon.
func lockBase(t *testing.T, base string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(base, ".lock"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}

// printed is what status and status --json print of a view, at a fixed time.
func printed(t *testing.T, v *view.View, at time.Time) string {
	t.Helper()
	v.Time = at
	var b bytes.Buffer
	if err := v.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	j, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return b.String() + string(j)
}

// sameOrders compares the orders of two views field by field. The telegraf settings are
// left out: the daemon's come from telegraf/<id> too, which view.Read does not read.
func sameOrders(a, b *view.View) error {
	if len(a.Orders) != len(b.Orders) {
		return fmt.Errorf("%d orders and %d", len(a.Orders), len(b.Orders))
	}
	for i := range a.Orders {
		x, y := a.Orders[i], b.Orders[i]
		for _, o := range []*view.Order{&x, &y} {
			if o.Order != nil {
				c := *o.Order
				c.Telegraf = orders.Telegraf{}
				o.Order = &c
			}
		}
		switch {
		case x.ID != y.ID:
			return fmt.Errorf("order %d: id %q and %q", i, x.ID, y.ID)
		case !reflect.DeepEqual(x.Order, y.Order):
			return fmt.Errorf("%s: order %+v and %+v", x.ID, x.Order, y.Order)
		case fmt.Sprint(x.Err) != fmt.Sprint(y.Err):
			return fmt.Errorf("%s: error %v and %v", x.ID, x.Err, y.Err)
		case !reflect.DeepEqual(x.Result, y.Result):
			return fmt.Errorf("%s: result %+v and %+v", x.ID, x.Result, y.Result)
		case fmt.Sprint(x.ResultErr) != fmt.Sprint(y.ResultErr):
			return fmt.Errorf("%s: result error %v and %v", x.ID, x.ResultErr, y.ResultErr)
		}
	}
	return nil
}

// checkSame compares the live view with view.Read of the base directory, at a moment
// when no round was written in between.
func checkSame(t *testing.T, d *livetest.Daemon) {
	t.Helper()
	var err error
	for range 20 {
		before := d.State.View()
		disk, rerr := view.Read(d.Base)
		after := d.State.View()
		if rerr != nil {
			t.Fatal(rerr)
		}
		at := time.Now()
		if printed(t, before, at) != printed(t, after, at) {
			continue // a round was written meanwhile
		}
		if err = sameOrders(after, disk); err == nil && printed(t, after, at) != printed(t, disk, at) {
			err = fmt.Errorf("printed differently:\nlive:\n%s\ndisk:\n%s", printed(t, after, at), printed(t, disk, at))
		}
		if err == nil {
			if !reflect.DeepEqual(after.Daemon, disk.Daemon) || after.Base != disk.Base {
				t.Fatalf("live %s %+v, disk %s %+v", after.Base, after.Daemon, disk.Base, disk.Daemon)
			}
			return
		}
	}
	t.Fatalf("the live view differs from view.Read: %v", err)
}

// TestViewAsRead runs the daemon's pieces on a base directory and checks at each stage
// of its orders' lives that the live view is what view.Read reads of the files.
func TestViewAsRead(t *testing.T) {
	base := t.TempDir()
	lockBase(t, base)
	// Outputs of an earlier run: of an order that is there again, and of an order
	// whose file is not valid.
	for _, id := range []string{"earlier", "broken"} {
		dir := filepath.Join(base, "output", id)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "last_result"), []byte("time: 1000\nupdated: 1010\nstep: 60\npings: 20\nloss: 1\nmin: 1.000000e-03\nmedian: 2.000000e-03\nmax: 3.000000e-03\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(base, "output", "unreadable", "last_result"), 0o755)
	os.MkdirAll(filepath.Join(base, "orders", "site"), 0o755)
	write := func(id, yaml string) {
		if err := os.WriteFile(filepath.Join(base, "orders", filepath.FromSlash(id)), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("v4", livetest.ICMP("127.0.0.1", 2, 2, "measurement_name: m\ntags: {a: b}\n"))
	write("site/v6", livetest.ICMP("::1", 2, 2, ""))
	write("site/named", livetest.ICMP("loopback.test", 2, 2, ""))
	write("site/unresolved", livetest.ICMP("nowhere.test", 2, 2, ""))
	write("earlier", livetest.ICMP("127.0.0.3", 60, 20, ""))
	write("unreadable", livetest.ICMP("127.0.0.4", 60, 20, ""))
	write("broken", "user: x\nstep: many\n")
	write(`back\slash`, livetest.ICMP("127.0.0.1", 2, 2, ""))
	os.MkdirAll(filepath.Join(base, "telegraf"), 0o755)
	os.WriteFile(filepath.Join(base, "telegraf", "v4"), []byte("measurement_name: t\ntags: {from: file}\n"), 0o644)

	d := livetest.Start(t, base, livetest.Hosts{"loopback.test": netip.MustParseAddr("127.0.0.2")})
	livetest.Wait(t, 15*time.Second, "every order of step 2 has a result", func() bool {
		v := d.State.View()
		n := 0
		for _, o := range v.Orders {
			if o.Result != nil && o.Order != nil && o.Order.Step == 2*time.Second {
				n++
			}
		}
		return n == 4 && len(v.Orders) == 8
	})
	checkSame(t, d)
	want := map[string]view.State{"v4": view.OK, "site/v6": view.OK, "site/named": view.OK, "site/unresolved": view.OK,
		"earlier": view.Stale, "unreadable": view.Unreadable, "broken": view.Invalid, `back\slash`: view.Invalid}
	v := d.State.View()
	for _, o := range v.Orders {
		if s := o.State(v.Time); s != want[o.ID] {
			t.Errorf("%s: state %s, want %s", o.ID, s, want[o.ID])
		}
		if o.ID == "site/unresolved" && o.Result.Loss != 2 {
			t.Errorf("unresolved host: loss %d, want 2", o.Result.Loss)
		}
	}
	if c := d.State.Counts(); c != (live.Counts{Active: 6, Invalid: 2}) {
		t.Errorf("counts %+v", c)
	}

	// Deleted, expired, an invalid file gone, a refused one gone, a broken one mended.
	os.Remove(filepath.Join(base, "orders", "site", "v6"))
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(base, "orders", "earlier"), old, old)
	os.Remove(filepath.Join(base, "orders", "unreadable"))
	os.Remove(filepath.Join(base, "orders", `back\slash`))
	d.Order(t, "broken", livetest.ICMP("127.0.0.5", 2, 2, ""))
	livetest.Wait(t, 10*time.Second, "the orders that went are gone", func() bool {
		ids := []string{}
		for _, o := range d.State.View().Orders {
			ids = append(ids, o.ID)
		}
		return slices.Equal(ids, []string{"broken", "site/named", "site/unresolved", "v4"})
	})
	checkSame(t, d)
	if c := d.State.Counts(); c != (live.Counts{Active: 4, Expired: 1}) {
		t.Errorf("counts %+v", c)
	}
}

// next is an orders.Handler that records the calls it gets, and what the State holds
// of the order at each.
type next struct {
	s     *live.State
	calls []string
}

func (n *next) Update(o *orders.Order) {
	n.calls = append(n.calls, "update "+o.ID)
	// The scheduler's store tells of the order's output from within Update.
	n.s.Found(o.ID, &store.LastResult{Pings: 1, Step: time.Second, Min: -1, Median: -1, Max: -1, Loss: 1}, nil)
}

func (n *next) Remove(id string, why orders.Reason) {
	n.calls = append(n.calls, fmt.Sprintf("remove %s %s", id, why))
	// A round in flight is written before Remove has archived the output, nothing after:
	// the observer hears of it before the order is gone.
	n.s.Written(store.Result{ID: id}, store.LastResult{}, nil)
}

func (n *next) Scanned(ids map[string]bool) {
	n.calls = append(n.calls, fmt.Sprint("scanned ", len(ids)))
}

// observer records what the State tells it.
type observer struct{ calls []string }

func (o *observer) Round(ord *orders.Order, r store.Result, last store.LastResult) {
	o.calls = append(o.calls, fmt.Sprintf("round %s step %v loss %d", ord.ID, ord.Step, last.Loss))
}
func (o *observer) Gone(id string) { o.calls = append(o.calls, "gone "+id) }

// TestStateEvents drives a State by hand through every event and checks what it holds
// and tells after each.
func TestStateEvents(t *testing.T) {
	obs := &observer{}
	s := live.New("/base", obs)
	n := &next{s: s}
	h := s.Handler(n)
	order := func(id string, step int) *orders.Order {
		return &orders.Order{ID: id, User: "u", Step: time.Duration(step) * time.Second, Pings: 1, Probe: "fping", FPing: &orders.FPing{Host: "127.0.0.1"}}
	}
	written := func(id string, loss int, err error) {
		s.Written(store.Result{ID: id}, store.LastResult{Pings: 1, Step: time.Second, Loss: loss}, err)
	}
	type want struct {
		ids    []string
		result map[string]int // loss of the result, -1 for none
		counts live.Counts
		calls  []string // the observer's
	}
	for _, c := range []struct {
		name string
		do   func()
		want want
	}{
		{"new order", func() { h.Update(order("a", 1)) },
			want{[]string{"a"}, map[string]int{"a": 1}, live.Counts{Active: 1}, nil}},
		{"a round", func() { written("a", 0, nil) },
			want{[]string{"a"}, map[string]int{"a": 0}, live.Counts{Active: 1}, []string{"round a step 1s loss 0"}}},
		{"last_result not written: the old result stays", func() { written("a", 1, errors.New("disk full")) },
			want{[]string{"a"}, map[string]int{"a": 0}, live.Counts{Active: 1}, []string{"round a step 1s loss 1"}}},
		{"a round of an unknown order", func() { written("x", 0, nil) },
			want{[]string{"a"}, map[string]int{"a": 0}, live.Counts{Active: 1}, nil}},
		{"an invalid version: the old one runs on", func() { s.Invalid("a", errors.New("orders/a: bad")) },
			want{[]string{"a"}, map[string]int{"a": 0}, live.Counts{Active: 1, Invalid: 1}, nil}},
		{"its rounds go on", func() { written("a", 0, nil) },
			want{[]string{"a"}, map[string]int{"a": 0}, live.Counts{Active: 1, Invalid: 1}, []string{"round a step 1s loss 0"}}},
		{"a new valid version", func() { h.Update(order("a", 2)) },
			want{[]string{"a"}, map[string]int{"a": 1}, live.Counts{Active: 1}, nil}},
		{"an invalid file without output", func() { s.Invalid("b", errors.New("orders/b: bad")) },
			want{[]string{"a", "b"}, map[string]int{"a": 1, "b": -1}, live.Counts{Active: 1, Invalid: 1}, nil}},
		{"it goes away", func() { h.Remove("b", orders.Deleted) },
			want{[]string{"a"}, map[string]int{"a": 1}, live.Counts{Active: 1}, []string{"gone b"}}},
		{"a refused file, then gone", func() { s.Invalid(`c\d`, errors.New("refused")); s.Invalid(`c\d`, nil) },
			want{[]string{"a"}, map[string]int{"a": 1}, live.Counts{Active: 1}, []string{`gone c\d`}}},
		{"expired", func() { h.Remove("a", orders.Expired) },
			want{[]string{}, map[string]int{}, live.Counts{Expired: 1}, []string{"round a step 2s loss 0", "gone a"}}},
		{"a scan", func() { h.Scanned(map[string]bool{"q": true}) },
			want{[]string{}, map[string]int{}, live.Counts{Expired: 1}, nil}},
	} {
		obs.calls = nil
		c.do()
		v := s.View()
		ids := []string{}
		for _, o := range v.Orders {
			ids = append(ids, o.ID)
			loss := -1
			if o.Result != nil {
				loss = o.Result.Loss
			}
			if loss != c.want.result[o.ID] {
				t.Errorf("%s: %s: result loss %d, want %d", c.name, o.ID, loss, c.want.result[o.ID])
			}
		}
		if !slices.Equal(ids, c.want.ids) {
			t.Errorf("%s: orders %q, want %q", c.name, ids, c.want.ids)
		}
		if got := s.Counts(); got != c.want.counts {
			t.Errorf("%s: counts %+v, want %+v", c.name, got, c.want.counts)
		}
		if !slices.Equal(obs.calls, c.want.calls) {
			t.Errorf("%s: observer heard %q, want %q", c.name, obs.calls, c.want.calls)
		}
	}
	if want := []string{"update a", "update a", "remove b deleted", "remove a expired", "scanned 1"}; !slices.Equal(n.calls, want) {
		t.Errorf("the scheduler heard %q, want %q", n.calls, want)
	}
	// A View's results are its own.
	h.Update(order("z", 1))
	v1 := s.View()
	written("z", 0, nil)
	if v1.Orders[0].Result.Loss != 1 {
		t.Errorf("a later round changed an earlier View")
	}
}
