package pinger

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"pingmachine/pinger/pingtest"
)

// TestSockets checks that Sockets lists the open sockets with their family and mode, as
// the daemon's metrics show them.
func TestSockets(t *testing.T) {
	pingtest.RequireRoot(t)
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		t.Run(mode.String(), func(t *testing.T) {
			e := loopbackEngine(t, mode)
			if s := e.Sockets(); len(s) != 0 {
				t.Errorf("before the first round: %v", s)
			}
			for _, target := range []string{"127.0.0.1", "::1"} {
				pingAll(t, e, []*Round{{Target: netip.MustParseAddr(target), Count: 1, Timeout: time.Second}})
			}
			want := []Socket{{IPv6: false, Mode: mode}, {IPv6: true, Mode: mode}}
			got := e.Sockets()
			slices.SortFunc(got, func(a, b Socket) int { // IPv4 first
				switch {
				case a.IPv6 == b.IPv6:
					return 0
				case b.IPv6:
					return -1
				}
				return 1
			})
			if !slices.Equal(got, want) {
				t.Errorf("sockets %v, want %v", got, want)
			}
		})
	}
}
