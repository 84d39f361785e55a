package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities are per thread on Linux, and a Go process has many threads: every change
// goes through syscall.AllThreadsSyscall, which applies it to all of them (it needs a
// build without cgo; the Makefile builds with CGO_ENABLED=0).

// dropPrivileges gives up everything the daemon does not need once its sockets are open:
// the bounding set, the user (when userName is set) and every capability of every
// thread. It fails closed: if any thread still holds a capability afterwards (a build
// with cgo can only lose them through a switch away from root), it returns an error
// that says how to build a binary that can drop them, and the daemon does not run.
func dropPrivileges(userName string, log *slog.Logger) error {
	root := os.Geteuid() == 0
	bounding := dropBounding()
	if userName != "" {
		if err := switchUser(userName); err != nil {
			return err
		}
		log.Info("switched user", "user", userName)
	}
	dropped := dropCapabilities()
	if dropped != nil && !errors.Is(dropped, errCgo) {
		return dropped
	}
	held, err := heldCapabilities("/proc/self/task")
	if err != nil {
		return err
	}
	if held != "" {
		if errors.Is(dropped, errCgo) {
			return fmt.Errorf("refusing to run holding capabilities (%s): %w", held, errCgo)
		}
		return fmt.Errorf("refusing to run holding capabilities (%s) after dropping them", held)
	}
	switch {
	case errors.Is(bounding, errCgo) && root:
		// Nothing is held, but a set-user-ID program the daemon ran could still gain
		// what the bounding set allows.
		log.Warn("capabilities stay in the bounding set: this binary was built with cgo; build it with CGO_ENABLED=0 to empty it")
	case bounding != nil && !errors.Is(bounding, errCgo):
		log.Warn("capabilities stay in the bounding set", "err", bounding)
	}
	return nil
}

// heldCapabilities names the capability sets (inheritable, permitted, effective,
// ambient) still held by a thread listed in taskDir (/proc/self/task), and on how many
// threads, or returns "" if no thread holds any.
func heldCapabilities(taskDir string) (string, error) {
	tasks, err := os.ReadDir(taskDir)
	if err != nil {
		return "", fmt.Errorf("checking the capabilities dropped: %w", err)
	}
	var sets []string
	holding := 0
	for _, task := range tasks {
		status, err := os.ReadFile(filepath.Join(taskDir, task.Name(), "status"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread has exited
		}
		if err != nil {
			return "", fmt.Errorf("checking the capabilities dropped: %w", err)
		}
		holds := false
		for line := range strings.SplitSeq(string(status), "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok || !slices.Contains([]string{"CapInh", "CapPrm", "CapEff", "CapAmb"}, name) {
				continue
			}
			if value = strings.TrimSpace(value); strings.Trim(value, "0") != "" {
				holds = true
				if set := name + "=" + value; !slices.Contains(sets, set) {
					sets = append(sets, set)
				}
			}
		}
		if holds {
			holding++
		}
	}
	if holding == 0 {
		return "", nil
	}
	return fmt.Sprintf("%s on %d of %d threads", strings.Join(sets, " "), holding, len(tasks)), nil
}

// dropBounding removes every capability from the bounding set, so that nothing the
// daemon runs can gain one, not even a program run as root. It needs CAP_SETPCAP; without
// it (an unprivileged daemon) the set stays, which is harmless: such a process cannot
// raise anything beyond its permitted set, which dropCapabilities empties.
func dropBounding() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 {
			switch e {
			case syscall.EPERM:
				return nil
			case syscall.ENOTSUP:
				return errCgo
			}
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, e)
		}
	}
	return nil
}

// dropCapabilities empties the ambient, inheritable, permitted and effective sets of
// every thread. Sockets opened before keep working; no new raw socket can be opened.
func dropCapabilities() error {
	if _, _, e := syscall.AllThreadsSyscall6(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != syscall.EINVAL {
		if e == syscall.ENOTSUP {
			return errCgo
		}
		return fmt.Errorf("clearing the ambient capabilities: %w", e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		if e == syscall.ENOTSUP {
			return errCgo
		}
		return fmt.Errorf("clearing the capabilities: %w", e)
	}
	return nil
}

var errCgo = errors.New("this binary was built with cgo, which rules out changing the capabilities of every thread: " +
	"build it with CGO_ENABLED=0 (as 'make build' does), or run it as root with --user")

// lastCap is the highest capability number the kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
