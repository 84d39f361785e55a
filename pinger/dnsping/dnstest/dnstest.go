// Package dnstest runs DNS servers on loopback for tests: a real dnsmasq that answers
// and says NXDOMAIN, and a scripted server for what dnsmasq cannot be made to do.
package dnstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Names dnsmasq serves, and what it answers.
const (
	// OK resolves to OKAddr.
	OK     = "ok.test"
	OKAddr = "127.0.0.5"
	// NX and every name below it are NXDOMAIN: dnsmasq knows them as local only.
	NX = "nx.test"
)

// StartDNSMasq starts dnsmasq on a free port of 127.0.0.1, over UDP and TCP, and stops it
// when the test ends. It never forwards a query: it has no upstream servers, reads no
// resolv.conf and no hosts file, and answers only from its command line.
func StartDNSMasq(t testing.TB) netip.AddrPort {
	t.Helper()
	addr, _ := startDNSMasq(t)
	return addr
}

// StartStoppedDNSMasq starts dnsmasq as StartDNSMasq does, then stops it with SIGSTOP: its
// port is open (no ICMP error, and the kernel completes TCP handshakes) but nothing is
// answered. The test's end kills it.
func StartStoppedDNSMasq(t testing.TB) netip.AddrPort {
	t.Helper()
	addr, p := startDNSMasq(t)
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping dnsmasq: %v", err)
	}
	return addr
}

func startDNSMasq(t testing.TB) (netip.AddrPort, *os.Process) {
	t.Helper()
	path, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Fatalf("dnsmasq, which the DNS tests run (Debian dnsmasq-base; make deps installs it): %v", err)
	}
	for try := 0; ; try++ {
		port := FreePort(t)
		var out bytes.Buffer
		cmd := exec.Command(path, "-k", "--conf-file=/dev/null", "--listen-address=127.0.0.1",
			fmt.Sprintf("--port=%d", port), "--bind-interfaces", "--no-resolv", "--no-hosts",
			"--no-poll", "--pid-file=", "--user=", "--cache-size=0",
			// dnsmasq forks a process per TCP connection, 20 at most by default: a
			// benchmark of a thousand TCP queries a second needs more.
			"--max-tcp-connections=500",
			"--address=/"+OK+"/"+OKAddr, "--local=/"+NX+"/", "--log-facility=-")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting dnsmasq: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		if err := waitTCP(addr, exited); err == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return addr, cmd.Process
		} else if try == 4 {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("dnsmasq on %v: %v\n%s", addr, err, out.String())
		}
		cmd.Process.Kill()
		<-exited // the port was taken between FreePort and dnsmasq's bind: another one
	}
}

// waitTCP waits until addr accepts TCP connections, or the server has exited.
func waitTCP(addr netip.AddrPort, exited <-chan struct{}) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not listening after 5 s")
}

// FreePort returns a port of 127.0.0.1 that was free for UDP and TCP a moment ago.
func FreePort(t testing.TB) uint16 {
	t.Helper()
	for range 50 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u.Close()
		if err == nil {
			l.Close()
			return uint16(port)
		}
	}
	t.Fatal("no port of 127.0.0.1 free for both UDP and TCP")
	return 0
}

// Reply says how the scripted server answers a query: it gets the query and returns the
// messages to send, in order (none: silence), after Delay.
type Reply func(q *dns.Msg) []*dns.Msg

// Server is a scripted DNS server on 127.0.0.1, over UDP and TCP on the same port.
type Server struct {
	Addr netip.AddrPort
	mu   sync.Mutex
	n    int
	from []netip.Addr
}

// Clients lists the source address of each query read.
func (s *Server) Clients() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.from)
}

// Queries counts the queries the server has read.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// StartServer runs a scripted server on 127.0.0.1 until the test ends; delay is waited
// before each reply.
func StartServer(t testing.TB, delay time.Duration, reply Reply) *Server {
	t.Helper()
	return StartServerAt(t, netip.MustParseAddr("127.0.0.1"), delay, reply)
}

// StartServerAt runs a scripted server on a loopback address (127.0.0.1, ::1) until the
// test ends; delay is waited before each reply.
func StartServerAt(t testing.TB, ip netip.Addr, delay time.Duration, reply Reply) *Server {
	t.Helper()
	s := &Server{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		from, _ := netip.ParseAddrPort(w.RemoteAddr().String())
		s.mu.Lock()
		s.n++
		s.from = append(s.from, from.Addr().Unmap())
		s.mu.Unlock()
		time.Sleep(delay)
		for _, m := range reply(q) {
			w.WriteMsg(m)
		}
	})
	var tcpErr error
	for range 50 {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			t.Fatalf("scripted DNS server on %v: %v", ip, err)
		}
		addr := u.LocalAddr().(*net.UDPAddr).AddrPort()
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err != nil {
			u.Close() // the port is taken for TCP (in use, or in TIME_WAIT): another one
			tcpErr = err
			continue
		}
		s.Addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
		servers := []*dns.Server{{PacketConn: u, Handler: handler}, {Listener: l, Handler: handler}}
		for _, srv := range servers {
			go srv.ActivateAndServe()
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, srv := range servers {
				srv.ShutdownContext(ctx)
			}
		})
		return s
	}
	t.Fatalf("no port of %v free for the scripted DNS server over UDP and TCP: %v", ip, tcpErr)
	return nil
}

// Answer is a Reply that answers every query with rcode, and an A record of OKAddr for a
// NOERROR answer to an A query.
func Answer(rcode int) Reply {
	return func(q *dns.Msg) []*dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		if rcode == dns.RcodeSuccess && len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(OKAddr),
			}}
		}
		return []*dns.Msg{m}
	}
}
