package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
	"pingmachine/rrdfmt/rrdtest"
)

// TestDaemonLogReaderGone: when whatever reads the daemon's stderr goes away, its next log
// lines fail to be written, and it goes on measuring (it died of SIGPIPE, exit 141).
func TestDaemonLogReaderGone(t *testing.T) {
	t.Parallel()
	bin := build(t)
	base := t.TempDir()
	writeOrder(t, base, "v4", icmpOrder("127.0.0.1", 1, 1, ""))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--debug", "--basedir", base)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// resultAfter waits for a last_result stamped later than after, while the daemon lives.
	resultAfter := func(after int64) int64 {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if lr, ok := readLastResult(t, base, "v4"); ok && lr.int(t, "time") > after {
				return lr.int(t, "time")
			}
			select {
			case <-exited:
				t.Fatalf("the daemon died when its log reader went away: %v", waitErr)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no last_result of v4 after %d within 5 s", after)
			}
		}
	}
	first := resultAfter(0)
	r.Close()
	// Debug lines come with every round; a rescan logs too.
	cmd.Process.Signal(syscall.SIGHUP)
	resultAfter(first + 2)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10 s of SIGTERM")
	}
}

// TestDaemonOrderBackWithinAStep deletes an order right after its first round and writes
// it again within the same step: the output comes back from the archive, and the next
// round is stamped a step later instead of again (which main.rrd refuses: "illegal
// attempt to update using time T when last update time is T").
func TestDaemonOrderBackWithinAStep(t *testing.T) {
	t.Parallel()
	const step = 10
	base := t.TempDir()
	d := startDaemon(t, base)
	// Start early in a step, so that the order's whole first life fits in it.
	time.Sleep(time.Until(time.Unix(time.Now().Unix()/step*step+step, 500e6)))
	order := icmpOrder("127.0.0.1", step, 1, "")
	writeOrder(t, base, "o", order)
	first := d.waitResult("o", 0, 5*time.Second).int(t, "time")
	os.Remove(d.path("orders", "o"))
	d.waitFor("o archived", 5*time.Second, func() bool { return exists(d.path("archive", "o", "main.rrd")) })
	writeOrder(t, base, "o", order)
	d.waitFor("o restored", 5*time.Second, func() bool { return exists(d.path("output", "o", "main.rrd")) })
	if now := time.Now().Unix(); now/step != (first+step)/step {
		t.Fatalf("the order came back at %d, not within the step of its first round (stamped %d)", now, first)
	}
	next := d.waitResult("o", first, 3*step*time.Second).int(t, "time")
	if next != first+step {
		t.Errorf("the round after the order came back is stamped %d, want %d", next, first+step)
	}
	if row := rrdtest.FetchRow(t, d.path("output", "o", "main.rrd"), next, step*time.Second); len(row) != 3 || row[0] != 0 {
		t.Errorf("main.rrd row at %d: %v, want the round", next, row)
	}
	for _, bad := range []string{"illegal attempt", "writing results"} {
		if strings.Contains(d.logs.String(), bad) {
			t.Errorf("the log says %q", bad)
		}
	}
}

// TestDaemonStopped stops the daemon (SIGSTOP, as a paused VM) for longer than two steps:
// after SIGCONT no round is stamped with a time in which it did not run, and rounds go on.
func TestDaemonStopped(t *testing.T) {
	t.Parallel()
	const step = 5
	base := t.TempDir()
	d := startDaemon(t, base)
	writeOrder(t, base, "o", icmpOrder("127.0.0.1", step, 1, ""))
	first := d.waitResult("o", 0, 5*time.Second).int(t, "time")
	d.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(12 * time.Second)
	resumed := time.Now()
	d.cmd.Process.Signal(syscall.SIGCONT)
	// A round that starts after SIGCONT, in step k, is stamped (k-1)*step at the earliest.
	earliest := resumed.Unix()/step*step - step
	seen := map[int64]bool{}
	for last := first; len(seen) < 3; {
		last = d.waitResult("o", last, 3*step*time.Second).int(t, "time")
		seen[last] = true
		if last < earliest {
			t.Errorf("after SIGCONT at %d, a round stamped %d, inside the time the daemon was stopped", resumed.Unix(), last)
		}
	}
	d.waitLog("were skipped", time.Second)
}

// TestDaemonSocketsReleased runs the daemon with 128 file descriptors (prlimit) in a
// namespace that allows datagram ICMP sockets, and gives it 150 orders, each pinging from
// a source address of its own: the sources beyond what the limit allows get full loss
// with the reason, an unrelated order goes on being written, and once the 150 orders are
// deleted their sockets are closed and a new source works again.
func TestDaemonSocketsReleased(t *testing.T) {
	t.Parallel()
	ns := pingtest.NewNamespace(t)
	ns.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	base := t.TempDir()
	d := startDaemonWith(t, func(bin string, args ...string) *exec.Cmd {
		return ns.Command("prlimit", append([]string{"--nofile=128:128", "--", bin}, args...)...)
	}, base)
	pid := d.cmd.Process.Pid // ip netns exec and prlimit exec pingmachine
	writeOrder(t, base, "plain", icmpOrder("127.0.0.1", 1, 1, ""))
	const sources = 150
	for i := range sources {
		writeOrder(t, base, fmt.Sprintf("src/%d", i), icmpOrder("127.0.0.1", 2, 1, fmt.Sprintf("  source_ip: 127.0.1.%d\n", i+1)))
	}
	d.waitLog("raise the limit or use fewer source/interface pairs", 10*time.Second)
	measured, refused := 0, 0
	d.waitFor("a result of every source order", 10*time.Second, func() bool {
		measured, refused = 0, 0
		for i := range sources {
			lr, ok := readLastResult(t, base, fmt.Sprintf("src/%d", i))
			if !ok {
				return false
			}
			if lr.values["loss"] == "0" {
				measured++
			} else {
				refused++
			}
		}
		return true
	})
	if measured == 0 || refused == 0 {
		t.Errorf("%d source orders measured, %d refused: want both (the limit is between)", measured, refused)
	}
	last := d.waitResult("plain", 0, 5*time.Second).int(t, "time")
	d.waitResult("plain", last+1, 5*time.Second)
	busy := openFiles(t, pid)
	os.RemoveAll(d.path("orders", "src"))
	d.waitFor("the sockets of the deleted orders closed", 10*time.Second, func() bool { return openFiles(t, pid) < busy-measured/2 })
	writeOrder(t, base, "again", icmpOrder("127.0.0.1", 1, 1, "  source_ip: 127.0.2.1\n"))
	checkLastResult(t, "again", d.waitResult("again", 0, 5*time.Second), 1, 1, 0)
	if strings.Contains(d.logs.String(), "too many open files") && !strings.Contains(d.logs.String(), "RLIMIT_NOFILE") {
		t.Error("a write failed for want of file descriptors")
	}
	if strings.Contains(d.logs.String(), "writing results") {
		t.Error("results could not be written")
	}
}

// openFiles counts the file descriptors pid has open.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
