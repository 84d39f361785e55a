package telegraf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MaxDatagram is the largest datagram Run sends unless a single line is longer.
// It stays below a 1500-byte path MTU minus the IPv6 (40) and UDP (8) headers,
// so datagrams are not fragmented.
const MaxDatagram = 1400

const (
	queueLen  = 4096        // points Send may queue ahead of Run
	warnEvery = time.Minute // a persistent problem is logged at most this often
)

// Stats counts what a Sink did since Dial.
type Stats struct {
	Points     uint64 // points Send queued
	Lines      uint64 // lines in datagrams sent
	Datagrams  uint64 // datagrams sent
	Dropped    uint64 // points Send dropped: queue full or Run returned
	SendErrors uint64 // datagrams the socket failed to send
}

// Sink sends points to one telegraf UDP listener. Send may be called from any
// goroutine; Run must be called exactly once and does the writing.
type Sink struct {
	conn  *net.UDPConn
	log   *slog.Logger
	queue chan []byte

	// mu makes closing the queue to new points atomic with respect to Send,
	// so that no point is queued after Run's final drain and silently lost.
	mu     sync.RWMutex
	closed bool

	points, lines, datagrams, dropped, sendErrors atomic.Uint64
	dropWarn, sendWarn, encodeWarn                rateLimit

	// The datagram being filled; only Run touches these.
	buf      []byte
	bufLines uint64
}

// Dial opens a UDP socket connected to address, given as HOST:PORT (an IPv6
// literal in brackets, as in "[::1]:8094"). A nil logger discards.
func Dial(address string, logger *slog.Logger) (*Sink, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		// SplitHostPort's *net.AddrError repeats the address; keep only the reason.
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return nil, fmt.Errorf("telegraf address %q: %s", address, ae.Err)
		}
		return nil, fmt.Errorf("telegraf address %q: %w", address, err)
	}
	if host == "" {
		return nil, fmt.Errorf("telegraf address %q: missing host", address)
	}
	// Only numeric ports: a service name would be looked up in /etc/services,
	// where telegraf's listener has no entry.
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, fmt.Errorf("telegraf address %q: port %q is not a number from 1 to 65535", address, port)
	}
	raddr, err := net.ResolveUDPAddr("udp", address)
	if err != nil {
		return nil, fmt.Errorf("telegraf address %q: %w", address, err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, fmt.Errorf("telegraf address %q: %w", address, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		conn:  conn,
		log:   logger.With("telegraf", address),
		queue: make(chan []byte, queueLen),
		buf:   make([]byte, 0, MaxDatagram),
	}, nil
}

// Send encodes p and queues it for Run. It never blocks: when the queue is
// full, or Run has returned, the point is dropped and counted. A point that
// AppendLines rejects is only logged: it is a configuration problem, not load.
func (s *Sink) Send(p Point) {
	b, err := AppendLines(nil, p)
	if err != nil {
		if s.encodeWarn.allow() {
			s.log.Warn("cannot encode point for telegraf", "err", err)
		}
		return
	}
	s.mu.RLock()
	closed, queued := s.closed, false
	if !closed {
		select {
		case s.queue <- b:
			queued = true
		default:
		}
	}
	s.mu.RUnlock()
	if queued {
		s.points.Add(1)
		return
	}
	dropped := s.dropped.Add(1)
	if s.dropWarn.allow() {
		reason := "queue full"
		if closed {
			reason = "sink stopped"
		}
		s.log.Warn("dropping points for telegraf", "reason", reason, "dropped", dropped)
	}
}

// Run writes queued points to the socket, packing whole lines into datagrams
// of at most MaxDatagram bytes. A partial datagram goes out as soon as the
// queue is empty, so points are never held back waiting for more. Send errors
// are counted and logged, never fatal. When ctx is done, Run sends what is
// already queued, closes the socket and returns nil.
func (s *Sink) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return s.shutdown()
		case b := <-s.queue:
			s.pack(b)
			continue
		default:
		}
		s.flush()
		select {
		case <-ctx.Done():
			return s.shutdown()
		case b := <-s.queue:
			s.pack(b)
		}
	}
}

// Stats returns the counters so far.
func (s *Sink) Stats() Stats {
	return Stats{
		Points:     s.points.Load(),
		Lines:      s.lines.Load(),
		Datagrams:  s.datagrams.Load(),
		Dropped:    s.dropped.Load(),
		SendErrors: s.sendErrors.Load(),
	}
}

func (s *Sink) shutdown() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	// No Send can queue anything now, so this drain is final.
	for {
		select {
		case b := <-s.queue:
			s.pack(b)
		default:
			s.flush()
			if err := s.conn.Close(); err != nil {
				s.log.Warn("closing telegraf socket", "err", err)
			}
			return nil
		}
	}
}

// pack adds the lines of b to the datagram being filled, sending it first
// whenever the next line would not fit. Splitting at '\n' is safe because the
// encoder rejects control characters in names, tags and field values.
func (s *Sink) pack(b []byte) {
	for len(b) > 0 {
		end := bytes.IndexByte(b, '\n') + 1
		line := b[:end]
		b = b[end:]
		// A line longer than MaxDatagram lands in an empty buffer and is sent
		// alone by the next flush.
		if len(s.buf)+len(line) > MaxDatagram {
			s.flush()
		}
		s.buf = append(s.buf, line...)
		s.bufLines++
	}
}

func (s *Sink) flush() {
	if len(s.buf) == 0 {
		return
	}
	if _, err := s.conn.Write(s.buf); err != nil {
		// Typically ECONNREFUSED while telegraf is down: the next round
		// tries again, so just count it.
		n := s.sendErrors.Add(1)
		if s.sendWarn.allow() {
			s.log.Warn("sending to telegraf", "err", err, "send_errors", n)
		}
	} else {
		s.datagrams.Add(1)
		s.lines.Add(s.bufLines)
	}
	s.buf = s.buf[:0]
	s.bufLines = 0
}

// rateLimit lets an event through at most once per warnEvery.
type rateLimit struct {
	next atomic.Int64 // UnixNano before which events are suppressed
}

func (r *rateLimit) allow() bool {
	now := time.Now().UnixNano()
	next := r.next.Load()
	return now >= next && r.next.CompareAndSwap(next, now+int64(warnEvery))
}
