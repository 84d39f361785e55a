package adapter

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// Output limits: a probe prints a line per ping; more is a broken program.
const (
	maxStdout = 1 << 20
	maxStderr = 4 << 10
)

// Result is what one run of a tool gave.
type Result struct {
	// RTTs holds one entry per ping, Lost where the output had no answer.
	RTTs []time.Duration
	// Err is set when the program could not be started at all (not installed, not
	// executable): nothing was measured.
	Err error
	// Killed says the run was stopped at its deadline; RTTs is what it printed before.
	Killed bool
	// Canceled says the run was stopped because the runner's context ended.
	Canceled bool
	// ExitCode is the program's exit status, -1 when it was killed.
	ExitCode int
	// Stderr is the start of what the program wrote on stderr, for the log.
	Stderr string
}

// Runner runs tools, a bounded number at once.
type Runner struct {
	slots chan struct{}
}

// NewRunner returns a Runner that runs at most max programs at once.
func NewRunner(max int) *Runner {
	return &Runner{slots: make(chan struct{}, max)}
}

// Run runs one round of t and waits for it. The program runs in a process group of its
// own, with no stdin; the whole group is killed at deadline
// or when ctx ends, and what it printed until then is the round's result.
func (rn *Runner) Run(ctx context.Context, t Tool, r Round, deadline time.Time) Result {
	select {
	case rn.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{Canceled: true, ExitCode: -1}
	}
	defer func() { <-rn.slots }()

	argv := t.Argv(r)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr limitedBuffer
	stdout.limit, stderr.limit = maxStdout, maxStderr
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Setpgid: a deadline kills the tool's children too. The program inherits no
	// capability: the daemon drops all of its own, the bounding set too where it may.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return Result{Err: err, ExitCode: -1, RTTs: lostRound(r.Pings)}
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	res := Result{}
	var err error
	select {
	case err = <-waited:
	case <-timer.C:
		res.Killed = true
	case <-ctx.Done():
		res.Canceled = true
	}
	if res.Killed || res.Canceled {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-waited
	}
	res.ExitCode = cmd.ProcessState.ExitCode()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		res.Err = err
	}
	res.Stderr = stderr.String()
	res.RTTs = t.Parse(stdout.Bytes(), r)
	return res
}

func lostRound(n int) []time.Duration {
	rtts := make([]time.Duration, n)
	for i := range rtts {
		rtts[i] = Lost
	}
	return rtts
}

// limitedBuffer keeps the first limit bytes written to it and drops the rest, so that a
// runaway program cannot fill the daemon's memory. It has no ReadFrom, through which
// io.Copy would go around the limit.
type limitedBuffer struct {
	buf   []byte
	limit int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte  { return b.buf }
func (b *limitedBuffer) String() string { return string(b.buf) }
