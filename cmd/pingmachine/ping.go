package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"pingmachine/pinger"
)

// pingConfig is the parsed command line of "pingmachine ping".
type pingConfig struct {
	count    int
	period   time.Duration // between two pings to one target
	interval time.Duration // between the first pings of successive targets; 0 spreads them over one period
	timeout  time.Duration
	size     int
	v4, v6   bool
	family   family // what -4, -6 or -S allow
	source   netip.Addr
	iface    string
	tos      int
	verbose  bool
	file     string
	targets  []string
	dns      dnsFlags // --dns: the targets are DNS servers
	tcp      tcpConfig
}

// msFlag is a duration given in (possibly fractional) milliseconds, as fping takes them.
type msFlag struct{ d *time.Duration }

func (f msFlag) String() string {
	if f.d == nil {
		return ""
	}
	return strconv.FormatFloat(float64(*f.d)/float64(time.Millisecond), 'f', -1, 64)
}

func (f msFlag) Set(s string) error {
	ms, err := strconv.ParseFloat(s, 64)
	if err != nil || ms <= 0 || ms > 24*3600*1000 {
		return fmt.Errorf("%q is not a positive number of milliseconds", s)
	}
	*f.d = time.Duration(ms * float64(time.Millisecond))
	return nil
}

// parsePingArgs parses and checks the flags; errors are already explained on stderr.
func parsePingArgs(args []string, stderr io.Writer) (pingConfig, error) {
	c := pingConfig{count: 5, period: time.Second, size: pinger.DefaultSize}
	var source string
	fs := flag.NewFlagSet("pingmachine ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.count, "c", c.count, "pings per target")
	fs.Var(msFlag{&c.period}, "p", "time between two pings to one target, in ms")
	fs.Var(msFlag{&c.interval}, "i", "time between the first pings of successive targets, in ms (default: the period spread over all targets)")
	fs.Var(msFlag{&c.timeout}, "t", "how long a ping waits for its reply, in ms (default: the period, at most 2000)")
	fs.IntVar(&c.size, "s", c.size, "ICMP payload bytes")
	fs.BoolVar(&c.v4, "4", false, "IPv4 only: resolve names to A records (implied by an IPv4 -S)")
	fs.BoolVar(&c.v6, "6", false, "IPv6 only: resolve names to AAAA records (implied by an IPv6 -S)")
	fs.StringVar(&source, "S", "", "source address")
	fs.StringVar(&c.iface, "I", "", "interface to send from")
	fs.IntVar(&c.tos, "Q", 0, "IPv4 TOS or IPv6 traffic class, 0-255")
	fs.BoolVar(&c.verbose, "v", false, "log the socket mode and engine counters on stderr")
	fs.StringVar(&c.file, "f", "", "read targets from `file`, one per line (- for stdin)")
	c.dns.define(fs)
	c.tcp.flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pingmachine ping [-c count] [-p period_ms] [-i interval_ms] [-t timeout_ms] [-s size]")
		fmt.Fprintln(stderr, "                        [-4|-6] [-S source] [-I iface] [-Q tos] [-v] [-f file|-] [target ...]")
		fmt.Fprintln(stderr, "       pingmachine ping --tcp port [--refused-is-answer] | --ssh [--tcp port]  [the same flags] [target ...]")
		fmt.Fprintln(stderr, "       pingmachine ping --dns name [--qtype type] [--dns-tcp] [--rcodes-as-failure list] [-c count] [-p period_ms]")
		fmt.Fprintln(stderr, "                        [-i interval_ms] [-t timeout_ms] [-S source] [-v] [-f file|-] [server[:port] ...]")
		fmt.Fprintln(stderr, "Prints one line per target, RTTs in ms and - for a lost ping, as fping -C does.")
		fmt.Fprintln(stderr, "Exit status: 0 every target answered, 1 some did not or interrupted, 2 bad arguments or names.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(splitJoinedFlags(args)); err != nil {
		return c, err
	}
	c.targets = fs.Args()
	if c.timeout == 0 {
		c.timeout = min(c.period, 2*time.Second)
	}
	var problems []string
	if c.count < 1 || c.count > pinger.MaxCount {
		problems = append(problems, fmt.Sprintf("-c %d: want 1..%d pings", c.count, pinger.MaxCount))
	}
	if c.size < pinger.MinSize || c.size > pinger.MaxSize {
		problems = append(problems, fmt.Sprintf("-s %d: want %d..%d bytes", c.size, pinger.MinSize, pinger.MaxSize))
	}
	if c.v4 && c.v6 {
		problems = append(problems, "-4 and -6 exclude each other")
	}
	if c.tos < 0 || c.tos > 255 {
		problems = append(problems, fmt.Sprintf("-Q %d: want 0..255", c.tos))
	}
	if source != "" {
		a, err := netip.ParseAddr(source)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("-S %q: not an IP address", source))
		case c.v4 && !a.Unmap().Is4():
			problems = append(problems, fmt.Sprintf("-S %s: not an IPv4 address, as -4 asks", source))
		case c.v6 && a.Unmap().Is4():
			problems = append(problems, fmt.Sprintf("-S %s: not an IPv6 address, as -6 asks", source))
		}
		c.source = a.Unmap()
	}
	c.family = chooseFamily(c.v4, c.v6, c.source)
	if c.dns.name != "" {
		problems = append(problems, c.dns.check(fs)...)
	}
	if c.file == "" && len(c.targets) == 0 {
		problems = append(problems, "no targets: name them or use -f")
	}
	problems = append(problems, c.tcp.check()...)
	if c.dns.name != "" && c.tcp.on() {
		problems = append(problems, "--dns and --tcp or --ssh: one probe at a time")
	}
	return c, badArgs(stderr, "ping", problems)
}

// splitJoinedFlags turns "-c5" into "-c", "5", as fping's getopt accepts it.
func splitJoinedFlags(args []string) []string {
	const takesValue = "cpitsSIQf"
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && strings.IndexByte(takesValue, a[1]) >= 0 && a[2] != '=' && !longFlag(a) {
			out = append(out, a[:2], a[2:])
			continue
		}
		out = append(out, a)
	}
	return out
}

// readTargets reads one target per line; blank lines and # comments are skipped.
func readTargets(r io.Reader) ([]string, error) {
	var targets []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		targets = append(targets, strings.Fields(line)...)
	}
	return targets, sc.Err()
}

// target is one named target and the address it resolved to.
type target struct {
	name string
	addr netip.Addr
}

// family is the address family targets must have, and the flag that asked for it.
type family struct {
	network string // "ip", "ip4" or "ip6", as net.Resolver.LookupNetIP takes it
	flag    string // "-4", "-6", "-S <addr>", or empty when either family will do
}

// chooseFamily restricts targets to one family with -4 or -6, or else to the family of a
// -S source address: a round cannot send from an address of the other family.
func chooseFamily(v4, v6 bool, source netip.Addr) family {
	switch {
	case v4:
		return family{"ip4", "-4"}
	case v6:
		return family{"ip6", "-6"}
	case source.IsValid() && source.Is4():
		return family{"ip4", "-S " + source.String()}
	case source.IsValid():
		return family{"ip6", "-S " + source.String()}
	}
	return family{network: "ip"}
}

func (f family) allows(a netip.Addr) bool {
	switch f.network {
	case "ip4":
		return a.Is4()
	case "ip6":
		return a.Is6()
	}
	return true
}

// resolveError says why a target name was left out, as fping does: "<name>: <reason>".
type resolveError struct {
	name string
	err  error
}

func (e *resolveError) Error() string {
	// A DNSError repeats the name ("lookup x: no such host"); its reason alone reads as
	// fping's "x: Name or service not known".
	var dnsErr *net.DNSError
	if errors.As(e.err, &dnsErr) {
		return e.name + ": " + dnsErr.Err
	}
	return e.name + ": " + e.err.Error()
}

func (e *resolveError) Unwrap() error { return e.err }

// resolve turns names into addresses of the wanted family, in order; IP literals are
// taken as they are. Names that do not resolve are left out and reported.
func resolve(ctx context.Context, names []string, fam family) ([]target, []error) {
	out := make([]target, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 16) // bounded parallel lookups
	var wg sync.WaitGroup
	for i, name := range names {
		out[i].name = name
		if a, err := netip.ParseAddr(name); err == nil {
			out[i].addr = a.Unmap()
			if !fam.allows(out[i].addr) {
				errs[i] = &resolveError{name, fmt.Errorf("wrong family for %s", fam.flag)}
			}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, fam.network, name)
			switch {
			case err != nil:
				errs[i] = &resolveError{name, err}
			case len(addrs) == 0:
				errs[i] = &resolveError{name, errors.New("no address")}
			default:
				out[i].addr = addrs[0].Unmap()
			}
		}()
	}
	wg.Wait()
	var ok []target
	var failed []error
	for i := range out {
		if errs[i] != nil {
			failed = append(failed, errs[i])
			continue
		}
		ok = append(ok, out[i])
	}
	return ok, failed
}

// formatRTT prints a round-trip time in ms with the precision fping uses for its
// magnitude: three decimals below 1 ms, then two, one, none.
func formatRTT(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 3, 64)
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64)
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	case ms < 1e6:
		return strconv.FormatFloat(ms, 'f', 0, 64)
	}
	return strconv.FormatFloat(ms, 'e', 3, 64)
}

// formatLine prints one target's result as fping -C does: the name padded to the
// longest name, " :", then each RTT or "-".
func formatLine(name string, width int, rtts []time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s :", width, name)
	for _, rtt := range rtts {
		if rtt == pinger.Lost {
			b.WriteString(" -")
		} else {
			b.WriteByte(' ')
			b.WriteString(formatRTT(rtt))
		}
	}
	return b.String()
}

func pingCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := parsePingArgs(args, stderr)
	if err != nil {
		return argsExit(err)
	}
	if c.dns.name != "" {
		return pingDNSCommand(ctx, c, stdin, stdout, stderr)
	}
	names := c.targets
	if c.file != "" {
		fromFile, err := readTargetFile(c.file, stdin)
		if err != nil {
			fmt.Fprintln(stderr, "pingmachine ping:", err)
			return exitBadArgs
		}
		names = append(names, fromFile...)
	}
	if len(names) == 0 {
		fmt.Fprintln(stderr, "pingmachine ping: no targets")
		return exitBadArgs
	}
	targets, failed := resolve(ctx, names, c.family)
	if ctx.Err() != nil {
		// Interrupted while resolving: the names did not fail, nothing was measured.
		fmt.Fprintln(stderr, "pingmachine ping: interrupted")
		return exitLoss
	}
	for _, err := range failed {
		fmt.Fprintln(stderr, err)
	}

	oneProcessor()
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	results, err := measure(ctx, c, targets, log)
	if err != nil {
		fmt.Fprintln(stderr, "pingmachine ping:", err)
		return exitBadArgs
	}

	width := 0
	for _, t := range targets {
		width = max(width, len(t.name))
	}
	code := exitOK
	for i, t := range targets {
		fmt.Fprintln(stdout, formatLine(t.name, width, results[i]))
		if !slices.ContainsFunc(results[i], func(d time.Duration) bool { return d != pinger.Lost }) {
			code = exitLoss
		}
	}
	if ctx.Err() != nil {
		// Interrupted: the pings not sent yet are shown as lost, so the run is incomplete.
		code = exitLoss
	}
	if len(failed) > 0 {
		code = exitBadArgs
	}
	return code
}

func readTargetFile(name string, stdin io.Reader) ([]string, error) {
	if name == "-" {
		return readTargets(stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	targets, err := readTargets(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return targets, nil
}

// pingTargets runs one round per target on a fresh engine, their first pings spread
// evenly, and returns when all are done or ctx is cancelled (the rest then count as lost).
func pingTargets(ctx context.Context, c pingConfig, targets []target, log *slog.Logger) ([]*pinger.Round, error) {
	engine := pinger.New(pinger.Options{Logger: log, PromptReplies: true})
	rounds, err := runRounds(ctx, c, engine, len(targets), func(i int, start time.Time, done func()) *pinger.Round {
		return &pinger.Round{
			Target: targets[i].addr, Source: c.source, Interface: c.iface, TOS: uint8(c.tos), Size: c.size,
			Count: c.count, Gap: c.period, Timeout: c.timeout, Start: start,
			Done: func(*pinger.Round) { done() },
		}
	}, func(i int) string { return targets[i].name }, log)
	if c.verbose {
		s := engine.Stats()
		log.Info("engine counters", "sent", s.Sent, "send_errors", s.SendErrors, "received", s.Received,
			"timed_out", s.TimedOut, "late", s.Late, "duplicate", s.Duplicate, "foreign", s.Foreign,
			"icmp_errors", s.ICMPErrors, "kernel_drops", s.KernelDrops)
	}
	return rounds, err
}

// roundEngine is what runRounds needs of the ICMP, TCP and DNS engines.
type roundEngine[R any] interface {
	Run(ctx context.Context) error
	Submit(r R) error
}

// runRounds runs n rounds on engine, which it starts and stops: round makes the i-th,
// whose first ping is at start and which calls done once complete. The first pings are
// spread over one period (or an interval apart), and it returns when every round is done
// or ctx is cancelled (the rest then count as lost); name names a round that cannot be
// submitted.
func runRounds[R any](ctx context.Context, c pingConfig, engine roundEngine[R], n int,
	round func(i int, start time.Time, done func()) R, name func(i int) string, log *slog.Logger) ([]R, error) {
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- engine.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			log.Error("engine", "err", err)
		}
	}()

	stagger := c.interval
	if stagger == 0 && n > 0 {
		stagger = c.period / time.Duration(n)
	}
	var wg sync.WaitGroup
	rounds := make([]R, n)
	start := time.Now()
	for i := range rounds {
		wg.Add(1)
		rounds[i] = round(i, start.Add(time.Duration(i)*stagger), wg.Done)
		if err := engine.Submit(rounds[i]); err != nil {
			wg.Done()
			// Rounds already submitted still complete when the engine stops.
			stop()
			wg.Wait()
			return nil, fmt.Errorf("%s: %w", name(i), err)
		}
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		close(all)
	}()
	select {
	case <-all:
	case <-ctx.Done():
		stop()
		<-all
	}
	return rounds, nil
}

// oneProcessor runs the process on one Go processor unless GOMAXPROCS is set. The engine
// is one event loop; a second processor only adds the cost of the Go runtime waking it on
// every tick (measured: a third more CPU for pingmachine ping at 1,000 probes/s, and more
// at every rate up to 50,000/s; for the daemon with 1,000 orders 7.3% of a CPU instead of
// 4.6%).
func oneProcessor() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
