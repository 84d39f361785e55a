package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWrite is one round of an order per op, as the daemon writes it: last_result
// alone (norrd), or main.rrd and last_result. Under strace -c it counts the system calls
// of a result.
func BenchmarkWrite(b *testing.B) {
	for _, template := range []string{"norrd", "smokeping"} {
		b.Run(template, func(b *testing.B) {
			base := b.TempDir()
			for _, d := range []string{"output", "archive"} {
				if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
					b.Fatal(err)
				}
			}
			now := time.Unix(now0, 0)
			s, err := Open(b.Context(), base, Options{Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			se := Series{ID: "site/host", Step: time.Minute, Pings: 20, RRDTemplate: template}
			if _, err := s.Prepare(se); err != nil {
				b.Fatal(err)
			}
			r := Result{ID: se.ID, Step: se.Step, RTTs: make([]time.Duration, se.Pings)}
			for i := range r.RTTs {
				r.RTTs[i] = time.Duration(20+i) * time.Millisecond
			}
			b.ResetTimer()
			for i := range b.N {
				now = time.Unix(now0+int64(i)*60, 0)
				r.Time = Stamp(now, se.Step)
				if err := s.Write(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
