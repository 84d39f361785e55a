package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDaemonFIFOInOrders puts named pipes among the orders, and swaps one back and forth
// with an order file (rename(2) with RENAME_EXCHANGE) while the daemon runs, so that
// the watcher now and then finds a pipe where it has just seen the order. Opening a pipe
// waits for a writer: the daemon must never do it. It reports the lasting pipe once, goes
// on measuring the order, sees an order added afterwards, and exits at once on SIGTERM.
func TestDaemonFIFOInOrders(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeOrder(t, base, "swapped", icmpOrder("127.0.0.1", 1, 1, ""))
	fifo := filepath.Join(base, "orders", ".fifo")
	for _, p := range []string{fifo, filepath.Join(base, "orders", "pipe")} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, base)
	d.waitResult("swapped", 0, 5*time.Second)

	swap := func() {
		if err := unix.Renameat2(unix.AT_FDCWD, fifo, unix.AT_FDCWD, d.path("orders", "swapped"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("exchanging the order and a named pipe: %v", err)
		}
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		swap()
		swap()
	}
	writeOrder(t, base, "after", icmpOrder("127.0.0.2", 1, 1, ""))
	checkLastResult(t, "after", d.waitResult("after", 0, 5*time.Second), 1, 1, 0)
	lr, _ := readLastResult(t, base, "swapped")
	d.waitResult("swapped", lr.int(t, "time"), 5*time.Second)
	if n := strings.Count(d.logs.String(), "orders/pipe: not a regular file but a named pipe (FIFO)"); n != 1 {
		t.Errorf("the named pipe reported %d times, want once", n)
	}

	start := time.Now()
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("exit took %v after SIGTERM", took)
	}
}
