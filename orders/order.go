// Package orders reads pingmachine's order files. Parse turns one file into a validated
// Order, with errors that name the file, the key and what was expected; a Watcher follows
// the orders/ tree and reports orders as they appear, change, expire and go away.
package orders

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Order is one valid order file.
type Order struct {
	ID      string // the file's path relative to orders/, with '/' separators
	User    string
	Step    time.Duration // whole seconds between rounds; also the RRD step
	Pings   int           // pings per round
	Probe   string        // "fping", "httping", "sping", "pping", "dns", "tcp" or "ssh"
	FPing   *FPing        // set when Probe is "fping"
	HTTPing *HTTPing      // set when Probe is "httping"
	SCION   *SCION        // set when Probe is "sping" or "pping"
	DNS     *DNS          // set when Probe is "dns"
	TCP     *TCP          // set when Probe is "tcp" or "ssh"
	// RRDTemplate is "smokeping" (the default), "norrd" (no main.rrd), or anything else,
	// which the Perl version and this one treat as Smokeping's defaults.
	RRDTemplate string
	Telegraf    Telegraf // from telegraf/<id>, else the telegraf: key, else top-level keys
}

// FPing is an ICMP order's target. The name is kept from the Perl version, which ran fping.
type FPing struct {
	Host      string
	IPv6      bool       // ping over IPv6: resolve names to AAAA records
	Source    netip.Addr // zero: the kernel's choice
	Interface string     // empty: any
	Interval  time.Duration
}

// HTTPing is an order's HTTP(S) target, measured with the httping program.
type HTTPing struct {
	URL       string
	UserAgent string // empty: a pingmachine default
	Proxy     string // host:port, empty for none
	FailCodes []int  // HTTP statuses that count as a lost ping
	Interval  time.Duration
}

// SCION is an sping or pping order's target, measured with SCION's tools.
type SCION struct {
	Host      string
	Source    string // local address, empty for the tool's choice
	Interface string // accepted as the Perl version did; the tools choose their path
	Flags     []string
	Interval  time.Duration
}

// Telegraf says how an order's results are sent to telegraf; an empty Measurement sends
// nothing.
type Telegraf struct {
	Measurement string
	Tags        map[string]string
}

// Limits on the numbers an order may hold. The Perl version had none and failed at run
// time instead.
const (
	MaxStep  = 86400 * time.Second
	MaxPings = 1000
	// MaxTimeout is the per-ping timeout of a round with a step long enough (fping -t 3000
	// in the Perl version); shorter steps get a fifth of the step.
	MaxTimeout = 3 * time.Second
	// MaxSize is the largest order file read: an order is a few hundred bytes.
	MaxSize = 64 << 10
	// MaxHTTPTimeout is httping's timeout per request with a step long enough (the Perl
	// version's 15 s); shorter steps get a fifth of the step.
	MaxHTTPTimeout = 15 * time.Second
)

// Limits of Linux on the paths the store makes of an order id.
const (
	pathMax = 4096 // PATH_MAX: a path's bytes and the terminating NUL
	nameMax = 255  // NAME_MAX: the bytes of one file name
	// outputRoom is what CheckID leaves for the names of the files the store keeps in an
	// order's output directory: .last_result.spare, corrupted_main.rrd,
	// main.step86400.pings1000.2.rrd and the like.
	outputRoom = 64
)

// CheckID reports why an order id (a path relative to orders/) cannot be one: the store
// keeps the order's output in base/output/<id> and base/archive/<id>, and refuses an id
// with a backslash or one that leads outside; the system refuses a file name longer than
// NAME_MAX or a path longer than PATH_MAX. The watcher refuses such an order once, when
// it is read, rather than let the store fail at every round; the store keeps its own
// check as a last defence, and a test of this package runs ids that CheckID accepts,
// at its limits, through the store.
func CheckID(base, id string) error {
	if p := filepath.FromSlash(id); !filepath.IsLocal(p) || filepath.Clean(p) == "." {
		return fmt.Errorf("order id %q is not a path below orders/", id)
	}
	if strings.ContainsRune(id, '\\') {
		return errors.New("a backslash in the order id: the store takes none in the paths it writes")
	}
	for name := range strings.SplitSeq(id, "/") {
		if len(name) > nameMax {
			return fmt.Errorf("the name %.40q... is %d bytes long, more than the %d a file name may have", name, len(name), nameMax)
		}
	}
	// archive/ is the longer of output/ and archive/.
	if n := len(filepath.Join(base, "archive", filepath.FromSlash(id))) + 1 + outputRoom; n >= pathMax {
		return fmt.Errorf("the order id is %d bytes long: the paths of its output in %s would be longer than the %d bytes the system allows",
			len(id), filepath.Join(base, "archive"), pathMax-1)
	}
	return nil
}

// Timing returns the time between two pings of a round and each ping's timeout. The gap
// is the order's interval or, as in the Perl version, 80% of the step less the timeout
// spread over the pings, so that a round ends well inside its step.
//
// httping orders take one request per interval (1 s unless set) with the Perl version's
// 15 s timeout, or a fifth of a shorter step.
func (o *Order) Timing() (gap, timeout time.Duration) {
	if o.HTTPing != nil {
		return cmp.Or(o.HTTPing.Interval, time.Second), min(MaxHTTPTimeout, o.Step/5)
	}
	timeout = min(MaxTimeout, o.Step/5)
	switch {
	case o.FPing != nil && o.FPing.Interval > 0:
		return o.FPing.Interval, timeout
	case o.SCION != nil && o.SCION.Interval > 0:
		return o.SCION.Interval, timeout
	case o.DNS != nil && o.DNS.Interval > 0:
		return o.DNS.Interval, timeout
	case o.TCP != nil && o.TCP.Interval > 0:
		return o.TCP.Interval, timeout
	}
	gap = (o.Step*8/10 - timeout) / time.Duration(o.Pings)
	return gap.Truncate(time.Millisecond), timeout
}

// Target describes where the order pings, for logs: "fping: host".
func (o *Order) Target() string {
	if d := o.Destination(); d != "" {
		return o.Probe + ": " + d
	}
	return o.Probe
}

// Destination is where the order pings: its host, or the URL of an httping order.
func (o *Order) Destination() string {
	switch {
	case o.FPing != nil:
		return o.FPing.Host
	case o.HTTPing != nil:
		return o.HTTPing.URL
	case o.SCION != nil:
		return o.SCION.Host
	case o.DNS != nil:
		return o.DNS.String()
	case o.TCP != nil:
		return net.JoinHostPort(o.TCP.Host, strconv.Itoa(int(o.TCP.Port)))
	}
	return ""
}

// Error is a file that is not a valid order (or telegraf file), with every problem found.
type Error struct {
	File     string
	Problems []Problem
}

// Problem is one thing wrong in an order file.
type Problem struct {
	Key  string // dotted path such as "fping.host"; empty for the file as a whole
	Line int    // 1-based, 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		if p.Key != "" {
			b.WriteString(p.Key + ": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// parser collects the problems of one file.
type parser struct {
	problems []Problem
}

func (p *parser) fail(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.problems = append(p.problems, Problem{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// mapping returns the key/value pairs of a YAML mapping node, in file order.
func (p *parser) mapping(n *yaml.Node, key string) (map[string]*yaml.Node, bool) {
	n = unalias(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, key, "expected a mapping of keys to values, got %s", describe(n))
		return nil, false
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := unalias(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			p.fail(k, key, "expected a plain key, got %s", describe(k))
			continue
		}
		if _, dup := m[k.Value]; dup {
			p.fail(k, join(key, k.Value), "key given twice")
			continue
		}
		m[k.Value] = n.Content[i+1]
	}
	return m, true
}

// unalias follows an alias one step, which is all a well-formed order needs; nested
// aliases are what makes a "billion laughs" document, and they are refused by kind.
func unalias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "a nested alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	}
	return "an empty document"
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// str reads a scalar as text, as Perl's Str type takes it (numbers pass too).
func (p *parser) str(n *yaml.Node, key string) (string, bool) {
	n = unalias(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, key, "expected a text value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

var intRE = regexp.MustCompile(`^-?[0-9]+$`)

// integer reads a whole number within [lo, hi]; "300" passes as Perl's Int type lets it.
func (p *parser) integer(n *yaml.Node, key, unit string, lo, hi int64) (int64, bool) {
	n = unalias(n)
	if n.Kind != yaml.ScalarNode || !intRE.MatchString(n.Value) {
		p.fail(n, key, "expected a whole number of %s, got %s", unit, describe(n))
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || v < lo || v > hi {
		p.fail(n, key, "%s %s out of range: expected %d to %d", n.Value, unit, lo, hi)
		return 0, false
	}
	return v, true
}

// boolean reads true/false (and YAML 1.1's yes/no and on/off), or 1/0 and the empty
// string as Perl's Bool type has them.
func (p *parser) boolean(n *yaml.Node, key string) (bool, bool) {
	n = unalias(n)
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on", "1":
			return true, true
		case "false", "no", "off", "0", "":
			return false, true
		}
	}
	p.fail(n, key, "expected true or false, got %s", describe(n))
	return false, false
}

// probes names the probes an order may use: fping, dns, tcp and ssh, which pingmachine
// measures itself, and httping, sping and pping, which run external programs.
var probes = []string{"fping", "httping", "sping", "pping", "dns", "tcp", "ssh"}

// Parse reads the order with the given id from data. file names it in errors, for
// example "orders/app1/target1".
func Parse(file, id string, data []byte) (*Order, error) {
	p := &parser{}
	o := p.order(id, data)
	if len(p.problems) > 0 {
		return nil, &Error{File: file, Problems: p.problems}
	}
	return o, nil
}

func (p *parser) document(data []byte, expected string) *yaml.Node {
	if len(data) > MaxSize {
		p.fail(nil, "", "%d bytes, more than the %d an order may have", len(data), MaxSize)
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.fail(nil, "", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.fail(nil, "", "empty: expected a mapping with %s", expected)
		return nil
	}
	return doc.Content[0]
}

func (p *parser) order(id string, data []byte) *Order {
	root := p.document(data, "user, step, pings and probe")
	if root == nil {
		return nil
	}
	m, ok := p.mapping(root, "")
	if !ok {
		return nil
	}
	o := &Order{ID: id, RRDTemplate: "smokeping"}
	required := func(key string) *yaml.Node {
		n := m[key]
		if n == nil {
			p.fail(root, key, "missing")
		}
		return n
	}
	if n := required("user"); n != nil {
		o.User, _ = p.str(n, "user")
	}
	var stepOK, pingsOK bool
	if n := required("step"); n != nil {
		var s int64
		s, stepOK = p.integer(n, "step", "seconds", 1, int64(MaxStep/time.Second))
		o.Step = time.Duration(s) * time.Second
	}
	if n := required("pings"); n != nil {
		var v int64
		v, pingsOK = p.integer(n, "pings", "pings", 1, MaxPings)
		o.Pings = int(v)
	}
	if stepOK && pingsOK && int(o.Step/time.Second) < o.Pings {
		p.fail(m["pings"], "pings", "%d pings do not fit a step of %d s: at most one ping per second of step", o.Pings, o.Step/time.Second)
		stepOK = false
	}
	if n := required("probe"); n != nil {
		if probe, ok := p.str(n, "probe"); ok {
			if !slices.Contains(probes, probe) {
				p.fail(n, "probe", "unknown probe %q: expected one of %s", probe, strings.Join(probes, ", "))
			}
			o.Probe = probe
		}
	}
	if slices.Contains(probes, o.Probe) {
		n := m[o.Probe]
		required := "host"
		switch o.Probe {
		case "httping":
			required = "url"
		case "dns":
			required = "server and name"
		}
		switch {
		case n == nil:
			p.fail(root, o.Probe, "missing: probe %s needs a mapping with at least %s", o.Probe, required)
		case o.Probe == "fping":
			o.FPing = p.fping(n)
		case o.Probe == "httping":
			o.HTTPing = p.httping(n)
		case o.Probe == "dns":
			o.DNS = p.dns(n)
		case o.Probe == "tcp" || o.Probe == "ssh":
			o.TCP = p.tcp(n, o.Probe)
		default:
			o.SCION = p.scion(n, o.Probe)
		}
		if (o.FPing != nil || o.HTTPing != nil || o.SCION != nil || o.DNS != nil || o.TCP != nil) && stepOK && pingsOK {
			p.feasible(o, n)
		}
	}
	if n := m["rrd_template"]; n != nil {
		o.RRDTemplate, _ = p.str(n, "rrd_template")
	}
	// Top-level measurement_name and tags, as the Perl README promises; a telegraf:
	// mapping replaces them as a whole.
	o.Telegraf = p.telegraf(m, "")
	if n := m["telegraf"]; n != nil {
		if tm, ok := p.mapping(n, "telegraf"); ok {
			o.Telegraf = p.telegraf(tm, "telegraf")
		}
	}
	return o
}

// feasible checks that a round fits its step: the last ping's timeout ends before the
// next round starts.
func (p *parser) feasible(o *Order, n *yaml.Node) {
	// Only the interval can make a round too long, the one set or httping's default of a
	// second: name the line that sets it, else the mapping's.
	if f := unalias(n); f.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(f.Content); i += 2 {
			if unalias(f.Content[i]).Value == "interval" {
				n = f.Content[i+1]
				break
			}
		}
	}
	gap, timeout := o.Timing()
	key := o.Probe + ".interval"
	if gap < time.Millisecond {
		p.fail(n, key, "the pings of a round would be less than 1 ms apart")
		return
	}
	if d := time.Duration(o.Pings-1)*gap + timeout; d > o.Step {
		p.fail(n, key, "%d pings %v apart with a %v timeout take %v, longer than the step of %v",
			o.Pings, gap, timeout, d, o.Step)
	}
}

func (p *parser) fping(n *yaml.Node) *FPing {
	m, ok := p.mapping(n, "fping")
	if !ok {
		return nil
	}
	return p.host(m, n, "fping")
}

// host reads the keys of the probes that reach a host by its address: host, ipv6,
// source_ip, interface and interval (milliseconds), from the mapping m (node n) of probe.
func (p *parser) host(m map[string]*yaml.Node, n *yaml.Node, probe string) *FPing {
	f := &FPing{}
	var literal netip.Addr
	if h := m["host"]; h == nil {
		p.fail(n, probe+".host", "missing")
	} else if host, ok := p.str(h, probe+".host"); ok {
		if addr, err := netip.ParseAddr(host); err == nil {
			literal = addr.Unmap()
		} else if !validName(host) {
			p.fail(h, probe+".host", "%s is neither an IP address nor a host name", describe(h))
		}
		f.Host = host
	}
	f.IPv6 = literal.Is6()
	if v := m["ipv6"]; v != nil {
		if b, ok := p.boolean(v, probe+".ipv6"); ok {
			if literal.IsValid() && b != literal.Is6() {
				p.fail(v, probe+".ipv6", "is %v but host %s is an IPv%s address", b, literal, map[bool]string{true: "6", false: "4"}[literal.Is6()])
			}
			f.IPv6 = b
		}
	}
	if v := m["source_ip"]; v != nil {
		if s, ok := p.str(v, probe+".source_ip"); ok {
			addr, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				p.fail(v, probe+".source_ip", "expected an IP address, got %s", describe(v))
			case addr.Unmap().Is6() != f.IPv6:
				p.fail(v, probe+".source_ip", "%s is not of the target's address family (IPv%s)", s, map[bool]string{true: "6", false: "4"}[f.IPv6])
			default:
				f.Source = addr.Unmap()
			}
		}
	}
	if v := m["interface"]; v != nil {
		if s, ok := p.str(v, probe+".interface"); ok {
			if !validInterface(s) {
				p.fail(v, probe+".interface", "expected an interface name (1-15 characters, no '/' or spaces), got %s", describe(v))
			}
			f.Interface = s
		}
	}
	if v := m["interval"]; v != nil {
		if ms, ok := p.integer(v, probe+".interval", "milliseconds", 1, int64(MaxStep/time.Millisecond)); ok {
			f.Interval = time.Duration(ms) * time.Millisecond
		}
	}
	return f
}

func (p *parser) httping(n *yaml.Node) *HTTPing {
	m, ok := p.mapping(n, "httping")
	if !ok {
		return nil
	}
	h := &HTTPing{}
	if v := m["url"]; v == nil {
		p.fail(n, "httping.url", "missing")
	} else if s, ok := p.str(v, "httping.url"); ok {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !printable(s) {
			p.fail(v, "httping.url", "expected an http:// or https:// URL with a host, got %s", describe(v))
		}
		h.URL = s
	}
	if v := m["user_agent"]; v != nil {
		if s, ok := p.str(v, "httping.user_agent"); ok {
			if !printable(s) {
				p.fail(v, "httping.user_agent", "expected printable text, got %s", describe(v))
			}
			h.UserAgent = s
		}
	}
	if v := m["proxy"]; v != nil {
		if s, ok := p.str(v, "httping.proxy"); ok && s != "" {
			host, port, err := net.SplitHostPort(s)
			if err != nil || host == "" || strings.HasPrefix(host, "-") || !printable(host) || !validPort(port) {
				p.fail(v, "httping.proxy", "expected host:port, got %s", describe(v))
			}
			h.Proxy = s
		}
	}
	if v := m["http_codes_as_failure"]; v != nil {
		if s, ok := p.str(v, "httping.http_codes_as_failure"); ok {
			for field := range strings.SplitSeq(s, ",") {
				code, err := strconv.Atoi(strings.TrimSpace(field))
				if err != nil || code < 100 || code > 599 {
					p.fail(v, "httping.http_codes_as_failure", "expected HTTP status codes separated by commas (403,407,503), got %s", describe(v))
					break
				}
				h.FailCodes = append(h.FailCodes, code)
			}
		}
	}
	if v := m["interval"]; v != nil {
		if sec, ok := p.integer(v, "httping.interval", "seconds", 1, int64(MaxStep/time.Second)); ok {
			h.Interval = time.Duration(sec) * time.Second
		}
	}
	return h
}

// scion reads an sping or pping mapping.
func (p *parser) scion(n *yaml.Node, probe string) *SCION {
	m, ok := p.mapping(n, probe)
	if !ok {
		return nil
	}
	s := &SCION{}
	// SCION addresses (1-ff00:0:110,[192.0.2.1]) are not host names: any printable text
	// without spaces that cannot be read as an option.
	word := func(key string, v *yaml.Node) string {
		w, ok := p.str(v, key)
		if ok && (w == "" || strings.HasPrefix(w, "-") || !printable(w) || strings.ContainsAny(w, " \t")) {
			p.fail(v, key, "expected an address without spaces, not starting with '-', got %s", describe(v))
		}
		return w
	}
	if v := m["host"]; v == nil {
		p.fail(n, probe+".host", "missing")
	} else {
		s.Host = word(probe+".host", v)
	}
	if v := m["source_ip"]; v != nil {
		s.Source = word(probe+".source_ip", v)
	}
	if v := m["interface"]; v != nil {
		if name, ok := p.str(v, probe+".interface"); ok {
			if !validInterface(name) {
				p.fail(v, probe+".interface", "expected an interface name (1-15 characters, no '/' or spaces), got %s", describe(v))
			}
			s.Interface = name
		}
	}
	if v := m["flags"]; v != nil {
		if f, ok := p.str(v, probe+".flags"); ok {
			if !printable(f) {
				p.fail(v, probe+".flags", "expected printable text, got %s", describe(v))
			}
			s.Flags = strings.Fields(f)
		}
	}
	if v := m["interval"]; v != nil {
		if ms, ok := p.integer(v, probe+".interval", "milliseconds", 1, int64(MaxStep/time.Millisecond)); ok {
			s.Interval = time.Duration(ms) * time.Millisecond
		}
	}
	return s
}

// printable reports whether s has no control characters, which would break a log line
// or a command line.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// telegraf reads measurement_name and tags from a mapping (the order's top level, its
// telegraf: key, or a telegraf file).
func (p *parser) telegraf(m map[string]*yaml.Node, prefix string) Telegraf {
	var t Telegraf
	if n := m["measurement_name"]; n != nil {
		t.Measurement, _ = p.str(n, join(prefix, "measurement_name"))
	}
	n := m["tags"]
	if n == nil {
		return t
	}
	key := join(prefix, "tags")
	tags, ok := p.mapping(n, key)
	if !ok {
		return t
	}
	t.Tags = make(map[string]string, len(tags))
	for k, v := range tags {
		if s, ok := p.str(v, join(key, k)); ok {
			t.Tags[k] = s
		}
	}
	return t
}

// ParseTelegraf reads a telegraf/<id> file: measurement_name and tags.
func ParseTelegraf(file string, data []byte) (Telegraf, error) {
	p := &parser{}
	var t Telegraf
	if root := p.document(data, "measurement_name and tags"); root != nil {
		if m, ok := p.mapping(root, ""); ok {
			t = p.telegraf(m, "")
		}
	}
	if len(p.problems) > 0 {
		return Telegraf{}, &Error{File: file, Problems: p.problems}
	}
	return t, nil
}

// validName accepts DNS host names (RFC 1123 labels; underscores are tolerated, as
// resolvers do). A leading '-' can never pass, so a host never reads as an option.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	// A name whose last label is all digits (1.2.3, 300) would be read as an address by
	// some resolvers.
	last := s[strings.LastIndexByte(s, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

func validInterface(s string) bool {
	return s != "" && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/ \t\n\r\x00:")
}
