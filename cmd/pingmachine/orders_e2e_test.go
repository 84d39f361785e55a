package main

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/store/storetest"
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

// TestDaemonRefusedIDs: orders whose ids the store cannot take (a backslash; an output
// path longer than the system allows) are refused when read, each reported once with the
// reason, instead of an error at every round; the other orders are measured.
func TestDaemonRefusedIDs(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	// An id that makes output/<id>/.last_result.spare 4096 bytes long, one more than the
	// system allows, while orders/<id> is shorter.
	long := strings.Repeat(strings.Repeat("x", 199)+"/", 19)
	long += strings.Repeat("y", 4096-len(base+"/output/"+long+"/.last_result.spare"))
	refused := map[string]string{
		`back\slash`: "a backslash in the order id",
		long:         "bytes long: the paths of its output in " + filepath.Join(base, "archive"),
	}
	for id := range refused {
		writeOrder(t, base, id, icmpOrder("127.0.0.1", 1, 1, ""))
	}
	writeOrder(t, base, "good", icmpOrder("127.0.0.2", 1, 1, ""))
	d := startDaemon(t, base)
	lr := d.waitResult("good", 0, 5*time.Second)
	d.waitResult("good", lr.int(t, "time")+1, 5*time.Second)

	logs := d.logs.String()
	for id, reason := range refused {
		if n := strings.Count(logs, reason); n != 1 {
			t.Errorf("%.40s: %q logged %d times, want once", id, reason, n)
		}
	}
	if strings.Contains(logs, "level=ERROR") {
		t.Error("errors logged")
	}
	if names := storetest.Tree(t, d.path("output")); !slices.Equal(names, []string{"good/", "good/.last_result.spare", "good/last_result", "good/main.rrd"}) {
		t.Errorf("output/ holds %.200q, want only the good order's", names)
	}
}

// TestDaemonSlowWriter rewrites an order in place in two parts 250 ms apart, the first
// of which is a valid order of another step. The daemon reads it once it is whole, and
// so keeps main.rrd: an order read half-way would have moved it aside for a new one.
func TestDaemonSlowWriter(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	order := "user: e2e\npings: 1\nprobe: fping\nfping:\n  host: 127.0.0.1\nstep: 1"
	writeOrder(t, base, "slow", order+"0\n")
	d := startDaemon(t, base)
	d.waitLog("new order", 5*time.Second)
	rrd := d.path("output", "slow", "main.rrd")
	d.waitFor("main.rrd", 5*time.Second, func() bool { return exists(rrd) })

	f, err := os.Create(d.path("orders", "slow"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(order)
	time.Sleep(250 * time.Millisecond)
	f.WriteString("0\n")
	f.Close()
	// An order written after the slow one falls due no sooner: once it is read, so is
	// the slow one.
	writeOrder(t, base, "later", icmpOrder("127.0.0.2", 1, 1, ""))
	d.waitLog("id=later", 5*time.Second)

	if strings.Contains(d.logs.String(), `msg="changed order" id=slow`) {
		t.Error("the order was read before it was whole")
	}
	for _, name := range storetest.Tree(t, d.path("output", "slow")) {
		if name != "main.rrd" && name != "last_result" {
			t.Errorf("output/slow holds %s: main.rrd was moved aside", name)
		}
	}
}

// TestDaemonUnreadableDirectory runs the daemon as nobody (root ignores permissions) and
// takes the permissions away from directories of orders: one while it runs, one before
// it starts, whose order's output is there from an earlier run. An unreadable directory
// is not a deleted one: its orders go on, nothing is archived, the problem is logged once,
// and with the permissions back all is as before.
func TestDaemonUnreadableDirectory(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "pingmachine-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	base := filepath.Join(dir, "base")
	writeOrder(t, base, "team/a", icmpOrder("127.0.0.1", 1, 1, ""))
	writeOrder(t, base, "other/b", icmpOrder("127.0.0.2", 1, 1, ""))
	writeOrder(t, base, "late/c", icmpOrder("127.0.0.3", 1, 1, ""))
	os.MkdirAll(filepath.Join(base, "output", "late", "c"), 0o755)
	os.WriteFile(filepath.Join(base, "output", "late", "c", "last_result"), []byte("time: 1\n"), 0o644)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	for _, p := range []string{base, filepath.Join(base, "output"), filepath.Join(base, "output", "late"), filepath.Join(base, "output", "late", "c")} {
		os.Chown(p, uid, gid)
	}
	os.Chmod(filepath.Join(base, "orders", "late"), 0)

	d := startDaemon(t, base, "--user", "nobody")
	first := d.waitResult("team/a", 0, 5*time.Second)
	d.waitResult("other/b", 0, 5*time.Second)
	rescans := 0
	rescan := func() {
		t.Helper()
		rescans++
		d.cmd.Process.Signal(syscall.SIGHUP)
		d.waitFor("a rescan", 5*time.Second, func() bool { return strings.Count(d.logs.String(), "rescanning orders") >= rescans })
	}
	os.Chmod(filepath.Join(base, "orders", "team"), 0)
	rescan()
	rescan()
	lr := d.waitResult("team/a", first.int(t, "time"), 5*time.Second)
	d.waitResult("team/a", lr.int(t, "time"), 5*time.Second)
	logs := d.logs.String()
	for _, name := range []string{"orders/team", "orders/late"} {
		if n := strings.Count(logs, `msg="cannot read an orders directory: the orders below it are kept as they are" dir=`+name); n != 1 {
			t.Errorf("%s: unreadable logged %d times, want once", name, n)
		}
	}
	for _, id := range []string{"team/a", "late/c"} {
		if exists(d.path("archive", id)) || !exists(d.path("output", id, "last_result")) {
			t.Errorf("output of %s archived", id)
		}
	}
	if strings.Contains(logs, "removed order") {
		t.Error("orders removed")
	}

	os.Chmod(filepath.Join(base, "orders", "team"), 0o755)
	os.Chmod(filepath.Join(base, "orders", "late"), 0o755)
	rescan()
	checkLastResult(t, "late/c", d.waitResult("late/c", 1, 5*time.Second), 1, 1, 0)
	lr, _ = readLastResult(t, base, "team/a")
	d.waitResult("team/a", lr.int(t, "time"), 5*time.Second)
	for _, name := range []string{"orders/team", "orders/late"} {
		d.waitLog(`msg="the orders directory can be read again" dir=`+name, 5*time.Second)
	}
	if strings.Contains(d.logs.String(), "removed order") {
		t.Error("orders removed")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestDaemonRenamedDirectories renames a directory of orders, then deletes orders/ and
// makes it anew: an order written into either afterwards is measured within seconds, not
// at the next full scan a minute later.
func TestDaemonRenamedDirectories(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeOrder(t, base, "a/x", icmpOrder("127.0.0.1", 1, 1, ""))
	d := startDaemon(t, base)
	d.waitResult("a/x", 0, 5*time.Second)

	if err := os.Rename(d.path("orders", "a"), d.path("orders", "b")); err != nil {
		t.Fatal(err)
	}
	d.waitResult("b/x", 0, 5*time.Second)
	writeOrder(t, base, "b/y", icmpOrder("127.0.0.2", 1, 1, ""))
	checkLastResult(t, "b/y", d.waitResult("b/y", 0, 5*time.Second), 1, 1, 0)

	if err := os.RemoveAll(d.path("orders")); err != nil {
		t.Fatal(err)
	}
	d.waitFor("the orders archived", 5*time.Second, func() bool {
		return exists(d.path("archive", "b", "x")) && exists(d.path("archive", "b", "y"))
	})
	if err := os.Mkdir(d.path("orders"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeOrder(t, base, "c/z", icmpOrder("127.0.0.3", 1, 1, ""))
	checkLastResult(t, "c/z", d.waitResult("c/z", 0, 5*time.Second), 1, 1, 0)
}

// TestDaemonLinkedOrders runs the daemon on a base directory whose orders/ is a symbolic
// link to a directory elsewhere, as configuration management may assemble it. The
// orders there are measured, the link is logged, a new order is seen at once, and an
// expired one is removed where the link leads; nothing else is written there, and a link
// to a directory below orders/ is not followed.
func TestDaemonLinkedOrders(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	base := filepath.Join(root, "base")
	cm := filepath.Join(root, "cm")
	writeOrder(t, cm, "a", icmpOrder("127.0.0.1", 1, 1, ""))
	writeOrder(t, cm, "old", icmpOrder("127.0.0.2", 1, 1, ""))
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(cm, "orders", "old"), past, past)
	elsewhere := filepath.Join(root, "elsewhere")
	writeOrder(t, elsewhere, "x", icmpOrder("127.0.0.3", 1, 1, ""))
	os.Symlink(filepath.Join(elsewhere, "orders"), filepath.Join(cm, "orders", "linked-dir"))
	os.MkdirAll(base, 0o755)
	os.Symlink(filepath.Join(cm, "orders"), filepath.Join(base, "orders"))

	d := startDaemon(t, base)
	checkLastResult(t, "a", d.waitResult("a", 0, 5*time.Second), 1, 1, 0)
	d.waitLog(`msg="reading a directory through a symbolic link" dir=`+d.path("orders")+" from="+filepath.Join(cm, "orders"), time.Second)
	writeOrder(t, cm, "team/b", icmpOrder("127.0.0.4", 1, 1, ""))
	checkLastResult(t, "team/b", d.waitResult("team/b", 0, 5*time.Second), 1, 1, 0)

	if exists(filepath.Join(cm, "orders", "old")) {
		t.Error("the expired order was not removed where orders/ leads")
	}
	if exists(d.path("output", "linked-dir")) {
		t.Error("the linked directory below orders/ was followed")
	}
	if names := storetest.Tree(t, cm); !slices.Equal(names, []string{"orders/", "orders/a", "orders/linked-dir", "orders/team/", "orders/team/b"}) {
		t.Errorf("where orders/ leads: %q, want the orders and nothing else", names)
	}
}
