package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"pingmachine/orders"
	"pingmachine/pinger/tcpping"
)

// tcpConfig is what "pingmachine ping" takes for TCP and SSH pings.
type tcpConfig struct {
	port    int  // --tcp: connect to this port instead of sending ICMP
	ssh     bool // --ssh: a ping counts when the server's "SSH-" line arrives; port 22 unless --tcp
	refused bool // --refused-is-answer: a refused connect counts as an answer
}

func (t *tcpConfig) flags(fs *flag.FlagSet) {
	fs.IntVar(&t.port, "tcp", 0, "TCP pings: connect to `port` and time the handshake (the SYN-ACK) instead of sending ICMP")
	fs.BoolVar(&t.ssh, "ssh", false, "SSH pings: count a ping when the server's SSH- line arrives; port 22 unless --tcp says")
	fs.BoolVar(&t.refused, "refused-is-answer", false, "with --tcp: count a refused connection as an answer (the host is up)")
}

// longFlag reports whether a is one of ping's long flags, whose first letter may be that
// of a short flag with a value ("-tcp" is not "-t cp").
func longFlag(a string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return name == "tcp" || name == "ssh" || name == "refused-is-answer"
}

// on reports whether the run pings over TCP.
func (t tcpConfig) on() bool { return t.port != 0 || t.ssh }

func (t tcpConfig) check() []string {
	var problems []string
	if t.port < 0 || t.port > 65535 {
		problems = append(problems, fmt.Sprintf("--tcp %d: want a port from 1 to 65535", t.port))
	}
	if t.refused && (t.port == 0 || t.ssh) {
		problems = append(problems, "--refused-is-answer needs --tcp and no --ssh: an SSH ping needs the server's line")
	}
	return problems
}

// measure runs one round per target, ICMP or TCP, and returns the RTTs of each.
func measure(ctx context.Context, c pingConfig, targets []target, log *slog.Logger) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(targets))
	if !c.tcp.on() {
		rounds, err := pingTargets(ctx, c, targets, log)
		for i, r := range rounds {
			out[i] = r.RTTs
		}
		return out, err
	}
	rounds, err := connectTargets(ctx, c, targets, log)
	for i, r := range rounds {
		out[i] = r.RTTs
	}
	return out, err
}

// connectTargets is pingTargets for TCP: one round per target on a fresh TCP engine,
// their first connects spread evenly.
func connectTargets(ctx context.Context, c pingConfig, targets []target, log *slog.Logger) ([]*tcpping.Round, error) {
	engine := tcpping.New(tcpping.Options{Logger: log})
	port, banner := uint16(c.tcp.port), ""
	if c.tcp.ssh {
		banner = orders.SSHBanner
		if port == 0 {
			port = 22
		}
	}
	rounds, err := runRounds(ctx, c, engine, len(targets), func(i int, start time.Time, done func()) *tcpping.Round {
		return &tcpping.Round{
			Target: netip.AddrPortFrom(targets[i].addr, port), Source: c.source, Interface: c.iface,
			Count: c.count, Gap: c.period, Timeout: c.timeout, Start: start,
			RefusedIsAnswer: c.tcp.refused, Banner: banner,
			Done: func(*tcpping.Round) { done() },
		}
	}, func(i int) string { return targets[i].name }, log)
	if c.verbose {
		s := engine.Stats()
		log.Info("engine counters", "connects", s.Connects, "answered", s.Answered, "refused", s.Refused,
			"timed_out", s.TimedOut, "failed", s.Failed, "not_banner", s.NotBanner)
	}
	return rounds, err
}
