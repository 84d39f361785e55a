package view_test

import (
	"testing"

	"pingmachine/orders"
	"pingmachine/store/view"
)

// TestDNSOrder: a dns order's target is its name, type and server; its source is its
// source_ip.
func TestDNSOrder(t *testing.T) {
	tests := []struct {
		text, target, source string
	}{
		{"  server: 127.0.0.1\n  name: ok.test\n", "ok.test A @127.0.0.1:53", ""},
		{"  server: '[::1]:5353'\n  name: ok.test\n  type: MX\n  protocol: tcp\n  source_ip: '::1'\n", "ok.test MX @[::1]:5353/tcp", "::1"},
	}
	for _, tt := range tests {
		o, err := orders.Parse("orders/d", "d", []byte("user: u\nstep: 60\npings: 5\nprobe: dns\ndns:\n"+tt.text))
		if err != nil {
			t.Fatal(err)
		}
		vo := view.Order{ID: "d", Order: o}
		iface, source := vo.Via()
		if got := o.Destination(); got != tt.target || iface != "" || source != tt.source {
			t.Errorf("target %q via %q from %q, want %q from %q", got, iface, source, tt.target, tt.source)
		}
	}
}
