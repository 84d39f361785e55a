package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// binary builds the pingmachine binary once per test run, world-executable so that
// tests can run it as an unprivileged user, without cgo as the Makefile builds it (the
// daemon drops the capabilities of all its threads, which needs that).
var binary = sync.OnceValues(func() (string, error) { return buildBinary("pingmachine", false) })

// cgoBinary is the binary as a plain `go build` makes it where a C compiler is found:
// with cgo, which cannot drop capabilities from every thread.
var cgoBinary = sync.OnceValues(func() (string, error) { return buildBinary("pingmachine-cgo", true) })

func buildBinary(name string, cgo bool) (string, error) {
	if err := os.Chmod(buildDir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if cgo {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build (CGO_ENABLED %v): %v\n%s", cgo, err, out)
	}
	return bin, nil
}

// buildDir holds the binary for the whole run; TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "pingmachine-e2e-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

func build(t *testing.T) string {
	t.Helper()
	pingtest.RequireRoot(t)
	bin, err := binary()
	if err != nil {
		t.Fatalf("building pingmachine: %v", err)
	}
	return bin
}

// runCmd runs cmd and returns stdout, stderr and the exit status.
func runCmd(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// fpingLine matches one fping -C style line with count results.
func fpingLine(name string, answered, lost int) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(name) + ` *` + ` :` +
		strings.Repeat(` \d+\.\d+`, answered) + strings.Repeat(` -`, lost) + `$`)
}

func TestPingCommand(t *testing.T) {
	bin := build(t)
	tests := []struct {
		name   string
		args   []string
		stdin  string
		lines  []*regexp.Regexp
		stderr string
		exit   int
	}{
		{
			name:  "loopback, both families, aligned",
			args:  []string{"-c", "3", "-p", "100", "127.0.0.1", "127.0.0.2", "::1"},
			lines: []*regexp.Regexp{fpingLine("127.0.0.1", 3, 0), fpingLine("127.0.0.2", 3, 0), fpingLine("::1      ", 3, 0)},
		},
		{
			name:  "targets from stdin",
			args:  []string{"-c2", "-p50", "-f", "-"},
			stdin: "# two targets\n127.0.0.3\n\n::1\n",
			lines: []*regexp.Regexp{fpingLine("127.0.0.3", 2, 0), fpingLine("::1", 2, 0)},
		},
		{
			name:   "bad name is reported, the rest pinged",
			args:   []string{"-c", "1", "no_such..host", "127.0.0.1"},
			lines:  []*regexp.Regexp{fpingLine("127.0.0.1", 1, 0)},
			stderr: "no_such..host",
			exit:   2,
		},
		{
			name:  "duplicates each get a line, joined flags",
			args:  []string{"-c2", "-p20", "-i5", "-t100", "127.0.0.1", "::1", "127.0.0.1"},
			lines: []*regexp.Regexp{fpingLine("127.0.0.1", 2, 0), fpingLine("::1      ", 2, 0), fpingLine("127.0.0.1", 2, 0)},
		},
		{
			name:   "family mismatch",
			args:   []string{"-6", "-c", "1", "127.0.0.1"},
			stderr: "wrong family",
			exit:   2,
		},
		{
			name:   "bad flag",
			args:   []string{"-c", "0", "127.0.0.1"},
			stderr: "-c 0",
			exit:   2,
		},
		{
			name:   "missing file",
			args:   []string{"-f", "/nonexistent/targets"},
			stderr: "/nonexistent/targets",
			exit:   2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"ping"}, tt.args...)...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			checkPingRun(t, cmd, tt.lines, tt.stderr, tt.exit)
		})
	}
}

// checkPingRun runs a ping command and checks its exit status, each line of its
// stdout against a pattern, and that its stderr mentions stderrHas.
func checkPingRun(t *testing.T, cmd *exec.Cmd, patterns []*regexp.Regexp, stderrHas string, exit int) {
	t.Helper()
	stdout, stderr, code := runCmd(t, cmd)
	if code != exit {
		t.Errorf("exit %d, want %d; stderr %q", code, exit, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if stdout == "" {
		lines = nil
	}
	if len(lines) != len(patterns) {
		t.Fatalf("stdout %q: want %d lines", stdout, len(patterns))
	}
	for i, re := range patterns {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %q does not match %v", lines[i], re)
		}
	}
	if !strings.Contains(stderr, stderrHas) {
		t.Errorf("stderr %q, want it to mention %q", stderr, stderrHas)
	}
}

// TestPingThroughNamespace pings scripted hosts in a network namespace: a silent host
// is all loss and exit status 1.
func TestPingThroughNamespace(t *testing.T) {
	bin := build(t)
	link := pingtest.NewLink(t)
	silent := pingtest.Target4(1)
	pingtest.StartResponder(t, link.Server, func(dst netip.Addr, n int) pingtest.Action {
		return pingtest.Action{Drop: dst == silent || n == 1}
	})
	stdout, stderr, code := runCmd(t, link.Client.Command(bin, "ping", "-c", "3", "-p", "50", "-t", "200",
		pingtest.Target4(0).String(), silent.String(), pingtest.Target6(0).String()))
	if code != exitLoss {
		t.Errorf("exit %d, want %d; stderr %q", code, exitLoss, stderr)
	}
	want := []string{`^\S+ +: \d+\.\d+ - \d+\.\d+$`, `^\S+ +: - - -$`, `^\S+ +: \d+\.\d+ - \d+\.\d+$`}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(want) {
		t.Fatalf("stdout %q", stdout)
	}
	for i, w := range want {
		if !regexp.MustCompile(w).MatchString(lines[i]) {
			t.Errorf("line %q does not match %s", lines[i], w)
		}
	}
}

// TestDatagramFallback runs the command without CAP_NET_RAW in a namespace: it falls
// back to datagram sockets where ping_group_range allows them, and explains what to do
// where it does not.
func TestDatagramFallback(t *testing.T) {
	bin := build(t)
	link := pingtest.NewLink(t)
	pingtest.StartResponder(t, link.Server, func(netip.Addr, int) pingtest.Action { return pingtest.Action{} })
	unprivileged := func(args ...string) *exec.Cmd {
		return link.Client.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", bin, "ping", "-v"}, args...)...)
	}
	targets := []string{"-c", "3", "-p", "20", pingtest.Target4(0).String(), pingtest.Target6(0).String()}

	link.Client.Sysctl(t, "net.ipv4.ping_group_range", "65534 65534")
	stdout, stderr, code := runCmd(t, unprivileged(targets...))
	if code != exitOK || strings.Count(stdout, "\n") != 2 || strings.Contains(stdout, "-") {
		t.Errorf("allowed datagram sockets: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, want := range []string{"falling back to unprivileged datagram sockets", "mode=datagram family=ipv4", "mode=datagram family=ipv6"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not say %q", stderr, want)
		}
	}

	link.Client.Sysctl(t, "net.ipv4.ping_group_range", "1 0")
	stdout, stderr, code = runCmd(t, unprivileged(targets...))
	if code != exitBadArgs || stdout != "" {
		t.Errorf("no socket allowed: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{"CAP_NET_RAW", "ping_group_range", `"1 0"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not mention %q", stderr, want)
		}
	}
}

// TestUnresolvableName looks up a name under .invalid (RFC 6761: never resolves) in a
// network namespace without a default route, so the DNS query cannot leave the host
// whatever /etc/resolv.conf names. The name is reported, the rest pinged, exit status 2.
func TestUnresolvableName(t *testing.T) {
	bin := build(t)
	link := pingtest.NewLink(t)
	stdout, stderr, code := runCmd(t, link.Client.Command(bin, "ping", "-c", "3", "-p", "100",
		"nonexistent.invalid", "127.0.0.1"))
	if code != exitBadArgs {
		t.Errorf("exit %d, want %d; stderr %q", code, exitBadArgs, stderr)
	}
	if !strings.HasPrefix(stderr, "nonexistent.invalid: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line \"nonexistent.invalid: <reason>\"", stderr)
	}
	// The unresolved name is left out of the output and of the column width.
	if !fpingLine("127.0.0.1", 3, 0).MatchString(strings.TrimSuffix(stdout, "\n")) || strings.Count(stdout, "\n") != 1 {
		t.Errorf("stdout %q, want one line for 127.0.0.1", stdout)
	}
}

// TestInterrupt sends SIGINT in the middle of a run: what was measured is printed, the
// pings not sent yet as lost, and the exit status is 1.
func TestInterrupt(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "ping", "-c", "100", "-p", "20", "127.0.0.1", "::1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // about 25 pings each, of 100 over 2 s
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitLoss {
		t.Errorf("wait: %v, want exit status %d; stderr %q", err, exitLoss, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q, want two lines", stdout.String())
	}
	for i, name := range []string{`127\.0\.0\.1`, `::1      `} {
		re := regexp.MustCompile(`^` + name + ` :((?: \d+\.\d+)+)((?: -)+)$`)
		m := re.FindStringSubmatch(lines[i])
		if m == nil {
			t.Errorf("line %q: want answered pings, then lost ones", lines[i])
			continue
		}
		if n := strings.Count(m[1], " ") + strings.Count(m[2], " "); n != 100 {
			t.Errorf("line %q has %d results, want 100", lines[i], n)
		}
	}
}
