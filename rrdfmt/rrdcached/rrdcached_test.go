package rrdcached

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pingmachine/rrdfmt/rrdtest"
)

func dial(tb testing.TB, addr string) *Client {
	tb.Helper()
	c, err := Dial(context.Background(), addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

var defs = []string{"DS:loss:GAUGE:120:0:20", "DS:median:GAUGE:120:0:180", "RRA:AVERAGE:0.5:1:100", "RRA:MAX:0.5:5:20"}

const t0 = 1_699_999_980 // a multiple of the 60 s step

// TestCreateUpdateFlushFetch goes through every address form: create through the daemon,
// update, FLUSH, and read the file with rrdtool itself.
func TestCreateUpdateFlushFetch(t *testing.T) {
	d := rrdtest.StartCachedTCP(t, t.TempDir())
	ctx := context.Background()
	for _, tc := range []struct{ name, addr, file string }{
		{"unix-prefix", "unix:" + d.Sock, "a.rrd"},
		{"unix-path", d.Sock, "sub dir b.rrd"}, // a space, escaped on the wire
		{"tcp", d.TCP, "c.rrd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tc.addr)
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Create(ctx, tc.file, time.Minute, time.Unix(t0, 0), true, defs...); err != nil {
				t.Fatal(err)
			}
			var vals []string
			for i := 1; i <= 30; i++ {
				vals = append(vals, fmt.Sprintf("%d:%d:%d.5", t0+60*i, i%20, i))
			}
			if err := c.Update(ctx, tc.file, vals[:20]...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals[20:] {
				if err := c.Update(ctx, tc.file, v); err != nil {
					t.Fatal(err)
				}
			}
			end := int64(t0 + 60*30)
			path := filepath.Join(d.Base, tc.file)
			if row := rrdtest.FetchRow(t, path, end, time.Minute); len(row) != 2 || !math.IsNaN(row[1]) {
				t.Errorf("row %d before FLUSH = %v, want unknown (written only on FLUSH)", end, row)
			}
			if last, err := c.Last(ctx, tc.file); err != nil || last.Unix() != end {
				t.Errorf("LAST = %v, %v; want %d (queued readings count)", last.Unix(), err, end)
			}
			if err := c.Flush(ctx, tc.file); err != nil {
				t.Fatal(err)
			}
			rows, _ := rrdtest.Fetch(t, path, t0, end)
			for i := 1; i <= 30; i++ {
				ts := int64(t0 + 60*i)
				want := []float64{float64(i % 20), float64(i) + 0.5}
				if got := rows[ts]; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
					t.Errorf("rrdtool fetch row %d = %v, want %v", ts, got, want)
				}
			}
			if first, err := c.First(ctx, tc.file, 0); err != nil || first.Unix() != end-99*60 {
				t.Errorf("FIRST 0 = %v, %v; want %d", first.Unix(), err, end-99*60)
			}
			// RRA 1 consolidates 5 steps: its rows end on multiples of 300 s.
			if first, err := c.First(ctx, tc.file, 1); err != nil || first.Unix() != end-end%300-19*300 {
				t.Errorf("FIRST 1 = %v, %v; want %d", first.Unix(), err, end-end%300-19*300)
			}
			info, err := c.Info(ctx, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]string{
				"filename": path, "step": "60", "last_update": strconv.FormatInt(end, 10),
				"ds[loss].type": "GAUGE", "ds[median].minimal_heartbeat": "120",
				"rra[1].cf": "MAX", "rra[0].rows": "100",
			} {
				if info[k] != want {
					t.Errorf("INFO %s = %q, want %q", k, info[k], want)
				}
			}
			st, err := c.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st["UpdatesReceived"] < 11 || st["FlushesReceived"] < 1 {
				t.Errorf("STATS = %v", st)
			}
		})
	}
}

func TestCreateOverwrite(t *testing.T) {
	d := rrdtest.StartCachedTCP(t, t.TempDir())
	c := dial(t, d.TCP)
	ctx := context.Background()
	if err := c.Create(ctx, "o.rrd", time.Minute, time.Unix(t0, 0), true, defs...); err != nil {
		t.Fatal(err)
	}
	var daemonErr *Error
	if err := c.Create(ctx, "o.rrd", time.Minute, time.Unix(t0, 0), true, defs...); !errors.As(err, &daemonErr) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("CREATE -O of an existing file: %v, want a daemon error saying it exists", err)
	}
	if err := c.Create(ctx, "o.rrd", time.Minute, time.Unix(t0, 0), false, defs...); err != nil {
		t.Errorf("CREATE without -O of an existing file: %v", err)
	}
}

// TestDaemonErrors checks that refusals come back as *Error and leave the connection usable.
func TestDaemonErrors(t *testing.T) {
	d := rrdtest.StartCachedTCP(t, t.TempDir())
	c := dial(t, "unix:"+d.Sock)
	ctx := context.Background()
	if err := c.Create(ctx, "e.rrd", time.Minute, time.Unix(t0, 0), true, defs...); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, "e.rrd", fmt.Sprintf("%d:1:1", t0+600)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		call    func() error
		cmd     string
		wantMsg string
	}{
		{"update in the past", func() error { return c.Update(ctx, "e.rrd", fmt.Sprintf("%d:1:1", t0+60)) }, "UPDATE", "illegal attempt to update"},
		{"update same time", func() error { return c.Update(ctx, "e.rrd", fmt.Sprintf("%d:1:1", t0+600)) }, "UPDATE", "minimum one second step"},
		{"update N:", func() error { return c.Update(ctx, "e.rrd", "N:1:1") }, "UPDATE", "timestamp"},
		{"update missing file", func() error { return c.Update(ctx, "none.rrd", "1700000000:1:1") }, "UPDATE", "No such file"},
		{"outside base dir", func() error { return c.Update(ctx, "../x.rrd", "1700000000:1:1") }, "UPDATE", "Permission denied"},
		{"last missing file", func() error { _, err := c.Last(ctx, "none.rrd"); return err }, "LAST", "No such file"},
		{"first bad rra", func() error { _, err := c.First(ctx, "e.rrd", 7); return err }, "FIRST", "rraindex"},
		{"info missing file", func() error { _, err := c.Info(ctx, "none.rrd"); return err }, "INFO", "No such file"},
		{"bad definition", func() error {
			return c.Create(ctx, "f.rrd", time.Minute, time.Time{}, true, "DS:x:NOSUCH:1:2:3", "RRA:AVERAGE:0.5:1:10")
		}, "CREATE", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var daemonErr *Error
			if !errors.As(err, &daemonErr) {
				t.Fatalf("got %v (%T), want *Error", err, err)
			}
			if daemonErr.Code >= 0 || daemonErr.Cmd != tc.cmd || !strings.Contains(daemonErr.Msg, tc.wantMsg) {
				t.Errorf("got %+v, want a negative code, Cmd %s, message containing %q", daemonErr, tc.cmd, tc.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "rrdcached: "+tc.cmd+" ") {
				t.Errorf("message %q does not name the command and file", err)
			}
			if err := c.Ping(ctx); err != nil {
				t.Errorf("connection unusable after the refusal: %v", err)
			}
		})
	}
}

func TestBatch(t *testing.T) {
	d := rrdtest.StartCachedTCP(t, t.TempDir())
	c := dial(t, d.TCP)
	ctx := context.Background()
	for _, f := range []string{"x.rrd", "y z.rrd"} {
		if err := c.Create(ctx, f, time.Minute, time.Unix(t0, 0), true, defs...); err != nil {
			t.Fatal(err)
		}
	}
	up := func(file string, i int) string {
		return fmt.Sprintf("UPDATE %s %d:%d:%d", Quote(file), t0+60*i, i%20, i)
	}
	if err := c.Batch(ctx, up("x.rrd", 1), up("y z.rrd", 1), up("x.rrd", 2), up("y z.rrd", 2)); err != nil {
		t.Fatalf("good BATCH: %v", err)
	}
	err := c.Batch(ctx, up("x.rrd", 3), up("x.rrd", 1), up("y z.rrd", 3), "FLUSH x.rrd", "FLUSH "+Quote("y z.rrd"))
	var berr *BatchError
	if !errors.As(err, &berr) {
		t.Fatalf("BATCH with command 2 in the past: %v, want *BatchError", err)
	}
	if berr.Total != 5 || len(berr.Failed) != 1 || berr.Failed[0].Index != 2 || berr.Failed[0].Cmd != up("x.rrd", 1) ||
		!strings.Contains(berr.Failed[0].Msg, "illegal attempt to update") {
		t.Errorf("BatchError = %+v, want only #2 failed", berr)
	}
	if !strings.Contains(err.Error(), "1 of 5 commands failed: #2 (UPDATE x.rrd): illegal attempt") {
		t.Errorf("error text %q does not name the failed command", err)
	}
	// The others were executed, the FLUSHes included.
	for _, f := range []string{"x.rrd", "y z.rrd"} {
		if got := rrdtest.FetchRow(t, filepath.Join(d.Base, f), t0+180, time.Minute); len(got) != 2 || got[1] != 3 {
			t.Errorf("%s row %d after BATCH = %v, want [3 3]", f, t0+180, got)
		}
	}
	if err := c.Batch(ctx); err != nil {
		t.Errorf("empty BATCH: %v", err)
	}
}

// TestInjection checks that nothing a caller passes can end a line or a BATCH early: such
// requests are refused before anything is sent.
func TestInjection(t *testing.T) {
	d := rrdtest.StartCachedTCP(t, t.TempDir())
	c := dial(t, d.Sock)
	ctx := context.Background()
	if err := c.Create(ctx, "i.rrd", time.Minute, time.Unix(t0, 0), true, defs...); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("1", maxLine)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"file LF", func() error { return c.Update(ctx, "i.rrd\nFORGET i.rrd", "1700000000:1:1") }},
		{"file CR", func() error { return c.Flush(ctx, "i.rrd\rFLUSHALL") }},
		{"file NUL", func() error { _, err := c.Last(ctx, "i.rrd\x00x"); return err }},
		{"empty file", func() error { return c.Flush(ctx, "") }},
		{"value LF", func() error { return c.Update(ctx, "i.rrd", "1700000000:1:1\nQUIT") }},
		{"empty value", func() error { return c.Update(ctx, "i.rrd", "") }},
		{"no values", func() error { return c.Update(ctx, "i.rrd") }},
		{"overlong line", func() error { return c.Update(ctx, "i.rrd", "1700000000:"+long) }},
		{"definition option", func() error { return c.Create(ctx, "j.rrd", time.Minute, time.Time{}, true, "-r", "/etc/passwd") }},
		{"definition LF", func() error { return c.Create(ctx, "j.rrd", time.Minute, time.Time{}, true, "DS:x:GAUGE:1:0:1\nQUIT") }},
		{"sub-second step", func() error { return c.Create(ctx, "j.rrd", 1500*time.Millisecond, time.Time{}, true, defs...) }},
		{"info file LF", func() error { _, err := c.Info(ctx, "i.rrd\nSTATS"); return err }},
		{"batch dot", func() error { return c.Batch(ctx, "UPDATE i.rrd 1700000000:1:1", ".", "FLUSHALL") }},
		{"batch LF", func() error { return c.Batch(ctx, "UPDATE i.rrd 1700000000:1:1\nQUIT") }},
		{"batch QUIT", func() error { return c.Batch(ctx, "QUIT") }},
		{"batch empty line", func() error { return c.Batch(ctx, "") }},
		{"batch overlong", func() error { return c.Batch(ctx, "UPDATE i.rrd "+long) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var daemonErr *Error
			if err == nil || errors.As(err, &daemonErr) {
				t.Fatalf("got %v, want a refusal before sending", err)
			}
			if !strings.HasPrefix(err.Error(), "rrdcached: ") {
				t.Errorf("error %q does not say where it comes from", err)
			}
		})
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st["UpdatesReceived"] != 0 || st["FlushesReceived"] != 0 {
		t.Errorf("the daemon received something: %v", st)
	}
	if _, err := os.Stat(filepath.Join(d.Base, "j.rrd")); err == nil {
		t.Error("j.rrd was created")
	}
}

// TestConcurrentUpdates shares one client among 20 goroutines.
func TestConcurrentUpdates(t *testing.T) {
	d := rrdtest.StartCachedTCP(t, t.TempDir())
	c := dial(t, "unix:"+d.Sock)
	ctx := context.Background()
	const goroutines, updates = 20, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			file := fmt.Sprintf("g%d.rrd", g)
			if err := c.Create(ctx, file, time.Minute, time.Unix(t0, 0), true, defs...); err != nil {
				t.Error(err)
				return
			}
			for i := 1; i <= updates; i++ {
				if err := c.Update(ctx, file, fmt.Sprintf("%d:%d:%d", t0+60*i, g, i)); err != nil {
					t.Error(err)
					return
				}
			}
			if err := c.Flush(ctx, file); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st["UpdatesReceived"] != goroutines*updates {
		t.Errorf("UpdatesReceived = %d, want %d", st["UpdatesReceived"], goroutines*updates)
	}
	for g := range goroutines {
		file := fmt.Sprintf("g%d.rrd", g)
		end := int64(t0 + 60*updates)
		if row := rrdtest.FetchRow(t, filepath.Join(d.Base, file), end, time.Minute); len(row) != 2 || row[0] != float64(g) || row[1] != updates {
			t.Errorf("%s: row %d = %v, want [%d %d]", file, end, row, g, updates)
		}
	}
}

// TestRedial kills the daemon under a client, as a crash would.
func TestRedial(t *testing.T) {
	for _, via := range []string{"unix", "tcp"} {
		t.Run(via, func(t *testing.T) {
			d := rrdtest.StartCachedTCP(t, t.TempDir())
			addr := map[string]string{"unix": "unix:" + d.Sock, "tcp": d.TCP}[via]
			c := dial(t, addr)
			ctx := context.Background()
			if err := c.Create(ctx, "r.rrd", time.Minute, time.Unix(t0, 0), true, defs...); err != nil {
				t.Fatal(err)
			}
			if err := c.Update(ctx, "r.rrd", fmt.Sprintf("%d:1:1", t0+60)); err != nil {
				t.Fatal(err)
			}
			// On disk before the kill: rrdcached's journal is not synced per update, so
			// SIGKILL may lose what is only queued.
			if err := c.Flush(ctx, "r.rrd"); err != nil {
				t.Fatal(err)
			}

			// Daemon down: a clear error naming the command and the address.
			d.Kill()
			err := c.Update(ctx, "r.rrd", fmt.Sprintf("%d:2:2", t0+120))
			var daemonErr *Error
			if err == nil || errors.As(err, &daemonErr) || !strings.Contains(err.Error(), "UPDATE r.rrd") ||
				!strings.Contains(err.Error(), strings.TrimPrefix(addr, "unix:")) {
				t.Fatalf("UPDATE with the daemon dead: %v, want a connection error naming command and address", err)
			}

			// Restarted: the next call dials again.
			d.Start()
			if last, err := c.Last(ctx, "r.rrd"); err != nil || last.Unix() != t0+60 {
				t.Fatalf("LAST after restart = %v, %v; want %d", last.Unix(), err, t0+60)
			}

			// Killed and restarted between two calls: the dead connection is noticed
			// before the UPDATE is sent, so the UPDATE is not lost.
			d.Kill()
			d.Start()
			if err := c.Update(ctx, "r.rrd", fmt.Sprintf("%d:2:2", t0+120)); err != nil {
				t.Fatalf("UPDATE after a restart between calls: %v", err)
			}
			if err := c.Flush(ctx, "r.rrd"); err != nil {
				t.Fatal(err)
			}
			if row := rrdtest.FetchRow(t, filepath.Join(d.Base, "r.rrd"), t0+120, time.Minute); len(row) != 2 || row[1] != 2 {
				t.Errorf("row %d = %v, want [2 2]", t0+120, row)
			}
		})
	}
}

// TestDeadline uses a listener that never answers: the context's deadline must end the
// request, and the next request must use a fresh connection.
func TestDeadline(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn
		}
	}()
	c := dial(t, sock)
	<-accepted
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	startAt := time.Now()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PING to a silent server: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(startAt); d > 2*time.Second {
		t.Errorf("PING took %v despite a 100 ms deadline", d)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, ccancel)
	if err := c.Ping(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled PING: %v, want context.Canceled", err)
	}
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Error("the client did not dial again after the timed-out request")
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"unix:/run/rrdcached.Sock", "unix", "/run/rrdcached.Sock"},
		{"/run/rrdcached.Sock", "unix", "/run/rrdcached.Sock"},
		{"127.0.0.1", "tcp", "127.0.0.1:42217"},
		{"127.0.0.1:1234", "tcp", "127.0.0.1:1234"},
		{"localhost", "tcp", "localhost:42217"},
		{"[::1]:1234", "tcp", "[::1]:1234"},
		{"[::1]", "tcp", "[::1]:42217"},
		{"::1", "tcp", "[::1]:42217"},
		{"", "", ""},
		{"unix:", "", ""},
	} {
		network, address, err := parseAddr(tc.in)
		if network != tc.network || address != tc.address || (err != nil) != (tc.network == "") {
			t.Errorf("parseAddr(%q) = %q, %q, %v; want %q, %q", tc.in, network, address, err, tc.network, tc.address)
		}
	}
}

func TestClose(t *testing.T) {
	d := rrdtest.StartCachedTCP(t, t.TempDir())
	c, err := Dial(context.Background(), d.TCP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("PING after Close: %v, want net.ErrClosed", err)
	}
}

// BenchmarkUpdate measures single-reading UPDATEs through rrdcached for a file shaped as
// pingmachine writes them: loss, median and 20 pings.
func BenchmarkUpdate(b *testing.B) {
	d := rrdtest.StartCachedTCP(b, b.TempDir())
	benchDefs := []string{"DS:loss:GAUGE:120:0:20", "DS:median:GAUGE:120:0:180"}
	for i := 1; i <= 20; i++ {
		benchDefs = append(benchDefs, fmt.Sprintf("DS:ping%d:GAUGE:120:0:180", i))
	}
	benchDefs = append(benchDefs, "RRA:AVERAGE:0.5:1:900", "RRA:AVERAGE:0.5:5:2880", "RRA:MAX:0.5:5:2880",
		"RRA:MIN:0.5:5:2880", "RRA:AVERAGE:0.5:60:1440")
	values := "0:0.0123"
	for i := 1; i <= 20; i++ {
		values += fmt.Sprintf(":0.01%02d", i)
	}
	for _, via := range []string{"unix", "tcp"} {
		b.Run(via, func(b *testing.B) {
			c := dial(b, map[string]string{"unix": "unix:" + d.Sock, "tcp": d.TCP}[via])
			ctx := context.Background()
			file := via + ".rrd"
			if err := c.Create(ctx, file, time.Minute, time.Unix(t0, 0), true, benchDefs...); err != nil {
				b.Fatal(err)
			}
			ts := int64(t0)
			for b.Loop() {
				ts++ // rrdcached wants at least one second between readings
				if err := c.Update(ctx, file, strconv.FormatInt(ts, 10)+":"+values); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
