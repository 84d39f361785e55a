package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"pingmachine/store/view/check"
)

// checkCommand is a Nagios/Icinga plugin: it judges the last result of an order, or of
// every order below a directory, prints one line with performance data and exits with
// the verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for bad arguments, as the
// Monitoring Plugins guidelines ask).
func checkCommand(args []string, stdout, stderr io.Writer) int {
	fs, base := subcommand("check", stderr, "usage: pingmachine check -i ID|PREFIX [-b DIR] [-w LOSS%,RTT] [-c LOSS%,RTT] [--max-age S]",
		"A Nagios/Icinga plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. A value at a limit does not alert.")
	id := fs.String("i", "", "the order `ID`, or a directory of orders (all below it are checked, the worst reported)")
	c := check.Defaults()
	limits := func(l *check.Limits) func(string) error {
		return func(s string) (err error) {
			*l, err = check.ParseLimits(s)
			return err
		}
	}
	fs.Func("w", "WARNING above `LOSS%,RTT`: percent of pings lost, median RTT (200ms, or seconds) (default 10%,200ms)", limits(&c.Warn))
	fs.Func("c", "CRITICAL above `LOSS%,RTT` (default 50%,1s)", limits(&c.Crit))
	fs.Func("max-age", "UNKNOWN when the last result is older than `S` seconds (or 5m) (default two steps of the order and 30 s)", func(s string) (err error) {
		if c.MaxAge, err = check.ParseSeconds(s); err == nil && c.MaxAge == 0 {
			err = errors.New("must be more than 0")
		}
		return err
	})
	err := fs.Parse(args)
	switch {
	case err != nil:
	case *id == "":
		err = errors.New("-i ID is required")
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "PINGMACHINE UNKNOWN - pingmachine check:", err)
		}
		return int(check.Unknown)
	}
	status, out := check.Run(*base, *id, c)
	fmt.Fprintln(stdout, out)
	return int(status)
}
