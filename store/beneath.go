package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// open opens the existing file rel (relative to the base, with slashes) with flags, in
// one openat2 call that fails on any symbolic link on the way; where the kernel has no
// openat2 it fails with errors.ErrUnsupported.
func (b *beneath) open(rel string, flags int) (*os.File, error) {
	if !b.openat2.Load() {
		return nil, errors.ErrUnsupported
	}
	fd, err := unix.Openat2(b.fd, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			b.openat2.Store(false)
		}
		return nil, &fs.PathError{Op: "open", Path: b.name(rel), Err: err}
	}
	return os.NewFile(uintptr(fd), b.name(rel)), nil
}

// spareFlags open the spare file, or make it: O_NOFOLLOW refuses a symbolic link, and
// O_NONBLOCK a named pipe with no reader, which would otherwise block.
const spareFlags = unix.O_WRONLY | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// replace replaces the file dir/name (dir relative to the base, with slashes) by one
// holding data, so that a reader always finds a whole file: data is written to the
// spare file .name.spare, which then trades places with name in one renameat2
// (RENAME_EXCHANGE). The spare keeps the previous content and is overwritten next time.
// Missing directories are created.
//
// Trading places rather than renaming a new file over the old one allocates and frees
// no inode: on ext4, finding a free inode that was not freed just before took a quarter
// of the daemon's CPU at 1,000 orders. Where the file system cannot exchange (or name
// does not exist yet) the spare is renamed over name, and made anew next time.
//
// The usual case is five system calls: openat2 resolves the whole path beneath the base
// and fails on any symbolic link on the way, then fstat, pwrite, close and renameat2
// (and ftruncate when the new content is shorter than the spare's). Anything unusual (a directory missing, a link, a spare that is not a plain
// file of its own) takes the careful way, which sorts it out or says what is wrong.
func (b *beneath) replace(dir, name string, data []byte) error {
	spare := "." + name + ".spare"
	if b.openat2.Load() {
		fd, err := unix.Openat2(b.fd, dir+"/"+spare, &unix.OpenHow{
			Flags:   spareFlags,
			Mode:    0o644,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		if err == nil {
			if size, ok := plainFile(fd); ok {
				// renameat2 resolves the names that openat2 just found free of links. To
				// swap a directory for a link in between takes write access to output/,
				// which is the daemon's; a descriptor of the directory would close that
				// gap at the price of two more calls per result.
				return b.wrap(dir, name, finish(fd, b.fd, dir+"/"+spare, dir+"/"+name, data, size))
			}
			unix.Close(fd)
		} else if errors.Is(err, unix.ENOSYS) {
			b.openat2.Store(false)
		}
	}
	dfd, err := b.mkdirAll(dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, spare, spareFlags, 0o644)
	size, ok := int64(0), false
	if err == nil {
		if size, ok = plainFile(fd); !ok {
			unix.Close(fd)
			err = unix.EEXIST
		}
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		// Something else in its place, left by a crash or planted: unlinkat removes
		// a link, not what it points to; O_EXCL makes sure the new one is new.
		if err := unix.Unlinkat(dfd, spare, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("store: can't remove the old %s: %w", b.name(dir, spare), err)
		}
		fd, err = unix.Openat(dfd, spare, spareFlags|unix.O_EXCL, 0o644)
		size = 0
	}
	if err != nil {
		return fmt.Errorf("store: can't create %s: %w", b.name(dir, spare), err)
	}
	return b.wrap(dir, name, finish(fd, dfd, spare, name, data, size))
}

// plainFile reports whether fd is a regular file with no other name, which may be
// written in place: not a device or a pipe, nor a hard link to a file elsewhere; and
// its size.
func plainFile(fd int) (int64, bool) {
	var st unix.Stat_t
	ok := unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1
	return st.Size, ok
}

func (b *beneath) wrap(dir, name string, err error) error {
	if err != nil {
		return fmt.Errorf("store: can't replace %s: %w", b.name(dir, name), err)
	}
	return nil
}

// finish writes data over the spare file fd, of size bytes, closes it and puts it in the
// place of name, both relative to dirfd. On an error the spare is removed.
func finish(fd, dirfd int, spare, name string, data []byte, size int64) error {
	err := writeAll(fd, data)
	if err == nil && size > int64(len(data)) {
		// Results are mostly of one length: a call saved, and a journal entry.
		err = unix.Ftruncate(fd, int64(len(data)))
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(dirfd, spare, 0)
		return fmt.Errorf("writing the spare file: %w", err)
	}
	err = unix.Renameat2(dirfd, spare, dirfd, name, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
		// name is not there yet, or the file system cannot exchange.
		err = unix.Renameat(dirfd, spare, dirfd, name)
	}
	if err != nil {
		unix.Unlinkat(dirfd, spare, 0)
		return fmt.Errorf("putting the spare file in place: %w", err)
	}
	return nil
}

// writeAll writes data to fd from its start, going on after a short write (a disk
// filling up reports ENOSPC on the next call).
func writeAll(fd int, data []byte) error {
	for off := int64(0); len(data) > 0; {
		n, err := unix.Pwrite(fd, data, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
		off += int64(n)
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
