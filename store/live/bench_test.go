package live_test

import (
	"strconv"
	"testing"
	"time"

	"pingmachine/orders"
	"pingmachine/store"
	"pingmachine/store/live"
)

type nowhere struct{}

func (nowhere) Update(*orders.Order)         {}
func (nowhere) Remove(string, orders.Reason) {}
func (nowhere) Scanned(map[string]bool)      {}

// BenchmarkView is the live view of 10,000 orders with a result each: what the status
// page and /api/status take instead of view.Read (BenchmarkStatus in store/view).
func BenchmarkView(b *testing.B) {
	s := live.New("/base", nil)
	h := s.Handler(nowhere{})
	for i := range 10000 {
		id := "site-" + strconv.Itoa(i/100) + "/host-" + strconv.Itoa(i)
		h.Update(&orders.Order{ID: id, User: "u", Step: time.Minute, Pings: 20, Probe: "fping", FPing: &orders.FPing{Host: "h" + strconv.Itoa(i)}})
		s.Written(store.Result{ID: id}, store.LastResult{Time: time.Unix(6000, 0), Updated: time.Unix(6010, 0), Step: time.Minute, Pings: 20, Loss: 1,
			Min: time.Millisecond, Median: 2 * time.Millisecond, Max: 3 * time.Millisecond}, nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := s.View(); len(v.Orders) != 10000 {
			b.Fatal(len(v.Orders))
		}
	}
}
