// Package viewtest builds base directories for the tests of what reads them: order files,
// and last results written by the daemon's own store.
package viewtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pingmachine/store"
)

// Tree is a base directory with orders/, output/ and archive/.
type Tree struct {
	Base  string
	tb    testing.TB
	store *store.Store
	now   time.Time // the store's clock: when a result is written
}

// New makes a Tree in a temporary directory that the test removes.
func New(tb testing.TB) *Tree {
	tb.Helper()
	t := &Tree{Base: tb.TempDir(), tb: tb}
	for _, dir := range []string{"orders", "output", "archive"} {
		if err := os.Mkdir(filepath.Join(t.Base, dir), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	s, err := store.Open(context.Background(), t.Base, store.Options{Now: func() time.Time { return t.now }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	t.store = s
	return t
}

// Order writes the order file of an id.
func (t *Tree) Order(id, yaml string) {
	t.tb.Helper()
	t.File("orders/"+id, yaml)
}

// Result writes the last_result of a round of an order as the daemon does, at the time
// updated; rtts has one entry per ping, negative for a lost one. No main.rrd is made.
func (t *Tree) Result(id string, step time.Duration, updated time.Time, rtts ...time.Duration) {
	t.tb.Helper()
	se := store.Series{ID: id, Step: step, Pings: len(rtts), RRDTemplate: "norrd"}
	if _, err := t.store.Prepare(se); err != nil {
		t.tb.Fatal(err)
	}
	t.now = updated
	r := store.Result{ID: id, Time: store.Stamp(updated, step), Step: step, RTTs: rtts}
	if err := t.store.Write(r); err != nil {
		t.tb.Fatal(err)
	}
}

// Sample fills the tree with an order of each kind that status and check tell apart, its
// last result written at now less an age:
//
//	web1            netops  fping 192.0.2.1 via eth0 from 192.0.2.9, 60 s, 20 pings: 12 s ago, 1 lost
//	site/zurich/gw  netops  fping 2001:db8::1, 300 s, 5 pings: 30 s ago, 2 lost (a nested id)
//	new             netops  fping 192.0.2.3, 60 s, 20 pings: no result yet
//	http/intranet   web     httping https://intranet.example.com/health, 300 s, 5 pings: 100 s ago
//	scion/sping1    scion   sping 1-ff00:0:110,[192.0.2.1], 60 s, 10 pings: 10 s ago, all lost
//	scion/pping1    scion   pping 1-ff00:0:110,[192.0.2.2] from 1-ff00:0:111,[192.0.2.9]: stale (10 min ago)
//	odd             netops  fping 192.0.2.4, 60 s, 20 pings: a last_result that cannot be read
//	bad/pings       (invalid: pings "two")
func (t *Tree) Sample(now time.Time) {
	t.tb.Helper()
	ms := func(v ...float64) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x * float64(time.Millisecond))
			if x < 0 {
				d[i] = -1
			}
		}
		return d
	}
	t.Order("web1", "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n  interface: eth0\n  source_ip: 192.0.2.9\n")
	twenty := ms(12.3, 12.1, 12.5, 12.2, 12.4, 12.3, 12.6, 12.0, 12.3, 12.3, 12.2, 12.4, 12.3, 12.5, 12.1, 12.3, 12.2, 12.4, -1, 12.3)
	t.Result("web1", time.Minute, now.Add(-12*time.Second), twenty...)
	t.Order("site/zurich/gw", "user: netops\nstep: 300\npings: 5\nprobe: fping\nfping:\n  host: 2001:db8::1\n")
	t.Result("site/zurich/gw", 5*time.Minute, now.Add(-30*time.Second), ms(25, -1, 24, -1, 26)...)
	t.Order("new", "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.3\n")
	t.Order("http/intranet", "user: web\nstep: 300\npings: 5\nprobe: httping\nhttping:\n  url: https://intranet.example.com/health\n")
	t.Result("http/intranet", 5*time.Minute, now.Add(-100*time.Second), ms(45, 44, 46, 45, 47)...)
	t.Order("scion/sping1", "user: scion\nstep: 60\npings: 10\nprobe: sping\nsping:\n  host: 1-ff00:0:110,[192.0.2.1]\n")
	t.Result("scion/sping1", time.Minute, now.Add(-10*time.Second), ms(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1)...)
	t.Order("scion/pping1", "user: scion\nstep: 60\npings: 10\nprobe: pping\npping:\n  host: 1-ff00:0:110,[192.0.2.2]\n  source_ip: 1-ff00:0:111,[192.0.2.9]\n")
	t.Result("scion/pping1", time.Minute, now.Add(-10*time.Minute), ms(30, 31, 32, 30, 31, 30, 33, 30, 31, 30)...)
	t.Order("odd", "user: netops\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.4\n")
	t.File("output/odd/last_result", "time: soon\n")
	t.Order("bad/pings", "user: netops\nstep: 60\npings: two\nprobe: fping\nfping:\n  host: 192.0.2.5\n")
}

// File writes a file below the base directory, making its directory.
func (t *Tree) File(rel, data string) {
	t.tb.Helper()
	path := filepath.Join(t.Base, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.tb.Fatal(err)
	}
}
