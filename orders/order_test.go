package orders

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testFile = "orders/app/x"

// minimal is the smallest valid fping order.
const minimal = "user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: example.com\n"

// base returns the order Parse should make of minimal, for tests to adjust.
func base() *Order {
	return &Order{
		ID:          "app/x",
		User:        "alice",
		Step:        300 * time.Second,
		Pings:       20,
		Probe:       "fping",
		FPing:       &FPing{Host: "example.com"},
		RRDTemplate: "smokeping",
	}
}

func dump(o *Order) string {
	if o == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("%+v", *o)
	if o.FPing != nil {
		s += fmt.Sprintf(" FPing=%+v", *o.FPing)
	}
	return s
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		data string
		want func(o *Order)
	}{
		{"minimal", minimal, func(o *Order) {}},
		{
			"quoted numbers as Perl's Int takes them",
			"user: alice\nstep: \"300\"\npings: '20'\nprobe: fping\nfping:\n  host: example.com\n",
			func(o *Order) {},
		},
		{
			"flow style, document marker and comments",
			"# an order\n---\n{user: alice, step: 300, pings: 20, probe: fping, fping: {host: example.com}} # done\n",
			func(o *Order) {},
		},
		{
			"numeric user is text",
			"user: 1000\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: example.com\n",
			func(o *Order) { o.User = "1000" },
		},
		{
			"ipv4 literal",
			"user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n",
			func(o *Order) { o.FPing.Host = "192.0.2.1" },
		},
		{
			"ipv6 literal sets IPv6",
			"user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: 2001:db8::1\n",
			func(o *Order) { o.FPing.Host = "2001:db8::1"; o.FPing.IPv6 = true },
		},
		{
			"ipv4-mapped ipv6 literal is IPv4",
			"user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: \"::ffff:192.0.2.1\"\n",
			func(o *Order) { o.FPing.Host = "::ffff:192.0.2.1" },
		},
		{
			"ipv6 true with a host name",
			minimal + "  ipv6: true\n",
			func(o *Order) { o.FPing.IPv6 = true },
		},
		{
			"ipv6 1 as Perl's Bool",
			minimal + "  ipv6: 1\n",
			func(o *Order) { o.FPing.IPv6 = true },
		},
		{
			"ipv6 false with a host name",
			minimal + "  ipv6: false\n",
			func(o *Order) {},
		},
		{
			"ipv6 empty string is false",
			minimal + "  ipv6: ''\n",
			func(o *Order) {},
		},
		{
			"ipv6 true agrees with an ipv6 literal",
			"user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: 2001:db8::1\n  ipv6: true\n",
			func(o *Order) { o.FPing.Host = "2001:db8::1"; o.FPing.IPv6 = true },
		},
		{
			"ipv6 false agrees with an ipv4 literal",
			"user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n  ipv6: no\n",
			func(o *Order) { o.FPing.Host = "192.0.2.1" },
		},
		{
			"source_ip, interface and interval",
			"user: alice\nstep: 60\npings: 20\nprobe: fping\nfping:\n  host: 192.0.2.1\n  source_ip: 192.0.2.10\n  interface: eth0\n  interval: 500\n",
			func(o *Order) {
				o.Step = 60 * time.Second
				o.FPing = &FPing{
					Host:      "192.0.2.1",
					Source:    netip.MustParseAddr("192.0.2.10"),
					Interface: "eth0",
					Interval:  500 * time.Millisecond,
				}
			},
		},
		{
			"ipv6 source_ip with an ipv6 name",
			minimal + "  ipv6: true\n  source_ip: 2001:db8::10\n",
			func(o *Order) { o.FPing.IPv6 = true; o.FPing.Source = netip.MustParseAddr("2001:db8::10") },
		},
		{
			"ipv4-mapped source_ip is IPv4",
			minimal + "  source_ip: \"::ffff:192.0.2.10\"\n",
			func(o *Order) { o.FPing.Source = netip.MustParseAddr("192.0.2.10") },
		},
		{
			"interface of 15 characters with dots and dashes",
			minimal + "  interface: vlan-100.abcdef\n",
			func(o *Order) { o.FPing.Interface = "vlan-100.abcdef" },
		},
		{
			"host name with trailing dot, underscore and digits",
			"user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: _srv.host-1.example.com.\n",
			func(o *Order) { o.FPing.Host = "_srv.host-1.example.com." },
		},
		{
			"single-label host name",
			"user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  host: localhost\n",
			func(o *Order) { o.FPing.Host = "localhost" },
		},
		{
			"unknown keys ignored",
			"task: upload-42\nuser: alice\nstep: 300\npings: 20\nprobe: fping\nextra:\n  nested: [1, 2, {a: b}]\nfping:\n  host: example.com\n  color: blue\n",
			func(o *Order) {},
		},
		{
			"rrd_template norrd",
			minimal + "rrd_template: norrd\n",
			func(o *Order) { o.RRDTemplate = "norrd" },
		},
		{
			"other rrd_template kept as given",
			minimal + "rrd_template: custom\n",
			func(o *Order) { o.RRDTemplate = "custom" },
		},
		{
			"top-level telegraf settings",
			minimal + "measurement_name: ping\ntags:\n  site: zrh\n  customer: acme\n",
			func(o *Order) {
				o.Telegraf = Telegraf{Measurement: "ping", Tags: map[string]string{"site": "zrh", "customer": "acme"}}
			},
		},
		{
			"telegraf mapping",
			minimal + "telegraf:\n  measurement_name: ping\n  tags: {site: zrh}\n",
			func(o *Order) {
				o.Telegraf = Telegraf{Measurement: "ping", Tags: map[string]string{"site": "zrh"}}
			},
		},
		{
			"telegraf mapping replaces top-level settings as a whole",
			minimal + "measurement_name: top\ntags: {site: zrh}\ntelegraf:\n  measurement_name: inner\n",
			func(o *Order) { o.Telegraf = Telegraf{Measurement: "inner"} },
		},
		{
			"empty telegraf mapping clears top-level settings",
			minimal + "measurement_name: top\ntags: {site: zrh}\ntelegraf: {}\n",
			func(o *Order) { o.Telegraf = Telegraf{} },
		},
		{
			"tag values that are numbers or booleans become strings",
			minimal + "tags:\n  rack: 12\n  weight: 1.5\n  primary: true\n  hex: 0x1F\n",
			func(o *Order) {
				o.Telegraf.Tags = map[string]string{"rack": "12", "weight": "1.5", "primary": "true", "hex": "0x1F"}
			},
		},
		{
			"empty tags",
			minimal + "measurement_name: m\ntags: {}\n",
			func(o *Order) { o.Telegraf = Telegraf{Measurement: "m", Tags: map[string]string{}} },
		},
		{
			"alias to a mapping",
			"target: &t\n  host: example.com\nuser: alice\nstep: 300\npings: 20\nprobe: fping\nfping: *t\n",
			func(o *Order) {},
		},
		{
			"smallest step and pings",
			"user: alice\nstep: 1\npings: 1\nprobe: fping\nfping:\n  host: example.com\n",
			func(o *Order) { o.Step = time.Second; o.Pings = 1 },
		},
		{
			"largest step and pings",
			"user: alice\nstep: 86400\npings: 1000\nprobe: fping\nfping:\n  host: example.com\n",
			func(o *Order) { o.Step = MaxStep; o.Pings = MaxPings },
		},
		{
			"as many pings as seconds",
			"user: alice\nstep: 20\npings: 20\nprobe: fping\nfping:\n  host: example.com\n",
			func(o *Order) { o.Step = 20 * time.Second },
		},
		{
			"exactly MaxSize bytes",
			minimal + "#" + strings.Repeat("x", MaxSize-len(minimal)-2) + "\n",
			func(o *Order) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse(testFile, "app/x", []byte(tt.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := base()
			tt.want(want)
			if !reflect.DeepEqual(o, want) {
				t.Errorf("Parse:\n got %s\nwant %s", dump(o), dump(want))
			}
		})
	}
}

func TestTiming(t *testing.T) {
	tests := []struct {
		name     string
		step     int
		pings    int
		interval time.Duration
		gap      time.Duration
		timeout  time.Duration
	}{
		// Perl: (300*0.8*1000 - 3000) / 20 = 11850 (it prints 11849 after float rounding).
		{"step 300 pings 20", 300, 20, 0, 11850 * time.Millisecond, 3 * time.Second},
		{"step 60 pings 20", 60, 20, 0, 2250 * time.Millisecond, 3 * time.Second},
		{"step 10 pings 5: timeout a fifth of the step", 10, 5, 0, 1200 * time.Millisecond, 2 * time.Second},
		{"step 15: timeout exactly 3 s", 15, 3, 0, 3 * time.Second, 3 * time.Second},
		{"step 1 pings 1", 1, 1, 0, 600 * time.Millisecond, 200 * time.Millisecond},
		{"gap truncated to milliseconds", 300, 7, 0, 33857 * time.Millisecond, 3 * time.Second},
		{"explicit interval wins", 300, 20, 1500 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second},
		{"explicit interval with short step", 10, 5, 100 * time.Millisecond, 100 * time.Millisecond, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := fmt.Sprintf("user: u\nstep: %d\npings: %d\nprobe: fping\nfping:\n  host: example.com\n", tt.step, tt.pings)
			if tt.interval > 0 {
				data += fmt.Sprintf("  interval: %d\n", tt.interval.Milliseconds())
			}
			o, err := Parse(testFile, "app/x", []byte(data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			gap, timeout := o.Timing()
			if gap != tt.gap || timeout != tt.timeout {
				t.Errorf("Timing() = %v, %v; want %v, %v", gap, timeout, tt.gap, tt.timeout)
			}
		})
	}
}

func TestTarget(t *testing.T) {
	o, err := Parse(testFile, "app/x", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Target(); got != "fping: example.com" {
		t.Errorf("Target() = %q", got)
	}
	if got := (&Order{Probe: "httping"}).Target(); got != "httping" {
		t.Errorf("Target() without FPing = %q", got)
	}
	for o, want := range map[*Order]string{
		o: "example.com",
		{Probe: "httping", HTTPing: &HTTPing{URL: "https://example.com/"}}: "https://example.com/",
		{Probe: "sping", SCION: &SCION{Host: "1-ff00:0:110,[192.0.2.1]"}}:  "1-ff00:0:110,[192.0.2.1]",
		{Probe: "httping"}: "",
	} {
		if got := o.Destination(); got != want {
			t.Errorf("Destination() of %s = %q, want %q", dump(o), got, want)
		}
	}
}

// order builds an order from the required keys and the lines of its fping mapping.
func order(step, pings string, fping ...string) string {
	s := "user: alice\nstep: " + step + "\npings: " + pings + "\nprobe: fping\nfping:\n"
	for _, l := range fping {
		s += "  " + l + "\n"
	}
	return s
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		n    int      // problems expected
		want []string // in Error(), after the file name
	}{
		{"not YAML", "user: alice\nstep: 300: 20\n", 1,
			[]string{"not valid YAML: line 2: mapping values are not allowed"}},
		{"unclosed flow", "user: [alice\n", 1, []string{"not valid YAML"}},
		{"tab indentation", "user: alice\nfping:\n\thost: x\n", 1, []string{"not valid YAML", "line 3"}},
		{"empty file", "", 1, []string{"empty: expected a mapping with user, step, pings and probe"}},
		{"only a comment", "# nothing here\n", 1, []string{"empty: expected a mapping"}},
		{"null document", "---\n", 1, []string{"expected a mapping of keys to values, got nothing"}},
		{"top level a list", "- user: alice\n- step: 300\n", 1,
			[]string{"line 1: expected a mapping of keys to values, got a list"}},
		{"top level a scalar", "hello\n", 1, []string{`expected a mapping of keys to values, got "hello"`}},
		{"all required keys missing, reported at once", "task: x\n", 4,
			[]string{"user: missing", "step: missing", "pings: missing", "probe: missing"}},
		{"probe missing", "user: alice\nstep: 300\npings: 20\nfping: {host: example.com}\n", 1,
			[]string{"line 1: probe: missing"}},
		{"user a list", "user: [a, b]\nstep: 300\npings: 20\nprobe: fping\nfping: {host: h}\n", 1,
			[]string{"line 1: user: expected a text value, got a list"}},
		{"user null", "user:\nstep: 300\npings: 20\nprobe: fping\nfping: {host: h}\n", 1,
			[]string{"line 1: user: expected a text value, got nothing"}},
		{"step abc", order("abc", "20", "host: h"), 1,
			[]string{`line 2: step: expected a whole number of seconds, got "abc"`}},
		{"step 300.5", order("300.5", "20", "host: h"), 1,
			[]string{`line 2: step: expected a whole number of seconds, got "300.5"`}},
		{"step 0", order("0", "1", "host: h"), 1,
			[]string{"line 2: step: 0 seconds out of range: expected 1 to 86400"}},
		{"step -5", order("-5", "1", "host: h"), 1,
			[]string{"line 2: step: -5 seconds out of range: expected 1 to 86400"}},
		{"step 86401", order("86401", "20", "host: h"), 1,
			[]string{"line 2: step: 86401 seconds out of range: expected 1 to 86400"}},
		{"step beyond int64", order("99999999999999999999", "20", "host: h"), 1,
			[]string{"line 2: step: 99999999999999999999 seconds out of range"}},
		{"step a list", order("[300]", "20", "host: h"), 1,
			[]string{"line 2: step: expected a whole number of seconds, got a list"}},
		{"step null", order("", "20", "host: h"), 1,
			[]string{"line 2: step: expected a whole number of seconds, got nothing"}},
		{"pings 0", order("300", "0", "host: h"), 1,
			[]string{"line 3: pings: 0 pings out of range: expected 1 to 1000"}},
		{"pings 1001", order("86400", "1001", "host: h"), 1,
			[]string{"line 3: pings: 1001 pings out of range: expected 1 to 1000"}},
		{"pings 2.5", order("300", "2.5", "host: h"), 1,
			[]string{`line 3: pings: expected a whole number of pings, got "2.5"`}},
		{"step shorter than pings", order("3", "5", "host: h"), 1,
			[]string{"line 3: pings: 5 pings do not fit a step of 3 s"}},
		{"unknown probe", "user: alice\nstep: 300\npings: 20\nprobe: tcpping\n", 1,
			[]string{`line 4: probe: unknown probe "tcpping": expected one of fping`}},
		{"probe a mapping", "user: alice\nstep: 300\npings: 20\nprobe: {fping: 1}\n", 1,
			[]string{"line 4: probe: expected a text value, got a mapping"}},
		{"probe fping without fping", "user: alice\nstep: 300\npings: 20\nprobe: fping\n", 1,
			[]string{"fping: missing: probe fping needs a mapping with at least host"}},
		{"fping a scalar", "user: alice\nstep: 300\npings: 20\nprobe: fping\nfping: example.com\n", 1,
			[]string{`line 5: fping: expected a mapping of keys to values, got "example.com"`}},
		{"fping a list", "user: alice\nstep: 300\npings: 20\nprobe: fping\nfping:\n  - host: h\n", 1,
			[]string{"line 6: fping: expected a mapping of keys to values, got a list"}},
		{"host missing", order("300", "20", "ipv6: true"), 1, []string{"line 6: fping.host: missing"}},
		{"host missing in empty mapping", "user: alice\nstep: 300\npings: 20\nprobe: fping\nfping: {}\n", 1,
			[]string{"line 5: fping.host: missing"}},
		{"host -x", order("300", "20", "host: -x"), 1,
			[]string{`line 6: fping.host: "-x" is neither an IP address nor a host name`}},
		{"host -x.example.com", order("300", "20", "host: -x.example.com"), 1,
			[]string{`fping.host: "-x.example.com" is neither an IP address nor a host name`}},
		{"host bad host!", order("300", "20", "host: bad host!"), 1,
			[]string{`line 6: fping.host: "bad host!" is neither an IP address nor a host name`}},
		{"host 1.2.3", order("300", "20", "host: 1.2.3"), 1,
			[]string{`line 6: fping.host: "1.2.3" is neither an IP address nor a host name`}},
		{"host 300", order("300", "20", "host: 300"), 1,
			[]string{`fping.host: "300" is neither an IP address nor a host name`}},
		{"host 1.2.3.256", order("300", "20", "host: 1.2.3.256"), 1,
			[]string{`fping.host: "1.2.3.256" is neither`}},
		{"host empty", order("300", "20", "host: ''"), 1, []string{`fping.host: "" is neither`}},
		{"host empty label", order("300", "20", "host: a..example.com"), 1, []string{`fping.host: "a..example.com" is neither`}},
		{"host label ending in -", order("300", "20", "host: a-.example.com"), 1, []string{`fping.host: "a-.example.com" is neither`}},
		{"host label of 64 characters", order("300", "20", "host: "+strings.Repeat("a", 64)+".com"), 1,
			[]string{`fping.host: "` + strings.Repeat("a", 40) + `..." is neither`}},
		{"host null", order("300", "20", "host:"), 1, []string{"line 6: fping.host: expected a text value, got nothing"}},
		{"ipv6 false with an ipv6 literal", order("300", "20", "host: 2001:db8::1", "ipv6: false"), 1,
			[]string{"line 7: fping.ipv6: is false but host 2001:db8::1 is an IPv6 address"}},
		{"ipv6 true with an ipv4 literal", order("300", "20", "host: 192.0.2.1", "ipv6: true"), 1,
			[]string{"line 7: fping.ipv6: is true but host 192.0.2.1 is an IPv4 address"}},
		{"ipv6 maybe", order("300", "20", "host: h", "ipv6: maybe"), 1,
			[]string{`line 7: fping.ipv6: expected true or false, got "maybe"`}},
		{"ipv6 a list", order("300", "20", "host: h", "ipv6: [true]"), 1,
			[]string{"line 7: fping.ipv6: expected true or false, got a list"}},
		{"source_ip not an address", order("300", "20", "host: h", "source_ip: my.host"), 1,
			[]string{`line 7: fping.source_ip: expected an IP address, got "my.host"`}},
		{"source_ip ipv6 for an ipv4 target", order("300", "20", "host: 192.0.2.1", "source_ip: 2001:db8::2"), 1,
			[]string{"line 7: fping.source_ip: 2001:db8::2 is not of the target's address family (IPv4)"}},
		{"source_ip ipv4 for an ipv6 target", order("300", "20", "host: 2001:db8::1", "source_ip: 192.0.2.2"), 1,
			[]string{"line 7: fping.source_ip: 192.0.2.2 is not of the target's address family (IPv6)"}},
		{"source_ip ipv4 for a name with ipv6 true", order("300", "20", "host: h", "ipv6: true", "source_ip: 192.0.2.2"), 1,
			[]string{"line 8: fping.source_ip: 192.0.2.2 is not of the target's address family (IPv6)"}},
		{"interface with a slash", order("300", "20", "host: h", "interface: eth0/1"), 1,
			[]string{`line 7: fping.interface: expected an interface name (1-15 characters, no '/' or spaces), got "eth0/1"`}},
		{"interface of 16 characters", order("300", "20", "host: h", "interface: abcdefghijklmnop"), 1,
			[]string{`line 7: fping.interface: expected an interface name (1-15 characters, no '/' or spaces), got "abcdefghijklmnop"`}},
		{"interface empty", order("300", "20", "host: h", "interface: ''"), 1,
			[]string{`line 7: fping.interface: expected an interface name (1-15 characters, no '/' or spaces), got ""`}},
		{"interface with a space", order("300", "20", "host: h", "interface: 'eth 0'"), 1,
			[]string{`fping.interface: expected an interface name`}},
		{"interface ..", order("300", "20", "host: h", "interface: '..'"), 1,
			[]string{`fping.interface: expected an interface name`}},
		{"interval 0", order("300", "20", "host: h", "interval: 0"), 1,
			[]string{"line 7: fping.interval: 0 milliseconds out of range: expected 1 to 86400000"}},
		{"interval 1.5", order("300", "20", "host: h", "interval: 1.5"), 1,
			[]string{`line 7: fping.interval: expected a whole number of milliseconds, got "1.5"`}},
		{"interval too long for the step", order("10", "5", "host: h", "source_ip: 192.0.2.1", "interval: 3000"), 1,
			[]string{"line 8: fping.interval: 5 pings 3s apart with a 2s timeout take 14s, longer than the step of 10s"}},
		{"interval of the whole step", order("300", "2", "host: h", "interval: 300000"), 1,
			[]string{"fping.interval: 2 pings 5m0s apart with a 3s timeout take 5m3s, longer than the step of 5m0s"}},
		{"telegraf a list", minimal + "telegraf:\n  - measurement_name: m\n", 1,
			[]string{"line 8: telegraf: expected a mapping of keys to values, got a list"}},
		{"tags a list", minimal + "tags: [a, b]\n", 1,
			[]string{"line 7: tags: expected a mapping of keys to values, got a list"}},
		{"telegraf.tags a list", minimal + "telegraf:\n  tags: [a, b]\n", 1,
			[]string{"line 8: telegraf.tags: expected a mapping of keys to values, got a list"}},
		{"tag value a mapping", minimal + "tags:\n  site: {a: b}\n", 1,
			[]string{"line 8: tags.site: expected a text value, got a mapping"}},
		{"tag value null", minimal + "tags:\n  site:\n", 1,
			[]string{"tags.site: expected a text value, got nothing"}},
		{"measurement_name a list", minimal + "measurement_name: [a]\n", 1,
			[]string{"line 7: measurement_name: expected a text value, got a list"}},
		{"rrd_template a mapping", minimal + "rrd_template: {a: b}\n", 1,
			[]string{"line 7: rrd_template: expected a text value, got a mapping"}},
		{"duplicate key", "user: alice\nstep: 300\npings: 20\nuser: bob\nprobe: fping\nfping: {host: h}\n", 1,
			[]string{"line 4: user: key given twice"}},
		{"duplicate key in fping", order("300", "20", "host: a", "host: b"), 1,
			[]string{"line 7: fping.host: key given twice"}},
		{"duplicate tag", minimal + "tags:\n  a: 1\n  a: 2\n", 1,
			[]string{"line 9: tags.a: key given twice"}},
		{"mapping as a key", "? {a: b}\n: c\nuser: alice\nstep: 300\npings: 20\nprobe: fping\nfping: {host: h}\n", 1,
			[]string{"line 1: expected a plain key, got a mapping"}},
		{"larger than MaxSize", minimal + "#" + strings.Repeat("x", MaxSize-len(minimal)-1) + "\n", 1,
			[]string{fmt.Sprintf("%d bytes, more than the %d an order may have", MaxSize+1, MaxSize)}},
		{"several problems at once",
			"user: alice\nstep: abc\npings: 2000\nprobe: fping\nfping:\n  host: -x\n  interface: a/b\ntags: [x]\n", 5,
			[]string{
				`line 2: step: expected a whole number of seconds, got "abc"`,
				"line 3: pings: 2000 pings out of range",
				`line 6: fping.host: "-x" is neither`,
				`line 7: fping.interface: expected an interface name`,
				"line 8: tags: expected a mapping",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse(testFile, "app/x", []byte(tt.data))
			if err == nil {
				t.Fatalf("Parse succeeded: %s", dump(o))
			}
			if o != nil {
				t.Errorf("Parse returned an order with its error: %s", dump(o))
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			if perr.File != testFile {
				t.Errorf("File = %q", perr.File)
			}
			if len(perr.Problems) != tt.n {
				t.Errorf("%d problems, want %d: %v", len(perr.Problems), tt.n, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, testFile+": ") {
				t.Errorf("error does not start with the file name: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
		})
	}
}

func TestErrorFields(t *testing.T) {
	data := "user: alice\nstep: abc\npings: 20\nprobe: fping\nfping:\n  host: h\n  ipv6: maybe\n"
	_, err := Parse("orders/a/b", "a/b", []byte(data))
	wrapped := fmt.Errorf("loading: %w", err)
	var perr *Error
	if !errors.As(wrapped, &perr) {
		t.Fatalf("errors.As failed on %v", wrapped)
	}
	want := []Problem{
		{Key: "step", Line: 2, Msg: `expected a whole number of seconds, got "abc"`},
		{Key: "fping.ipv6", Line: 7, Msg: `expected true or false, got "maybe"`},
	}
	if !reflect.DeepEqual(perr.Problems, want) {
		t.Errorf("Problems = %+v\nwant %+v", perr.Problems, want)
	}
	const text = `orders/a/b: line 2: step: expected a whole number of seconds, got "abc"; ` +
		`line 7: fping.ipv6: expected true or false, got "maybe"`
	if got := err.Error(); got != text {
		t.Errorf("Error() = %q\nwant %q", got, text)
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "f"}, "f"},
		{Error{File: "f", Problems: []Problem{{Msg: "bad"}}}, "f: bad"},
		{Error{File: "f", Problems: []Problem{{Key: "k", Msg: "bad"}}}, "f: k: bad"},
		{Error{File: "f", Problems: []Problem{{Line: 3, Msg: "bad"}}}, "f: line 3: bad"},
		{Error{File: "f", Problems: []Problem{{Key: "a", Line: 1, Msg: "x"}, {Key: "b.c", Line: 2, Msg: "y"}}},
			"f: line 1: a: x; line 2: b.c: y"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestParseTelegraf(t *testing.T) {
	valid := []struct {
		name string
		data string
		want Telegraf
	}{
		{"measurement and tags", "measurement_name: ping\ntags:\n  site: zrh\n  rack: 12\n",
			Telegraf{Measurement: "ping", Tags: map[string]string{"site": "zrh", "rack": "12"}}},
		{"measurement only", "measurement_name: ping\n", Telegraf{Measurement: "ping"}},
		{"unknown keys ignored", "measurement_name: ping\nother: [1]\n", Telegraf{Measurement: "ping"}},
		{"empty mapping", "{}\n", Telegraf{}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTelegraf("telegraf/app/x", []byte(tt.data))
			if err != nil {
				t.Fatalf("ParseTelegraf: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	invalid := []struct {
		name string
		data string
		want []string
	}{
		{"invalid YAML", "measurement_name: a: b\n", []string{"not valid YAML"}},
		{"not a mapping", "- measurement_name: ping\n", []string{"line 1: expected a mapping of keys to values, got a list"}},
		{"tags a list", "measurement_name: ping\ntags: [a]\n", []string{"line 2: tags: expected a mapping"}},
		{"measurement a mapping", "measurement_name: {a: b}\n", []string{"line 1: measurement_name: expected a text value, got a mapping"}},
		{"empty", "", []string{"empty: expected a mapping with measurement_name and tags"}},
		{"too large", "#" + strings.Repeat("x", MaxSize), []string{"bytes, more than the"}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTelegraf("telegraf/app/x", []byte(tt.data))
			if err == nil {
				t.Fatalf("ParseTelegraf succeeded: %+v", got)
			}
			if !reflect.DeepEqual(got, Telegraf{}) {
				t.Errorf("settings returned with the error: %+v", got)
			}
			var perr *Error
			if !errors.As(err, &perr) || perr.File != "telegraf/app/x" {
				t.Fatalf("error %v is not an *Error for telegraf/app/x", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "telegraf/app/x: ") {
				t.Errorf("error does not start with the file name: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
		})
	}
}

func TestIgnored(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{".hidden", true},
		{".", true},
		{"..", true},
		{".git", true},
		{"x.tmp", true},
		{".x.tmp", true},
		{"x~", true},
		{".x.swp", true},
		{"x.swp", true},
		{"x.swx", true},
		{"x", false},
		{"x.yaml", false},
		{"tmp", false},
		{"x.tmpl", false},
		{"swp", false},
		{"a.b", false},
		{"x~y", false},
	}
	for _, tt := range tests {
		if got := Ignored(tt.name); got != tt.want {
			t.Errorf("Ignored(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// longID returns an id of n bytes: names of 200 bytes and a shorter last one.
func longID(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(strings.Repeat("x", min(200, n-b.Len())))
	}
	return b.String()
}

func TestCheckID(t *testing.T) {
	const base = "/var/lib/pingmachine"
	// The longest path the store makes: /var/lib/pingmachine/archive/<id>/ and 64 bytes
	// of file name, at most 4095 bytes.
	longest := 4095 - len(base+"/archive/") - 1 - 64
	tests := []struct {
		id, err string
	}{
		{"a", ""},
		{"app1/target1", ""},
		{"site/with space/und ümlaut", ""},
		{strings.Repeat("n", 255) + "/x", ""},
		{longID(longest), ""},
		{`a\b`, "a backslash in the order id"},
		{`dir\/x`, "a backslash in the order id"},
		{strings.Repeat("n", 256), "is 256 bytes long, more than the 255 a file name may have"},
		{"ok/" + strings.Repeat("n", 300) + "/x", "is 300 bytes long, more than the 255"},
		{longID(longest + 1), fmt.Sprintf("the order id is %d bytes long: the paths of its output in %s/archive would be longer than the 4095 bytes", longest+1, base)},
		{".", "is not a path below orders/"},
		{"../x", "is not a path below orders/"},
		{"/abs", "is not a path below orders/"},
		{"", "is not a path below orders/"},
	}
	for _, tt := range tests {
		err := CheckID(base, tt.id)
		name := tt.id
		if len(name) > 40 {
			name = fmt.Sprintf("%.40s... (%d bytes)", name, len(name))
		}
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("CheckID(%s) = %v, want nil", name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("CheckID(%s) = %v, want an error saying %q", name, err, tt.err)
		}
	}
}
