package schedule

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/pinger/adapter"
	"pingmachine/store"
	"pingmachine/store/storetest"
)

// end is when the fake engine ends a round.
func (s submitted) end() time.Time {
	return s.start.Add(time.Duration(s.count-1)*s.gap + s.timeout)
}

// resultsOf is what the store should hold for id: one result per engine round to target
// that ended by stop, skipping the rounds listed in dropped (by index), each stamped by
// the step of the order version it ran under (versionOf).
func resultsOf(rounds []submitted, id string, target netip.Addr, stop time.Time, dropped []int, versionOf func(i int) *orders.Order) []store.Result {
	var want []store.Result
	i := -1
	for _, r := range rounds {
		if r.target != target {
			continue
		}
		i++
		if r.end().After(stop) || slices.Contains(dropped, i) {
			continue
		}
		o := versionOf(i)
		want = append(want, store.Result{ID: id, Time: store.Stamp(r.start, o.Step), Step: o.Step, RTTs: rtts(o.Pings, time.Millisecond)})
	}
	return want
}

// resultsFor is the results written for id, in the order written.
func resultsFor(all []store.Result, id string) []store.Result {
	var out []store.Result
	for _, r := range all {
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

func sameResults(t *testing.T, got, want []store.Result) {
	t.Helper()
	if len(got) == len(want) {
		ok := true
		for i := range got {
			ok = ok && got[i].ID == want[i].ID && got[i].Time.Equal(want[i].Time) && got[i].Step == want[i].Step && slices.Equal(got[i].RTTs, want[i].RTTs)
		}
		if ok {
			return
		}
	}
	t.Errorf("results:\n%s\nwant:\n%s", describeResults(got), describeResults(want))
}

func describeResults(rs []store.Result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  %s at %d step %v rtts %v\n", r.ID, r.Time.Unix(), r.Step, r.RTTs)
	}
	return b.String()
}

// TestStepClock runs orders loaded at start-up and one added while running, and checks
// every round's start, its hand-over to the engine and its stamp.
func TestStepClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		t0 := time.Now()
		a := icmpOrder(t, "site/a", "127.0.0.1", 10, 3)
		w.s.Update(a)
		start := firstStart(a, t0)
		sleepUntil(start.Add(35 * time.Second))
		w.s.Scanned(map[string]bool{"site/a": true})
		w.s.Scanned(map[string]bool{"site/a": true, "x": true})
		added := time.Now()
		b := icmpOrder(t, "b", "::1", 5, 2)
		w.s.Update(b)
		sleepUntil(added.Add(20 * time.Second))
		stop := time.Now()
		w.shutdown()

		rounds := w.engine.seen()
		var aStarts, bStarts []time.Time
		for _, r := range rounds {
			if r.submitted.After(r.start) || r.start.Sub(r.submitted) > lead {
				t.Errorf("round of %v starting at %v handed to the engine at %v, want up to %v before", r.target, r.start, r.submitted, lead)
			}
			gap, timeout := a.Timing()
			if r.target == netip.MustParseAddr("::1") {
				gap, timeout = b.Timing()
			} else {
				aStarts = append(aStarts, r.start)
			}
			// Every send on the grid: starts and gaps (Perl's gap, truncated to it).
			if gap = gap.Truncate(grid); r.start.Truncate(grid) != r.start {
				t.Errorf("round of %v starts at %v, off the %v grid", r.target, r.start, grid)
			}
			if r.gap != gap || r.timeout != timeout {
				t.Errorf("round of %v: gap %v timeout %v, want %v %v", r.target, r.gap, r.timeout, gap, timeout)
			}
			if r.target == netip.MustParseAddr("::1") {
				bStarts = append(bStarts, r.start)
			}
		}
		// Loaded at start-up: at its phase in every step, without a gap, until stopped.
		if len(aStarts) != 6 {
			t.Errorf("%d rounds of site/a in 55 s at step 10, want 6", len(aStarts))
		}
		for k, s := range aStarts {
			if want := start.Add(time.Duration(k) * 10 * time.Second); !s.Equal(want) {
				t.Errorf("round %d of site/a starts at %v, want %v", k, s.Sub(t0), want.Sub(t0))
			}
		}
		// Added while running: within a second, then once a step at its phase.
		if len(bStarts) < 4 || bStarts[0].Before(added) || bStarts[0].Sub(added) >= firstRoundSpread {
			t.Fatalf("rounds of b added at %v: %v, want the first within %v", added.Sub(t0), bStarts, firstRoundSpread)
		}
		for k := 1; k < len(bStarts); k++ {
			if want := store.Stamp(bStarts[k-1], b.Step).Add(b.Step); !store.Stamp(bStarts[k], b.Step).Equal(want) {
				t.Errorf("round %d of b stamped %v, want the next step's %v", k, store.Stamp(bStarts[k], b.Step), want)
			}
			// At its place in the step, or later when the round before ran past it.
			place := placeOf(b, pingRate(a)+pingRate(b))
			gap, timeout := b.Timing()
			ranUntil := bStarts[k-1].Add(time.Duration(b.Pings-1)*gap.Truncate(quantum(pingRate(a)+pingRate(b), gap)) + timeout)
			if at := bStarts[k].Sub(bStarts[k].Truncate(b.Step)); at != place && (at < place || !ranUntil.After(bStarts[k].Truncate(b.Step).Add(place))) {
				t.Errorf("round %d of b starts %v into its step, want its place %v", k, at, place)
			}
		}
		all := w.store.written()
		sameResults(t, resultsFor(all, "site/a"), resultsOf(rounds, "site/a", netip.MustParseAddr("127.0.0.1"), stop, nil, func(int) *orders.Order { return a }))
		sameResults(t, resultsFor(all, "b"), resultsOf(rounds, "b", netip.MustParseAddr("::1"), stop, nil, func(int) *orders.Order { return b }))
		if len(w.store.reconciled) != 1 || !reflect.DeepEqual(w.store.reconciled[0], map[string]bool{"site/a": true}) {
			t.Errorf("reconciled %v, want once, after the first scan", w.store.reconciled)
		}
		if len(w.store.prepared) != 2 || !reflect.DeepEqual(w.store.prepared[0], seriesOf(a)) || !reflect.DeepEqual(w.store.prepared[1], seriesOf(b)) {
			t.Errorf("prepared %v, want site/a then b", w.store.prepared)
		}
	})
}

// TestOrderChangedMidRound changes an order while its round is with the engine: the
// round is written only if the change leaves what it measured as it was, and is then
// stamped by the step it ran at.
func TestOrderChangedMidRound(t *testing.T) {
	base := func(t *testing.T) *orders.Order { return icmpOrder(t, "o", "127.0.0.1", 10, 5) }
	tests := []struct {
		name   string
		change func(t *testing.T) *orders.Order // nil: the order is removed
		target string                           // of the rounds after the change
		kept   bool                             // the round under way is written
	}{
		{"telegraf tags", func(t *testing.T) *orders.Order {
			return order(t, "o", "user: test\nstep: 10\npings: 5\nprobe: fping\nfping:\n  host: 127.0.0.1\ntags:\n  site: x\n")
		}, "127.0.0.1", true},
		{"user", func(t *testing.T) *orders.Order {
			return order(t, "o", "user: other\nstep: 10\npings: 5\nprobe: fping\nfping:\n  host: 127.0.0.1\n")
		}, "127.0.0.1", true},
		{"step", func(t *testing.T) *orders.Order { return icmpOrder(t, "o", "127.0.0.1", 20, 5) }, "127.0.0.1", false},
		{"pings", func(t *testing.T) *orders.Order { return icmpOrder(t, "o", "127.0.0.1", 10, 3) }, "127.0.0.1", false},
		{"host", func(t *testing.T) *orders.Order { return icmpOrder(t, "o", "127.0.0.2", 10, 5) }, "127.0.0.2", false},
		{"interval", func(t *testing.T) *orders.Order { return icmpOrder(t, "o", "127.0.0.1", 10, 5, "interval: 100") }, "127.0.0.1", false},
		{"removed", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				old := base(t)
				w.s.Update(old)
				start := firstStart(old, time.Now())
				sleepUntil(start.Add(time.Second))
				cur := old
				if tt.change == nil {
					w.s.Remove("o", orders.Deleted)
				} else {
					cur = tt.change(t)
					w.s.Update(cur)
				}
				sleepUntil(start.Add(65 * time.Second))
				stop := time.Now()
				w.shutdown()

				rounds := w.engine.seen()
				if tt.change == nil {
					if len(rounds) != 1 || len(w.store.written()) != 0 || !slices.Equal(w.store.archived, []string{"o"}) {
						t.Errorf("removed mid-round: %d rounds, results %v, archived %v; want the one round, nothing written, o archived",
							len(rounds), describeResults(w.store.written()), w.store.archived)
					}
					return
				}
				if len(rounds) < 3 || rounds[0].target != netip.MustParseAddr("127.0.0.1") {
					t.Fatalf("rounds %v", rounds)
				}
				var want []store.Result
				if tt.kept {
					want = append(want, store.Result{ID: "o", Time: store.Stamp(rounds[0].start, old.Step), Step: old.Step, RTTs: rtts(old.Pings, time.Millisecond)})
				}
				later := rounds[1:]
				for _, r := range later {
					if r.target.String() != tt.target || r.count != cur.Pings {
						t.Errorf("round after the change: %v with %d pings, want %s with %d", r.target, r.count, tt.target, cur.Pings)
					}
				}
				want = append(want, resultsOf(later, "o", netip.MustParseAddr(tt.target), stop, nil, func(int) *orders.Order { return cur })...)
				sameResults(t, w.store.written(), want)
				// After a change of step, rounds keep one per step of the new step.
				for i := 1; i < len(later); i++ {
					if d := later[i].start.Sub(later[i-1].start); d != cur.Step {
						t.Errorf("rounds after the change %v apart, want %v", d, cur.Step)
					}
				}
			})
		})
	}
}

// TestOrderBackWhileItsOldRoundRuns removes an order and brings it back within one round:
// the old round is not written, the new version starts within a second.
func TestOrderBackWhileItsOldRoundRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.s.Scanned(nil)
		o := icmpOrder(t, "o", "127.0.0.1", 10, 5)
		w.s.Update(o)
		sleepUntil(time.Now().Add(time.Second))
		first := w.engine.seen()
		if len(first) != 1 {
			t.Fatalf("%d rounds a second after the order came, want 1", len(first))
		}
		w.s.Remove("o", orders.Deleted)
		back := time.Now()
		w.s.Update(o)
		sleepUntil(back.Add(time.Second))
		rounds := w.engine.seen()
		if len(rounds) != 2 || rounds[1].start.Sub(back) >= firstRoundSpread {
			t.Fatalf("rounds %v after the order came back at %v, want a second one within %v", rounds, back, firstRoundSpread)
		}
		sleepUntil(rounds[1].end().Add(time.Millisecond))
		w.shutdown()
		got := w.store.written()
		if len(got) != 1 || !got[0].Time.Equal(store.Stamp(rounds[1].start, o.Step)) {
			t.Errorf("results %s, want only the new version's round", describeResults(got))
		}
	})
}

// TestLookups covers orders whose host is a name.
func TestLookups(t *testing.T) {
	t.Run("cached for five minutes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			w.resolver.addrs["gw.test"] = []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.5"), netip.MustParseAddr("127.0.0.6")}
			o := icmpOrder(t, "o", "gw.test", 60, 2)
			w.s.Update(o)
			start := firstStart(o, time.Now())
			sleepUntil(start.Add(10*time.Minute + 30*time.Second))
			w.shutdown()
			if got := w.resolver.seen(); !slices.Equal(got, []string{"ip4 gw.test", "ip4 gw.test", "ip4 gw.test"}) {
				t.Errorf("lookups in 11 rounds: %v, want 3 (every 5 minutes)", got)
			}
			rounds := w.engine.seen()
			if len(rounds) != 11 {
				t.Fatalf("%d rounds in 10.5 minutes, want 11", len(rounds))
			}
			for _, r := range rounds {
				if r.target != netip.MustParseAddr("127.0.0.5") {
					t.Errorf("pinged %v, want the first address, unmapped", r.target)
				}
			}
			if n := len(w.store.written()); n != 11 {
				t.Errorf("%d results, want 11", n)
			}
			for _, r := range w.store.written() {
				if r.Addr != netip.MustParseAddr("127.0.0.5") {
					t.Errorf("a result of %v, want the address pinged", r.Addr)
				}
			}
		})
	})
	t.Run("ipv6", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			w.resolver.addrs["gw.test"] = []netip.Addr{netip.MustParseAddr("::1")}
			o := icmpOrder(t, "o", "gw.test", 10, 2, "ipv6: 1")
			w.s.Update(o)
			sleepUntil(firstStart(o, time.Now()).Add(5 * time.Second))
			w.shutdown()
			if got := w.resolver.seen(); !slices.Equal(got, []string{"ip6 gw.test"}) {
				t.Errorf("lookups %v, want AAAA (ip6)", got)
			}
			if r := w.engine.seen(); len(r) != 1 || r[0].target != netip.MustParseAddr("::1") {
				t.Errorf("rounds %v", r)
			}
		})
	})
	t.Run("failure is full loss, logged once per cause", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			w.resolver.err = errors.New("no such host")
			o := icmpOrder(t, "o", "gw.test", 10, 4)
			w.s.Update(o)
			start := firstStart(o, time.Now())
			sleepUntil(start.Add(25 * time.Second)) // three rounds
			if n := strings.Count(w.log.String(), "cannot resolve host"); n != 1 {
				t.Errorf("%d log lines for three failed lookups, want 1:\n%s", n, w.log)
			}
			w.resolver.set(func(r *fakeResolver) { r.err, r.addrs["gw.test"] = nil, []netip.Addr{netip.MustParseAddr("127.0.0.7")} })
			sleepUntil(start.Add(35 * time.Second)) // a measured round
			w.resolver.set(func(r *fakeResolver) { delete(r.addrs, "gw.test") })
			// The address is used for five minutes; the lookup after that finds nothing.
			sleepUntil(start.Add(35*time.Second + resolveEvery))
			w.shutdown()
			got := w.store.written()
			if len(got) < 34 {
				t.Fatalf("%d results in 5.5 minutes at step 10, want one a step", len(got))
			}
			for i, r := range got {
				wantLost := i < 3 || i >= 33
				if allLost(r.RTTs) != wantLost || len(r.RTTs) != 4 || !r.Time.Equal(store.Stamp(start, o.Step).Add(time.Duration(i)*o.Step)) {
					t.Errorf("result %d: %v at %v, want full loss %v, at step %d", i, r.RTTs, r.Time, wantLost, i)
				}
				// A round that pinged nothing is of no address.
				if wantAddr := netip.MustParseAddr("127.0.0.7"); (r.Addr == wantAddr) == wantLost || wantLost && r.Addr.IsValid() {
					t.Errorf("result %d (full loss %v) of address %v", i, wantLost, r.Addr)
				}
			}
			if n := strings.Count(w.log.String(), "cannot resolve host"); n != 2 {
				t.Errorf("%d log lines, want 2: a failure after a success is logged again:\n%s", n, w.log)
			}
			if !strings.Contains(w.log.String(), "err=\"no address\"") {
				t.Errorf("an empty answer is not logged as such:\n%s", w.log)
			}
		})
	})
	t.Run("shutdown during a lookup writes nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			w.resolver.block = true
			o := icmpOrder(t, "o", "gw.test", 60, 4)
			w.s.Update(o)
			sleepUntil(firstStart(o, time.Now()).Add(time.Second))
			if len(w.resolver.seen()) != 1 {
				t.Fatalf("lookups %v, want one under way", w.resolver.seen())
			}
			w.shutdown()
			if got := w.store.written(); len(got) != 0 {
				t.Errorf("a round stopped in its lookup was written: %s", describeResults(got))
			}
			if strings.Contains(w.log.String(), "cannot resolve") {
				t.Errorf("a lookup cut short by shutdown was logged as a failure:\n%s", w.log)
			}
		})
	})
	t.Run("host changed during a lookup", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			w.resolver.block = true
			o := icmpOrder(t, "o", "gw.test", 60, 4)
			w.s.Update(o)
			start := firstStart(o, time.Now())
			sleepUntil(start.Add(time.Second))
			w.s.Update(icmpOrder(t, "o", "127.0.0.9", 60, 4))
			sleepUntil(start.Add(100 * time.Second))
			w.shutdown()
			got := w.store.written()
			if len(got) != 1 || allLost(got[0].RTTs) || !got[0].Time.Equal(store.Stamp(start, o.Step).Add(o.Step)) {
				t.Errorf("results %s, want only the next round, measured", describeResults(got))
			}
			if r := w.engine.seen(); len(r) != 1 || r[0].target != netip.MustParseAddr("127.0.0.9") {
				t.Errorf("rounds %v, want one to the new host", r)
			}
		})
	})
	t.Run("bounded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			w.resolver.block = true
			w.s.Scanned(nil)
			for i := range 3 * maxLookups {
				w.s.Update(icmpOrder(t, fmt.Sprintf("o%d", i), fmt.Sprintf("h%d.test", i), 60, 2))
			}
			sleepUntil(time.Now().Add(2 * time.Second))
			w.resolver.set(func(r *fakeResolver) {
				if r.most != maxLookups {
					t.Errorf("%d lookups at once, want %d", r.most, maxLookups)
				}
			})
			w.shutdown()
			if got := w.store.written(); len(got) != 0 {
				t.Errorf("rounds waiting for a lookup at shutdown were written: %s", describeResults(got))
			}
		})
	})
}

// TestEngineRefuses covers rounds the engine cannot take or cannot send.
func TestEngineRefuses(t *testing.T) {
	tests := []struct {
		name     string
		set      func(e *fakeEngine)
		wantRTTs time.Duration
		wantLog  string
	}{
		{"submit", func(e *fakeEngine) { e.submitErr = errors.New("no such interface") }, pinger.Lost, "cannot ping; results are full loss"},
		{"send", func(e *fakeEngine) { e.sendErr = errors.New("network is unreachable") }, time.Millisecond, "cannot send pings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				w.engine.set(tt.set)
				o := icmpOrder(t, "o", "127.0.0.1", 10, 3)
				w.s.Update(o)
				start := firstStart(o, time.Now())
				sleepUntil(start.Add(38 * time.Second))
				w.shutdown()
				got := w.store.written()
				if len(got) != 4 {
					t.Fatalf("%d results in 4 rounds, want 4: %s", len(got), describeResults(got))
				}
				for _, r := range got {
					if !slices.Equal(r.RTTs, rtts(3, tt.wantRTTs)) {
						t.Errorf("result %v, want %v", r.RTTs, rtts(3, tt.wantRTTs))
					}
				}
				if n := strings.Count(w.log.String(), tt.wantLog); n != 1 {
					t.Errorf("%d lines %q for 4 rounds, want 1:\n%s", n, tt.wantLog, w.log)
				}
			})
		})
	}
}

const (
	httpingOrder = "user: test\nstep: 10\npings: 3\nprobe: httping\nhttping:\n  url: http://127.0.0.1:8080/\n"
	spingOrder   = "user: test\nstep: 10\npings: 3\nprobe: sping\nsping:\n  host: 1-ff00:0:110,[127.0.0.1]\n"
	ppingOrder   = "user: test\nstep: 10\npings: 3\nprobe: pping\npping:\n  host: 1-ff00:0:110,[127.0.0.1]\n"
)

// TestTools covers the rounds of orders measured by external programs.
func TestTools(t *testing.T) {
	lost := rtts(3, pinger.Lost)
	tests := []struct {
		name    string
		order   string
		program string
		run     func(ctx context.Context, r adapter.Round) adapter.Result
		want    []time.Duration // every round's result; nil: none written
		wantLog string          // logged once
	}{
		{"httping", httpingOrder, "/usr/bin/httping", nil, rtts(3, 2*time.Millisecond), ""},
		{"sping", spingOrder, "/opt/scion/bin/scmp_fping", nil, rtts(3, 2*time.Millisecond), ""},
		{"pping", ppingOrder, "/opt/scion/bin/pingpong", nil, rtts(3, 2*time.Millisecond), ""},
		{"cannot start", httpingOrder, "/usr/bin/httping", func(context.Context, adapter.Round) adapter.Result {
			return adapter.Result{Err: errors.New("exec: not found"), ExitCode: -1}
		}, nil, "cannot run httping; no results until it can"},
		{"killed", httpingOrder, "/usr/bin/httping", func(context.Context, adapter.Round) adapter.Result {
			time.Sleep(9 * time.Second)
			return adapter.Result{RTTs: []time.Duration{time.Millisecond, pinger.Lost, pinger.Lost}, Killed: true, ExitCode: -1}
		}, []time.Duration{time.Millisecond, pinger.Lost, pinger.Lost}, "httping did not finish in time and was killed"},
		{"failed", httpingOrder, "/usr/bin/httping", func(context.Context, adapter.Round) adapter.Result {
			return adapter.Result{RTTs: lost, ExitCode: 1}
		}, lost, "httping failed"},
		{"lossy exit 1 is not a failure", httpingOrder, "/usr/bin/httping", func(context.Context, adapter.Round) adapter.Result {
			return adapter.Result{RTTs: []time.Duration{pinger.Lost, 5 * time.Millisecond, pinger.Lost}, ExitCode: 1}
		}, []time.Duration{pinger.Lost, 5 * time.Millisecond, pinger.Lost}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				w.runner.set(tt.run)
				o := order(t, "web", tt.order)
				w.s.Update(o)
				start := firstStart(o, time.Now())
				sleepUntil(start.Add(25 * time.Second))
				w.shutdown()
				runs := w.runner.seen()
				if len(runs) != 3 {
					t.Fatalf("%d runs in three steps, want 3", len(runs))
				}
				gap, timeout := o.Timing()
				for k, r := range runs {
					at := start.Add(time.Duration(k) * o.Step)
					if r.argv[0] != tt.program || !r.started.Equal(at) || !r.deadline.Equal(at.Add(9*time.Second)) ||
						r.round != (adapter.Round{Pings: 3, Interval: gap, Timeout: timeout}) {
						t.Errorf("run %d: %v %+v at %v until %v, want %s at %v until 90%% of the step", k, r.argv, r.round, r.started, r.deadline, tt.program, at)
					}
				}
				var want []store.Result
				for k := range 3 {
					if tt.want != nil {
						want = append(want, store.Result{ID: "web", Time: store.Stamp(start, o.Step).Add(time.Duration(k) * o.Step), Step: o.Step, RTTs: tt.want})
					}
				}
				sameResults(t, w.store.written(), want)
				if tt.wantLog != "" {
					if n := strings.Count(w.log.String(), tt.wantLog); n != 1 {
						t.Errorf("%d lines %q for 3 rounds, want 1:\n%s", n, tt.wantLog, w.log)
					}
				} else if strings.Contains(w.log.String(), "level=WARN") {
					t.Errorf("warnings for good rounds:\n%s", w.log)
				}
			})
		})
	}
}

// TestToolOrderChanged changes a tool order while its program runs: that round is not
// written.
func TestToolOrderChanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.runner.set(func(context.Context, adapter.Round) adapter.Result {
			time.Sleep(3 * time.Second)
			return adapter.Result{RTTs: rtts(3, time.Millisecond)}
		})
		o := order(t, "web", httpingOrder)
		w.s.Update(o)
		start := firstStart(o, time.Now())
		sleepUntil(start.Add(time.Second))
		w.s.Update(order(t, "web", strings.Replace(httpingOrder, "8080", "8081", 1)))
		sleepUntil(start.Add(15 * time.Second))
		w.shutdown()
		got := w.store.written()
		if len(got) != 1 || !got[0].Time.Equal(store.Stamp(start, o.Step).Add(o.Step)) {
			t.Errorf("results %s, want only the round after the change", describeResults(got))
		}
		if runs := w.runner.seen(); len(runs) != 2 || !strings.Contains(strings.Join(runs[1].argv, " "), ":8081/") {
			t.Errorf("runs %v, want the second with the new URL", runs)
		}
	})
}

// TestShutdown stops the scheduler at each stage of a round: a round cut short is never
// written, a round measured to its end always is, and Run returns only once both are
// settled.
func TestShutdown(t *testing.T) {
	tests := []struct {
		name  string
		order string
		run   func(ctx context.Context, r adapter.Round) adapter.Result
		stop  time.Duration // after the first round's start
		// results written: the rounds that ended before stop, and maybe the one under way
		want int
	}{
		{"queued", icmp, nil, -time.Second, 0},
		{"handed to the engine before its start", icmp, nil, -lead / 2, 0},
		{"engine round under way", icmp, nil, 21 * time.Second, 2},
		{"tool waiting for its start", httpingOrder, nil, -lead / 2, 0},
		{"tool running", httpingOrder, func(ctx context.Context, r adapter.Round) adapter.Result {
			select {
			case <-ctx.Done():
				return adapter.Result{Canceled: true, ExitCode: -1, RTTs: rtts(r.Pings, pinger.Lost)}
			case <-time.After(5 * time.Second):
				return adapter.Result{RTTs: rtts(r.Pings, time.Millisecond)}
			}
		}, 21 * time.Second, 2},
		// A program that finished just as the daemon stopped measured its round: that
		// result is written before Run returns.
		{"tool finishing as it stops", httpingOrder, func(ctx context.Context, r adapter.Round) adapter.Result {
			select {
			case <-ctx.Done():
				time.Sleep(50 * time.Millisecond)
			case <-time.After(5 * time.Second):
			}
			return adapter.Result{RTTs: rtts(r.Pings, time.Millisecond)}
		}, 21 * time.Second, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				w.runner.set(tt.run)
				o := order(t, "o", tt.order)
				w.s.Update(o)
				start := firstStart(o, time.Now())
				sleepUntil(start.Add(tt.stop))
				w.shutdown()
				got := w.store.written()
				if len(got) != tt.want {
					t.Fatalf("%d results written, want %d: %s", len(got), tt.want, describeResults(got))
				}
				for k, r := range got {
					if allLost(r.RTTs) || !r.Time.Equal(store.Stamp(start, o.Step).Add(time.Duration(k)*o.Step)) {
						t.Errorf("result %d: %v at %v", k, r.RTTs, r.Time)
					}
				}
				if strings.Contains(w.log.String(), "level=WARN") || strings.Contains(w.log.String(), "level=ERROR") {
					t.Errorf("shutdown logged a problem:\n%s", w.log)
				}
				// Once stopped, nothing more starts.
				n, m := len(w.engine.seen()), len(w.runner.seen())
				time.Sleep(time.Minute)
				if len(w.engine.seen()) != n || len(w.runner.seen()) != m {
					t.Errorf("rounds started after Run returned")
				}
			})
		})
	}
}

const icmp = "user: test\nstep: 10\npings: 3\nprobe: fping\nfping:\n  host: 127.0.0.1\n"

// TestStoreErrors checks that the store's failures are logged and change nothing else.
func TestStoreErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.store.set(func(s *fakeStore) {
			s.prepareErr = errors.New("disk on fire")
			s.writeErr = errors.New("no space left on device")
			s.archiveErr = errors.New("read-only file system")
		})
		o := order(t, "o", icmp)
		w.s.Update(o)
		sleepUntil(firstStart(o, time.Now()).Add(15 * time.Second))
		w.s.Remove("o", orders.Expired)
		w.shutdown()
		log := w.log.String()
		for _, want := range []string{
			`msg="preparing output" id=o err="disk on fire"`,
			`msg="writing results" id=o err="no space left on device"`,
			`msg="archiving output" id=o err="read-only file system"`,
			`msg="removed order" id=o reason=expired`,
		} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %s:\n%s", want, log)
			}
		}
	})
}

// TestWriters checks that results are written in order per order, and that a result
// that comes after the writers stopped is logged as lost.
func TestWriters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		log := &storetest.LogBuffer{}
		w := newWriters(st, 3, newTestLogger(log))
		done := make(chan struct{})
		go func() {
			w.run()
			close(done)
		}()
		base := time.Unix(1e9, 0)
		for i := range 300 {
			w.add(store.Result{ID: fmt.Sprintf("o%d", i%7), Time: base.Add(time.Duration(i) * time.Second)})
		}
		w.close()
		<-done
		got := st.written()
		if len(got) != 300 {
			t.Fatalf("%d of 300 results written", len(got))
		}
		last := map[string]time.Time{}
		for _, r := range got {
			if !r.Time.After(last[r.ID]) {
				t.Errorf("%s: result of %v written after that of %v", r.ID, r.Time, last[r.ID])
			}
			last[r.ID] = r.Time
		}
		w.add(store.Result{ID: "late", Time: base})
		if !strings.Contains(log.String(), `msg="result lost: the writers have stopped" id=late`) {
			t.Errorf("a result after close was not logged as lost:\n%s", log)
		}
	})
}

func TestSameMeasurement(t *testing.T) {
	a := icmpOrder(t, "o", "127.0.0.1", 10, 3)
	tests := []struct {
		b    *orders.Order
		want bool
	}{
		{a, true},
		{icmpOrder(t, "o", "127.0.0.1", 10, 3), true},
		{order(t, "o", "user: x\nstep: 10\npings: 3\nprobe: fping\nfping:\n  host: 127.0.0.1\nrrd_template: norrd\n"), true},
		{icmpOrder(t, "o", "127.0.0.1", 10, 3, "source_ip: 127.0.0.2"), false},
		{icmpOrder(t, "o", "127.0.0.1", 10, 3, "interface: lo"), false},
		{icmpOrder(t, "o", "127.0.0.1", 20, 3), false},
		{icmpOrder(t, "o", "127.0.0.1", 10, 4), false},
		{order(t, "o", httpingOrder), false},
		{order(t, "o", spingOrder), false},
	}
	for i, tt := range tests {
		if got := sameMeasurement(a, tt.b); got != tt.want {
			t.Errorf("%d: sameMeasurement = %v, want %v", i, got, tt.want)
		}
	}
	if !sameMeasurement(order(t, "o", spingOrder), order(t, "o", spingOrder)) || sameMeasurement(order(t, "o", spingOrder), order(t, "o", ppingOrder)) {
		t.Error("SCION orders compared wrongly")
	}
}

// TestOrderBackWithinAStep deletes an order after a round was written and writes it again
// within the same step: its next round must not have the written round's stamp, which
// main.rrd would refuse. A stamp ahead of the clock (a clock set back) does not stop it.
func TestOrderBackWithinAStep(t *testing.T) {
	for _, tt := range []struct {
		name    string
		written func(first time.Time, o *orders.Order) time.Time // what the store holds when the order comes back
		soon    bool                                             // the new version starts within a second
	}{
		{"after its round", func(first time.Time, o *orders.Order) time.Time { return store.Stamp(first, o.Step) }, false},
		{"a stamp ahead of the clock", func(first time.Time, o *orders.Order) time.Time { return first.Add(24 * time.Hour) }, true},
		{"an old stamp", func(first time.Time, o *orders.Order) time.Time { return first.Add(-time.Hour) }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				w.s.Scanned(nil)
				o := icmpOrder(t, "o", "127.0.0.1", 60, 2)
				w.s.Update(o)
				sleepUntil(time.Now().Add(30 * time.Second))
				first := w.engine.seen()
				if len(first) != 1 || len(w.store.written()) != 1 {
					t.Fatalf("rounds %v, results %v: want one of each", first, w.store.written())
				}
				w.s.Remove("o", orders.Deleted)
				w.store.set(func(s *fakeStore) {
					s.results = []store.Result{{ID: "o", Time: tt.written(first[0].start, o)}}
				})
				back := time.Now()
				w.s.Update(o)
				sleepUntil(back.Add(2 * time.Minute))
				w.shutdown()
				rounds := w.engine.seen()
				if len(rounds) < 2 {
					t.Fatalf("rounds %v", rounds)
				}
				again := rounds[1].start
				if soon := again.Sub(back) < firstRoundSpread; soon != tt.soon {
					t.Errorf("back at %v, next round at %v: within a second %v, want %v", back, again, soon, tt.soon)
				}
				if !tt.soon && !store.Stamp(again, o.Step).After(store.Stamp(first[0].start, o.Step)) {
					t.Errorf("the round after the order came back has the stamp of the one before: %v", store.Stamp(again, o.Step))
				}
			})
		})
	}
}

// TestStall stops the scheduler for 70 s (as SIGSTOP or a paused VM would) while another
// order's slot passes: that round is skipped, not started late with a stamp from the
// time nothing ran, and the order goes on at its next slot.
func TestStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const step = 10 * time.Second
		a := icmpOrder(t, "a", "127.0.0.1", 10, 1)
		// b's slot comes after a's, late enough that b has no round under way when a's
		// stalls (rounds last 2 s here).
		var b *orders.Order
		for i := 0; b == nil; i++ {
			if d := (phaseOf(fmt.Sprint("b", i), step) - phaseOf("a", step) + step) % step; d > 3*time.Second && d < 7*time.Second {
				b = icmpOrder(t, fmt.Sprint("b", i), "127.0.0.2", 10, 1)
			}
		}
		w := newWorld(t)
		n := 0
		var stalled time.Time
		w.engine.set(func(e *fakeEngine) {
			e.stall = func(r *pinger.Round) {
				if r.Target == netip.MustParseAddr("127.0.0.1") {
					if n++; n == 2 {
						stalled = time.Now()
						time.Sleep(70 * time.Second)
					}
				}
			}
		})
		w.s.Update(a)
		w.s.Update(b)
		sleepUntil(firstStart(a, time.Now()).Add(2*step + 110*time.Second))
		w.shutdown()
		resumed := stalled.Add(70 * time.Second)
		for _, r := range w.engine.seen() {
			if r.target == netip.MustParseAddr("127.0.0.2") && r.submitted.After(stalled) && r.start.Before(resumed) {
				t.Errorf("a round of b due at %v, during the stall, was started after it at %v", r.start.Sub(stalled), r.submitted.Sub(stalled))
			}
		}
		var bStamps []time.Time
		for _, r := range resultsFor(w.store.written(), b.ID) {
			bStamps = append(bStamps, r.Time)
		}
		for i := 1; i < len(bStamps); i++ {
			if !bStamps[i].After(bStamps[i-1]) {
				t.Errorf("b's stamps not increasing: %v", bStamps)
			}
		}
		if len(bStamps) < 4 || !bStamps[len(bStamps)-1].After(resumed.Add(-2*step)) {
			t.Errorf("b's rounds %v: want them to go on after the stall that ended at %v", bStamps, resumed)
		}
		if n := strings.Count(w.log.String(), "were skipped"); n != 1 {
			t.Errorf("%d log lines about skipped rounds, want 1:\n%s", n, w.log)
		}
	})
}

// TestSocketsReleased: when the last order that pings from a source address or through an
// interface of its own goes away or changes, the engine hears that its socket is unused.
func TestSocketsReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		released := func() []string {
			w.engine.mu.Lock()
			defer w.engine.mu.Unlock()
			return slices.Clone(w.engine.released)
		}
		steps := []struct {
			do   func()
			want []string // released so far
		}{
			{func() {
				w.s.Update(icmpOrder(t, "a", "127.0.0.1", 10, 1, "source_ip: 127.0.0.2"))
				w.s.Update(icmpOrder(t, "b", "127.0.0.3", 10, 1, "source_ip: 127.0.0.2"))
				w.s.Update(icmpOrder(t, "c", "127.0.0.1", 10, 1, "interface: lo"))
				w.s.Update(icmpOrder(t, "d", "::1", 10, 1, "source_ip: ::1"))
				w.s.Update(icmpOrder(t, "plain", "127.0.0.1", 10, 1))
				w.s.Update(order(t, "web", httpingOrder))
			}, nil},
			{func() { w.s.Remove("a", orders.Deleted) }, nil},
			{func() { w.s.Update(icmpOrder(t, "b", "127.0.0.4", 20, 1, "source_ip: 127.0.0.2")) }, nil},
			{func() { w.s.Remove("b", orders.Expired) }, []string{"false 127.0.0.2 "}},
			{func() { w.s.Update(icmpOrder(t, "c", "127.0.0.1", 10, 1)) }, []string{"false 127.0.0.2 ", "false invalid IP lo"}},
			{func() { w.s.Remove("d", orders.Deleted) }, []string{"false 127.0.0.2 ", "false invalid IP lo", "true ::1 "}},
			{func() {
				w.s.Remove("plain", orders.Deleted)
				w.s.Remove("web", orders.Deleted)
				w.s.Remove("c", orders.Deleted)
			}, []string{"false 127.0.0.2 ", "false invalid IP lo", "true ::1 "}},
		}
		for i, st := range steps {
			st.do()
			sleepUntil(time.Now().Add(15 * time.Second))
			if got := released(); !slices.Equal(got, st.want) {
				t.Errorf("step %d: released %q, want %q", i, got, st.want)
			}
		}
	})
}
