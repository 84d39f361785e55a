package orders

import (
	"net/netip"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// TCP is a tcp or ssh order's target, which pingmachine connects to itself: a ping is a
// TCP handshake, and for ssh the server's identification line ("SSH-...") after it.
type TCP struct {
	Host      string
	Port      uint16     // tcp: required; ssh: 22 unless set
	IPv6      bool       // connect over IPv6: resolve names to AAAA records
	Source    netip.Addr // zero: the kernel's choice
	Interface string     // empty: any
	Interval  time.Duration
	// RefusedIsAnswer counts a refused connection as an answer (tcp only): it proves the
	// host up.
	RefusedIsAnswer bool
	// KeyType is the Perl version's ssh key_type, accepted so that its orders run
	// unchanged; it chose which nmap run measured the host, and means nothing here.
	KeyType string
}

// SSHBanner starts the line an SSH server sends first (RFC 4253, 4.2); an ssh ping counts
// when it arrives in time.
const SSHBanner = "SSH-"

// tcp reads a tcp or ssh mapping.
func (p *parser) tcp(n *yaml.Node, probe string) *TCP {
	m, ok := p.mapping(n, probe)
	if !ok {
		return nil
	}
	h := p.host(m, n, probe)
	t := &TCP{Host: h.Host, IPv6: h.IPv6, Source: h.Source, Interface: h.Interface, Interval: h.Interval}
	if probe == "ssh" {
		t.Port = 22
	}
	switch v := m["port"]; {
	case v != nil:
		if s := unalias(v); s.Kind == yaml.ScalarNode && intRE.MatchString(s.Value) && validPort(s.Value) {
			port, _ := strconv.Atoi(s.Value)
			t.Port = uint16(port)
		} else {
			p.fail(v, probe+".port", "expected a port number from 1 to 65535, got %s", describe(v))
		}
	case probe == "tcp":
		p.fail(n, "tcp.port", "missing")
	}
	if v := m["refused_is_answer"]; v != nil {
		if probe == "ssh" {
			p.fail(v, "ssh.refused_is_answer", "only for probe tcp: an ssh ping needs the server's %q line", SSHBanner)
		} else {
			t.RefusedIsAnswer, _ = p.boolean(v, "tcp.refused_is_answer")
		}
	}
	if v := m["key_type"]; v != nil {
		if probe != "ssh" {
			p.fail(v, "tcp.key_type", "only for probe ssh")
		} else if s, ok := p.str(v, "ssh.key_type"); ok {
			if !printable(s) {
				p.fail(v, "ssh.key_type", "expected printable text, got %s", describe(v))
			}
			t.KeyType = s
		}
	}
	return t
}
