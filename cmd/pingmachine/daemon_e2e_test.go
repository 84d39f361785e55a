package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
	"pingmachine/rrdfmt/rrdtest"
	"pingmachine/store/storetest"
)

// daemon is a pingmachine daemon process under test.
type daemon struct {
	t    *testing.T
	base string
	cmd  *exec.Cmd
	logs *storetest.LogBuffer
	done chan struct{}
	code int
}

// startDaemon runs the daemon on base with debug logs; the test's cleanup stops it.
func startDaemon(t *testing.T, base string, args ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, exec.Command, base, args...)
}

// startDaemonIn runs the daemon inside a test namespace (no route to any resolver).
func startDaemonIn(t *testing.T, ns *pingtest.Namespace, base string, args ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, ns.Command, base, args...)
}

func startDaemonWith(t *testing.T, command func(string, ...string) *exec.Cmd, base string, args ...string) *daemon {
	t.Helper()
	bin := build(t)
	d := &daemon{t: t, base: base, logs: &storetest.LogBuffer{}, done: make(chan struct{})}
	d.cmd = command(bin, append([]string{"--debug", "--basedir", base}, args...)...)
	d.cmd.Stderr = d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		d.code = d.cmd.ProcessState.ExitCode()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs)
		}
	})
	d.waitLog("pingmachine started", 5*time.Second)
	return d
}

// waitLog waits for a log line containing s.
func (d *daemon) waitLog(s string, timeout time.Duration) {
	d.t.Helper()
	d.waitFor("log line "+strconv.Quote(s), timeout, func() bool { return strings.Contains(d.logs.String(), s) })
}

// waitFor polls cond until it holds; the test fails after timeout, or at once if the
// daemon exits.
func (d *daemon) waitFor(what string, timeout time.Duration, cond func() bool) {
	d.t.Helper()
	storetest.WaitFor(d.t, what, timeout, func() bool {
		if cond() {
			return true
		}
		select {
		case <-d.done:
			d.t.Fatalf("daemon exited (%d) while waiting for %s", d.code, what)
		default:
		}
		return false
	})
}

// stop sends sig and returns the exit status.
func (d *daemon) stop(sig syscall.Signal) int {
	d.t.Helper()
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.t.Fatalf("daemon did not exit within 10 s of %v", sig)
	}
	return d.code
}

func (d *daemon) path(elem ...string) string {
	return filepath.Join(append([]string{d.base}, elem...)...)
}

// writeOrder writes an order as a client should: a hidden temporary file renamed into
// place.
func writeOrder(t *testing.T, base, id, content string) {
	t.Helper()
	path := filepath.Join(base, "orders", filepath.FromSlash(id))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func icmpOrder(host string, step, pings int, extra string) string {
	return fmt.Sprintf("user: e2e\nstep: %d\npings: %d\nprobe: fping\nfping:\n  host: %q\n%s", step, pings, host, extra)
}

// lastResult reads output/<id>/last_result into its keys, in order.
type lastResult struct {
	keys   []string
	values map[string]string
}

func readLastResult(t *testing.T, base, id string) (lastResult, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(base, "output", filepath.FromSlash(id), "last_result"))
	if err != nil {
		return lastResult{}, false
	}
	lr := lastResult{values: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("last_result of %s: line %q is not 'key: value'", id, line)
		}
		lr.keys = append(lr.keys, k)
		lr.values[k] = v
	}
	return lr, true
}

func (lr lastResult) int(t *testing.T, key string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(lr.values[key], 10, 64)
	if err != nil {
		t.Fatalf("last_result %s: %v", key, err)
	}
	return v
}

// waitResult waits for a last_result of id whose time is after the given one.
func (d *daemon) waitResult(id string, after int64, timeout time.Duration) lastResult {
	d.t.Helper()
	var lr lastResult
	d.waitFor("last_result of "+id, timeout, func() bool {
		var ok bool
		lr, ok = readLastResult(d.t, d.base, id)
		return ok && lr.int(d.t, "time") > after
	})
	return lr
}

var lastResultKeys = []string{"time", "updated", "step", "pings", "loss", "min", "median", "max"}

func checkLastResult(t *testing.T, id string, lr lastResult, step, pings, loss int) {
	t.Helper()
	if !slices.Equal(lr.keys, lastResultKeys) {
		t.Errorf("%s: last_result keys %v, want %v", id, lr.keys, lastResultKeys)
	}
	tm, updated := lr.int(t, "time"), lr.int(t, "updated")
	if tm%int64(step) != 0 || updated < tm+int64(step) || updated > tm+3*int64(step) {
		t.Errorf("%s: time %d, updated %d: want a multiple of the step %d, one to three steps before updated", id, tm, updated, step)
	}
	if lr.int(t, "step") != int64(step) || lr.int(t, "pings") != int64(pings) || lr.int(t, "loss") != int64(loss) {
		t.Errorf("%s: step/pings/loss %s/%s/%s, want %d/%d/%d", id, lr.values["step"], lr.values["pings"], lr.values["loss"], step, pings, loss)
	}
	for _, k := range []string{"min", "median", "max"} {
		v := lr.values[k]
		if loss == pings {
			if v != "~" {
				t.Errorf("%s: %s %q, want ~ for full loss", id, k, v)
			}
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || len(v) != len("5.700000e-04") || f <= 0 || f > 1 {
			t.Errorf("%s: %s %q, want a round trip below 1 s in %%.6e seconds", id, k, v)
		}
	}
}

func TestDaemonResults(t *testing.T) {
	t.Parallel()
	base := filepath.Join(t.TempDir(), "not", "yet") // created by the daemon
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	os.MkdirAll(filepath.Join(base, "orders", "site"), 0o755)
	os.MkdirAll(filepath.Join(base, "telegraf", "site"), 0o755)
	writeOrder(t, base, "v4", icmpOrder("127.0.0.1", 3, 3, "measurement_name: top\ntags: {b: 2, a: one}\n"))
	writeOrder(t, base, "site/v6", icmpOrder("::1", 2, 2, "telegraf:\n  measurement_name: inner\n"))
	writeOrder(t, base, "site/norrd", icmpOrder("127.0.0.2", 2, 2, "rrd_template: norrd\n"))
	writeOrder(t, base, "site/same-host", icmpOrder("127.0.0.1", 2, 2, ""))
	os.WriteFile(filepath.Join(base, "telegraf", "site", "v6"), []byte("measurement_name: file\ntags: {from: file}\n"), 0o644)
	d := startDaemon(t, base, "--telegraf", udp.LocalAddr().String())

	results := map[string]lastResult{}
	for _, o := range []struct {
		id          string
		step, pings int
		rrd         bool
	}{{"v4", 3, 3, true}, {"site/v6", 2, 2, true}, {"site/norrd", 2, 2, false}, {"site/same-host", 2, 2, true}} {
		lr := d.waitResult(o.id, 0, 10*time.Second)
		checkLastResult(t, o.id, lr, o.step, o.pings, 0)
		results[o.id] = lr
		rrd := d.path("output", o.id, "main.rrd")
		if _, err := os.Stat(rrd); (err == nil) != o.rrd {
			t.Errorf("%s: main.rrd exists: %v, want %v", o.id, err == nil, o.rrd)
		}
		if !o.rrd {
			continue
		}
		// The RRD row of last_result's time holds the same loss and median, and
		// the pings sorted.
		tm := lr.int(t, "time")
		row := rrdtest.FetchRow(t, rrd, tm, time.Duration(o.step)*time.Second)
		median, _ := strconv.ParseFloat(lr.values["median"], 64)
		if len(row) != 2+o.pings || row[0] != 0 || math.Abs(row[1]-median) > 1e-12 {
			t.Errorf("%s: rrdtool fetch row at %d = %v, want loss 0, median %v and %d pings", o.id, tm, row, median, o.pings)
		}
		if !slices.IsSorted(row[2:]) {
			t.Errorf("%s: pings in the RRD not sorted: %v", o.id, row[2:])
		}
		min, _ := strconv.ParseFloat(lr.values["min"], 64)
		max, _ := strconv.ParseFloat(lr.values["max"], 64)
		if math.Abs(row[2]-min) > 1e-12 || math.Abs(row[len(row)-1]-max) > 1e-12 {
			t.Errorf("%s: RRD pings %v, want from min %v to max %v", o.id, row[2:], min, max)
		}
		info := rrdtest.Info(t, rrd)
		pingMax, lossMax := info["ds[ping"+strconv.Itoa(o.pings)+"].max"], info["ds[loss].max"]
		if pingMax != "1.8000000000e+02" || lossMax != fmt.Sprintf("%.10e", float64(o.pings)) {
			t.Errorf("%s: rrdtool info: ping%d max %s, loss max %s; want 180 and %d", o.id, o.pings, pingMax, lossMax, o.pings)
		}
	}

	// Telegraf: a summary line per round and one line per answered ping, tags sorted;
	// telegraf/<id> wins over the order's own settings.
	udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	buf := make([]byte, 65536)
	seen := func(prefix string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	for !seen("top,a=one,b=2 loss=0,max_rtt=") || !seen("file,from=file loss=0,") ||
		!seen("top,a=one,b=2 individual_rtt=") {
		n, err := udp.Read(buf)
		if err != nil {
			t.Fatalf("telegraf lines so far %q: %v", lines, err)
		}
		if n > 1400 {
			t.Errorf("datagram of %d bytes, want at most 1400", n)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")...)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "inner") || strings.HasPrefix(l, "norrd") {
			t.Errorf("telegraf line %q: want none for this order", l)
		}
		if f := strings.Fields(l); len(f) != 3 || len(f[2]) != 19 {
			t.Errorf("telegraf line %q: want measurement, fields and a nanosecond time stamp", l)
		}
	}

	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(d.logs.String(), "pingmachine stopped") {
		t.Error("no 'pingmachine stopped' in the log")
	}
	for id := range results {
		if lr, ok := readLastResult(t, base, id); !ok || len(lr.keys) != 8 {
			t.Errorf("%s: last_result after stop: %v", id, lr.keys)
		}
		if fi, err := os.Lstat(d.path("output", id, ".last_result.spare")); err == nil && !fi.Mode().IsRegular() {
			t.Errorf("%s: the spare of last_result is a %v", id, fi.Mode().Type())
		}
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestDaemonOrderLifecycle(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	past := time.Now().Add(-3700 * time.Second)
	writeOrder(t, base, "keep", icmpOrder("127.0.0.1", 2, 2, ""))
	writeOrder(t, base, "bad", "user: e2e\nstep: 2\npings: two\nprobe: fping\nfping: {host: 127.0.0.1}\n")
	writeOrder(t, base, "old", icmpOrder("127.0.0.1", 2, 1, ""))
	os.Chtimes(filepath.Join(base, "orders", "old"), past, past)
	for _, name := range []string{".hidden", "x.tmp", "x~"} {
		os.WriteFile(filepath.Join(base, "orders", name), []byte(icmpOrder("127.0.0.1", 2, 1, "")), 0o644)
	}
	for _, id := range []string{"gone/deep", "old"} { // outputs of orders that are no more
		os.MkdirAll(filepath.Join(base, "output", id), 0o755)
		os.WriteFile(filepath.Join(base, "output", id, "last_result"), []byte("time: 1\n"), 0o644)
	}
	d := startDaemon(t, base)
	d.waitResult("keep", 0, 10*time.Second)

	t.Run("start-up", func(t *testing.T) {
		for _, id := range []string{"gone/deep", "old"} {
			if !exists(d.path("archive", id, "last_result")) || exists(d.path("output", id)) {
				t.Errorf("output of %s not archived at start-up", id)
			}
		}
		if exists(d.path("output", "gone")) {
			t.Error("empty output/gone left behind")
		}
		if exists(d.path("orders", "old")) {
			t.Error("expired order file not removed")
		}
		if !strings.Contains(d.logs.String(), `msg="archiving old order" id=old`) {
			t.Error("expiry not logged")
		}
		if !exists(d.path("orders", "bad")) || exists(d.path("output", "bad")) {
			t.Error("invalid order removed or measured")
		}
		if !strings.Contains(d.logs.String(), `orders/bad: line 3: pings: expected a whole number of pings, got \"two\"`) {
			t.Error("invalid order not reported with file, line, key and reason")
		}
		for _, name := range []string{".hidden", "x.tmp", "x~"} {
			if exists(d.path("output", name)) || !exists(d.path("orders", name)) {
				t.Errorf("temporary file %s taken for an order", name)
			}
		}
	})

	t.Run("add", func(t *testing.T) {
		start := time.Now()
		writeOrder(t, base, "new/one", icmpOrder("127.0.0.3", 2, 1, ""))
		lr := d.waitResult("new/one", 0, 5*time.Second)
		checkLastResult(t, "new/one", lr, 2, 1, 0)
		t.Logf("first result of a new order after %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("invalid then fixed", func(t *testing.T) {
		writeOrder(t, base, "bad", icmpOrder("127.0.0.4", 2, 2, ""))
		checkLastResult(t, "bad", d.waitResult("bad", 0, 5*time.Second), 2, 2, 0)
	})

	t.Run("edit pings", func(t *testing.T) {
		before, _ := os.ReadFile(d.path("output", "keep", "main.rrd"))
		writeOrder(t, base, "keep", icmpOrder("127.0.0.1", 2, 1, ""))
		d.waitFor("a result with the new pings", 10*time.Second, func() bool {
			lr, ok := readLastResult(t, base, "keep")
			return ok && lr.values["pings"] == "1"
		})
		kept, err := os.ReadFile(d.path("output", "keep", "main.step2.pings2.rrd"))
		if err != nil || len(kept) != len(before) {
			t.Errorf("old main.rrd not kept as main.step2.pings2.rrd: %v", err)
		}
		info := rrdtest.Info(t, d.path("output", "keep", "main.rrd"))
		_, ping1 := info["ds[ping1].index"]
		_, ping2 := info["ds[ping2].index"]
		if !ping1 || ping2 {
			t.Errorf("new main.rrd has ping1 %v, ping2 %v; want one ping", ping1, ping2)
		}
	})

	t.Run("delete and restore", func(t *testing.T) {
		os.Remove(d.path("orders", "new", "one"))
		d.waitFor("archive/new/one", 5*time.Second, func() bool { return exists(d.path("archive", "new", "one", "last_result")) })
		d.waitFor("output/new removed after archiving", 2*time.Second, func() bool { return !exists(d.path("output", "new")) })
		os.WriteFile(d.path("archive", "new", "one", "marker"), nil, 0o644)
		writeOrder(t, base, "new/one", icmpOrder("127.0.0.3", 2, 1, ""))
		d.waitFor("restored output", 5*time.Second, func() bool { return exists(d.path("output", "new", "one", "marker")) })
		// The emptied archive/new goes right after the rename that restored it.
		d.waitFor("archive/new removed", 2*time.Second, func() bool { return !exists(d.path("archive", "new")) })
		lr, _ := readLastResult(t, base, "new/one")
		d.waitResult("new/one", lr.int(t, "time"), 5*time.Second)
	})

	t.Run("corrupt rrd", func(t *testing.T) {
		rrd := d.path("output", "new", "one", "main.rrd")
		garbage := []byte("this is not an RRD file")
		os.WriteFile(rrd, garbage, 0o644)
		lr, _ := readLastResult(t, base, "new/one")
		lr = d.waitResult("new/one", lr.int(t, "time"), 5*time.Second)
		if b, err := os.ReadFile(d.path("output", "new", "one", "corrupted_main.rrd")); err != nil || !bytes.Equal(b, garbage) {
			t.Errorf("corrupted_main.rrd: %q, %v; want the corrupt file", b, err)
		}
		// The round that found the file corrupt is in the new one.
		if row := rrdtest.FetchRow(t, rrd, lr.int(t, "time"), 2*time.Second); len(row) != 3 || row[0] != 0 {
			t.Errorf("new main.rrd row %v, want the round of last_result", row)
		}
		d.waitLog("detected corrupted RRD file", time.Second)
	})

	t.Run("expire on HUP", func(t *testing.T) {
		os.Chtimes(d.path("orders", "keep"), past, past)
		d.cmd.Process.Signal(syscall.SIGHUP)
		d.waitFor("archive/keep", 5*time.Second, func() bool { return exists(d.path("archive", "keep", "main.rrd")) })
		d.waitFor("the expired order file and its output gone", 2*time.Second, func() bool {
			return !exists(d.path("orders", "keep")) && !exists(d.path("output", "keep"))
		})
		if !exists(d.path("archive", "keep", "main.step2.pings2.rrd")) {
			t.Error("the kept old RRD was not archived with the output")
		}
		// The log is read from a pipe: it may trail what is on disk.
		d.waitLog("rescanning orders", time.Second)
	})

	t.Run("lock", func(t *testing.T) {
		bin := build(t)
		_, stderr, code := runCmd(t, exec.Command(bin, "--basedir", base))
		if code != 1 || !strings.Contains(stderr, "can't lock base directory "+base+": is pingmachine running already?") {
			t.Errorf("second daemon: exit %d, stderr %q; want 1 and the lock message", code, stderr)
		}
	})

	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestDaemonStartErrors(t *testing.T) {
	t.Parallel()
	bin := build(t)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"--basedir", t.TempDir(), "--telegraf", "localhost"}, 1, "missing port in address"},
		{[]string{"--basedir", file}, 1, "base directory"},
		{[]string{"--basedir", t.TempDir(), "--log-format", "xml"}, 2, `--log-format "xml": want text or json`},
		{[]string{"--basedir", t.TempDir(), "--user", "no-such-user-here"}, 1, "--user no-such-user-here"},
		{[]string{"--basedir", t.TempDir(), "--rrdcached", "unix:" + filepath.Join(t.TempDir(), "none.sock")}, 1, "rrdcached at unix:"},
		{[]string{"--basedir", t.TempDir(), "--listen", taken.Addr().String()}, 1, "--listen " + taken.Addr().String() + ": listen tcp " + taken.Addr().String() + ": bind: address already in use"},
		{[]string{"--basedir", t.TempDir(), "--listen", "127.0.0.1"}, 1, "--listen 127.0.0.1: listen tcp: address 127.0.0.1: missing port in address"},
	}
	for _, tt := range tests {
		_, stderr, code := runCmd(t, exec.Command(bin, tt.args...))
		if code != tt.code || !strings.Contains(stderr, tt.say) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.say)
		}
	}
}

// TestDaemonScripted runs the daemon against a scripted responder in a network
// namespace: the loss in last_result and main.rrd is exactly the scripted loss, a delay is
// measured to within a millisecond, and targets that cannot answer are full loss.
func TestDaemonScripted(t *testing.T) {
	t.Parallel()
	link := pingtest.NewLink(t)
	const delay = 20 * time.Millisecond
	lossy, slow, unreach, v6 := pingtest.Target4(0), pingtest.Target4(1), pingtest.Target4(2), pingtest.Target6(0)
	pingtest.StartResponder(t, link.Server, func(dst netip.Addr, n int) pingtest.Action {
		switch dst {
		case lossy:
			return pingtest.Action{Drop: n%4 == 1 || n%4 == 2} // two of four pings
		case slow:
			return pingtest.Action{Delay: delay}
		case unreach:
			return pingtest.Action{Unreachable: true}
		case v6:
			return pingtest.Action{Drop: n%4 == 3} // one of four
		}
		return pingtest.Action{Drop: true}
	})
	base := t.TempDir()
	writeOrder(t, base, "lossy", icmpOrder(lossy.String(), 4, 4, ""))
	writeOrder(t, base, "slow", icmpOrder(slow.String(), 4, 4, ""))
	writeOrder(t, base, "unreach", icmpOrder(unreach.String(), 4, 4, ""))
	writeOrder(t, base, "v6", icmpOrder(v6.String(), 4, 4, ""))
	writeOrder(t, base, "noname", icmpOrder("nonexistent.invalid", 4, 4, ""))
	bound := fmt.Sprintf("  source_ip: %s\n  interface: %s\n  interval: 500\n", link.ClientAddr4, link.Interface)
	writeOrder(t, base, "bound", icmpOrder(slow.String(), 4, 4, bound))
	writeOrder(t, base, "no-such-interface", icmpOrder(slow.String(), 4, 4, "  interface: nosuch0\n"))
	d := startDaemonIn(t, link.Client, base)

	for _, o := range []struct {
		id   string
		loss int
	}{{"lossy", 2}, {"slow", 0}, {"unreach", 4}, {"v6", 1}, {"noname", 4}, {"bound", 0}, {"no-such-interface", 4}} {
		lr := d.waitResult(o.id, 0, 15*time.Second)
		checkLastResult(t, o.id, lr, 4, 4, o.loss)
		// The RRD holds the answered pings sorted in the middle, the lost ones as
		// unknown split below and above.
		row := rrdtest.FetchRow(t, d.path("output", o.id, "main.rrd"), lr.int(t, "time"), 4*time.Second)
		if len(row) != 6 || row[0] != float64(o.loss) {
			t.Errorf("%s: RRD row %v, want loss %d and 4 pings", o.id, row, o.loss)
			continue
		}
		for i, v := range row[2:] {
			if lost := i < o.loss/2 || i >= 4-(o.loss-o.loss/2); lost != math.IsNaN(v) {
				t.Errorf("%s: RRD ping%d = %v, want unknown only for the %d lost pings centred around the others", o.id, i+1, v, o.loss)
			}
		}
	}
	// Every RTT at least the delay, the median within a millisecond of it (a single
	// reply may be late when the machine does not run the responder in time).
	lr, _ := readLastResult(t, base, "slow")
	for _, k := range []string{"min", "median", "max"} {
		v, _ := strconv.ParseFloat(lr.values[k], 64)
		got := time.Duration(v * float64(time.Second))
		if got < delay || k == "median" && got-delay >= time.Millisecond {
			t.Errorf("slow: %s %v, want %v or more (the median less than 1ms more)", k, got, delay)
		}
	}
	if !strings.Contains(d.logs.String(), `msg="cannot resolve host; results are full loss" id=noname target="fping: nonexistent.invalid"`) {
		t.Error("the unresolvable host is not logged")
	}
	if !strings.Contains(d.logs.String(), `msg="cannot ping; results are full loss" id=no-such-interface`) {
		t.Error("the missing interface is not logged")
	}
	if n := strings.Count(d.logs.String(), "cannot resolve host"); n != 1 {
		t.Errorf("the unresolvable host is logged %d times, want once", n)
	}
}

// TestDaemonRRDCached writes main.rrd through a real rrdcached that holds updates until
// it is told to flush: the daemon's stop flushes them.
func TestDaemonRRDCached(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	cached := rrdtest.StartCached(t, base)
	writeOrder(t, base, "cached", icmpOrder("127.0.0.1", 2, 2, ""))
	d := startDaemon(t, base, "--rrdcached", "unix:"+cached.Sock)
	first := d.waitResult("cached", 0, 10*time.Second)
	last := d.waitResult("cached", first.int(t, "time"), 5*time.Second)
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	rrd := d.path("output", "cached", "main.rrd")
	for _, lr := range []lastResult{first, last} {
		median, _ := strconv.ParseFloat(lr.values["median"], 64)
		if row := rrdtest.FetchRow(t, rrd, lr.int(t, "time"), 2*time.Second); len(row) != 4 || row[0] != 0 || math.Abs(row[1]-median) > 1e-12 {
			t.Errorf("row %v at %s, want loss 0 and median %v from last_result", row, lr.values["time"], median)
		}
	}
}

// TestDaemonUser runs the daemon with --user nobody: it pings with the raw sockets it
// opened as root, and every user and group id of the process is nobody's.
func TestDaemonUser(t *testing.T) {
	t.Parallel()
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir, err := os.MkdirTemp("", "pingmachine-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	base := filepath.Join(dir, "base")
	os.Chmod(dir, 0o755)
	os.Mkdir(base, 0o755)
	os.Chown(base, uid, gid)
	d := startDaemon(t, base, "--user", "nobody")
	writeOrder(t, base, "as-nobody", icmpOrder("127.0.0.1", 2, 2, ""))
	checkLastResult(t, "as-nobody", d.waitResult("as-nobody", 0, 5*time.Second), 2, 2, 0)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Uid": strings.Repeat(nobody.Uid+"\t", 4), "Gid": strings.Repeat(nobody.Gid+"\t", 4)}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":\t")
		if w, ok := want[k]; ok && v+"\t" != w {
			t.Errorf("%s: %q, want %q", k, v, strings.TrimSuffix(w, "\t"))
		}
	}
	caps := procStatus(t, string(status), capFields...)
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"} {
		if caps[f] != "0000000000000000" {
			t.Errorf("%s = %q, want no capability", f, caps[f])
		}
	}
	fi, err := os.Stat(d.path("output", "as-nobody", "last_result"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("last_result not written by nobody: %v", err)
	}
}

// TestDaemonAdapters runs httping, sping and pping orders next to an ICMP order: the
// real httping against an HTTP server in the test, and stand-ins for the SCION tools
// (testdata/scion). Each order gets last_result, main.rrd and telegraf lines; a program
// that hangs is killed at its deadline and the daemon goes on.
func TestDaemonAdapters(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	agents := map[string]string{} // path -> user agent seen
	proxied := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A proxy sees the absolute URL; this one answers for the origin itself.
		mu.Lock()
		if r.URL.IsAbs() && r.URL.Path == "/via-proxy" {
			proxied++
		}
		mu.Unlock()
		io.WriteString(w, "pong\n")
	}))
	defer proxy.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents[r.URL.Path] = r.UserAgent()
		mu.Unlock()
		switch r.URL.Path {
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		case "/forbidden":
			w.WriteHeader(http.StatusForbidden)
		case "/proxy-auth":
			w.WriteHeader(http.StatusProxyAuthRequired)
		case "/unavailable":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/hang":
			<-r.Context().Done() // never answers: each request times out
			return
		}
		io.WriteString(w, "pong\n")
	}))
	defer srv.Close()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	scion := scionStandIns(t)
	base := t.TempDir()
	web := func(path, extra string) string {
		return fmt.Sprintf("user: e2e\nstep: 3\npings: 2\nprobe: httping\nhttping:\n  url: %s%s\n%s", srv.URL, path, extra)
	}
	scionOrder := func(probe, host string) string {
		return fmt.Sprintf("user: e2e\nstep: 3\npings: 3\nprobe: %s\n%s:\n  host: %s\n  interval: 200\n", probe, probe, host)
	}
	writeOrder(t, base, "icmp", icmpOrder("127.0.0.1", 3, 2, ""))
	writeOrder(t, base, "web/ok", web("/ok", "measurement_name: web\n"))
	writeOrder(t, base, "web/slow", web("/slow", ""))
	writeOrder(t, base, "web/forbidden-fails", web("/forbidden", "  http_codes_as_failure: 403,503\n"))
	writeOrder(t, base, "web/forbidden-answers", web("/forbidden", ""))
	writeOrder(t, base, "web/proxy-auth", web("/proxy-auth", "  http_codes_as_failure: 407\n"))
	writeOrder(t, base, "web/unavailable", web("/unavailable", "  http_codes_as_failure: 403,503\n"))
	writeOrder(t, base, "web/hang", web("/hang", ""))
	writeOrder(t, base, "web/agent", web("/agent", "  user_agent: monitor/1.0\n"))
	writeOrder(t, base, "web/proxied", web("/via-proxy", "  proxy: "+proxy.Listener.Addr().String()+"\n"))
	writeOrder(t, base, "web/refused", "user: e2e\nstep: 3\npings: 2\nprobe: httping\nhttping:\n  url: http://127.0.0.1:1/\n")
	writeOrder(t, base, "scion/sping", scionOrder("sping", "1-ff00:0:110,[127.0.0.1]-ok")+"measurement_name: sping\n")
	writeOrder(t, base, "scion/pping", scionOrder("pping", "1-ff00:0:110,[127.0.0.1]-lossy")+"measurement_name: scion\n")
	writeOrder(t, base, "scion/hang", scionOrder("sping", "hang"))
	d := startDaemon(t, base, "--scion-dir", scion, "--telegraf", udp.LocalAddr().String())

	for _, o := range []struct {
		id          string
		pings, loss int
	}{
		{"icmp", 2, 0}, {"web/ok", 2, 0}, {"web/slow", 2, 0}, {"web/forbidden-fails", 2, 2},
		{"web/forbidden-answers", 2, 0}, {"web/refused", 2, 2}, {"web/proxy-auth", 2, 2}, {"web/unavailable", 2, 2},
		{"web/hang", 2, 2}, {"web/agent", 2, 0}, {"web/proxied", 2, 0}, {"scion/sping", 3, 0}, {"scion/pping", 3, 1},
		{"scion/hang", 3, 3},
	} {
		lr := d.waitResult(o.id, 0, 15*time.Second)
		checkLastResult(t, o.id, lr, 3, o.pings, o.loss)
		row := rrdtest.FetchRow(t, d.path("output", o.id, "main.rrd"), lr.int(t, "time"), 3*time.Second)
		median, _ := strconv.ParseFloat(lr.values["median"], 64)
		if len(row) != 2+o.pings || row[0] != float64(o.loss) || o.loss < o.pings && math.Abs(row[1]-median) > 1e-12 {
			t.Errorf("%s: RRD row %v, want loss %d and median %v", o.id, row, o.loss, median)
		}
	}
	mu.Lock()
	if agents["/ok"] != "pingmachine (httping)" || agents["/agent"] != "monitor/1.0" {
		t.Errorf("user agents seen: %q, want the default and the order's", agents)
	}
	if proxied == 0 || agents["/via-proxy"] != "" {
		t.Errorf("requests through the proxy: %d, at the server itself: %q; want all through the proxy", proxied, agents["/via-proxy"])
	}
	mu.Unlock()
	lr, _ := readLastResult(t, base, "web/slow")
	if v, _ := strconv.ParseFloat(lr.values["min"], 64); v < 0.2 || v > 1 {
		t.Errorf("web/slow: min %v s, want the server's 200 ms delay", v)
	}
	// The hanging tool was killed at its deadline; the daemon went on measuring.
	d.waitLog("did not finish in time and was killed", time.Second)
	first, _ := readLastResult(t, base, "icmp")
	d.waitResult("icmp", first.int(t, "time"), 10*time.Second)
	if n := strings.Count(d.logs.String(), `did not finish in time and was killed" id=scion/hang`); n != 1 {
		t.Errorf("the hanging tool is logged %d times, want once", n)
	}

	udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	var lines []string
	seen := func(prefix string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	for !seen("web loss=0,max_rtt=") || !seen("web individual_rtt=") || !seen("scion loss=33.33") ||
		!seen("sping loss=0,max_rtt=") || !seen("sping individual_rtt=") {
		n, err := udp.Read(buf)
		if err != nil {
			t.Fatalf("telegraf lines so far %q: %v", lines, err)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")...)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestDaemonMissingTool: an order whose program is not installed gets no results and one
// log line, not one per step.
func TestDaemonMissingTool(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeOrder(t, base, "web", "user: e2e\nstep: 1\npings: 1\nprobe: httping\nhttping:\n  url: http://127.0.0.1:1/\n")
	writeOrder(t, base, "icmp", icmpOrder("127.0.0.1", 1, 1, ""))
	d := startDaemon(t, base, "--httping", "/nonexistent/httping")
	first := d.waitResult("icmp", 0, 5*time.Second)
	d.waitResult("icmp", first.int(t, "time")+2, 10*time.Second) // three more steps
	if n := strings.Count(d.logs.String(), "cannot run httping"); n != 1 {
		t.Errorf("the missing program is logged %d times, want once", n)
	}
	if !strings.Contains(d.logs.String(), "/nonexistent/httping") {
		t.Error("the log does not name the missing program")
	}
	if exists(d.path("output", "web", "last_result")) {
		t.Error("a result was written although nothing was measured")
	}
}

// scionStandIns copies the SCION stand-ins (testdata/scion) next to the test binary,
// where any user may run them: a daemon running as root runs probes as nobody, who may
// not reach the checkout.
var scionStandIns = func() func(t *testing.T) string {
	var once sync.Once
	var err error
	return func(t *testing.T) string {
		t.Helper()
		build(t)
		dir := filepath.Join(buildDir, "scion")
		once.Do(func() {
			if err = os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
				return
			}
			for _, name := range []string{"scmp_fping", "pingpong"} {
				var b []byte
				if b, err = os.ReadFile(filepath.Join("../../testdata/scion/bin", name)); err != nil {
					return
				}
				if err = os.WriteFile(filepath.Join(dir, "bin", name), b, 0o755); err != nil {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
}()

// procStatus reads the given fields of a /proc/<pid>/status text.
func procStatus(t *testing.T, status string, fields ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for line := range strings.SplitSeq(status, "\n") {
		k, v, _ := strings.Cut(line, ":\t")
		if slices.Contains(fields, k) {
			got[k] = v
		}
	}
	return got
}

var capFields = []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}

// TestDaemonCapabilities: once its sockets are open, a daemon started as root holds no
// capability, not even in its bounding set, and neither do the probe programs it runs;
// it still pings with the sockets it opened.
func TestDaemonCapabilities(t *testing.T) {
	logDir, err := os.MkdirTemp("", "pingmachine-status-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(logDir) })
	status := filepath.Join(logDir, "status")
	t.Setenv("SCION_STATUS_LOG", status)
	base := t.TempDir()
	writeOrder(t, base, "sping", "user: e2e\nstep: 2\npings: 1\nprobe: sping\nsping:\n  host: ok\n")
	writeOrder(t, base, "icmp", icmpOrder("127.0.0.1", 2, 1, ""))
	d := startDaemon(t, base, "--scion-dir", scionStandIns(t))
	checkLastResult(t, "sping", d.waitResult("sping", 0, 10*time.Second), 2, 1, 0)
	checkLastResult(t, "icmp", d.waitResult("icmp", 0, 10*time.Second), 2, 1, 0)
	daemonStatus, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	probeStatus, err := os.ReadFile(status)
	if err != nil {
		t.Fatalf("the stand-in wrote no status: %v", err)
	}
	for who, st := range map[string]string{"daemon": string(daemonStatus), "probe": string(probeStatus)} {
		got := procStatus(t, st, capFields...)
		for _, f := range capFields {
			if got[f] != "0000000000000000" {
				t.Errorf("%s %s = %q, want no capability", who, f, got[f])
			}
		}
	}
}

// TestDaemonDirsRemoved: output/ and archive/ removed under a running daemon come back
// with the next result and the next archiving, and the rounds go on into a new main.rrd.
func TestDaemonDirsRemoved(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeOrder(t, base, "a/keep", icmpOrder("127.0.0.1", 1, 1, ""))
	writeOrder(t, base, "a/gone", icmpOrder("127.0.0.2", 1, 1, ""))
	d := startDaemon(t, base)
	first := d.waitResult("a/keep", 0, 5*time.Second)
	d.waitResult("a/gone", 0, 5*time.Second)
	os.RemoveAll(d.path("output"))
	os.RemoveAll(d.path("archive"))
	lr := d.waitResult("a/keep", first.int(t, "time"), 5*time.Second)
	checkLastResult(t, "a/keep", lr, 1, 1, 0)
	if row := rrdtest.FetchRow(t, d.path("output", "a", "keep", "main.rrd"), lr.int(t, "time"), time.Second); len(row) != 3 || row[0] != 0 {
		t.Errorf("the recreated main.rrd holds %v at %s, want the round", row, lr.values["time"])
	}
	d.waitResult("a/gone", 0, 5*time.Second)
	os.Remove(d.path("orders", "a", "gone"))
	d.waitFor("archive/a/gone", 5*time.Second, func() bool { return exists(d.path("archive", "a", "gone", "last_result")) })
}

// TestDaemonKill9: killed without warning while writing hundreds of results a second,
// the daemon leaves every main.rrd readable by rrdtool and every last_result whole.
func TestDaemonKill9(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	const n = 200
	for i := range n {
		writeOrder(t, base, fmt.Sprintf("load/%d", i), icmpOrder(fmt.Sprintf("127.2.%d.%d", i/250, i%250+1), 1, 1, ""))
	}
	d := startDaemon(t, base)
	d.waitFor("results of every order", 20*time.Second, func() bool {
		for i := range n {
			if !exists(d.path("output", "load", strconv.Itoa(i), "last_result")) {
				return false
			}
		}
		return true
	})
	time.Sleep(1500 * time.Millisecond) // in the middle of writing
	d.cmd.Process.Kill()
	<-d.done
	for i := range n {
		id := fmt.Sprintf("load/%d", i)
		lr, ok := readLastResult(t, base, id)
		if !ok || !slices.Equal(lr.keys, lastResultKeys) {
			t.Errorf("%s: last_result not whole: %v", id, lr.keys)
		}
		rrdtest.Info(t, d.path("output", id, "main.rrd"))
	}
}

// TestDaemonDiskFull runs the daemon on a small tmpfs and fills it: the results that
// cannot be written are reported, the last whole last_result stays, nothing half written
// is left, and writing resumes when there is room again.
func TestDaemonDiskFull(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", base).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs (needs root): %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", base).Run() })
	writeOrder(t, base, "full", icmpOrder("127.0.0.1", 1, 1, ""))
	d := startDaemon(t, base)
	before := d.waitResult("full", 0, 5*time.Second)

	// Fill the file system to the last byte.
	filler := filepath.Join(base, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	f.ReadFrom(io.LimitReader(zeros{}, 8<<20))
	f.Close()
	d.waitLog("no space left on device", 5*time.Second)
	during, ok := readLastResult(t, base, "full")
	if !ok || !slices.Equal(during.keys, lastResultKeys) {
		t.Errorf("last_result while the disk is full: %v, want the last whole one", during.keys)
	}
	if exists(d.path("output", "full", ".last_result.spare")) {
		t.Error("a half-written spare of last_result is left")
	}

	os.Remove(filler)
	after := d.waitResult("full", max(before.int(t, "time"), during.int(t, "time")), 5*time.Second)
	checkLastResult(t, "full", after, 1, 1, 0)
	rrdtest.Info(t, d.path("output", "full", "main.rrd")) // rrdtool still reads it
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestDaemonRRDCachedRestart: rrdcached crashes (SIGKILL) and comes back. The daemon
// logs the outage once, goes on writing last_result, keeps the RRD updates meanwhile, and
// sends them once rrdcached is back: the rounds of the outage are in main.rrd.
func TestDaemonRRDCachedRestart(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	cached := rrdtest.StartCached(t, base)
	writeOrder(t, base, "cached", icmpOrder("127.0.0.1", 1, 1, ""))
	d := startDaemon(t, base, "--rrdcached", "unix:"+cached.Sock)
	first := d.waitResult("cached", 0, 10*time.Second)

	cached.Kill()
	d.waitLog("rrdcached cannot be reached", 5*time.Second)
	during := d.waitResult("cached", first.int(t, "time"), 5*time.Second) // last_result goes on
	time.Sleep(2 * time.Second)                                           // more rounds to keep

	cached.Start()
	d.waitLog("rrdcached is back", 10*time.Second)
	after := d.waitResult("cached", during.int(t, "time")+2, 10*time.Second)
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	// The row of the first kept round can be unknown: the updates rrdcached took just
	// before the crash die with its journal's stdio buffer, and the gap they leave
	// exceeds the heartbeat. Every later round must be there.
	rrd := d.path("output", "cached", "main.rrd")
	for ts := during.int(t, "time") + 1; ts <= after.int(t, "time"); ts++ {
		if row := rrdtest.FetchRow(t, rrd, ts, time.Second); len(row) != 3 || row[0] != 0 {
			t.Errorf("row %v at %d, want the round (kept from %d)", row, ts, during.int(t, "time"))
		}
	}
	logs := d.logs.String()
	if n := strings.Count(logs, "rrdcached cannot be reached"); n != 1 {
		t.Errorf("the outage logged %d times, want once", n)
	}
	if strings.Contains(logs, `msg="writing results"`) {
		t.Error("results were lost while rrdcached was away")
	}
}

// TestDaemonHostileOrders drops thousands of broken and malicious orders next to a few
// good ones: the daemon keeps running, reports each bad file once, measures the good
// ones, and writes nothing outside its base directory.
func TestDaemonHostileOrders(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	base := filepath.Join(root, "base")
	outside := filepath.Join(root, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "order"), []byte(icmpOrder("127.0.0.1", 1, 1, "")), 0o644)
	for i := range 5 {
		writeOrder(t, base, fmt.Sprintf("good/%d", i), icmpOrder(fmt.Sprintf("127.3.0.%d", i+1), 1, 1, ""))
	}
	bad := map[string]string{
		"binary":       "\x00\x01\xff\xfe\x7fELF junk \x00",
		"huge":         "user: " + strings.Repeat("x", 200<<10) + "\n",
		"bomb":         "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nuser: *c\n",
		"absurd":       "user: x\nstep: 99999999999999999999\npings: -3\nprobe: fping\nfping: {host: 127.0.0.1}\n",
		"option-host":  icmpOrder("-f/etc/passwd", 60, 5, ""),
		"option-url":   "user: x\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: '--url=http://x/'}\n",
		"option-scion": "user: x\nstep: 60\npings: 5\nprobe: sping\nsping: {host: '-remote', flags: '; rm -rf /'}\n",
	}
	for name, content := range bad {
		writeOrder(t, base, "bad/"+name, content)
	}
	const many = 2000
	for i := range many {
		writeOrder(t, base, fmt.Sprintf("many/%d", i), fmt.Sprintf("user: x\nstep: %d\npings: 5\n", i))
	}
	// Links that try to lead out: a file, and a directory with an order in it.
	os.Symlink(filepath.Join(outside, "order"), filepath.Join(base, "orders", "linked-file"))
	os.Symlink(outside, filepath.Join(base, "orders", "linked-dir"))
	// An order that asks for its output elsewhere: unknown keys do nothing.
	writeOrder(t, base, "good/redirect", icmpOrder("127.3.0.9", 1, 1, "my_output_dir: "+outside+"\nmy_archive_dir: "+outside+"\n"))

	d := startDaemon(t, base)
	for i := range 5 {
		checkLastResult(t, "good", d.waitResult(fmt.Sprintf("good/%d", i), 0, 15*time.Second), 1, 1, 0)
	}
	d.waitResult("good/redirect", 0, 5*time.Second)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog("rescanning orders", 5*time.Second)
	first, _ := readLastResult(t, base, "good/0")
	d.waitResult("good/0", first.int(t, "time"), 5*time.Second)

	logs := d.logs.String()
	if n := strings.Count(logs, `msg="invalid order"`); n != many+len(bad) {
		t.Errorf("%d invalid orders logged, want each of %d once (none again on rescan)", n, many+len(bad))
	}
	for name := range bad {
		if !exists(d.path("orders", "bad", name)) || exists(d.path("output", "bad", name)) {
			t.Errorf("bad/%s: removed, or measured", name)
		}
	}
	// The linked file is read (a link to a valid order is an order), but every path
	// written stays below the base directory; the linked directory is not followed.
	if exists(d.path("output", "linked-dir")) {
		t.Error("the linked directory was followed")
	}
	if names := storetest.Tree(t, outside); !slices.Equal(names, []string{"order"}) {
		t.Errorf("outside the base directory: %v, want only the order placed there", names)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestDaemonPrivileges runs the daemon as nobody with CAP_NET_RAW as a file capability
// (setcap) and as an ambient capability (what systemd's AmbientCapabilities does), and
// as root with and without --user, each as the Makefile builds it (no cgo) and as a
// plain `go build` does (cgo). Fail closed: it pings over raw sockets and holds no
// capability on any thread once they are open, or it refuses to start and says how to
// build it.
func TestDaemonPrivileges(t *testing.T) {
	bin := build(t)
	cgoBin, err := cgoBinary()
	if err != nil {
		t.Fatalf("building with cgo (make test installs gcc): %v", err)
	}
	withFileCap := func(bin string) string {
		capBin := bin + "-cap"
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(capBin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("setcap", "cap_net_raw+ep", capBin).CombinedOutput(); err != nil {
			t.Fatalf("setcap (make test installs libcap2-bin): %v\n%s", err, out)
		}
		return capBin
	}
	capBin, cgoCapBin := withFileCap(bin), withFileCap(cgoBin)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	asNobody := []string{"setpriv", "--reuid=" + nobody.Uid, "--regid=" + nobody.Gid, "--clear-groups"}
	ambient := append(slices.Clone(asNobody), "--inh-caps=+net_raw", "--ambient-caps=+net_raw")
	for _, tc := range []struct {
		name    string
		argv    []string
		refused bool
	}{
		{"file capability", append(slices.Clone(asNobody), capBin), false},
		{"ambient capability", append(slices.Clone(ambient), bin), false},
		{"root with --user", []string{bin, "--user", "nobody"}, false},
		{"cgo/file capability", append(slices.Clone(asNobody), cgoCapBin), true},
		{"cgo/ambient capability", append(slices.Clone(ambient), cgoBin), true},
		{"cgo/root", []string{cgoBin}, true},
		// Leaving root clears every thread's capabilities, with or without cgo.
		{"cgo/root with --user", []string{cgoBin, "--user", "nobody"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "pingmachine-unprivileged-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o755)
			base := filepath.Join(dir, "base")
			os.Mkdir(base, 0o755)
			os.Chown(base, uid, gid)
			command := func(string, ...string) *exec.Cmd {
				return exec.Command(tc.argv[0], append(tc.argv[1:], "--debug", "--basedir", base)...)
			}
			if tc.refused {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, stderr, code := runCmd(t, exec.CommandContext(ctx, tc.argv[0], append(tc.argv[1:], "--debug", "--basedir", base)...))
				if code != 1 || !strings.Contains(stderr, "refusing to run holding capabilities (") ||
					!strings.Contains(stderr, "build it with CGO_ENABLED=0") || strings.Contains(stderr, "pingmachine started") {
					t.Errorf("exit %d, stderr:\n%s\nwant 1 and a refusal that says how to build it", code, stderr)
				}
				if exists(filepath.Join(base, "output")) {
					t.Error("a refused daemon made its output directory")
				}
				return
			}
			d := startDaemonWith(t, command, base)
			writeOrder(t, base, "v4", icmpOrder("127.0.0.1", 1, 1, ""))
			writeOrder(t, base, "v6", icmpOrder("::1", 1, 1, ""))
			checkLastResult(t, "v4", d.waitResult("v4", 0, 5*time.Second), 1, 1, 0)
			checkLastResult(t, "v6", d.waitResult("v6", 0, 5*time.Second), 1, 1, 0)
			for _, want := range []string{"mode=raw family=ipv4", "mode=raw family=ipv6"} {
				if !strings.Contains(d.logs.String(), want) {
					t.Errorf("the log does not say %q", want)
				}
			}
			threads, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", d.cmd.Process.Pid))
			if err != nil || len(threads) < 2 {
				t.Fatalf("threads of the daemon: %v %v", threads, err)
			}
			for _, th := range threads {
				status, err := os.ReadFile(th)
				if err != nil {
					t.Fatal(err)
				}
				got := procStatus(t, string(status), append([]string{"Uid"}, capFields...)...)
				if got["Uid"] != strings.Repeat(nobody.Uid+"\t", 3)+nobody.Uid {
					t.Errorf("%s: Uid %q, want nobody's", th, got["Uid"])
				}
				for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
					if got[f] != "0000000000000000" {
						t.Errorf("%s: %s = %q, want no capability", th, f, got[f])
					}
				}
			}
		})
	}
}
