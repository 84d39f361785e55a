package pingtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// family holds what differs between ICMPv4 and ICMPv6 for the client side of the tests.
type family struct {
	name                 string
	v6                   bool
	target               func(int) netip.Addr
	echoRequest          byte
	echoReply            byte
	unreachType          byte
	unreachCode          byte
	quotedDstAt, quoteIP int // offsets in a quoted IP header: destination, and header length (v6 only)
}

var (
	v4 = family{name: "v4", target: Target4, echoRequest: icmp4EchoRequest, echoReply: icmp4EchoReply,
		unreachType: icmp4Unreachable, unreachCode: icmp4HostUnreach, quotedDstAt: 16}
	v6 = family{name: "v6", v6: true, target: Target6, echoRequest: icmp6EchoRequest, echoReply: icmp6EchoReply,
		unreachType: icmp6Unreachable, unreachCode: icmp6AddrUnreach, quotedDstAt: 24, quoteIP: ipv6HeaderLen}
)

// arrival is one ICMP message the client received for a probe.
type arrival struct {
	id, seq   uint16
	typ, code byte
	src       netip.Addr
	rtt       time.Duration
	icmp      []byte
	quotedDst netip.Addr // errors only
}

// client is a raw ICMP socket in the client namespace. It waits in the runtime poller, as
// the engine does, rather than in blocking system calls that would keep the runtime from
// polling for the responder on a small machine.
type client struct {
	file *os.File
	conn syscall.RawConn
	fam  family
}

func openClient(t *testing.T, ns *Namespace, fam family) *client {
	t.Helper()
	c := &client{fam: fam}
	err := ns.Do(func() error {
		domain, proto := unix.AF_INET, unix.IPPROTO_ICMP
		if fam.v6 {
			domain, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
		}
		fd, err := rawSocket(domain, proto)
		if err != nil {
			return fmt.Errorf("opening raw socket: %w", err)
		}
		c.file, err = pollFile(fd, "client")
		return err
	})
	if err != nil {
		t.Fatalf("client socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { c.file.Close() })
	if c.conn, err = c.file.SyscallConn(); err != nil {
		t.Fatalf("client socket: %v", err)
	}
	return c
}

// ping sends one echo request and returns when it was sent.
func (c *client) ping(t *testing.T, dst netip.Addr, id, seq uint16, payload []byte) time.Time {
	t.Helper()
	msg := make([]byte, icmpHeaderLen, icmpHeaderLen+len(payload))
	msg[0] = c.fam.echoRequest
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	msg = append(msg, payload...)
	var to unix.Sockaddr = &unix.SockaddrInet6{Addr: dst.As16()}
	if !c.fam.v6 {
		binary.BigEndian.PutUint16(msg[2:], checksum(msg)) // the kernel does it for ICMPv6
		to = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	var sent time.Time
	var sendErr error
	err := c.conn.Write(func(fd uintptr) bool {
		sent = time.Now()
		sendErr = unix.Sendto(int(fd), msg, 0, to)
		return sendErr != unix.EAGAIN
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		t.Fatalf("sending echo request to %v: %v", dst, err)
	}
	return sent.Round(0) // compared with kernel timestamps, which are wall clock
}

// collect returns the echo replies and errors for the probes with identifier id that
// arrive until deadline; sent holds the send time of each probe by sequence number.
func (c *client) collect(t *testing.T, id uint16, sent map[uint16]time.Time, deadline time.Time) []arrival {
	t.Helper()
	if err := c.file.SetReadDeadline(deadline); err != nil {
		t.Fatalf("setting read deadline: %v", err)
	}
	var got []arrival
	buf := make([]byte, recvBufferSize)
	oob := make([]byte, oobBufferSize)
	for {
		var n, oobn int
		var from unix.Sockaddr
		var recvErr error
		err := c.conn.Read(func(fd uintptr) bool {
			n, oobn, _, from, recvErr = unix.Recvmsg(int(fd), buf, oob, 0)
			return recvErr != unix.EAGAIN
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err == nil {
			err = recvErr
		}
		if err != nil {
			t.Fatalf("receiving: %v", err)
		}
		a, ok := c.parse(buf[:n], from)
		if sentAt, probe := sent[a.seq]; ok && probe && a.id == id {
			a.rtt = receiveTime(oob[:oobn]).Sub(sentAt)
			got = append(got, a)
		}
	}
}

// parse returns the arrival in b if it is an echo reply or an error quoting an echo request.
func (c *client) parse(b []byte, from unix.Sockaddr) (arrival, bool) {
	var a arrival
	icmp := b
	if c.fam.v6 {
		a.src = netip.AddrFrom16(from.(*unix.SockaddrInet6).Addr)
	} else {
		a.src = netip.AddrFrom4([4]byte(b[12:16]))
		icmp = b[int(b[0]&0x0f)*4:]
	}
	if len(icmp) < icmpHeaderLen {
		return a, false
	}
	a.typ, a.code = icmp[0], icmp[1]
	a.icmp = append([]byte(nil), icmp...)
	echo := icmp
	switch a.typ {
	case c.fam.echoReply:
	case c.fam.unreachType:
		quote := icmp[icmpHeaderLen:]
		ipLen := c.fam.quoteIP
		if !c.fam.v6 {
			ipLen = int(quote[0]&0x0f) * 4
		}
		if len(quote) < ipLen+icmpHeaderLen {
			return a, false
		}
		a.quotedDst, _ = netip.AddrFromSlice(quote[c.fam.quotedDstAt : c.fam.quotedDstAt+len(a.src.AsSlice())])
		echo = quote[ipLen:]
		if echo[0] != c.fam.echoRequest {
			return a, false
		}
	default:
		return a, false
	}
	a.id, a.seq = binary.BigEndian.Uint16(echo[4:]), binary.BigEndian.Uint16(echo[6:])
	return a, true
}

func TestResponder(t *testing.T) {
	l := NewLink(t)
	const foreign = 10
	// Each case sends several probes: every one must be answered as scripted and never
	// early, and their median round trip must be within 1ms of the delay. A single round
	// trip may be late by a millisecond or more when the machine (a VM above all) does
	// not run the responder in time; that is noise, not the responder. Such stalls hit
	// replies that are due together alike, so the probes are spaced further apart than
	// the delay.
	const probes = 7
	cases := []struct {
		name   string
		action func(fam family) Action
		count  int // arrivals per probe
	}{
		{"reply", func(family) Action { return Action{} }, 1},
		{"drop", func(family) Action { return Action{Drop: true} }, 0},
		{"delay", func(family) Action { return Action{Delay: 20 * time.Millisecond} }, 1},
		{"duplicate", func(family) Action { return Action{Copies: 2} }, 2},
		{"corrupt", func(family) Action { return Action{Corrupt: true} }, 1},
		{"foreign", func(fam family) Action { return Action{From: fam.target(foreign)} }, 1},
		{"unreachable", func(family) Action { return Action{Unreachable: true} }, 1},
		{"delayed duplicate unreachable", func(family) Action {
			return Action{Unreachable: true, Delay: 5 * time.Millisecond, Copies: 2}
		}, 2},
	}
	// The script is fixed before the responder starts, so reading it needs no lock.
	actions := make(map[netip.Addr]Action)
	for _, fam := range []family{v4, v6} {
		for i, tc := range cases {
			actions[fam.target(i)] = tc.action(fam)
		}
	}
	resp := StartResponder(t, l.Server, func(dst netip.Addr, n int) Action {
		if n >= probes {
			t.Errorf("script called with n=%d for %v, want less than %d", n, dst, probes)
		}
		return actions[dst]
	})

	for _, fam := range []family{v4, v6} {
		c := openClient(t, l.Client, fam)
		for i, tc := range cases {
			t.Run(fam.name+"/"+tc.name, func(t *testing.T) {
				dst := fam.target(i)
				act := actions[dst]
				id := uint16(0x5000 + i)
				payload := []byte(fmt.Sprintf("pingtest %s %s", fam.name, tc.name))
				sent := make(map[uint16]time.Time)
				var last time.Time
				for seq := range uint16(probes) {
					if seq > 0 {
						time.Sleep(act.Delay + 10*time.Millisecond)
					}
					last = c.ping(t, dst, id, seq, payload)
					sent[seq] = last
				}
				got := c.collect(t, id, sent, last.Add(act.Delay+150*time.Millisecond))

				if n := resp.Requests(dst); n != probes {
					t.Errorf("Requests(%v) = %d, want %d", dst, n, probes)
				}
				perProbe := make(map[uint16]int)
				for _, a := range got {
					perProbe[a.seq]++
				}
				for seq := range uint16(probes) {
					if perProbe[seq] != tc.count {
						t.Errorf("probe %d: %d arrivals, want %d", seq, perProbe[seq], tc.count)
					}
				}
				wantSrc := dst
				if act.From.IsValid() {
					wantSrc = act.From
				}
				var rtts []time.Duration
				for _, a := range got {
					rtts = append(rtts, a.rtt)
					if a.rtt < act.Delay {
						t.Errorf("probe %d: round trip %v, shorter than the delay %v", a.seq, a.rtt, act.Delay)
					}
					if a.src != wantSrc {
						t.Errorf("probe %d: source %v, want %v", a.seq, a.src, wantSrc)
					}
					if !fam.v6 && checksum(a.icmp) != 0 {
						t.Errorf("probe %d: ICMP checksum wrong in % x", a.seq, a.icmp)
					}
					if act.Unreachable {
						if a.typ != fam.unreachType || a.code != fam.unreachCode || a.quotedDst != dst {
							t.Errorf("probe %d: type %d code %d quoting %v, want %d/%d quoting %v", a.seq,
								a.typ, a.code, a.quotedDst, fam.unreachType, fam.unreachCode, dst)
						}
						continue
					}
					if a.typ != fam.echoReply || a.code != 0 {
						t.Errorf("probe %d: type %d code %d, want echo reply %d/0", a.seq, a.typ, a.code, fam.echoReply)
					}
					echoed := a.icmp[icmpHeaderLen:]
					if equal := bytes.Equal(echoed, payload); equal == act.Corrupt {
						t.Errorf("probe %d: payload %q, sent %q (corrupt: %v)", a.seq, echoed, payload, act.Corrupt)
					}
				}
				if len(rtts) > 0 {
					slices.Sort(rtts)
					if median := rtts[len(rtts)/2]; median-act.Delay >= time.Millisecond {
						t.Errorf("median round trip %v, want %v + less than 1ms (all: %v)", median, act.Delay, rtts)
					}
				}
			})
		}
		if n := resp.Requests(fam.target(foreign)); n != 0 {
			t.Errorf("%s: Requests for the foreign source = %d, want 0", fam.name, n)
		}
	}
}

// TestScriptCountsPerDestination checks that n counts the requests of each destination.
func TestScriptCountsPerDestination(t *testing.T) {
	l := NewLink(t)
	a, b := Target4(0), Target4(1)
	resp := StartResponder(t, l.Server, func(dst netip.Addr, n int) Action {
		// Only the second request to a is answered.
		return Action{Drop: dst != a || n != 1}
	})
	c := openClient(t, l.Client, v4)
	for seq, dst := range []netip.Addr{a, b, a, a} {
		sent := c.ping(t, dst, 1, uint16(seq), nil)
		got := c.collect(t, 1, map[uint16]time.Time{uint16(seq): sent}, sent.Add(200*time.Millisecond))
		if want := btoi(seq == 2); len(got) != want {
			t.Errorf("request %d to %v: %d replies, want %d", seq, dst, len(got), want)
		}
	}
	if ra, rb := resp.Requests(a), resp.Requests(b); ra != 3 || rb != 1 {
		t.Errorf("Requests = %d, %d; want 3, 1", ra, rb)
	}
}

// TestForge checks that the responder sends what its Forger makes of each request, also
// of one the script drops: an echo reply and an error quoting a request it made up.
func TestForge(t *testing.T) {
	l := NewLink(t)
	resp := StartResponder(t, l.Server, func(netip.Addr, int) Action { return Action{Drop: true} })
	const delay = 5 * time.Millisecond
	forged, quoted := []byte("forged"), []byte("payl")
	resp.Forge(func(req Request) []Forgery {
		fam := v4
		if req.Dst.Is6() {
			fam = v6
		}
		return []Forgery{
			{Delay: delay, From: fam.target(1), ID: req.ID, Seq: req.Seq + 1, Payload: forged},
			{From: fam.target(2), ID: req.ID, Seq: req.Seq + 2, Payload: req.Payload[:len(quoted)],
				Unreachable: true, Quoted: fam.target(3)},
		}
	})
	for _, fam := range []family{v4, v6} {
		t.Run(fam.name, func(t *testing.T) {
			c := openClient(t, l.Client, fam)
			const id, seq = 7, 100
			sent := c.ping(t, fam.target(0), id, seq, []byte("payload of the request"))
			got := c.collect(t, id, map[uint16]time.Time{seq + 1: sent, seq + 2: sent}, sent.Add(200*time.Millisecond))
			if len(got) != 2 {
				t.Fatalf("%d arrivals, want the forged reply and error: %+v", len(got), got)
			}
			for _, a := range got {
				if !fam.v6 && checksum(a.icmp) != 0 {
					t.Errorf("seq %d: ICMP checksum wrong in % x", a.seq, a.icmp)
				}
				switch a.seq {
				case seq + 1:
					if a.typ != fam.echoReply || a.src != fam.target(1) || !bytes.Equal(a.icmp[icmpHeaderLen:], forged) || a.rtt < delay {
						t.Errorf("forged reply: type %d from %v, payload %q, after %v; want %d from %v, %q, after %v",
							a.typ, a.src, a.icmp[icmpHeaderLen:], a.rtt, fam.echoReply, fam.target(1), forged, delay)
					}
				case seq + 2:
					ipLen := fam.quoteIP
					if !fam.v6 {
						ipLen = ipv4HeaderLen
					}
					echo := a.icmp[icmpHeaderLen+ipLen:]
					if a.typ != fam.unreachType || a.src != fam.target(2) || a.quotedDst != fam.target(3) ||
						echo[0] != fam.echoRequest || !bytes.Equal(echo[icmpHeaderLen:], quoted) {
						t.Errorf("forged error: type %d from %v quoting a request to %v: % x; want %d from %v quoting a request to %v with payload %q",
							a.typ, a.src, a.quotedDst, echo, fam.unreachType, fam.target(2), fam.target(3), quoted)
					}
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		got  netip.Addr
		want string
	}{
		{Target4(0), "203.0.113.1"},      // netns target
		{Target4(253), "203.0.113.254"},  // netns target
		{Target6(0), "2001:db8:1::1"},    // netns target
		{Target6(253), "2001:db8:1::fe"}, // netns target
	} {
		if tc.got.String() != tc.want {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
}
