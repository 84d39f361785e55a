package rrdtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cached is a real rrdcached run for one test. It keeps every file inside Base (-B -b:
// relative paths are relative to Base, absolute ones must lie inside it), writes files only
// on FLUSH or after an hour (-w 3600), so that a test sees what its code flushes, and
// keeps a journal, as Debian's rrdcached does, so that a restart loses only what a
// SIGKILL catches in the journal's stdio buffer.
type Cached struct {
	Base string // the directory of the files
	Sock string // the unix socket it listens on
	TCP  string // the loopback TCP address it also listens on, or empty

	tb   testing.TB
	args []string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	runs []string // the output of the runs that ended
}

// StartCached starts an rrdcached for base that listens on a unix socket. The test's
// cleanup kills it, and prints its output if the test failed.
func StartCached(tb testing.TB, base string) *Cached {
	tb.Helper()
	return startCached(tb, base, false)
}

// StartCachedTCP is StartCached with a listener on a free loopback TCP port as well.
func StartCachedTCP(tb testing.TB, base string) *Cached {
	tb.Helper()
	return startCached(tb, base, true)
}

func startCached(tb testing.TB, base string, tcp bool) *Cached {
	tb.Helper()
	if _, err := exec.LookPath("rrdcached"); err != nil {
		tb.Fatal("rrdcached is not installed: the tests need it (make test installs it)")
	}
	run := tb.TempDir()
	c := &Cached{Base: base, Sock: filepath.Join(run, "sock"), tb: tb}
	journal := filepath.Join(run, "journal")
	if err := os.Mkdir(journal, 0o755); err != nil {
		tb.Fatal(err)
	}
	// -g: foreground. -z must be positive (1.7.2 refuses 0), and -f at least twice -w
	// to keep the daemon from warning. -F: flush everything at shutdown.
	c.args = []string{"-g", "-B", "-b", base, "-F", "-w", "3600", "-z", "1", "-f", "7200",
		"-j", journal, "-p", filepath.Join(run, "pid"), "-l", "unix:" + c.Sock}
	if tcp {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		c.TCP = net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
		l.Close()
		c.args = append(c.args, "-l", c.TCP)
	}
	c.Start()
	tb.Cleanup(func() {
		c.Kill()
		if tb.Failed() {
			tb.Logf("rrdcached output:\n%s", strings.Join(c.runs, "\n-- restarted --\n"))
		}
	})
	return c
}

// Start starts the daemon again after Stop or Kill, and waits until it accepts
// connections on every listener.
func (c *Cached) Start() {
	c.tb.Helper()
	os.Remove(c.Sock) // left behind by a killed daemon
	c.out = &bytes.Buffer{}
	c.cmd = exec.Command("rrdcached", c.args...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		c.tb.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !c.up(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.Kill()
			c.tb.Fatalf("rrdcached did not start listening; output:\n%s", c.runs[len(c.runs)-1])
		}
	}
}

func (c *Cached) up() bool {
	addrs := [][2]string{{"unix", c.Sock}}
	if c.TCP != "" {
		addrs = append(addrs, [2]string{"tcp", c.TCP})
	}
	for _, a := range addrs {
		conn, err := net.Dial(a[0], a[1])
		if err != nil {
			return false
		}
		conn.Close()
	}
	return true
}

// Stop ends the daemon with sig and waits for it: after SIGTERM it has written what it
// held; after SIGKILL what it took since its journal's last write is lost, as rrdcached
// keeps its journal in a stdio buffer.
func (c *Cached) Stop(sig syscall.Signal) {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(sig)
	c.cmd.Wait()
	c.runs = append(c.runs, c.out.String())
	c.cmd = nil
}

// Kill ends the daemon as a crash would (SIGKILL).
func (c *Cached) Kill() { c.Stop(syscall.SIGKILL) }
