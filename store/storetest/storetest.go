// Package storetest holds test helpers that the tests of several pingmachine packages
// share: a log destination that goroutines may write to at once, a listing of a directory
// tree, and polling for a condition with a deadline.
//
// It lives under store, the lowest package whose tests use it, so that every package that
// may import store (pinger, orders, cmd, bench) may import it too. It imports nothing of
// pingmachine, so that store's own tests can use it.
package storetest

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// LogBuffer collects what a logger writes from any number of goroutines, for a test to
// read at any time. The zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tree lists every path below root in walk order (sorted): relative, with slashes,
// directories ending in "/". The test fails if root cannot be walked.
func Tree(tb testing.TB, root string) []string {
	tb.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return paths
}

// pollEvery is how often WaitFor checks its condition: often enough that a test does not
// wait long after the condition holds, rarely enough not to load a busy machine.
const pollEvery = 10 * time.Millisecond

// WaitFor checks cond until it holds; the test fails, saying what it waited for, if it
// does not hold within timeout. cond runs on the test's goroutine, so it may fail the
// test itself.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(pollEvery)
	}
}
