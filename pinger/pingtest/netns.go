// Package pingtest provides network namespaces and a scriptable ICMP echo responder for tests,
// in the spirit of net/http/httptest.
//
// NewLink builds two fresh network namespaces joined by a veth pair: the client namespace is
// where the code under test sends its echo requests, the server namespace owns every target
// address and runs a Responder that answers each request as a Script says (drop, delay,
// duplicate, corrupt, answer from a foreign address, or report the target unreachable). The
// kernel's own echo replies are switched off in the server, so every reply that arrives was
// scripted and a test can compare what it measured with what it asked for exactly. A
// Forger sees each request and adds packets of its own, as a neighbour who sees the
// requests to its own target could forge answers for others.
//
// NewNamespace builds a single namespace with only lo, for tests that need a per-namespace
// setting such as net.ipv4.ping_group_range but no other host: they change it there instead
// of on the host and ping 127.0.0.1 or ::1 inside.
//
// No packet ever leaves the namespaces a test creates: all addresses are in documentation
// ranges or loopback and routed only inside them. Creating namespaces needs root; NewLink
// and NewNamespace skip otherwise.
package pingtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs as root, which raw ICMP sockets, network
// namespaces and the daemon's privilege tests need.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for raw ICMP sockets and network namespaces")
	}
}

// netnsDir is where `ip netns` keeps its named namespaces as bind-mounted files.
const netnsDir = "/run/netns"

// namePrefix marks namespaces made by this package, so leftovers of killed test binaries can
// be recognised and removed. The pid follows it: "pmt-<pid>-<random>-<role>".
const namePrefix = "pmt-"

// Namespace is a network namespace created for one test and deleted at t.Cleanup.
type Namespace struct {
	Name string // the name as listed by `ip netns`
}

// NewNamespace creates a network namespace for the test with no interface but lo, which is
// up with 127.0.0.1/8 and ::1. Settings that the kernel keeps per network namespace, such as
// net.ipv4.ping_group_range, can be changed there with Sysctl without touching the host's,
// and the test can ping loopback addresses under them from sockets opened in Do. Like
// NewLink, it skips the test unless it runs as root, fails it on any other error and
// deletes the namespace at cleanup.
func NewNamespace(t testing.TB) *Namespace {
	t.Helper()
	return newNamespace(t, newGroup(t), "lo")
}

// newGroup checks that the test may create namespaces, removes the leftovers of killed
// test binaries and returns a fresh group name for the namespaces of one NewLink or
// NewNamespace call.
func newGroup(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	removeStale(t)
	return fmt.Sprintf("%08x", rand.Uint32())
}

// newNamespace creates a namespace named after the pid, which tells concurrently running
// test binaries apart, and group, which tells the links and namespaces of one binary apart;
// lo is up.
func newNamespace(t testing.TB, group, role string) *Namespace {
	t.Helper()
	ns := &Namespace{Name: fmt.Sprintf("%s%d-%s-%s", namePrefix, os.Getpid(), group, role)}
	runIP(t, "netns", "add", ns.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v: %s", ns.Name, err, out)
		}
	})
	runIP(t, "-n", ns.Name, "link", "set", "lo", "up")
	return ns
}

// Do runs fn on a locked OS thread switched into the namespace and switches back afterwards.
// Sockets created inside fn belong to the namespace for their whole life and may be used from
// any goroutine afterwards. fn runs on its own goroutine, so it must not call t.FailNow; it
// reports failure through its error, which Do returns.
func (ns *Namespace) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		err := errors.New("fn exited without returning (runtime.Goexit)")
		defer func() { errc <- err }()
		// The thread stays locked unless it is back in its original namespace: a goroutine
		// that exits while locked takes its thread with it, so no other goroutine can
		// ever run on a thread left in the wrong namespace.
		runtime.LockOSThread()
		leave, enterErr := ns.enter()
		if enterErr != nil {
			err = enterErr
			return
		}
		defer func() {
			if leaveErr := leave(); leaveErr != nil {
				err = errors.Join(err, leaveErr)
				return
			}
			runtime.UnlockOSThread()
		}()
		err = fn()
	}()
	return <-errc
}

// DialContext connects to address inside the namespace, as net.Dialer's does: an
// http.Transport's DialContext reaches the servers that listen on the namespace's own
// loopback, which the test's namespace cannot.
func (ns *Namespace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return conn, err
}

// enter switches the calling (locked) thread into ns and returns the function that switches
// it back.
func (ns *Namespace) enter() (leave func() error, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening current network namespace: %w", err)
	}
	target, err := unix.Open(filepath.Join(netnsDir, ns.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(orig)
		return nil, fmt.Errorf("opening network namespace %s: %w", ns.Name, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		unix.Close(orig)
		return nil, fmt.Errorf("entering network namespace %s: %w", ns.Name, err)
	}
	return func() error {
		defer unix.Close(orig)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("leaving network namespace %s: %w", ns.Name, err)
		}
		return nil
	}, nil
}

// Command returns a command that runs name with args inside the namespace
// (`ip netns exec <ns> name args...`).
func (ns *Namespace) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Sysctl sets a sysctl such as "net.ipv4.icmp_echo_ignore_all" inside the namespace and
// calls t.Fatal if that fails.
func (ns *Namespace) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	// /proc/sys/net shows the settings of the network namespace of the thread that opens it.
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	err := ns.Do(func() error {
		return os.WriteFile(path, []byte(value), 0)
	})
	if err != nil {
		t.Fatalf("setting sysctl %s=%s in namespace %s: %v", key, value, ns.Name, err)
	}
}

// removeStale deletes namespaces this package created in processes that no longer exist,
// so a killed test run does not leave namespaces behind for good.
func removeStale(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatalf("listing network namespaces: %v", err)
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		out, err := exec.Command("ip", "netns", "delete", e.Name()).CombinedOutput()
		if err == nil {
			continue
		}
		// Another test binary may have removed the same leftover a moment ago.
		if _, statErr := os.Stat(filepath.Join(netnsDir, e.Name())); errors.Is(statErr, os.ErrNotExist) {
			continue
		}
		t.Fatalf("deleting stale namespace %s: %v: %s", e.Name(), err, out)
	}
}

// runIP runs the ip command with args and calls t.Fatal, quoting its output, if it fails.
func runIP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
