package pinger

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

func echoMessage(t *testing.T, v6 bool, typ byte, size int) []byte {
	t.Helper()
	msg := make([]byte, icmpHeaderLen+size)
	fillPattern(msg[icmpHeaderLen:])
	writeEcho(msg[:echoHeadLen], msg[echoHeadLen:], v6, 0x1234, 0xbeef, 0xc00c1e, 42)
	msg[0] = typ
	return msg
}

func TestChecksum(t *testing.T) {
	msg := echoMessage(t, false, icmp4Echo, DefaultSize)
	if got := checksum(msg); got != 0 {
		t.Errorf("checksum over a message with its checksum = %#x, want 0", got)
	}
	odd := []byte{0x01, 0x02, 0x03}
	if got, want := checksum(odd), ^uint16(0x0102+0x0300); got != want {
		t.Errorf("checksum(odd) = %#x, want %#x", got, want)
	}
}

func TestParseICMP(t *testing.T) {
	reply4 := echoMessage(t, false, icmp4EchoReply, DefaultSize)
	reply6 := echoMessage(t, true, icmp6EchoReply, DefaultSize)
	request4 := echoMessage(t, false, icmp4Echo, DefaultSize)
	request6 := echoMessage(t, true, icmp6Echo, DefaultSize)

	dst4 := netip.MustParseAddr("127.9.8.7")
	quoted4 := make([]byte, 20)
	quoted4[0], quoted4[9] = 0x45, 1
	copy(quoted4[16:], dst4.AsSlice())
	unreach4 := append([]byte{icmp4Unreachable, 1, 0, 0, 0, 0, 0, 0}, append(quoted4, request4[:16]...)...)

	dst6 := netip.MustParseAddr("::1")
	quoted6 := make([]byte, 40)
	quoted6[0], quoted6[6] = 0x60, 58
	copy(quoted6[24:], dst6.AsSlice())
	unreach6 := append([]byte{icmp6Unreachable, 3, 0, 0, 0, 0, 0, 0}, append(quoted6, request6...)...)

	notEcho := append([]byte{icmp4Unreachable, 3, 0, 0, 0, 0, 0, 0}, quoted4...)
	notEcho[8+9] = 17 // a UDP packet's port unreachable

	tests := []struct {
		name       string
		msg        []byte
		v6         bool
		kind       packetKind
		payloadLen int
		dst        netip.Addr
	}{
		{"v4 reply", reply4, false, kindReply, DefaultSize, netip.Addr{}},
		{"v6 reply", reply6, true, kindReply, DefaultSize, netip.Addr{}},
		{"v4 request ignored", request4, false, kindOther, 0, netip.Addr{}},
		{"v6 type on v4 socket ignored", reply6, false, kindOther, 0, netip.Addr{}},
		{"v4 unreachable quoting 8 bytes of payload", unreach4, false, kindError, 8, dst4},
		{"v6 unreachable", unreach6, true, kindError, DefaultSize, dst6},
		{"v4 error about UDP ignored", notEcho, false, kindOther, 0, netip.Addr{}},
		{"truncated", reply4[:5], false, kindOther, 0, netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p packet
			parseICMP(tt.msg, tt.v6, &p)
			if p.kind != tt.kind {
				t.Fatalf("kind = %d, want %d", p.kind, tt.kind)
			}
			if p.kind == kindOther {
				return
			}
			if p.id != 0x1234 || p.seq != 0xbeef {
				t.Errorf("id, seq = %#x, %#x; want 0x1234, 0xbeef", p.id, p.seq)
			}
			if len(p.payload) != tt.payloadLen {
				t.Errorf("payload %d bytes, want %d", len(p.payload), tt.payloadLen)
			}
			if got := binary.BigEndian.Uint64(p.payload[payloadSerialOffset:]); got != 0xc00c1e {
				t.Errorf("serial = %#x", got)
			}
			if tt.dst.IsValid() && p.quotedDst != tt.dst.As16() {
				t.Errorf("quoted destination = %v, want %v", netip.AddrFrom16(p.quotedDst), tt.dst)
			}
		})
	}
}

func TestPatternIntact(t *testing.T) {
	msg := echoMessage(t, false, icmp4EchoReply, 100)
	payload := msg[icmpHeaderLen:]
	if !patternIntact(payload) {
		t.Fatal("fresh payload reported corrupt")
	}
	payload[MinSize+10] ^= 0xff
	if patternIntact(payload) {
		t.Error("corrupted filler not detected")
	}
}

func TestRoundCheck(t *testing.T) {
	ok := func() Round {
		return Round{Target: netip.MustParseAddr("127.0.0.1"), Count: 3, Gap: 1, Timeout: 1, Done: func(*Round) {}}
	}
	tests := []struct {
		name   string
		modify func(r *Round)
	}{
		{"no target", func(r *Round) { r.Target = netip.Addr{} }},
		{"unspecified", func(r *Round) { r.Target = netip.IPv4Unspecified() }},
		{"multicast", func(r *Round) { r.Target = netip.MustParseAddr("ff02::1") }},
		{"zero count", func(r *Round) { r.Count = 0 }},
		{"huge count", func(r *Round) { r.Count = MaxCount + 1 }},
		{"tiny payload", func(r *Round) { r.Size = MinSize - 1 }},
		{"huge payload", func(r *Round) { r.Size = MaxSize + 1 }},
		{"negative gap", func(r *Round) { r.Gap = -1 }},
		{"no timeout", func(r *Round) { r.Timeout = 0 }},
		{"family mismatch", func(r *Round) { r.Source = netip.MustParseAddr("::1") }},
		{"no Done", func(r *Round) { r.Done = nil }},
	}
	r := ok()
	if err := r.check(); err != nil {
		t.Fatalf("valid round rejected: %v", err)
	}
	for _, tt := range tests {
		r := ok()
		tt.modify(&r)
		if err := r.check(); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// TestFilterProgram runs the raw sockets' BPF program on crafted packets.
func TestFilterProgram(t *testing.T) {
	const base, n = 640, 64
	icmp := func(typ byte, id uint16) []byte {
		m := make([]byte, icmpHeaderLen+MinSize)
		m[0] = typ
		binary.BigEndian.PutUint16(m[4:], id)
		return m
	}
	ip4 := func(optionWords int, payload []byte) []byte {
		h := make([]byte, 20+4*optionWords)
		h[0] = 0x40 | byte(5+optionWords)
		return append(h, payload...)
	}
	tests := []struct {
		name   string
		v6     bool
		packet []byte
		accept bool
	}{
		{"v4 reply, first identifier", false, ip4(0, icmp(icmp4EchoReply, base)), true},
		{"v4 reply, last identifier", false, ip4(0, icmp(icmp4EchoReply, base+n-1)), true},
		{"v4 reply, below the range", false, ip4(0, icmp(icmp4EchoReply, base-1)), false},
		{"v4 reply, above the range", false, ip4(0, icmp(icmp4EchoReply, base+n)), false},
		{"v4 reply behind IP options", false, ip4(2, icmp(icmp4EchoReply, base+3)), true},
		{"v4 request (our own, on loopback)", false, ip4(0, icmp(icmp4Echo, base)), false},
		{"v4 unreachable", false, ip4(0, icmp(icmp4Unreachable, 0)), true},
		{"v4 time exceeded", false, ip4(0, icmp(icmp4TimeExceeded, 0)), true},
		{"v4 parameter problem", false, ip4(0, icmp(icmp4ParamProblem, 0)), true},
		{"v4 redirect", false, ip4(0, icmp(5, base)), false},
		{"v6 reply in range", true, icmp(icmp6EchoReply, base+1), true},
		{"v6 reply out of range", true, icmp(icmp6EchoReply, 7), false},
		{"v6 request", true, icmp(icmp6Echo, base), false},
		{"v6 unreachable", true, icmp(icmp6Unreachable, 0), true},
		{"v6 packet too big", true, icmp(icmp6PacketTooBig, 0), true},
		{"v6 parameter problem", true, icmp(icmp6ParamProblem, 0), true},
		{"v6 neighbour solicitation", true, icmp(135, base), false},
	}
	for _, tt := range tests {
		vm, err := bpf.NewVM(filterProgram(tt.v6, base, n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := vm.Run(tt.packet)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (got > 0) != tt.accept {
			t.Errorf("%s: filter returned %d, want accept=%v", tt.name, got, tt.accept)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name                    string
		kernel, monotonic, want int64
	}{
		{"kernel timestamp", 45_000, 60_000, 45_000},
		{"equal", 60_000, 60_000, 60_000},
		{"wall clock stepped back", -3_600_000_000_000, 60_000, 60_000},
		{"wall clock stepped forward", 86_400_000_000_000, 60_000, 60_000},
		{"read in the same nanosecond", 0, 0, 0},
	}
	for _, tt := range tests {
		if got := roundTrip(tt.kernel, tt.monotonic); got != tt.want {
			t.Errorf("%s: roundTrip(%d, %d) = %d, want %d", tt.name, tt.kernel, tt.monotonic, got, tt.want)
		}
	}
}
