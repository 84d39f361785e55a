package orders

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// dnsOrder builds a dns order from the lines of its dns mapping.
func dnsOrder(lines ...string) string {
	s := "user: alice\nstep: 60\npings: 5\nprobe: dns\ndns:\n"
	for _, l := range lines {
		s += "  " + l + "\n"
	}
	return s
}

func TestParseDNS(t *testing.T) {
	server := netip.MustParseAddrPort("127.0.0.1:53")
	tests := []struct {
		name string
		data string
		want DNS
	}{
		{"minimal: type A over UDP on port 53", dnsOrder("server: 127.0.0.1", "name: ok.test"),
			DNS{Server: server, Name: "ok.test", Type: "A"}},
		{"every key", dnsOrder("server: 127.0.0.1:5353", "name: ok.test.", "type: aaaa", "protocol: TCP",
			"source_ip: 127.0.0.2", "rcodes_as_failure: [servfail, NXDOMAIN]", "interval: 500"),
			DNS{Server: netip.MustParseAddrPort("127.0.0.1:5353"), Name: "ok.test.", Type: "AAAA", TCP: true,
				Source: netip.MustParseAddr("127.0.0.2"), FailRcodes: []int{2, 3}, Interval: 500 * time.Millisecond}},
		{"IPv6 server with a port", dnsOrder("server: '[::1]:5353'", "name: ok.test"),
			DNS{Server: netip.MustParseAddrPort("[::1]:5353"), Name: "ok.test", Type: "A"}},
		{"IPv6 server without a port", dnsOrder("server: '::1'", "name: ok.test", "source_ip: '::1'"),
			DNS{Server: netip.MustParseAddrPort("[::1]:53"), Name: "ok.test", Type: "A", Source: netip.MustParseAddr("::1")}},
		{"IPv4-mapped server is IPv4", dnsOrder("server: '::ffff:127.0.0.1'", "name: ok.test", "source_ip: 127.0.0.1"),
			DNS{Server: server, Name: "ok.test", Type: "A", Source: netip.MustParseAddr("127.0.0.1")}},
		{"the root", dnsOrder("server: 127.0.0.1", "name: .", "type: NS"),
			DNS{Server: server, Name: ".", Type: "NS"}},
		{"service name with underscores", dnsOrder("server: 127.0.0.1", "name: _sip._udp.ok.test", "type: SRV"),
			DNS{Server: server, Name: "_sip._udp.ok.test", Type: "SRV"}},
		{"rcodes as text, as http_codes_as_failure", dnsOrder("server: 127.0.0.1", "name: ok.test", "rcodes_as_failure: 'SERVFAIL, REFUSED,SERVFAIL'"),
			DNS{Server: server, Name: "ok.test", Type: "A", FailRcodes: []int{2, 5}}},
		{"no rcodes: every answer counts", dnsOrder("server: 127.0.0.1", "name: ok.test", "rcodes_as_failure: []"),
			DNS{Server: server, Name: "ok.test", Type: "A", FailRcodes: []int{}}},
		{"protocol udp", dnsOrder("server: 127.0.0.1", "name: ok.test", "protocol: udp"),
			DNS{Server: server, Name: "ok.test", Type: "A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse(testFile, "app/x", []byte(tt.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if o.Probe != "dns" || o.DNS == nil || o.FPing != nil {
				t.Fatalf("Parse = %s, want a dns order", dump(o))
			}
			if !reflect.DeepEqual(*o.DNS, tt.want) {
				t.Errorf("DNS = %+v\nwant %+v", *o.DNS, tt.want)
			}
		})
	}
}

func TestParseDNSErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // the problems, in Error() after the file name
	}{
		{"no dns mapping", "user: alice\nstep: 60\npings: 5\nprobe: dns\n",
			[]string{"line 1: dns: missing: probe dns needs a mapping with at least server and name"}},
		{"dns a list", "user: alice\nstep: 60\npings: 5\nprobe: dns\ndns: [a]\n",
			[]string{"line 5: dns: expected a mapping of keys to values, got a list"}},
		{"server and name missing", dnsOrder("type: A"),
			[]string{"line 6: dns.server: missing", "line 6: dns.name: missing"}},
		{"server a host name", dnsOrder("server: ns.ok.test", "name: ok.test"),
			[]string{`line 6: dns.server: expected an IP address, optionally with a port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53), got "ns.ok.test"`}},
		{"server an option", dnsOrder("server: -p1", "name: ok.test"), []string{`line 6: dns.server: expected an IP address`}},
		{"server port 0", dnsOrder("server: 127.0.0.1:0", "name: ok.test"), []string{`line 6: dns.server: expected an IP address`}},
		{"server port too big", dnsOrder("server: 127.0.0.1:65536", "name: ok.test"), []string{`line 6: dns.server: expected an IP address`}},
		{"server with a zone", dnsOrder("server: 'fe80::1%lo'", "name: ok.test"), []string{`line 6: dns.server: expected an IP address`}},
		{"server a path", dnsOrder("server: /etc/passwd", "name: ok.test"), []string{`line 6: dns.server: expected an IP address`}},
		{"name an option", dnsOrder("server: 127.0.0.1", "name: -x"), []string{`line 7: dns.name: expected a domain name, got "-x"`}},
		{"name with a slash", dnsOrder("server: 127.0.0.1", "name: a/b.test"), []string{`line 7: dns.name: expected a domain name`}},
		{"name with a space", dnsOrder("server: 127.0.0.1", "name: a b.test"), []string{`line 7: dns.name: expected a domain name`}},
		{"name an empty label", dnsOrder("server: 127.0.0.1", "name: a..test"), []string{`line 7: dns.name: expected a domain name`}},
		{"name too long", dnsOrder("server: 127.0.0.1", "name: "+strings.Repeat("a.", 130)+"test"), []string{`line 7: dns.name: expected a domain name`}},
		{"name a list", dnsOrder("server: 127.0.0.1", "name: [a]"), []string{`line 7: dns.name: expected a text value, got a list`}},
		{"unknown type", dnsOrder("server: 127.0.0.1", "name: ok.test", "type: AXFR"),
			[]string{`line 8: dns.type: unknown query type "AXFR": expected one of A, AAAA, ANY`}},
		{"unknown protocol", dnsOrder("server: 127.0.0.1", "name: ok.test", "protocol: tls"),
			[]string{`line 8: dns.protocol: expected udp or tcp, got "tls"`}},
		{"source not an address", dnsOrder("server: 127.0.0.1", "name: ok.test", "source_ip: eth0"),
			[]string{`line 8: dns.source_ip: expected an IP address, got "eth0"`}},
		{"source of the other family", dnsOrder("server: 127.0.0.1", "name: ok.test", "source_ip: '::1'"),
			[]string{`line 8: dns.source_ip: ::1 is not of the server's address family`}},
		{"unknown rcode", dnsOrder("server: 127.0.0.1", "name: ok.test", "rcodes_as_failure: [SERVFAIL, BOGUS]"),
			[]string{`line 8: dns.rcodes_as_failure: unknown response code "BOGUS": expected some of FORMERR, SERVFAIL, NXDOMAIN`}},
		{"NOERROR is never a failure", dnsOrder("server: 127.0.0.1", "name: ok.test", "rcodes_as_failure: NOERROR"),
			[]string{`line 8: dns.rcodes_as_failure: unknown response code "NOERROR"`}},
		{"rcodes as numbers", dnsOrder("server: 127.0.0.1", "name: ok.test", "rcodes_as_failure: 2"),
			[]string{`line 8: dns.rcodes_as_failure: unknown response code "2"`}},
		{"rcodes a mapping", dnsOrder("server: 127.0.0.1", "name: ok.test", "rcodes_as_failure: {a: b}"),
			[]string{`line 8: dns.rcodes_as_failure: expected a text value, got a mapping`}},
		{"rcode list of lists", dnsOrder("server: 127.0.0.1", "name: ok.test", "rcodes_as_failure: [[SERVFAIL]]"),
			[]string{`line 8: dns.rcodes_as_failure: expected a text value, got a list`}},
		{"interval not a number", dnsOrder("server: 127.0.0.1", "name: ok.test", "interval: fast"),
			[]string{`line 8: dns.interval: expected a whole number of milliseconds, got "fast"`}},
		{"interval too long for the step", dnsOrder("server: 127.0.0.1", "name: ok.test", "interval: 20000"),
			[]string{`line 8: dns.interval: 5 pings 20s apart with a 3s timeout take 1m23s, longer than the step of 1m0s`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse(testFile, "app/x", []byte(tt.data))
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %s, %v; want an *Error", dump(o), err)
			}
			if len(perr.Problems) != len(tt.want) {
				t.Errorf("%d problems, want %d: %v", len(perr.Problems), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestDNSTimingAndTarget(t *testing.T) {
	tests := []struct {
		data         string
		gap, timeout time.Duration
		target       string
	}{
		{dnsOrder("server: 127.0.0.1", "name: ok.test"), 9000 * time.Millisecond, 3 * time.Second, "dns: ok.test A @127.0.0.1:53"},
		{dnsOrder("server: '[::1]:5353'", "name: ok.test", "type: MX", "protocol: tcp", "interval: 1000"),
			time.Second, 3 * time.Second, "dns: ok.test MX @[::1]:5353/tcp"},
	}
	for _, tt := range tests {
		o, err := Parse(testFile, "app/x", []byte(tt.data))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if gap, timeout := o.Timing(); gap != tt.gap || timeout != tt.timeout {
			t.Errorf("Timing() = %v, %v; want %v, %v", gap, timeout, tt.gap, tt.timeout)
		}
		if got := o.Target(); got != tt.target {
			t.Errorf("Target() = %q, want %q", got, tt.target)
		}
	}
}

func TestCheckDNS(t *testing.T) {
	tests := []struct {
		name     string
		keys     map[string]string
		want     *DNS
		problems []string // the keys of the problems
	}{
		{"defaults", map[string]string{"server": "127.0.0.1", "name": "ok.test", "type": "", "protocol": ""},
			&DNS{Server: netip.MustParseAddrPort("127.0.0.1:53"), Name: "ok.test", Type: "A"}, nil},
		{"every key", map[string]string{"server": "[::1]:5353", "name": "ok.test", "type": "txt", "protocol": "tcp",
			"source_ip": "::1", "rcodes_as_failure": "nxdomain"},
			&DNS{Server: netip.MustParseAddrPort("[::1]:5353"), Name: "ok.test", Type: "TXT", TCP: true,
				Source: netip.MustParseAddr("::1"), FailRcodes: []int{3}}, nil},
		{"empty rcodes: none", map[string]string{"server": "127.0.0.1", "name": "ok.test", "rcodes_as_failure": ""},
			&DNS{Server: netip.MustParseAddrPort("127.0.0.1:53"), Name: "ok.test", Type: "A", FailRcodes: []int{}}, nil},
		{"empty server and name are problems", map[string]string{"server": "", "name": ""}, nil,
			[]string{"dns.server", "dns.name"}},
		{"missing server and name", map[string]string{}, nil, []string{"dns.server", "dns.name"}},
		{"each bad value", map[string]string{"server": "-x", "name": "-y", "type": "AXFR", "protocol": "quic",
			"source_ip": "x", "rcodes_as_failure": "BAD"}, nil,
			[]string{"dns.server", "dns.name", "dns.type", "dns.protocol", "dns.source_ip", "dns.rcodes_as_failure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, problems := CheckDNS(tt.keys)
			var keys []string
			for _, p := range problems {
				keys = append(keys, p.Key)
			}
			if !reflect.DeepEqual(keys, tt.problems) {
				t.Errorf("problems %v, want keys %v", problems, tt.problems)
			}
			if !reflect.DeepEqual(d, tt.want) {
				t.Errorf("CheckDNS = %+v, want %+v", d, tt.want)
			}
		})
	}
}
