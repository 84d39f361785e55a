package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// beneath replaces files below a base directory without ever following a symbolic link,
// with as few system calls as that allows: a result is written every step for every
// order, so each call counts.
type beneath struct {
	path string // the base directory, for error messages
	fd   int    // the base directory, opened with O_PATH
	// openat2 is cleared where the kernel has no openat2(2) (Linux before 5.6, as on
	// older Raspberry Pi OS): the directories are then walked one at a time.
	openat2 atomic.Bool
}

func openBeneath(base string) (*beneath, error) {
	fd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("store: opening the base directory %s: %w", base, err)
	}
	b := &beneath{path: base, fd: fd}
	b.openat2.Store(true)
	return b, nil
}

func (b *beneath) close() error { return unix.Close(b.fd) }

// createFlags make a new file, never one that is there: O_EXCL also refuses a symbolic
// link, which would otherwise be followed.
const createFlags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC

// replace replaces the file dir/name (dir relative to the base, with slashes) by one
// holding data: written to name.tmp and renamed over name, so that a reader always finds
// a whole file. Missing directories are created.
//
// The usual case is four system calls: openat2 resolves the whole path beneath the base
// and fails on any symbolic link on the way, then write, close and renameat. Anything
// unusual (a directory missing, a temporary file left over, a link) takes the careful
// way, which sorts it out or says what is wrong.
func (b *beneath) replace(dir, name string, data []byte) error {
	tmp := name + ".tmp"
	if b.openat2.Load() {
		fd, err := unix.Openat2(b.fd, dir+"/"+tmp, &unix.OpenHow{
			Flags:   createFlags,
			Mode:    0o644,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		if err == nil {
			// renameat resolves the names that openat2 just found free of links. To swap
			// a directory for a link in between takes write access to output/, which
			// is the daemon's; a descriptor of the directory would close that gap at
			// the price of two more calls per result.
			return b.wrap(dir, name, finish(fd, b.fd, dir+"/"+tmp, dir+"/"+name, data))
		}
		if errors.Is(err, unix.ENOSYS) {
			b.openat2.Store(false)
		}
	}
	dfd, err := b.mkdirAll(dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, tmp, createFlags, 0o644)
	if errors.Is(err, unix.EEXIST) {
		// Left by a crash, or planted: unlinkat removes a link, not what it points to.
		if err := unix.Unlinkat(dfd, tmp, 0); err != nil {
			return fmt.Errorf("store: can't remove the old %s: %w", b.name(dir, tmp), err)
		}
		fd, err = unix.Openat(dfd, tmp, createFlags, 0o644)
	}
	if err != nil {
		return fmt.Errorf("store: can't create %s: %w", b.name(dir, tmp), err)
	}
	return b.wrap(dir, name, finish(fd, dfd, tmp, name, data))
}

func (b *beneath) wrap(dir, name string, err error) error {
	if err != nil {
		return fmt.Errorf("store: can't replace %s: %w", b.name(dir, name), err)
	}
	return nil
}

// finish writes data to fd, closes it and renames tmp to name, both relative to dirfd.
// On an error the temporary file is removed.
func finish(fd, dirfd int, tmp, name string, data []byte) error {
	err := writeAll(fd, data)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("writing the temporary file: %w", err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("renaming the temporary file: %w", err)
	}
	return nil
}

// writeAll writes data to fd, going on after a short write (a disk filling up reports
// ENOSPC on the next call).
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// mkdirAll opens dir below the base one name at a time, creating what is missing, and
// refusing a symbolic link anywhere on the way. It returns the directory's descriptor.
func (b *beneath) mkdirAll(dir string) (int, error) {
	cur := b.fd
	done := ""
	for part := range strings.SplitSeq(dir, "/") {
		done = filepath.Join(done, part)
		fd, err := unix.Openat(cur, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(cur, part, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				fd, err = unix.Openat(cur, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if err != nil && b.isLink(cur, part) {
			err = errors.New("a symbolic link: nothing is written through it")
		}
		if cur != b.fd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, fmt.Errorf("store: directory %s: %w", b.name(done), err)
		}
		cur = fd
	}
	return cur, nil
}

func (b *beneath) isLink(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// name is a path below the base as the operator knows it.
func (b *beneath) name(rel ...string) string {
	return filepath.Join(append([]string{b.path}, rel...)...)
}
