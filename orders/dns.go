package orders

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DNS is a dns order's target: a DNS server asked for one name and type. A round's
// queries are lost when they time out or their answer's response code is one of
// FailRcodes; NXDOMAIN is an answer unless listed.
type DNS struct {
	// Server is the server's address and port (53 unless given). It is an address, not
	// a name: a name would need the DNS, which the order may be measuring, to find it.
	Server netip.AddrPort
	Name   string     // the name asked for
	Type   string     // the query type, one of DNSTypes
	TCP    bool       // protocol: tcp; UDP otherwise
	Source netip.Addr // zero: the kernel's choice
	// FailRcodes are the response codes that count as lost, as numbers; nil means the
	// default, SERVFAIL and REFUSED.
	FailRcodes []int
	Interval   time.Duration
}

// String describes the target for logs and status: "ok.test A @127.0.0.1:53", with
// "/tcp" after the server when asked over TCP.
func (d *DNS) String() string {
	s := fmt.Sprintf("%s %s @%s", d.Name, d.Type, d.Server)
	if d.TCP {
		s += "/tcp"
	}
	return s
}

// DNSTypes are the query types a dns order may ask for.
var DNSTypes = []string{"A", "AAAA", "ANY", "CAA", "CNAME", "DNSKEY", "DS", "HTTPS", "MX", "NAPTR",
	"NS", "PTR", "SOA", "SRV", "SVCB", "TXT"}

// dnsRcodes are the response codes rcodes_as_failure may list (RFC 1035 and RFC 2136),
// by their usual names; NOERROR is never a failure.
var dnsRcodes = []string{1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
	6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}

// dns reads a dns mapping.
func (p *parser) dns(n *yaml.Node) *DNS {
	m, ok := p.mapping(n, "dns")
	if !ok {
		return nil
	}
	d := &DNS{Type: "A"}
	if v := m["server"]; v == nil {
		p.fail(n, "dns.server", "missing")
	} else if s, ok := p.str(v, "dns.server"); ok {
		server, ok := parseServer(s)
		if !ok {
			p.fail(v, "dns.server", "expected an IP address, optionally with a port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53), got %s", describe(v))
		}
		d.Server = server
	}
	if v := m["name"]; v == nil {
		p.fail(n, "dns.name", "missing")
	} else if s, ok := p.str(v, "dns.name"); ok {
		if s != "." && !validName(s) {
			p.fail(v, "dns.name", "expected a domain name, got %s", describe(v))
		}
		d.Name = s
	}
	if v := m["type"]; v != nil {
		if s, ok := p.str(v, "dns.type"); ok {
			if t := strings.ToUpper(s); slices.Contains(DNSTypes, t) {
				d.Type = t
			} else {
				p.fail(v, "dns.type", "unknown query type %s: expected one of %s", describe(v), strings.Join(DNSTypes, ", "))
			}
		}
	}
	if v := m["protocol"]; v != nil {
		if s, ok := p.str(v, "dns.protocol"); ok {
			switch strings.ToLower(s) {
			case "udp":
			case "tcp":
				d.TCP = true
			default:
				p.fail(v, "dns.protocol", "expected udp or tcp, got %s", describe(v))
			}
		}
	}
	if v := m["source_ip"]; v != nil {
		if s, ok := p.str(v, "dns.source_ip"); ok {
			addr, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				p.fail(v, "dns.source_ip", "expected an IP address, got %s", describe(v))
			case d.Server.IsValid() && addr.Unmap().Is4() != d.Server.Addr().Is4():
				p.fail(v, "dns.source_ip", "%s is not of the server's address family", s)
			default:
				d.Source = addr.Unmap()
			}
		}
	}
	if v := m["rcodes_as_failure"]; v != nil {
		d.FailRcodes = p.rcodes(v)
	}
	if v := m["interval"]; v != nil {
		if ms, ok := p.integer(v, "dns.interval", "milliseconds", 1, int64(MaxStep/time.Millisecond)); ok {
			d.Interval = time.Duration(ms) * time.Millisecond
		}
	}
	return d
}

// parseServer reads "addr" or "addr:port" ("[v6]:port").
func parseServer(s string) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 && ap.Addr().Zone() == "" {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 53), true
	}
	return netip.AddrPort{}, false
}

// rcodes reads rcodes_as_failure: a list of response code names, or the names separated
// by commas as http_codes_as_failure has its codes. An empty list makes every answer count.
func (p *parser) rcodes(v *yaml.Node) []int {
	const key = "dns.rcodes_as_failure"
	var names []string
	switch n := unalias(v); {
	case n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			if s, ok := p.str(item, key); ok {
				names = append(names, s)
			}
		}
	default:
		s, ok := p.str(n, key)
		if !ok {
			return nil
		}
		for field := range strings.SplitSeq(s, ",") {
			if field = strings.TrimSpace(field); field != "" {
				names = append(names, field)
			}
		}
	}
	codes := []int{}
	for _, name := range names {
		code := slices.Index(dnsRcodes, strings.ToUpper(name))
		if code < 1 {
			p.fail(v, key, "unknown response code %q: expected some of %s", name, strings.Join(dnsRcodes[1:], ", "))
			continue
		}
		if !slices.Contains(codes, code) {
			codes = append(codes, code)
		}
	}
	return codes
}

// CheckDNS checks a DNS target given other than in an order (pingmachine ping --dns) as
// the keys of an order's dns: mapping: each value is the text of the key of that name
// (server, name, type, protocol, source_ip, rcodes_as_failure). An empty value is a key
// not given, except for server and name, which are then wrong, and rcodes_as_failure,
// which then lists none. The problems' keys are the mapping's ("dns.type").
func CheckDNS(keys map[string]string) (*DNS, []Problem) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range []string{"server", "name", "type", "protocol", "source_ip", "rcodes_as_failure"} {
		if v, ok := keys[k]; ok && (v != "" || k == "server" || k == "name" || k == "rcodes_as_failure") {
			m.Content = append(m.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
		}
	}
	p := &parser{}
	d := p.dns(m)
	if len(p.problems) > 0 {
		return nil, p.problems
	}
	return d, nil
}
