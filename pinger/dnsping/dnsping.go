// Package dnsping measures DNS servers: a round sends N queries for one name and type to
// one server, a gap apart, and each query's round-trip time is the time from its send to
// a matching answer. An answer matches when it comes from the server the query went to,
// with the query's id and question; an answer that does not match is counted and ignored,
// never taken for another query's. NXDOMAIN is an answer; the response codes a round lists
// as failures (SERVFAIL and REFUSED by default) and timeouts are lost.
//
// An Engine costs no goroutine per target: its UDP queries go out over a few shared
// sockets per address family and source address, each with one goroutine reading it, and
// one goroutine keeps the sends and the deadlines on a heap. RTTs over UDP end at the
// kernel's receive timestamp, so a reply that came in time counts however late the
// process reads it. TCP queries take one connection each, with a goroutine while the
// connection is open; their number in flight is bounded (see Options.MaxTCP) and further
// queries wait for a free place within their own timeout.
package dnsping

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"

	"pingmachine/pinger"
)

// Lost marks a query in Round.RTTs that got no matching answer before its timeout, or
// whose answer's response code the round counts as a failure. It is the ICMP engine's.
const Lost = pinger.Lost

// DefaultFailRcodes are the response codes a round counts as lost when it names none:
// the server could not or would not answer.
var DefaultFailRcodes = []int{dns.RcodeServerFailure, dns.RcodeRefused}

// Round is one target's batch of queries. The caller fills in the request fields,
// submits the round, and owns it again once Done has been called; it may then be
// submitted again, which reuses its RTTs slice.
type Round struct {
	Server netip.AddrPort // the server's address and port
	Source netip.Addr     // source address to bind; zero means the kernel's choice
	TCP    bool           // query over TCP, one connection per query, instead of UDP
	Name   string         // the name queried; a final dot is added when missing
	Type   uint16         // the query type (dns.TypeA, ...)
	// FailRcodes are the response codes that count as lost; nil means DefaultFailRcodes,
	// an empty non-nil slice none.
	FailRcodes []int
	Count      int           // number of queries, at least 1
	Gap        time.Duration // time between the sends of two queries of this round
	Timeout    time.Duration // how long each query waits for its answer
	Start      time.Time     // when the first query is sent; zero means now

	// Done is called once, from an engine goroutine, when every query of the round has
	// been answered or lost. It must not block; it may submit rounds.
	Done func(*Round)

	// RTTs holds the results in send order: each query's round-trip time, or Lost.
	RTTs []time.Duration
	// Err is the first reason a query of this round could not be sent, or nil. If the
	// engine stopped before the round was complete, errors.Is(Err, ErrClosed) holds.
	Err error
}

// Received counts the answered queries of a completed round.
func (r *Round) Received() int {
	return len(r.RTTs) - count(r.RTTs, Lost)
}

func count(s []time.Duration, v time.Duration) int {
	n := 0
	for _, d := range s {
		if d == v {
			n++
		}
	}
	return n
}

// Stats are an engine's counters since it was created.
type Stats struct {
	Sent       uint64 // queries sent (UDP) or written to their connection (TCP)
	SendErrors uint64 // UDP queries that could not be sent (counted as lost, and in Round.Err)
	ConnFailed uint64 // TCP queries whose connection failed (refused, reset) before the timeout: lost
	Received   uint64 // matching answers in time with a response code that is not a failure
	Failed     uint64 // matching answers in time whose response code counts as a failure
	TimedOut   uint64 // queries that reached their timeout without a matching answer
	Late       uint64 // matching answers that came after their query had timed out
	Mismatched uint64 // answers from a query's server with its id but another question, or not a valid response
	Foreign    uint64 // datagrams that match no query in flight: unknown id or sender
	Queued     uint64 // TCP queries that waited for a free place (Options.MaxTCP)
}

// Options configure an Engine. The zero value is usable.
type Options struct {
	// Sockets is the number of UDP sockets per address family and source address;
	// 0 means 4. Queries take them in turn, each from the socket's own random port.
	Sockets int
	// MaxTCP bounds the TCP queries in flight; 0 means 256. It is lowered to an eighth of
	// the process's file descriptor limit (RLIMIT_NOFILE), so that TCP queries never take
	// the descriptors the rest of the process needs.
	MaxTCP int
	// Logger receives rare events; nil discards them.
	Logger *slog.Logger
}

// Limits of a round.
const (
	MaxCount = 65535
	// maxIDTries is how many random ids a query tries before it takes another socket:
	// an id already in flight to the same server on the same socket is not reused.
	maxIDTries = 8
)

// ErrClosed is returned by Submit once the engine has stopped, and is wrapped in the Err
// of every round the stop cut short.
var ErrClosed = errors.New("dnsping: engine stopped")

// check validates a round and returns its question.
func (r *Round) check() (dns.Question, error) {
	switch {
	case !r.Server.IsValid() || r.Server.Port() == 0:
		return dns.Question{}, fmt.Errorf("dnsping: server %v: want an address and a port", r.Server)
	case r.Source.IsValid() && r.Source.Unmap().Is4() != r.Server.Addr().Unmap().Is4():
		return dns.Question{}, fmt.Errorf("dnsping: source %s is not of the server %s's address family", r.Source, r.Server.Addr())
	case r.Count < 1 || r.Count > MaxCount:
		return dns.Question{}, fmt.Errorf("dnsping: count %d: want 1 to %d", r.Count, MaxCount)
	case r.Gap < 0 || r.Timeout <= 0:
		return dns.Question{}, fmt.Errorf("dnsping: gap %v, timeout %v: want a gap of 0 or more and a positive timeout", r.Gap, r.Timeout)
	case r.Type == 0:
		return dns.Question{}, errors.New("dnsping: no query type")
	case r.Done == nil:
		return dns.Question{}, errors.New("dnsping: round without Done")
	}
	name := dns.Fqdn(r.Name)
	if _, ok := dns.IsDomainName(name); !ok {
		return dns.Question{}, fmt.Errorf("dnsping: %q is not a domain name", r.Name)
	}
	return dns.Question{Name: name, Qtype: r.Type, Qclass: dns.ClassINET}, nil
}

// failure reports whether rcode counts as a lost query for r.
func (r *Round) failure(rcode int) bool {
	if r.FailRcodes == nil {
		return slices.Contains(DefaultFailRcodes, rcode)
	}
	return slices.Contains(r.FailRcodes, rcode)
}
