package main

import (
	"fmt"
	"io"
	"path/filepath"

	"pingmachine/orders"
)

// validateCommand reads order files with the daemon's own parser and prints, on stderr,
// what the daemon would log of each invalid one. A file below the base directory's
// orders/ is read as the daemon reads it, named as the daemon names it; any other is
// named as given. It exits 0 when every file is a valid order, 1 when one is not, and 2
// on bad arguments.
func validateCommand(args []string, stderr io.Writer) int {
	fs, base := subcommand("validate", stderr, "usage: pingmachine validate [-b DIR] FILE ...",
		"Checks order files with the daemon's parser: exit 0 all valid, 1 some not (the daemon's messages on stderr), 2 bad arguments.")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return argsExit(err)
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "pingmachine validate: no FILE to validate")
		fs.Usage()
		return exitBadArgs
	}
	code := exitOK
	for _, file := range files {
		var err error
		if id, ok := orderID(*base, file); ok {
			_, err = orders.Read(*base, id)
		} else {
			_, err = orders.ReadFile(file)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			code = exitInvalid
		}
	}
	return code
}

// exitInvalid is validate's exit status when a file is not a valid order.
const exitInvalid = 1

// orderID returns the order id of a file below base/orders.
func orderID(base, file string) (string, bool) {
	orders, err := filepath.Abs(filepath.Join(base, "orders"))
	if err != nil {
		return "", false
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(orders, abs)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
