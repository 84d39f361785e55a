package main

import (
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"pingmachine/pinger/dnsping/dnstest"
	"pingmachine/rrdfmt/rrdtest"
)

// TestDaemonDNS runs dns orders against a real dnsmasq (answers, NXDOMAIN, REFUSED), a
// stopped one (no answer), scripted servers (SERVFAIL, a delay) and a port that never
// answers, over UDP and TCP, and checks last_result, main.rrd and telegraf.
func TestDaemonDNS(t *testing.T) {
	t.Parallel()
	dnsmasq := dnstest.StartDNSMasq(t)
	stopped := dnstest.StartStoppedDNSMasq(t)
	servfail := dnstest.StartServer(t, 0, dnstest.Answer(dns.RcodeServerFailure)).Addr
	const delay = 100 * time.Millisecond
	slow := dnstest.StartServer(t, delay, dnstest.Answer(dns.RcodeSuccess)).Addr
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	base := t.TempDir()
	dnsOrder := func(server fmt.Stringer, lines ...string) string {
		s := fmt.Sprintf("user: e2e\nstep: 3\npings: 3\nprobe: dns\ndns:\n  server: %s\n  interval: 200\n", server)
		for _, l := range lines {
			s += "  " + l + "\n"
		}
		return s
	}
	orders := []struct {
		id, text string
		loss     int
	}{
		{"dns/ok", dnsOrder(dnsmasq, "name: "+dnstest.OK) + "measurement_name: dns\n", 0},
		{"dns/ok-tcp", dnsOrder(dnsmasq, "name: "+dnstest.OK, "protocol: tcp"), 0},
		{"dns/nx", dnsOrder(dnsmasq, "name: host."+dnstest.NX, "type: AAAA"), 0},
		{"dns/nx-tcp-fails", dnsOrder(dnsmasq, "name: host."+dnstest.NX, "protocol: tcp", "rcodes_as_failure: [NXDOMAIN]"), 3},
		{"dns/refused", dnsOrder(dnsmasq, "name: elsewhere.example"), 3},
		{"dns/refused-answers", dnsOrder(dnsmasq, "name: elsewhere.example", "rcodes_as_failure: []"), 0},
		{"dns/servfail", dnsOrder(servfail, "name: "+dnstest.OK), 3},
		{"dns/slow-tcp", dnsOrder(slow, "name: "+dnstest.OK, "protocol: tcp"), 0},
		{"dns/silent", dnsOrder(silent.LocalAddr().(*net.UDPAddr).AddrPort(), "name: "+dnstest.OK), 3},
		{"dns/stopped", dnsOrder(stopped, "name: "+dnstest.OK), 3},
		{"dns/stopped-tcp", dnsOrder(stopped, "name: "+dnstest.OK, "protocol: tcp"), 3},
	}
	for _, o := range orders {
		writeOrder(t, base, o.id, o.text)
	}
	writeOrder(t, base, "dns/invalid", "user: e2e\nstep: 3\npings: 3\nprobe: dns\ndns:\n  server: ns.example\n  name: ok.test\n")
	d := startDaemon(t, base, "--telegraf", udp.LocalAddr().String())

	for _, o := range orders {
		lr := d.waitResult(o.id, 0, 15*time.Second)
		checkLastResult(t, o.id, lr, 3, 3, o.loss)
		row := rrdtest.FetchRow(t, d.path("output", o.id, "main.rrd"), lr.int(t, "time"), 3*time.Second)
		median, _ := strconv.ParseFloat(lr.values["median"], 64)
		if len(row) != 2+3 || row[0] != float64(o.loss) || o.loss < 3 && math.Abs(row[1]-median) > 1e-12 {
			t.Errorf("%s: RRD row %v, want loss %d and median %v", o.id, row, o.loss, median)
		}
	}
	lr, _ := readLastResult(t, base, "dns/slow-tcp")
	if v, _ := strconv.ParseFloat(lr.values["min"], 64); v < delay.Seconds() || v > delay.Seconds()+0.05 {
		t.Errorf("dns/slow-tcp: min %v s, want the server's %v delay", v, delay)
	}
	d.waitLog(`orders/dns/invalid: line 6: dns.server: expected an IP address`, time.Second)
	if _, err := os.Stat(d.path("orders", "dns", "invalid")); err != nil {
		t.Errorf("the invalid order: %v, want it left in place", err)
	}

	udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	var lines []string
	seen := func(prefix string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	for !seen("dns loss=0,max_rtt=") || !seen("dns individual_rtt=") {
		n, err := udp.Read(buf)
		if err != nil {
			t.Fatalf("telegraf lines so far %q: %v", lines, err)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")...)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestPingDNS runs pingmachine ping --dns against the real dnsmasq.
func TestPingDNS(t *testing.T) {
	bin := build(t)
	server := dnstest.StartDNSMasq(t).String()
	closed := fmt.Sprintf("127.0.0.1:%d", dnstest.FreePort(t))
	tests := []struct {
		name   string
		args   []string
		lines  []*regexp.Regexp
		stderr string
		exit   int
	}{
		{"answered over UDP and TCP, a closed port lost",
			[]string{"--dns", dnstest.OK, "-c", "3", "-p", "50", "-t", "200", server, closed},
			[]*regexp.Regexp{fpingLine(server, 3, 0), fpingLine(closed, 0, 3)}, "", exitLoss},
		{"TCP", []string{"--dns", dnstest.OK, "--dns-tcp", "-c2", "-p50", server},
			[]*regexp.Regexp{fpingLine(server, 2, 0)}, "", exitOK},
		{"NXDOMAIN answers", []string{"--dns", "x." + dnstest.NX, "--qtype", "mx", "-c2", "-p50", server},
			[]*regexp.Regexp{fpingLine(server, 2, 0)}, "", exitOK},
		{"NXDOMAIN as failure", []string{"--dns", "x." + dnstest.NX, "--rcodes-as-failure", "NXDOMAIN", "-c2", "-p50", server},
			[]*regexp.Regexp{fpingLine(server, 0, 2)}, "", exitLoss},
		{"REFUSED is lost", []string{"--dns", "elsewhere.example", "-c2", "-p50", server},
			[]*regexp.Regexp{fpingLine(server, 0, 2)}, "", exitLoss},
		{"REFUSED answers when no code fails", []string{"--dns", "elsewhere.example", "--rcodes-as-failure=", "-c2", "-p50", server},
			[]*regexp.Regexp{fpingLine(server, 2, 0)}, "", exitOK},
		{"bad values named by flag", []string{"--dns", "-x", "--qtype", "AXFR", "-s", "100", "ns.example"}, nil,
			"pingmachine ping: -s does not apply to --dns\npingmachine ping: server: expected an IP address", exitBadArgs},
		{"bad rcode", []string{"--dns", "ok.test", "--rcodes-as-failure", "OOPS", server}, nil,
			`pingmachine ping: --rcodes-as-failure: unknown response code "OOPS"`, exitBadArgs},
		{"no servers", []string{"--dns", "ok.test", "-f", "-"}, nil, "no DNS servers: name them or use -f", exitBadArgs},
		{"with --tcp", []string{"--dns", "ok.test", "--tcp", "53", server}, nil, "--dns and --tcp or --ssh: one probe at a time", exitBadArgs},
		{"with --ssh", []string{"--dns", "ok.test", "--ssh", server}, nil, "--dns and --tcp or --ssh: one probe at a time", exitBadArgs},
		{"servers file missing", []string{"--dns", "ok.test", "-f", "/nonexistent/servers"}, nil, "pingmachine ping: open /nonexistent/servers", exitBadArgs},
		{"a source not of this machine", []string{"--dns", "ok.test", "-S", "::2", "[::1]:53"}, nil,
			"pingmachine ping: [::1]:53: dnsping: opening a UDP socket for IPv6 from ::2", exitBadArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"ping"}, tt.args...)...)
			cmd.Stdin = strings.NewReader("")
			stdout, stderr, code := runCmd(t, cmd)
			if code != tt.exit {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.exit, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.stderr)
			}
			got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if stdout == "" {
				got = nil
			}
			if len(got) != len(tt.lines) {
				t.Fatalf("stdout %q, want %d lines", stdout, len(tt.lines))
			}
			for i, re := range tt.lines {
				if !re.MatchString(got[i]) {
					t.Errorf("line %q does not match %s", got[i], re)
				}
			}
		})
	}
}
