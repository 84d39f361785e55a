package rrdfmt

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wchar is the number of bytes this process has passed to write(2) and its kin.
func wchar(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no write count: %v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no wchar in /proc/self/io")
	return 0
}

// TestUpdateWritesLess: an update writes the rows and the live part of the header,
// never the definitions.
func TestUpdateWritesLess(t *testing.T) {
	start := time.Unix(1_699_999_980, 0)
	spec := pingmachineSpec(60*time.Second, 20, start)
	spec.Layout = NativeLayout()
	path := filepath.Join(t.TempDir(), "main.rrd")
	if err := Create(path, spec); err != nil {
		t.Fatal(err)
	}
	l := spec.Layout
	nds, nrra := len(spec.DS), len(spec.RRA)
	live := l.headerSize(nds, nrra) - l.liveOffset(nds, nrra)
	values := []string{"0", "0.02"}
	for i := range 20 {
		values = append(values, strconv.FormatFloat(0.02+float64(i)/1000, 'e', 6, 64))
	}
	for i := int64(1); i <= 5; i++ {
		before := wchar(t)
		if err := UpdateFile(path, l, Update{Time: start.Add(time.Duration(i) * time.Minute), Values: values}); err != nil {
			t.Fatal(err)
		}
		// One row per RRA at most: each update closes one PDP.
		if n, most := wchar(t)-before, int64(live+nrra*nds*8); n > most {
			t.Errorf("update %d wrote %d bytes; want at most %d (the live header and a row per RRA)", i, n, most)
		}
	}
}

// TestOpenErrors: a file that cannot be opened is reported with its path, and a missing
// one as such, for the store to create it.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		is   error
	}{
		{"missing", filepath.Join(dir, "missing.rrd"), fs.ErrNotExist},
		{"directory", dir, syscall.EISDIR},
	}
	for _, tt := range tests {
		err := UpdateFile(tt.path, LP64, Update{Time: time.Unix(1_700_000_100, 0), Values: []string{"1", "1"}})
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), "open "+tt.path) {
			t.Errorf("%s: %v, want an error wrapping %q that names the path", tt.name, err, tt.is)
		}
	}
}
