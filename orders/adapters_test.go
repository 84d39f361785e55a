package orders

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAdapterOrders(t *testing.T) {
	head := "user: alice\nstep: 60\npings: 5\n"
	tests := []struct {
		name      string
		data      string
		want      *Order
		gap, tout time.Duration
	}{
		{"httping minimal", head + "probe: httping\nhttping:\n  url: http://127.0.0.1:8080/health\n",
			&Order{HTTPing: &HTTPing{URL: "http://127.0.0.1:8080/health"}}, time.Second, 12 * time.Second},
		{"httping all keys", head + "probe: httping\nhttping:\n  url: https://example.com/\n  user_agent: probe/1.0\n" +
			"  proxy: proxy.example.com:3128\n  http_codes_as_failure: 403, 407,503\n  interval: 2\n",
			&Order{HTTPing: &HTTPing{URL: "https://example.com/", UserAgent: "probe/1.0", Proxy: "proxy.example.com:3128",
				FailCodes: []int{403, 407, 503}, Interval: 2 * time.Second}}, 2 * time.Second, 12 * time.Second},
		{"httping one failure code as a number", head + "probe: httping\nhttping:\n  url: http://h/\n  http_codes_as_failure: 503\n",
			&Order{HTTPing: &HTTPing{URL: "http://h/", FailCodes: []int{503}}}, time.Second, 12 * time.Second},
		{"sping", head + "probe: sping\nsping:\n  host: 1-ff00:0:110,[127.0.0.1]\n  source_ip: 1-ff00:0:111,[127.0.0.2]\n" +
			"  interface: eth0\n  flags: -sciond 127.0.0.1:30255  -log.level debug\n",
			&Order{SCION: &SCION{Host: "1-ff00:0:110,[127.0.0.1]", Source: "1-ff00:0:111,[127.0.0.2]", Interface: "eth0",
				Flags: []string{"-sciond", "127.0.0.1:30255", "-log.level", "debug"}}}, 9 * time.Second, 3 * time.Second},
		{"pping with interval", head + "probe: pping\npping:\n  host: 1-ff00:0:110,[::1]\n  interval: 500\n",
			&Order{SCION: &SCION{Host: "1-ff00:0:110,[::1]", Interval: 500 * time.Millisecond}}, 500 * time.Millisecond, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse("orders/x", "x", []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.HTTPing, tt.want.HTTPing) || !reflect.DeepEqual(o.SCION, tt.want.SCION) || o.FPing != nil {
				t.Errorf("got %+v %+v, want %+v %+v", o.HTTPing, o.SCION, tt.want.HTTPing, tt.want.SCION)
			}
			if gap, tout := o.Timing(); gap != tt.gap || tout != tt.tout {
				t.Errorf("Timing() = %v, %v; want %v, %v", gap, tout, tt.gap, tt.tout)
			}
		})
	}
}

func TestParseAdapterErrors(t *testing.T) {
	head := "user: alice\nstep: 60\npings: 5\n"
	tests := []struct {
		name, data, want string
	}{
		{"httping without mapping", head + "probe: httping\n", "httping: missing: probe httping needs a mapping with at least url"},
		{"url missing", head + "probe: httping\nhttping: {user_agent: x}\n", "httping.url: missing"},
		{"url like an option", head + "probe: httping\nhttping: {url: -x}\n", `httping.url: expected an http:// or https:// URL with a host, got "-x"`},
		{"url of another scheme", head + "probe: httping\nhttping: {url: 'ftp://h/'}\n", "httping.url: expected an http:// or https:// URL"},
		{"url without host", head + "probe: httping\nhttping: {url: 'http:///x'}\n", "httping.url: expected an http:// or https:// URL"},
		{"url with a newline", head + "probe: httping\nhttping: {url: \"http://h/\\n-x\"}\n", "httping.url: expected"},
		{"proxy without port", head + "probe: httping\nhttping: {url: 'http://h/', proxy: p}\n", `httping.proxy: expected host:port, got "p"`},
		{"proxy like an option", head + "probe: httping\nhttping: {url: 'http://h/', proxy: '-x:80'}\n", "httping.proxy: expected host:port"},
		{"failure codes", head + "probe: httping\nhttping: {url: 'http://h/', http_codes_as_failure: '403,abc'}\n",
			"httping.http_codes_as_failure: expected HTTP status codes separated by commas"},
		{"failure code out of range", head + "probe: httping\nhttping: {url: 'http://h/', http_codes_as_failure: '99'}\n",
			"httping.http_codes_as_failure: expected HTTP status codes"},
		{"httping interval in ms is too long", head + "probe: httping\nhttping: {url: 'http://h/', interval: 20}\n",
			"httping.interval: 5 pings 20s apart with a 12s timeout take 1m32s, longer than the step of 1m0s"},
		{"sping host like an option", head + "probe: sping\nsping: {host: '-remote'}\n",
			`sping.host: expected an address without spaces, not starting with '-', got "-remote"`},
		{"pping host with a space", head + "probe: pping\npping: {host: 'a b'}\n", "pping.host: expected an address without spaces"},
		{"pping source like an option", head + "probe: pping\npping: {host: h, source_ip: '-x'}\n", "pping.source_ip: expected an address"},
		{"sping host missing", head + "probe: sping\nsping: {flags: x}\n", "sping.host: missing"},
		{"sping interval too long", head + "probe: sping\nsping: {host: h, interval: 20000}\n", "sping.interval: 5 pings 20s apart"},
		{"unknown probe", head + "probe: nmap\nnmap: {host: h}\n", `probe: unknown probe "nmap": expected one of fping, httping, sping, pping, dns, tcp, ssh`},
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
