package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"pingmachine/store/view"
)

// statusCommand prints the orders of a base directory with their last results, as the
// Perl pingmachine-status does, or the same as JSON. With ID prefixes, only the orders
// they select; with --user, only that user's (and the invalid orders, whose user cannot
// be known).
func statusCommand(args []string, stdout, stderr io.Writer) int {
	fs, base := subcommand("status", stderr, "usage: pingmachine status [-b DIR] [--json] [--user U] [ID-PREFIX ...]",
		"Lists the orders and their last results; an ID-PREFIX selects an order or a directory of orders.")
	asJSON := fs.Bool("json", false, "print one JSON document (its shape is in README.md)")
	user := fs.String("user", "", "only the orders of `USER`")
	prefixes, err := parseInterleaved(fs, args)
	if err != nil {
		return argsExit(err)
	}
	v, err := view.Read(*base, prefixes...)
	if err != nil {
		fmt.Fprintln(stderr, "pingmachine status:", err)
		return exitFailed
	}
	if *user != "" {
		v.Orders = slices.DeleteFunc(v.Orders, func(o view.Order) bool { return o.Order != nil && o.Order.User != *user })
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(v)
	} else {
		err = v.WriteText(stdout, colourful(stdout))
	}
	if err != nil {
		fmt.Fprintln(stderr, "pingmachine status:", err)
		return exitFailed
	}
	return exitOK
}

// colourful reports whether w is a terminal, where status paints what needs a look,
// unless NO_COLOR says otherwise (no-color.org).
func colourful(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
