package view_test

import (
	"net/netip"
	"testing"

	"pingmachine/orders"
	"pingmachine/store/view"
)

// TestViaTCP: a tcp or ssh order's interface and source show as an ICMP order's do.
func TestViaTCP(t *testing.T) {
	tests := []struct {
		tcp           orders.TCP
		iface, source string
	}{
		{orders.TCP{Host: "192.0.2.1", Port: 22}, "", ""},
		{orders.TCP{Host: "192.0.2.1", Port: 443, Interface: "eth1", Source: netip.MustParseAddr("192.0.2.9")}, "eth1", "192.0.2.9"},
	}
	for _, tt := range tests {
		o := view.Order{Order: &orders.Order{Probe: "tcp", TCP: &tt.tcp}}
		if iface, source := o.Via(); iface != tt.iface || source != tt.source {
			t.Errorf("Via() of %+v = %q, %q; want %q, %q", tt.tcp, iface, source, tt.iface, tt.source)
		}
	}
}
