package pinger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	tick              = time.Millisecond // resolution of sends and deadlines
	wheelSize         = 1024             // buckets: one turn is about 1 s
	blockSlots        = 1 << 16          // one block per ICMP identifier: the sequence space
	idsPerRawSocket   = 64               // identifiers reserved per raw socket
	maxBlocksPerGroup = 64               // 4 Mi probes in flight per socket group
	defaultRecvBuffer = 4 << 20
	receiveErrorPause = 10 * time.Millisecond // keeps a persistent socket error from spinning
	// replyPoll bounds how long a reply waits to be read while probes are in flight and
	// replies are read in batches (see Options.PromptReplies). Its RTT comes from the
	// kernel's receive timestamp and does not depend on it; what waits is the round's Done.
	// Shorter than any sensible timeout, so that answered probes are read before their
	// deadlines and cancel them.
	replyPoll  = 100 * time.Millisecond
	noDeadline = math.MaxInt64
)

// slotState is the life of one in-flight probe slot.
type slotState uint8

const (
	slotFree     slotState = iota // never used
	slotInFlight                  // sent, waiting for its reply or deadline
	slotAnswered                  // a valid reply arrived in time
	slotExpired                   // timed out or answered by an ICMP error
)

// slot remembers one probe from its send until the slot is reused, so that duplicate and
// late replies can be told apart from foreign ones.
type slot struct {
	serial   uint64
	sentNs   int64 // wall clock, the same clock as kernel receive timestamps
	sentMono int64 // monotonic, since Engine.epoch: bounds the RTT if the wall clock steps
	round    int32
	ping     int32
	state    slotState
}

// block is the sequence space of one ICMP identifier on one socket: slot i is sequence i.
type block struct {
	sock  *socket
	id    uint16
	slots []slot
}

// group is the set of sockets that serve one socketKey. Probes take its slots round-robin,
// so a slot is reused as late as possible; when the next slot is still in flight the group
// gains a block (a new identifier, or a new datagram socket), so the 16-bit sequence
// space never limits the probe rate.
type group struct {
	key      socketKey
	socks    []*socket
	blocks   []int32 // indices into Engine.blocks
	cursor   int
	rounds   int  // rounds submitted on the group and not yet complete
	released bool // Release was called for its key: it goes when rounds drops to 0
}

// roundState is the engine's bookkeeping for one submitted round.
type roundState struct {
	r         *Round
	g         *group
	gen       uint64 // changes whenever the entry is freed, invalidating its wheel events
	target    [16]byte
	zone      uint32
	startNs   int64 // monotonic, since Engine.epoch
	gapNs     int64
	timeoutNs int64
	size      int
	count     int32
	next      int32 // next ping to send
	pending   int32 // pings not yet answered or lost
}

// Engine sends and matches ICMP echo requests for any number of rounds. It is safe for
// concurrent use.
type Engine struct {
	opts   Options
	log    *slog.Logger
	epoch  time.Time
	key    macKey // authenticates the probes (mac.go)
	idBase uint16 // a raw socket uses the identifiers from idBase + r*idsPerRawSocket for its range r
	wake   chan struct{}
	// stall, if set, is called by each receive goroutine whenever its read returns, before
	// it does anything with what it read, and with nil by the clock goroutine whenever it
	// wakes up: at each wake-up of the engine. Tests make it block to stand for a stop of
	// the process (SIGSTOP, a paused VM, a long GC pause) at that moment, or count.
	stall func(s *socket)
	// openIn, if set, runs the function that opens each socket. Tests set it to a network
	// namespace's Do, so that every socket is opened inside that namespace: also those a
	// group adds from the engine's own goroutines when it runs out of identifiers.
	openIn func(open func() error) error

	mu         sync.Mutex
	running    bool
	closed     bool
	rawDenied  error // why raw sockets cannot be opened, once known
	loggedMode [2]bool
	groups     map[socketKey]*group
	socks      []*socket                          // the open sockets
	retired    []*socket                          // sockets of released groups, which Run closes
	rawRanges  [blockSlots / idsPerRawSocket]bool // the identifier ranges of open raw sockets
	nextRange  int                                // where the search for a free range starts
	blocks     []*block                           // nil where a released group's block was
	freeBlocks []int32                            // indices of the nil entries of blocks
	rounds     []roundState
	free       []int32
	wheel      *wheel
	armed      int64 // tick at which the clock goroutine wakes up, or noDeadline
	flying     int   // probes sent and not yet answered or lost
	serial     uint64
	stats      Stats
	drops      uint64 // kernel drops of the closed sockets
}

// New returns an engine. Sockets are opened when the first round that needs them is
// submitted; rounds make progress while Run runs.
func New(opts Options) *Engine {
	if opts.RecvBuffer <= 0 {
		opts.RecvBuffer = defaultRecvBuffer
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Engine{
		opts:   opts,
		log:    log,
		epoch:  time.Now(),
		key:    newMACKey(),
		idBase: uint16(rand.IntN(blockSlots/idsPerRawSocket)) * idsPerRawSocket,
		wake:   make(chan struct{}, 1),
		groups: make(map[socketKey]*group),
		armed:  noDeadline,
	}
	e.wheel = newWheel(wheelSize, 0, e.live)
	return e
}

// Open opens the socket that rounds of one address family with the given source and
// interface (zero and empty for the kernel's choice) use, ahead of the first such round:
// a daemon opens them before it gives up the privilege to open raw sockets.
func (e *Engine) Open(v6 bool, source netip.Addr, iface string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	g, err := e.groupFor(socketKey{v6: v6, source: source.Unmap(), iface: iface})
	if err != nil {
		return err
	}
	g.released = false
	return nil
}

// Submit validates a round and schedules its pings. Done(r) is called once the round is
// complete. The sockets the round needs are opened here, so an error names what is
// missing (privilege, source address, interface, or file descriptors: see Release).
func (e *Engine) Submit(r *Round) error {
	if err := r.check(); err != nil {
		return err
	}
	target := r.Target.Unmap()
	key := socketKey{v6: target.Is6(), source: r.Source.Unmap(), iface: r.Interface, tos: r.TOS}
	var zone uint32
	if z := target.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return fmt.Errorf("pinger: target %s: %w", r.Target, err)
		}
		zone = uint32(ifi.Index)
	}
	size := r.Size
	if size == 0 {
		size = DefaultSize
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

	now := time.Now()
	start := now
	if r.Start.After(now) {
		start = r.Start
	}

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	g, err := e.groupFor(key)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	// A round for a released key that is still open keeps it.
	g.released = false
	g.rounds++
	idx := e.allocRound()
	rs := &e.rounds[idx]
	*rs = roundState{
		r: r, g: g, gen: rs.gen,
		target:    target.As16(),
		zone:      zone,
		startNs:   int64(start.Sub(e.epoch)),
		gapNs:     int64(r.Gap),
		timeoutNs: int64(r.Timeout),
		size:      size,
		count:     int32(r.Count),
		pending:   int32(r.Count),
	}
	at := ticksCeil(rs.startNs)
	e.wheel.add(event{at: at, kind: eventSend, idx: idx, check: rs.gen})
	e.arm(at)
	e.mu.Unlock()
	return nil
}

// check validates the request fields of a round.
func (r *Round) check() error {
	switch {
	case !r.Target.IsValid():
		return errors.New("pinger: round has no target address")
	case r.Target.IsUnspecified() || r.Target.IsMulticast():
		return fmt.Errorf("pinger: cannot ping %s: not a unicast address", r.Target)
	case r.Count < 1 || r.Count > MaxCount:
		return fmt.Errorf("pinger: %s: count %d out of range 1..%d", r.Target, r.Count, MaxCount)
	case r.Size != 0 && (r.Size < MinSize || r.Size > MaxSize):
		return fmt.Errorf("pinger: %s: payload size %d out of range %d..%d", r.Target, r.Size, MinSize, MaxSize)
	case r.Gap < 0:
		return fmt.Errorf("pinger: %s: negative gap %v", r.Target, r.Gap)
	case r.Timeout <= 0:
		return fmt.Errorf("pinger: %s: timeout %v must be positive", r.Target, r.Timeout)
	case r.Source.IsValid() && r.Source.Unmap().Is4() != r.Target.Unmap().Is4():
		return fmt.Errorf("pinger: source %s and target %s are of different address families", r.Source, r.Target)
	case r.Done == nil:
		return fmt.Errorf("pinger: %s: round has no Done function", r.Target)
	}
	return nil
}

// Run drives the engine until ctx is done. Its own goroutine is the clock: it sleeps until
// the next tick with something due, sends the pings due then, reads the replies queued,
// expires deadlines, and closes the sockets that Release gives back; one wake-up does it
// all, with no hand-off between goroutines. Sockets whose replies are read at once (see
// Options.PromptReplies) have a receive goroutine each. When ctx is done it closes the
// sockets and completes every pending round, its unanswered and unsent pings Lost and its
// Err an error for which errors.Is(err, ErrClosed) holds; a send error the round had
// before is wrapped in it too.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running || e.closed {
		e.mu.Unlock()
		return errors.New("pinger: Run called twice")
	}
	e.running = true
	e.mu.Unlock()

	var wg sync.WaitGroup
	var c clockWork
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		e.mu.Lock()
		for _, s := range e.socks {
			if s.prompt && !s.started {
				s.started = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					e.receive(s)
				}()
			}
		}
		retired := e.retired
		e.retired = nil
		e.mu.Unlock()
		e.closeSockets(retired)
		if wait, ok := e.tick(&c); ok {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			e.shutdown(&wg)
			return nil
		case <-e.wake:
		case <-timer.C:
		}
		if e.stall != nil {
			e.stall(nil)
		}
	}
}

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.KernelDrops = e.drops
	if !e.closed {
		for _, s := range e.socks {
			if n, err := s.drops(); err == nil {
				st.KernelDrops += uint64(n)
			}
		}
	}
	return st
}

// Socket describes an open ICMP socket of the engine.
type Socket struct {
	IPv6 bool
	Mode Mode // ModeRaw or ModeDatagram
}

// Sockets lists the engine's open sockets.
func (e *Engine) Sockets() []Socket {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := make([]Socket, 0, len(e.socks))
	for _, s := range e.socks {
		m := ModeRaw
		if s.datagram {
			m = ModeDatagram
		}
		list = append(list, Socket{IPv6: s.v6, Mode: m})
	}
	return list
}

// arm makes the clock goroutine wake up by tick at. Called with e.mu held, which orders
// it against the clock goroutine choosing its next wake-up.
func (e *Engine) arm(at int64) {
	if at < e.armed {
		e.armed = at
		e.poke()
	}
}

// live reports whether a timer wheel event is still to be acted on. Called with e.mu held.
func (e *Engine) live(ev event) bool {
	if ev.kind == eventDeadline {
		return e.inFlight(ev.idx, ev.check) != nil
	}
	rs := &e.rounds[ev.idx]
	return rs.r != nil && rs.gen == ev.check
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func deliver(done []*Round) {
	for i, r := range done {
		done[i] = nil
		r.Done(r)
	}
}

// ticksCeil converts a monotonic time to the first tick at or after it, so that nothing
// is sent early and no deadline fires early.
func ticksCeil(ns int64) int64 {
	return (ns + int64(tick) - 1) / int64(tick)
}

// clockWork is what the clock goroutine carries from one wake-up to the next, so that a
// wake-up allocates nothing.
type clockWork struct {
	done     []*Round
	expiring []event   // deadlines that have passed, of probes still in flight
	draining []*socket // the sockets to read before they are expired
	polled   []*socket // the sockets whose replies the clock goroutine reads
	pollfds  []unix.PollFd
	sending  []*socket // the sockets with queued sends
	noWait   unix.Timespec
}

// tick is one wake-up of the clock goroutine: it sends the pings that are due, reads the
// replies queued on the sockets whose replies are read in batches, expires the deadlines
// that have passed, and returns how long to sleep until the next tick with something due,
// or false when nothing is. Reading after sending picks up the replies of fast targets
// without a wake-up of their own. While probes are in flight it wakes at least every
// replyPoll, to read their replies. A probe whose deadline has passed is expired only after
// its socket has been read to the end, and a reply is judged by its kernel receive
// timestamp: so when the process was stopped for a while (SIGSTOP, a paused VM, a long GC
// pause), the replies that arrived in time still count, however late they are read.
func (e *Engine) tick(c *clockWork) (time.Duration, bool) {
	e.mu.Lock()
	e.fire(c)
	for _, s := range e.socks {
		if !s.prompt && e.flying > 0 && !slices.Contains(c.draining, s) {
			c.polled = append(c.polled, s)
		}
	}
	if len(c.polled) > 0 || len(c.draining) > 0 {
		e.mu.Unlock()
		c.done = e.readPolled(c)
		for i, s := range c.draining {
			c.done = e.drain(s, c.done)
			c.draining[i] = nil
		}
		c.draining = c.draining[:0]
		e.mu.Lock()
		for _, ev := range c.expiring {
			c.done = e.expire(ev.idx, ev.check, c.done)
		}
		c.expiring = c.expiring[:0]
	}
	next, pending := e.wheel.nextTick()
	nowNs := int64(time.Since(e.epoch))
	if e.flying > 0 && e.batched() {
		poll := ticksCeil(nowNs + int64(replyPoll))
		if !pending || poll < next {
			next, pending = poll, true
		}
	}
	e.armed = noDeadline
	if pending {
		e.armed = next
	}
	e.mu.Unlock()
	deliver(c.done)
	c.done = c.done[:0]
	return time.Duration(next*int64(tick) - nowNs), pending
}

// batched reports whether some socket's replies are read by the clock goroutine. Called
// with e.mu held.
func (e *Engine) batched() bool {
	for _, s := range e.socks {
		if !s.prompt {
			return true
		}
	}
	return false
}

// readPolled reads the sockets in c.polled that have something queued, which one poll
// call tells, so that no receive call comes back empty.
func (e *Engine) readPolled(c *clockWork) []*Round {
	defer func() {
		clear(c.polled)
		c.polled = c.polled[:0]
	}()
	if len(c.polled) == 0 {
		return c.done
	}
	c.pollfds = c.pollfds[:0]
	for _, s := range c.polled {
		c.pollfds = append(c.pollfds, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
	}
	for {
		// A raw system call: a poll that cannot block need not tell the runtime, whose
		// monitor thread would otherwise wake up for it when the process is idle.
		_, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&c.pollfds[0])),
			uintptr(len(c.pollfds)), uintptr(unsafe.Pointer(&c.noWait)), 0, 0, 0)
		if errno == 0 {
			break
		}
		if errno != unix.EINTR {
			return c.done
		}
	}
	for i, s := range c.polled {
		if c.pollfds[i].Revents != 0 {
			c.done = e.drain(s, c.done)
		}
	}
	return c.done
}

// fire sends the pings that are due and collects in c the deadlines that have passed of
// probes still in flight, with their sockets, for tick to expire. Once the engine is
// stopping it does nothing: the sockets are being closed.
func (e *Engine) fire(c *clockWork) {
	if e.closed {
		return
	}
	now := int64(time.Since(e.epoch)) / int64(tick)
	for _, ev := range e.wheel.advance(now) {
		switch ev.kind {
		case eventSend:
			if rs := &e.rounds[ev.idx]; rs.r != nil && rs.gen == ev.check {
				e.sendNext(ev.idx, c)
			}
		case eventDeadline:
			if s := e.inFlight(ev.idx, ev.check); s != nil {
				c.expiring = append(c.expiring, ev)
				if !slices.Contains(c.draining, s) {
					c.draining = append(c.draining, s)
				}
			}
		}
	}
	for i, s := range c.sending {
		c.done = e.flush(s, c.done)
		c.sending[i] = nil
	}
	c.sending = c.sending[:0]
}

// inFlight returns the socket of the probe in slot si with the given serial if it is
// still in flight, and nil if it has been answered or lost, or its group released.
func (e *Engine) inFlight(si int32, serial uint64) *socket {
	b := e.blocks[si>>16]
	if b == nil {
		return nil
	}
	if s := &b.slots[si&0xffff]; s.state != slotInFlight || s.serial != serial {
		return nil
	}
	return b.sock
}

// sendNext queues the next ping of round idx on its socket and schedules the one after
// it. The pings due in one tick go out together when fire flushes the queues.
func (e *Engine) sendNext(idx int32, c *clockWork) {
	rs := &e.rounds[idx]
	ping := rs.next
	rs.next++
	if rs.next < rs.count {
		at := ticksCeil(rs.startNs + int64(rs.next)*rs.gapNs)
		e.wheel.add(event{at: at, kind: eventSend, idx: idx, check: rs.gen})
	}
	si, err := e.allocSlot(rs.g)
	if err != nil {
		c.done = e.sendFailed(idx, ping, err, c.done)
		return
	}
	b := e.blocks[si>>16]
	sock := b.sock
	if sock.queueFull() {
		c.done = e.flush(sock, c.done)
	} else if len(sock.outSlots) == 0 {
		c.sending = append(c.sending, sock)
	}
	e.serial++
	head := sock.queue(si, rs.size, &rs.target, rs.zone)
	writeEcho(head, sock.filler[MinSize:rs.size], sock.v6, b.id, uint16(si), e.serial,
		e.key.probeMAC(e.serial, b.id, uint16(si)))
	// In flight from now on, so that allocSlot does not hand the slot out again; the
	// send time is set when the queue is flushed.
	b.slots[si&0xffff] = slot{serial: e.serial, round: idx, ping: ping, state: slotInFlight}
}

// flush sends the queue of socket s and starts the clock of each probe sent: its send
// time, and its deadline on the timer wheel. A probe that could not be sent is lost. A
// probe is timed at the start of its system call, which it does not leave before: its
// RTT is never shorter than the real one, and longer only by the sending of the probes
// ahead of it in the same call (see sendChunk).
func (e *Engine) flush(s *socket, done []*Round) []*Round {
	if len(s.outSlots) == 0 {
		return done
	}
	s.flush()
	for i, si := range s.outSlots {
		sl := &e.blocks[si>>16].slots[si&0xffff]
		if err := s.outErrs[i]; err != 0 {
			sl.state = slotExpired // never sent: a reply to it cannot be genuine
			done = e.sendFailed(sl.round, sl.ping, err, done)
			continue
		}
		sl.sentNs, sl.sentMono = s.outSent[i].UnixNano(), int64(s.outSent[i].Sub(e.epoch))
		e.stats.Sent++
		e.flying++
		deadline := ticksCeil(sl.sentMono + e.rounds[sl.round].timeoutNs)
		e.wheel.add(event{at: deadline, kind: eventDeadline, idx: si, check: sl.serial})
	}
	s.outSlots = s.outSlots[:0]
	return done
}

func (e *Engine) sendFailed(idx, ping int32, err error, done []*Round) []*Round {
	e.stats.SendErrors++
	rs := &e.rounds[idx]
	if rs.r.Err == nil {
		rs.r.Err = fmt.Errorf("pinger: sending to %s: %w", rs.r.Target, err)
	}
	return e.settle(idx, ping, Lost, done)
}

// expire ends the probe in slot si as lost, unless it was answered meanwhile.
func (e *Engine) expire(si int32, serial uint64, done []*Round) []*Round {
	if e.inFlight(si, serial) == nil {
		return done
	}
	s := &e.blocks[si>>16].slots[si&0xffff]
	s.state = slotExpired
	e.flying--
	e.stats.TimedOut++
	return e.settle(s.round, s.ping, Lost, done)
}

// settle records the outcome of one ping, its RTT or Lost, and completes the round after
// its last one.
func (e *Engine) settle(idx, ping int32, rtt time.Duration, done []*Round) []*Round {
	rs := &e.rounds[idx]
	rs.r.RTTs[ping] = rtt
	rs.pending--
	if rs.pending > 0 {
		return done
	}
	done = append(done, rs.r)
	g := rs.g
	rs.r, rs.g = nil, nil
	rs.gen++
	e.free = append(e.free, idx)
	g.rounds--
	if g.released && g.rounds == 0 {
		e.retire(g)
	}
	return done
}

func (e *Engine) allocRound() int32 {
	if n := len(e.free); n > 0 {
		idx := e.free[n-1]
		e.free = e.free[:n-1]
		return idx
	}
	e.rounds = append(e.rounds, roundState{})
	return int32(len(e.rounds) - 1)
}

// allocSlot takes the group's next slot, growing the group when that slot is still in flight.
func (e *Engine) allocSlot(g *group) (int32, error) {
	pos := g.cursor
	if e.slotAt(g, pos).state == slotInFlight {
		if len(g.blocks) >= maxBlocksPerGroup {
			return 0, fmt.Errorf("all %d probe slots in flight", len(g.blocks)*blockSlots)
		}
		if err := e.addBlock(g); err != nil {
			return 0, err
		}
		pos = (len(g.blocks) - 1) * blockSlots
	}
	g.cursor = (pos + 1) % (len(g.blocks) * blockSlots)
	return g.blocks[pos/blockSlots]<<16 | int32(pos%blockSlots), nil
}

func (e *Engine) slotAt(g *group, pos int) *slot {
	return &e.blocks[g.blocks[pos/blockSlots]].slots[pos%blockSlots]
}

func (e *Engine) groupFor(key socketKey) (*group, error) {
	if g := e.groups[key]; g != nil {
		return g, nil
	}
	g := &group{key: key}
	if err := e.addBlock(g); err != nil {
		return nil, err
	}
	e.groups[key] = g
	return g, nil
}

// addBlock gives the group another identifier: the next one of its raw socket's range, or
// a new socket when the range is used up or the sockets are datagram sockets.
func (e *Engine) addBlock(g *group) error {
	var s *socket
	if n := len(g.socks); n > 0 && !g.socks[n-1].datagram && len(g.socks[n-1].blocks) < idsPerRawSocket {
		s = g.socks[n-1]
	} else {
		var err error
		if s, err = e.open(g.key); err != nil {
			return err
		}
		g.socks = append(g.socks, s)
	}
	id := s.id
	if !s.datagram {
		id = s.idBase + uint16(len(s.blocks))
	}
	b := &block{sock: s, id: id, slots: make([]slot, blockSlots)}
	var bi int32
	if n := len(e.freeBlocks); n > 0 {
		bi = e.freeBlocks[n-1]
		e.freeBlocks = e.freeBlocks[:n-1]
		e.blocks[bi] = b
	} else {
		bi = int32(len(e.blocks))
		e.blocks = append(e.blocks, b)
	}
	s.blocks = append(s.blocks, bi)
	g.blocks = append(g.blocks, bi)
	return nil
}

// open opens a socket for key: raw unless the options or an earlier refusal say
// otherwise, falling back to a datagram socket in ModeAuto. It refuses when the socket
// would eat into the file descriptors kept for the daemon's other files.
func (e *Engine) open(key socketKey) (*socket, error) {
	if err := checkDescriptors(key); err != nil {
		return nil, err
	}
	fam := "ipv4"
	if key.v6 {
		fam = "ipv6"
	}
	if e.opts.Mode != ModeDatagram && e.rawDenied == nil {
		r, err := e.takeRange()
		if err != nil {
			return nil, err
		}
		s, err := e.newSocket(key, false, e.idBase+uint16(r)*idsPerRawSocket)
		if err == nil {
			s.idRange = r
			e.added(s, fam, "raw")
			return s, nil
		}
		e.rawRanges[r] = false
		if e.opts.Mode == ModeRaw || !permissionDenied(err) {
			return nil, fmt.Errorf("pinger: opening raw %s ICMP socket: %w", fam, err)
		}
		e.rawDenied = err
		e.log.Info("raw ICMP sockets not permitted; falling back to unprivileged datagram sockets", "reason", err)
	}
	s, err := e.newSocket(key, true, 0)
	if err != nil {
		if e.rawDenied != nil && permissionDenied(err) {
			return nil, fmt.Errorf("pinger: %w", errNoSocket(key.v6, e.rawDenied, err))
		}
		return nil, fmt.Errorf("pinger: opening datagram %s ICMP socket: %w", fam, err)
	}
	e.added(s, fam, "datagram")
	return s, nil
}

// newSocket opens one socket with the engine's receive buffer size, through e.openIn if
// it is set.
func (e *Engine) newSocket(key socketKey, datagram bool, idBase uint16) (*socket, error) {
	if e.openIn == nil {
		return openSocket(key, datagram, idBase, e.opts.RecvBuffer)
	}
	var s *socket
	err := e.openIn(func() error {
		var err error
		s, err = openSocket(key, datagram, idBase, e.opts.RecvBuffer)
		return err
	})
	return s, err
}

func (e *Engine) added(s *socket, fam, mode string) {
	// Without kernel timestamps an RTT ends when its reply is read.
	s.prompt = e.opts.PromptReplies || s.timestampErr != nil
	e.socks = append(e.socks, s)
	fi := 0
	if s.v6 {
		fi = 1
	}
	if !e.loggedMode[fi] {
		e.loggedMode[fi] = true
		e.log.Info("ICMP socket opened", "mode", mode, "family", fam)
		if s.timestampErr != nil {
			e.log.Warn("no kernel receive timestamps; RTTs are measured when replies are read",
				"family", fam, "reason", s.timestampErr)
		}
	}
	e.log.Debug("ICMP socket", "mode", mode, "family", fam, "source", s.key.source,
		"interface", s.key.iface, "tos", s.key.tos, "id", s.id, "id_base", s.idBase)
	e.poke()
}

// receive reads a socket whose replies are read at once, until it is closed.
func (e *Engine) receive(s *socket) {
	var done []*Round
	warned := false
	for {
		err := s.readBatch()
		if e.stall != nil {
			e.stall(s)
		}
		if err != nil {
			if s.closed.Load() {
				return
			}
			e.receiveError(err, &warned)
			continue
		}
		// s.readMu is held: a drain waits until the batch is handled.
		if s.readErr != nil {
			err := s.readErr
			if s.datagram {
				// A pending ICMP error is reported as the socket's error; the details
				// wait in the error queue.
				done = e.drainErrors(s, done)
			}
			s.readMu.Unlock()
			deliver(done)
			done = done[:0]
			if !s.datagram {
				e.receiveError(err, &warned)
			}
			continue
		}
		done = e.handleBatch(s, s.nread, done)
		s.readMu.Unlock()
		deliver(done)
		done = done[:0]
	}
}

// receiveError logs the first error a receive goroutine meets and pauses, which keeps a
// persistent error from spinning.
func (e *Engine) receiveError(err error, warned *bool) {
	if !*warned {
		*warned = true
		e.log.Warn("ICMP receive error", "error", err)
	}
	time.Sleep(receiveErrorPause)
}

// handleBatch matches the n messages of a batch just read from s; s.readMu is held.
func (e *Engine) handleBatch(s *socket, n int, done []*Round) []*Round {
	read := time.Now()
	e.mu.Lock()
	for i := range n {
		done = e.handle(s, i, read, done)
	}
	e.mu.Unlock()
	if s.datagram {
		// A send may have taken the socket's error report, leaving its details
		// queued without a wake-up of their own.
		done = e.drainErrors(s, done)
	}
	return done
}

// drain reads and handles, from the clock goroutine, everything that socket s holds,
// before deadlines of probes sent on it are expired. Taking s.readMu first, it also waits
// for a batch that the socket's own goroutine has read but not yet handled.
func (e *Engine) drain(s *socket, done []*Round) []*Round {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		full, err := s.readNow()
		if err != nil {
			break // closed
		}
		if s.readErr != nil {
			if !s.datagram || errors.Is(s.readErr, unix.EAGAIN) {
				break
			}
			// The socket's error report; its details are in the error queue.
			done = e.drainErrors(s, done)
			continue
		}
		done = e.handleBatch(s, s.nread, done)
		if !full {
			break
		}
	}
	return done
}

// handle matches received message i of a batch.
func (e *Engine) handle(s *socket, i int, read time.Time, done []*Round) []*Round {
	msg, full := s.message(i)
	rxNs, _ := s.control(i)
	if rxNs == 0 {
		rxNs = read.UnixNano()
	}
	if !s.v6 && !s.datagram {
		if len(msg) < 20 {
			return done
		}
		ihl := int(msg[0]&0x0f) * 4
		if len(msg) < ihl {
			return done
		}
		msg = msg[ihl:]
		if full >= 0 {
			full -= ihl
		}
	}
	payloadLen := -1
	if full >= 0 {
		payloadLen = full - icmpHeaderLen
	}
	var p packet
	parseICMP(msg, s.v6, &p)
	switch p.kind {
	case kindReply:
		return e.reply(s, &p, payloadLen, s.source(i), rxNs, int64(read.Sub(e.epoch)), done)
	case kindError:
		return e.icmpError(s, &p, done)
	}
	return done
}

// blockFor finds the block of identifier id on socket s.
func (e *Engine) blockFor(s *socket, id uint16) *block {
	if len(s.blocks) == 0 {
		return nil // released
	}
	if s.datagram {
		// The kernel delivers a datagram socket only the replies with its identifier.
		return e.blocks[s.blocks[0]]
	}
	if off := int(id - s.idBase); off < len(s.blocks) {
		return e.blocks[s.blocks[off]]
	}
	return nil
}

// reply attributes an echo reply to its probe, or counts why it cannot be. payloadLen is
// the reply's full payload length, or -1 when unknown.
func (e *Engine) reply(s *socket, p *packet, payloadLen int, from [16]byte, rxNs, readMono int64, done []*Round) []*Round {
	b := e.blockFor(s, p.id)
	if b == nil || !e.genuine(p) {
		e.stats.Foreign++
		return done
	}
	sl := &b.slots[p.seq]
	if binary.BigEndian.Uint64(p.payload[payloadSerialOffset:]) != sl.serial {
		e.stats.Late++ // a genuine reply to an earlier probe in the slot, which has been reused since
		return done
	}
	switch sl.state {
	case slotAnswered:
		e.stats.Duplicate++
		return done
	case slotExpired:
		e.stats.Late++
		return done
	}
	rs := &e.rounds[sl.round]
	if from != rs.target || (payloadLen >= 0 && payloadLen != rs.size) || !patternIntact(p.payload) {
		e.stats.Foreign++
		return done
	}
	rtt := roundTrip(rxNs-sl.sentNs, readMono-sl.sentMono)
	e.landed(sl, rs)
	if rtt > rs.timeoutNs {
		// Its deadline has passed but not been processed yet: late, like any other.
		sl.state = slotExpired
		e.stats.TimedOut++
		e.stats.Late++
		return e.settle(sl.round, sl.ping, Lost, done)
	}
	sl.state = slotAnswered
	e.stats.Received++
	return e.settle(sl.round, sl.ping, time.Duration(rtt), done)
}

// landed takes a probe that is still in flight off the count and its deadline off the
// timer wheel's, so that the deadline does not wake the clock goroutine for nothing.
func (e *Engine) landed(sl *slot, rs *roundState) {
	e.flying--
	e.wheel.cancel(ticksCeil(sl.sentMono + rs.timeoutNs))
}

// genuine reports whether the payload of an echo reply or of the request an ICMP error
// quotes starts with a serial and its MAC for the message's identifier and sequence
// number: that the message quotes a probe this engine sent.
func (e *Engine) genuine(p *packet) bool {
	if len(p.payload) < MinSize {
		return false
	}
	serial := binary.BigEndian.Uint64(p.payload[payloadSerialOffset:])
	return binary.BigEndian.Uint64(p.payload[payloadMACOffset:]) == e.key.probeMAC(serial, p.id, p.seq)
}

// roundTrip picks the RTT from the kernel's receive timestamp, unless the wall clock was
// stepped while the probe was out (as when a Raspberry Pi without a clock chip syncs after
// boot): the kernel's figure is then negative or longer than the monotonic time between
// the send and the read of the reply, which is the fallback.
func roundTrip(kernel, monotonic int64) int64 {
	if kernel < 0 || kernel > monotonic {
		return max(monotonic, 0)
	}
	return kernel
}

// icmpError ends the probe that an ICMP error quotes as lost, if the error shows that it
// quotes that probe: its serial with the MAC, sent to the probe's target. Errors about
// packets that are not our in-flight probes are ignored: raw sockets see every error on
// the host. Those that name one but do not show it are counted and ignored too, also
// when the router quoted too little of the probe (RFC 792 asks for 8 bytes of it, the
// ICMP header alone): the ping then waits for its reply or timeout, rather than be ended
// by an error that anybody who can guess an identifier and sequence number could send.
func (e *Engine) icmpError(s *socket, p *packet, done []*Round) []*Round {
	b := e.blockFor(s, p.id)
	if b == nil {
		return done
	}
	sl := &b.slots[p.seq]
	if sl.state != slotInFlight {
		return done
	}
	if p.quotedDst != e.rounds[sl.round].target || !e.genuine(p) ||
		binary.BigEndian.Uint64(p.payload[payloadSerialOffset:]) != sl.serial {
		e.stats.UnverifiedErrors++
		return done
	}
	e.landed(sl, &e.rounds[sl.round])
	sl.state = slotExpired
	e.stats.ICMPErrors++
	return e.settle(sl.round, sl.ping, Lost, done)
}

// drainErrors handles the ICMP errors queued on a datagram socket.
func (e *Engine) drainErrors(s *socket, done []*Round) []*Round {
	for s.nextError() {
		_, isICMP := s.control(0)
		if !isICMP {
			continue
		}
		msg, _ := s.message(0)
		var p packet
		parseEchoRequest(msg, s.v6, &p)
		if p.kind != kindError {
			continue
		}
		p.quotedDst = s.source(0)
		e.mu.Lock()
		done = e.icmpError(s, &p, done)
		e.mu.Unlock()
	}
	return done
}

// shutdown closes every socket, waits for the receivers, and completes pending rounds.
func (e *Engine) shutdown(wg *sync.WaitGroup) {
	e.mu.Lock()
	for _, s := range e.socks {
		if n, err := s.drops(); err == nil {
			e.drops += uint64(n)
		}
	}
	e.closed = true
	socks := append(e.retired, e.socks...)
	e.socks, e.retired = nil, nil
	e.mu.Unlock()
	e.closeSockets(socks)
	wg.Wait()

	e.mu.Lock()
	var done []*Round
	for i := range e.rounds {
		rs := &e.rounds[i]
		if rs.r == nil {
			continue
		}
		// ErrClosed comes first, whatever went wrong before: the caller must be able to
		// tell the pings that were never sent from lost ones.
		if rs.r.Err == nil {
			rs.r.Err = ErrClosed
		} else {
			rs.r.Err = fmt.Errorf("%w, after: %w", ErrClosed, rs.r.Err)
		}
		done = append(done, rs.r)
		rs.r, rs.g = nil, nil
	}
	e.mu.Unlock()
	deliver(done)
}
