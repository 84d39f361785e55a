package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"pingmachine/orders"
	"pingmachine/pinger/dnsping"
)

// dnsFlags are the flags of "pingmachine ping --dns": the order keys of a dns probe.
type dnsFlags struct {
	name    string
	qtype   string
	tcp     bool
	rcodes  string
	targets []*orders.DNS // one per server, once checked
}

func (d *dnsFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&d.name, "dns", "", "query DNS servers (the targets, address[:port]) for `name`, as a dns order does")
	fs.StringVar(&d.qtype, "qtype", "A", "with --dns: the query `type` ("+strings.Join(orders.DNSTypes, ", ")+")")
	fs.BoolVar(&d.tcp, "dns-tcp", false, "with --dns: query over TCP, one connection per query")
	fs.StringVar(&d.rcodes, "rcodes-as-failure", "SERVFAIL,REFUSED", "with --dns: response codes that count as lost, separated by commas")
}

// dnsFlagOf names the flag that gives an order key.
var dnsFlagOf = map[string]string{
	"dns.server": "server", "dns.name": "--dns", "dns.type": "--qtype", "dns.protocol": "--dns-tcp",
	"dns.source_ip": "-S", "dns.rcodes_as_failure": "--rcodes-as-failure",
}

// check validates the DNS flags with each target named on the command line (those from
// -f are checked when read), and refuses the ICMP flags that have no meaning here.
func (d *dnsFlags) check(fs *flag.FlagSet) []string {
	var problems []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains([]string{"4", "6", "I", "Q", "s"}, f.Name) {
			problems = append(problems, fmt.Sprintf("-%s does not apply to --dns", f.Name))
		}
	})
	for _, server := range fs.Args() {
		if _, p := d.target(server, fs.Lookup("S").Value.String()); p != nil {
			problems = append(problems, p...)
		}
	}
	return problems
}

// target checks one server with the flags, as a dns order's keys.
func (d *dnsFlags) target(server, source string) (*orders.DNS, []string) {
	protocol := "udp"
	if d.tcp {
		protocol = "tcp"
	}
	t, problems := orders.CheckDNS(map[string]string{"server": server, "name": d.name, "type": d.qtype,
		"protocol": protocol, "source_ip": source, "rcodes_as_failure": d.rcodes})
	var out []string
	for _, p := range problems {
		out = append(out, dnsFlagOf[p.Key]+": "+p.Msg)
	}
	return t, out
}

// pingDNSCommand queries each server once a period, count times, and prints a line per
// server as pingmachine ping does per host.
func pingDNSCommand(ctx context.Context, c pingConfig, stdin io.Reader, stdout, stderr io.Writer) int {
	servers := c.targets
	if c.file != "" {
		fromFile, err := readTargetFile(c.file, stdin)
		if err != nil {
			fmt.Fprintln(stderr, "pingmachine ping:", err)
			return exitBadArgs
		}
		servers = append(servers, fromFile...)
	}
	var source string
	if c.source.IsValid() {
		source = c.source.String()
	}
	var targets []*orders.DNS
	var problems []string
	for _, s := range servers {
		t, p := c.dns.target(s, source)
		problems = append(problems, p...)
		targets = append(targets, t)
	}
	if len(servers) == 0 {
		problems = append(problems, "no DNS servers: name them or use -f")
	}
	if badArgs(stderr, "ping", problems) != nil {
		return exitBadArgs
	}

	oneProcessor()
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	rounds, err := queryServers(ctx, c, targets, log)
	if err != nil {
		fmt.Fprintln(stderr, "pingmachine ping:", err)
		return exitBadArgs
	}
	width := 0
	for _, s := range servers {
		width = max(width, len(s))
	}
	code := exitOK
	for i, s := range servers {
		fmt.Fprintln(stdout, formatLine(s, width, rounds[i].RTTs))
		if rounds[i].Received() == 0 {
			code = exitLoss
		}
	}
	if ctx.Err() != nil {
		code = exitLoss
	}
	return code
}

// queryServers runs one round per server on a fresh DNS engine, their first queries
// spread over one period, and returns when all are done or ctx is cancelled (the rest
// then count as lost).
func queryServers(ctx context.Context, c pingConfig, targets []*orders.DNS, log *slog.Logger) ([]*dnsping.Round, error) {
	engine := dnsping.New(dnsping.Options{Logger: log})
	rounds, err := runRounds(ctx, c, engine, len(targets), func(i int, start time.Time, done func()) *dnsping.Round {
		t := targets[i]
		return &dnsping.Round{
			Server: t.Server, Source: t.Source, TCP: t.TCP, Name: t.Name, Type: dns.StringToType[t.Type],
			FailRcodes: t.FailRcodes, Count: c.count, Gap: c.period, Timeout: c.timeout, Start: start,
			Done: func(*dnsping.Round) { done() },
		}
	}, func(i int) string { return targets[i].Server.String() }, log)
	if c.verbose {
		s := engine.Stats()
		log.Info("DNS engine counters", "sent", s.Sent, "send_errors", s.SendErrors, "conn_failed", s.ConnFailed,
			"received", s.Received, "failed", s.Failed, "timed_out", s.TimedOut, "late", s.Late,
			"mismatched", s.Mismatched, "foreign", s.Foreign, "queued", s.Queued)
	}
	return rounds, err
}
