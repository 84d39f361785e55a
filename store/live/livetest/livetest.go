// Package livetest runs the daemon's pieces as cmd/pingmachine wires them (order
// watcher, scheduler, ICMP engine, store, live state and metrics) on a base directory,
// for the tests of what reads the live state. Host names resolve through a table, so
// that no test ever asks a DNS server: a name not in it does not resolve, and its order
// gets full-loss rounds.
package livetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pingmachine/orders"
	"pingmachine/pinger"
	"pingmachine/pinger/adapter"
	"pingmachine/pinger/pingtest"
	"pingmachine/pinger/schedule"
	"pingmachine/store"
	"pingmachine/store/live"
	"pingmachine/store/metrics"
)

// Daemon is the daemon's pieces running on Base.
type Daemon struct {
	Base    string
	State   *live.State
	Metrics *metrics.Metrics
	Store   *store.Store
	Engine  *pinger.Engine
	watcher *orders.Watcher
}

// Hosts resolves the names in it, and no other.
type Hosts map[string]netip.Addr

// LookupNetIP is schedule.Resolver's.
func (h Hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, fmt.Errorf("lookup %s: %w", host, errors.New("no such host in the test's table"))
}

// Start runs the daemon's pieces on base (made with orders/ and output/ and archive/
// if missing) until the test ends. Its ICMP sockets are raw ones: it skips the test
// unless it runs as root, as the engine's tests do.
func Start(tb testing.TB, base string, hosts Hosts) *Daemon {
	tb.Helper()
	pingtest.RequireRoot(tb)
	for _, sub := range []string{"orders", "telegraf", "output", "archive"} {
		if err := os.MkdirAll(filepath.Join(base, sub), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	d := &Daemon{Base: base, Engine: pinger.New(pinger.Options{Mode: pinger.ModeRaw})}
	for _, v6 := range []bool{false, true} {
		if err := d.Engine.Open(v6, netip.Addr{}, ""); err != nil {
			tb.Fatalf("opening the ICMP socket (IPv6 %v): %v", v6, err)
		}
	}
	d.Metrics = metrics.New(metrics.Sources{
		Engine: d.Engine.Stats, Sockets: d.Engine.Sockets,
		Store:  func() store.Stats { return d.Store.Stats() },
		Orders: func() live.Counts { return d.State.Counts() },
	})
	d.State = live.New(base, d.Metrics)
	st, err := store.Open(context.Background(), base, store.Options{Observer: d.State})
	if err != nil {
		tb.Fatal(err)
	}
	d.Store = st
	ctx, cancel := context.WithCancel(context.Background())
	sched := schedule.New(schedule.Config{Engine: d.Engine, Runner: adapter.NewRunner(4), Store: st, Resolver: hosts})
	d.watcher = orders.NewWatcher(base, d.State.Handler(sched), orders.Options{Invalid: d.State.Invalid, Rescan: time.Second})
	var wg sync.WaitGroup
	wg.Go(func() { d.Engine.Run(ctx) })
	wg.Go(func() { sched.Run(ctx) })
	wg.Go(func() { d.watcher.Watch(ctx) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		st.Close()
	})
	return d
}

// Order writes an order file as clients do: a temporary file renamed into place.
func (d *Daemon) Order(tb testing.TB, id, yaml string) {
	tb.Helper()
	path := filepath.Join(d.Base, "orders", filepath.FromSlash(id))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// ICMP is the YAML of an ICMP order of host; extra is added as it is.
func ICMP(host string, step, pings int, extra string) string {
	return fmt.Sprintf("user: test\nstep: %d\npings: %d\nprobe: fping\nfping:\n  host: %q\n%s", step, pings, host, extra)
}

// Wait polls cond every 50 ms until it holds, failing the test after timeout.
func Wait(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	for end := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			tb.Fatalf("after %v: %s", timeout, what)
		}
	}
}
