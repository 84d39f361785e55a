package store

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"pingmachine/store/storetest"
)

// TestReplace covers both ways of replacing a file: with openat2(2), and the walk one
// directory at a time that kernels without it get.
func TestReplace(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, base, outside string)
		wantErr string // empty: the file is replaced
	}{
		{"directories exist", func(t *testing.T, base, _ string) {
			mkdir(t, base, "output/a/b")
			write(t, filepath.Join(base, "output/a/b/last_result"), "old")
		}, ""},
		{"directories missing", func(*testing.T, string, string) {}, ""},
		{"output/ missing", func(t *testing.T, base, _ string) {
			if err := os.Remove(filepath.Join(base, "output")); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"spare left over, longer", func(t *testing.T, base, _ string) {
			mkdir(t, base, "output/a/b")
			write(t, filepath.Join(base, "output/a/b/.last_result.spare"), "a stale and longer content")
		}, ""},
		{"spare is a link", func(t *testing.T, base, outside string) {
			mkdir(t, base, "output/a/b")
			symlink(t, filepath.Join(outside, "victim"), filepath.Join(base, "output/a/b/.last_result.spare"))
		}, ""},
		{"spare is a hard link", func(t *testing.T, base, outside string) {
			mkdir(t, base, "output/a/b")
			if err := os.Link(filepath.Join(outside, "victim"), filepath.Join(base, "output/a/b/.last_result.spare")); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"spare is a named pipe", func(t *testing.T, base, _ string) {
			mkdir(t, base, "output/a/b")
			if err := syscall.Mkfifo(filepath.Join(base, "output/a/b/.last_result.spare"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"directory is a link", func(t *testing.T, base, outside string) {
			mkdir(t, base, "output/a")
			symlink(t, outside, filepath.Join(base, "output/a/b"))
		}, "base/output/a/b: a symbolic link"},
		{"output/ is a link", func(t *testing.T, base, outside string) {
			if err := os.Remove(filepath.Join(base, "output")); err != nil {
				t.Fatal(err)
			}
			symlink(t, outside, filepath.Join(base, "output"))
		}, "base/output: a symbolic link"},
		{"spare is a directory", func(t *testing.T, base, _ string) {
			mkdir(t, base, "output/a/b/.last_result.spare/x")
		}, "can't remove the old"},
	}
	for _, tt := range tests {
		bothWays(t, tt.name, func(t *testing.T, viaOpenat2 bool) {
			base := newBase(t)
			outside := t.TempDir()
			write(t, filepath.Join(outside, "victim"), "precious")
			tt.plant(t, base, outside)
			b, err := openBeneath(base)
			if err != nil {
				t.Fatal(err)
			}
			defer b.close()
			b.openat2.Store(viaOpenat2)

			err = b.replace("output/a/b", "last_result", []byte("new\n"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("replace: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("replace: error %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr == "":
				if got := readFile(t, filepath.Join(base, "output/a/b/last_result")); string(got) != "new\n" {
					t.Errorf("last_result = %q, want %q", got, "new\n")
				}
			}
			if names := storetest.Tree(t, outside); !slices.Equal(names, []string{"victim"}) {
				t.Errorf("outside the base directory: %v, want only the victim", names)
			}
			if got := readFile(t, filepath.Join(outside, "victim")); string(got) != "precious" {
				t.Errorf("the file outside was changed: %q", got)
			}
			if fi, err := os.Lstat(filepath.Join(base, "output/a/b/.last_result.spare")); tt.wantErr == "" && err == nil && !fi.Mode().IsRegular() {
				t.Errorf("the spare is a %v, want a regular file (or none)", fi.Mode().Type())
			}
		})
	}
}

// bothWays runs test as the subtest name twice: with openat2, and as on kernels without.
func bothWays(t *testing.T, name string, test func(t *testing.T, viaOpenat2 bool)) {
	t.Helper()
	for _, viaOpenat2 := range []bool{true, false} {
		if !viaOpenat2 {
			name += " without openat2"
		}
		t.Run(name, func(t *testing.T) { test(t, viaOpenat2) })
	}
}

func mkdir(t *testing.T, base, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(base, dir), 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
