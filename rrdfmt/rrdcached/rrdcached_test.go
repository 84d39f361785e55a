package rrdcached

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pingmachine/rrdfmt"
)

// daemon is a real rrdcached started for one test, on a unix socket and on loopback TCP.
type daemon struct {
	dir, sock, tcp string
	cmd            *exec.Cmd
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	bin, err := exec.LookPath("rrdcached")
	if err != nil {
		t.Fatal("rrdcached is not installed (make test installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	root := t.TempDir()
	d := &daemon{dir: filepath.Join(root, "rrd"), sock: filepath.Join(root, "sock"), tcp: fmt.Sprintf("127.0.0.1:%d", port)}
	for _, dir := range []string{d.dir, filepath.Join(root, "journal")} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// -g: foreground; -B: paths stay inside -b; -w: write each file out only on FLUSH or
	// after an hour, so the tests see that FLUSH works.
	d.cmd = exec.Command(bin, "-g", "-B", "-b", d.dir, "-j", filepath.Join(root, "journal"),
		"-p", filepath.Join(root, "pid"), "-w", "3600", "-z", "1", "-f", "7200",
		"-l", "unix:"+d.sock, "-l", d.tcp)
	d.cmd.Stderr = os.Stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		d.cmd.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", d.tcp); err == nil {
			c.Close()
			if _, err := os.Stat(d.sock); err == nil {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("rrdcached did not start listening")
		}
	}
}

var defs = []string{"DS:loss:GAUGE:120:0:5", "DS:median:GAUGE:120:0:180", "RRA:AVERAGE:0.5:1:100", "RRA:MAX:0.5:5:20"}

const start = 1_699_999_980 // a multiple of the 60 s step

func TestClient(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	for _, addr := range []string{"unix:" + d.sock, d.sock, d.tcp} {
		t.Run(addr, func(t *testing.T) {
			c, err := Dial(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			file := strings.NewReplacer("/", "_", ":", "_").Replace(addr) + ".rrd"
			if err := c.Create(ctx, file, time.Minute, time.Unix(start, 0), defs...); err != nil {
				t.Fatal(err)
			}
			var ups []string
			for i := 1; i <= 30; i++ {
				ups = append(ups, fmt.Sprintf("%d:%d:%.3f", start+60*i, i%6, float64(i)/100))
			}
			if err := c.Update(ctx, file, ups[:10]...); err != nil {
				t.Fatal(err)
			}
			if err := c.Batch(ctx, "UPDATE "+file+" "+strings.Join(ups[10:20], " "), "UPDATE "+file+" "+strings.Join(ups[20:], " ")); err != nil {
				t.Fatal(err)
			}
			// Written out only on FLUSH (-w 3600): until then the file on disk has no value.
			path := filepath.Join(d.dir, file)
			end := int64(start + 60*30)
			if v := medianOnDisk(t, path, end); !math.IsNaN(v) {
				t.Errorf("median on disk before FLUSH = %v, want unknown", v)
			}
			if last, err := c.Last(ctx, file); err != nil || last.Unix() != end {
				t.Errorf("LAST = %v, %v; want %d", last.Unix(), err, end)
			}
			if err := c.Flush(ctx, file); err != nil {
				t.Fatal(err)
			}
			if v := medianOnDisk(t, path, end); v != 0.30 {
				t.Errorf("median on disk after FLUSH = %v, want 0.30", v)
			}
			if first, err := c.First(ctx, file, 0); err != nil || first.Unix() != end-99*60 {
				t.Errorf("FIRST = %v, %v; want %d", first.Unix(), err, end-99*60)
			}
			if st, err := c.Stats(ctx); err != nil || st["UpdatesReceived"] < 3 {
				t.Errorf("STATS = %v, %v", st, err)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	c, err := Dial(ctx, d.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Create(ctx, "e.rrd", time.Minute, time.Unix(start, 0), defs...); err != nil {
		t.Fatal(err)
	}
	var daemonErr *Error
	if err := c.Create(ctx, "e.rrd", time.Minute, time.Unix(start, 0), defs...); !errors.As(err, &daemonErr) {
		t.Errorf("second CREATE of the same file: %v, want a daemon error", err)
	}
	err = c.Batch(ctx, "UPDATE e.rrd 1700000060:1:0.1", "UPDATE e.rrd 1700000030:1:0.1", "NOSUCHCOMMAND x")
	if err == nil || !strings.Contains(err.Error(), "2 ") || !strings.Contains(err.Error(), "3 ") {
		t.Errorf("BATCH with commands 2 and 3 bad: %v, want both reported by number", err)
	}
	for _, bad := range []string{"e.rrd\nFLUSHALL", "has space.rrd", ""} {
		if err := c.Update(ctx, bad, "1700000120:1:1"); err == nil {
			t.Errorf("Update(%q) was sent", bad)
		}
	}
	if err := c.Update(ctx, "e.rrd", "1700000180:1:1\nFLUSHALL"); err == nil {
		t.Error("a value with a line break was sent")
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("connection unusable after refused requests: %v", err)
	}
}

// TestConcurrentUpdates sends updates for 20 files from 20 goroutines over one client.
func TestConcurrentUpdates(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	c, err := Dial(ctx, "unix:"+d.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := fmt.Sprintf("g%d.rrd", g)
			if err := c.Create(ctx, file, time.Minute, time.Unix(start, 0), defs...); err != nil {
				t.Error(err)
				return
			}
			for i := 1; i <= 50; i++ {
				if err := c.Update(ctx, file, fmt.Sprintf("%d:%d:0.01", start+60*i, g%6)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	for g := range 20 {
		file := fmt.Sprintf("g%d.rrd", g)
		if err := c.Flush(ctx, file); err != nil {
			t.Fatal(err)
		}
		if last, err := c.Last(ctx, file); err != nil || last.Unix() != start+60*50 {
			t.Errorf("%s: LAST %v, %v", file, last.Unix(), err)
		}
	}
}

// TestRedial restarts the daemon under a client: the next request dials again.
func TestRedial(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	c, err := Dial(ctx, d.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
	if err := c.Ping(ctx); err == nil {
		t.Fatal("PING answered with the daemon dead")
	} else if !strings.Contains(err.Error(), d.tcp) && !strings.Contains(err.Error(), "PING") {
		t.Errorf("error %v does not say what failed", err)
	}
	restart := exec.Command(d.cmd.Path, d.cmd.Args[1:]...)
	if err := restart.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		restart.Process.Kill()
		restart.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := c.Ping(ctx); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the client did not reconnect to the restarted daemon")
		}
	}
}

// medianOnDisk reads the median of the row that ends at t from the file itself.
func medianOnDisk(t *testing.T, path string, at int64) float64 {
	t.Helper()
	got, err := rrdfmt.Fetch(path, rrdfmt.NativeLayout(), "AVERAGE", time.Unix(at-60, 0), time.Unix(at-1, 0), 0)
	if err != nil {
		t.Fatal(err)
	}
	return got.Rows[0][1]
}
