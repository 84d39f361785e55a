package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities are per thread on Linux, and a Go process has many threads: every change
// goes through syscall.AllThreadsSyscall, which applies it to all of them (it needs a
// build without cgo; the Makefile builds with CGO_ENABLED=0).

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

var errCgo = errors.New("this build uses cgo, which rules out changing the capabilities of every thread: build with CGO_ENABLED=0")

// lastCap is the highest capability number the kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
