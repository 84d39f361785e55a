package orders

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pingmachine/store"
)

// TestStoreTakesCheckedIDs runs ids that CheckID accepts, up to its limits, through all
// the store does with an order's output: results written, main.rrd kept aside when the
// step changes, the output archived and revived. The store checks ids itself, and the
// system limits paths; neither may refuse an order the watcher took. The ids just past
// the limits are refused by CheckID.
func TestStoreTakesCheckedIDs(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	for _, dir := range []string{"output", "archive"} {
		if err := os.MkdirAll(filepath.Join(base, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	longest := 0
	for n := 4096; n > 0 && longest == 0; n-- {
		if CheckID(base, longID(n)) == nil {
			longest = n
		}
	}
	for _, id := range []string{`a\b`, strings.Repeat("n", 256), longID(longest + 1)} {
		if CheckID(base, id) == nil {
			t.Errorf("CheckID accepts %.40q... (%d bytes)", id, len(id))
		}
	}

	st, err := store.Open(context.Background(), base, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := []string{
		"a",
		"site/with space/und ümlaut",
		"tab\tand\nnewline",
		strings.Repeat("n", 255) + "/" + strings.Repeat("m", 255),
		longID(longest),
	}
	for _, id := range ids {
		name := id
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if err := CheckID(base, id); err != nil {
			t.Errorf("%q: CheckID: %v", name, err)
			continue
		}
		se := store.Series{ID: id, Step: time.Minute, Pings: 1, RRDTemplate: "smokeping"}
		prepare := func() error {
			_, err := st.Prepare(se)
			return err
		}
		write := func() error {
			return st.Write(store.Result{ID: id, Time: store.Stamp(time.Now(), se.Step), Step: se.Step, RTTs: []time.Duration{time.Millisecond}})
		}
		for _, step := range []struct {
			what string
			do   func() error
		}{
			{"prepare", prepare},
			{"write", write},
			{"prepare with another step", func() error { se.Step = 2 * time.Minute; return prepare() }},
			{"write with another step", write},
			{"archive", func() error { return st.Archive(id) }},
			{"revive", prepare},
		} {
			if err := step.do(); err != nil {
				t.Errorf("%q (%d bytes): %s: %v", name, len(id), step.what, err)
			}
		}
		out := filepath.Join(base, "output", filepath.FromSlash(id))
		for _, file := range []string{"last_result", "main.rrd", "main.step60.pings1.rrd"} {
			if _, err := os.Stat(filepath.Join(out, file)); err != nil {
				t.Errorf("%q (%d bytes): %v", name, len(id), err)
			}
		}
	}
}
