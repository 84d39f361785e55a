// Command pingmachine measures latency and loss to many targets: a drop-in replacement
// for the Perl pingmachine that does its own ICMP.
//
// Usage:
//
//	pingmachine [--debug|-d] [--user|-u USER] [--basedir|-b DIR] [--telegraf|-t HOST:PORT] [--listen ADDR]
//	pingmachine --version
//	pingmachine ping [flags] [target ...]
//	pingmachine status [-b DIR] [--json] [--user U] [ID-PREFIX ...]
//	pingmachine check -i ID|PREFIX [-b DIR] [-w LOSS%,RTT] [-c LOSS%,RTT] [--max-age S]
//	pingmachine validate [-b DIR] FILE ...
//	pingmachine graph -i ID [flags]
//
// The bare form runs the daemon over an orders/ output/ archive/ tree; "ping" checks
// targets by hand on the same ICMP engine, printing fping -C style lines. "status",
// "check", "validate" and "graph" read a base directory (or order files) without writing
// anything there, also while the daemon is stopped: "status" lists the orders and their
// last results as the Perl pingmachine-status does, "check" is a Nagios/Icinga plugin,
// "validate" runs the daemon's order parser on files for configuration management, and
// "graph" draws a Smokeping-style PNG or SVG of an order's main.rrd.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses. 0 and 1 mean what they mean for fping; fping gives 2 for names that do
// not resolve and 1 (3 in its manual) for bad arguments, where we give 2 for both, so that
// 1 always means a target did not answer.
const (
	exitOK      = 0
	exitLoss    = 1 // some target did not answer, or the run was interrupted
	exitBadArgs = 2 // bad arguments or names
)

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "ping":
			return pingCommand(ctx, args[1:], stdin, stdout, stderr)
		case "status":
			return statusCommand(args[1:], stdout, stderr)
		case "check":
			return checkCommand(args[1:], stdout, stderr)
		case "validate":
			return validateCommand(args[1:], stderr)
		case "graph":
			return graphCommand(args[1:], stdout, stderr)
		case "help":
			usage(stderr)
			return exitOK
		case "--version", "-version":
			fmt.Fprintln(stdout, "pingmachine", versionString())
			return exitOK
		}
	}
	return daemonCommand(ctx, args, stderr)
}

// usage lists the daemon's command line (the Perl pingmachine's) and the subcommands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pingmachine [--debug|-d] [--user|-u USER] [--basedir|-b DIR] [--telegraf|-t HOST:PORT]")
	fmt.Fprintln(w, "                   [--rrdcached ADDR] [--log-format text|json] [--httping PROGRAM] [--scion-dir DIR]")
	fmt.Fprintln(w, "                   [--listen ADDR, such as 127.0.0.1:9374]")
	fmt.Fprintln(w, "       pingmachine --version")
	fmt.Fprintln(w, "       pingmachine ping [-c count] [-p period_ms] [-i interval_ms] [-t timeout_ms] [-s size]")
	fmt.Fprintln(w, "                        [-4|-6] [-S source] [-I iface] [-Q tos] [-v] [-f file|-] [target ...]")
	fmt.Fprintln(w, "       pingmachine ping --tcp PORT [--refused-is-answer] | --ssh | --dns NAME [...] (see ping -h)")
	fmt.Fprintln(w, "       pingmachine status [-b DIR] [--json] [--user U] [ID-PREFIX ...]")
	fmt.Fprintln(w, "       pingmachine check -i ID|PREFIX [-b DIR] [-w LOSS%,RTT] [-c LOSS%,RTT] [--max-age S]")
	fmt.Fprintln(w, "       pingmachine validate [-b DIR] FILE ...")
	fmt.Fprintln(w, "       pingmachine graph -i ID [-p day|week|month|year|SECONDS] [-o FILE.png|FILE.svg] [-b DIR]")
	fmt.Fprintln(w, "                         [--width W --height H] [--end TIME]")
}

// defaultBase is the base directory of the Perl pingmachine, and this one's default.
const defaultBase = "/var/lib/pingmachine"

// baseFlag defines --basedir and -b, as the Perl version's Getopt::Long accepts it.
func baseFlag(fs *flag.FlagSet) *string {
	base := defaultBase
	for _, name := range []string{"basedir", "b"} {
		fs.StringVar(&base, name, base, "base `DIR`ectory holding orders/, output/, archive/")
	}
	return &base
}

// argsExit is the exit status after a command line's flags were refused, or help was
// asked for.
func argsExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitBadArgs
}

// subcommand returns the flag set of a subcommand that reads a base directory, with
// --basedir/-b defined: its errors, and its usage (the lines given, then the flags), go
// to stderr.
func subcommand(name string, stderr io.Writer, usage ...string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("pingmachine "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		for _, line := range usage {
			fmt.Fprintln(stderr, line)
		}
		fs.PrintDefaults()
	}
	return fs, baseFlag(fs)
}

// parseInterleaved parses flags that may come before, between and after the other
// arguments, which it returns; "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		done := len(args) - fs.NArg()
		if fs.NArg() == 0 || done > 0 && args[done-1] == "--" {
			return append(rest, fs.Args()...), nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// badArgs explains each problem with a subcommand's arguments on stderr, and where its
// usage is, and returns them as one error; nil if there are none.
func badArgs(stderr io.Writer, command string, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "pingmachine %s: %s\n", command, p)
	}
	fmt.Fprintf(stderr, "see 'pingmachine %s -h'\n", command)
	return errors.New(strings.Join(problems, "; "))
}

// defaultSCION is where the Perl version found SCION when $SC was not set.
const defaultSCION = "/home/scion/go/src/github.com/scionproto/scion"

// daemonConfig is the Perl pingmachine's command line, and what this one adds.
type daemonConfig struct {
	debug     bool
	user      string
	basedir   string
	telegraf  string // HOST:PORT
	rrdcached string // address of an rrdcached that writes main.rrd
	logFormat string // text or json
	httping   string // the httping program
	scionDir  string // the SCION directory whose bin/ holds scmp_fping and pingpong
	listen    string // HOST:PORT of the web server; empty for none
}

// parseDaemonArgs parses the daemon's flags, each under its long and short name as the
// Perl version's Getopt::Long accepts them. Errors are already explained on stderr.
func parseDaemonArgs(args []string, stderr io.Writer) (daemonConfig, error) {
	c := daemonConfig{logFormat: "text", httping: "httping", scionDir: cmp.Or(os.Getenv("SC"), defaultSCION)}
	fs := flag.NewFlagSet("pingmachine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, name := range []string{"debug", "d"} {
		fs.BoolVar(&c.debug, name, c.debug, "run in the foreground with debug logs on stderr")
	}
	for _, name := range []string{"user", "u"} {
		fs.StringVar(&c.user, name, c.user, "switch to `USER` after opening the sockets")
	}
	base := baseFlag(fs)
	for _, name := range []string{"telegraf", "t"} {
		fs.StringVar(&c.telegraf, name, c.telegraf, "send results to telegraf at `HOST:PORT` (UDP)")
	}
	fs.StringVar(&c.rrdcached, "rrdcached", c.rrdcached, "write main.rrd through the rrdcached at `ADDR` (unix:/path, /path or host:port)")
	fs.StringVar(&c.logFormat, "log-format", c.logFormat, "log as `text` or json")
	fs.StringVar(&c.httping, "httping", c.httping, "the httping `program` for httping orders")
	fs.StringVar(&c.listen, "listen", c.listen, "serve the status page, graphs, /api/status and /metrics over HTTP at `ADDR`, such as 127.0.0.1:9374 (off unless given)")
	fs.StringVar(&c.scionDir, "scion-dir", c.scionDir, "the SCION `DIR`ectory whose bin/ holds scmp_fping (sping) and pingpong (pping); default $SC")
	fs.Usage = func() {
		usage(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.basedir = *base
	if fs.NArg() > 0 {
		// Not a flag and not a subcommand: most likely a mistyped subcommand.
		fmt.Fprintf(stderr, "pingmachine: unknown command %q\n", fs.Arg(0))
		usage(stderr)
		return c, fmt.Errorf("unknown command %q", fs.Arg(0))
	}
	return c, nil
}
