package rrdfmt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pingmachine/rrdfmt/rrdtest"
)

// TestHeaderSizes checks the struct arithmetic against the sizes measured for rrdtool's
// files on each architecture (shared/reference/anchors.md §4.2).
func TestHeaderSizes(t *testing.T) {
	tests := []struct {
		layout  Layout
		ds, rra int
		want    int
	}{
		{LP64, 23, 7, 19256},
		{ARM32, 23, 7, 19156},
		{ARM32Time64, 23, 7, 19164},
		{LP64, 22, 13, 29792},
		{ARM32, 22, 13, 29620},
		{ARM32Time64, 22, 13, 29628},
		{LP64, 1, 1, 664 - 8*10},  // `rrdtool create --step 20 DS:a:GAUGE:40:0:U RRA:AVERAGE:0.5:1:10`
		{ARM32, 1, 1, 636 - 8*10}, // the same under qemu with Debian's armhf rrdtool
	}
	for _, tt := range tests {
		if got := tt.layout.headerSize(tt.ds, tt.rra); got != tt.want {
			t.Errorf("%s, %d DS, %d RRA: header %d bytes, want %d", tt.layout, tt.ds, tt.rra, got, tt.want)
		}
	}
}

func smallSpec(layout Layout) Spec {
	return Spec{
		Step: 20 * time.Second, Start: time.Unix(1_700_000_000, 0), Layout: layout,
		DS: []DS{
			{Name: "a", Type: "GAUGE", Heartbeat: 40, Min: 0, Max: LP64.unknown()},
			{Name: "b", Type: "GAUGE", Heartbeat: 40, Min: LP64.unknown(), Max: LP64.unknown()},
		},
		RRA: []RRA{{CF: "AVERAGE", XFF: 0.5, PDPs: 1, Rows: 10}, {CF: "MAX", XFF: 0.5, PDPs: 3, Rows: 5}},
	}
}

// TestLayouts creates a file in each layout, reads it back in the same layout, and
// checks that every other layout refuses it with both layouts named.
func TestLayouts(t *testing.T) {
	layouts := []Layout{LP64, ARM32, ARM32Time64}
	for _, l := range layouts {
		path := filepath.Join(t.TempDir(), "x.rrd")
		spec := smallSpec(l)
		if err := Create(path, spec); err != nil {
			t.Fatal(err)
		}
		ups := []Update{{Time: time.Unix(1_700_000_025, 0), Values: []string{"1", "2"}},
			{Time: time.Unix(1_700_000_090, 0), Values: []string{"3", "U"}}}
		if err := UpdateFile(path, l, ups...); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		f, err := Fetch(path, l, "AVERAGE", time.Unix(1_700_000_000, 0), time.Unix(1_700_000_080, 0), 0)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if len(f.Rows) == 0 || f.DS[0] != "a" {
			t.Errorf("%s: fetched %+v", l, f)
		}
		for _, other := range layouts {
			if other == l {
				continue
			}
			err := UpdateFile(path, other, Update{Time: time.Unix(1_700_000_100, 0), Values: []string{"1", "1"}})
			if err == nil || !strings.Contains(err.Error(), l.String()) || !strings.Contains(err.Error(), other.String()) {
				t.Errorf("%s file opened as %s: err %v, want one naming both layouts", l, other, err)
			}
		}
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"+5", 5, true},
		{"-2.5", -2.5, true},
		{".5", 0.5, true},
		{"5.", 5, true},
		{" 7", 7, true},
		{"1e3", 1000, true},
		{"2.5E-1", 0.25, true},
		// rrdtool parses this one ulp above the correctly rounded ...5e0a.
		{"1.701719e-01", math.Float64frombits(0x3fc5c8315c995e0b), true},
		{"inf", math.Inf(1), true},
		{"-inf", math.Inf(-1), true},
		{"", 0, false},
		{"abc", 0, false},
		{"12abc", 0, false},
		{"1e400000", 0, false},
		{"e5", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseNumber(tt.in)
		if ok != tt.ok || (ok && math.Float64bits(got) != math.Float64bits(tt.want)) {
			t.Errorf("parseNumber(%q) = %v (%#x), %v; want %v (%#x), %v", tt.in, got, math.Float64bits(got), ok,
				tt.want, math.Float64bits(tt.want), tt.ok)
		}
	}
	if v, ok := parseNumber("nan"); !ok || !math.IsNaN(v) {
		t.Errorf("parseNumber(nan) = %v, %v", v, ok)
	}
	if correct, _ := strconv.ParseFloat("1.701719e-01", 64); correct == mustParse(t, "1.701719e-01") {
		t.Error("the test case no longer shows rrdtool's rounding")
	}
}

func mustParse(t *testing.T, s string) float64 {
	v, ok := parseNumber(s)
	if !ok {
		t.Fatalf("parseNumber(%q) failed", s)
	}
	return v
}

// TestUpdateErrors checks that a refused update names the problem and leaves the file
// exactly as it was, including the updates before it in the same call.
func TestUpdateErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.rrd")
	if err := Create(path, smallSpec(LP64)); err != nil {
		t.Fatal(err)
	}
	good := Update{Time: time.Unix(1_700_000_030, 0), Values: []string{"1", "2"}}
	tests := []struct {
		name string
		bad  Update
		want string
	}{
		{"at the last update", Update{Time: time.Unix(1_700_000_000, 0), Values: []string{"1", "2"}}, "illegal attempt to update using time 1700000000"},
		{"too few values", Update{Time: time.Unix(1_700_000_050, 0), Values: []string{"1"}}, "expected 2 data source readings, got 1"},
		{"not a number", Update{Time: time.Unix(1_700_000_050, 0), Values: []string{"1", "x1"}}, `data source b: "x1" is not a number`},
	}
	for _, tt := range tests {
		before, _ := os.ReadFile(path)
		err := UpdateFile(path, LP64, good, tt.bad)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err %v, want one naming the file and %q", tt.name, err, tt.want)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Errorf("%s: the file changed", tt.name)
		}
	}
	if err := Create(path, smallSpec(LP64)); err == nil {
		t.Error("Create replaced an existing file")
	}
	bad := smallSpec(LP64)
	bad.DS[1].Name = "has space"
	if err := Create(filepath.Join(t.TempDir(), "y.rrd"), bad); err == nil || !strings.Contains(err.Error(), "has space") {
		t.Errorf("Create with a bad name: %v", err)
	}
}

// TestUnreadable checks the errors for files that are not RRD files, are cut short, or
// are RRD files of a version or CPU layout this package does not handle: each wraps its
// sentinel error and says what is wrong with which file.
func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	content := func(l Layout) []byte {
		path := filepath.Join(dir, fmt.Sprintf("layout%d.rrd", l))
		if err := Create(path, smallSpec(l)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := content(LP64)
	tests := []struct {
		name    string
		content []byte
		is      error
		want    []string // in the message besides the path
	}{
		{"text", []byte("this is not an RRD file at all, but long enough to have a header of sixty-four bytes"), ErrNotRRD, []string{"not an RRD file"}},
		{"empty", nil, ErrNotRRD, []string{"not an RRD file"}},
		{"truncated", good[:len(good)-8], ErrNotRRD, []string{"fits no known layout"}},
		{"version", append([]byte("RRD\x000009\x00"), good[9:]...), ErrVersion, []string{`version "0009"`}},
		{"other layout", content(ARM32), ErrLayout, []string{ARM32.String(), LP64.String()}},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.name+".rrd")
		if err := os.WriteFile(path, tt.content, 0o644); err != nil {
			t.Fatal(err)
		}
		err := UpdateFile(path, LP64, Update{Time: time.Unix(1_700_000_100, 0), Values: []string{"1", "1"}})
		if !errors.Is(err, tt.is) {
			t.Errorf("%s: %v, want an error wrapping %q", tt.name, err, tt.is)
			continue
		}
		for _, w := range append(tt.want, path) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want an error with %q", tt.name, err, w)
			}
		}
	}
}

// FuzzDecodeHeader feeds corrupt headers to the reader: it must return an error, never
// panic or allocate for counts the file cannot hold.
func FuzzDecodeHeader(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.rrd")
	if err := Create(path, smallSpec(LP64)); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add(seed[:200])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range []Layout{LP64, ARM32, ARM32Time64} {
			h, err := decodeHeader(b, int64(len(b)), l)
			if err == nil && h.fileSize() != int64(len(b)) {
				t.Fatalf("accepted a header for %d bytes in a %d-byte file", h.fileSize(), len(b))
			}
		}
	})
}

// lastUpdate is the file's last update in seconds, read with ReadInfo.
func lastUpdate(t *testing.T, path string, layout Layout) int64 {
	t.Helper()
	info, err := ReadInfo(path, layout)
	if err != nil {
		t.Fatal(err)
	}
	return info.LastUpdate.Unix()
}

// TestReadInfo compares ReadInfo of rrdtool's files with rrdtool info and last.
func TestReadInfo(t *testing.T) {
	path := goldenDir + "/pm60-amd64.rrd"
	info, err := ReadInfo(path, LP64)
	if err != nil {
		t.Fatal(err)
	}
	out := rrdtest.Run(t, "info", path)
	last := strings.TrimSpace(rrdtest.Run(t, "last", path))
	for _, want := range []string{
		"step = " + strconv.Itoa(int(info.Step/time.Second)),
		"last_update = " + strconv.FormatInt(info.LastUpdate.Unix(), 10),
		"ds[ping5].minimal_heartbeat = " + strconv.FormatUint(info.DS[6].Heartbeat, 10),
		"rra[15].pdp_per_row = " + strconv.FormatUint(info.RRA[15].PDPs, 10),
		"rra[15].cf = \"" + info.RRA[15].CF + "\"",
		"rrd_version = \"" + info.Version + "\"",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("rrdtool info does not say %q", want)
		}
	}
	if last != strconv.FormatInt(info.LastUpdate.Unix(), 10) || len(info.DS) != 7 || len(info.RRA) != 16 {
		t.Errorf("info %+v; rrdtool last %s", info, last)
	}
}

// TestLockInterop holds rrdfmt's write lock and checks that the real rrdtool respects it.
func TestLockInterop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.rrd")
	if err := Create(path, smallSpec(LP64)); err != nil {
		t.Fatal(err)
	}
	f, _, err := openLocked(path, LP64, true)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rrdtool", "update", path, "1700000030:1:2").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lock") {
		t.Errorf("rrdtool update while we hold the lock: %v, %s; want a lock error", err, out)
	}
	f.Close()
	rrdtest.Run(t, "update", path, "1700000030:1:2")
}

// TestUpdater: one Updater, used in turn on files of different header sizes and on one
// of another layout, writes exactly what UpdateFile writes, and refuses the other
// layout as UpdateFile does.
func TestUpdater(t *testing.T) {
	big := smallSpec(LP64)
	for i := range 20 {
		big.DS = append(big.DS, DS{Name: fmt.Sprintf("p%d", i), Type: "GAUGE", Heartbeat: 40, Min: 0, Max: LP64.unknown()})
	}
	values := func(n int, v string) []string {
		vs := make([]string, n)
		for i := range vs {
			vs[i] = v
		}
		return vs
	}
	tests := []struct {
		name    string
		spec    Spec
		wantErr error
	}{
		{"small", smallSpec(LP64), nil},
		{"larger header", big, nil},
		{"small again", smallSpec(LP64), nil},
		{"another layout", smallSpec(ARM32), ErrLayout},
	}
	u := &Updater{Layout: LP64}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			want, got := filepath.Join(dir, "want.rrd"), filepath.Join(dir, "got.rrd")
			// One file copied: Create starts each archive at a random row, as rrdtool does.
			if err := Create(want, tt.spec); err != nil {
				t.Fatal(err)
			}
			created, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(got, created, 0o644); err != nil {
				t.Fatal(err)
			}
			ups := []Update{
				{Time: time.Unix(1_700_000_025, 0), Values: values(len(tt.spec.DS), "1")},
				{Time: time.Unix(1_700_000_090, 0), Values: values(len(tt.spec.DS), "2")},
			}
			wantErr := UpdateFile(want, LP64, ups...)
			f, err := os.OpenFile(got, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			err = u.Update(f, ups...)
			f.Close()
			if !errors.Is(err, tt.wantErr) || !errors.Is(wantErr, tt.wantErr) {
				t.Fatalf("Update: %v, UpdateFile: %v; want %v", err, wantErr, tt.wantErr)
			}
			a, _ := os.ReadFile(want)
			b, _ := os.ReadFile(got)
			switch {
			case tt.wantErr != nil && !bytes.Equal(b, created):
				t.Error("the Updater changed a file it refused")
			case tt.wantErr == nil && !bytes.Equal(a, b):
				t.Error("the Updater wrote another file than UpdateFile")
			}
		})
	}
}
