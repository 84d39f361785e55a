package pingtest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// Addresses of the two veth ends and the target ranges behind the server. All are
// documentation ranges and exist only inside the namespaces NewLink creates.
const (
	clientAddr4 = "198.51.100.1"    // netns client veth end
	serverAddr4 = "198.51.100.2"    // netns server veth end
	linkBits4   = "/24"             // netns veth subnet length
	clientAddr6 = "2001:db8::1"     // netns client veth end
	serverAddr6 = "2001:db8::2"     // netns server veth end
	linkBits6   = "/64"             // netns veth subnet length
	targetNet4  = "203.0.113.0/24"  // netns targets, local to the server namespace
	targetNet6  = "2001:db8:1::/64" // netns targets, local to the server namespace
)

// maxTarget is the highest index Target4 and Target6 accept: .1 to .254 of the /24.
const maxTarget = 253

// vethName names both veth ends; each lives in its own namespace, so they cannot clash.
const vethName = "pmt0"

// Fixed, locally administered MAC addresses let NewLink enter permanent neighbour entries.
const (
	clientMAC = "02:00:00:00:00:01"
	serverMAC = "02:00:00:00:00:02"
)

// Link is a pair of namespaces joined by a veth pair. The client reaches every address of
// Target4 and Target6 through the server, where they are all local.
type Link struct {
	Client, Server           *Namespace
	ClientAddr4, ServerAddr4 netip.Addr // the IPv4 addresses of the veth ends
	ClientAddr6, ServerAddr6 netip.Addr // the IPv6 addresses of the veth ends
	Interface                string     // the veth's name, the same at both ends
}

// NewLink creates a client and a server namespace joined by a veth pair, with routes that
// make every target address reachable from the client and local to the server. The server's
// kernel does not answer echo requests itself, so only a Responder does. NewLink skips the
// test unless it runs as root and fails it on any other error. Leftover namespaces of
// processes that no longer exist are removed first; the new ones are deleted at cleanup.
func NewLink(t testing.TB) *Link {
	t.Helper()
	RequireRoot(t)
	removeStale(t)

	group := fmt.Sprintf("%08x", rand.Uint32())
	l := &Link{
		Interface:   vethName,
		Client:      newNamespace(t, group, "c"),
		Server:      newNamespace(t, group, "s"),
		ClientAddr4: netip.MustParseAddr(clientAddr4),
		ServerAddr4: netip.MustParseAddr(serverAddr4),
		ClientAddr6: netip.MustParseAddr(clientAddr6),
		ServerAddr6: netip.MustParseAddr(serverAddr6),
	}
	// Without duplicate address detection the IPv6 addresses, link-local ones included, are
	// usable at once instead of about a second after the link comes up. The default must be
	// set before the veth exists, because a device copies it when it is created.
	for _, ns := range []*Namespace{l.Client, l.Server} {
		ns.Sysctl(t, "net.ipv6.conf.all.accept_dad", "0")
		ns.Sysctl(t, "net.ipv6.conf.default.accept_dad", "0")
	}
	l.Server.Sysctl(t, "net.ipv4.icmp_echo_ignore_all", "1")
	l.Server.Sysctl(t, "net.ipv6.icmp.echo_ignore_all", "1")

	c, s := l.Client.Name, l.Server.Name
	runIP(t, "-n", c, "link", "add", vethName, "address", clientMAC, "type", "veth",
		"peer", "name", vethName, "address", serverMAC, "netns", s)
	for _, end := range []struct {
		ns           string
		addr4, addr6 netip.Addr
		peer4, peer6 netip.Addr
		peerMAC      string
	}{
		{c, l.ClientAddr4, l.ClientAddr6, l.ServerAddr4, l.ServerAddr6, serverMAC},
		{s, l.ServerAddr4, l.ServerAddr6, l.ClientAddr4, l.ClientAddr6, clientMAC},
	} {
		runIP(t, "-n", end.ns, "addr", "add", end.addr4.String()+linkBits4, "dev", vethName)
		runIP(t, "-n", end.ns, "-6", "addr", "add", end.addr6.String()+linkBits6, "dev", vethName, "nodad")
		runIP(t, "-n", end.ns, "link", "set", vethName, "up")
		// Permanent neighbour entries keep ARP and neighbour discovery out of the round
		// trips: otherwise the first packet each way waits for address resolution.
		for _, peer := range []netip.Addr{end.peer4, end.peer6} {
			runIP(t, "-n", end.ns, "neigh", "replace", peer.String(), "lladdr", end.peerMAC,
				"dev", vethName, "nud", "permanent")
		}
	}
	runIP(t, "-n", c, "route", "add", targetNet4, "via", serverAddr4)
	runIP(t, "-n", c, "-6", "route", "add", targetNet6, "via", serverAddr6)
	// A local route makes every address of the range local (AnyIP) without one address each.
	runIP(t, "-n", s, "route", "add", "local", targetNet4, "dev", "lo")
	runIP(t, "-n", s, "-6", "route", "add", "local", targetNet6, "dev", "lo")
	return l
}

// Target4 returns the i-th IPv4 target address (the (i+1)-th host of the target /24), for i
// in [0, 253]. It panics for other i.
func Target4(i int) netip.Addr {
	return target(targetNet4, i)
}

// Target6 returns the i-th IPv6 target address (host i+1 of the target /64), for i in
// [0, 253]. It panics for other i.
func Target6(i int) netip.Addr {
	return target(targetNet6, i)
}

// target returns host i+1 of prefix, which ends in a zero byte.
func target(prefix string, i int) netip.Addr {
	if i < 0 || i > maxTarget {
		panic(fmt.Sprintf("pingtest: target index %d outside [0, %d]", i, maxTarget))
	}
	b := netip.MustParsePrefix(prefix).Addr().AsSlice()
	b[len(b)-1] = byte(i + 1)
	a, _ := netip.AddrFromSlice(b)
	return a
}
