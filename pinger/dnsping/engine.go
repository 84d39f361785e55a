package dnsping

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

const (
	defaultSockets = 4
	defaultMaxTCP  = 256
	// grace is how long after its timeout a UDP query's deadline is processed: an answer
	// the kernel received within the timeout still counts (its RTT is the kernel's
	// timestamp's) when the reading goroutine gets to it a little late.
	grace = 50 * time.Millisecond
	// fdReserveMin and fdReserveShare: what the engine leaves of the process's file
	// descriptors to its other files (RLIMIT_NOFILE), as the ICMP engine does.
	fdReserveMin   = 64
	fdReserveShare = 4
	// maxMessage is the largest DNS message over UDP or TCP.
	maxMessage = 65535
	// lateWindow is how long a timed-out UDP query stays known, so that its answer is
	// counted as late rather than foreign.
	lateWindow        = 5 * time.Second
	receiveErrorPause = 10 * time.Millisecond // keeps a persistent socket error from spinning
)

// socketKey is what a group of UDP sockets serves.
type socketKey struct {
	v6     bool
	source netip.Addr
}

func (k socketKey) String() string {
	s := "IPv4"
	if k.v6 {
		s = "IPv6"
	}
	if k.source.IsValid() {
		s += " from " + k.source.String()
	}
	return s
}

// udpSock is one shared UDP socket and the queries in flight on it.
type udpSock struct {
	conn     *net.UDPConn
	inFlight map[flightKey]*query
}

// flightKey is how an answer finds its query on a socket: the id, and the server it must
// come from. The question is checked once found.
type flightKey struct {
	id     uint16
	server netip.AddrPort
}

type queryState uint8

const (
	queryWaiting queryState = iota // a TCP query waiting for a free place
	queryFlying                    // sent, waiting for its answer or deadline
	queryDone                      // answered or lost
	queryExpired                   // timed out; kept on its socket to count a late answer
)

// query is one DNS query of a round.
type query struct {
	rs       *roundState
	ping     int
	id       uint16
	sock     *udpSock // nil over TCP
	sent     time.Time
	deadline time.Time
	state    queryState
}

// roundState is the engine's bookkeeping for one submitted round.
type roundState struct {
	r       *Round
	q       dns.Question
	wire    []byte // the query message with id 0
	key     socketKey
	start   time.Time
	next    int // next query to send
	pending int // queries not yet answered or lost
	over    bool
}

// eventKind says what a timer event does.
type eventKind uint8

const (
	eventSend     eventKind = iota // send the next query of rs
	eventDeadline                  // time out q unless it was answered
	eventForget                    // take the expired q off its socket
)

type event struct {
	at   time.Time
	kind eventKind
	rs   *roundState
	q    *query
}

type eventHeap []event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(a, b int) bool { return h[a].at.Before(h[b].at) }
func (h eventHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	ev := old[len(old)-1]
	old[len(old)-1] = event{}
	*h = old[:len(old)-1]
	return ev
}

// Engine sends DNS queries and matches their answers for any number of rounds. It is
// safe for concurrent use.
type Engine struct {
	opts    Options
	log     *slog.Logger
	maxTCP  int
	wake    chan struct{}
	readers sync.WaitGroup // one goroutine per UDP socket
	tcp     sync.WaitGroup // one goroutine per TCP query in flight

	mu        sync.Mutex
	running   bool
	closed    bool
	groups    map[socketKey][]*udpSock
	cursor    int
	events    eventHeap
	active    map[*roundState]struct{}
	tcpActive int
	tcpWait   []*query // FIFO of TCP queries waiting for a place
	sendBuf   []byte   // a UDP query with its id, reused
	stats     Stats
}

// New returns an engine; rounds make progress while Run runs.
func New(opts Options) *Engine {
	if opts.Sockets <= 0 {
		opts.Sockets = defaultSockets
	}
	if opts.MaxTCP <= 0 {
		opts.MaxTCP = defaultMaxTCP
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	maxTCP := opts.MaxTCP
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur != unix.RLIM_INFINITY {
		maxTCP = max(1, min(maxTCP, int(lim.Cur/8)))
	}
	return &Engine{
		opts: opts, log: log, maxTCP: maxTCP,
		wake:   make(chan struct{}, 1),
		groups: make(map[socketKey][]*udpSock),
		active: make(map[*roundState]struct{}),
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Submit validates a round and schedules its queries. Done(r) is called once the round is
// complete. The UDP sockets the round needs are opened here, so an error names what is
// missing (a source address, or file descriptors).
func (e *Engine) Submit(r *Round) error {
	question, err := r.check()
	if err != nil {
		return err
	}
	msg := new(dns.Msg)
	msg.RecursionDesired = true
	msg.Question = []dns.Question{question}
	wire, err := msg.Pack()
	if err != nil {
		return fmt.Errorf("dnsping: packing the query for %s: %w", question.Name, err)
	}
	server := netip.AddrPortFrom(r.Server.Addr().Unmap(), r.Server.Port())
	rs := &roundState{r: r, q: question, wire: wire,
		key: socketKey{v6: server.Addr().Is6(), source: r.Source.Unmap()}, start: r.Start}
	if rs.start.IsZero() {
		rs.start = time.Now()
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if !r.TCP {
		if _, err := e.group(rs.key); err != nil {
			e.mu.Unlock()
			return err
		}
	}
	r.Server = server
	if cap(r.RTTs) >= r.Count {
		r.RTTs = r.RTTs[:r.Count]
	} else {
		r.RTTs = make([]time.Duration, r.Count)
	}
	for i := range r.RTTs {
		r.RTTs[i] = Lost
	}
	r.Err = nil
	rs.pending = r.Count
	e.active[rs] = struct{}{}
	heap.Push(&e.events, event{at: rs.start, kind: eventSend, rs: rs})
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return nil
}

// group returns the UDP sockets of key, opening them on first use. e.mu is held.
func (e *Engine) group(key socketKey) ([]*udpSock, error) {
	if g := e.groups[key]; g != nil {
		return g, nil
	}
	if err := checkDescriptors(key, e.opts.Sockets); err != nil {
		return nil, err
	}
	network := "udp4"
	if key.v6 {
		network = "udp6"
	}
	var laddr *net.UDPAddr
	if key.source.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(key.source, 0))
	}
	g := make([]*udpSock, 0, e.opts.Sockets)
	for range e.opts.Sockets {
		conn, err := net.ListenUDP(network, laddr)
		if err == nil {
			err = timestamps(conn)
		}
		if err != nil {
			if conn != nil {
				conn.Close()
			}
			for _, s := range g {
				s.conn.Close()
			}
			return nil, fmt.Errorf("dnsping: opening a UDP socket for %v: %w", key, err)
		}
		g = append(g, &udpSock{conn: conn, inFlight: make(map[flightKey]*query)})
	}
	for _, s := range g {
		e.readers.Go(func() { e.read(s) })
	}
	e.groups[key] = g
	return g, nil
}

// timestamps asks the kernel for the receive time of each datagram (SO_TIMESTAMPNS).
func timestamps(conn *net.UDPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
	}
	return nil
}

// checkDescriptors refuses to open n sockets for key when that would leave fewer than a
// quarter of the process's file descriptors (RLIMIT_NOFILE), and at least 64, free. The
// error wraps EMFILE.
func checkDescriptors(key socketKey, n int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return nil // no limit to keep to, or none known: the kernel's own check remains
	}
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil
	}
	open := uint64(len(names)) - 1 // not counting dir itself
	reserve := max(fdReserveMin, lim.Cur/fdReserveShare)
	if open+uint64(n)+reserve <= lim.Cur {
		return nil
	}
	return fmt.Errorf("dnsping: not opening %d UDP sockets for %v: %d of %d file descriptors in use, "+
		"and %d are kept for the daemon's other files (RLIMIT_NOFILE): %w", n, key, open, lim.Cur, reserve, unix.EMFILE)
}

// Run sends queries and processes deadlines until ctx is done. It then closes its
// sockets, ends every round under way with ErrClosed, and returns nil. It may be called
// once.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running || e.closed {
		e.mu.Unlock()
		return errors.New("dnsping: Run called twice")
	}
	e.running = true
	e.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var done []*Round
	for {
		e.mu.Lock()
		now := time.Now()
		done = e.fire(ctx, now, done[:0])
		wait := time.Hour
		if len(e.events) > 0 {
			wait = e.events[0].at.Sub(now)
		}
		e.mu.Unlock()
		callDone(done)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			e.shutdown()
			return nil
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// shutdown ends every round under way and waits for the goroutines of the sockets and
// the TCP queries.
func (e *Engine) shutdown() {
	e.mu.Lock()
	e.closed = true
	var done []*Round
	for rs := range e.active {
		rs.over = true
		rs.r.Err = errors.Join(ErrClosed, rs.r.Err)
		done = append(done, rs.r)
	}
	clear(e.active)
	for _, g := range e.groups {
		for _, s := range g {
			s.conn.Close()
		}
	}
	e.events, e.tcpWait = nil, nil
	e.mu.Unlock()
	e.readers.Wait()
	e.tcp.Wait()
	callDone(done)
}

func callDone(rounds []*Round) {
	for _, r := range rounds {
		r.Done(r)
	}
}

// fire processes the events due at now and appends the rounds it completes to done.
// e.mu is held.
func (e *Engine) fire(ctx context.Context, now time.Time, done []*Round) []*Round {
	for len(e.events) > 0 && !e.events[0].at.After(now) {
		ev := heap.Pop(&e.events).(event)
		switch ev.kind {
		case eventSend:
			done = e.send(ctx, ev.rs, done)
		case eventDeadline:
			if q := ev.q; q.state == queryWaiting || q.state == queryFlying {
				e.stats.TimedOut++
				done = e.lost(q, done)
				if q.sock != nil {
					q.state = queryExpired
					heap.Push(&e.events, event{at: q.deadline.Add(lateWindow), kind: eventForget, q: q})
				}
			}
		case eventForget:
			if q := ev.q; q.state == queryExpired {
				delete(q.sock.inFlight, flightKey{q.id, q.rs.r.Server})
				q.state = queryDone
			}
		}
	}
	return done
}

// send sends the next query of rs and schedules the one after. e.mu is held.
func (e *Engine) send(ctx context.Context, rs *roundState, done []*Round) []*Round {
	if rs.over {
		return done
	}
	r := rs.r
	q := &query{rs: rs, ping: rs.next}
	rs.next++
	if rs.next < r.Count {
		heap.Push(&e.events, event{at: rs.start.Add(time.Duration(rs.next) * r.Gap), kind: eventSend, rs: rs})
	}
	if r.TCP {
		q.state = queryWaiting
		q.id = uint16(rand.Uint32())
		q.deadline = time.Now().Add(r.Timeout)
		heap.Push(&e.events, event{at: q.deadline, kind: eventDeadline, q: q})
		if e.tcpActive < e.maxTCP {
			e.startTCP(ctx, q)
		} else {
			e.stats.Queued++
			e.tcpWait = append(e.tcpWait, q)
		}
		return done
	}
	s, id, err := e.pick(rs)
	if err == nil {
		q.sock, q.id = s, id
		e.sendBuf = append(e.sendBuf[:0], rs.wire...)
		binary.BigEndian.PutUint16(e.sendBuf, id)
		q.sent = time.Now()
		_, err = s.conn.WriteToUDPAddrPort(e.sendBuf, r.Server)
	}
	if err != nil {
		e.stats.SendErrors++
		if r.Err == nil {
			r.Err = fmt.Errorf("dnsping: sending to %v: %w", r.Server, err)
		}
		return e.lost(q, done)
	}
	e.stats.Sent++
	q.state = queryFlying
	q.deadline = q.sent.Add(r.Timeout)
	s.inFlight[flightKey{id, r.Server}] = q
	heap.Push(&e.events, event{at: q.deadline.Add(grace), kind: eventDeadline, q: q})
	return done
}

// pick chooses a socket of rs's group and an id that no query in flight on it to the
// same server has. e.mu is held.
func (e *Engine) pick(rs *roundState) (*udpSock, uint16, error) {
	g := e.groups[rs.key]
	for range len(g) * maxIDTries {
		s := g[e.cursor%len(g)]
		e.cursor++
		id := uint16(rand.Uint32())
		if _, busy := s.inFlight[flightKey{id, rs.r.Server}]; !busy {
			return s, id, nil
		}
	}
	return nil, 0, errors.New("no free query id: too many queries in flight to this server")
}

// lost ends q as lost (its RTT stays Lost). e.mu is held.
func (e *Engine) lost(q *query, done []*Round) []*Round {
	q.state = queryDone
	return e.end(q.rs, done)
}

// answered ends q with its answer's RTT and response code. e.mu is held.
func (e *Engine) answered(q *query, rtt time.Duration, rcode int, done []*Round) []*Round {
	q.state = queryDone
	if q.rs.r.failure(rcode) {
		e.stats.Failed++
	} else {
		e.stats.Received++
		q.rs.r.RTTs[q.ping] = rtt
	}
	return e.end(q.rs, done)
}

// end counts one query of rs as over, and completes the round after its last. e.mu is
// held.
func (e *Engine) end(rs *roundState, done []*Round) []*Round {
	if rs.over {
		return done
	}
	rs.pending--
	if rs.pending > 0 || rs.next < rs.r.Count {
		return done
	}
	rs.over = true
	delete(e.active, rs)
	return append(done, rs.r)
}

// read reads answers from one UDP socket until it is closed.
func (e *Engine) read(s *udpSock) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
	var msg dns.Msg
	var done []*Round
	for {
		n, oobn, _, from, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors of earlier sends (port unreachable) surface here on Linux; the
			// query they concern times out.
			time.Sleep(receiveErrorPause)
			continue
		}
		at, ok := kernelTime(oob[:oobn])
		if !ok {
			at = now
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		valid := msg.Unpack(buf[:n]) == nil
		e.mu.Lock()
		done = e.udpAnswer(s, from, buf[:n], &msg, valid, at, now, done[:0])
		e.mu.Unlock()
		callDone(done)
	}
}

// udpAnswer matches a datagram from a server to its query. e.mu is held.
func (e *Engine) udpAnswer(s *udpSock, from netip.AddrPort, data []byte, msg *dns.Msg, valid bool, at, now time.Time, done []*Round) []*Round {
	if len(data) < 2 {
		e.stats.Foreign++
		return done
	}
	q := s.inFlight[flightKey{binary.BigEndian.Uint16(data), from}]
	switch {
	case q == nil:
		e.stats.Foreign++
		return done
	case !valid || !matches(msg, q.rs.q):
		e.stats.Mismatched++
		return done
	}
	rtt := at.Sub(q.sent)
	if rtt < 0 {
		rtt = now.Sub(q.sent) // the wall clock stepped back: the monotonic clock's time
	}
	if q.state == queryExpired || rtt > q.rs.r.Timeout {
		e.stats.Late++
		return done
	}
	delete(s.inFlight, flightKey{q.id, from})
	return e.answered(q, rtt, msg.Rcode, done)
}

// matches reports whether msg answers question q.
func matches(msg *dns.Msg, q dns.Question) bool {
	if !msg.Response || msg.Opcode != dns.OpcodeQuery || len(msg.Question) != 1 {
		return false
	}
	a := msg.Question[0]
	return a.Qtype == q.Qtype && a.Qclass == q.Qclass && strings.EqualFold(a.Name, q.Name)
}

// kernelTime returns the receive time the kernel put in oob, if it did.
func kernelTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS &&
			len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(int64(ts.Sec), int64(ts.Nsec)), true
		}
	}
	return time.Time{}, false
}
