package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/store/view/viewtest"
)

// runMain runs the command line in this process and returns stdout, stderr and the exit
// status.
func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// sampleTree is viewtest's sample, its results written a moment ago.
func sampleTree(t *testing.T) *viewtest.Tree {
	tree := viewtest.New(t)
	tree.Sample(time.Now().Truncate(time.Second))
	return tree
}

// tableIDs returns the ids in the first column of the status tables, and the lines of
// the sections below them.
func tableIDs(text string) (ids []string, sections []string) {
	inTable := false
	for line := range strings.Lines(text) {
		switch {
		case strings.HasPrefix(line, "  ---"):
			inTable = true
		case strings.TrimSpace(line) == "":
			inTable = false
		case inTable:
			ids = append(ids, strings.Fields(line)[0])
		case !strings.HasPrefix(line, "- ") && !strings.HasPrefix(line, "  order "):
			sections = append(sections, strings.TrimSpace(line))
		}
	}
	return ids, sections
}

func TestStatusCommand(t *testing.T) {
	tree := sampleTree(t)
	all := []string{"web1", "new", "odd", "site/zurich/gw", "scion/sping1", "scion/pping1", "http/intranet"}
	tests := []struct {
		name string
		args []string
		ids  []string
		say  []string // lines below the tables
	}{
		{"everything", []string{"status", "-b", tree.Base}, all, []string{
			"invalid orders, as the daemon reads them:",
			`orders/bad/pings: line 3: pings: expected a whole number of pings, got "two"`,
			"stale orders, without a result for more than two steps:",
			"scion/pping1: last result 10 min ago, step 60 s",
			"unreadable results:",
			filepath.Join(tree.Base, "output/odd/last_result") + `: line 1: time: expected a whole number, got "soon"`,
			"orders: 8 (4 ok, 1 stale, 1 without a result yet, 1 with an unreadable result, 1 invalid)",
			"daemon: not running (" + filepath.Join(tree.Base, ".lock") + " is not locked)",
		}},
		{"prefixes, flags after them", []string{"status", "scion", "web1", "--basedir", tree.Base}, []string{"web1", "scion/sping1", "scion/pping1"}, []string{
			"stale orders, without a result for more than two steps:",
			"scion/pping1: last result 10 min ago, step 60 s",
			"orders: 3 (2 ok, 1 stale)",
			"daemon: not running (" + filepath.Join(tree.Base, ".lock") + " is not locked)",
		}},
		{"a user, and the invalid orders", []string{"status", "--user", "web", "-b", tree.Base}, []string{"http/intranet"}, []string{
			"invalid orders, as the daemon reads them:",
			`orders/bad/pings: line 3: pings: expected a whole number of pings, got "two"`,
			"orders: 2 (1 ok, 1 invalid)",
			"daemon: not running (" + filepath.Join(tree.Base, ".lock") + " is not locked)",
		}},
		{"nothing selected", []string{"status", "-b", tree.Base, "--", "-x"}, nil, []string{
			"no orders in " + tree.Base + "/orders",
			"orders: 0",
			"daemon: not running (" + filepath.Join(tree.Base, ".lock") + " is not locked)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runMain(t, tt.args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			ids, sections := tableIDs(stdout)
			if !slices.Equal(ids, tt.ids) || !slices.Equal(sections, tt.say) {
				t.Errorf("status shows orders %q and\n%q\nwant %q and\n%q\n%s", ids, sections, tt.ids, tt.say, stdout)
			}
			if strings.Contains(stdout, "\x1b") {
				t.Error("colours in a pipe")
			}
		})
	}
}

// TestStatusJSON: --json is one JSON document of the same orders as the table, with
// their states.
func TestStatusJSON(t *testing.T) {
	tree := sampleTree(t)
	text, _, _ := runMain(t, "status", "-b", tree.Base)
	stdout, stderr, code := runMain(t, "status", "--json", "-b", tree.Base)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var doc struct {
		Basedir string `json:"basedir"`
		Daemon  struct {
			Running bool `json:"running"`
		} `json:"daemon"`
		Orders []struct {
			ID, State, User string
			Result          *struct{ Age int64 }
		} `json:"orders"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("more than one JSON document: %v", err)
	}
	ids, _ := tableIDs(text)
	states := map[string]string{}
	var listed []string
	for _, o := range doc.Orders {
		states[o.ID] = o.State
		if o.State != "invalid" {
			listed = append(listed, o.ID)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, listed) {
		t.Errorf("the JSON has %q, the table %q", listed, ids)
	}
	want := map[string]string{"bad/pings": "invalid", "http/intranet": "ok", "new": "no_result", "odd": "unreadable",
		"scion/pping1": "stale", "scion/sping1": "ok", "site/zurich/gw": "ok", "web1": "ok"}
	if !maps.Equal(states, want) {
		t.Errorf("states %v, want %v", states, want)
	}
	if doc.Basedir != tree.Base || doc.Daemon.Running {
		t.Errorf("basedir %q, daemon running %v", doc.Basedir, doc.Daemon.Running)
	}
}

func TestStatusErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		args []string
		exit int
		say  string
	}{
		{[]string{"status", "-b", missing}, exitFailed, "pingmachine status: reading the base directory: stat " + missing + ": no such file or directory\n"},
		{[]string{"status", "--bogus"}, exitBadArgs, "flag provided but not defined: -bogus"},
		{[]string{"status", "-h"}, exitOK, "usage: pingmachine status [-b DIR] [--json] [--user U] [ID-PREFIX ...]"},
	}
	for _, tt := range tests {
		stdout, stderr, code := runMain(t, tt.args...)
		if code != tt.exit || !strings.Contains(stderr, tt.say) || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, stdout, stderr, tt.exit, tt.say)
		}
	}
}

// TestStatusColour runs status on a terminal, a pseudo-terminal this test opens: the
// Perl tool's colours are there, and not with NO_COLOR, nor in a pipe.
func TestStatusColour(t *testing.T) {
	tree := sampleTree(t)
	for _, tt := range []struct {
		noColour string
		colours  bool
	}{{"", true}, {"1", false}} {
		t.Setenv("NO_COLOR", tt.noColour)
		master, pts := openPTY(t)
		read := make(chan []byte)
		go func() {
			out, _ := io.ReadAll(master) // EIO once the terminal side is closed
			read <- out
		}()
		code := run(context.Background(), []string{"status", "-b", tree.Base}, strings.NewReader(""), pts, io.Discard)
		pts.Close()
		out := <-read
		master.Close()
		if code != exitOK || !bytes.Contains(out, []byte("daemon: not running")) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, colour := range []string{"\x1b[1m- netops\x1b[0m", "\x1b[31m100%\x1b[0m", "\x1b[32m  5%\x1b[0m", "\x1b[33m 40%\x1b[0m"} {
			if got := bytes.Contains(out, []byte(colour)); got != tt.colours {
				t.Errorf("NO_COLOR=%q: %q shown %v, want %v:\n%s", tt.noColour, colour, got, tt.colours, out)
			}
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	t.Setenv("NO_COLOR", "")
	if colourful(w) {
		t.Error("colours in a pipe")
	}
}

// openPTY opens a pseudo-terminal: its master side, and the terminal.
func openPTY(t *testing.T) (master, pts *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, pts
}
