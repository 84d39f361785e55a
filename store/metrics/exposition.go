package metrics

import (
	"bufio"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"pingmachine/orders"
	"pingmachine/store"
)

// bounds are smokeping_prober's default buckets, prometheus.ExponentialBuckets(0.00005,
// 2, 20): 50 µs to 26.2 s. The same upper bounds make its recording rules and dashboards
// read pingmachine's histograms unchanged.
var bounds = func() [20]float64 {
	var b [20]float64
	for i := range b {
		b[i] = 0.00005 * math.Pow(2, float64(i))
	}
	return b
}()

// leLabels are the le label of each bucket as client_golang writes it, +Inf last.
var leLabels = func() [len(bounds) + 1]string {
	var l [len(bounds) + 1]string
	for i, b := range bounds {
		l[i] = `,le="` + strconv.FormatFloat(b, 'g', -1, 64) + `"} `
	}
	l[len(bounds)] = `,le="+Inf"} `
	return l
}()

// bucketOf is the index of the first bucket whose upper bound is at least v, or
// len(bounds) when v is above them all.
func bucketOf(v float64) int {
	lo, hi := 0, len(bounds)
	for lo < hi {
		mid := (lo + hi) / 2
		if v <= bounds[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// fixedLabels are the labels every order has; a telegraf tag of one of these names, or
// Prometheus' le, is left out rather than clash with them.
var fixedLabels = []string{"id", "host", "ip", "source", "tos", "le"}

// labelsOf renders the labels of an order's series, without braces: id, then
// smokeping_prober's host (the destination as the order gives it), ip (the address
// pinged; empty when not known, as for the probes that run a program), source and tos
// (pingmachine sets no TOS: empty), then the order's telegraf tags whose names are
// valid, in the order of their names.
func labelsOf(o *orders.Order, r store.Result) string {
	var b strings.Builder
	source := ""
	switch {
	case o.FPing != nil && o.FPing.Source.IsValid():
		source = o.FPing.Source.String()
	case o.SCION != nil:
		source = o.SCION.Source
	}
	ip := ""
	if r.Addr.IsValid() {
		ip = r.Addr.String()
	}
	label(&b, "id", o.ID)
	label(&b, "host", o.Destination())
	label(&b, "ip", ip)
	label(&b, "source", source)
	label(&b, "tos", "")
	for _, k := range slices.Sorted(maps.Keys(o.Telegraf.Tags)) {
		if validName(k) && !slices.Contains(fixedLabels, k) {
			label(&b, k, o.Telegraf.Tags[k])
		}
	}
	return b.String()
}

func label(b *strings.Builder, name, value string) {
	if b.Len() > 0 {
		b.WriteByte(',')
	}
	b.WriteString(name)
	b.WriteString(`="`)
	b.WriteString(escapeValue(value))
	b.WriteByte('"')
}

// validName reports whether a label name is one every Prometheus takes:
// [a-zA-Z_][a-zA-Z0-9_]*, and not reserved (a leading "__").
func validName(name string) bool {
	if name == "" || strings.HasPrefix(name, "__") {
		return false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// escapeValue escapes a label value for the text format: backslash, double quote and
// line feed. Prometheus takes only UTF-8; a byte that is not (an order id is a file
// name) becomes the text \xHH, so that two ids stay two series (an id has no backslash
// of its own: orders.CheckID refuses it).
func escapeValue(v string) string {
	if !utf8.ValidString(v) {
		var b strings.Builder
		for len(v) > 0 {
			r, n := utf8.DecodeRuneInString(v)
			if r == utf8.RuneError && n == 1 {
				fmt.Fprintf(&b, `\x%02x`, v[0])
			} else {
				b.WriteString(v[:n])
			}
			v = v[n:]
		}
		v = b.String()
	}
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return valueEscaper.Replace(v)
}

var valueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// family is one per-order metric family: its header, and how each order's lines are
// written.
type family struct {
	name, help, typ string
	write           func(b []byte, name string, f *figures) []byte
}

var families = []family{
	{"smokeping_requests_total", "Pings sent, as smokeping_prober counts them: those lost are requests_total - response_duration_seconds_count.", "counter",
		func(b []byte, name string, f *figures) []byte {
			return sample(b, name, "", f.labels, float64(f.requests))
		}},
	{"smokeping_response_duration_seconds", "Round-trip times of the answered pings, in smokeping_prober's buckets.", "histogram", histogram},
	{"pingmachine_rounds_total", "Rounds of the order written since the daemon started.", "counter",
		func(b []byte, name string, f *figures) []byte {
			return sample(b, name, "", f.labels, float64(f.rounds))
		}},
	{"pingmachine_last_loss_ratio", "Share of the last round's pings that were lost, 0 to 1 (last_result's loss / pings).", "gauge",
		func(b []byte, name string, f *figures) []byte { return sample(b, name, "", f.labels, f.loss) }},
	{"pingmachine_last_rtt_min_seconds", "Shortest round-trip time of the last round; NaN when no ping was answered.", "gauge",
		func(b []byte, name string, f *figures) []byte { return sample(b, name, "", f.labels, f.min) }},
	{"pingmachine_last_rtt_median_seconds", "Median round-trip time of the last round (the upper median, as last_result and main.rrd have it); NaN when no ping was answered.", "gauge",
		func(b []byte, name string, f *figures) []byte { return sample(b, name, "", f.labels, f.median) }},
	{"pingmachine_last_rtt_max_seconds", "Longest round-trip time of the last round; NaN when no ping was answered.", "gauge",
		func(b []byte, name string, f *figures) []byte { return sample(b, name, "", f.labels, f.max) }},
	{"pingmachine_last_round_timestamp_seconds", "Time stamp of the last round, as in last_result and main.rrd (Unix seconds): a step before the step it was measured in.", "gauge",
		func(b []byte, name string, f *figures) []byte { return sample(b, name, "", f.labels, f.stamp) }},
}

// writeOrders writes the per-order families of the orders' figures.
func writeOrders(w *bufio.Writer, list []figures) error {
	b := make([]byte, 0, 64<<10)
	for _, fam := range families {
		b = append(b, "# HELP "+fam.name+" "+fam.help+"\n# TYPE "+fam.name+" "+fam.typ+"\n"...)
		for i := range list {
			b = fam.write(b, fam.name, &list[i])
			if len(b) > 60<<10 {
				if _, err := w.Write(b); err != nil {
					return err
				}
				b = b[:0]
			}
		}
	}
	_, err := w.Write(b)
	return err
}

// histogram writes an order's buckets (cumulative), sum and count.
func histogram(b []byte, name string, f *figures) []byte {
	var n uint64
	for i, c := range f.buckets {
		n += c
		b = append(b, name...)
		b = append(b, "_bucket{"...)
		b = append(b, f.labels...)
		b = append(b, leLabels[i]...)
		b = strconv.AppendUint(b, n, 10)
		b = append(b, '\n')
	}
	b = sample(b, name, "_sum", f.labels, f.sum)
	return sample(b, name, "_count", f.labels, float64(n))
}

// sample writes one line: name+suffix{labels} value.
func sample(b []byte, name, suffix, labels string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	b = append(b, '{')
	b = append(b, labels...)
	b = append(b, "} "...)
	switch {
	case math.IsNaN(v):
		b = append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		b = strconv.AppendInt(b, int64(v), 10)
	default:
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return append(b, '\n')
}
