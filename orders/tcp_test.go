package orders

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTCP(t *testing.T) {
	const head = "user: alice\nstep: 60\npings: 5\n"
	tests := []struct {
		name   string
		data   string
		want   TCP
		target string
	}{
		{"tcp", head + "probe: tcp\ntcp: {host: example.com, port: 443}\n",
			TCP{Host: "example.com", Port: 443}, "tcp: example.com:443"},
		{"tcp with everything", head + "probe: tcp\ntcp:\n  host: 2001:db8::1\n  port: '8080'\n  source_ip: 2001:db8::2\n  interface: eth0\n  interval: 500\n  refused_is_answer: yes\n",
			TCP{Host: "2001:db8::1", Port: 8080, IPv6: true, Source: netip.MustParseAddr("2001:db8::2"), Interface: "eth0",
				Interval: 500 * time.Millisecond, RefusedIsAnswer: true}, "tcp: [2001:db8::1]:8080"},
		{"tcp ipv6 by name", head + "probe: tcp\ntcp: {host: example.com, port: 22, ipv6: true}\n",
			TCP{Host: "example.com", Port: 22, IPv6: true}, "tcp: example.com:22"},
		{"the Perl ssh order", "user: ops\nstep: 300\npings: 1\nprobe: ssh\nssh:\n  host: 192.0.2.7\n  key_type: rsa\ntask: check ssh\n",
			TCP{Host: "192.0.2.7", Port: 22, KeyType: "rsa"}, "ssh: 192.0.2.7:22"},
		{"ssh on another port, many pings", head + "probe: ssh\nssh: {host: example.com, port: 2222, source_ip: 192.0.2.2}\n",
			TCP{Host: "example.com", Port: 2222, Source: netip.MustParseAddr("192.0.2.2")}, "ssh: example.com:2222"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse(testFile, "app/x", []byte(tt.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if o.TCP == nil || !reflect.DeepEqual(*o.TCP, tt.want) {
				t.Errorf("TCP = %+v, want %+v", o.TCP, tt.want)
			}
			if o.FPing != nil || o.HTTPing != nil || o.SCION != nil {
				t.Errorf("other probes set: %s", dump(o))
			}
			if got := o.Target(); got != tt.target {
				t.Errorf("Target() = %q, want %q", got, tt.target)
			}
		})
	}
}

func TestTCPTiming(t *testing.T) {
	o, err := Parse(testFile, "x", []byte("user: u\nstep: 60\npings: 5\nprobe: ssh\nssh: {host: h, interval: 2000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if gap, timeout := o.Timing(); gap != 2*time.Second || timeout != 3*time.Second {
		t.Errorf("Timing() = %v, %v; want 2s, 3s", gap, timeout)
	}
	o, err = Parse(testFile, "x", []byte("user: u\nstep: 10\npings: 5\nprobe: tcp\ntcp: {host: h, port: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if gap, timeout := o.Timing(); gap != 1200*time.Millisecond || timeout != 2*time.Second {
		t.Errorf("Timing() = %v, %v; want ICMP's 1.2s, 2s", gap, timeout)
	}
}

func TestParseTCPErrors(t *testing.T) {
	const head = "user: alice\nstep: 60\npings: 5\n"
	tests := []struct {
		name string
		data string
		want string
	}{
		{"tcp mapping missing", head + "probe: tcp\n", "line 1: tcp: missing: probe tcp needs a mapping with at least host"},
		{"tcp a list", head + "probe: tcp\ntcp: [a]\n", "line 5: tcp: expected a mapping"},
		{"host missing", head + "probe: tcp\ntcp: {port: 80}\n", "line 5: tcp.host: missing"},
		{"port missing", head + "probe: tcp\ntcp: {host: h}\n", "line 5: tcp.port: missing"},
		{"port 0", head + "probe: tcp\ntcp: {host: h, port: 0}\n", `line 5: tcp.port: expected a port number from 1 to 65535, got "0"`},
		{"port too big", head + "probe: ssh\nssh: {host: h, port: 65536}\n", "ssh.port: expected a port number"},
		{"port a name", head + "probe: tcp\ntcp: {host: h, port: https}\n", "tcp.port: expected a port number"},
		{"port like an option", head + "probe: tcp\ntcp: {host: h, port: '-1'}\n", "tcp.port: expected a port number"},
		{"host like an option", head + "probe: tcp\ntcp: {host: '-oProxyCommand=x', port: 22}\n", "tcp.host: \"-oProxyCommand=x\" is neither an IP address nor a host name"},
		{"host a path", head + "probe: ssh\nssh: {host: ../../etc/passwd}\n", "ssh.host: \"../../etc/passwd\" is neither"},
		{"host with a port", head + "probe: ssh\nssh: {host: 'h:22'}\n", "ssh.host: \"h:22\" is neither"},
		{"source not an address", head + "probe: tcp\ntcp: {host: h, port: 1, source_ip: eth0}\n", "tcp.source_ip: expected an IP address"},
		{"source of the other family", head + "probe: ssh\nssh: {host: 192.0.2.1, source_ip: '::1'}\n", "ssh.source_ip: ::1 is not of the target's address family (IPv4)"},
		{"ipv6 against a literal", head + "probe: ssh\nssh: {host: 192.0.2.1, ipv6: true}\n", "ssh.ipv6: is true but host 192.0.2.1 is an IPv4 address"},
		{"interface a path", head + "probe: tcp\ntcp: {host: h, port: 1, interface: ../x}\n", "tcp.interface: expected an interface name"},
		{"interval too long", head + "probe: tcp\ntcp: {host: h, port: 1, interval: 20000}\n", "tcp.interval: 5 pings 20s apart"},
		{"refused_is_answer not a bool", head + "probe: tcp\ntcp: {host: h, port: 1, refused_is_answer: maybe}\n", "tcp.refused_is_answer: expected true or false"},
		{"refused_is_answer for ssh", head + "probe: ssh\nssh: {host: h, refused_is_answer: true}\n", "line 5: ssh.refused_is_answer: only for probe tcp"},
		{"key_type for tcp", head + "probe: tcp\ntcp: {host: h, port: 1, key_type: rsa}\n", "tcp.key_type: only for probe ssh"},
		{"key_type not printable", head + "probe: ssh\nssh: {host: h, key_type: \"a\\x01\"}\n", "ssh.key_type: expected printable text"},
		{"key_type a list", head + "probe: ssh\nssh: {host: h, key_type: [rsa]}\n", "ssh.key_type: expected a text value, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("orders/x", "x", []byte(tt.data))
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "orders/x: ") {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
