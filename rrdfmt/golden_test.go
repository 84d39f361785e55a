package rrdfmt

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goldenDir holds files made by the real rrdtool on amd64 and, under qemu-user, by
// Debian's armhf rrdtool (testdata/rrd/README.md).
const goldenDir = "../testdata/rrd"

func readUpdates(t *testing.T, name string) []Update {
	t.Helper()
	f, err := os.Open(filepath.Join(goldenDir, "updates-"+name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ups []Update
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		ts, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			t.Fatalf("updates-%s.txt: %v", name, err)
		}
		ups = append(ups, Update{Time: time.Unix(ts, 0), Values: fields[1:]})
	}
	return ups
}

// TestGolden applies the golden update sequence to a copy of rrdtool's freshly created
// file and expects rrdtool's updated file byte for byte, on both layouts, and reads
// rrdtool's files with Fetch exactly as rrdtool fetch printed them on their own CPU.
func TestGolden(t *testing.T) {
	layouts := map[string]Layout{"amd64": LP64, "armhf": ARM32}
	for arch, layout := range layouts {
		for _, name := range []string{"small", "pm60"} {
			t.Run(name+"-"+arch, func(t *testing.T) {
				want, err := os.ReadFile(filepath.Join(goldenDir, name+"-"+arch+".rrd"))
				if err != nil {
					t.Fatal(err)
				}
				empty, err := os.ReadFile(filepath.Join(goldenDir, name+"-empty-"+arch+".rrd"))
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "x.rrd")
				if err := os.WriteFile(path, empty, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := UpdateFile(path, layout, readUpdates(t, name)...); err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(path)
				if !bytes.Equal(got, want) {
					t.Errorf("after the updates our file differs from rrdtool's at byte %d of %d", firstByteDiff(got, want), len(want))
				}

				golden := filepath.Join(goldenDir, name+"-"+arch+".rrd")
				last := lastUpdate(t, golden, layout)
				fetched, err := Fetch(golden, layout, "AVERAGE", time.Unix(last-86400, 0), time.Unix(last, 0), 0)
				if err != nil {
					t.Fatal(err)
				}
				printed, err := os.ReadFile(filepath.Join(goldenDir, name+"-"+arch+".fetch"))
				if err != nil {
					t.Fatal(err)
				}
				if g, w := formatFetch(fetched), strings.TrimSpace(string(printed)); g != w {
					t.Errorf("fetch differs from rrdtool's:\n%s", firstDiff(g, w))
				}

				for other, l := range layouts {
					if l == layout {
						continue
					}
					_, err := Fetch(golden, l, "AVERAGE", time.Unix(last-600, 0), time.Unix(last, 0), 0)
					if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), layout.String()) {
						t.Errorf("%s file read as %s: %v, want ErrLayout naming %s", arch, other, err, layout)
					}
				}
			})
		}
	}
}

func firstByteDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
