package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pingmachine/orders"
	"pingmachine/store/graph"
)

// graphFailed is the exit status of a graph that could not be drawn or written.
const graphFailed = 1

// graphConfig is the parsed command line of "pingmachine graph".
type graphConfig struct {
	id, basedir, out string
	format           graph.Format
	span             time.Duration
	end              time.Time
	width, height    int
}

// maxPixels is the largest --width and --height.
const maxPixels = 10000

// parseEnd reads --end: now, Unix seconds, RFC 3339, or a local date and time.
func parseEnd(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--end %q: want now, Unix seconds, RFC 3339 or YYYY-MM-DD [HH:MM[:SS]] local time", s)
}

// parseGraphArgs parses and checks the flags; errors are already explained on stderr.
func parseGraphArgs(args []string, now time.Time, stderr io.Writer) (graphConfig, error) {
	c := graphConfig{width: 600, height: 250}
	var period, end string
	fs, base := subcommand("graph", stderr,
		"usage: pingmachine graph -i ID [-p day|week|month|year|SECONDS] [-o FILE.png|FILE.svg] [-b DIR]",
		"                         [--width W --height H] [--end TIME]",
		"Draws a Smokeping-style graph of output/ID/main.rrd (or archive/ID/main.rrd).")
	fs.StringVar(&c.id, "i", "", "the order `ID` (its path below orders/)")
	fs.StringVar(&period, "p", "day", "the `period` shown: day, week, month, year, seconds, or a duration such as 36h")
	fs.StringVar(&c.out, "o", "", "the picture to write, `FILE`.png or FILE.svg (default: the id with / as _, .png, in the current directory)")
	fs.IntVar(&c.width, "width", c.width, "width of the plot area in pixels, one column per row of data at most (as rrdtool graph's --width)")
	fs.IntVar(&c.height, "height", c.height, "height of the plot area in pixels")
	fs.StringVar(&end, "end", "now", "the `TIME` the graph ends: now, Unix seconds, RFC 3339, or YYYY-MM-DD [HH:MM[:SS]] local time")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.basedir = *base
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if c.id == "" {
		problems = append(problems, "no order: name it with -i ID")
	} else if err := orders.CheckID(c.basedir, c.id); err != nil {
		problems = append(problems, "-i: "+err.Error())
	}
	var err error
	if c.span, err = graph.ParsePeriod(period); err != nil {
		problems = append(problems, "-p "+err.Error())
	}
	if c.end, err = parseEnd(end, now); err != nil {
		problems = append(problems, err.Error())
	}
	// The upper limit keeps a typo from allocating a picture of gigabytes.
	if c.width < graph.MinWidth || c.width > maxPixels {
		problems = append(problems, fmt.Sprintf("--width %d: want %d..%d pixels", c.width, graph.MinWidth, maxPixels))
	}
	if c.height < graph.MinHeight || c.height > maxPixels {
		problems = append(problems, fmt.Sprintf("--height %d: want %d..%d pixels", c.height, graph.MinHeight, maxPixels))
	}
	if c.out == "" {
		c.out = strings.ReplaceAll(c.id, "/", "_") + ".png"
	}
	switch strings.ToLower(filepath.Ext(c.out)) {
	case ".png":
		c.format = graph.PNG
	case ".svg":
		c.format = graph.SVG
	default:
		problems = append(problems, fmt.Sprintf("-o %s: want a file name ending in .png or .svg", c.out))
	}
	return c, badArgs(stderr, "graph", problems)
}

// graphCommand draws the graph of one order's main.rrd into the -o file. It reads the
// base directory only, so it works while the daemon is stopped.
func graphCommand(args []string, stdout, stderr io.Writer) int {
	c, err := parseGraphArgs(args, time.Now(), stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitBadArgs
	}
	if err := drawGraph(c, stderr); err != nil {
		fmt.Fprintln(stderr, "pingmachine:", err)
		return graphFailed
	}
	fmt.Fprintln(stdout, c.out)
	return exitOK
}

func drawGraph(c graphConfig, stderr io.Writer) error {
	path, err := findRRD(c.basedir, c.id)
	if err != nil {
		return err
	}
	d, err := graph.Read(path, graph.Span{Start: c.end.Add(-c.span), End: c.end, Width: c.width})
	if err != nil {
		return err
	}
	title := c.id
	if target, err := orderTarget(c.basedir, c.id); err != nil {
		fmt.Fprintln(stderr, "pingmachine graph: the title names no target:", err)
	} else if target != "" {
		title += " — " + target
	}
	return writeAtomic(c.out, func(w io.Writer) error {
		return graph.Draw(w, d, graph.Options{Format: c.format, Title: title, Height: c.height})
	})
}

// findRRD returns the main.rrd of an order: in output/, or in archive/ when the order
// was deleted or expired.
func findRRD(base, id string) (string, error) {
	var tried []string
	for _, dir := range []string{"output", "archive"} {
		p := filepath.Join(base, dir, filepath.FromSlash(id), "main.rrd")
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("order %s has no main.rrd: neither %s nor %s exists", id, tried[0], tried[1])
}

// orderTarget returns what the order pings, such as "fping: gw.zurich.example", or "" when its
// order file is gone (an archived order).
func orderTarget(base, id string) (string, error) {
	file := filepath.Join(base, "orders", filepath.FromSlash(id))
	fi, err := os.Stat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", err
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s is not a regular file", file) // a FIFO would block
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, orders.MaxSize+1))
	if err != nil {
		return "", err
	}
	o, err := orders.Parse(file, id, data)
	if err != nil {
		return "", err
	}
	return o.Target(), nil
}

// writeAtomic writes a file through a temporary file renamed into place, so that a web
// server never serves half a picture, and a failure leaves the old one.
func writeAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	err = write(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
