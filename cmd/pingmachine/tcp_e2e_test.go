package main

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pingmachine/pinger/tcpping/tcptest"
	"pingmachine/rrdfmt/rrdtest"
)

// acceptAll listens on a loopback port and accepts (and closes) every connection until
// the test ends.
func acceptAll(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func TestPingTCP(t *testing.T) {
	bin := build(t)
	open := fmt.Sprint(acceptAll(t).Port())
	sshd := fmt.Sprint(tcptest.StartSSHD(t).Port())
	closed := fmt.Sprint(tcptest.FreePort(t))
	tests := []struct {
		name   string
		args   []string
		lines  []*regexp.Regexp
		stderr string
		exit   int
	}{
		{"open port", []string{"-4", "--tcp", open, "-c", "3", "-p", "50", "127.0.0.1", "localhost"},
			[]*regexp.Regexp{fpingLine("127.0.0.1", 3, 0), fpingLine("localhost", 3, 0)}, "", 0},
		{"single dash, joined flags", []string{"-tcp=" + open, "-c2", "-p20", "127.0.0.1"},
			[]*regexp.Regexp{fpingLine("127.0.0.1", 2, 0)}, "", 0},
		{"closed port is loss", []string{"--tcp", closed, "-c", "2", "-p", "20", "127.0.0.1"},
			[]*regexp.Regexp{fpingLine("127.0.0.1", 0, 2)}, "", 1},
		{"refused is an answer", []string{"--tcp", closed, "--refused-is-answer", "-c", "2", "-p", "20", "127.0.0.1"},
			[]*regexp.Regexp{fpingLine("127.0.0.1", 2, 0)}, "", 0},
		// sshd starts a process for each connection before it sends its line: -p 500 gives the
		// pings half a second.
		{"ssh", []string{"--ssh", "--tcp", sshd, "-c", "2", "-p", "500", "-v", "127.0.0.1"},
			[]*regexp.Regexp{fpingLine("127.0.0.1", 2, 0)}, "answered=2", 0},
		{"ssh to a port that is not SSH", []string{"--ssh", "--tcp", open, "-c", "2", "-p", "50", "-t", "200", "127.0.0.1"},
			[]*regexp.Regexp{fpingLine("127.0.0.1", 0, 2)}, "", 1},
		{"port out of range", []string{"--tcp", "70000", "127.0.0.1"}, nil, "--tcp 70000", 2},
		{"refused without --tcp", []string{"--refused-is-answer", "127.0.0.1"}, nil, "--refused-is-answer needs --tcp", 2},
		{"refused with --ssh", []string{"--ssh", "--refused-is-answer", "--tcp", "22", "127.0.0.1"}, nil, "--refused-is-answer needs --tcp and no --ssh", 2},
		{"source of no interface", []string{"--tcp", open, "-c", "1", "-S", "192.0.2.250", "127.0.0.1"},
			[]*regexp.Regexp{fpingLine("127.0.0.1", 0, 1)}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkPingRun(t, exec.Command(bin, append([]string{"ping"}, tt.args...)...), tt.lines, tt.stderr, tt.exit)
		})
	}
}

// TestDaemonTCP runs tcp and ssh orders (one in the Perl version's format) against a
// listener, a closed port and a real sshd, and reads last_result and main.rrd.
func TestDaemonTCP(t *testing.T) {
	open := acceptAll(t)
	sshd := tcptest.StartSSHD(t)
	closed := tcptest.FreePort(t)
	base := t.TempDir()
	const head = "user: e2e\nstep: 2\npings: 2\n"
	// sshd starts a process for each connection before it sends its line: the ssh
	// orders' step of 5 s gives each ping a timeout of 1 s.
	const sshHead = "user: e2e\nstep: 5\npings: 2\n"
	orders := []struct {
		id, text string
		loss     int
	}{
		{"tcp/open", head + fmt.Sprintf("probe: tcp\ntcp: {host: 127.0.0.1, port: %d}\n", open.Port()), 0},
		{"tcp/localhost", head + fmt.Sprintf("probe: tcp\ntcp: {host: localhost, port: %d, source_ip: 127.0.0.3, interface: lo}\n", open.Port()), 0},
		{"tcp/closed", head + fmt.Sprintf("probe: tcp\ntcp: {host: 127.0.0.1, port: %d}\n", closed), 2},
		{"tcp/refused-is-answer", head + fmt.Sprintf("probe: tcp\ntcp: {host: 127.0.0.1, port: %d, refused_is_answer: true}\n", closed), 0},
		{"ssh/perl", fmt.Sprintf("user: e2e\nstep: 5\npings: 1\nprobe: ssh\nssh:\n  host: 127.0.0.1\n  key_type: rsa\n  port: %d\n", sshd.Port()), 0},
		{"ssh/many-pings", sshHead + fmt.Sprintf("probe: ssh\nssh: {host: 127.0.0.1, port: %d}\n", sshd.Port()), 0},
		{"ssh/not-ssh", sshHead + fmt.Sprintf("probe: ssh\nssh: {host: 127.0.0.1, port: %d}\n", open.Port()), 2},
	}
	for _, o := range orders {
		writeOrder(t, base, o.id, o.text)
	}
	d := startDaemon(t, base)
	for _, o := range orders {
		step, pings := 2, 2
		if strings.HasPrefix(o.id, "ssh/") {
			step = 5
		}
		if o.id == "ssh/perl" {
			pings = 1
		}
		lr := d.waitResult(o.id, 0, 20*time.Second)
		checkLastResult(t, o.id, lr, step, pings, o.loss)
		tm := lr.int(t, "time")
		row := rrdtest.FetchRow(t, d.path("output", o.id, "main.rrd"), tm, time.Duration(step)*time.Second)
		if len(row) != 2+pings || row[0] != float64(o.loss) {
			t.Errorf("%s: rrdtool fetch row at %d = %v, want loss %d and %d pings", o.id, tm, row, o.loss, pings)
			continue
		}
		if o.loss == pings {
			continue
		}
		median, _ := strconv.ParseFloat(lr.values["median"], 64)
		if math.Abs(row[1]-median) > 1e-12 || median > 0.1 {
			t.Errorf("%s: RRD median %v, last_result's %v: want the same, below 100 ms on loopback", o.id, row[1], median)
		}
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if strings.Contains(d.logs.String(), "cannot connect") {
		t.Errorf("a round could not be measured:\n%s", d.logs)
	}
}
