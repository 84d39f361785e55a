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
	source   netip.Addr
	iface    string
	tos      int
	verbose  bool
	file     string
	targets  []string
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
	fs.BoolVar(&c.v4, "4", false, "IPv4 only: resolve names to A records")
	fs.BoolVar(&c.v6, "6", false, "IPv6 only: resolve names to AAAA records")
	fs.StringVar(&source, "S", "", "source address")
	fs.StringVar(&c.iface, "I", "", "interface to send from")
	fs.IntVar(&c.tos, "Q", 0, "IPv4 TOS or IPv6 traffic class, 0-255")
	fs.BoolVar(&c.verbose, "v", false, "log the socket mode and engine counters on stderr")
	fs.StringVar(&c.file, "f", "", "read targets from `file`, one per line (- for stdin)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pingmachine ping [-c count] [-p period_ms] [-i interval_ms] [-t timeout_ms] [-s size]")
		fmt.Fprintln(stderr, "                        [-4|-6] [-S source] [-I iface] [-Q tos] [-v] [-f file|-] [target ...]")
		fmt.Fprintln(stderr, "Prints one line per target, RTTs in ms and - for a lost ping, as fping -C does.")
		fmt.Fprintln(stderr, "Exit status: 0 every target answered, 1 some did not, 2 bad arguments or names.")
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
		case c.v4 && !a.Unmap().Is4(), c.v6 && a.Unmap().Is4():
			problems = append(problems, fmt.Sprintf("-S %s: not of the chosen address family", source))
		}
		c.source = a.Unmap()
	}
	if c.file == "" && len(c.targets) == 0 {
		problems = append(problems, "no targets: name them or use -f")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "pingmachine ping:", p)
		}
		return c, errors.New(strings.Join(problems, "; "))
	}
	return c, nil
}

// splitJoinedFlags turns "-c5" into "-c", "5", as fping's getopt accepts it.
func splitJoinedFlags(args []string) []string {
	const takesValue = "cpitsSIQf"
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && strings.IndexByte(takesValue, a[1]) >= 0 && a[2] != '=' {
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

// resolve turns names into addresses of the wanted family, in order. Names that do not
// resolve are left out and reported.
func resolve(ctx context.Context, names []string, v4, v6 bool) ([]target, []error) {
	network := "ip"
	switch {
	case v4:
		network = "ip4"
	case v6:
		network = "ip6"
	}
	out := make([]target, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 16) // bounded parallel lookups
	var wg sync.WaitGroup
	for i, name := range names {
		out[i].name = name
		if a, err := netip.ParseAddr(name); err == nil {
			a = a.Unmap()
			if (v4 && !a.Is4()) || (v6 && a.Is4()) {
				errs[i] = fmt.Errorf("%s: address of the wrong family for -%s", name, network[2:])
			}
			out[i].addr = a
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, name)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("%s: %w", name, err)
			case len(addrs) == 0:
				errs[i] = fmt.Errorf("%s: no address", name)
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
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadArgs
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
	targets, failed := resolve(ctx, names, c.v4, c.v6)
	for _, err := range failed {
		fmt.Fprintln(stderr, err)
	}

	// The engine is one event loop; a second processor only adds the cost of the Go
	// runtime waking it on every tick (measured: a third more CPU at 1,000 probes/s, and
	// more at every rate up to 50,000/s). GOMAXPROCS in the environment still rules.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	rounds, err := pingTargets(ctx, c, targets, log)
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
		fmt.Fprintln(stdout, formatLine(t.name, width, rounds[i].RTTs))
		if rounds[i].Received() == 0 {
			code = exitLoss
		}
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
	engine := pinger.New(pinger.Options{Logger: log})
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- engine.Run(runCtx) }()
	defer func() {
		stop()
		<-ran
		if c.verbose {
			log.Info("engine counters", "stats", fmt.Sprintf("%+v", engine.Stats()))
		}
	}()

	stagger := c.interval
	if stagger == 0 && len(targets) > 0 {
		stagger = c.period / time.Duration(len(targets))
	}
	var wg sync.WaitGroup
	rounds := make([]*pinger.Round, len(targets))
	start := time.Now()
	for i, t := range targets {
		rounds[i] = &pinger.Round{
			Target: t.addr, Source: c.source, Interface: c.iface, TOS: uint8(c.tos), Size: c.size,
			Count: c.count, Gap: c.period, Timeout: c.timeout,
			Start: start.Add(time.Duration(i) * stagger),
			Done:  func(*pinger.Round) { wg.Done() },
		}
		wg.Add(1)
		if err := engine.Submit(rounds[i]); err != nil {
			wg.Done()
			// Rounds already submitted still complete when the engine stops.
			stop()
			wg.Wait()
			return nil, fmt.Errorf("%s: %w", t.name, err)
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
