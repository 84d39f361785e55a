package pinger

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// socketKey identifies the sockets that can carry a round: rounds that differ in family,
// source, interface or TOS never share a socket.
type socketKey struct {
	v6     bool
	source netip.Addr
	iface  string
	tos    uint8
}

// Receive batching: replies arrive in bursts, and one recvmmsg call takes a batch. Send
// batching: the pings due in one tick are queued together, and go out in sendmmsg calls
// of sendChunk messages, each call timed as it starts. A probe's RTT includes the sending
// of the probes ahead of it in its call: with calls of 64, the median loopback RTT of
// 1,000 to 5,000 targets a tick was 49-119 µs; one message a call times each probe
// exactly (3-4 µs) for the same CPU, since what costs is the wake-up, not the calls.
const (
	sendBatch   = 64
	sendChunk   = 1
	recvBatch   = 64
	recvBufSize = 2048 // payloads beyond this are checked as far as they were copied
	controlSize = 128  // room for a timestamp or an ICMP error report
)

// socket is one ICMP socket with its receive buffers. Sends happen under the engine lock;
// the receive buffers belong to whoever holds readMu: the socket's receive goroutine,
// from a read until the batch is handled, or the clock goroutine draining the socket.
type socket struct {
	key      socketKey
	idBase   uint16 // raw sockets: the first identifier of the socket's range
	idRange  int    // raw sockets: the index of that range in Engine.rawRanges
	fd       int
	file     *os.File
	rc       syscall.RawConn
	datagram bool
	v6       bool
	id       uint16  // datagram sockets: the identifier the kernel assigned
	blocks   []int32 // indices into Engine.blocks, in identifier order; guarded by Engine.mu
	prompt   bool    // replies are read at once, by a receive goroutine of its own; set once, under Engine.mu
	started  bool    // that goroutine runs; guarded by Engine.mu

	// The send queue, which the engine fills and flushes under its lock. Message i is
	// outHeads[i] (header, serial and MAC) followed by the shared filler.
	filler   []byte // the payload pattern, written once: payload byte i is filler[i]
	outHdrs  []unix.Mmsghdr
	outIovs  []unix.Iovec // two per message: its head and the filler
	outHeads [][echoHeadLen]byte
	outTo    []unix.RawSockaddrInet6 // large enough for either family
	outSlots []int32                 // the probe slot of each queued message
	outErrs  []unix.Errno            // after a flush: each message's error, or 0
	outSent  []time.Time             // after a flush: when each message's call started

	readMu sync.Mutex // guards the receive buffers and the results below
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6
	bufs   [][recvBufSize]byte
	ctrls  [][controlSize]byte

	// results of the last receive call, kept in fields so that the callbacks can be
	// method values made once
	nread   int
	readErr error
	readFn  func(fd uintptr) bool
	recvFn  func(fd uintptr)
	errFn   func(fd uintptr)

	closed       atomic.Bool // tells the receive goroutine that a read error means shutdown
	timestampErr error       // why kernel receive timestamps are not available, if they are not
}

// openSocket opens and configures one ICMP socket. For raw sockets it installs a BPF
// filter that passes only echo replies with an identifier in the socket's range, and
// ICMP errors, so the process is not woken for other ICMP traffic on the host.
func openSocket(key socketKey, datagram bool, idBase uint16, rcvbuf int) (*socket, error) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if key.v6 {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	typ := unix.SOCK_RAW
	if datagram {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	s := &socket{key: key, idBase: idBase, fd: fd, datagram: datagram, v6: key.v6}
	if err := s.configure(rcvbuf); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.file = os.NewFile(uintptr(fd), "icmp")
	if s.rc, err = s.file.SyscallConn(); err != nil {
		s.file.Close()
		return nil, fmt.Errorf("socket: %w", err)
	}
	s.filler = make([]byte, MaxSize)
	fillPattern(s.filler)
	s.initSend()
	s.initRecv()
	s.readFn = s.read
	s.recvFn = s.recv
	s.errFn = s.readErrQueue
	return s, nil
}

func (s *socket) configure(rcvbuf int) error {
	fd := s.fd
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		// Without CAP_NET_ADMIN the kernel caps the buffer at net.core.rmem_max.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			return fmt.Errorf("setting receive buffer: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		// Some emulators and old kernels lack it; RTTs then end when the reply is read.
		s.timestampErr = err
	}
	if s.key.iface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, s.key.iface); err != nil {
			return fmt.Errorf("binding to interface %q: %w", s.key.iface, err)
		}
	}
	if s.v6 {
		if s.key.tos != 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, int(s.key.tos)); err != nil {
				return fmt.Errorf("setting traffic class: %w", err)
			}
		}
	} else if s.key.tos != 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, int(s.key.tos)); err != nil {
			return fmt.Errorf("setting TOS: %w", err)
		}
	}
	if s.datagram {
		// Datagram sockets get ICMP errors only through the error queue.
		var err error
		if s.v6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
		}
		if err != nil {
			return fmt.Errorf("enabling ICMP error reports: %w", err)
		}
	}
	if err := s.bind(); err != nil {
		return err
	}
	if !s.datagram {
		if err := s.attachFilter(); err != nil {
			return err
		}
	}
	return nil
}

// bind binds the source address. A datagram socket is always bound, so that the kernel
// assigns its identifier now and we can log it.
func (s *socket) bind() error {
	src := s.key.source
	if !src.IsValid() && !s.datagram {
		return nil
	}
	var sa unix.Sockaddr
	if s.v6 {
		a := &unix.SockaddrInet6{}
		if src.IsValid() {
			a.Addr = src.As16()
			if z := src.Zone(); z != "" {
				ifi, err := net.InterfaceByName(z)
				if err != nil {
					return fmt.Errorf("source address %s: %w", src, err)
				}
				a.ZoneId = uint32(ifi.Index)
			}
		}
		sa = a
	} else {
		a := &unix.SockaddrInet4{}
		if src.IsValid() {
			a.Addr = src.As4()
		}
		sa = a
	}
	if err := unix.Bind(s.fd, sa); err != nil {
		if src.IsValid() {
			return fmt.Errorf("binding source address %s: %w", src, err)
		}
		return fmt.Errorf("binding: %w", err)
	}
	if s.datagram {
		name, err := unix.Getsockname(s.fd)
		if err != nil {
			return fmt.Errorf("reading the assigned identifier: %w", err)
		}
		switch a := name.(type) {
		case *unix.SockaddrInet4:
			s.id = uint16(a.Port)
		case *unix.SockaddrInet6:
			s.id = uint16(a.Port)
		}
	}
	return nil
}

// attachFilter installs the BPF program and then discards whatever arrived before it.
func (s *socket) attachFilter() error {
	prog, err := bpf.Assemble(filterProgram(s.v6, s.idBase, idsPerRawSocket))
	if err != nil {
		return fmt.Errorf("assembling BPF filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("attaching BPF filter: %w", err)
	}
	var buf [recvBufSize]byte
	for {
		if _, _, err := unix.Recvfrom(s.fd, buf[:], unix.MSG_DONTWAIT); err != nil {
			return nil
		}
	}
}

// filterProgram accepts echo replies whose identifier lies in [base, base+n) and ICMP
// errors (the receive path checks what they quote). IPv4 raw sockets see the IP header
// first; IPv6 raw sockets start at the ICMPv6 header.
func filterProgram(v6 bool, base, n uint16) []bpf.Instruction {
	const accept, drop = 0x40000, 0
	// Both programs end by loading the identifier and checking its range.
	idInRange := []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: uint32(base), SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(base) + uint32(n), SkipTrue: 1},
		bpf.RetConstant{Val: accept},
		bpf.RetConstant{Val: drop},
	}
	if v6 {
		return append([]bpf.Instruction{
			bpf.LoadAbsolute{Off: 0, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp6EchoReply, SkipTrue: 3},
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: icmp6ParamProblem, SkipTrue: 6},
			bpf.JumpIf{Cond: bpf.JumpLessThan, Val: icmp6Unreachable, SkipTrue: 5},
			bpf.RetConstant{Val: accept},
			bpf.LoadAbsolute{Off: 4, Size: 2},
		}, idInRange...)
	}
	return append([]bpf.Instruction{
		bpf.LoadMemShift{Off: 0},
		bpf.LoadIndirect{Off: 0, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp4EchoReply, SkipTrue: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp4Unreachable, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp4TimeExceeded, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp4ParamProblem, SkipFalse: 5},
		bpf.RetConstant{Val: accept},
		bpf.LoadIndirect{Off: 4, Size: 2},
	}, idInRange...)
}

func (s *socket) initRecv() {
	s.hdrs = make([]unix.Mmsghdr, recvBatch)
	s.iovs = make([]unix.Iovec, recvBatch)
	s.names = make([]unix.RawSockaddrInet6, recvBatch)
	s.bufs = make([][recvBufSize]byte, recvBatch)
	s.ctrls = make([][controlSize]byte, recvBatch)
	for i := range s.hdrs {
		s.iovs[i].Base = &s.bufs[i][0]
		s.iovs[i].SetLen(recvBufSize)
		h := &s.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
		h.Control = &s.ctrls[i][0]
	}
}

// recv receives a batch with one recvmmsg call that does not wait: s.nread messages, or
// the call's error in s.readErr (EAGAIN when nothing is queued). s.readMu must be held.
func (s *socket) recv(fd uintptr) {
	for i := range s.hdrs {
		h := &s.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(controlSize)
		h.Flags = 0
	}
	// MSG_TRUNC makes the kernel report a datagram's full length even when it was cut.
	// The calls here never block, so they skip the scheduler's syscall bookkeeping.
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])),
		uintptr(len(s.hdrs)), unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
	s.nread, s.readErr = int(n), nil
	if errno != 0 {
		s.nread, s.readErr = 0, errno
	}
}

// read is the RawConn callback of readBatch; it reports false to wait for the socket to
// become readable. It takes s.readMu for the receive call and keeps it when it reports
// true, so that nobody else touches the batch before it is handled.
func (s *socket) read(fd uintptr) bool {
	s.readMu.Lock()
	s.recv(fd)
	if s.readErr == unix.EAGAIN || s.readErr == unix.EINTR {
		s.readMu.Unlock()
		return false
	}
	return true
}

// readBatch waits for a batch of messages and receives it: s.nread messages, or the
// receive call's error in s.readErr. It returns an error only when the wait ended with
// nothing received, as when the socket was closed. Otherwise s.readMu is held, and the
// caller unlocks it once it is done with the batch.
func (s *socket) readBatch() error {
	return s.rc.Read(s.readFn)
}

// readNow receives what is queued without waiting, as recv does, and reports whether the
// batch is full, so that more may be queued. s.readMu must be held. The error is that of
// a closed socket.
func (s *socket) readNow() (full bool, err error) {
	// Control, unlike Read, does not queue behind the receive goroutine's wait.
	if err := s.rc.Control(s.recvFn); err != nil {
		return false, err
	}
	return s.nread == len(s.hdrs), nil
}

// readErrQueue reads one message from a datagram socket's error queue into buffer 0.
func (s *socket) readErrQueue(fd uintptr) {
	h := &s.hdrs[0].Hdr
	h.Namelen = unix.SizeofSockaddrInet6
	h.SetControllen(controlSize)
	h.Flags = 0
	n, _, errno := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(h)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	s.hdrs[0].Len = uint32(n)
	s.nread, s.readErr = int(n), nil
	if errno != 0 {
		s.nread, s.readErr = 0, errno
	}
}

// nextError reads the next ICMP error report of a datagram socket; false when none is
// left. s.readMu must be held.
func (s *socket) nextError() bool {
	if err := s.rc.Control(s.errFn); err != nil || s.readErr != nil {
		return false
	}
	return true
}

// message returns the data of received message i and its full length before
// truncation, or -1 when the message was cut and the kernel did not say by how much
// (datagram ICMP sockets ignore MSG_TRUNC).
func (s *socket) message(i int) ([]byte, int) {
	n := int(s.hdrs[i].Len)
	switch {
	case n > recvBufSize:
		return s.bufs[i][:], n
	case s.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0:
		return s.bufs[i][:n], -1
	}
	return s.bufs[i][:n], n
}

// source returns the sender of message i (for error-queue messages: the original
// destination) in 16-byte form.
func (s *socket) source(i int) [16]byte {
	sa := &s.names[i]
	if sa.Family == unix.AF_INET {
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrFrom4(in.Addr).As16()
	}
	return sa.Addr
}

// control extracts the kernel receive timestamp (ns since the epoch, 0 if absent) and,
// for error-queue messages, whether an ICMP error is reported.
func (s *socket) control(i int) (rxNs int64, icmpErr bool) {
	h := &s.hdrs[i].Hdr
	buf := s.ctrls[i][:h.Controllen]
	for len(buf) >= unix.SizeofCmsghdr {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&buf[0]))
		clen := int(c.Len)
		if clen < unix.SizeofCmsghdr || clen > len(buf) {
			break
		}
		data := buf[unix.CmsgLen(0):clen]
		switch {
		case c.Level == unix.SOL_SOCKET && c.Type == unix.SO_TIMESTAMPNS:
			rxNs = timespecNs(data)
		case (c.Level == unix.IPPROTO_IP && c.Type == unix.IP_RECVERR) ||
			(c.Level == unix.IPPROTO_IPV6 && c.Type == unix.IPV6_RECVERR):
			if len(data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})) {
				ee := (*unix.SockExtendedErr)(unsafe.Pointer(&data[0]))
				icmpErr = ee.Origin == unix.SO_EE_ORIGIN_ICMP || ee.Origin == unix.SO_EE_ORIGIN_ICMP6
			}
		}
		space := unix.CmsgSpace(clen - unix.CmsgLen(0))
		if space > len(buf) {
			break
		}
		buf = buf[space:]
	}
	return rxNs, icmpErr
}

// timespecNs decodes the kernel's struct timespec, whose fields are 4 bytes wide on
// 32-bit platforms with the old time ABI and 8 bytes elsewhere.
func timespecNs(b []byte) int64 {
	switch len(b) {
	case 16:
		sec := *(*int64)(unsafe.Pointer(&b[0]))
		nsec := *(*int64)(unsafe.Pointer(&b[8]))
		return sec*1e9 + nsec
	case 8:
		sec := *(*int32)(unsafe.Pointer(&b[0]))
		nsec := *(*int32)(unsafe.Pointer(&b[4]))
		return int64(sec)*1e9 + int64(nsec)
	}
	return 0
}

func (s *socket) initSend() {
	s.outHdrs = make([]unix.Mmsghdr, sendBatch)
	s.outIovs = make([]unix.Iovec, 2*sendBatch)
	s.outHeads = make([][echoHeadLen]byte, sendBatch)
	s.outTo = make([]unix.RawSockaddrInet6, sendBatch)
	s.outSlots = make([]int32, 0, sendBatch)
	s.outErrs = make([]unix.Errno, sendBatch)
	s.outSent = make([]time.Time, sendBatch)
	for i := range s.outHdrs {
		s.outIovs[2*i].Base = &s.outHeads[i][0]
		s.outIovs[2*i].SetLen(echoHeadLen)
		s.outIovs[2*i+1].Base = &s.filler[MinSize]
		h := &s.outHdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.outTo[i]))
		h.Iov = &s.outIovs[2*i]
		h.SetIovlen(2)
	}
}

// queue adds an echo request with a payload of size bytes to dst to the send queue, for
// the probe in slot si, and returns the head of the message for the caller to write. The
// queue must not be full.
func (s *socket) queue(si int32, size int, dst *[16]byte, zone uint32) []byte {
	i := len(s.outSlots)
	s.outSlots = append(s.outSlots, si)
	s.outIovs[2*i+1].SetLen(size - MinSize)
	h := &s.outHdrs[i].Hdr
	sa := &s.outTo[i]
	if s.v6 {
		sa.Family = unix.AF_INET6
		sa.Addr = *dst
		sa.Scope_id = zone
		h.Namelen = unix.SizeofSockaddrInet6
	} else {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		copy(sa4.Addr[:], dst[12:])
		h.Namelen = unix.SizeofSockaddrInet4
	}
	return s.outHeads[i][:]
}

// queueFull reports whether the send queue must be flushed before the next queue.
func (s *socket) queueFull() bool {
	return len(s.outSlots) == sendBatch
}

// flush transmits the queued messages in sendmmsg calls of up to sendChunk messages, and
// leaves each message's error, or 0, in outErrs and the start of its call in outSent.
// The caller empties outSlots.
func (s *socket) flush() {
	n := len(s.outSlots)
	retried := false
	for off := 0; off < n; {
		now := time.Now()
		sent, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.outHdrs[off])),
			uintptr(min(n-off, sendChunk)), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == 0 && sent > 0:
			// A message's error after the first is not reported: the next call
			// starts with that message and reports it.
			clear(s.outErrs[off : off+int(sent)])
			for i := range int(sent) {
				s.outSent[off+i] = now
			}
			off += int(sent)
			retried = false
			continue
		case errno == 0:
			errno = unix.EAGAIN // nothing sent and no reason given: do not spin
		case errno == unix.EINTR:
			continue
		case s.datagram && !retried && errno != unix.EAGAIN && errno != unix.ENOBUFS:
			// A datagram socket reports an ICMP error that arrived for an earlier probe
			// (to any target) on its next call, and forgets it: try once more.
			retried = true
			continue
		}
		s.outErrs[off] = errno
		off++
		retried = false
	}
}

// drops returns how many packets the kernel dropped because the receive buffer was full.
func (s *socket) drops() (uint32, error) {
	// SO_MEMINFO fills an array of u32 counters; the drop count is its ninth entry.
	const memInfoDrops, memInfoLen = 8, 9
	var info [memInfoLen]uint32
	size := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, errno
	}
	return info[memInfoDrops], nil
}

// close wakes the receive goroutine and releases the descriptor. It waits for the calls
// under way on the descriptor, so it must not be called with Engine.mu held.
func (s *socket) close() error {
	s.closed.Store(true)
	return s.file.Close()
}

// errNoSocket explains what to do when neither kind of ICMP socket may be opened.
func errNoSocket(v6 bool, raw, dgram error) error {
	fam := "IPv4"
	if v6 {
		fam = "IPv6"
	}
	rng := "unknown"
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range"); err == nil {
		rng = strings.Join(strings.Fields(string(b)), " ")
	}
	return fmt.Errorf("cannot open an %s ICMP socket: raw sockets need root or CAP_NET_RAW "+
		"(for example setcap cap_net_raw+ep on the binary) (%w); unprivileged datagram sockets need "+
		"the process's group in net.ipv4.ping_group_range, currently %q (%w)", fam, raw, rng, dgram)
}

// permissionDenied reports whether a socket could not be opened for lack of privilege.
func permissionDenied(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}
