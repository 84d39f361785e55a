// Package tcptest provides servers for the tests of the TCP and SSH probes: a Responder
// that answers TCP SYNs in a network namespace of its own as a Script says (a SYN-ACK
// after a delay, a refusal, or nothing), and a real OpenSSH sshd on loopback.
//
// The Responder owns a TUN device: the kernel of its namespace routes every target
// address to it, and the Responder reads each SYN and writes the answer itself. So a test
// controls the handshake to the microsecond without tc netem or a packet filter, and
// knows when each SYN-ACK was really written. No packet leaves the namespace: the target
// addresses are a documentation range routed only there.
package tcptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pingmachine/pinger/pingtest"
)

// Action says how the Responder answers one connection attempt. The zero Action is a
// prompt SYN-ACK.
type Action struct {
	Drop   bool          // send nothing: the connect times out
	Refuse bool          // answer with a RST: the connect is refused
	Delay  time.Duration // send the SYN-ACK (or RST) this long after the SYN arrived
}

// Script decides the action for the n-th (0-based) connection attempt to dst. A SYN that
// the client's kernel sends again is the same attempt and meets the same action. Calls
// are serialised.
type Script func(dst netip.AddrPort, n int) Action

// Answer is one answer the Responder wrote: when its SYN was read and when the answer
// was handed to the device.
type Answer struct {
	Dst              netip.AddrPort
	Arrived, Written time.Time
}

// Responder answers the SYNs that its namespace routes to its TUN device.
type Responder struct {
	ns     *pingtest.Namespace
	script Script

	mu       sync.Mutex
	attempts map[netip.AddrPort]int
	seen     map[synKey]Action
	answers  []Answer
}

type synKey struct {
	src netip.AddrPort
	seq uint32
}

// Addresses inside the Responder's namespace.
const (
	tunName   = "pmtcp0"
	localAddr = "198.51.100.1" // the namespace's own address on the TUN device
	tunNet    = "/24"
)

// Target returns the i-th target address (198.51.100.2 onwards), for i in 0..252.
func Target(i int) netip.Addr {
	if i < 0 || i > 252 {
		panic(fmt.Sprintf("tcptest: target %d out of range 0..252", i))
	}
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 2)})
}

// StartResponder creates a namespace with a TUN device that every target address is
// routed to, and answers the SYNs that arrive there until the test ends. Like
// pingtest.NewNamespace it skips the test unless it runs as root.
func StartResponder(t testing.TB, script Script) *Responder {
	t.Helper()
	ns := pingtest.NewNamespace(t)
	r := &Responder{ns: ns, script: script, attempts: map[netip.AddrPort]int{}, seen: map[synKey]Action{}}
	var tun *os.File
	if err := ns.Do(func() (err error) {
		tun, err = openTUN(tunName)
		return err
	}); err != nil {
		t.Fatalf("tcptest: %v", err)
	}
	for _, args := range [][]string{
		{"link", "set", tunName, "up"},
		{"addr", "add", localAddr + tunNet, "dev", tunName},
	} {
		if out, err := ns.Command("ip", args...).CombinedOutput(); err != nil {
			tun.Close()
			t.Fatalf("tcptest: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.serve(ctx, t, tun) })
	t.Cleanup(func() {
		cancel()
		tun.Close()
		wg.Wait()
	})
	return r
}

// Namespace is where the Responder's targets are reachable: tests connect from sockets
// opened in its Do.
func (r *Responder) Namespace() *pingtest.Namespace { return r.ns }

// Answers returns the answers written so far, in the order they were written.
func (r *Responder) Answers() []Answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Answer(nil), r.answers...)
}

// Attempts returns the number of connection attempts to dst seen so far.
func (r *Responder) Attempts(dst netip.AddrPort) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[dst]
}

// openTUN creates a TUN device in the calling thread's network namespace.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("creating TUN device %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// serve reads packets from the TUN device and answers SYNs until ctx is done.
func (r *Responder) serve(ctx context.Context, t testing.TB, tun *os.File) {
	var timers sync.WaitGroup
	defer timers.Wait()
	buf := make([]byte, 65536)
	for {
		n, err := tun.Read(buf)
		arrived := time.Now()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
				t.Errorf("tcptest: reading the TUN device: %v", err)
			}
			return
		}
		syn, ok := parseSYN(buf[:n])
		if !ok {
			continue // the client's ACKs and RSTs, and anything not TCP
		}
		r.mu.Lock()
		key := synKey{syn.src, syn.seq}
		a, again := r.seen[key]
		if !again {
			a = r.script(syn.dst, r.attempts[syn.dst])
			r.attempts[syn.dst]++
			r.seen[key] = a
		}
		r.mu.Unlock()
		if a.Drop {
			continue
		}
		pkt := answer(syn, a.Refuse)
		send := func() {
			// Timed and recorded before the write, which hands the packet to the client's
			// kernel and may let the client finish before the write returns.
			r.mu.Lock()
			r.answers = append(r.answers, Answer{Dst: syn.dst, Arrived: arrived, Written: time.Now()})
			r.mu.Unlock()
			if _, err := tun.Write(pkt); err != nil && ctx.Err() == nil {
				t.Errorf("tcptest: writing to the TUN device: %v", err)
			}
		}
		if a.Delay <= 0 {
			send()
			continue
		}
		timers.Go(func() {
			wait := time.NewTimer(time.Until(arrived.Add(a.Delay)))
			defer wait.Stop()
			select {
			case <-wait.C:
				send()
			case <-ctx.Done():
			}
		})
	}
}

// syn is what an answer needs of a SYN.
type syn struct {
	src, dst netip.AddrPort
	seq      uint32
}

// parseSYN reads an IPv4 TCP segment with SYN set and ACK clear.
func parseSYN(p []byte) (syn, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_TCP {
		return syn{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+20 {
		return syn{}, false
	}
	tcp := p[ihl:]
	if flags := tcp[13]; flags&0x02 == 0 || flags&0x10 != 0 {
		return syn{}, false
	}
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(tcp[0:]))
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[16:20])), binary.BigEndian.Uint16(tcp[2:]))
	return syn{src: src, dst: dst, seq: binary.BigEndian.Uint32(tcp[4:])}, true
}

// answer builds the SYN-ACK (with an MSS option) or the RST that answers s.
func answer(s syn, refuse bool) []byte {
	tcpLen := 24
	if refuse {
		tcpLen = 20
	}
	p := make([]byte, 20+tcpLen)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[6:], 0x4000) // don't fragment
	p[8] = 64
	p[9] = unix.IPPROTO_TCP
	src, dst := s.dst.Addr().As4(), s.src.Addr().As4()
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20], 0))
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], s.dst.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.src.Port())
	binary.BigEndian.PutUint32(tcp[8:], s.seq+1)
	if refuse {
		tcp[12] = 5 << 4
		tcp[13] = 0x14 // RST, ACK
	} else {
		binary.BigEndian.PutUint32(tcp[4:], 0x1000)
		tcp[12] = 6 << 4
		tcp[13] = 0x12 // SYN, ACK
		binary.BigEndian.PutUint16(tcp[14:], 65535)
		copy(tcp[20:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
	}
	// The pseudo-header: addresses, protocol and TCP length.
	var sum uint32
	for i := 0; i < 4; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	sum += unix.IPPROTO_TCP + uint32(tcpLen)
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, sum))
	return p
}

// checksum is the Internet checksum of b, starting from the partial sum sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
