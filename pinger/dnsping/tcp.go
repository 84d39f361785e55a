package dnsping

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// startTCP opens q's connection in a goroutine of its own. e.mu is held.
func (e *Engine) startTCP(ctx context.Context, q *query) {
	q.state = queryFlying
	e.tcpActive++
	rs := q.rs
	wire := make([]byte, 2+len(rs.wire))
	binary.BigEndian.PutUint16(wire, uint16(len(rs.wire)))
	copy(wire[2:], rs.wire)
	binary.BigEndian.PutUint16(wire[2:], q.id)
	r := rs.r
	x := exchange{server: r.Server.String(), source: r.Source, question: rs.q, id: q.id, wire: wire, deadline: q.deadline,
		wrote: func() {
			e.mu.Lock()
			e.stats.Sent++
			e.mu.Unlock()
		}}
	e.tcp.Go(func() {
		res := x.run(ctx)
		e.mu.Lock()
		e.tcpActive--
		e.stats.Mismatched += res.mismatched
		done := e.tcpAnswer(q, res, nil)
		e.startWaiting(ctx)
		e.mu.Unlock()
		callDone(done)
	})
}

// startWaiting gives free places to the TCP queries that wait, in their order, skipping
// those whose deadline has passed. e.mu is held.
func (e *Engine) startWaiting(ctx context.Context) {
	for len(e.tcpWait) > 0 && e.tcpActive < e.maxTCP && !e.closed {
		q := e.tcpWait[0]
		e.tcpWait[0] = nil
		e.tcpWait = e.tcpWait[1:]
		if q.state == queryWaiting && !q.rs.over {
			e.startTCP(ctx, q)
		}
	}
}

// tcpAnswer ends q with the result of its exchange. e.mu is held.
func (e *Engine) tcpAnswer(q *query, res tcpResult, done []*Round) []*Round {
	if q.rs.over {
		return done
	}
	switch {
	case res.err != nil && q.state == queryFlying && time.Now().Before(q.deadline):
		// The connection failed before the timeout (refused, reset): the server did not
		// answer, which is loss, not a fault of the engine's.
		e.stats.ConnFailed++
		return e.lost(q, done)
	case res.err != nil:
		return done // its deadline ends it, or has
	case q.state != queryFlying || res.rtt > q.rs.r.Timeout:
		e.stats.Late++
		return done
	}
	return e.answered(q, res.rtt, res.rcode, done)
}

// exchange is one query over its own TCP connection.
type exchange struct {
	server   string
	source   netip.Addr
	question dns.Question
	id       uint16
	wire     []byte // the query with its 2-byte length
	deadline time.Time
	wrote    func() // called once the query is written
}

type tcpResult struct {
	rtt        time.Duration
	rcode      int
	mismatched uint64
	err        error
}

// run connects, sends the query and reads messages until one answers it; the others,
// on a connection of its own, are mismatched whatever their id. The RTT is the
// time from the query's write to the answer's last byte: the connection's setup is the
// TCP probe's measure, not this one's (it counts against the timeout, though).
func (x exchange) run(ctx context.Context) tcpResult {
	d := net.Dialer{Deadline: x.deadline}
	if x.source.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(x.source, 0))
	}
	conn, err := d.DialContext(ctx, "tcp", x.server)
	if err != nil {
		return tcpResult{err: err}
	}
	// Closed with a reset, not a FIN: the closing side keeps a FIN-closed connection in
	// TIME_WAIT for a minute, and at a few hundred queries a second to one server those
	// would take every local port. The answer is complete when it is closed.
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(x.deadline)
	sent := time.Now()
	if _, err := conn.Write(x.wire); err != nil {
		return tcpResult{err: fmt.Errorf("writing the query: %w", err)}
	}
	x.wrote()
	var res tcpResult
	var size [2]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			res.err = fmt.Errorf("reading the answer: %w", err)
			return res
		}
		n := int(binary.BigEndian.Uint16(size[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(conn, buf[:n]); err != nil {
			res.err = fmt.Errorf("reading the answer: %w", err)
			return res
		}
		now := time.Now()
		var msg dns.Msg
		if err := msg.Unpack(buf[:n]); err != nil || msg.Id != x.id || !matches(&msg, x.question) {
			res.mismatched++
			continue
		}
		res.rtt, res.rcode = now.Sub(sent), msg.Rcode
		return res
	}
}
