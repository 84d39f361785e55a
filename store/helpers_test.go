package store

import (
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"pingmachine/store/storetest"
)

// now0 is the fake clock's start: 1_700_000_000 = 28_333_333*60 + 20.
const now0 = 1_700_000_000

// clock is a fake Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(sec int64) *clock { return &clock{t: time.Unix(sec, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(sec int64) {
	c.mu.Lock()
	c.t = time.Unix(sec, 0)
	c.mu.Unlock()
}

// testStore is a Store on a fresh base directory with output/ and archive/.
type testStore struct {
	*Store
	base, output, archive string
	clock                 *clock
	log                   *storetest.LogBuffer
}

func newBase(t *testing.T) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "base")
	for _, d := range []string{"output", "archive"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return base
}

func openStore(t *testing.T, base string, opt Options) *testStore {
	t.Helper()
	ts := &testStore{base: base, output: filepath.Join(base, "output"), archive: filepath.Join(base, "archive"), log: &storetest.LogBuffer{}}
	if opt.Now == nil {
		ts.clock = newClock(now0)
		opt.Now = ts.clock.Now
	}
	opt.Logger = slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(t.Context(), base, opt)
	if err != nil {
		t.Fatal(err)
	}
	ts.Store = s
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("store log:\n%s", ts.log.String())
		}
	})
	return ts
}

func newStore(t *testing.T, opt Options) *testStore {
	t.Helper()
	return openStore(t, newBase(t), opt)
}

func (ts *testStore) out(id string, name ...string) string {
	return filepath.Join(append([]string{ts.output, filepath.FromSlash(id)}, name...)...)
}

func (ts *testStore) arch(id string, name ...string) string {
	return filepath.Join(append([]string{ts.archive, filepath.FromSlash(id)}, name...)...)
}

// mustPrepare prepares se and fails the test on an error.
func (ts *testStore) mustPrepare(t *testing.T, se Series) {
	t.Helper()
	if _, err := ts.Prepare(se); err != nil {
		t.Fatalf("Prepare(%+v): %v", se, err)
	}
}

// round writes a round of se stamped for the fake clock's current time.
func (ts *testStore) round(t *testing.T, se Series, r []time.Duration) Result {
	t.Helper()
	res := Result{ID: se.ID, Time: Stamp(ts.clock.Now(), se.Step), Step: se.Step, RTTs: r}
	if err := ts.Write(res); err != nil {
		t.Fatalf("Write(%s at %d): %v", se.ID, res.Time.Unix(), err)
	}
	return res
}

// wantRow is the row a round must leave in main.rrd, computed here independently of the
// store: loss, the upper median, and the sorted RTTs centred among the pings with
// int(loss/2) unknown below and the rest above.
func wantRow(r []time.Duration) []float64 {
	var ok []float64
	for _, d := range r {
		if d >= 0 {
			ok = append(ok, parseE(d))
		}
	}
	slices.Sort(ok)
	loss := len(r) - len(ok)
	row := []float64{float64(loss), math.NaN()}
	if len(ok) > 0 {
		row[1] = ok[len(ok)/2]
	}
	for range loss / 2 {
		row = append(row, math.NaN())
	}
	row = append(row, ok...)
	for range loss - loss/2 {
		row = append(row, math.NaN())
	}
	return row
}

// parseE is d in seconds as rrdtool receives it: rounded to "%.6e".
func parseE(d time.Duration) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(d.Seconds(), 'e', 6, 64), 64)
	return v
}

func sameValue(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

func checkRow(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values %v, want %d %v", what, len(got), got, len(want), want)
		return
	}
	for i := range got {
		if !sameValue(got[i], want[i]) {
			t.Errorf("%s: value %d = %v, want %v\n got %v\nwant %v", what, i, got[i], want[i], got, want)
			return
		}
	}
}

// readFile returns the file's content, failing the test if it cannot be read.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
