package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
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
