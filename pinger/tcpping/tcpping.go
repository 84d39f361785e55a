// Package tcpping measures TCP connect times for many targets from one goroutine: each ping
// is a non-blocking connect, its round-trip time the time from the SYN to the SYN-ACK
// (the handshake is complete and the socket writable without error). That time is the
// kernel's own measure (TCP_INFO's tcpi_rtt, in microseconds), which a late wake-up of the
// process does not lengthen; when the SYN had to be sent again, or the kernel has no
// measure, it is the time from the connect call until the engine saw the socket writable.
// The connection is then closed at once with SO_LINGER 0, so that the kernel ends it with
// a RST: no FIN exchange, no TIME_WAIT socket left behind per ping, and no data ever
// reaches the server's application (which may log an aborted connection).
//
// A round with a Banner (the SSH probe: "SSH-") keeps the connection until the server has
// sent a line that starts with the banner; the ping counts, with the connect time as its
// RTT, only if that line arrives within the ping's timeout.
//
// One goroutine (Run) owns an epoll instance with every socket in flight and a heap of
// the sends and deadlines that are due; there is no goroutine per target or per connect.
// The connects in flight are bounded by Options.MaxInFlight and by the process's file
// descriptor limit (RLIMIT_NOFILE), of which a quarter, and at least 64, stays free for the
// rest of the process.
package tcpping

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Lost marks a ping in Round.RTTs that got no answer before its timeout, was refused
// (unless the round counts a refusal as an answer) or failed.
const Lost time.Duration = -1

// MaxCount is the most pings a round may have.
const MaxCount = 65535

// DefaultMaxInFlight bounds the connects in flight when Options.MaxInFlight is 0.
const DefaultMaxInFlight = 1 << 16

// Options configure an Engine. The zero value is usable.
type Options struct {
	// MaxInFlight bounds the connects in flight; 0 means DefaultMaxInFlight. The file
	// descriptor limit may bound them further. A ping due while the bound is reached is
	// lost, and its round's Err says why.
	MaxInFlight int
	// Logger receives rare events; nil discards them.
	Logger *slog.Logger
}

// Round is one target's batch of pings. The caller fills in the request fields, submits
// the round, and owns it again once Done has been called; a round may then be submitted
// again, which reuses its RTTs slice.
type Round struct {
	Target    netip.AddrPort // address and port to connect to
	Source    netip.Addr     // source address to bind; zero means the kernel's choice
	Interface string         // interface to bind (SO_BINDTODEVICE); empty means any
	Count     int            // number of pings, at least 1
	Gap       time.Duration  // between the connects of two pings of this round
	Timeout   time.Duration  // how long each ping waits for its answer
	Start     time.Time      // when the first ping is sent; zero means now
	// RefusedIsAnswer counts a refused connection (a RST to the SYN) as an answer, its RTT
	// the time to the refusal: it proves the host up. Otherwise a refusal is lost. It has
	// no effect on a round with a Banner.
	RefusedIsAnswer bool
	// Banner, if set, makes a ping count only when the server sends a line starting with
	// it within the timeout ("SSH-" for an SSH server); the RTT is still the connect time.
	Banner string

	// Done is called once, from the engine's goroutine, when every ping of the round has
	// been answered or lost. It must not block; it may submit rounds.
	Done func(*Round)

	// RTTs holds the results in send order: the connect time of each ping, or Lost.
	RTTs []time.Duration
	// Err is the first reason a ping of this round could not be sent (no socket, no such
	// source address or interface, too many connects in flight), or nil. If the engine
	// stopped before the round was complete, errors.Is(Err, ErrClosed) holds: the RTTs of
	// the pings not yet answered are Lost but are not loss.
	Err error
}

// Stats are the engine's counters since it was created.
type Stats struct {
	Connects  uint64 // connects started
	Answered  uint64 // pings answered in time (refusals included where they count)
	Refused   uint64 // connects refused (RST)
	TimedOut  uint64 // pings that reached their timeout
	Failed    uint64 // pings that failed otherwise: no socket, unreachable, a wrong banner
	NotBanner uint64 // connections closed or overlong before a line with the banner arrived
}

// ErrClosed is returned by Submit once the engine has stopped, and is wrapped in the Err
// of every round the stop cut short.
var ErrClosed = errors.New("tcpping: engine stopped")

// maxBannerBytes is how much a server may send before the line with the banner: RFC 4253
// allows lines before the identification, but a server that sends this much is not one.
const maxBannerBytes = 8192

// check validates the request fields of a round.
func (r *Round) check() error {
	a := r.Target.Addr()
	switch {
	case !a.IsValid():
		return errors.New("tcpping: round has no target address")
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("tcpping: cannot connect to %s: not a unicast address", a)
	case r.Target.Port() == 0:
		return fmt.Errorf("tcpping: %s: port 0", a)
	case r.Count < 1 || r.Count > MaxCount:
		return fmt.Errorf("tcpping: %s: count %d out of range 1..%d", r.Target, r.Count, MaxCount)
	case r.Gap < 0:
		return fmt.Errorf("tcpping: %s: negative gap %v", r.Target, r.Gap)
	case r.Timeout <= 0:
		return fmt.Errorf("tcpping: %s: timeout %v must be positive", r.Target, r.Timeout)
	case r.Source.IsValid() && r.Source.Unmap().Is4() != a.Unmap().Is4():
		return fmt.Errorf("tcpping: source %s and target %s are of different address families", r.Source, a)
	case len(r.Banner) > 64:
		return fmt.Errorf("tcpping: %s: banner of %d bytes, more than 64", r.Target, len(r.Banner))
	case r.Done == nil:
		return fmt.Errorf("tcpping: %s: round has no Done function", r.Target)
	}
	return nil
}
