// Command pingmachine measures latency and loss to many targets: a drop-in replacement
// for the Perl pingmachine that does its own ICMP.
//
// Usage:
//
//	pingmachine [--debug|-d] [--user|-u USER] [--basedir|-b DIR] [--telegraf|-t HOST:PORT]
//	pingmachine ping [flags] [target ...]
//
// The bare form runs the daemon over an orders/ output/ archive/ tree; "ping" checks
// targets by hand on the same ICMP engine, printing fping -C style lines.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses, as fping uses them.
const (
	exitOK      = 0
	exitLoss    = 1 // some target did not answer
	exitBadArgs = 2 // bad arguments or names
)

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ping" {
		return pingCommand(ctx, args[1:], stdin, stdout, stderr)
	}
	return daemonCommand(args, stderr)
}

// daemonCommand parses the Perl pingmachine's command line.
func daemonCommand(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pingmachine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		debug            bool
		user, basedir, t string
	)
	fs.BoolVar(&debug, "debug", false, "run in the foreground with debug logs on stderr")
	fs.BoolVar(&debug, "d", false, "short for --debug")
	fs.StringVar(&user, "user", "", "switch to this user after opening sockets")
	fs.StringVar(&user, "u", "", "short for --user")
	fs.StringVar(&basedir, "basedir", "/var/lib/pingmachine", "base directory with orders/, output/, archive/")
	fs.StringVar(&basedir, "b", "/var/lib/pingmachine", "short for --basedir")
	fs.StringVar(&t, "telegraf", "", "send results to telegraf at HOST:PORT (UDP)")
	fs.StringVar(&t, "t", "", "short for --telegraf")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pingmachine [--debug|-d] [--user|-u USER] [--basedir|-b DIR] [--telegraf|-t HOST:PORT]")
		fmt.Fprintln(stderr, "       pingmachine ping [-c count] [-p period_ms] [-i interval_ms] [-t timeout_ms] [-s size]")
		fmt.Fprintln(stderr, "                        [-4|-6] [-S source] [-I iface] [-Q tos] [-v] [-f file|-] [target ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitBadArgs
	}
	fmt.Fprintln(stderr, "pingmachine: the daemon is not built yet; see 'pingmachine ping -h'")
	return exitBadArgs
}
