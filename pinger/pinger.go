// Package pinger is pingmachine's ICMP engine: one process sends and matches ICMP echo
// requests for many thousands of targets over a handful of shared sockets.
//
// A caller describes a round (N pings to one target, a gap between them, a timeout per
// ping) and submits it; the engine schedules every send and deadline on a timer wheel,
// matches replies by (identifier, sequence) to an in-flight slot, checks the MAC in the
// payload and the reply's source address, and calls the round's Done function when each
// ping has been answered or lost. Round-trip times come from kernel receive timestamps,
// and a reply counts if the kernel received it within the timeout, however late the
// engine gets to read it: a probe's deadline is only processed after its socket has been
// read, so that a stop of the process (SIGSTOP, a paused VM, a long GC pause) does not
// turn replies that came in time into loss.
//
// Each probe carries its serial number and a MAC of it under a key that is drawn at
// random for each engine, so that whoever sees probes, as the owner of a target sees
// those to it, cannot make up a reply or an ICMP error for another target's probe. An
// ICMP error ends a ping only if it quotes enough of the probe to show its MAC.
//
// Each address family, source address and interface has sockets of its own, opened by
// the first round that needs them (or by Open) and closed once Release says that no order
// needs them any more. No socket is opened that would leave the process less than a
// quarter of its file descriptors (RLIMIT_NOFILE), and at least 64, for its other files.
//
// Raw sockets (CAP_NET_RAW) are used when permitted, with a BPF filter so the process
// only wakes for its own replies; otherwise the engine falls back to unprivileged ICMP
// datagram sockets (net.ipv4.ping_group_range). Nothing is allocated per packet.
package pinger

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Lost marks a ping in Round.RTTs that got no valid reply before its timeout, or that
// an ICMP error (unreachable, time exceeded) answered.
const Lost time.Duration = -1

// Limits and defaults of a round.
const (
	DefaultSize = 56    // ICMP payload bytes, as ping and fping send
	MinSize     = 16    // the payload carries an 8-byte probe serial and its 8-byte MAC
	MaxSize     = 65507 // the largest payload that fits an IPv4 datagram
	MaxCount    = 65535
)

// Mode says which kind of ICMP socket the engine uses.
type Mode int

const (
	// ModeAuto tries raw sockets first and falls back to datagram sockets.
	ModeAuto Mode = iota
	// ModeRaw requires raw sockets (root or CAP_NET_RAW).
	ModeRaw
	// ModeDatagram uses unprivileged ICMP datagram sockets only.
	ModeDatagram
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeRaw:
		return "raw"
	case ModeDatagram:
		return "datagram"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options configure an Engine. The zero value is usable.
type Options struct {
	Mode Mode
	// RecvBuffer is the kernel receive buffer per socket in bytes; 0 means 4 MiB.
	RecvBuffer int
	// Logger receives the socket mode and rare events; nil discards them.
	Logger *slog.Logger
	// PromptReplies reads each reply as soon as it arrives, at the cost of a wake-up of
	// the process per reply (or per burst of replies), so that a round's Done is called as
	// soon as its last reply is in: an interactive ping wants that. Otherwise replies are
	// read in batches when the engine wakes up anyway, to send or to expire deadlines, and
	// at least every 100 ms while probes are in flight; their RTTs are the same, taken
	// from the kernel's receive timestamps, only Done comes up to 100 ms later. Sockets
	// without kernel receive timestamps (some emulators and old kernels) always read
	// replies at once, since there an RTT ends when its reply is read.
	PromptReplies bool
}

// Round is one target's batch of pings. The caller fills in the request fields, submits
// the round, and owns it again once Done has been called; a round may then be submitted
// again, which reuses its RTTs slice.
type Round struct {
	Target    netip.Addr    // address to ping (IPv4 or IPv6)
	Source    netip.Addr    // source address to bind; zero means the kernel's choice
	Interface string        // interface to bind (SO_BINDTODEVICE); empty means any
	TOS       uint8         // IPv4 type of service or IPv6 traffic class
	Size      int           // ICMP payload bytes; 0 means DefaultSize
	Count     int           // number of pings, at least 1
	Gap       time.Duration // time between the sends of two pings of this round
	Timeout   time.Duration // how long each ping waits for its reply
	Start     time.Time     // when the first ping is sent; zero means now

	// Done is called once, from an engine goroutine, when every ping of the round has
	// been answered or lost. It must not block; it may submit rounds.
	Done func(*Round)

	// RTTs holds the results in send order: the round-trip time of each ping, or Lost.
	RTTs []time.Duration
	// Err is the first reason a ping of this round could not be sent, or nil. If the
	// engine stopped before the round was complete, errors.Is(Err, ErrClosed) holds, and
	// Err still wraps the earlier send error if there was one: the RTTs of the pings
	// that were never sent are Lost but are not loss.
	Err error
}

// Received counts the answered pings of a completed round.
func (r *Round) Received() int {
	n := 0
	for _, rtt := range r.RTTs {
		if rtt != Lost {
			n++
		}
	}
	return n
}

// Stats are the engine's counters since it was created.
type Stats struct {
	Sent             uint64 // echo requests handed to the kernel
	SendErrors       uint64 // pings that could not be sent (counted as lost)
	Received         uint64 // valid replies attributed to a ping in time
	TimedOut         uint64 // pings that reached their timeout without a reply
	Late             uint64 // genuine replies (their MAC checks) that arrived after their ping had timed out
	Duplicate        uint64 // further replies to an already answered ping
	Foreign          uint64 // replies not ours: wrong identifier, MAC, payload or source
	ICMPErrors       uint64 // ICMP errors (unreachable, time exceeded) that ended a ping
	UnverifiedErrors uint64 // ICMP errors naming a ping in flight that do not quote its MAC, serial and target (RFC 792 routers quote only 8 bytes): ignored
	KernelDrops      uint64 // packets the kernel dropped because a receive buffer was full (of any kind: the BPF filter runs after that check)
}

// ErrClosed is returned by Submit once the engine has stopped, and is wrapped in the Err
// of every round the stop cut short.
var ErrClosed = errors.New("pinger: engine stopped")
