package view_test

import (
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"pingmachine/store/view"
	"pingmachine/store/view/viewtest"
)

// BenchmarkStatus reads a base directory of 10,000 orders, in 100 directories of 100,
// each with its last result, and writes it as status does. It must take less than a
// second.
func BenchmarkStatus(b *testing.B) {
	tree := viewtest.New(b)
	now := time.Now()
	for i := range 10_000 {
		id := fmt.Sprintf("site%02d/host%04d", i/100, i)
		tree.Order(id, fmt.Sprintf("user: team%d\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 10.%d.%d.%d\n  interface: eth0\ntags: {site: s%d}\n",
			i%7, i>>16&255, i>>8&255, i&255, i/100))
		rtts := make([]time.Duration, 20)
		for j := range rtts {
			rtts[j] = time.Duration(1000+i+j) * time.Microsecond
		}
		tree.Result(id, time.Minute, now, rtts...)
	}
	cpu := cpuTime(b)
	for b.Loop() {
		v, err := view.Read(tree.Base)
		if err != nil {
			b.Fatal(err)
		}
		if len(v.Orders) != 10_000 {
			b.Fatalf("%d orders", len(v.Orders))
		}
		if err := v.WriteText(io.Discard, false); err != nil {
			b.Fatal(err)
		}
	}
	// The processor time too, which other work on the machine does not lengthen.
	b.ReportMetric(float64((cpuTime(b)-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuTime is the processor time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
