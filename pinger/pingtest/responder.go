package pingtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Action says how the responder answers one echo request. The zero Action is one prompt,
// correct reply, as a kernel would send it.
type Action struct {
	// Drop sends nothing; every other field is then ignored.
	Drop bool
	// Delay sends the answer this long after the request arrived, measured from the kernel's
	// receive timestamp and, on a machine that is not overloaded, accurate to tens of
	// microseconds.
	Delay time.Duration
	// Copies is the number of identical answers: 0 or 1 means one, 2 means one duplicate.
	Copies int
	// Corrupt flips every payload byte of an echo reply; the identifier, sequence and
	// checksum stay valid, so the reply is delivered and only a payload check catches it.
	// A request without payload is answered unchanged.
	Corrupt bool
	// From, if valid, is the answer's source address instead of the request's destination
	// (a foreign reply). It must be of the request's family and should be a target address,
	// so that the client routes it like any other reply.
	From netip.Addr
	// Unreachable answers with an ICMP destination unreachable quoting the request (IPv4
	// type 3 code 1 host unreachable, IPv6 type 1 code 3 address unreachable) instead of
	// an echo reply.
	Unreachable bool
}

// Script decides the action for the n-th (0-based) echo request that arrived for dst.
// Calls are serialised, also between the address families, so a script may keep state
// without a lock of its own.
type Script func(dst netip.Addr, n int) Action

// Request is an echo request as the responder received it.
type Request struct {
	Src, Dst netip.Addr // the sender (the code under test) and the target
	ID, Seq  uint16
	Payload  []byte // a copy, which the Forger may keep
}

// Forgery is a packet that the responder sends to a request's sender besides the
// scripted answer, as any host that sees the requests could: an echo reply, or a
// destination unreachable (as Action.Unreachable sends) that quotes an echo request.
// With it a test plays a neighbour who forges answers for targets that are not its own.
type Forgery struct {
	Delay time.Duration // after the request arrived
	From  netip.Addr    // source address; a target address of the request's family
	// ID, Seq and Payload are those of the echo reply, or of the echo request that the
	// error quotes, in which case Payload is as much of its payload as the error quotes.
	ID, Seq uint16
	Payload []byte
	// Unreachable sends a destination unreachable instead of an echo reply; the request
	// it quotes was sent from the request's sender to Quoted.
	Unreachable bool
	Quoted      netip.Addr
}

// Forger returns the packets to forge after one echo request; calls are serialised with
// those of the Script.
type Forger func(req Request) []Forgery

// Responder answers the echo requests that arrive in a namespace as its Script says. Its
// methods may be called from any goroutine, also from the Script.
type Responder struct {
	t testing.TB

	scriptMu sync.Mutex // serialises the calls of script and forger, and guards forger
	script   Script
	forger   Forger

	mu   sync.Mutex
	seen map[netip.Addr]int // echo requests per destination address
}

// ICMP message types and codes the responder reads or writes.
const (
	icmp4EchoReply   = 0
	icmp4Unreachable = 3
	icmp4HostUnreach = 1
	icmp4EchoRequest = 8
	icmp6Unreachable = 1
	icmp6AddrUnreach = 3
	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
)

const (
	ipv4HeaderLen  = 20
	ipv6HeaderLen  = 40
	icmpHeaderLen  = 8
	protocolICMP4  = 1
	protocolICMP6  = 58
	replyHopLimit  = 64
	recvBufferSize = 1 << 16 // the largest possible request
	oobBufferSize  = 128     // room for timestamp, packet info and hop limit
	// An ICMP error quotes as much of the request as fits into the minimum MTU
	// (RFC 1812 for IPv4, RFC 4443 for IPv6).
	maxError4 = 576
	maxError6 = 1280
)

// StartResponder opens raw ICMPv4 and ICMPv6 sockets inside ns and answers echo requests
// per script until the test's cleanup stops it. Replies echo identifier, sequence and
// payload exactly, as a kernel would. IPv4 answers are sent with IP_HDRINCL, which the
// kernel does not fragment: requests whose answer exceeds the link MTU fail the test.
func StartResponder(t testing.TB, ns *Namespace, script Script) *Responder {
	t.Helper()
	r := &Responder{t: t, script: script, seen: make(map[netip.Addr]int)}
	var files []*os.File // receive IPv4, send IPv4, IPv6
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
	}
	err := ns.Do(func() error {
		for _, open := range []func() (*os.File, error){openRecv4, openSend4, openSock6} {
			f, err := open()
			if err != nil {
				return err
			}
			files = append(files, f)
		}
		return nil
	})
	if err != nil {
		closeFiles()
		t.Fatalf("starting responder in namespace %s: %v", ns.Name, err)
	}
	conns := make([]syscall.RawConn, len(files))
	for i, f := range files {
		if conns[i], err = f.SyscallConn(); err != nil {
			closeFiles()
			t.Fatalf("starting responder in namespace %s: raw conn of %s: %v", ns.Name, f.Name(), err)
		}
	}
	recv4, send4, sock6 := conns[0], conns[1], conns[2]
	sched, err := newScheduler()
	if err != nil {
		closeFiles()
		t.Fatalf("starting responder in namespace %s: %v", ns.Name, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		sched.run(ctx, func(err error) { t.Errorf("responder: %v", err) })
	}()
	var receivers sync.WaitGroup
	receivers.Add(2)
	go func() {
		defer receivers.Done()
		r.receive(ctx, recv4, sched, func(b, oob []byte, _ unix.Sockaddr) ([]*reply, error) {
			return r.answer4(send4, b, oob)
		})
	}()
	go func() {
		defer receivers.Done()
		r.receive(ctx, sock6, sched, func(b, oob []byte, from unix.Sockaddr) ([]*reply, error) {
			return r.answer6(sock6, b, oob, from)
		})
	}()

	t.Cleanup(func() {
		cancel()
		// The sender may be writing to the sockets until it has stopped.
		sched.stop()
		<-senderDone
		// Closing unblocks the receivers, which are waiting in the poller.
		closeFiles()
		receivers.Wait()
	})
	return r
}

// Requests returns the number of echo requests seen for dst so far.
func (r *Responder) Requests(dst netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[dst]
}

// Forge makes the responder call f for every echo request that arrives from now on,
// also for those the script drops, and send the packets it returns.
func (r *Responder) Forge(f Forger) {
	r.scriptMu.Lock()
	defer r.scriptMu.Unlock()
	r.forger = f
}

// decide counts a request and asks the script what to do with it and the forger, if
// there is one, what to forge.
func (r *Responder) decide(req Request) (Action, []Forgery) {
	r.mu.Lock()
	n := r.seen[req.Dst]
	r.seen[req.Dst] = n + 1
	r.mu.Unlock()
	r.scriptMu.Lock()
	defer r.scriptMu.Unlock()
	act := r.script(req.Dst, n)
	if r.forger == nil {
		return act, nil
	}
	return act, r.forger(req)
}

// request describes the echo request icmp (an ICMP message) from src to dst.
func request(src, dst netip.Addr, icmp []byte) Request {
	return Request{
		Src:     src,
		Dst:     dst,
		ID:      binary.BigEndian.Uint16(icmp[4:6]),
		Seq:     binary.BigEndian.Uint16(icmp[6:8]),
		Payload: append([]byte(nil), icmp[icmpHeaderLen:]...),
	}
}

// openRecv4 opens the socket that receives IPv4 echo requests, IP header included.
func openRecv4() (*os.File, error) {
	fd, err := rawSocket(unix.AF_INET, unix.IPPROTO_ICMP)
	if err != nil {
		return nil, fmt.Errorf("opening raw ICMPv4 socket: %w", err)
	}
	// The kernel drops everything but echo requests before it would wake the receiver.
	mask := ^uint32(1 << icmp4EchoRequest)
	if err := unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, int(int32(mask))); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting ICMP_FILTER: %w", err)
	}
	return pollFile(fd, "icmp4-recv")
}

// openSend4 opens the socket that sends IPv4 answers. IPPROTO_RAW implies IP_HDRINCL, so the
// responder writes the IP header itself and can use any source address.
func openSend4() (*os.File, error) {
	fd, err := rawSocket(unix.AF_INET, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("opening IPPROTO_RAW socket: %w", err)
	}
	return pollFile(fd, "icmp4-send")
}

// openSock6 opens the socket that receives IPv6 echo requests and sends the answers. The
// kernel computes ICMPv6 checksums on raw ICMPv6 sockets; IPV6_PKTINFO chooses the source.
func openSock6() (*os.File, error) {
	fd, err := rawSocket(unix.AF_INET6, unix.IPPROTO_ICMPV6)
	if err != nil {
		return nil, fmt.Errorf("opening raw ICMPv6 socket: %w", err)
	}
	var filter unix.ICMPv6Filter
	for i := range filter.Data {
		filter.Data[i] = ^uint32(0) // a set bit blocks the type
	}
	filter.Data[icmp6EchoRequest>>5] &^= 1 << (icmp6EchoRequest & 31)
	opts := []struct {
		name  string
		level int
		opt   int
	}{
		{"IPV6_RECVPKTINFO", unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO},
		{"IPV6_RECVHOPLIMIT", unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT},
		// Target addresses are local only through a route, not as interface addresses,
		// and the kernel accepts such a source in IPV6_PKTINFO only with freebind.
		{"IPV6_FREEBIND", unix.IPPROTO_IPV6, unix.IPV6_FREEBIND},
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("setting %s: %w", o.name, err)
		}
	}
	if err := unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &filter); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting ICMPV6_FILTER: %w", err)
	}
	return pollFile(fd, "icmp6")
}

// rawSocket opens a non-blocking raw socket with kernel receive timestamps, which date each
// request's arrival independently of when the receiver gets to it.
func rawSocket(family, proto int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("setting SO_TIMESTAMPNS: %w", err)
	}
	return fd, nil
}

// pollFile wraps a non-blocking fd (socket or timerfd) so that reads wait in the runtime
// poller and Close unblocks them.
func pollFile(fd int, name string) (*os.File, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		unix.Close(fd)
		return nil, fmt.Errorf("wrapping %s: invalid descriptor", name)
	}
	return f, nil
}

// receive reads packets from conn until it is closed and schedules the answers that answer
// builds.
func (r *Responder) receive(ctx context.Context, conn syscall.RawConn, sched *scheduler,
	answer func(b, oob []byte, from unix.Sockaddr) ([]*reply, error)) {
	buf := make([]byte, recvBufferSize)
	oob := make([]byte, oobBufferSize)
	for {
		var n, oobn int
		var from unix.Sockaddr
		var recvErr error
		err := conn.Read(func(fd uintptr) bool {
			n, oobn, _, from, recvErr = unix.Recvmsg(int(fd), buf, oob, 0)
			return recvErr != unix.EAGAIN
		})
		if err == nil {
			err = recvErr
		}
		if err != nil {
			if ctx.Err() == nil {
				r.t.Errorf("responder: receiving: %v", err)
			}
			return
		}
		reps, err := answer(buf[:n], oob[:oobn], from)
		if err != nil {
			r.t.Errorf("responder: %v", err)
			continue
		}
		for _, rep := range reps {
			if err := sched.add(rep); err != nil && ctx.Err() == nil {
				r.t.Errorf("responder: %v", err)
			}
		}
	}
}

// answer4 parses an IPv4 datagram and, if it is an echo request, builds the scripted
// answer and the forgeries.
func (r *Responder) answer4(conn syscall.RawConn, b, oob []byte) ([]*reply, error) {
	if len(b) < ipv4HeaderLen || b[0]>>4 != 4 {
		return nil, nil
	}
	hlen := int(b[0]&0x0f) * 4
	if hlen < ipv4HeaderLen || len(b) < hlen+icmpHeaderLen || b[9] != protocolICMP4 {
		return nil, nil
	}
	icmp := b[hlen:]
	// Like the kernel, ignore requests whose checksum is wrong.
	if icmp[0] != icmp4EchoRequest || checksum(icmp) != 0 {
		return nil, nil
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	arrived := receiveTime(oob)
	act, forged := r.decide(request(src, dst, icmp))
	var reps []*reply
	if !act.Drop {
		from := dst
		if act.From.IsValid() {
			if !act.From.Is4() {
				return nil, fmt.Errorf("script: From %v answers an IPv4 request for %v", act.From, dst)
			}
			from = act.From
		}
		var msg []byte
		if act.Unreachable {
			msg = unreachable4(b) // the whole datagram
		} else {
			msg = echoReply(icmp4EchoReply, icmp, act.Corrupt)
		}
		// The kernel's echo replies keep the request's TOS too.
		reps = append(reps, r.schedule(act.Delay, act.Copies, arrived, conn, packet4(b[1], from, src, msg), nil, src))
	}
	for _, f := range forged {
		if !f.From.Is4() || (f.Unreachable && !f.Quoted.Is4()) {
			return nil, fmt.Errorf("forger: forgery from %v quoting %v after an IPv4 request", f.From, f.Quoted)
		}
		var msg []byte
		if f.Unreachable {
			quoted := packet4(0, src, f.Quoted, echoMessage(icmp4EchoRequest, f.ID, f.Seq, f.Payload))
			binary.BigEndian.PutUint16(quoted[2:4], uint16(len(quoted)))
			binary.BigEndian.PutUint16(quoted[10:12], checksum(quoted[:ipv4HeaderLen]))
			msg = unreachable4(quoted)
		} else {
			msg = echoMessage(icmp4EchoReply, f.ID, f.Seq, f.Payload)
		}
		reps = append(reps, r.schedule(f.Delay, 1, arrived, conn, packet4(0, f.From, src, msg), nil, src))
	}
	return reps, nil
}

// unreachable4 returns a host unreachable that quotes as much of the IPv4 datagram b as
// fits.
func unreachable4(b []byte) []byte {
	msg := make([]byte, icmpHeaderLen, maxError4-ipv4HeaderLen)
	msg[0], msg[1] = icmp4Unreachable, icmp4HostUnreach
	return append(msg, b[:min(len(b), cap(msg)-len(msg))]...)
}

// packet4 sets the checksum of the ICMP message msg and returns it behind an IPv4 header
// from src to dst, for a socket with IP_HDRINCL: the kernel fills in the total length,
// the header checksum and the identification.
func packet4(tos byte, src, dst netip.Addr, msg []byte) []byte {
	binary.BigEndian.PutUint16(msg[2:4], checksum(msg))
	pkt := make([]byte, ipv4HeaderLen, ipv4HeaderLen+len(msg))
	pkt[0] = 4<<4 | ipv4HeaderLen/4
	pkt[1] = tos
	pkt[8] = replyHopLimit
	pkt[9] = protocolICMP4
	copy(pkt[12:16], src.AsSlice())
	copy(pkt[16:20], dst.AsSlice())
	return append(pkt, msg...)
}

// answer6 parses an ICMPv6 message and, if it is an echo request, builds the scripted
// answer and the forgeries. Raw IPv6 sockets deliver no IP header: the destination and
// hop limit come from control messages, and the header an error quotes is rebuilt from
// them.
func (r *Responder) answer6(conn syscall.RawConn, b, oob []byte, sender unix.Sockaddr) ([]*reply, error) {
	sa, ok := sender.(*unix.SockaddrInet6)
	if !ok || len(b) < icmpHeaderLen || b[0] != icmp6EchoRequest {
		return nil, nil
	}
	cm, err := parseControl6(oob)
	if err != nil {
		return nil, err
	}
	src, dst := netip.AddrFrom16(sa.Addr), cm.dst
	act, forged := r.decide(request(src, dst, b))
	var reps []*reply
	if !act.Drop {
		from := dst
		if act.From.IsValid() {
			if !act.From.Is6() || act.From.Is4In6() {
				return nil, fmt.Errorf("script: From %v answers an IPv6 request for %v", act.From, dst)
			}
			from = act.From
		}
		var msg []byte
		if act.Unreachable {
			msg = unreachable6(src, dst, cm.hopLimit, b)
		} else {
			msg = echoReply(icmp6EchoReply, b, act.Corrupt)
		}
		reps = append(reps, r.schedule(act.Delay, act.Copies, cm.arrived, conn, msg, sourceInfo(from), src))
	}
	for _, f := range forged {
		if !f.From.Is6() || f.From.Is4In6() || (f.Unreachable && (!f.Quoted.Is6() || f.Quoted.Is4In6())) {
			return nil, fmt.Errorf("forger: forgery from %v quoting %v after an IPv6 request", f.From, f.Quoted)
		}
		var msg []byte
		if f.Unreachable {
			msg = unreachable6(src, f.Quoted, replyHopLimit, echoMessage(icmp6EchoRequest, f.ID, f.Seq, f.Payload))
		} else {
			msg = echoMessage(icmp6EchoReply, f.ID, f.Seq, f.Payload)
		}
		reps = append(reps, r.schedule(f.Delay, 1, cm.arrived, conn, msg, sourceInfo(f.From), src))
	}
	return reps, nil
}

// unreachable6 returns an address unreachable that quotes as much as fits of the ICMPv6
// message req sent from src to dst with the given hop limit.
func unreachable6(src, dst netip.Addr, hopLimit byte, req []byte) []byte {
	msg := make([]byte, icmpHeaderLen+ipv6HeaderLen, maxError6-ipv6HeaderLen)
	msg[0], msg[1] = icmp6Unreachable, icmp6AddrUnreach
	h := msg[icmpHeaderLen:]
	h[0] = 6 << 4 // traffic class and flow label are not known and quoted as zero
	binary.BigEndian.PutUint16(h[4:6], uint16(len(req)))
	h[6] = protocolICMP6
	h[7] = hopLimit
	copy(h[8:24], src.AsSlice())
	copy(h[24:40], dst.AsSlice())
	return append(msg, req[:min(len(req), cap(msg)-len(msg))]...)
}

// sourceInfo is the control message that sends an IPv6 packet from src. The kernel
// computes the checksum of everything sent on a raw ICMPv6 socket.
func sourceInfo(src netip.Addr) []byte {
	return (&ipv6.ControlMessage{Src: src.AsSlice()}).Marshal()
}

// echoReply returns a copy of the echo request req turned into an echo reply of type typ,
// with the payload inverted if corrupt. The checksum is left for the caller.
func echoReply(typ byte, req []byte, corrupt bool) []byte {
	msg := append([]byte(nil), req...)
	msg[0], msg[1] = typ, 0
	msg[2], msg[3] = 0, 0
	if corrupt {
		for i := icmpHeaderLen; i < len(msg); i++ {
			msg[i] = ^msg[i]
		}
	}
	return msg
}

// echoMessage returns an echo request or reply of type typ; the checksum is left for the
// caller.
func echoMessage(typ byte, id, seq uint16, payload []byte) []byte {
	msg := make([]byte, icmpHeaderLen, icmpHeaderLen+len(payload))
	msg[0] = typ
	binary.BigEndian.PutUint16(msg[4:6], id)
	binary.BigEndian.PutUint16(msg[6:8], seq)
	return append(msg, payload...)
}

// schedule turns an answer to dst into a reply of count copies (at least one), due delay
// after the request arrived.
func (r *Responder) schedule(delay time.Duration, copies int, arrived time.Time, conn syscall.RawConn, pkt, oob []byte, dst netip.Addr) *reply {
	var to unix.Sockaddr = &unix.SockaddrInet6{Addr: dst.As16()}
	if dst.Is4() {
		to = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	now := time.Now()
	// Time already spent since the kernel received the request counts towards the delay.
	// The kernel's clock is the wall clock, so compare without the monotonic reading.
	age := max(now.Round(0).Sub(arrived), 0)
	return &reply{
		due:   now.Add(delay - age),
		conn:  conn,
		pkt:   pkt,
		oob:   oob,
		dst:   dst,
		to:    to,
		count: max(copies, 1),
	}
}

// control6 is what the control messages of an IPv6 request tell.
type control6 struct {
	dst      netip.Addr
	hopLimit byte
	arrived  time.Time
}

// parseControl6 extracts destination, hop limit and receive time from control messages.
func parseControl6(oob []byte) (control6, error) {
	cm := control6{arrived: receiveTime(oob)}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return cm, fmt.Errorf("parsing IPv6 control messages: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IPV6 {
			continue
		}
		switch {
		case m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			cm.dst = netip.AddrFrom16([16]byte(m.Data[:16]))
		case m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
			cm.hopLimit = byte(binary.NativeEndian.Uint32(m.Data))
		}
	}
	if !cm.dst.IsValid() {
		return cm, errors.New("IPv6 request without IPV6_PKTINFO destination")
	}
	return cm, nil
}

// receiveTime returns the kernel receive timestamp among the control messages, or now if
// there is none.
func receiveTime(oob []byte) time.Time {
	msgs, _ := unix.ParseSocketControlMessage(oob)
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS {
			continue
		}
		// struct timespec: two longs, whose size depends on the architecture.
		switch len(m.Data) {
		case 16:
			return time.Unix(int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:])))
		case 8:
			return time.Unix(int64(int32(binary.NativeEndian.Uint32(m.Data))), int64(int32(binary.NativeEndian.Uint32(m.Data[4:]))))
		}
	}
	return time.Now().Round(0)
}

// checksum returns the Internet checksum (RFC 1071) of b; it is zero over a message that
// carries a correct checksum.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
