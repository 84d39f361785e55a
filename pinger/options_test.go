package pinger

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pingmachine/pinger/pingtest"
)

// TestRoundOptions pings loopback with each per-round setting and checks both the
// replies and the options of the socket the round went out on.
func TestRoundOptions(t *testing.T) {
	pingtest.RequireRoot(t)
	tests := []struct {
		name string
		r    Round
	}{
		{"smallest payload", Round{Target: netip.MustParseAddr("127.0.0.1"), Size: MinSize}},
		{"payload beyond the receive buffer", Round{Target: netip.MustParseAddr("127.0.0.1"), Size: 4000}},
		{"ipv6 large payload", Round{Target: netip.MustParseAddr("::1"), Size: 3000}},
		{"tos", Round{Target: netip.MustParseAddr("127.0.0.1"), TOS: 0xb8}},
		{"traffic class", Round{Target: netip.MustParseAddr("::1"), TOS: 0x20}},
		{"source", Round{Target: netip.MustParseAddr("127.0.0.1"), Source: netip.MustParseAddr("127.0.0.2")}},
		{"ipv6 source", Round{Target: netip.MustParseAddr("::1"), Source: netip.MustParseAddr("::1")}},
		{"interface", Round{Target: netip.MustParseAddr("127.0.0.1"), Interface: "lo"}},
		{"ipv6 interface", Round{Target: netip.MustParseAddr("::1"), Interface: "lo"}},
		{"mapped target", Round{Target: netip.MustParseAddr("::ffff:127.0.0.1")}},
	}
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		e := loopbackEngine(t, mode)
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				r := tt.r
				r.Count, r.Gap, r.Timeout = 3, 5*time.Millisecond, time.Second
				pingAll(t, e, []*Round{&r})
				if r.Received() != r.Count || r.Err != nil {
					t.Fatalf("RTTs %v, err %v", r.RTTs, r.Err)
				}
				e.mu.Lock()
				defer e.mu.Unlock()
				g := e.groups[socketKey{v6: !r.Target.Unmap().Is4(), source: r.Source, iface: r.Interface, tos: r.TOS}]
				if g == nil {
					t.Fatal("no socket group for the round's settings")
				}
				fd := g.socks[0].fd
				if r.TOS != 0 {
					level, opt := unix.IPPROTO_IP, unix.IP_TOS
					if g.key.v6 {
						level, opt = unix.IPPROTO_IPV6, unix.IPV6_TCLASS
					}
					if got, err := unix.GetsockoptInt(fd, level, opt); err != nil || got != int(r.TOS) {
						t.Errorf("socket TOS = %#x, %v; want %#x", got, err, r.TOS)
					}
				}
				if r.Interface != "" {
					if got, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err != nil || got != r.Interface {
						t.Errorf("socket bound to %q, %v; want %q", got, err, r.Interface)
					}
				}
				if r.Source.IsValid() {
					sa, err := unix.Getsockname(fd)
					var got netip.Addr
					switch a := sa.(type) {
					case *unix.SockaddrInet4:
						got = netip.AddrFrom4(a.Addr)
					case *unix.SockaddrInet6:
						got = netip.AddrFrom16(a.Addr)
					}
					if err != nil || got != r.Source {
						t.Errorf("socket bound to %v, %v; want %v", got, err, r.Source)
					}
				}
			})
		}
	}
}

// TestSubmitErrors checks that settings the kernel refuses are reported by Submit with
// the reason, before anything is sent.
func TestSubmitErrors(t *testing.T) {
	pingtest.RequireRoot(t)
	e := runEngine(t, Options{})
	tests := []struct {
		name string
		r    Round
		want string
	}{
		{"interface that does not exist", Round{Target: netip.MustParseAddr("127.0.0.1"), Interface: "nosuchif0"}, `interface "nosuchif0"`},
		// 192.0.2.1 is a documentation address that no interface here has: the bind fails.
		{"source that is not local", Round{Target: netip.MustParseAddr("127.0.0.1"), Source: netip.MustParseAddr("192.0.2.1")}, "binding source address 192.0.2.1"},
		{"zone that does not exist", Round{Target: netip.MustParseAddr("fe80::1%nosuchif0")}, "fe80::1%nosuchif0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			r.Count, r.Timeout, r.Done = 1, time.Second, func(*Round) { t.Error("Done called for a refused round") }
			err := e.Submit(&r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Submit = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if st := e.Stats(); st.Sent != 0 {
		t.Errorf("%d packets sent for refused rounds", st.Sent)
	}
}

// TestKernelDrops overflows a deliberately tiny receive buffer and checks that the
// kernel's drops are counted and are exactly the pings reported lost.
func TestKernelDrops(t *testing.T) {
	pingtest.RequireRoot(t)
	e := runEngine(t, Options{Mode: ModeRaw, RecvBuffer: 1})
	rounds := make([]*Round, 2000)
	for i := range rounds {
		// All at once: loopback answers inside each send, while the receiver waits.
		rounds[i] = &Round{Target: netip.AddrFrom4([4]byte{127, 2, byte(i >> 8), byte(i)}), Count: 1, Timeout: 500 * time.Millisecond}
	}
	pingAll(t, e, rounds)
	st := e.Stats()
	if st.KernelDrops == 0 {
		t.Fatalf("no kernel drops counted with a tiny buffer: %+v", st)
	}
	// A full raw socket also drops copies of our own requests on loopback, which its
	// filter would have discarded anyway, so the kernel counts more than the lost replies.
	if st.KernelDrops < st.TimedOut || st.Received+st.TimedOut != st.Sent || st.Foreign+st.Late+st.Duplicate != 0 {
		t.Errorf("stats %+v: want dropped replies timed out, and nothing else amiss", st)
	}
}

// TestSequenceSpaceGrows fills an identifier's whole sequence space with probes in
// flight and checks that the next probe goes out under a new identifier (a raw socket's
// next one, or a new datagram socket) and that its reply is matched.
func TestSequenceSpaceGrows(t *testing.T) {
	pingtest.RequireRoot(t)
	for _, mode := range []Mode{ModeRaw, ModeDatagram} {
		t.Run(mode.String(), func(t *testing.T) {
			e := loopbackEngine(t, mode)
			first := &Round{Target: netip.MustParseAddr("127.0.0.1"), Count: 1, Timeout: time.Second}
			pingAll(t, e, []*Round{first})

			e.mu.Lock()
			g := e.groups[socketKey{}]
			for i := range e.blocks[g.blocks[0]].slots {
				e.blocks[g.blocks[0]].slots[i].state = slotInFlight
			}
			e.mu.Unlock()

			second := &Round{Target: netip.MustParseAddr("127.0.0.1"), Count: 3, Gap: time.Millisecond, Timeout: time.Second}
			pingAll(t, e, []*Round{second})
			if second.Received() != 3 {
				t.Fatalf("after growing: %v (err %v)", second.RTTs, second.Err)
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			if len(g.blocks) != 2 {
				t.Fatalf("group has %d identifiers, want 2", len(g.blocks))
			}
			b0, b1 := e.blocks[g.blocks[0]], e.blocks[g.blocks[1]]
			if b0.id == b1.id {
				t.Errorf("both blocks use identifier %d", b0.id)
			}
			if wantSockets := map[Mode]int{ModeRaw: 1, ModeDatagram: 2}[mode]; len(g.socks) != wantSockets {
				t.Errorf("%d sockets, want %d", len(g.socks), wantSockets)
			}
		})
	}
}
