package tcpping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	fdReserveMin   = 64 // file descriptors always left to the rest of the process
	fdReserveShare = 4  // and at least this share of the limit
	eventBatch     = 256
	wakeIndex      = -1 // the epoll data of the engine's eventfd
)

// conn is one connect in flight; fd is -1 when the entry is free.
type conn struct {
	fd      int
	round   int32
	ping    int32
	gen     uint32 // changes when the entry is freed, so that a stale epoll event is known
	heapPos int32
	startNs int64 // monotonic, since Engine.epoch: just before the connect call
	rttNs   int64 // the connect time, once connected (a round with a banner waits on)
	// The banner match: bytes read so far, the column in the current line, and whether
	// the current line has matched the banner up to col.
	read     int32
	col      int32
	matching bool
}

// roundState is the engine's bookkeeping for one submitted round.
type roundState struct {
	r         *Round
	sa        unix.Sockaddr
	src       unix.Sockaddr // nil: the kernel's choice
	v6        bool
	startNs   int64
	gapNs     int64
	timeoutNs int64
	count     int32
	next      int32 // next ping to send
	pending   int32 // pings not yet answered or lost
	heapPos   int32 // of its next send, -1 when none is queued
}

// Engine connects for any number of rounds. It is safe for concurrent use; rounds make
// progress while Run runs.
type Engine struct {
	log   *slog.Logger
	max   int
	epoch time.Time

	mu      sync.Mutex
	running bool
	closed  bool
	wakeFd  int   // eventfd that wakes Run's epoll_wait; -1 before Run
	armed   int64 // when Run's wait ends, monotonic ns; -1 when it waits for events only
	rounds  []roundState
	freeR   []int32
	conns   []conn
	freeC   []int32
	flying  int
	timers  timerHeap
	stats   Stats
	scratch [512]byte
	info    unix.TCPInfo
}

// New returns an engine.
func New(opts Options) *Engine {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{log: log, max: opts.MaxInFlight, epoch: time.Now(), wakeFd: -1, armed: -1}
	if e.max <= 0 {
		e.max = DefaultMaxInFlight
	}
	e.timers.e = e
	return e
}

func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// Submit validates a round and schedules its pings; Done(r) is called once the round is
// complete.
func (e *Engine) Submit(r *Round) error {
	if err := r.check(); err != nil {
		return err
	}
	target := r.Target.Addr().Unmap()
	sa, err := sockaddr(target, r.Target.Port())
	if err != nil {
		return err
	}
	var src unix.Sockaddr
	if r.Source.IsValid() {
		src, _ = sockaddr(r.Source.Unmap(), 0)
	}
	if cap(r.RTTs) >= r.Count {
		r.RTTs = r.RTTs[:r.Count]
	} else {
		r.RTTs = make([]time.Duration, r.Count)
	}
	for i := range r.RTTs {
		r.RTTs[i] = Lost
	}
	r.Err = nil
	start := time.Now()
	if r.Start.After(start) {
		start = r.Start
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	var idx int32
	if n := len(e.freeR); n > 0 {
		idx, e.freeR = e.freeR[n-1], e.freeR[:n-1]
	} else {
		e.rounds = append(e.rounds, roundState{})
		idx = int32(len(e.rounds) - 1)
	}
	e.rounds[idx] = roundState{
		r: r, sa: sa, src: src, v6: target.Is6(),
		startNs: int64(start.Sub(e.epoch)), gapNs: int64(r.Gap), timeoutNs: int64(r.Timeout),
		count: int32(r.Count), pending: int32(r.Count), heapPos: -1,
	}
	e.timers.push(timer{at: e.rounds[idx].startNs, id: idx})
	e.poke(e.rounds[idx].startNs)
	return nil
}

// sockaddr converts an address and port for the system calls; an IPv6 zone names an
// interface.
func sockaddr(a netip.Addr, port uint16) (unix.Sockaddr, error) {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: int(port)}, nil
	}
	sa := &unix.SockaddrInet6{Addr: a.As16(), Port: int(port)}
	if z := a.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return nil, fmt.Errorf("tcpping: address %s: %w", a, err)
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return sa, nil
}

// poke wakes Run if something is now due before it would wake anyway. e.mu is held.
func (e *Engine) poke(at int64) {
	if e.wakeFd < 0 || (e.armed >= 0 && e.armed <= at) {
		return
	}
	e.armed = at
	e.wakeUp()
}

// wakeUp makes Run's epoll_wait return. e.mu is held.
func (e *Engine) wakeUp() {
	if e.wakeFd >= 0 {
		one := [8]byte{1}
		unix.Write(e.wakeFd, one[:])
	}
}

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Run drives the engine until ctx is done: it sleeps in epoll_wait until a socket is
// ready or the next send or deadline is due. When ctx is done, or Run fails, it closes
// every socket in flight and completes every pending round with an Err that wraps
// ErrClosed; Submit refuses rounds from then on.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running || e.closed {
		e.mu.Unlock()
		return errors.New("tcpping: Run called twice")
	}
	e.running = true
	e.max = min(e.max, descriptorBudget())
	e.mu.Unlock()
	err := e.run(ctx)
	e.mu.Lock()
	e.shutdown()
	return err
}

// run is Run's loop; it returns with the eventfd closed and e.wakeFd -1.
func (e *Engine) run(ctx context.Context) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("tcpping: epoll: %w", err)
	}
	defer unix.Close(ep)
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("tcpping: eventfd: %w", err)
	}
	defer func() {
		// No poke may write to the descriptor once it is closed and its number reused.
		e.mu.Lock()
		e.wakeFd = -1
		e.mu.Unlock()
		unix.Close(wake)
	}()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeIndex}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		return fmt.Errorf("tcpping: epoll: %w", err)
	}
	e.mu.Lock()
	e.wakeFd = wake
	e.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.wakeUp()
		e.mu.Unlock()
	})
	defer stop()

	events := make([]unix.EpollEvent, eventBatch)
	var done []*Round
	wait := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		e.mu.Lock()
		if wait == 0 {
			// No events were left unread: the deadlines that have passed may be expired.
			done = e.fire(ep, done)
		}
		msec := -1
		e.armed = -1
		if wait == 0 && len(e.timers.t) > 0 {
			at := e.timers.t[0].at
			e.armed = at
			msec = int(max(0, (at-e.now()+int64(time.Millisecond)-1)/int64(time.Millisecond)))
		} else if wait < 0 {
			msec = 0
		}
		e.mu.Unlock()
		deliver(done)
		done = done[:0]

		n, err := unix.EpollWait(ep, events, msec)
		now := e.now() // the end of every connect time of this batch: taken at once
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("tcpping: epoll_wait: %w", err)
		}
		// A full batch may leave ready sockets unread: read them before any deadline is
		// expired, which a wait of 0 does.
		wait = 0
		if n == len(events) {
			wait = -1
		}
		e.mu.Lock()
		for _, ev := range events[:n] {
			if ev.Fd == wakeIndex {
				var b [8]byte
				unix.Read(wake, b[:])
				continue
			}
			done = e.ready(ev, now, done)
		}
		e.mu.Unlock()
		deliver(done)
		done = done[:0]
	}
}

func deliver(done []*Round) {
	for i, r := range done {
		done[i] = nil
		r.Done(r)
	}
}

// fire starts the connects that are due and expires the deadlines that have passed.
// e.mu is held.
func (e *Engine) fire(ep int, done []*Round) []*Round {
	for len(e.timers.t) > 0 {
		t := e.timers.t[0]
		if t.at > e.now() {
			break
		}
		e.timers.pop()
		if t.id >= 0 {
			done = e.connect(ep, t.id, done)
			continue
		}
		e.stats.TimedOut++
		done = e.finish(^t.id, Lost, done)
	}
	return done
}

// connect starts the next ping of round idx and queues the one after it.
func (e *Engine) connect(ep int, idx int32, done []*Round) []*Round {
	rs := &e.rounds[idx]
	ping := rs.next
	rs.next++
	if rs.next < rs.count {
		e.timers.push(timer{at: rs.startNs + int64(rs.next)*rs.gapNs, id: idx})
	}
	if e.flying >= e.max {
		return e.failed(idx, ping, fmt.Errorf("%d connects in flight, the most allowed", e.flying), done)
	}
	fd, err := e.open(rs)
	if err != nil {
		return e.failed(idx, ping, err, done)
	}
	ci := e.allocConn()
	c := &e.conns[ci]
	*c = conn{fd: fd, round: idx, ping: ping, gen: c.gen, heapPos: -1}
	e.flying++
	e.stats.Connects++
	c.startNs = e.now()
	err = unix.Connect(fd, rs.sa)
	end := e.now()
	switch {
	case err == nil:
		// Completed within the call, as a connect to a local address may.
		return e.connected(ep, ci, e.connectTime(c, end), done)
	case errors.Is(err, unix.EINPROGRESS):
	case errors.Is(err, unix.ECONNREFUSED):
		return e.refused(ci, end, done)
	default:
		e.stats.Failed++
		return e.finishErr(ci, fmt.Errorf("tcpping: connecting to %s: %w", rs.r.Target, err), done)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: ci, Pad: int32(c.gen)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		e.stats.Failed++
		return e.finishErr(ci, fmt.Errorf("tcpping: epoll: %w", err), done)
	}
	e.timers.push(timer{at: c.startNs + rs.timeoutNs, id: ^ci})
	return done
}

// open makes the socket of one ping: non-blocking, closed with a RST (SO_LINGER 0),
// bound to the round's interface and source address.
func (e *Engine) open(rs *roundState) (int, error) {
	af := unix.AF_INET
	if rs.v6 {
		af = unix.AF_INET6
	}
	fd, err := unix.Socket(af, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("tcpping: opening a socket: %w", err)
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tcpping: SO_LINGER: %w", err)
	}
	if iface := rs.r.Interface; iface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("tcpping: binding to interface %s: %w", iface, err)
		}
	}
	if rs.src != nil {
		if err := unix.Bind(fd, rs.src); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("tcpping: binding to source %s: %w", rs.r.Source, err)
		}
	}
	return fd, nil
}

// ready handles an epoll event of a connect in flight, at time now. e.mu is held.
func (e *Engine) ready(ev unix.EpollEvent, now int64, done []*Round) []*Round {
	ci := ev.Fd
	if ci < 0 || int(ci) >= len(e.conns) {
		return done
	}
	c := &e.conns[ci]
	if c.fd < 0 || c.gen != uint32(ev.Pad) {
		return done // finished by an earlier event of the same batch
	}
	if c.rttNs == 0 {
		soErr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			soErr = int(unix.EIO)
		}
		switch {
		case soErr == 0 && ev.Events&(unix.EPOLLOUT|unix.EPOLLIN) != 0:
			return e.connected(-1, ci, e.connectTime(c, now), done)
		case soErr == 0:
			return done // a hang-up without error: the read below will tell
		case unix.Errno(soErr) == unix.ECONNREFUSED:
			return e.refused(ci, now, done)
		}
		e.stats.Failed++
		return e.finishErr(ci, nil, done)
	}
	return e.readBanner(ci, done)
}

// connectTime is the connect time of c, whose handshake completed by now: the kernel's
// measure of the time from the SYN to the SYN-ACK (TCP_INFO's tcpi_rtt, in microseconds),
// which no wake-up latency of the process lengthens, unless the SYN had to be sent again
// or the kernel has no measure; then the time from the connect call to now.
func (e *Engine) connectTime(c *conn, now int64) int64 {
	rtt := max(now-c.startNs, 1)
	size := uint32(unsafe.Sizeof(e.info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(c.fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&e.info)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || e.info.Total_retrans != 0 || e.info.Rtt == 0 {
		return rtt
	}
	return min(rtt, int64(e.info.Rtt)*int64(time.Microsecond))
}

// connected ends a ping whose handshake took rtt, or, for a round with a banner, starts
// to wait for it. ep is -1 when the socket is in the epoll set already.
func (e *Engine) connected(ep int, ci int32, rtt int64, done []*Round) []*Round {
	c := &e.conns[ci]
	rs := &e.rounds[c.round]
	if rtt > rs.timeoutNs {
		e.stats.TimedOut++
		return e.finish(ci, Lost, done)
	}
	if rs.r.Banner == "" {
		e.stats.Answered++
		return e.finish(ci, time.Duration(rtt), done)
	}
	c.rttNs = rtt
	if ep >= 0 {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: ci, Pad: int32(c.gen)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			e.stats.Failed++
			return e.finishErr(ci, fmt.Errorf("tcpping: epoll: %w", err), done)
		}
		e.timers.push(timer{at: c.startNs + rs.timeoutNs, id: ^ci})
	}
	// The banner may have come with the handshake; edge-triggered events come only for
	// what arrives later.
	return e.readBanner(ci, done)
}

// refused ends a ping whose connect was refused at now.
func (e *Engine) refused(ci int32, now int64, done []*Round) []*Round {
	c := &e.conns[ci]
	rs := &e.rounds[c.round]
	e.stats.Refused++
	if rtt := max(now-c.startNs, 1); rs.r.RefusedIsAnswer && rs.r.Banner == "" && rtt <= rs.timeoutNs {
		e.stats.Answered++
		return e.finish(ci, time.Duration(rtt), done)
	}
	return e.finish(ci, Lost, done)
}

// readBanner reads what the server sent until the socket is empty, and ends the ping
// when a line starts with the banner (answered), or when the server closed or sent too
// much without one (lost).
func (e *Engine) readBanner(ci int32, done []*Round) []*Round {
	c := &e.conns[ci]
	banner := e.rounds[c.round].r.Banner
	for {
		n, err := unix.Read(c.fd, e.scratch[:])
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return done
		}
		if err != nil || n == 0 {
			e.stats.NotBanner++
			return e.finish(ci, Lost, done)
		}
		for _, b := range e.scratch[:n] {
			if c.read++; c.read > maxBannerBytes {
				e.stats.NotBanner++
				return e.finish(ci, Lost, done)
			}
			switch {
			case b == '\n':
				c.col, c.matching = 0, true
				continue
			case c.col == 0:
				c.matching = true
			}
			if c.matching && int(c.col) < len(banner) {
				c.matching = b == banner[c.col]
				if c.matching && int(c.col) == len(banner)-1 {
					e.stats.Answered++
					return e.finish(ci, time.Duration(c.rttNs), done)
				}
			}
			c.col = min(c.col+1, int32(len(banner)))
		}
	}
}

// failed records a ping that could not be started.
func (e *Engine) failed(idx, ping int32, err error, done []*Round) []*Round {
	e.stats.Failed++
	rs := &e.rounds[idx]
	if rs.r.Err == nil {
		rs.r.Err = fmt.Errorf("tcpping: %s: %w", rs.r.Target, err)
	}
	return e.settle(idx, ping, Lost, done)
}

// finishErr ends the connect in slot ci as lost, recording err in its round if it is the
// first; nil only ends it.
func (e *Engine) finishErr(ci int32, err error, done []*Round) []*Round {
	if rs := &e.rounds[e.conns[ci].round]; err != nil && rs.r.Err == nil {
		rs.r.Err = err
	}
	return e.finish(ci, Lost, done)
}

// finish closes the socket of slot ci (a RST if it is connected), frees the slot and
// records the ping's outcome.
func (e *Engine) finish(ci int32, rtt time.Duration, done []*Round) []*Round {
	c := &e.conns[ci]
	unix.Close(c.fd) // also takes it out of the epoll set
	if c.heapPos >= 0 {
		e.timers.remove(int(c.heapPos))
	}
	idx, ping := c.round, c.ping
	c.fd = -1
	c.gen++
	e.freeC = append(e.freeC, ci)
	e.flying--
	return e.settle(idx, ping, rtt, done)
}

// settle records the outcome of one ping and completes the round after its last one.
func (e *Engine) settle(idx, ping int32, rtt time.Duration, done []*Round) []*Round {
	rs := &e.rounds[idx]
	rs.r.RTTs[ping] = rtt
	rs.pending--
	if rs.pending > 0 {
		return done
	}
	done = append(done, rs.r)
	*rs = roundState{heapPos: -1}
	e.freeR = append(e.freeR, idx)
	return done
}

func (e *Engine) allocConn() int32 {
	if n := len(e.freeC); n > 0 {
		ci := e.freeC[n-1]
		e.freeC = e.freeC[:n-1]
		return ci
	}
	e.conns = append(e.conns, conn{fd: -1, heapPos: -1})
	return int32(len(e.conns) - 1)
}

// shutdown closes every socket in flight and completes every pending round. e.mu is
// held, and released.
func (e *Engine) shutdown() {
	e.closed = true
	for i := range e.conns {
		if c := &e.conns[i]; c.fd >= 0 {
			unix.Close(c.fd)
			c.fd = -1
		}
	}
	e.timers.t = nil
	var done []*Round
	for i := range e.rounds {
		rs := &e.rounds[i]
		if rs.r == nil {
			continue
		}
		if rs.r.Err == nil {
			rs.r.Err = ErrClosed
		} else {
			rs.r.Err = fmt.Errorf("%w, after: %w", ErrClosed, rs.r.Err)
		}
		done = append(done, rs.r)
		rs.r = nil
	}
	e.mu.Unlock()
	deliver(done)
}

// descriptorBudget is how many connects may be in flight without leaving fewer than a
// quarter of the process's file descriptors (RLIMIT_NOFILE), and at least fdReserveMin,
// to its other files.
func descriptorBudget() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return DefaultMaxInFlight
	}
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return DefaultMaxInFlight
	}
	reserve := max(fdReserveMin, lim.Cur/fdReserveShare)
	if used := uint64(len(names)) + reserve; used < lim.Cur {
		return int(min(lim.Cur-used, DefaultMaxInFlight))
	}
	return 1
}
