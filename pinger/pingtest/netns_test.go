package pingtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNamespace checks what NewNamespace promises: lo is its only interface and is up, a
// sysctl set with Sysctl holds inside and leaves the host's value alone, and datagram ICMP
// sockets opened in Do get echo replies from 127.0.0.1 and ::1 once ping_group_range
// allows them.
func TestNamespace(t *testing.T) {
	const key, allGroups = "net.ipv4.ping_group_range", "0 2147483647"
	host, err := readSysctl(key)
	if err != nil {
		t.Fatal(err)
	}
	ns := NewNamespace(t)
	ns.Sysctl(t, key, allGroups)
	if got, err := readSysctl(key); err != nil || got != host {
		t.Errorf("host's %s = %q, %v after setting it in the namespace; want %q as before", key, got, err, host)
	}
	err = ns.Do(func() error {
		ifaces, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("listing interfaces: %w", err)
		}
		if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp == 0 {
			return fmt.Errorf("interfaces %v, want only lo, up", ifaces)
		}
		if got, err := readSysctl(key); err != nil || got != allGroups {
			return fmt.Errorf("%s = %q, %v inside; want %q", key, got, err, allGroups)
		}
		for _, tc := range []struct {
			domain, proto  int
			dst            unix.Sockaddr
			request, reply byte
		}{
			{unix.AF_INET, unix.IPPROTO_ICMP, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, icmp4EchoRequest, icmp4EchoReply},
			{unix.AF_INET6, unix.IPPROTO_ICMPV6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}, icmp6EchoRequest, icmp6EchoReply},
		} {
			if err := echoDatagram(tc.domain, tc.proto, tc.dst, tc.request, tc.reply); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("in namespace %s: %v", ns.Name, err)
	}
}

// readSysctl returns the value of a sysctl in the calling thread's network namespace, its
// fields separated by single spaces as Sysctl takes them.
func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", key, err)
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

// echoDatagram sends one echo request to dst from a datagram ICMP socket and waits up to a
// second for the reply. The kernel sets the identifier and, for IPv4, the checksum.
func echoDatagram(domain, proto int, dst unix.Sockaddr, request, reply byte) error {
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return fmt.Errorf("opening datagram ICMP socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1}); err != nil {
		return fmt.Errorf("setting SO_RCVTIMEO: %w", err)
	}
	if err := unix.Sendto(fd, []byte{request, 0, 0, 0, 0, 0, 0, 1}, 0, dst); err != nil {
		return fmt.Errorf("sending echo request: %w", err)
	}
	buf := make([]byte, 64)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("waiting for the echo reply: %w", err)
	}
	if n < icmpHeaderLen || buf[0] != reply {
		return fmt.Errorf("received % x, want an echo reply (type %d)", buf[:n], reply)
	}
	return nil
}
