package adapter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pingmachine/store/storetest"
)

// shTool runs a shell script as a stand-in probe program (the runner itself never uses a
// shell) and keeps what it printed.
type shTool struct {
	script string
	mu     sync.Mutex
	out    []byte
}

func (s *shTool) Argv(Round) []string { return []string{"/bin/sh", "-c", s.script} }

func (s *shTool) Parse(stdout []byte, r Round) []time.Duration {
	s.mu.Lock()
	s.out = append([]byte(nil), stdout...)
	s.mu.Unlock()
	rtts := lostRound(r.Pings)
	for i, f := range strings.Fields(string(stdout)) {
		if ms, err := strconv.Atoi(f); err == nil && i < len(rtts) {
			rtts[i] = time.Duration(ms) * time.Millisecond
		}
	}
	return rtts
}

func TestRunnerCollects(t *testing.T) {
	rn := NewRunner(4)
	tool := &shTool{script: "echo 1 2; echo oops >&2; exit 3"}
	res := rn.Run(context.Background(), tool, Round{Pings: 3}, time.Now().Add(5*time.Second))
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, Lost}
	if !slices.Equal(res.RTTs, want) || res.ExitCode != 3 || res.Killed || res.Err != nil || res.Stderr != "oops\n" {
		t.Errorf("result %+v, want RTTs %v, exit 3, stderr oops", res, want)
	}
}

// TestRunnerDeadline: a program that hangs is killed at the deadline with every process
// of its group, and what it printed before counts.
func TestRunnerDeadline(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	tool := &shTool{script: "sleep 60 & echo $! > " + pidFile + "; echo 5; exec sleep 60"}
	start := time.Now()
	res := NewRunner(1).Run(context.Background(), tool, Round{Pings: 2}, start.Add(300*time.Millisecond))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("run took %v, want the deadline of 300ms", took)
	}
	if !res.Killed || res.ExitCode != -1 || !slices.Equal(res.RTTs, []time.Duration{5 * time.Millisecond, Lost}) {
		t.Errorf("result %+v, want killed with the first ping answered", res)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	storetest.WaitFor(t, fmt.Sprintf("end of the tool's child %d after the deadline", pid), 2*time.Second, func() bool {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		// A zombie is dead too: only its parent (the killed shell, now init) reaps it.
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return strings.Contains(string(st), ") Z ")
	})
}

func TestRunnerMissingProgram(t *testing.T) {
	for _, argv0 := range []string{"/nonexistent/httping", "no-such-probe-program"} {
		res := NewRunner(1).Run(context.Background(), fixedArgv{argv0}, Round{Pings: 2}, time.Now().Add(time.Second))
		if res.Err == nil || !(errors.Is(res.Err, fs.ErrNotExist) || errors.Is(res.Err, exec.ErrNotFound)) ||
			!slices.Equal(res.RTTs, []time.Duration{Lost, Lost}) {
			t.Errorf("%s: result %+v, want a not-found error and no answers", argv0, res)
		}
	}
}

type fixedArgv []string

func (f fixedArgv) Argv(Round) []string                     { return f }
func (f fixedArgv) Parse(_ []byte, r Round) []time.Duration { return lostRound(r.Pings) }

func TestRunnerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	res := NewRunner(1).Run(ctx, &shTool{script: "exec sleep 60"}, Round{Pings: 1}, start.Add(time.Minute))
	if !res.Canceled || res.Killed || time.Since(start) > 5*time.Second {
		t.Errorf("result %+v after %v, want canceled soon after 200ms", res, time.Since(start))
	}
}

// TestRunnerBound: never more programs at once than the runner allows.
func TestRunnerBound(t *testing.T) {
	dir := t.TempDir()
	const runs, limit = 6, 2
	rn := NewRunner(limit)
	var wg sync.WaitGroup
	for i := range runs {
		log := filepath.Join(dir, strconv.Itoa(i))
		wg.Go(func() {
			rn.Run(context.Background(), &shTool{script: "date +%s%N > " + log + "; sleep 0.2; date +%s%N >> " + log},
				Round{Pings: 1}, time.Now().Add(time.Minute))
		})
	}
	wg.Wait()
	type event struct {
		at    int64
		delta int
	}
	var events []event
	for i := range runs {
		b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b))
		from, _ := strconv.ParseInt(f[0], 10, 64)
		to, _ := strconv.ParseInt(f[1], 10, 64)
		events = append(events, event{from, 1}, event{to, -1})
	}
	slices.SortFunc(events, func(a, b event) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.delta - b.delta
	})
	running, most := 0, 0
	for _, e := range events {
		running += e.delta
		most = max(most, running)
	}
	if most > limit {
		t.Errorf("%d programs ran at once, want at most %d", most, limit)
	}
}

// TestRunnerOutputLimit: a program that prints without end cannot fill the daemon's
// memory.
func TestRunnerOutputLimit(t *testing.T) {
	tool := &shTool{script: "head -c 3000000 /dev/zero"}
	NewRunner(1).Run(context.Background(), tool, Round{Pings: 1}, time.Now().Add(10*time.Second))
	if len(tool.out) != maxStdout {
		t.Errorf("Parse got %d bytes, want the first %d", len(tool.out), maxStdout)
	}
}
