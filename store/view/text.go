package view

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ANSI colours, as the Perl pingmachine-status takes them from Term::ANSIColor.
const (
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	reset  = "\x1b[0m"
)

// WriteText writes the view as the Perl pingmachine-status prints it: a table of the
// valid orders per user, sorted by target, then the invalid orders with the parser's
// message, the stale orders and the unreadable results, and a summary with the state of
// the daemon. With colour, ANSI colours mark what needs a look, by the Perl tool's
// rules: an update older than a step in red; a loss of none (or of one ping out of more
// than two) in green, of some in yellow, of all in red.
func (v *View) WriteText(w io.Writer, colour bool) error {
	p := &printer{w: w, colour: colour}
	users := make(map[string][]*Order)
	var invalid, stale, unreadable []*Order
	counts := make(map[State]int)
	for i := range v.Orders {
		o := &v.Orders[i]
		state := o.State(v.Time)
		counts[state]++
		switch state {
		case Invalid:
			invalid = append(invalid, o)
			continue
		case Stale:
			stale = append(stale, o)
		case Unreadable:
			unreadable = append(unreadable, o)
		}
		users[o.Order.User] = append(users[o.Order.User], o)
	}
	for i, user := range slices.Sorted(maps.Keys(users)) {
		if i > 0 {
			p.line("")
		}
		p.line(p.paint("- "+printable(user), bold))
		p.line("")
		v.table(p, users[user])
	}
	if len(v.Orders) == 0 {
		p.line("no orders in " + printable(v.Base) + "/orders")
	}
	if len(invalid) > 0 {
		p.section("invalid orders, as the daemon reads them:", red)
		for _, o := range invalid {
			p.line("  " + printable(o.Err.Error()))
		}
	}
	if len(stale) > 0 {
		p.section("stale orders, without a result for more than two steps:", red)
		for _, o := range stale {
			p.line(fmt.Sprintf("  %s: last result %s ago, step %s", printable(o.ID), FormatAge(o.Age(v.Time)), seconds(o.Step())))
		}
	}
	if len(unreadable) > 0 {
		p.section("unreadable results:", red)
		for _, o := range unreadable {
			p.line("  " + printable(o.ResultErr.Error()))
		}
	}
	p.line("")
	p.line(v.summary(counts))
	p.line(printable(v.Daemon.String()))
	return p.err
}

// table writes the table of one user's orders.
func (v *View) table(p *printer, list []*Order) {
	slices.SortFunc(list, byTarget)
	head := []string{"order", "step", "pings", "probe", "host", "updated", "m.rtt", "loss"}
	right := []bool{false, true, true, false, false, false, true, true}
	rows := [][]cell{}
	for _, o := range list {
		row := []cell{{text: o.ID}, {text: seconds(o.Order.Step)}, {text: strconv.Itoa(o.Order.Pings)},
			{text: o.Order.Probe}, {text: o.Order.Destination()}}
		switch r := o.Result; {
		case o.ResultErr != nil:
			row = append(row, cell{text: "?", colour: red}, cell{text: "?"}, cell{text: "?"})
		case r == nil:
			row = append(row, cell{text: "-"}, cell{text: "-"}, cell{text: "-"})
		default:
			age := cell{text: perlAge(o.Age(v.Time))}
			if o.Age(v.Time) > o.Step() {
				age.colour = red
			}
			row = append(row, age, cell{text: FormatRTT(r.Median)}, lossCell(r.Loss, r.Pings))
		}
		var via []string
		iface, source := o.Via()
		if iface != "" {
			via = append(via, iface)
		}
		if source != "" {
			via = append(via, "source="+source)
		}
		if len(via) > 0 {
			row = append(row, cell{text: "(" + strings.Join(via, ", ") + ")"})
		}
		for i := range row {
			row[i].text = printable(row[i].text)
		}
		rows = append(rows, row)
	}
	width := make([]int, len(head))
	for i, h := range head {
		width[i] = len(h)
		for _, row := range rows {
			width[i] = max(width[i], utf8.RuneCountInString(row[i].text))
		}
	}
	var heads, rules []cell
	for i, h := range head {
		heads = append(heads, cell{text: h})
		rules = append(rules, cell{text: strings.Repeat("-", width[i])})
	}
	p.row(heads, width, right, bold)
	p.row(rules, width, right, "")
	for _, row := range rows {
		p.row(row, width, right, "")
	}
}

// byTarget sorts as the Perl tool does: by target (addresses in their numeric order
// before names and URLs), then probe, step and id.
func byTarget(a, b *Order) int {
	ta, tb := a.Order.Destination(), b.Order.Destination()
	aa, errA := netip.ParseAddr(ta)
	ab, errB := netip.ParseAddr(tb)
	switch {
	case errA == nil && errB == nil:
		if c := aa.Compare(ab); c != 0 {
			return c
		}
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return cmp.Or(strings.Compare(ta, tb), strings.Compare(a.Order.Probe, b.Order.Probe),
		cmp.Compare(a.Order.Step, b.Order.Step), strings.Compare(a.ID, b.ID))
}

func lossCell(loss, pings int) cell {
	c := cell{text: fmt.Sprintf("%3.0f%%", float64(loss)*100/float64(pings))}
	switch {
	case loss == 0 || pings > 2 && loss == 1:
		c.colour = green
	case loss < pings:
		c.colour = yellow
	default:
		c.colour = red
	}
	return c
}

func (v *View) summary(counts map[State]int) string {
	var parts []string
	for _, s := range []struct {
		state State
		say   string
	}{{OK, "ok"}, {Stale, "stale"}, {NoResult, "without a result yet"}, {Unreadable, "with an unreadable result"}, {Invalid, "invalid"}} {
		if n := counts[s.state]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s.say))
		}
	}
	s := fmt.Sprintf("orders: %d", len(v.Orders))
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

// String says whether a daemon runs, and how that is known.
func (d Daemon) String() string {
	switch {
	case d.Err != nil:
		return "daemon: unknown (" + d.Err.Error() + ")"
	case d.Running:
		return "daemon: running (" + d.Lock + " is locked)"
	}
	return "daemon: not running (" + d.Lock + " is not locked)"
}

// FormatRTT writes an RTT in milliseconds with three significant digits or so ("0.046
// ms", "12.3 ms", "1234 ms"); "-" for none (negative).
func FormatRTT(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	ms := d.Seconds() * 1000
	decimals := 0
	switch {
	case ms < 1:
		decimals = 3
	case ms < 10:
		decimals = 2
	case ms < 100:
		decimals = 1
	}
	return strconv.FormatFloat(ms, 'f', decimals, 64) + " ms"
}

// FormatAge writes an age in whole seconds, minutes, hours or days, as the Perl tool
// does: "75 s", "3 min", "5 h", "2 d".
func FormatAge(d time.Duration) string {
	return strings.Join(strings.Fields(perlAge(d)), " ")
}

// perlAge is the Perl tool's age, padded so that the units line up.
func perlAge(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 120:
		return fmt.Sprintf("%3d s  ", s)
	case s < 7200:
		return fmt.Sprintf("%3d min", s/60)
	case s < 48*3600:
		return fmt.Sprintf("%3d h  ", s/3600)
	}
	return fmt.Sprintf("%3d d  ", s/(24*3600))
}

func seconds(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10) + " s"
}

// printable replaces the control characters of a text from the files, such as the
// escape sequences a file name may hold, which a terminal would obey.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// cell is the text of a table cell and its colour.
type cell struct {
	text, colour string
}

// printer writes lines, in colour or not, and keeps the first error.
type printer struct {
	w      io.Writer
	colour bool
	err    error
}

func (p *printer) paint(s, colour string) string {
	if !p.colour || colour == "" {
		return s
	}
	return colour + s + reset
}

func (p *printer) line(s string) {
	if p.err == nil {
		_, p.err = io.WriteString(p.w, s+"\n")
	}
}

func (p *printer) section(title, colour string) {
	p.line("")
	p.line(p.paint(title, colour))
}

// row writes a table row, each cell padded to its width before it is painted, so that
// colours do not shift the columns. Cells beyond the widths are written as they are.
func (p *printer) row(cells []cell, width []int, right []bool, colour string) {
	texts := make([]string, len(cells))
	for i, c := range cells {
		text := c.text
		if i < len(width) {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(text))
			if right[i] {
				text = pad + text
			} else if i < len(cells)-1 {
				text += pad
			}
		}
		texts[i] = p.paint(text, cmp.Or(c.colour, colour))
	}
	p.line("  " + strings.Join(texts, "  "))
}
