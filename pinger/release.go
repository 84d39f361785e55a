package pinger

import (
	"fmt"
	"net/netip"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// File descriptors that opening a socket must leave free for the daemon's other files:
// order files being read, RRD and last_result writes, the telegraf socket, the HTTP
// listener and its clients, the pipes of external probes. A quarter of the limit, and at
// least fdReserveMin: with the limit of 128 that issue 10 ran into, 64 are kept.
const (
	fdReserveMin   = 64
	fdReserveShare = 4
)

// Release says that no order uses the sockets of one address family with the given
// source address and interface any more (all TOS values). Once no round is in flight on
// them (rounds under way finish normally first), their sockets are closed, their receive
// goroutines end and their probe slots are freed. The sockets with the kernel's choice of
// both source and interface are never released. A Submit or Open for the key while its
// rounds are still under way keeps the sockets after all; a later one opens them again, as
// the first one did: after the process has given up CAP_NET_RAW that means a datagram
// socket, or an error.
func (e *Engine) Release(v6 bool, source netip.Addr, iface string) {
	source = source.Unmap()
	if !source.IsValid() && iface == "" {
		return
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	for key, g := range e.groups {
		if key.v6 != v6 || key.source != source || key.iface != iface {
			continue
		}
		g.released = true
		if g.rounds == 0 {
			e.retire(g)
		}
	}
	// Run closes retired sockets; before it runs, nobody else would.
	var closeNow []*socket
	if !e.running {
		closeNow, e.retired = e.retired, nil
	}
	e.mu.Unlock()
	e.closeSockets(closeNow)
}

// retire takes a released group whose last round has completed out of the engine: its
// blocks are freed and its sockets handed to Run to close, which ends their receive
// goroutines. Called with e.mu held.
func (e *Engine) retire(g *group) {
	delete(e.groups, g.key)
	for _, bi := range g.blocks {
		e.blocks[bi] = nil
		e.freeBlocks = append(e.freeBlocks, bi)
	}
	for _, s := range g.socks {
		if n, err := s.drops(); err == nil {
			e.drops += uint64(n)
		}
		if !s.datagram {
			e.rawRanges[s.idRange] = false
		}
		s.blocks = nil // what still arrives on it is foreign
		e.socks = slices.DeleteFunc(e.socks, func(o *socket) bool { return o == s })
		e.retired = append(e.retired, s)
	}
	e.poke()
}

// closeSockets closes sockets that no goroutine will send on any more. It must not be
// called with e.mu held (see socket.close).
func (e *Engine) closeSockets(socks []*socket) {
	for _, s := range socks {
		if err := s.close(); err != nil {
			e.log.Warn("closing ICMP socket", "error", err)
		}
	}
}

// takeRange reserves a range of identifiers for a new raw socket. The search starts
// after the range taken last, so that a range given back is not reused at once: replies
// to the closed socket's probes might still arrive.
func (e *Engine) takeRange() (int, error) {
	n := len(e.rawRanges)
	for i := range n {
		r := (e.nextRange + i) % n
		if !e.rawRanges[r] {
			e.rawRanges[r] = true
			e.nextRange = (r + 1) % n
			return r, nil
		}
	}
	return 0, fmt.Errorf("pinger: all %d ICMP identifier ranges are in use by raw sockets", n)
}

// fdReserve is how many of limit file descriptors the engine leaves to the rest of the
// process.
func fdReserve(limit uint64) uint64 {
	return max(fdReserveMin, limit/fdReserveShare)
}

// checkDescriptors refuses to open a socket for key when that would leave fewer than
// fdReserve file descriptors of the process's limit (RLIMIT_NOFILE) free: without that
// check each new source address or interface took one more, until writing results
// failed with "too many open files" for every order. The error wraps EMFILE.
func checkDescriptors(key socketKey) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return nil // no limit to keep to, or none known: the kernel's own check remains
	}
	open, err := openDescriptors()
	if err != nil {
		return nil
	}
	reserve := fdReserve(lim.Cur)
	if open+1+reserve <= lim.Cur {
		return nil
	}
	return fmt.Errorf("pinger: not opening an ICMP socket for %v: %d of %d file descriptors in use, "+
		"and %d are kept for the daemon's other files (RLIMIT_NOFILE); raise the limit or use fewer "+
		"source/interface pairs: %w", key, open, lim.Cur, reserve, unix.EMFILE)
}

// openDescriptors counts the process's open file descriptors.
func openDescriptors() (uint64, error) {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	return uint64(len(names)) - 1, nil // not counting dir itself
}

// String describes the sockets of the key for messages, for example
// "IPv4 from 192.0.2.1 on eth0".
func (k socketKey) String() string {
	s := "IPv4"
	if k.v6 {
		s = "IPv6"
	}
	if k.source.IsValid() {
		s += " from " + k.source.String()
	}
	if k.iface != "" {
		s += " on " + k.iface
	}
	if k.tos != 0 {
		s += fmt.Sprintf(" with TOS %#02x", k.tos)
	}
	return s
}
