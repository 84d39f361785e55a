package orders

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestLoad reads an orders tree as the daemon does before it drops privileges: the valid
// orders, whatever their depth, and nothing else.
func TestLoad(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "orders")
	files := map[string]string{
		"a":                validOrder("127.0.0.1"),
		"team/deep/b":      validOrder("::1") + "  ipv6: 1\n",
		"team/invalid":     invalidOrder,
		"team/.hidden":     validOrder("127.0.0.2"),
		"team/c.tmp":       validOrder("127.0.0.3"),
		"team/c~":          validOrder("127.0.0.3"),
		".git/d":           validOrder("127.0.0.4"),
		"team/big":         validOrder("127.0.0.5") + "# " + strings.Repeat("x", MaxSize) + "\n",
		"team/source/e":    validOrder("127.0.0.6") + "  source_ip: 127.0.0.7\n  interface: lo\n",
		`team/back\slash`:  validOrder("127.0.0.8"),
		"telegraf-is-not/": "",
	}
	for name, text := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A FIFO is not an order and must not block the reader.
	if err := syscall.Mkfifo(filepath.Join(dir, "team", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A link to a directory below orders/ is not followed.
	if err := os.Symlink(filepath.Join(dir, "team"), filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	// orders/ itself a symbolic link, as configuration management may make it, is.
	linked := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(linked, "orders")); err != nil {
		t.Fatal(err)
	}
	want := []string{"a 127.0.0.1 invalid IP ", "team/deep/b ::1 invalid IP ", "team/source/e 127.0.0.6 127.0.0.7 lo"}
	for _, b := range []string{base, linked} {
		var got []string
		for _, o := range Load(b) {
			got = append(got, o.ID+" "+o.FPing.Host+" "+o.FPing.Source.String()+" "+o.FPing.Interface)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Load(%s) = %q, want %q", b, got, want)
		}
	}
	if got := Load(filepath.Join(base, "missing")); len(got) != 0 {
		t.Errorf("Load of a missing tree = %v", got)
	}
}
